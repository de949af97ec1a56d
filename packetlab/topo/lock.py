"""One owner per lab name: an exclusive ``flock`` on ``<state dir>/<lab>.lock``.

A running lab holds its lock for its whole life; the kernel drops it the moment
the process dies (SIGKILL included), so a lock can never be left stale. The
guardian and ``packetlab clean`` take the same lock before they tear anything
down, so none of them can remove what a *new* owner of the name just built.

The file holds ``<pid> <role>`` of the holder, written after locking, so a
refused caller can say who holds the name. The holder unlinks the file before
unlocking; a locker that finds its file unlinked or replaced under it retries
(the classic lock-file-removal race).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path

from packetlab.topo import state


def lock_path(lab: str) -> Path:
    return state.STATE_DIR / f"{lab}.lock"


class LabLock:
    """The exclusive lock on one lab name. `role` says why it is held: lab, guardian, clean."""

    def __init__(self, lab: str, role: str) -> None:
        self.lab, self.role = lab, role
        self._fd: int | None = None
        self._pid = 0  # the process that took it (a forked child inherits the descriptor, not the lock's ownership)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; never waits."""
        if self._fd is not None:
            return True
        path = lock_path(self.lab)
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # the previous holder removed this file as we locked it: lock the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {self.role}\n".encode())
        self._fd, self._pid = fd, os.getpid()
        return True

    def acquire(self, timeout: float) -> bool:
        """Poll for the lock up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def release(self) -> None:
        """Remove the lock file (while still holding it), then unlock. Idempotent."""
        if self._fd is None:
            return
        if self._pid == os.getpid():  # (in a forked child: only close its copy of the descriptor)
            with contextlib.suppress(FileNotFoundError):
                if os.fstat(self._fd).st_ino == os.stat(lock_path(self.lab)).st_ino:
                    os.unlink(lock_path(self.lab))
        os.close(self._fd)
        self._fd = None


def holder(lab: str) -> tuple[int, str] | None:
    """(pid, role) of whoever holds lab `lab`'s lock, from its file; None if unknown."""
    try:
        pid, role = lock_path(lab).read_text().split()[:2]
        return int(pid), role
    except (OSError, ValueError):
        return None
