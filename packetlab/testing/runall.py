"""Run a lab notebook the way JupyterLab's *Run All* does, and keep what it printed.

Why not nbval alone: nbval sends one cell, waits for it, then sends the next.
JupyterLab's Run All sends every cell's execute request at once, so the
kernel's queue is full while the first cells run — a toolkit that patched the
kernel's event loop (or blocked it) broke there and nowhere else. This runner
starts a real kernel, sends all code cells back to back, and reports per cell:
did it finish, did it raise, did anything print a traceback. It also checks
that the lab cleaned up after itself (no namespace of its own left behind, no
lab record of the kernel left in ``/run/packetlab/labs``), and that no graded check
credited the learner: the kernel records progress into a folder of this run's own, and
a Run All answers through the reference solutions, so every check must record
"reference used", never "passed".

Each cell's outputs (stream, execute_result, display_data, error) and its
execution count are written into a copy of the notebook — a normal nbformat v4
notebook, same cells and metadata as the source — at
``build/executed/<NN-slug>.ipynb``, which the docs site renders so that lab
pages show a real run.

    python -m packetlab.testing.runall labs/00-getting-started.ipynb [--out build/executed] [--timeout 1800]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packetlab.course.progress import recorded
from packetlab.paths import REPO_ROOT
from packetlab.testing.host_guard import _namespaces
from packetlab.topo import netns
from packetlab.topo.servers import startup_scale
from packetlab.topo.state import all_records

REPO = REPO_ROOT
DEFAULT_OUT = REPO / "build" / "executed"
CELL_TIMEOUT = 600.0  # as nbval's --nbval-cell-timeout in `make test`
LAB_TIMEOUT = 1800.0

# What a cell's text output must never contain: a traceback, or asyncio reporting a failed
# callback/task (how a broken event loop shows itself when nothing raises in the cell).
TRACEBACK = re.compile(
    r"Traceback \(most recent call last\)|Exception in callback|"
    r"Task exception was never retrieved|cannot enter context"
)


@dataclass
class CellRun:
    """One code cell: where it is, whether it finished, what went wrong."""

    index: int  # position among all cells of the notebook
    number: int  # 1-based among code cells (what a person counts)
    source: str
    msg_id: str = ""
    finished: bool = False
    status: str = ""  # execute_reply status: ok, error, aborted
    execution_count: int | None = None
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def label(self) -> str:
        first = next((line for line in self.source.splitlines() if line.strip()), "")
        return f"code cell {self.number} (cell {self.index + 1} of the notebook: {first[:70]!r})"


@dataclass
class RunAllResult:
    """What a Run All of one notebook did."""

    path: Path
    cells: list[CellRun]
    seconds: float
    leftovers: list[str]
    kernel_log: list[str]
    executed: Path | None
    progress: list[tuple[str, str, str]] = field(default_factory=list)  # (module, check, outcome) the run recorded

    @property
    def own_passes(self) -> list[str]:
        """Checks the progress file credited to the learner (a Run All must have none)."""
        return [f"{m}/{name}" for m, name, outcome in self.progress if outcome == "passed"]

    @property
    def ok(self) -> bool:
        return (
            all(c.finished and c.status == "ok" and not c.errors for c in self.cells)
            and not self.leftovers
            and not self.kernel_log
            and not self.own_passes
        )

    def problems(self) -> list[str]:
        """One readable line per problem, naming the cell and the error."""
        out = []
        for c in self.cells:
            if not c.finished:
                out.append(
                    f"{c.label()} did not finish"
                    + (" (never started: an earlier cell hung)" if c.execution_count is None else "")
                )
            out += [f"{c.label()}: {e}" for e in c.errors]
        aborted = [c.number for c in self.cells if c.finished and c.status == "aborted"]
        if aborted:
            out.append(
                f"code cells {aborted[0]}–{aborted[-1]} were aborted ({len(aborted)} cells): "
                "Run All stops at the first cell that raises"
            )
        out += [f"the lab left behind: {x}" for x in self.leftovers]
        out += [f"the kernel process logged: {x}" for x in self.kernel_log]
        out += [
            f"{x} was recorded as passed by the learner: a Run All answers with the reference solution, so "
            "the notebook must not answer for the learner outside a use_reference/reference_needed cell"
            for x in self.own_passes
        ]
        return out

    def summary(self) -> str:
        done = sum(c.finished for c in self.cells)
        head = f"Run All {self.path.name}: {done}/{len(self.cells)} code cells finished in {self.seconds:.0f} s"
        problems = self.problems()
        return head + ("" if not problems else "\n  " + "\n  ".join(problems))


_OUTPUT_MESSAGES = ("stream", "display_data", "execute_result", "error", "clear_output", "update_display_data")


def _text_errors(text: str) -> list[str]:
    if not TRACEBACK.search(text):
        return []
    lines = [line for line in text.splitlines() if line.strip()]
    last = next(
        (line for line in reversed(lines) if re.match(r"^\w[\w.]*(Error|Exception|Warning)?:", line)),
        lines[-1] if lines else "",
    )
    return [f"printed a traceback: {last.strip()[:300]}"]


class _Outputs:
    """Builds one cell's nbformat outputs from iopub messages, as the notebook front end does."""

    def __init__(self) -> None:
        self.outputs: list[Any] = []
        self._clear_pending = False
        self.by_display_id: dict[str, list[Any]] = {}

    def add(self, msg: dict) -> Any:
        from nbformat.v4 import output_from_msg

        kind, content = msg["msg_type"], msg["content"]
        if kind == "clear_output":
            if content.get("wait"):
                self._clear_pending = True
            else:
                self.outputs.clear()
            return None
        if kind == "update_display_data":
            for out in self.by_display_id.get(content.get("transient", {}).get("display_id", ""), []):
                out["data"], out["metadata"] = content["data"], content["metadata"]
            return None
        if self._clear_pending:
            self.outputs.clear()
            self._clear_pending = False
        out = output_from_msg(msg)
        if (
            kind == "stream"
            and self.outputs
            and self.outputs[-1].get("output_type") == "stream"
            and self.outputs[-1]["name"] == out["name"]
        ):
            self.outputs[-1]["text"] += out["text"]  # one stream output per run of text, as Lab shows it
            return out
        self.outputs.append(out)
        display_id = content.get("transient", {}).get("display_id")
        if display_id:
            self.by_display_id.setdefault(display_id, []).append(out)
        return out


