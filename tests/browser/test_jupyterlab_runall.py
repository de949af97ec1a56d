"""Every lab, opened in JupyterLab in a real browser, passes Run > Run All Cells.

This is the learner's path end to end: ``make lab`` serves ``labs/``, Chromium
opens a lab, the Run menu's *Run All Cells* queues every cell at once (unlike
nbval, which sends one cell at a time — a toolkit that breaks the kernel's event
loop fails only here), and the lab must finish with no traceback anywhere:
not in an output, not in the kernel's own log.

Per lab: open it (fresh workspace), Run All from the menu, wait until no cell is
queued or running and the kernel is idle, then check that every code cell got
its execution count, 1..N in order (so the LAST code cell ran), that no output
holds a traceback, screenshot the notebook to ``build/screenshots/``, shut the
kernel down from the Kernel menu, and check the lab cleaned up its namespaces and
that the notebook file in ``labs/`` is unchanged (autosave is off; nothing is saved).
The notebook as the browser holds it after the run (outputs, execution counts) is
written to ``build/executed/``, where the docs site picks it up: the pages show
what a learner's Run All produced.

Progress is printed per lab (and every few cells) even under pytest's capture.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from packetlab.docsite.labs import EXECUTED_DIR
from packetlab.paths import lab_notebooks
from packetlab.testing.make_lab_server import LabServer
from packetlab.testing.runall import TRACEBACK
from packetlab.topo import netns
from packetlab.topo.servers import startup_scale
from packetlab.topo.state import all_records

from .conftest import REPO, screenshot_path

LABS = lab_notebooks()
# Every wait below grows with PACKETLAB_STARTUP_SCALE: vagrant/kernel61.sh's emulated guest is 10-30x slower.
SCALE = startup_scale()
IDLE_TIMEOUT = 600.0 * SCALE  # no cell may run longer than this (as nbval's --nbval-cell-timeout in make test)
LAB_TIMEOUT = 1800.0 * SCALE  # a whole lab (labs take up to a few minutes on 2 cores)
POLL = 1.0
MAX_SCREENSHOT_HEIGHT = 16000  # Chromium's limit for one capture is about 16k pixels

# The current notebook as JupyterLab holds it (window.jupyterapp: the test server exposes it):
# per code cell its execution count, whether it is queued/running, and its outputs; and the
# kernel's connection and status. Read from the model, not the page: a collapsed cell (the
# reference solutions) shows no prompt at all.
_STATE_JS = """(withOutputs) => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  if (!panel || !panel.content || !panel.content.model || !panel.sessionContext) return null;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  const cells = Array.from(panel.content.model.cells).filter(c => c.type === 'code').map(c => ({
    count: c.executionCount, state: c.executionState, outputs: withOutputs ? c.outputs.toJSON() : null}));
  return {path: panel.context.path, cells,
          status: kernel ? kernel.status : null, connection: kernel ? kernel.connectionStatus : null};
}"""


def _say(capsys: pytest.CaptureFixture, text: str) -> None:
    with capsys.disabled():
        print(f"  [browser] {text}", flush=True)


def _code_cells(path: Path) -> list[str]:
    """Sources of the notebook's code cells, in order."""
    nb = json.loads(path.read_text())
    return [
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "code"
    ]


def _output_errors(outputs: list[dict]) -> list[str]:
    """What in one cell's nbformat outputs is an error: an error output, or text with a traceback."""
    found = []
    for out in outputs:
        if out.get("output_type") == "error":
            found.append(f"raised {out.get('ename')}: {str(out.get('evalue'))[:300]}")
            continue
        text = out.get("text") or (out.get("data") or {}).get("text/plain") or ""
        text = "".join(text) if isinstance(text, list) else text
        if TRACEBACK.search(text):
            last = [ln for ln in text.splitlines() if ln.strip()][-1:] or [""]
            found.append(f"printed a traceback: {last[0][:300]}")
    return found


def _kernel_labs(kernel_pid: int | None) -> dict[str, list[str]]:
    """Labs the kernel `kernel_pid` has open right now: record file -> its namespaces."""
    return {str(r.path): list(r.namespaces) for r in all_records() if kernel_pid is not None and r.pid == kernel_pid}


def _first_line(source: str) -> str:
    return next((line for line in source.splitlines() if line.strip()), "")[:80]


def _notebook_state(page, outputs: bool = False) -> dict | None:
    """The current notebook's cells and kernel (see _STATE_JS); cell outputs only if asked."""
    return page.evaluate(_STATE_JS, outputs)


def _wait_for_kernel(page, name: str, timeout: float = 180 * SCALE) -> dict:
    """Wait until `name` is the current notebook and its kernel is connected and idle.

    (The toolbar's execution indicator says "idle" before any kernel exists, and a Run All
    sent then is lost.)"""
    deadline, state = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        state = _notebook_state(page)
        if state and state["path"] == name and state["connection"] == "connected" and state["status"] == "idle":
            return state
        time.sleep(0.5)
    pytest.fail(
        f"{name}: the kernel was not connected and idle {timeout:.0f} s after opening the notebook "
        f"(kernel {state and state['status']!r}, connection {state and state['connection']!r})"
    )


