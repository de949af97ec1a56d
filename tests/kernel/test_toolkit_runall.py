"""Every lab survives JupyterLab's Run All: all code cells queued at once in a real kernel.

nbval (also in `make test`) sends one cell at a time; Run All sends every execute
request back to back, and a toolkit that patched or blocked the kernel's event
loop failed only that way. Per lab this asserts that every cell finished, that
no output holds an error or a traceback, and that the lab cleaned up after
itself (no namespace of its own left, no lab record of the kernel).

`make test` runs every lab this way in a real browser (tests/browser/test_jupyterlab_runall.py,
which also keeps the executed copies for the docs site); here the headless runner — the
developer's quick check, ``python -m packetlab.testing.runall labs/NN-slug.ipynb`` — proves
itself on the first lab, so the suite does not run every lab a third time.
"""

from __future__ import annotations

import pytest

from packetlab.paths import lab_notebooks
from packetlab.testing.runall import CELL_TIMEOUT, LAB_TIMEOUT, run_all

LABS = lab_notebooks()[:1]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", LABS, ids=lambda p: p.stem)
def test_run_all_cells(notebook, tmp_path):
    result = run_all(notebook, out_dir=tmp_path, cell_timeout=CELL_TIMEOUT, timeout=LAB_TIMEOUT)
    print(result.summary())
    assert result.cells, f"{notebook.name} has no code cells"
    if not result.ok:
        pytest.fail(result.summary(), pytrace=False)  # names each cell and its error, nothing else
    assert result.executed is not None and result.executed.is_file()
    # a Run All answers through the reference solutions: progress says "reference used", never "passed"
    assert result.progress and {outcome for *_, outcome in result.progress} == {"reference"}, result.progress
