"""Low-level namespace plumbing: enter a namespace, run a command in one.

Everything here works by namespace *name* (the file under /run/netns) and
touches nothing outside it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from pyroute2 import netns as _netns

from packetlab.errors import CommandFailed, PacketlabError

NETNS_DIR = "/run/netns"
_lock = threading.RLock()


def exists(name: str) -> bool:
    return os.path.exists(os.path.join(NETNS_DIR, name))


def require(name: str) -> None:
    """Raise a clear error unless network namespace `name` exists (a tool is about to act in it)."""
    if not exists(name):
        raise PacketlabError(
            f"no network namespace named {name!r}",
            cause=f"it is not in {NETNS_DIR}",
            fix="list namespaces with `ip netns list`",
        )


def create(name: str) -> None:
    _netns.create(name)


def remove(name: str) -> bool:
    """Remove namespace `name`; False if it was already gone (not an error)."""
    try:
        _netns.remove(name)
        return True
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENODEV):
            return False
        raise


def inode(name: str) -> int | None:
    try:
        return os.stat(os.path.join(NETNS_DIR, name)).st_ino
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def entered(name: str) -> Iterator[None]:
    """Run the block with this thread inside namespace `name`.

    Sockets opened in the block stay in that namespace after it ends, which is
    how scapy sniffers and senders are bound to a lab host.
    """
    with _lock:
        _netns.pushns(name)
        try:
            yield
        finally:
            _netns.popns()


@dataclass
class CommandResult:
    """Output of a command run in a lab host."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> CommandResult:
        """Return self, or raise CommandFailed naming the command and its stderr."""
        if not self.ok:
            raise CommandFailed(
                f"command failed with exit code {self.returncode}: {' '.join(self.argv)}",
                cause=(self.stderr or self.stdout).strip()[-800:] or "no output",
                fix="read the message above; the command ran inside the lab host's namespace",
            )
        return self

    def __str__(self) -> str:
        return self.stdout


def nsenter_argv(name: str, argv: Sequence[str] | str) -> list[str]:
    """argv to run `argv` in namespace `name` (network only; /sys and bpffs stay visible)."""
    cmd = ["sh", "-c", argv] if isinstance(argv, str) else list(argv)
    return ["nsenter", f"--net={NETNS_DIR}/{name}", "--", *cmd]


def run(
    name: str, argv: Sequence[str] | str, *, timeout: float = 30, check: bool = False, input: str | None = None
) -> CommandResult:
    """Run a command in namespace `name`; a string goes through ``sh -c``."""
    full = nsenter_argv(name, argv)
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(
            f"command timed out after {timeout} s: {argv}",
            cause="it did not finish in time (a server waiting for input, or traffic that never arrives)",
            fix="pass a larger timeout=, or start long-running programs with host.popen()",
        ) from exc
    shown = [argv] if isinstance(argv, str) else list(argv)
    result = CommandResult(shown, proc.returncode, proc.stdout, proc.stderr)
    return result.check() if check else result