def _save_executed(page, notebook: Path) -> Path:
    """Write the notebook as JupyterLab holds it now (the model: sources, outputs, counts) to build/executed/."""
    model = page.evaluate("() => window.jupyterapp.shell.currentWidget.context.model.toJSON()")
    for cell in model["cells"]:  # JupyterLab's model says "attachments": null; nbformat's schema wants it absent
        for key in [k for k, v in cell.items() if v is None and k != "execution_count"]:  # a cell not run: null
            del cell[key]
    nbformat.validate(nbformat.from_dict(model))  # the docs build reads this file with nbformat: fail here, clearly
    EXECUTED_DIR.mkdir(parents=True, exist_ok=True)
    out = EXECUTED_DIR / notebook.name
    tmp = out.with_suffix(".partial")
    tmp.write_text(json.dumps(model, indent=1), encoding="utf-8")
    tmp.replace(out)
    return out


def _menu(page, menu: str, item: str) -> None:
    """Click `menu` in the menu bar, then `item` in it — what a learner does."""
    page.locator("#jp-menu-panel .lm-MenuBar-item", has=page.get_by_text(menu, exact=True)).click()
    page.locator(".lm-Menu .lm-Menu-item:not(.lm-mod-disabled)", has=page.get_by_text(item, exact=True)).first.click()


def _wait_for_run_all(
    page, sources: list[str], name: str, capsys, kernel_pid: int | None, namespaces: set[str]
) -> dict:
    """Poll the notebook until Run All is over; returns the last state. Fails on a hang.

    Meanwhile adds every namespace the kernel's labs record to `namespaces` (what must be
    gone once the kernel is shut down — and only that: other processes may run labs too)."""
    t0 = last_change = time.monotonic()
    seen_busy, done, state, stable = False, -1, None, 0
    while True:
        state = _notebook_state(page)
        for lab_namespaces in _kernel_labs(kernel_pid).values():
            namespaces.update(lab_namespaces)
        counts = [c["count"] for c in state["cells"]]
        finished = sum(n is not None for n in counts)
        running = any(c["state"] == "running" for c in state["cells"])
        seen_busy = seen_busy or running or finished > 0
        now = time.monotonic()
        if finished != done:
            if finished // 5 != max(done, 0) // 5 or finished == len(sources):
                _say(capsys, f"{name}: {finished}/{len(sources)} code cells done, {now - t0:.0f} s")
            done, last_change = finished, now
        # over: Run All started, nothing queued or running, kernel idle — twice in a row
        stable = stable + 1 if seen_busy and not running and state["status"] == "idle" else 0
        if stable >= 2:
            return state
        if now - last_change > IDLE_TIMEOUT or now - t0 > LAB_TIMEOUT:
            stuck = next(
                (i for i, c in enumerate(state["cells"]) if c["state"] == "running" and c["count"] is None), None
            )
            page.screenshot(path=screenshot_path(f"{Path(name).stem}-HUNG"))
            where = (
                f"code cell {stuck + 1} ({_first_line(sources[stuck])!r}) still running"
                if stuck is not None
                else f"kernel status {state['status']!r}"
            )
            pytest.fail(
                f"{name}: Run All did not finish ({finished}/{len(sources)} code cells done after "
                f"{now - t0:.0f} s; {where}). Screenshot: {screenshot_path(Path(name).stem + '-HUNG')}"
            )
        time.sleep(POLL)


_SCROLLER = ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer"
# Window height that shows the whole notebook: its last cell's bottom within the scroller,
# plus what the page has around the scroller (menu, toolbar, status bar).
_NOTEBOOK_HEIGHT_JS = """(sel) => {
  const s = document.querySelector(sel);
  const cells = s ? s.querySelectorAll('.jp-Cell') : [];
  if (!cells.length) return window.innerHeight;
  const last = cells[cells.length - 1].getBoundingClientRect().bottom;
  return last - s.getBoundingClientRect().top + s.scrollTop + (window.innerHeight - s.clientHeight);
}"""


def _screenshot_whole_notebook(page, path: Path) -> None:
    """Grow the window to the notebook's full height (JupyterLab scrolls inside a fixed-size
    page, so a plain full-page capture would show one screen), scroll to the top, capture.

    Off-screen cells are laid out with an estimated height until they become visible, so
    the height is measured again after each growth until it settles."""
    height = 0
    for _ in range(6):
        wanted = min(int(page.evaluate(_NOTEBOOK_HEIGHT_JS, _SCROLLER)) + 40, MAX_SCREENSHOT_HEIGHT)
        if abs(wanted - height) < 8:
            break
        height = wanted
        page.set_viewport_size({"width": page.viewport_size["width"], "height": height})
        page.evaluate("(sel) => { const s = document.querySelector(sel); if (s) s.scrollTop = 0; }", _SCROLLER)
        page.wait_for_timeout(700)  # let JupyterLab lay the cells out at the new size
    page.screenshot(path=path, full_page=True)


