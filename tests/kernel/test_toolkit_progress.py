"""Progress on the real kernel: a learner's Run All of a lab records 'reference used', never 'passed'.

Lab 00 is the smallest lab with graded checks (three, on real namespaces); the Run-All
runner gives its kernel a progress folder of its own and reads it back.
"""

from __future__ import annotations

from packetlab.paths import REPO_ROOT
from packetlab.testing.runall import run_all


def test_run_all_records_the_reference_never_a_pass():
    result = run_all(REPO_ROOT / "labs" / "00-getting-started.ipynb", out_dir=None)
    assert result.ok, result.summary()
    assert result.progress, "the checks recorded nothing"
    assert {m for m, _, _ in result.progress} == {"00"}
    assert {outcome for _, _, outcome in result.progress} == {"reference"}, result.progress
    assert result.own_passes == []
