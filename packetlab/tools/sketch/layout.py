"""The layout shared with bpf/11a-sketch.c: struct twins, stat indices, the control word, the geometry.

Change a struct in the C file and here together; `BpfMap` refuses a view whose
sizes disagree with the kernel's map, so a one-sided change fails loudly.
"""

from __future__ import annotations

import ctypes
import ipaddress
import math
import socket
from dataclasses import dataclass

SOURCE = "bpf/11a-sketch.c"

MODE_EXACT, MODE_SKETCH = 0, 1
MODES = {"exact": MODE_EXACT, "sketch": MODE_SKETCH}
MODE_NAMES = {v: k for k, v in MODES.items()}

# enum stat in the C file: one block of NUM_STATS per slot
STATS = ("packets", "other", "exact", "sketch", "new_flows", "full")
NUM_STATS = len(STATS)
FLOW_KEY_SIZE = 40


class FlowKey(ctypes.Structure):
    """struct flow_key: address family, protocol, slot, ports (network order), addresses."""

    _fields_ = [
        ("family", ctypes.c_uint8),
        ("proto", ctypes.c_uint8),
        ("slot", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("saddr", ctypes.c_uint8 * 16),
        ("daddr", ctypes.c_uint8 * 16),
    ]


class SrcKey(ctypes.Structure):
    """struct src_key."""

    _fields_ = [
        ("family", ctypes.c_uint8),
        ("slot", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 2),
        ("addr", ctypes.c_uint8 * 16),
    ]


class Counters(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


class Candidate(ctypes.Structure):
    """struct candidate: a heavy-hitter candidate and the estimate it had when last updated."""

    _fields_ = [("key", FlowKey), ("estimate", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


@dataclass(frozen=True, order=True)
class Flow:
    """A 5-tuple as Python sees it; `key_bytes` is exactly what the program hashes."""

    family: int
    proto: int
    src: str
    dst: str
    sport: int = 0
    dport: int = 0

    def key_bytes(self) -> bytes:
        size = 4 if self.family == 4 else 16
        src = ipaddress.ip_address(self.src).packed.ljust(16, b"\0")
        dst = ipaddress.ip_address(self.dst).packed.ljust(16, b"\0")
        assert len(src) == 16 == len(dst) and size in (4, 16)
        return (
            bytes([self.family, self.proto, 0, 0])
            + self.sport.to_bytes(2, "big")
            + self.dport.to_bytes(2, "big")
            + src
            + dst
        )

    @classmethod
    def from_key(cls, raw: bytes | FlowKey) -> Flow:
        data = bytes(raw)
        family, proto = data[0], data[1]
        n, af = (4, socket.AF_INET) if family == 4 else (16, socket.AF_INET6)
        return cls(  # inet_ntop: the same text as ipaddress (RFC 5952 for IPv6), several times faster
            family,
            proto,
            socket.inet_ntop(af, data[8 : 8 + n]),
            socket.inet_ntop(af, data[24 : 24 + n]),
            int.from_bytes(data[4:6], "big"),
            int.from_bytes(data[6:8], "big"),
        )

    def __str__(self) -> str:
        names = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}
        proto = names.get(self.proto, str(self.proto))
        if self.sport or self.dport:
            wrap = (lambda a: f"[{a}]") if self.family == 6 else (lambda a: a)
            return f"{proto} {wrap(self.src)}:{self.sport} > {wrap(self.dst)}:{self.dport}"
        return f"{proto} {self.src} > {self.dst}"


def control_word(mode: int, epoch: int) -> int:
    """ctl[0]: epoch << 1 | mode (the slot is epoch & 1)."""
    return ((epoch & 0x7FFFFFFF) << 1) | (mode & 1)


def parse_control(word: int) -> tuple[int, int]:
    """(mode, epoch) of a control word."""
    return word & 1, word >> 1


@dataclass(frozen=True)
class Geometry:
    """The compile-time sizes: d rows of w = 2**width_log2 counters, candidate slots, exact capacities."""

    depth: int = 4
    width_log2: int = 12
    candidates: int = 512
    flows: int = 16384
    sources: int = 4096

    def __post_init__(self) -> None:
        if not 1 <= self.depth <= 8:
            raise ValueError(f"depth {self.depth}: the program has seeds for 1..8 rows")
        if not 4 <= self.width_log2 <= 24:
            raise ValueError(f"width 2**{self.width_log2}: use 2**4 .. 2**24 counters per row")
        if self.candidates & (self.candidates - 1) or self.candidates < 2:
            raise ValueError(f"candidates {self.candidates}: a power of two >= 2")

    @property
    def width(self) -> int:
        return 1 << self.width_log2

    @property
    def cells(self) -> int:
        return self.depth * self.width

    @property
    def epsilon(self) -> float:
        """The CMS additive error, as a fraction of the stream: e / w."""
        return math.e / self.width

    @property
    def delta(self) -> float:
        """The probability the error exceeds epsilon * N: e ** -d."""
        return math.exp(-self.depth)

    def sketch_bytes(self) -> int:
        """Counters of one slot (u32 each) plus its candidate table (48 bytes each)."""
        return self.cells * 4 + self.candidates * ctypes.sizeof(Candidate)

    def cflags(self) -> tuple[str, ...]:
        return (
            f"-DSK_DEPTH={self.depth}",
            f"-DSK_WIDTH_LOG2={self.width_log2}",
            f"-DSK_HH={self.candidates}",
            f"-DSK_FLOWS={self.flows}",
            f"-DSK_SOURCES={self.sources}",
        )
