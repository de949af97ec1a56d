"""BPF maps by file descriptor, with typed keys and values — the one map wrapper of packetlab.

Why a wrapper on fds and not bcc's tables: the `packetlab firewall` and
`packetlab lb` CLIs exit after each command, and the next command finds the
maps again by their pins in bpffs (BPF_OBJ_GET); it holds plain fds and has no
bcc object to ask. Working on fds makes the in-process notebook path (a map fd
taken from bcc, ``BpfMap(program["stats"].map_fd, ...)``) and the CLI path
(``BpfMap.open_pinned(path, ...)``) one and the same code.

A `BpfMap` is a *typed view*: its key and value are each described by one of

* a ctypes type — ``ctypes.c_uint32``, a ``ctypes.Structure`` twin of the C
  struct; scalars come back as Python ints, structs as struct instances;
* a ``struct.Struct`` (or its format string) — values come back as tuples, or
  as the single item when the format has one field (``"<I"`` → int);
* an int — raw bytes of that many bytes; ``None`` — raw bytes of whatever size
  the kernel reports.

The sizes are checked against the key and value sizes the kernel reports for
the map (BPF_OBJ_GET_INFO_BY_FD) when the view is made, and a mismatch is
refused with both sizes named — a C struct changed on one side only fails
loudly instead of corrupting entries. Any key or value may also be passed as
``bytes`` of exactly the right size (already packed).

Per-CPU maps (PERCPU_ARRAY, PERCPU_HASH, LRU_PERCPU_HASH) hold one value per
*possible* CPU: `lookup` returns a list of them, `update` takes such a list or
one value for every CPU, and `percpu_sum` adds them up — for the lists bcc
returns for its per-CPU tables too.

The syscalls themselves are `packetlab.ebpf.syscall`.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from packetlab.ebpf import syscall as _sys
from packetlab.ebpf.fdinfo import describe_fd
from packetlab.ebpf.syscall import BatchAttr, ElemAttr, MapInfo, bpf
from packetlab.errors import MissingRequirement, PacketlabError

# enum bpf_map_type (include/uapi/linux/bpf.h), by value
MAP_TYPE_NAMES: tuple[str, ...] = (
    "unspec",
    "hash",
    "array",
    "prog_array",
    "perf_event_array",
    "percpu_hash",
    "percpu_array",
    "stack_trace",
    "cgroup_array",
    "lru_hash",
    "lru_percpu_hash",
    "lpm_trie",
    "array_of_maps",
    "hash_of_maps",
    "devmap",
    "sockmap",
    "cpumap",
    "xskmap",
    "sockhash",
    "cgroup_storage",
    "reuseport_sockarray",
    "percpu_cgroup_storage",
    "queue",
    "stack",
    "sk_storage",
    "devmap_hash",
    "struct_ops",
    "ringbuf",
    "inode_storage",
    "task_storage",
    "bloom_filter",
    "user_ringbuf",
    "cgrp_storage",
    "arena",
)
PERCPU_TYPES = frozenset({5, 6, 10, 21})  # the types whose values hold one slot per possible CPU
ARRAY_TYPES = frozenset({2, 6})  # array-like: every index exists, elements cannot be deleted
BPF_F_NO_PREALLOC = 1  # map flag: hash maps allocate on insert (LPM tries require it)

_BATCH_UNSUPPORTED = (errno.EINVAL, errno.EOPNOTSUPP, 524)  # 524: the kernel's ENOTSUPP


def map_type_name(map_type: int) -> str:
    """ "percpu_array" for 6: the name bpftool prints for a map type number."""
    return MAP_TYPE_NAMES[map_type] if 0 <= map_type < len(MAP_TYPE_NAMES) else f"type {map_type}"


def map_type_number(name: str | int) -> int:
    """The enum bpf_map_type value of "hash", "lru_hash", ... (a number passes through)."""
    if isinstance(name, int):
        return name
    try:
        return MAP_TYPE_NAMES.index(name)
    except ValueError:
        raise PacketlabError(f"unknown map type {name!r}", fix=f"use one of: {', '.join(MAP_TYPE_NAMES[1:])}") from None


# ---- codecs: how one key or value becomes bytes and back -----------------------------------
class _Codec:
    """Raw bytes of a fixed size (a map seen without a layout); the typed codecs below add `pack`."""

    def __init__(self, size: int) -> None:
        self.size = size

    @property
    def label(self) -> str:
        return "bytes"

    def encode(self, obj: Any) -> bytes:
        """`obj` as the map's bytes: bytes of the right size as they are, anything else packed."""
        if not isinstance(obj, bytes | bytearray | memoryview):
            return self.pack(obj)
        raw = bytes(obj)
        if len(raw) != self.size:
            raise PacketlabError(
                f"{len(raw)} bytes given where the map needs {self.size}",
                fix=f"pass exactly {self.size} bytes (or open the map with a key/value type)",
            )
        return raw

    def pack(self, obj: Any) -> bytes:
        raise PacketlabError(
            f"{obj!r} given where the map takes raw bytes",
            fix="pass bytes, or open the map with a key/value type (ctypes or struct) to pass values",
        )

    def decode(self, raw: bytes) -> Any:
        return raw


