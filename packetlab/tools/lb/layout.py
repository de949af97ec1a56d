"""BPF maps by file descriptor: lookup, update, iterate, pin — without bcc.

Why not bcc's tables: ``packetlab lb apply`` exits after installing the load
balancer, and ``status``/``remove`` run in new processes that open the maps
pinned in bpffs. Those processes have no bcc object, only fds, so every map
access goes through the bpf(2) syscall (`packetlab.ebpf.syscall`) — one code path
for both cases.

Each map's key and value have a ctypes twin of the C struct in
``bpf/09-lb.c``; `BpfMap` checks their sizes against what the kernel reports
for the map (BPF_OBJ_GET_INFO_BY_FD) and refuses a mismatch, naming both.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Sequence
from typing import Any

from packetlab.ebpf.syscall import (
    BPF_ANY,
    BPF_MAP_DELETE_ELEM,
    BPF_MAP_LOOKUP_BATCH,
    BPF_MAP_LOOKUP_ELEM,
    BPF_MAP_UPDATE_BATCH,
    BPF_MAP_UPDATE_ELEM,
    bpf,
    map_info,
    map_keys,
    obj_get,
    obj_pin,
    possible_cpus,
)
from packetlab.ebpf.syscall import BatchAttr as _BatchAttr
from packetlab.ebpf.syscall import ElemAttr as _ElemAttr
from packetlab.errors import PacketlabError

PERCPU_TYPES = {5, 6, 10}  # PERCPU_HASH, PERCPU_ARRAY, LRU_PERCPU_HASH


# ---- ctypes twins of the structs in bpf/09-lb.c --------------------------------------------
class VipKey(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class Vip(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("ring_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class BackendEntry(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("saddr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("ifindex", ctypes.c_uint32),
        ("dmac", ctypes.c_uint8 * 6),
        ("smac", ctypes.c_uint8 * 6),
    ]


class Flow(ctypes.Structure):
    _fields_ = [
        ("src", ctypes.c_uint32),
        ("dst", ctypes.c_uint32),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
    ]


class Conn(ctypes.Structure):
    _fields_ = [
        ("created_ns", ctypes.c_uint64),
        ("last_jiffies", ctypes.c_uint64),
        ("packets", ctypes.c_uint64),
        ("reply_packets", ctypes.c_uint64),
        ("backend", ctypes.c_uint32),
        ("vip_index", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("state", ctypes.c_uint8),
        ("tcp_flags", ctypes.c_uint8),
        ("client_mac", ctypes.c_uint8 * 6),
        ("lb_mac", ctypes.c_uint8 * 6),
        ("pad", ctypes.c_uint16),
    ]


class Counters(ctypes.Structure):
    _fields_ = [
        ("packets", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("conns", ctypes.c_uint64),
        ("reply_packets", ctypes.c_uint64),
        ("reply_bytes", ctypes.c_uint64),
    ]


class Settings(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


U32 = ctypes.c_uint32
U64 = ctypes.c_uint64

# map name -> (key type, value type) for bpf/09-lb.c
LB_MAPS: dict[str, tuple[type, type]] = {
    "vips": (VipKey, Vip),
    "vip_meta": (U32, Vip),
    "addr_filter": (U32, U32),
    "vip_addrs": (U32, U32),
    "ring": (U32, U32),
    "backends": (U32, BackendEntry),
    "conns": (Flow, Conn),
    "nat_rev": (Flow, Flow),
    "stats": (U32, Counters),
    "events": (U32, U64),
    "settings": (U32, Settings),
    "tx_ports": (U32, U32),
}


class BpfMap:
    """One map, by fd, with typed keys and values (checked against the kernel's sizes)."""

    def __init__(self, fd: int, name: str, key_type: type, value_type: type, *, owned: bool = False) -> None:
        self.fd, self.name, self.key_type, self.value_type, self.owned = fd, name, key_type, value_type, owned
        info = map_info(fd)
        self.map_type, self.max_entries = info.type, info.max_entries
        self.percpu = info.type in PERCPU_TYPES
        ks, vs = ctypes.sizeof(key_type), ctypes.sizeof(value_type)
        if (info.key_size, info.value_size) != (ks, vs):
            raise PacketlabError(
                f"map {name!r}: the kernel and Python disagree on its layout",
                cause=f"kernel map: key {info.key_size} B, value {info.value_size} B; "
                f"packetlab/tools/lb/maps.py: key {key_type.__name__} {ks} B, "
                f"value {value_type.__name__} {vs} B",
                fix="make the ctypes struct in packetlab/tools/lb/maps.py match the C struct in bpf/09-lb.c",
            )
        self._vsize = vs
        self._stride = (vs + 7) // 8 * 8
        self._ncpu = possible_cpus() if self.percpu else 1

    @classmethod
    def pinned(cls, path: str, name: str, key_type: type, value_type: type) -> BpfMap:
        return cls(obj_get(path), name, key_type, value_type, owned=True)

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def pin(self, path: str) -> None:
        obj_pin(self.fd, path)

    # -- elements --
    def _key(self, key: Any) -> ctypes.Structure:
        return key if isinstance(key, self.key_type) else self.key_type(key)

    def _value_buf(self) -> ctypes.Array:
        return ctypes.create_string_buffer(self._stride * self._ncpu)

    def _decode(self, buf: ctypes.Array) -> Any:
        if not self.percpu:
            return self.value_type.from_buffer_copy(buf.raw[: self._vsize])
        return [
            self.value_type.from_buffer_copy(buf.raw[i * self._stride : i * self._stride + self._vsize])
            for i in range(self._ncpu)
        ]

    def lookup(self, key: Any) -> Any:
        """The value (a list of per-CPU values for per-CPU maps), or None if absent."""
        k = self._key(key)
        buf = self._value_buf()
        try:
            bpf(BPF_MAP_LOOKUP_ELEM, _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=ctypes.addressof(buf)))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return self._decode(buf)

    def update(self, key: Any, value: Any, flags: int = BPF_ANY) -> None:
        k = self._key(key)
        if self.percpu:
            values = value if isinstance(value, list | tuple) else [value] * self._ncpu
            buf = ctypes.create_string_buffer(self._stride * self._ncpu)
            for i, v in enumerate(values):
                v = v if isinstance(v, self.value_type) else self.value_type(v)
                ctypes.memmove(ctypes.addressof(buf) + i * self._stride, ctypes.addressof(v), self._vsize)
            vp = ctypes.addressof(buf)
        else:
            v = value if isinstance(value, self.value_type) else self.value_type(value)
            vp = ctypes.addressof(v)
        bpf(BPF_MAP_UPDATE_ELEM, _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=vp, flags=flags))

    def delete(self, key: Any) -> bool:
        k = self._key(key)
        try:
            bpf(BPF_MAP_DELETE_ELEM, _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k)))
            return True
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.EINVAL):  # EINVAL: arrays cannot delete
                return False
            raise

    def keys(self) -> Iterator[Any]:
        """Every key (for hash maps; arrays yield 0..max_entries-1)."""
        for raw in map_keys(self.fd, ctypes.sizeof(self.key_type)):
            yield self.key_type.from_buffer_copy(raw)

    def items(self) -> Iterator[tuple[Any, Any]]:
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def update_batch(self, keys: Sequence[int], values: Sequence[int]) -> None:
        """Write many u32->u32 elements in one syscall (the Maglev table); falls back to one by one."""
        n = len(keys)
        if n == 0:
            return
        karr = (self.key_type * n)(*keys)
        varr = (self.value_type * n)(*values)
        try:
            attr = _BatchAttr(keys=ctypes.addressof(karr), values=ctypes.addressof(varr), count=n, map_fd=self.fd)
            bpf(BPF_MAP_UPDATE_BATCH, attr)
            if attr.count == n:
                return
            start = attr.count
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOTSUP, 524):
                raise
            start = 0
        for i in range(start, n):
            self.update(keys[i], values[i])

    def lookup_range(self, start: int, count: int) -> list:
        """Values of array elements start..start+count-1 (one batch syscall; element by element if refused)."""
        keys = (self.key_type * count)()
        values = (self.value_type * count)()
        prev = self.key_type(start - 1) if start > 0 else None
        token = self.key_type()
        attr = _BatchAttr(
            in_batch=ctypes.addressof(prev) if prev is not None else 0,
            out_batch=ctypes.addressof(token),
            keys=ctypes.addressof(keys),
            values=ctypes.addressof(values),
            count=count,
            map_fd=self.fd,
        )
        try:
            bpf(BPF_MAP_LOOKUP_BATCH, attr)
        except OSError as exc:
            if exc.errno != errno.ENOENT:  # ENOENT: reached the end of the map
                return [self.lookup(start + i) for i in range(count)]
        got = list(values[: attr.count])
        if attr.count < count or (got and keys[0] != start):
            return [self.lookup(start + i) for i in range(count)]
        return got

    def clear(self) -> int:
        """Delete every element of a hash map; returns how many."""
        n = 0
        for k in list(self.keys()):
            n += self.delete(k)
        return n


def mac_bytes(mac: str | None) -> bytes:
    return bytes.fromhex(mac.replace(":", "")) if mac else b"\0" * 6


def mac_str(raw: Any) -> str:
    return ":".join(f"{b:02x}" for b in bytes(raw))