@pytest.fixture
def no_kernel_left(lab_server: LabServer) -> Iterator[None]:
    """After the test, however it ended, no kernel of it still runs: a failed lab's kernel would keep
    its namespaces and lab name, and every later test (the next Run All, nbval of the same lab) fail on it."""
    yield
    for kernel in lab_server.api("api/kernels") or []:
        lab_server.api(f"api/kernels/{kernel['id']}", method="DELETE", timeout=60)
    deadline = time.monotonic() + 30 * SCALE
    while lab_server.kernel_pids() and time.monotonic() < deadline:
        time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("notebook", LABS, ids=[p.stem for p in LABS])
def test_run_all_in_jupyterlab(notebook: Path, lab_server: LabServer, page, capsys, no_kernel_left) -> None:
    name = notebook.name
    sources = _code_cells(notebook)
    expected = [i + 1 for i, s in enumerate(s for s in sources if s.strip())]
    digest = hashlib.sha256(notebook.read_bytes()).hexdigest()
    log_start = lab_server.log.stat().st_size
    screenshot_path(f"{notebook.stem}-HUNG").unlink(missing_ok=True)  # from an earlier run
    t0 = time.monotonic()

    page.goto(lab_server.url(f"lab/tree/{name}?reset"))
    _wait_for_kernel(page, name)
    assert page.locator(".jp-Dialog").count() == 0, (
        f"{name}: JupyterLab opened a dialog: {page.locator('.jp-Dialog').first.inner_text()[:300]}"
    )
    kernel_pids = lab_server.kernel_pids()
    assert len(kernel_pids) == 1, f"{name}: expected one running kernel, found processes {kernel_pids}"
    kernel_pid, namespaces = kernel_pids[0], set()
    _say(capsys, f"{name}: opened, kernel ready in {time.monotonic() - t0:.0f} s; Run > Run All Cells")

    t_run = time.monotonic()
    _menu(page, "Run", "Run All Cells")
    _wait_for_run_all(page, sources, name, capsys, kernel_pid, namespaces)
    run_seconds = time.monotonic() - t_run

    page.keyboard.press("Control+b")  # hide the file browser: the notebook gets the width
    shot = screenshot_path(notebook.stem)
    _screenshot_whole_notebook(page, shot)
    _save_executed(page, notebook)

    cells = _notebook_state(page, outputs=True)["cells"]
    assert len(cells) == len(sources), f"{name}: JupyterLab shows {len(cells)} code cells, the file has {len(sources)}"
    problems = []
    for i, (src, cell) in enumerate(zip(sources, cells)):
        label = f"code cell {i + 1} ({_first_line(src)!r})"
        if src.strip() and cell["count"] is None:
            problems.append(f"{label} did not run")
        problems += [f"{label}: {e}" for e in _output_errors(cell["outputs"])]
    # what only a browser shows: a widget the page could not render (the live counters are widgets)
    broken = page.locator(".jp-OutputArea-output", has_text="Error displaying widget")
    problems += [f"a widget failed to render: {t.strip()[:200]}" for t in broken.all_inner_texts()]
    counts = [c["count"] for c in cells if c["count"] is not None]
    if not problems and counts != expected:
        problems.append(f"execution counts are {counts}, expected {expected} (every cell once, in order)")
    kernel_log = (
        lab_server.log.read_text(errors="replace")[log_start:] if lab_server.log.stat().st_size > log_start else ""
    )
    problems += [f"the kernel/server logged: {m.group(0)}" for m in TRACEBACK.finditer(kernel_log)][:3]

    _menu(page, "Kernel", "Shut Down Kernel")
    deadline = time.monotonic() + 60 * SCALE
    while lab_server.api("api/kernels") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not lab_server.api("api/kernels"), (
        f"{name}: the kernel is still running {60 * SCALE:.0f} s after Kernel > Shut Down Kernel"
    )
    deadline = time.monotonic() + 15 * SCALE  # the lab's guardian cleans up after its kernel
    while time.monotonic() < deadline:
        left = [f"lab record {r}" for r in _kernel_labs(kernel_pid)] + [
            f"namespace {ns}" for ns in sorted(namespaces) if netns.exists(ns)
        ]
        if not left:
            break
        time.sleep(0.5)
    problems += [f"left behind after the kernel shut down: {x}" for x in left]
    assert hashlib.sha256(notebook.read_bytes()).hexdigest() == digest, (
        f"{name} in labs/ changed while the browser had it open: JupyterLab saved it (autosave must be off) "
        "or someone edited it meanwhile"
    )

    verdict = "ok" if not problems else f"{len(problems)} problem(s)"
    _say(
        capsys,
        f"{name}: Run All {verdict} — {len(counts)}/{len(expected)} cells in {run_seconds:.0f} s "
        f"(total {time.monotonic() - t0:.0f} s), screenshot {shot.relative_to(REPO)}",
    )
    assert not problems, (
        f"{name}: Run All in JupyterLab:\n  "
        + "\n  ".join(problems)
        + f"\n  (screenshot: {shot}; server log: {lab_server.log})"
    )