class _CtypesCodec(_Codec):
    def __init__(self, ctype: Any) -> None:
        super().__init__(ctypes.sizeof(ctype))
        self.ctype = ctype
        self.scalar = issubclass(ctype, ctypes._SimpleCData)

    @property
    def label(self) -> str:
        return f"{self.ctype.__module__}.{self.ctype.__qualname__}"

    def pack(self, obj: Any) -> bytes:
        return bytes(obj if isinstance(obj, self.ctype) else self.ctype(obj))

    def decode(self, raw: bytes) -> Any:
        value = self.ctype.from_buffer_copy(raw)
        return value.value if self.scalar else value


class _StructCodec(_Codec):
    def __init__(self, fmt: struct.Struct) -> None:
        super().__init__(fmt.size)
        self.fmt = fmt
        self.single = len(fmt.unpack(bytes(fmt.size))) == 1

    @property
    def label(self) -> str:
        return f"struct {self.fmt.format!r}"

    def pack(self, obj: Any) -> bytes:
        return self.fmt.pack(obj) if self.single else self.fmt.pack(*obj)

    def decode(self, raw: bytes) -> Any:
        items = self.fmt.unpack(raw)
        return items[0] if self.single else items


def _codec(spec: Any, kernel_size: int) -> _Codec:
    if spec is None:
        return _Codec(kernel_size)
    if isinstance(spec, int):
        return _Codec(spec)
    if isinstance(spec, str):
        return _StructCodec(struct.Struct(spec))
    if isinstance(spec, struct.Struct):
        return _StructCodec(spec)
    if isinstance(spec, type) and issubclass(
        spec, ctypes._SimpleCData | ctypes.Structure | ctypes.Union | ctypes.Array
    ):
        return _CtypesCodec(spec)
    raise PacketlabError(
        f"cannot describe a map key or value with {spec!r}",
        fix="use a ctypes type (c_uint32, a Structure), a struct.Struct or format string, a size in bytes, or None",
    )


def _size_of(spec: Any) -> int:
    """The size a key/value description stands for (to create a map from it)."""
    if spec is None:
        raise PacketlabError("a new map needs key and value types", fix="pass key=... and value=... (or sizes)")
    return _codec(spec, 0).size


