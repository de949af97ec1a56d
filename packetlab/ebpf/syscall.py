"""The bpf(2) commands packetlab needs, by file descriptor — without bcc.

Why a raw syscall layer at all: bcc hands out Python objects only to the
process that loaded the program. The `packetlab firewall` and `packetlab lb`
CLIs exit after each command, and the next command must find the maps and
programs again by their pinned paths in bpffs (BPF_OBJ_GET); it holds plain
fds and there is no bcc object to ask. Test runs (BPF_PROG_TEST_RUN) and
bpftool's JIT-image fallback need commands bcc does not wrap either. Working on
fds makes the in-process notebook path and the CLI path the same code.

This module is only the kernel interface: the `union bpf_attr` members and
`struct bpf_*_info` heads as ctypes structs (include/uapi/linux/bpf.h), the
command numbers, and `bpf()` raising OSError with the kernel's errno. What a
failure *means* is for the caller to say (a missing key is ENOENT, a missing
pin is an error worth a PacketlabError with a fix).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

_libc = ctypes.CDLL(None, use_errno=True)
_AARCH64 = os.uname().machine == "aarch64"
SYS_BPF = 280 if _AARCH64 else 321
SYS_MEMBARRIER = 283 if _AARCH64 else 324

# enum bpf_cmd
BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM, BPF_MAP_GET_NEXT_KEY = 1, 2, 3, 4
BPF_PROG_LOAD = 5
BPF_OBJ_PIN, BPF_OBJ_GET = 6, 7
BPF_PROG_TEST_RUN = 10
BPF_PROG_GET_FD_BY_ID = 13
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_RAW_TRACEPOINT_OPEN = 17
BPF_MAP_LOOKUP_BATCH, BPF_MAP_UPDATE_BATCH = 24, 26
BPF_ENABLE_STATS = 32
BPF_ANY = 0  # map update flag: create or replace


# enum bpf_prog_type / enum bpf_map_type (the ones packetlab loads or creates by hand)
BPF_PROG_TYPE_SOCKET_FILTER, BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_XDP = 1, 3, 6
BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_RINGBUF = 1, 2, 9, 27


# ---- members of union bpf_attr -------------------------------------------------------------
class MapCreateAttr(ctypes.Structure):
    """BPF_MAP_CREATE (the head; the kernel reads the rest as zero)."""

    _fields_ = [
        ("map_type", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
    ]


class ProgLoadAttr(ctypes.Structure):
    """BPF_PROG_LOAD, up to log_true_size (6.4+ writes the log size it needed there; older
    kernels only check that the bytes they do not know are zero)."""

    _fields_ = [
        ("prog_type", ctypes.c_uint32),
        ("insn_cnt", ctypes.c_uint32),
        ("insns", ctypes.c_uint64),
        ("license", ctypes.c_uint64),
        ("log_level", ctypes.c_uint32),
        ("log_size", ctypes.c_uint32),
        ("log_buf", ctypes.c_uint64),
        ("kern_version", ctypes.c_uint32),
        ("prog_flags", ctypes.c_uint32),
        ("prog_name", ctypes.c_char * 16),
        ("prog_ifindex", ctypes.c_uint32),
        ("expected_attach_type", ctypes.c_uint32),
        ("prog_btf_fd", ctypes.c_uint32),
        ("func_info_rec_size", ctypes.c_uint32),
        ("func_info", ctypes.c_uint64),
        ("func_info_cnt", ctypes.c_uint32),
        ("line_info_rec_size", ctypes.c_uint32),
        ("line_info", ctypes.c_uint64),
        ("line_info_cnt", ctypes.c_uint32),
        ("attach_btf_id", ctypes.c_uint32),
        ("attach_prog_fd", ctypes.c_uint32),
        ("core_relo_cnt", ctypes.c_uint32),
        ("fd_array", ctypes.c_uint64),
        ("core_relos", ctypes.c_uint64),
        ("core_relo_rec_size", ctypes.c_uint32),
        ("log_true_size", ctypes.c_uint32),
    ]


class ElemAttr(ctypes.Structure):
    """BPF_MAP_{LOOKUP,UPDATE,DELETE}_ELEM, BPF_MAP_GET_NEXT_KEY (value = next key)."""

    _fields_ = [
        ("map_fd", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("key", ctypes.c_uint64),
        ("value", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class ObjAttr(ctypes.Structure):
    """BPF_OBJ_PIN / BPF_OBJ_GET."""

    _fields_ = [
        ("pathname", ctypes.c_uint64),
        ("bpf_fd", ctypes.c_uint32),
        ("file_flags", ctypes.c_uint32),
        ("path_fd", ctypes.c_int32),
        ("pad", ctypes.c_uint32),
    ]


class InfoAttr(ctypes.Structure):
    """BPF_OBJ_GET_INFO_BY_FD."""

    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32), ("info", ctypes.c_uint64)]


class BatchAttr(ctypes.Structure):
    """BPF_MAP_*_BATCH; the kernel writes back how many elements it did in `count`."""

    _fields_ = [
        ("in_batch", ctypes.c_uint64),
        ("out_batch", ctypes.c_uint64),
        ("keys", ctypes.c_uint64),
        ("values", ctypes.c_uint64),
        ("count", ctypes.c_uint32),
        ("map_fd", ctypes.c_uint32),
        ("elem_flags", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
    ]


class GetIdAttr(ctypes.Structure):
    """BPF_PROG_GET_FD_BY_ID (and the other *_GET_FD_BY_ID commands)."""

    _fields_ = [("id", ctypes.c_uint32), ("next_id", ctypes.c_uint32), ("open_flags", ctypes.c_uint32)]


class TestRunAttr(ctypes.Structure):
    """BPF_PROG_TEST_RUN (the `test` member)."""

    _fields_ = [
        ("prog_fd", ctypes.c_uint32),
        ("retval", ctypes.c_uint32),
        ("data_size_in", ctypes.c_uint32),
        ("data_size_out", ctypes.c_uint32),
        ("data_in", ctypes.c_uint64),
        ("data_out", ctypes.c_uint64),
        ("repeat", ctypes.c_uint32),
        ("duration", ctypes.c_uint32),
        ("ctx_size_in", ctypes.c_uint32),
        ("ctx_size_out", ctypes.c_uint32),
        ("ctx_in", ctypes.c_uint64),
        ("ctx_out", ctypes.c_uint64),
        ("flags", ctypes.c_uint32),
        ("cpu", ctypes.c_uint32),
        ("batch_size", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
    ]

    __test__ = False  # not a pytest test class


# ---- what BPF_OBJ_GET_INFO_BY_FD fills in --------------------------------------------------
class MapInfo(ctypes.Structure):
    """The start of struct bpf_map_info (older kernels fill less, newer ones have more after it)."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("key_size", ctypes.c_uint32),
        ("value_size", ctypes.c_uint32),
        ("max_entries", ctypes.c_uint32),
        ("map_flags", ctypes.c_uint32),
        ("name", ctypes.c_char * 16),
        ("ifindex", ctypes.c_uint32),
        ("btf_vmlinux_value_type_id", ctypes.c_uint32),
        ("netns_dev", ctypes.c_uint64),
        ("netns_ino", ctypes.c_uint64),
        ("btf_id", ctypes.c_uint32),
        ("btf_key_type_id", ctypes.c_uint32),
        ("btf_value_type_id", ctypes.c_uint32),
        ("pad", ctypes.c_uint32),
        ("map_extra", ctypes.c_uint64),
    ]


