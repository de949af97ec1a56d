"""Flow records and events as the kernel writes them (bpf/11b-flow.c), decoded in pure Python.

The C structs are mirrored here byte for byte with `struct`, so a record read from
the map and an event read from the ring buffer decode the same way, and the
decoding is testable without a kernel. Keep `KEY`, `VALUE`, `EVENT`, `STATS` and
`EVENT_TYPES` in step with the C source.
"""

from __future__ import annotations

import ipaddress
import struct
import time
from dataclasses import asdict, dataclass

KEY = struct.Struct("=BBHHH16s16s")  # struct flow_key: family, proto, sport, dport, pad, saddr, daddr
VALUE = struct.Struct("=QQQQII")  # struct flow_value: packets, bytes, first_ns, last_ns, tcp_flags, ended
EVENT_HEAD = struct.Struct("=IIIIQ")  # type, caplen, wirelen, cpu, ts_ns
SAMPLE_BYTES = 128
EVENT_SIZE = EVENT_HEAD.size + KEY.size + VALUE.size + SAMPLE_BYTES

# enum stat in bpf/11b-flow.c, in order
STATS: tuple[str, ...] = ("packets", "bytes", "flows", "table_full", "events", "ringbuf_lost", "not_ip")
# enum conf
CONF_SAMPLE_EVERY, CONF_VERDICT = 0, 1
# enum event_type
EVENT_TYPES = {1: "start", 2: "end", 3: "sample"}

PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmp6"}
PROTO_NUMBERS = {v: k for k, v in PROTO_NAMES.items()}
_TCP_FLAGS = "FSRPAUEC"  # bit 0 (FIN) .. bit 7 (CWR)


def tcp_flag_str(flags: int) -> str:
    """'SAF' style letters for an OR of TCP flag bytes (FIN SYN RST PSH ACK URG ECE CWR order)."""
    return "".join(c for i, c in enumerate(_TCP_FLAGS) if flags >> i & 1)


def monotonic_to_wall(ns: int) -> float:
    """A bpf_ktime_get_ns() time (CLOCK_MONOTONIC) as a Unix time, using this moment's offset."""
    return time.time() - time.monotonic() + ns / 1e9


@dataclass(frozen=True, slots=True)
class FlowKey:
    """A unidirectional 5-tuple (for ICMP: dport = type << 8 | code, sport 0)."""

    proto: int
    src: str
    dst: str
    sport: int
    dport: int

    @property
    def family(self) -> int:
        return 6 if ":" in self.src else 4

    @property
    def proto_name(self) -> str:
        return PROTO_NAMES.get(self.proto, str(self.proto))

    def reverse(self) -> FlowKey:
        return FlowKey(self.proto, self.dst, self.src, self.dport, self.sport)

    def __str__(self) -> str:
        fmt = "[{}]:{}" if self.family == 6 else "{}:{}"
        return f"{self.proto_name} {fmt.format(self.src, self.sport)} > {fmt.format(self.dst, self.dport)}"


@dataclass(slots=True)
class FlowRecord:
    """One flow's counters (times are Unix seconds)."""

    key: FlowKey
    packets: int
    bytes: int
    first: float
    last: float
    tcp_flags: int = 0
    ended: bool = False
    app: str = ""
    state: str = ""  # the connection tracker's state (userspace tier, IPv4 only)

    @property
    def duration(self) -> float:
        return max(self.last - self.first, 0.0)

    def as_row(self) -> dict:
        """A flat dict (CSV, JSON, the SQLite store)."""
        d = asdict(self.key)
        d.update(
            proto=self.key.proto_name,
            packets=self.packets,
            bytes=self.bytes,
            first=round(self.first, 6),
            last=round(self.last, 6),
            tcp_flags=tcp_flag_str(self.tcp_flags),
            ended=self.ended,
            app=self.app,
            state=self.state,
        )
        return d


@dataclass(slots=True)
class FlowEvent:
    """One ring-buffer event: a flow started or ended, or a sampled packet."""

    type: str
    record: FlowRecord
    wirelen: int
    cpu: int
    data: bytes = b""


def _address(family: int, raw: bytes) -> str:
    if family == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    if family == 6:
        return str(ipaddress.IPv6Address(raw))
    return f"family-{family}"


def decode_key(raw: bytes) -> FlowKey:
    family, proto, sport, dport, _pad, saddr, daddr = KEY.unpack_from(raw)
    return FlowKey(proto, _address(family, saddr), _address(family, daddr), sport, dport)


def encode_key(key: FlowKey) -> bytes:
    """The kernel's struct flow_key for `key` (to look one record up, or delete it)."""
    family = key.family
    packed = ipaddress.ip_address(key.src).packed, ipaddress.ip_address(key.dst).packed
    return KEY.pack(family, key.proto, key.sport, key.dport, 0, *(p.ljust(16, b"\0") for p in packed))


def decode_record(raw_key: bytes, raw_value: bytes, to_wall=monotonic_to_wall) -> FlowRecord:
    packets, nbytes, first, last, flags, ended = VALUE.unpack_from(raw_value)
    return FlowRecord(decode_key(raw_key), packets, nbytes, to_wall(first), to_wall(last), flags, bool(ended))


def decode_event(raw: bytes, to_wall=monotonic_to_wall) -> FlowEvent:
    """A struct flow_event from the ring buffer."""
    etype, caplen, wirelen, cpu, _ts = EVENT_HEAD.unpack_from(raw)
    off = EVENT_HEAD.size
    record = decode_record(raw[off : off + KEY.size], raw[off + KEY.size : off + KEY.size + VALUE.size], to_wall)
    data_off = off + KEY.size + VALUE.size
    data = raw[data_off : data_off + min(caplen, SAMPLE_BYTES)]
    return FlowEvent(EVENT_TYPES.get(etype, str(etype)), record, wirelen, cpu, data)
