"""The firewall's control plane on BPF maps by fd: bytes in, bytes out.

Why not bcc's table objects: the `packetlab firewall` CLI exits after each
command, so the next command must find the maps again by their pinned paths
in bpffs (BPF_OBJ_GET) — there is no bcc object to ask. Working on plain fds
makes the in-process notebook path and the CLI path one and the same code.
Keys and values are bytes, laid out by `layout.py`. The syscalls themselves
are `packetlab.ebpf.syscall`, shared with the load balancer and the toolkit.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from packetlab.ebpf import syscall as _sys
from packetlab.ebpf.syscall import (
    BPF_ANY,
    BPF_MAP_DELETE_ELEM,
    BPF_MAP_LOOKUP_ELEM,
    BPF_MAP_UPDATE_BATCH,
    BPF_MAP_UPDATE_ELEM,
    obj_pin,
    possible_cpus,
)
from packetlab.ebpf.syscall import BatchAttr as _BatchAttr
from packetlab.ebpf.syscall import ElemAttr as _ElemAttr
from packetlab.ebpf.syscall import bpf as _bpf
from packetlab.errors import MissingRequirement, PacketlabError

MAP_TYPES = {1: "hash", 2: "array", 6: "percpu_array", 9: "lru_hash", 11: "lpm_trie", 12: "array_of_maps"}


@dataclass
class MapInfo:
    """What the kernel says about a map (used to check layouts and capacities)."""

    type: str
    id: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


def map_info(fd: int) -> MapInfo:
    """The kernel's struct bpf_map_info, with the map type as a name ("percpu_array")."""
    info = _sys.map_info(fd)
    return MapInfo(
        MAP_TYPES.get(info.type, str(info.type)),
        info.id,
        info.key_size,
        info.value_size,
        info.max_entries,
        info.name.decode(errors="replace"),
    )


def prog_info(fd: int) -> tuple[int, str]:
    """(program id, program name) of a loaded program."""
    info = _sys.prog_info(fd)
    return info.id, info.name.decode(errors="replace")


class Map:
    """One BPF map by fd: bytes in, bytes out."""

    def __init__(self, fd: int, name: str, *, owned: bool = False) -> None:
        self.fd, self.name, self.owned = fd, name, owned
        self.info = map_info(fd)
        self.percpu = self.info.type.startswith("percpu")
        self.ncpus = possible_cpus() if self.percpu else 1
        self.stride = (self.info.value_size + 7) // 8 * 8 if self.percpu else self.info.value_size

    @property
    def value_buffer_size(self) -> int:
        return self.stride * self.ncpus

    def lookup(self, key: bytes) -> bytes | None:
        """The value for `key` (all CPUs' values concatenated for per-CPU maps), or None."""
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(self.value_buffer_size)
        try:
            _bpf(BPF_MAP_LOOKUP_ELEM, _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=ctypes.addressof(v)))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return v.raw

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        k = ctypes.create_string_buffer(key, len(key))
        v = ctypes.create_string_buffer(value, len(value))
        _bpf(
            BPF_MAP_UPDATE_ELEM,
            _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=ctypes.addressof(v), flags=flags),
        )

    def delete(self, key: bytes) -> bool:
        k = ctypes.create_string_buffer(key, len(key))
        try:
            _bpf(BPF_MAP_DELETE_ELEM, _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k)))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return False
            raise
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key (BPF_MAP_GET_NEXT_KEY walk)."""
        yield from _sys.map_keys(self.fd, self.info.key_size)

    def update_batch(self, keys: Sequence[bytes] | bytes, values: Sequence[bytes] | bytes, count: int) -> None:
        """Write `count` entries in one BPF_MAP_UPDATE_BATCH call (one syscall, not `count`)."""
        if count == 0:
            return
        kbuf = keys if isinstance(keys, bytes) else b"".join(keys)
        vbuf = values if isinstance(values, bytes) else b"".join(values)
        k = ctypes.create_string_buffer(kbuf, len(kbuf))
        v = ctypes.create_string_buffer(vbuf, len(vbuf))
        done = 0
        while done < count:
            attr = _BatchAttr(
                keys=ctypes.addressof(k) + done * self.info.key_size,
                values=ctypes.addressof(v) + done * self.value_buffer_size,
                count=count - done,
                map_fd=self.fd,
            )
            try:
                _bpf(BPF_MAP_UPDATE_BATCH, attr)
            except OSError:
                if attr.count == 0:
                    raise
            if attr.count == 0:
                raise PacketlabError(
                    f"batch update of map {self.name} made no progress",
                    cause="the kernel accepted no element",
                    fix="report this as a packetlab bug",
                )
            done += attr.count

    def pin(self, path: str) -> None:
        obj_pin(self.fd, path)

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def synchronize_rcu() -> None:
    """Wait for an RCU grace period: every XDP program run that started before
    this call has finished when it returns (membarrier(MEMBARRIER_CMD_GLOBAL)
    calls synchronize_rcu() in the kernel; the kernel's BPF selftests use the
    same call for the same purpose)."""
    try:
        _sys.membarrier(_sys.MEMBARRIER_CMD_GLOBAL)
    except OSError as exc:
        raise MissingRequirement(
            "cannot wait for an RCU grace period",
            cause=f"membarrier(MEMBARRIER_CMD_GLOBAL) failed: {os.strerror(exc.errno)} "
            "(the kernel has nohz_full CPUs or no CONFIG_MEMBARRIER)",
            fix="boot without nohz_full, or use a kernel with CONFIG_MEMBARRIER=y",
        ) from None
