"""Kernel-measured run time of loaded programs (BPF_ENABLE_STATS / the sysctl)."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from packetlab.ebpf import syscall as bpfsys
from packetlab.ebpf.fdinfo import fdinfo
from packetlab.errors import PacketlabError

# ---- the kernel's run-time statistics -----------------------------------------------------
_BPF_STATS_RUN_TIME = 0  # enum bpf_stats_type
SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


class _EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32)]


def _enable_stats_fd() -> int:
    """BPF_ENABLE_STATS: stats stay on while the returned fd is open (-1 if unsupported)."""
    try:
        return bpfsys.bpf(bpfsys.BPF_ENABLE_STATS, _EnableStatsAttr(_BPF_STATS_RUN_TIME))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP):
            return -1
        raise PacketlabError(
            "cannot switch on BPF run-time statistics",
            cause=f"bpf(BPF_ENABLE_STATS) failed: {exc.strerror}",
            fix="run as root (CAP_SYS_ADMIN); `packetlab doctor` checks capabilities",
        ) from None


def _read_sysctl(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@contextlib.contextmanager
def bpf_stats(
    *, method: str = "auto", announce: Callable[[str], Any] | None = print, sysctl_path: str = SYSCTL
) -> Iterator[str]:
    """Turn on per-program run-time accounting (run_cnt, run_time_ns) for this block only.

    The accounting is global to the kernel and costs a little on every program
    run, which is why it is off by default. ``method="fd"`` (the default when
    the kernel has it, 5.8+) uses BPF_ENABLE_STATS: the kernel keeps stats on
    while our file descriptor is open, so they switch off when the block ends
    *or the process dies*, and the ``kernel.bpf_stats_enabled`` sysctl is never
    written. ``method="sysctl"`` writes 1 to the sysctl and restores the
    previous value in a ``finally``. Either way the block says what it did.
    Yields the method used.
    """
    say = announce or (lambda _msg: None)
    if method not in ("auto", "fd", "sysctl"):
        raise PacketlabError(f"unknown method {method!r}", fix="use 'auto', 'fd' or 'sysctl'")
    fd = _enable_stats_fd() if method in ("auto", "fd") else -1
    if fd < 0 and method == "fd":
        raise PacketlabError(
            "this kernel has no BPF_ENABLE_STATS", cause="it needs Linux 5.8 or newer", fix="use method='sysctl'"
        )
    if fd >= 0:
        sysctl_now = _read_sysctl(sysctl_path) if os.path.exists(sysctl_path) else "?"
        say(
            f"bpf stats: run-time accounting ON for this measurement only (BPF_ENABLE_STATS fd; "
            f"sysctl kernel.bpf_stats_enabled untouched, still {sysctl_now})"
        )
        try:
            yield "fd"
        finally:
            os.close(fd)
            say("bpf stats: fd closed, run-time accounting released")
        return
    previous = _read_sysctl(sysctl_path)
    _write_sysctl(sysctl_path, "1")
    say(f"bpf stats: kernel.bpf_stats_enabled set to 1 for this measurement (was {previous})")
    try:
        yield "sysctl"
    finally:
        _write_sysctl(sysctl_path, previous)
        say(f"bpf stats: kernel.bpf_stats_enabled restored to {previous}")


@dataclass(frozen=True)
class ProgStats:
    """One reading of a program's run counters (from /proc/self/fdinfo/<prog fd>)."""

    t: float
    run_cnt: int
    run_time_ns: int

    @classmethod
    def read(cls, prog_fd: int) -> ProgStats:
        fields = fdinfo(prog_fd)
        if "run_cnt" not in fields:
            raise PacketlabError(
                f"fd {prog_fd} is not a BPF program with run statistics",
                cause="its /proc/self/fdinfo entry has no run_cnt line",
                fix="pass the program's fd (attachment.program.fd)",
            )
        return cls(time.monotonic(), int(fields["run_cnt"]), int(fields["run_time_ns"]))

    def since(self, earlier: ProgStats) -> RunRate:
        return RunRate(self.t - earlier.t, self.run_cnt - earlier.run_cnt, self.run_time_ns - earlier.run_time_ns)


@dataclass(frozen=True)
class RunRate:
    """Program runs and run time between two `ProgStats` readings."""

    seconds: float
    runs: int
    run_time_ns: int

    @property
    def pps(self) -> float:
        return self.runs / self.seconds if self.seconds > 0 else 0.0

    @property
    def ns_per_run(self) -> float | None:
        return self.run_time_ns / self.runs if self.runs else None
