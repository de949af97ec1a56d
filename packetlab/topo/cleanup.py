"""Tear down what a lab recorded — by name, never by pattern.

Used by a lab's own exit path for leftovers, by the guardian process when a
lab's owner dies without cleaning (SIGKILL, a crashed kernel), and by
``packetlab clean``. Only "already gone" is ignored; other errors surface.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from packetlab.topo import netns
from packetlab.topo.state import LabRecord, all_records, is_alive


def teardown(record: LabRecord, *, dry_run: bool = False) -> list[str]:
    """Remove everything in `record` (newest first) and the record itself."""
    removed: list[str] = []
    for proc in reversed(record.processes):
        if is_alive(proc.pid, proc.start_time):
            removed.append(f"process {proc.pid} ({' '.join(proc.argv[3:])[:60]}) in {proc.namespace}")
            if not dry_run:
                _kill(proc.pid)
    for pin in reversed(record.pins):
        if os.path.exists(pin):
            removed.append(f"pinned object {pin}")
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pin)
    if not dry_run:
        _remove_empty_pin_dirs(record)
    for ns in reversed(record.namespaces):
        if not ns.startswith(f"{record.lab}-"):
            continue  # never remove a namespace that does not carry this lab's prefix
        if netns.exists(ns):
            removed.append(f"namespace {ns}")
            if not dry_run:
                netns.remove(ns)
    if not dry_run:
        record.delete()
    return removed


PIN_ROOT = Path("/sys/fs/bpf/packetlab")

# The milestone CLIs pin their programs so they outlive the command; each offers a gc()
# that unpins installs whose lab namespace is gone. `packetlab clean` runs them all.
TOOL_PIN_COLLECTORS = ["packetlab.tools.firewall.pinned", "packetlab.tools.lb.pinned"]


def collect_tool_pins() -> list[str]:
    """Unpin firewall/load-balancer installs left in namespaces that no longer exist."""
    import importlib

    removed: list[str] = []
    for name in TOOL_PIN_COLLECTORS:
        try:
            gc = importlib.import_module(name).gc
        except (ImportError, AttributeError):
            continue
        removed += [f"{name.rsplit('.', 2)[1]}: {item}" for item in gc()]
    return removed


def _remove_empty_pin_dirs(record: LabRecord) -> None:
    """Remove the now-empty folders that held this lab's pins (deepest first)."""
    lab_dir = PIN_ROOT / record.lab
    dirs = {Path(p).parent for p in record.pins} | {lab_dir}
    for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
        while d != PIN_ROOT and PIN_ROOT in d.parents:
            try:
                d.rmdir()  # only succeeds when empty
            except OSError:
                break
            d = d.parent


def _kill(pid: int) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)  # lab processes lead their own session/group
        except ProcessLookupError:
            return
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            if not Path(f"/proc/{pid}").exists():
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.02)


def clean(*, force: bool = False, dry_run: bool = False, lab: str | None = None) -> tuple[list[str], list[str]]:
    """Remove leftovers of labs whose owner process is gone.

    Returns (removed, skipped): live labs are skipped unless `force`.
    """
    removed, skipped = [], []
    if not dry_run and lab is None:
        removed += collect_tool_pins()
    for record in all_records():
        if lab is not None and record.lab != lab:
            continue
        if record.owner_alive() and not force:
            skipped.append(f"lab {record.lab!r} is running (pid {record.pid}); left alone")
            continue
        removed += [f"{record.lab}: {item}" for item in teardown(record, dry_run=dry_run)]
    return removed, skipped
