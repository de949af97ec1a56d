"""How much memory a BPF map takes, on kernels that report it and on those that only estimate it.

``memlock`` in a map's fdinfo (what ``bpftool map show`` prints) is the kernel's own
account of the map's memory since 6.4 (``map_mem_usage``): a hash map's element
headers and buckets included. Older kernels, Debian 12's 6.1 among them, print an
estimate instead: ``round_up(key + value, 8) x max_entries``, rounded to a page —
a hash map of 100 000 flows shows 5.3 MiB where it takes 12, an array counts keys it
does not store. A lab comparing memory must not compare those figures, so
:func:`map_bytes` answers with the kernel's figure where it is one, and with the
same accounting modelled from the map's shape where it is not.
"""

from __future__ import annotations

import functools

from packetlab.ebpf.fdinfo import fdinfo
from packetlab.ebpf.maps import BpfMap
from packetlab.ebpf.syscall import possible_cpus

PAGE = 4096
HTAB_ELEM_HEADER = 48  # struct htab_elem before the key
HTAB_BUCKET = 16  # struct bucket: list head and lock


def _round8(n: int) -> int:
    return (n + 7) // 8 * 8


def _old_estimate(key_size: int, value_size: int, entries: int) -> int:
    """What kernels before 6.4 print as memlock for any map of this shape."""
    return (entries * _round8(key_size + value_size) + PAGE - 1) // PAGE * PAGE


def modelled_bytes(map_type: str, key_size: int, value_size: int, entries: int) -> int:
    """A map's memory as 6.4+ kernels account it (preallocated hash or plain array), to a few hundred bytes."""
    if map_type == "hash":
        elements = (entries + possible_cpus()) * (HTAB_ELEM_HEADER + _round8(key_size) + _round8(value_size))
        return elements + HTAB_BUCKET * (1 << max(entries - 1, 0).bit_length())
    if map_type == "array":
        return entries * _round8(value_size)
    raise ValueError(f"no memory model for {map_type!r} maps (hash and array only)")


def _memlock(map_type: str, key_size: int, value_size: int, entries: int) -> int:
    with BpfMap.create(map_type, key_size, value_size, entries) as m:
        return int(fdinfo(m.fd)["memlock"])


@functools.cache
def memlock_is_an_estimate() -> bool:
    """True on kernels whose fdinfo memlock is the pre-6.4 keys-and-values estimate (probed, not a version)."""
    return _memlock("hash", 8, 8, 1024) == _old_estimate(8, 8, 1024)


def map_bytes(map_type: str, key_size: int, value_size: int, entries: int) -> int:
    """Memory a map of this shape takes: measured by creating one, modelled where the kernel only estimates."""
    if memlock_is_an_estimate():
        return modelled_bytes(map_type, key_size, value_size, entries)
    return _memlock(map_type, key_size, value_size, entries)