class ProgInfo(ctypes.Structure):
    """The start of struct bpf_prog_info, up to the name, plus zeroed room the kernel may fill.

    To fetch an array (the JIT image, the map ids), set its length and pointer
    before the call; with both zero the kernel copies only the scalars.
    """

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("id", ctypes.c_uint32),
        ("tag", ctypes.c_uint8 * 8),
        ("jited_prog_len", ctypes.c_uint32),
        ("xlated_prog_len", ctypes.c_uint32),
        ("jited_prog_insns", ctypes.c_uint64),
        ("xlated_prog_insns", ctypes.c_uint64),
        ("load_time", ctypes.c_uint64),
        ("created_by_uid", ctypes.c_uint32),
        ("nr_map_ids", ctypes.c_uint32),
        ("map_ids", ctypes.c_uint64),
        ("name", ctypes.c_char * 16),
        ("_rest", ctypes.c_uint8 * 192),
    ]


# ---- the syscalls --------------------------------------------------------------------------
def bpf(cmd: int, attr: ctypes.Structure) -> int:
    """bpf(cmd, &attr, sizeof attr); returns the result (an fd for some commands) or raises OSError(errno)."""
    ret = _libc.syscall(SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ret


_Info = TypeVar("_Info", bound=ctypes.Structure)


def obj_info(fd: int, info: _Info) -> _Info:
    """Fill `info` (a MapInfo, ProgInfo, ...) for the object behind `fd` and return it."""
    bpf(BPF_OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)))
    return info


def map_info(fd: int) -> MapInfo:
    """What the kernel says about a map: type, id, key/value sizes, capacity, name."""
    return obj_info(fd, MapInfo())


def prog_info(fd: int) -> ProgInfo:
    """What the kernel says about a program: type, id, tag, name, code sizes."""
    return obj_info(fd, ProgInfo())


def map_create(map_type: int, key_size: int, value_size: int, max_entries: int, flags: int = 0) -> int:
    """A new, unnamed map; returns its fd (close it with os.close)."""
    return bpf(BPF_MAP_CREATE, MapCreateAttr(map_type, key_size, value_size, max_entries, flags))


