"""The few bpf(2) commands the firewall's control plane needs, by map/program fd.

Why not bcc's table objects: the `packetlab firewall` CLI exits after each
command, so the next command must find the maps again by their pinned paths
in bpffs (BPF_OBJ_GET) — there is no bcc object to ask. Working on plain fds
makes the in-process notebook path and the CLI path one and the same code.
Keys and values are bytes, laid out by `layout.py`.
"""
from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..errors import MissingRequirement, PacketlabError

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_BPF = 280 if os.uname().machine == "aarch64" else 321
_SYS_MEMBARRIER = 283 if os.uname().machine == "aarch64" else 324

BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY = 1, 2, 3, 4
BPF_OBJ_PIN, BPF_OBJ_GET = 6, 7
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_MAP_UPDATE_BATCH = 26
BPF_ANY = 0

MAP_TYPES = {1: "hash", 2: "array", 6: "percpu_array", 9: "lru_hash", 11: "lpm_trie", 12: "array_of_maps"}


class _ElemAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("_pad", ctypes.c_uint32), ("key", ctypes.c_uint64),
                ("value", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _ObjAttr(ctypes.Structure):
    _fields_ = [("pathname", ctypes.c_uint64), ("bpf_fd", ctypes.c_uint32), ("file_flags", ctypes.c_uint32),
                ("path_fd", ctypes.c_int32), ("_pad", ctypes.c_uint32)]


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class _BatchAttr(ctypes.Structure):
    _fields_ = [("in_batch", ctypes.c_uint64), ("out_batch", ctypes.c_uint64), ("keys", ctypes.c_uint64),
                ("values", ctypes.c_uint64), ("count", ctypes.c_uint32), ("map_fd", ctypes.c_uint32),
                ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


class _MapInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * 16), ("_rest", ctypes.c_uint8 * 64)]


class _ProgInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32), ("tag", ctypes.c_uint8 * 8),
                ("jited_prog_len", ctypes.c_uint32), ("xlated_prog_len", ctypes.c_uint32),
                ("jited_prog_insns", ctypes.c_uint64), ("xlated_prog_insns", ctypes.c_uint64),
                ("load_time", ctypes.c_uint64), ("created_by_uid", ctypes.c_uint32),
                ("nr_map_ids", ctypes.c_uint32), ("map_ids", ctypes.c_uint64), ("name", ctypes.c_char * 16),
                ("_rest", ctypes.c_uint8 * 192)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    ret = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


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
    info = _MapInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return MapInfo(MAP_TYPES.get(info.type, str(info.type)), info.id, info.key_size, info.value_size,
                   info.max_entries, info.name.decode(errors="replace"))


def prog_info(fd: int) -> tuple[int, str]:
    """(program id, program name) of a loaded program."""
    info = _ProgInfo()
    attr = _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    _bpf(BPF_OBJ_GET_INFO_BY_FD, attr)
    return info.id, info.name.decode(errors="replace")


def obj_pin(fd: int, path: str) -> None:
    """Pin a map or program at `path` in bpffs, so it outlives this process."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    _bpf(BPF_OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(p), bpf_fd=fd))


def obj_get(path: str) -> int:
    """Open a pinned map or program; returns a new fd (close it with os.close)."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    return _bpf(BPF_OBJ_GET, _ObjAttr(pathname=ctypes.addressof(p)))


def possible_cpus() -> int:
    """Per-CPU maps hold one value per *possible* CPU (not just online ones)."""
    text = open("/sys/devices/system/cpu/possible").read().strip()
    count = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        count += int(hi or lo) - int(lo) + 1
    return count


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
        _bpf(BPF_MAP_UPDATE_ELEM, _ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=ctypes.addressof(v),
                                            flags=flags))

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
        size = self.info.key_size
        nxt = ctypes.create_string_buffer(size)
        cur = None
        while True:
            attr = _ElemAttr(map_fd=self.fd, key=ctypes.addressof(cur) if cur is not None else 0,
                             value=ctypes.addressof(nxt))
            try:
                _bpf(BPF_MAP_GET_NEXT_KEY, attr)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    return
                raise
            yield nxt.raw
            cur = ctypes.create_string_buffer(nxt.raw, size)

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
            attr = _BatchAttr(keys=ctypes.addressof(k) + done * self.info.key_size,
                              values=ctypes.addressof(v) + done * self.value_buffer_size,
                              count=count - done, map_fd=self.fd)
            try:
                _bpf(BPF_MAP_UPDATE_BATCH, attr)
            except OSError:
                if attr.count == 0:
                    raise
            if attr.count == 0:
                raise PacketlabError(f"batch update of map {self.name} made no progress",
                                     cause="the kernel accepted no element", fix="report this as a packetlab bug")
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
    if _libc.syscall(_SYS_MEMBARRIER, 1, 0) != 0:          # MEMBARRIER_CMD_GLOBAL
        err = ctypes.get_errno()
        raise MissingRequirement("cannot wait for an RCU grace period",
                                 cause=f"membarrier(MEMBARRIER_CMD_GLOBAL) failed: {os.strerror(err)} "
                                       "(the kernel has nohz_full CPUs or no CONFIG_MEMBARRIER)",
                                 fix="boot without nohz_full, or use a kernel with CONFIG_MEMBARRIER=y")
