"""What the kernel says about a BPF file descriptor in /proc/self/fdinfo: its kind and its id.

Programs and maps are held by file descriptors, but bpftool, tracepoints
(``xdp:xdp_exception`` carries ``prog_id``), ``ip link`` and the kernel's own
messages name them by *kernel id*. ``/proc/self/fdinfo/<fd>`` tells the id of
whatever BPF object an fd refers to — a program bcc loaded, one opened from a
pin, a map — and which kind of object it is, so asking for a program's id with
a map's fd is an error here rather than a wrong number (BPF_OBJ_GET_INFO_BY_FD
would answer a map fd with the map's info).
"""

from __future__ import annotations

import os
from typing import Any

from packetlab.errors import PacketlabError


def fdinfo(fd: int) -> dict[str, str]:
    """Every ``name: value`` line of /proc/self/fdinfo/<fd> (run_cnt, prog_id, map_type, ...)."""
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise PacketlabError(
            f"file descriptor {fd} is not open", fix="the program or map was closed; keep its object alive"
        ) from None
    out = {}
    for line in lines:
        key, _, value = line.partition(":")
        out[key.strip()] = value.strip()
    return out


def describe_fd(fd: int) -> str:
    """What an fd is, in words: "a BPF program", "a BPF map", "pipe:[123]", ..."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "not open"
    return {"anon_inode:bpf-prog": "a BPF program", "anon_inode:bpf-map": "a BPF map"}.get(target, target)


def program_fd(program: Any) -> int:
    """The program fd of an int, a LoadedProgram, or an XdpAttachment/TcAttachment (its .program)."""
    if isinstance(program, int):
        return program
    inner = getattr(program, "program", program)
    return inner.fd


def prog_id(program: Any) -> int:
    """The kernel id of a loaded program — given its fd, a LoadedProgram or an attachment.

    It is the id `bpftool prog`, `ip link` and tracepoints show.
    """
    fd = program_fd(program)
    return _id(fd, "prog_id", "a BPF program", "pass prog.fd of a loaded program (or the program object itself)")


def map_id(bpf_map: Any) -> int:
    """The kernel id of a map — given its fd, a bcc table (its .map_fd) or a BpfMap (its .fd)."""
    fd = bpf_map if isinstance(bpf_map, int) else getattr(bpf_map, "map_fd", None)
    if fd is None:
        fd = bpf_map.fd
    return _id(fd, "map_id", "a BPF map", "pass table.map_fd of a bcc map or BpfMap.fd")


def _id(fd: int, field: str, kind: str, fix: str) -> int:
    info = fdinfo(fd)
    if field not in info:
        raise PacketlabError(f"file descriptor {fd} is not {kind}", cause=f"it is {describe_fd(fd)}", fix=fix)
    return int(info[field])
