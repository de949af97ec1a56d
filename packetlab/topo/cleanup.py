"""Tear down what a lab recorded — by name, never by pattern.

Used by a lab's own exit path for leftovers, by the guardian process when a
lab's owner dies without cleaning (SIGKILL, a crashed kernel), and by
``packetlab clean``. Only "already gone" is ignored; other errors surface.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

from packetlab.errors import LabRecordCorrupt
from packetlab.topo import cgroups, netns
from packetlab.topo.lock import LabLock, holder
from packetlab.topo.state import LabRecord, is_alive, scan_records


def teardown(record: LabRecord, *, dry_run: bool = False) -> list[str]:
    """Remove everything in `record` (newest first) and the record itself.

    Processes first (lab servers, container runtimes and the shims/conmon they
    left running), then what still runs in the lab's cgroups (containers), pins,
    namespaces, and last the working directories the processes used. Once a
    namespace is gone, the pins of tools whose daemon a lab runs (a `packetlab dhcp
    serve` the lab started, killed before it could unpin) are collected too. A firewall
    or load balancer installed with its CLI is not the lab's: its pins stay, `status`
    says "namespace gone" and `packetlab clean` collects them.
    """
    removed: list[str] = []
    for proc in reversed(record.processes):
        if is_alive(proc.pid, proc.start_time):
            argv = proc.argv[3:] if proc.argv[:1] == ["ip"] else proc.argv  # (`ip netns exec NS ...`)
            removed.append(f"process {proc.pid} ({' '.join(argv)[:60]}) in {proc.namespace}")
            if not dry_run:
                _kill(proc.pid)
    for name in reversed(record.cgroups):
        if not is_lab_cgroup(record.lab, name):
            continue  # never a cgroup that does not carry this lab's prefix
        if dry_run:
            removed += [f"cgroup {d}" for d in cgroups.existing(name)]
        else:
            removed += [f"cgroup {d}" for d in cgroups.remove(name)]
    for pin in reversed(record.pins):
        if os.path.exists(pin):
            removed.append(f"pinned object {pin}")
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(pin)
    if not dry_run:
        _remove_empty_pin_dirs(record)
    namespaces_gone = False
    for ns in reversed(record.namespaces):
        if not ns.startswith(f"{record.lab}-"):
            continue  # never remove a namespace that does not carry this lab's prefix
        if netns.exists(ns):
            removed.append(f"namespace {ns}")
            if not dry_run:
                netns.remove(ns)
                namespaces_gone = True
    if namespaces_gone:
        removed += collect_tool_pins(LAB_DAEMON_COLLECTORS)  # for namespaces that no longer exist, never a live one's
    for workdir in reversed(record.workdirs):
        if is_lab_workdir(record.lab, workdir) and os.path.isdir(workdir):
            removed.append(f"working directory {workdir}")
            if not dry_run:
                shutil.rmtree(workdir, ignore_errors=True)
    if not dry_run:
        record.delete()
    return removed


def is_lab_workdir(lab: str, path: str) -> bool:
    """A lab's working directories are absolute paths to directories named ``packetlab-<lab>-...``
    (``tempfile.mkdtemp(prefix=...)``), never a symlink and never the temp directory itself."""
    p = Path(os.path.normpath(path))
    return p.is_absolute() and p.name.startswith(f"packetlab-{lab}-") and not p.is_symlink() and p != p.parent


def is_lab_cgroup(lab: str, name: str) -> bool:
    """A lab's cgroups are top-level cgroups named ``packetlab-<lab>-<what>``."""
    return name.startswith(f"{cgroups.PREFIX}{lab}-") and "/" not in name and ".." not in name


PIN_ROOT = Path("/sys/fs/bpf/packetlab")

# The milestone CLIs pin their programs so they outlive the command; each offers a gc()
# that unpins installs whose lab namespace is gone. `packetlab clean` runs them all.
TOOL_PIN_COLLECTORS = [
    "packetlab.tools.firewall.pinned",
    "packetlab.tools.lb.pinned",
    "packetlab.tools.dhcp.fastpath",
]
# Tools whose pins belong to a daemon the lab itself runs: a lab's teardown collects these.
LAB_DAEMON_COLLECTORS = ["packetlab.tools.dhcp.fastpath"]


def collect_tool_pins(collectors: list[str] = TOOL_PIN_COLLECTORS) -> list[str]:
    """Unpin firewall, load-balancer and DHCP fast-path installs left in namespaces that no longer
    exist (each tool's gc(); installs on the host's own interfaces are never collected)."""
    import importlib

    removed: list[str] = []
    for name in collectors:
        try:
            gc = importlib.import_module(name).gc
        except (ImportError, AttributeError):
            continue
        removed += [f"{name.split('.')[2]}: {item}" for item in gc()]
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
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)  # lab processes lead their own session/group
            else:
                os.kill(pid, sig)  # (a recorded shim or container init that is not a group leader)
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
    removed: list[str] = []
    skipped: list[str] = []
    if not dry_run and lab is None:
        removed += collect_tool_pins()
    records, corrupt = scan_records()
    for record in records:
        if lab is not None and record.lab != lab:
            continue
        lock = LabLock(record.lab, "clean")
        if not lock.try_acquire() and not force:  # a live lab (or its guardian) holds the name
            who = holder(record.lab)
            skipped.append(f"lab {record.lab!r} is running (pid {who[0] if who else record.pid}); left alone")
            continue
        try:
            try:
                current = LabRecord.load(record.path)  # what the record says now that we hold the name
            except FileNotFoundError:
                continue
            except LabRecordCorrupt as exc:
                corrupt.append(exc)
                continue
            if current.owner_alive() and not force:
                skipped.append(f"lab {current.lab!r} is running (pid {current.pid}); left alone")
                continue
            removed += [f"{current.lab}: {item}" for item in teardown(current, dry_run=dry_run)]
        finally:
            lock.release()
    for bad in corrupt:
        path = Path(str(bad.path))
        if lab is not None and path.stem != lab:
            continue
        removed += _clear_corrupt(path, dry_run=dry_run, force=force, skipped=skipped)
    return removed, skipped


def _clear_corrupt(path: Path, *, dry_run: bool, force: bool, skipped: list[str]) -> list[str]:
    """Remove an unreadable record (under its lab's lock) and name the namespaces it may have made."""
    lab = path.stem
    lock = LabLock(lab, "clean")
    if not lock.try_acquire() and not force:
        skipped.append(f"lab {lab!r} has a corrupt record but its name is held by a live process; left alone")
        return []
    try:
        suspects = [ns for ns in _netns_names() if ns.startswith(f"{lab}-")]
        note = f" (namespaces named like it, not removed: {', '.join(suspects)})" if suspects else ""
        if not dry_run:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return [f"{lab}: corrupt record {path}{note}"]
    finally:
        lock.release()


def _netns_names() -> list[str]:
    return sorted(os.listdir(netns.NETNS_DIR)) if os.path.isdir(netns.NETNS_DIR) else []