def prog_load(
    prog_type: int,
    insns: bytes,
    *,
    license: str = "GPL",
    name: str = "",
    log: ctypes.Array | None = None,
    log_level: int = 1,
    kern_version: int = 0,
    expected_attach_type: int = 0,
) -> int:
    """BPF_PROG_LOAD of raw bytecode (8 bytes per instruction); returns the program fd.

    With `log` (a ctypes char buffer) the verifier writes its log there. On
    failure OSError carries the kernel's errno; ENOSPC means the log did not fit
    (see `load_logged`).
    """
    if len(insns) % 8:
        raise ValueError(f"bytecode must be a multiple of 8 bytes, got {len(insns)}")
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = ProgLoadAttr(
        prog_type=prog_type,
        insn_cnt=len(insns) // 8,
        insns=ctypes.addressof(code),
        license=ctypes.addressof(lic),
        kern_version=kern_version,
        prog_name=name.encode()[:15],
        expected_attach_type=expected_attach_type,
    )
    if log is not None:
        attr.log_level, attr.log_size, attr.log_buf = log_level, len(log), ctypes.addressof(log)
    return bpf(BPF_PROG_LOAD, attr)


LOG_START, LOG_LIMIT = 1 << 20, 1 << 28


@dataclass
class LoggedLoad:
    """One program load made with a verifier log buffer."""

    fd: int | None  # the program, if the kernel accepted it (the caller closes it)
    errno: int  # 0 when accepted, else the kernel's reason (E2BIG, EACCES, EINVAL, ...)
    log: str  # the verifier's whole log (its tail if it outgrew LOG_LIMIT)
    truncated: bool = False


def load_logged(load: Callable[[ctypes.Array], int], *, start: int = LOG_START, limit: int = LOG_LIMIT) -> LoggedLoad:
    """Run `load(log_buffer)` (a program load that writes the verifier log into the buffer)
    until the log fits: on ENOSPC (the log outgrew the buffer; 6.1 keeps the log's head, 6.4+
    its tail) the buffer doubles, up to `limit`. A failed load's log is the verifier's full
    account, which callers map back to source lines; a complexity failure's log runs to megabytes.
    """
    size = start
    while True:
        buf = ctypes.create_string_buffer(size)
        try:
            fd = load(buf)
        except OSError as exc:
            text = buf.value.decode(errors="replace")
            full = len(buf.value) >= size - 1  # a full buffer is a cut log whatever errno says (a C
            if exc.errno != errno.ENOSPC and not full:  # loader may print, and clobber errno, before returning)
                return LoggedLoad(None, exc.errno or 0, text)
            if size >= limit:
                return LoggedLoad(None, exc.errno or 0, text, truncated=True)
            size = min(limit, size * 2)
            continue
        return LoggedLoad(fd, 0, buf.value.decode(errors="replace"))


def obj_pin(fd: int, path: str) -> None:
    """Pin a map, program or link at `path` in bpffs, so it outlives this process."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    bpf(BPF_OBJ_PIN, ObjAttr(pathname=ctypes.addressof(p), bpf_fd=fd))


def obj_get(path: str) -> int:
    """Open a pinned map, program or link; returns a new fd (close it with os.close)."""
    p = ctypes.create_string_buffer(os.fsencode(path))
    return bpf(BPF_OBJ_GET, ObjAttr(pathname=ctypes.addressof(p)))


def map_keys(fd: int, key_size: int) -> Iterator[bytes]:
    """Every key of a map, as raw bytes, by the BPF_MAP_GET_NEXT_KEY walk (no key: the first one).

    The walk restarts from the first key if the current one was deleted
    meanwhile, as the kernel documents for hash maps."""
    nxt = ctypes.create_string_buffer(key_size)
    cur = None
    while True:
        attr = ElemAttr(map_fd=fd, key=ctypes.addressof(cur) if cur is not None else 0, value=ctypes.addressof(nxt))
        try:
            bpf(BPF_MAP_GET_NEXT_KEY, attr)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return
            raise
        yield nxt.raw
        cur = ctypes.create_string_buffer(nxt.raw, key_size)


@lru_cache(maxsize=1)
def possible_cpus() -> int:
    """Number of *possible* CPUs (not just online ones): per-CPU map values hold one slot per possible CPU."""
    with open("/sys/devices/system/cpu/possible") as f:
        text = f.read().strip()
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n += int(hi or lo) - int(lo) + 1
    return n


MEMBARRIER_CMD_GLOBAL = 1


def membarrier(cmd: int = MEMBARRIER_CMD_GLOBAL, flags: int = 0) -> None:
    """membarrier(2); raises OSError(errno). MEMBARRIER_CMD_GLOBAL waits for an RCU grace
    period (the kernel calls synchronize_rcu()), which is how a control plane knows every
    XDP run that could still see an old map entry has finished."""
    if _libc.syscall(SYS_MEMBARRIER, cmd, flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
