"""Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted — computed in userspace.

The load balancer hashes a flow's 5-tuple to a slot of a lookup table of prime
size M; the table holds a backend in every slot. Maglev fills the table so that

* every backend owns a share of slots proportional to its weight (balance), and
* when a backend is added or removed, only about 1/N of the slots change owner
  (minimal disruption) — unlike ``hash % N``, where almost every flow moves.

Each backend has its own permutation of the slots (``offset + j * skip mod M``,
from two hashes of its name — M prime makes every permutation visit every
slot). Backends take turns claiming their next preferred free slot; a backend
of weight w gets w turns for every ``max_weight`` (the weighted variant Katran uses).

`flow_hash` is bit-for-bit the hash in ``bpf/09-lb.c`` (``lb_flow_hash``), so
``table[flow_hash(...) % M]`` predicts exactly which backend the XDP program picks.
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections import Counter
from collections.abc import Sequence

from packetlab.tools.lb.config import is_prime

HASH_SEED = 0x9E3779B9  # LB_HASH_SEED in bpf/09-lb.c
EMPTY = 0xFFFFFFFF  # a table slot with no backend (the VIP drops new flows)
_M32 = 0xFFFFFFFF


def _mix(h: int) -> int:
    """murmur3's 32-bit finaliser (lb_mix in bpf/09-lb.c)."""
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _M32
    h ^= h >> 16
    return h


def _ip(addr: str | int) -> int:
    return addr if isinstance(addr, int) else int(ipaddress.IPv4Address(addr))


def flow_hash(src: str | int, dst: str | int, sport: int, dport: int, proto: int | str = 6) -> int:
    """The 32-bit hash of a flow, exactly as the XDP program computes it.

    >>> flow_hash("10.9.1.1", "10.9.100.1", 40000, 80, "tcp") % 65537   # the Maglev slot
    """
    if isinstance(proto, str):
        if proto not in ("tcp", "udp"):
            raise ValueError(f"protocol {proto!r}: the load balancer hashes 'tcp', 'udp' or a protocol number")
        proto = 6 if proto == "tcp" else 17
    h = HASH_SEED
    h = _mix(h ^ _ip(src))
    h = _mix(h ^ _ip(dst))
    h = _mix(h ^ (((sport & 0xFFFF) << 16) | (dport & 0xFFFF)))
    h = _mix(h ^ (proto & 0xFF))
    return h


def _h64(name: str, salt: bytes) -> int:
    return struct.unpack("<Q", hashlib.blake2b(name.encode(), digest_size=8, salt=salt).digest())[0]


def permutation(name: str, size: int) -> tuple[int, int]:
    """(offset, skip) of backend `name`'s preference list: slot j is (offset + j*skip) % size."""
    return _h64(name, b"maglev-offset") % size, _h64(name, b"maglev-skip") % (size - 1) + 1


def build_table(backends: Sequence[str], weights: Sequence[int] | None = None, size: int = 65537) -> list[int]:
    """The Maglev lookup table: a list of `size` backend indexes (or EMPTY).

    `backends` are stable names (we use "address:port"): the permutation of a
    backend depends only on its name, which is what keeps the table stable when
    other backends come and go. Backends with weight 0 get no slots.
    """
    if not is_prime(size):
        raise ValueError(f"Maglev table size must be prime, got {size}")
    n = len(backends)
    weights = list(weights) if weights is not None else [1] * n
    if len(weights) != n:
        raise ValueError("one weight per backend")
    live = [i for i in range(n) if weights[i] > 0]
    table = [EMPTY] * size
    if not live:
        return table
    # --8<-- [start:populate]
    perms = [permutation(backends[i], size) for i in range(n)]
    nxt = [0] * n
    credit = [0] * n
    max_w = max(weights[i] for i in live)
    filled = 0
    while True:
        for i in live:
            credit[i] += weights[i]
            if credit[i] < max_w:
                continue
            credit[i] -= max_w
            offset, skip = perms[i]
            j = nxt[i]
            c = (offset + j * skip) % size
            while table[c] != EMPTY:
                j += 1
                c = (offset + j * skip) % size
            table[c] = i
            nxt[i] = j + 1
            filled += 1
            if filled == size:
                return table
    # --8<-- [end:populate]


def shares(table: Sequence[int], n: int | None = None) -> list[float]:
    """Fraction of the table each backend index owns."""
    counts = Counter(t for t in table if t != EMPTY)
    n = n if n is not None else (max(counts) + 1 if counts else 0)
    total = len(table)
    return [counts.get(i, 0) / total for i in range(n)]


def disruption(old: Sequence[object], new: Sequence[object]) -> float:
    """Fraction of slots whose owner changed between two tables (compare by backend name)."""
    if len(old) != len(new):
        raise ValueError("tables of different sizes")
    return sum(1 for a, b in zip(old, new) if a != b) / len(old)


def named(table: Sequence[int], backends: Sequence[str]) -> list[str | None]:
    """The table with indexes replaced by backend names (None for EMPTY)."""
    return [backends[t] if t != EMPTY else None for t in table]


def lookup(table: Sequence[int], src: str, dst: str, sport: int, dport: int, proto: int | str = 6) -> int:
    """The backend index the table gives this flow (what a *new* flow gets)."""
    return table[flow_hash(src, dst, sport, dport, proto) % len(table)]
