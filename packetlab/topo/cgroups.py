"""The cgroups a lab's container runtimes create, found and removed by recorded name.

runc (cgroupfs manager) makes ``<parent>/<container>`` in *every* mounted
hierarchy: under each ``/sys/fs/cgroup/<controller>/`` on a v1/hybrid layout,
directly under ``/sys/fs/cgroup`` on a pure v2 one. A lab records the parent's
name (``packetlab-<lab>-<runtime>``); teardown kills what still runs in it (a
container whose shim died with the lab) and removes the directories.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PREFIX = "packetlab-"  # every cgroup packetlab creates starts with it (the host guard watches them)


def hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies' roots."""
    if not CGROUP_ROOT.is_dir():
        return []
    if (CGROUP_ROOT / "cgroup.controllers").exists():  # pure cgroup v2
        return [CGROUP_ROOT]
    return sorted(p for p in CGROUP_ROOT.iterdir() if p.is_dir() and not p.is_symlink())


def cgroup_dirs(name: str) -> list[Path]:
    """`name`'s directory in every hierarchy (whether or not it exists)."""
    return [h / name for h in hierarchies()]


def existing(name: str) -> list[Path]:
    return [d for d in cgroup_dirs(name) if d.is_dir()]


def members(directory: Path) -> set[int]:
    """Pids in `directory` and its descendants."""
    pids: set[int] = set()
    for procs in directory.rglob("cgroup.procs"):
        with contextlib.suppress(OSError, ValueError):
            pids.update(int(p) for p in procs.read_text().split())
    return pids


def remove(name: str, *, timeout: float = 3.0) -> list[str]:
    """SIGKILL what still runs in cgroup `name`, then rmdir it (deepest first) in every hierarchy."""
    removed = []
    dirs = existing(name)
    pids = set().union(*(members(d) for d in dirs)) if dirs else set()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while pids and any(members(d) for d in dirs) and time.monotonic() < deadline:
        time.sleep(0.02)
    for d in dirs:
        for child in sorted((p for p in d.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                child.rmdir()
        with contextlib.suppress(OSError):
            d.rmdir()
            removed.append(str(d))
    return removed