def _kernel_pid(km: Any) -> int | None:
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    return getattr(proc, "pid", None)


def lab_leftovers(before: set[str], kernel_pid: int | None) -> list[str]:
    """Namespaces that appeared during the run and are still there, and records of the kernel.

    Namespaces owned by another live process's lab (someone else running a lab at the
    same time) are not ours and are not reported."""
    problems, others = [], set()
    for record in all_records():
        if record.pid == kernel_pid:
            problems.append(
                f"lab record {record.path} (lab {record.lab!r}: "
                f"{', '.join(record.namespaces) or 'no namespaces'}) — the lab was not closed"
            )
        elif record.owner_alive():
            others.update(record.namespaces)
    for ns in sorted(set(_namespaces()) - before - others):
        if netns.exists(ns):
            problems.append(f"namespace {ns}")
    return problems


def run_all(
    path: str | os.PathLike,
    *,
    out_dir: str | os.PathLike | None = DEFAULT_OUT,
    cell_timeout: float = CELL_TIMEOUT,
    timeout: float = LAB_TIMEOUT,
    kernel_name: str = "python3",
    progress: Any = None,
) -> RunAllResult:
    """Run every code cell of notebook `path` back to back in a fresh kernel (cwd: its folder).

    A cell may take `cell_timeout` seconds from the moment the previous one finished; the
    whole notebook `timeout`. `progress`, if given, is called with each finished CellRun.
    The executed copy goes to `out_dir`/<name> (None: not written).
    """
    import nbformat
    from jupyter_client.manager import KernelManager

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    cells = [
        CellRun(i, n + 1, c.source)
        for n, (i, c) in enumerate((i, c) for i, c in enumerate(nb.cells) if c.cell_type == "code")
    ]
    outputs = {c.index: _Outputs() for c in cells}
    before = set(_namespaces())
    progress_dir = Path(tempfile.mkdtemp(prefix="packetlab-runall-progress-"))  # this run's own progress file
    with tempfile.TemporaryFile(mode="w+") as log:  # the kernel process's stdout and stderr
        km = KernelManager(kernel_name=kernel_name)
        spec = km.kernel_spec  # None only if no kernel of that name: start_kernel() below says so
        if kernel_name == "python3" and spec is not None:  # this interpreter (the venv's), as nbval --nbval-current-env
            spec.argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        env = {**os.environ, "PACKETLAB_DATA_DIR": str(progress_dir)}
        km.start_kernel(cwd=str(path.parent.resolve()), stdout=log, stderr=log, env=env)
        kernel_pid = _kernel_pid(km)
        kc = km.client()
        kc.start_channels()
        t0 = time.monotonic()
        leftovers: list[str] = []
        try:
            kc.wait_for_ready(timeout=120 * startup_scale())
            by_id: dict[str, CellRun] = {}
            for cell in cells:  # Run All: every request queued at once
                cell.msg_id = kc.execute(cell.source, allow_stdin=False, stop_on_error=True)
                by_id[cell.msg_id] = cell
            replied: set[str] = set()
            idle: set[str] = set()
            text: dict[str, list[str]] = {c.msg_id: [] for c in cells}  # every stream chunk, never cleared
            last_progress = time.monotonic()
            while not all(c.finished for c in cells):
                now = time.monotonic()
                if now - last_progress > cell_timeout or now - t0 > timeout:
                    break
                ready = [ch for ch in (kc.shell_channel, kc.iopub_channel) if ch.msg_ready()]
                if not ready:
                    time.sleep(0.02)
                for channel in ready:
                    msg = channel.get_msg(timeout=1)
                    owner = by_id.get(msg["parent_header"].get("msg_id", ""))
                    if owner is None:
                        continue
                    cell = owner
                    kind, content = msg["msg_type"], msg["content"]
                    if kind == "execute_reply":
                        cell.status = content.get("status", "")
                        cell.execution_count = content.get("execution_count") or cell.execution_count
                        replied.add(cell.msg_id)
                    elif kind == "execute_input":
                        cell.execution_count = content.get("execution_count")
                    elif kind == "status":
                        if content["execution_state"] == "idle":
                            idle.add(cell.msg_id)
                    elif kind in _OUTPUT_MESSAGES:
                        outputs[cell.index].add(msg)
                        if kind == "error":
                            cell.errors.append(f"{content['ename']}: {content['evalue'][:400]}")
                        elif kind == "stream":
                            text[cell.msg_id].append(content["text"])
                    if cell.msg_id in replied and cell.msg_id in idle and not cell.finished:
                        cell.finished = True
                        cell.errors += _text_errors("".join(text[cell.msg_id]))
                        cell.seconds = time.monotonic() - last_progress
                        last_progress = time.monotonic()
                        if progress:
                            progress(cell)
            if all(c.finished and c.status == "ok" and not c.errors for c in cells):
                leftovers = lab_leftovers(before, kernel_pid)  # the kernel still runs: the lab must have cleaned up
        finally:
            seconds = time.monotonic() - t0
            kc.stop_channels()
            km.shutdown_kernel(now=not all(c.finished for c in cells))
        deadline = time.monotonic() + 10  # after the kernel is gone, its guardian cleans up
        while (after := lab_leftovers(before, kernel_pid)) and time.monotonic() < deadline:
            time.sleep(0.5)
        leftovers += [x for x in after if x not in leftovers]
        log.seek(0)
        kernel_log = _text_errors(log.read())

    progress_records = recorded(progress_dir)
    shutil.rmtree(progress_dir, ignore_errors=True)
    executed = None
    if out_dir is not None:
        for cell in cells:
            nb.cells[cell.index].outputs = outputs[cell.index].outputs
            nb.cells[cell.index].execution_count = cell.execution_count
        executed = Path(out_dir) / path.name
        executed.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, executed)
    return RunAllResult(path, cells, seconds, leftovers, kernel_log, executed, progress_records)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m packetlab.testing.runall", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="where executed copies go (default: build/executed)"
    )
    parser.add_argument("--cell-timeout", type=float, default=CELL_TIMEOUT)
    parser.add_argument("--timeout", type=float, default=LAB_TIMEOUT)
    parser.add_argument("-q", "--quiet", action="store_true", help="no per-cell progress lines")
    args = parser.parse_args(argv)

    def show(cell: CellRun) -> None:
        mark = "✔" if cell.status == "ok" and not cell.errors else "✘"
        print(
            f"  {mark} [{cell.number:>2}] {cell.seconds:6.1f} s  {cell.source.splitlines()[0][:70] if cell.source else ''}",
            flush=True,
        )

    failed = 0
    for nb in args.notebooks:
        result = run_all(
            nb,
            out_dir=args.out,
            cell_timeout=args.cell_timeout,
            timeout=args.timeout,
            progress=None if args.quiet else show,
        )
        print(result.summary() + (f"\n  executed copy: {result.executed}" if result.executed else ""), flush=True)
        failed += not result.ok
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