# ---- the map ---------------------------------------------------------------------------------
class BpfMap:
    """One BPF map, by fd, as a typed view (see the module docstring).

    >>> m = BpfMap.create("hash", key=ctypes.c_uint32, value="<QQ", max_entries=64)
    >>> m.update(7, (1, 100)); m.lookup(7)
    (1, 100)
    """

    def __init__(self, fd: int, name: str = "", key: Any = None, value: Any = None, *, owned: bool = False) -> None:
        """A view of the map behind `fd`. With ``owned=True`` `close` closes the fd."""
        self.fd, self.owned = fd, owned
        if describe_fd(fd) != "a BPF map":  # the info call would answer a program fd with program info
            raise PacketlabError(
                f"file descriptor {fd} is not a BPF map",
                cause=f"it is {describe_fd(fd)}",
                fix="pass table.map_fd of a bcc map, or open a pinned map with BpfMap.open_pinned",
            )
        self.info: MapInfo = _sys.map_info(fd)
        self.name = name or self.info.name.decode(errors="replace")
        self.key_codec = _codec(key, self.info.key_size)
        self.value_codec = _codec(value, self.info.value_size)
        want = (self.key_codec.size, self.value_codec.size)
        if want != (self.info.key_size, self.info.value_size):
            raise PacketlabError(
                f"map {self.name!r}: the kernel and Python disagree on its layout",
                cause=f"the kernel's map has key {self.info.key_size} B, value {self.info.value_size} B; "
                f"Python expects key {want[0]} B ({self.key_codec.label}), "
                f"value {want[1]} B ({self.value_codec.label})",
                fix="change the C struct and its Python twin together (sizes include padding)",
            )
        self.percpu = self.info.type in PERCPU_TYPES
        self.ncpus = _sys.possible_cpus() if self.percpu else 1
        # the kernel lays out per-CPU values 8-byte aligned, one slot per possible CPU
        self.stride = (self.info.value_size + 7) // 8 * 8 if self.percpu else self.info.value_size

    # ---- making and finding maps -------------------------------------------------------------
    @classmethod
    def create(
        cls, map_type: str | int, key: Any, value: Any, max_entries: int, *, flags: int = 0, name: str = ""
    ) -> BpfMap:
        """A new map owned by this view (it disappears when closed, unless pinned or used by a program)."""
        kind = map_type_number(map_type)
        if kind == 11:  # lpm_trie
            flags |= BPF_F_NO_PREALLOC
        try:
            fd = _sys.map_create(kind, _size_of(key), _size_of(value), max_entries, flags)
        except OSError as exc:
            raise PacketlabError(
                f"cannot create a {map_type_name(kind)} map",
                cause=f"BPF_MAP_CREATE failed: {exc.strerror}",
                fix="run as root (CAP_BPF); array keys must be 4 bytes; `packetlab doctor` checks the kernel",
            ) from None
        return cls(fd, name or map_type_name(kind), key, value, owned=True)

    @classmethod
    def open_pinned(cls, path: str | os.PathLike, name: str = "", key: Any = None, value: Any = None) -> BpfMap:
        """The map pinned at `path` in bpffs (raises OSError if there is none, as the callers decide what it means)."""
        fd = _sys.obj_get(os.fspath(path))
        try:
            return cls(fd, name or os.path.basename(path), key, value, owned=True)
        except BaseException:
            os.close(fd)
            raise

    def pin(self, path: str | os.PathLike) -> None:
        """Pin the map at `path` in bpffs, so it outlives this process."""
        _sys.obj_pin(self.fd, os.fspath(path))

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            os.close(self.fd)
        self.fd = -1

    def __enter__(self) -> BpfMap:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<BpfMap {self.name} {self.type_name} id {self.info.id}: key {self.info.key_size} B, "
            f"value {self.info.value_size} B, {self.max_entries} entries>"
        )

    @property
    def type_name(self) -> str:
        return map_type_name(self.info.type)

    @property
    def max_entries(self) -> int:
        return self.info.max_entries

    @property
    def value_buffer_size(self) -> int:
        """Bytes one value takes in a syscall (all CPUs' slots for a per-CPU map)."""
        return self.stride * self.ncpus

    # ---- encoding -------------------------------------------------------------------------------
    def _value_bytes(self, value: Any) -> bytes:
        if not self.percpu:
            return self.value_codec.encode(value)
        if isinstance(value, bytes | bytearray) and len(value) == self.value_buffer_size:
            return bytes(value)
        values = value if isinstance(value, list) else [value] * self.ncpus
        if len(values) != self.ncpus:
            raise PacketlabError(
                f"map {self.name!r} is per-CPU: {len(values)} values given for {self.ncpus} possible CPUs",
                fix="pass one value (written to every CPU) or a list with one value per possible CPU",
            )
        pad = bytes(self.stride - self.value_codec.size)
        return b"".join(self.value_codec.encode(v) + pad for v in values)

    def _decode_value(self, raw: bytes) -> Any:
        size = self.value_codec.size
        if not self.percpu:
            return self.value_codec.decode(raw[:size])
        return [self.value_codec.decode(raw[i * self.stride : i * self.stride + size]) for i in range(self.ncpus)]

    # ---- elements ---------------------------------------------------------------------------------
    def lookup(self, key: Any) -> Any:
        """The value for `key` (a list with one value per CPU for per-CPU maps), or None if absent."""
        k = ctypes.create_string_buffer(self.key_codec.encode(key), self.key_codec.size)
        v = ctypes.create_string_buffer(self.value_buffer_size)
        try:
            bpf(_sys.BPF_MAP_LOOKUP_ELEM, ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=ctypes.addressof(v)))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return self._decode_value(v.raw)

    def update(self, key: Any, value: Any, flags: int = _sys.BPF_ANY) -> None:
        """Create or replace (flags: BPF_ANY; BPF_NOEXIST=1, BPF_EXIST=2 as in the kernel)."""
        k = ctypes.create_string_buffer(self.key_codec.encode(key), self.key_codec.size)
        raw = self._value_bytes(value)
        v = ctypes.create_string_buffer(raw, len(raw))
        attr = ElemAttr(map_fd=self.fd, key=ctypes.addressof(k), value=ctypes.addressof(v), flags=flags)
        bpf(_sys.BPF_MAP_UPDATE_ELEM, attr)

    def delete(self, key: Any) -> bool:
        """Delete `key`; False if it was not there (or the map is an array, whose elements cannot go)."""
        k = ctypes.create_string_buffer(self.key_codec.encode(key), self.key_codec.size)
        try:
            bpf(_sys.BPF_MAP_DELETE_ELEM, ElemAttr(map_fd=self.fd, key=ctypes.addressof(k)))
        except OSError as exc:
            if exc.errno == errno.ENOENT or (exc.errno == errno.EINVAL and self.info.type in ARRAY_TYPES):
                return False
            raise
        return True

    def keys(self) -> Iterator[Any]:
        """Every key, by the BPF_MAP_GET_NEXT_KEY walk (arrays: 0..max_entries-1)."""
        for raw in _sys.map_keys(self.fd, self.key_codec.size):
            yield self.key_codec.decode(raw)

    __iter__ = keys

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs; a key deleted during the walk is skipped."""
        for k in self.keys():
            v = self.lookup(k)
            if v is not None:
                yield k, v

    def values(self) -> Iterator[Any]:
        for _k, v in self.items():
            yield v

    def clear(self) -> int:
        """Delete every element of a hash-like map; returns how many went (arrays: 0)."""
        return sum(self.delete(k) for k in list(self.keys()))

    # ---- many elements in one syscall ------------------------------------------------------------
    def update_batch(self, keys: Sequence[Any] | bytes, values: Sequence[Any] | bytes) -> None:
        """Write many elements with BPF_MAP_UPDATE_BATCH (one syscall, not one per element).

        `keys` and `values` are sequences of keys and values, or ``bytes`` already
        packed back to back (per-CPU values: `value_buffer_size` bytes each).
        Where the kernel has no batch update for this map type, the rest is
        written one element at a time.
        """
        kbuf = keys if isinstance(keys, bytes) else b"".join(self.key_codec.encode(k) for k in keys)
        vbuf = values if isinstance(values, bytes) else b"".join(self._value_bytes(v) for v in values)
        ksize, vsize = self.key_codec.size, self.value_buffer_size
        count = len(kbuf) // ksize
        if len(kbuf) % ksize or len(vbuf) != count * vsize:
            raise PacketlabError(
                f"batch update of map {self.name!r}: {len(kbuf)} key bytes and {len(vbuf)} value bytes "
                f"do not make whole elements of {ksize} + {vsize} bytes",
                fix="pass as many values as keys",
            )
        k = ctypes.create_string_buffer(kbuf, len(kbuf))
        v = ctypes.create_string_buffer(vbuf, len(vbuf))
        done = 0
        while done < count:
            attr = BatchAttr(
                keys=ctypes.addressof(k) + done * ksize,
                values=ctypes.addressof(v) + done * vsize,
                count=count - done,
                map_fd=self.fd,
            )
            try:
                bpf(_sys.BPF_MAP_UPDATE_BATCH, attr)
            except OSError as exc:
                if attr.count:
                    done += attr.count
                    continue  # part went in: the next call says what stopped it
                if exc.errno not in _BATCH_UNSUPPORTED:
                    raise
                for i in range(done, count):  # no batch ops for this map type (or this kernel)
                    self.update(kbuf[i * ksize : (i + 1) * ksize], vbuf[i * vsize : (i + 1) * vsize])
                return
            if attr.count == 0:
                raise PacketlabError(
                    f"batch update of map {self.name!r} made no progress",
                    cause="the kernel accepted no element and reported no error",
                    fix="report this as a packetlab bug",
                )
            done += attr.count

    def lookup_range(self, start: int, count: int) -> list[Any]:
        """Values of array elements start .. start+count-1, in one BPF_MAP_LOOKUP_BATCH
        (element by element where the kernel refuses the batch)."""
        ksize, vsize = self.key_codec.size, self.value_buffer_size
        keys = ctypes.create_string_buffer(count * ksize)
        values = ctypes.create_string_buffer(count * vsize)
        prev = ctypes.create_string_buffer(self.key_codec.encode(start - 1), ksize) if start > 0 else None
        token = ctypes.create_string_buffer(ksize)
        attr = BatchAttr(
            in_batch=ctypes.addressof(prev) if prev is not None else 0,
            out_batch=ctypes.addressof(token),
            keys=ctypes.addressof(keys),
            values=ctypes.addressof(values),
            count=count,
            map_fd=self.fd,
        )
        one_by_one = False
        try:
            bpf(_sys.BPF_MAP_LOOKUP_BATCH, attr)
        except OSError as exc:
            one_by_one = exc.errno != errno.ENOENT  # ENOENT: the batch reached the map's end
        if one_by_one or attr.count < count or (count and self.key_codec.decode(keys.raw[:ksize]) != start):
            return [self.lookup(start + i) for i in range(count)]
        raw = values.raw
        return [self._decode_value(raw[i * vsize : (i + 1) * vsize]) for i in range(count)]


# ---- per-CPU values ------------------------------------------------------------------------------
def percpu_sum(values: Any) -> Any:
    """The per-CPU values of one key as one value: what a per-CPU counter means.

    `values` is what a per-CPU lookup returns: a list (`BpfMap.lookup`) or a
    ctypes array (bcc's per-CPU tables). Ints and ctypes scalars add up;
    ctypes structs add up field by field into a struct of the same type;
    dicts key by key; tuples (``struct`` formats) item by item. Anything that
    is not a list or ctypes array is one value already and comes back as it is
    (a map that is not per-CPU). No values sum to 0.
    """
    if not isinstance(values, list | ctypes.Array):
        return values
    items = list(values)
    if not items:
        return 0
    first = items[0]
    if isinstance(first, ctypes.Structure | ctypes.Union):
        total = type(first)()
        for field, *_ in first._fields_:
            setattr(total, field, percpu_sum([getattr(v, field) for v in items]))
        return total
    if isinstance(first, Mapping):
        return {k: percpu_sum([v[k] for v in items]) for k in first}
    if isinstance(first, tuple):
        return tuple(percpu_sum(list(column)) for column in zip(*items, strict=True))
    if isinstance(first, ctypes._SimpleCData):
        return sum(v.value for v in items)
    if isinstance(first, int | float):
        return sum(items)
    raise PacketlabError(
        f"cannot add up per-CPU values of type {type(first).__name__}",
        fix="per-CPU counters are integers or structs of integers; read the per-CPU list yourself",
    )


# ---- after an update -------------------------------------------------------------------------------
def synchronize_rcu() -> None:
    """Wait for an RCU grace period: every BPF program run that started before this
    call has finished when it returns — so after flipping a map entry, nothing still
    uses what it pointed to (membarrier(MEMBARRIER_CMD_GLOBAL) calls synchronize_rcu()
    in the kernel; the kernel's BPF selftests use the same call for the same purpose)."""
    try:
        _sys.membarrier(_sys.MEMBARRIER_CMD_GLOBAL)
    except OSError as exc:
        raise MissingRequirement(
            "cannot wait for an RCU grace period",
            cause=f"membarrier(MEMBARRIER_CMD_GLOBAL) failed: {os.strerror(exc.errno or 0)} "
            "(the kernel has nohz_full CPUs or no CONFIG_MEMBARRIER)",
            fix="boot without nohz_full, or use a kernel with CONFIG_MEMBARRIER=y",
        ) from None
