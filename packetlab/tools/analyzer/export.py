"""Export: flows and alerts as CSV and JSON, and flows as IPFIX (RFC 7011) to a collector.

IPFIX is NetFlow v9 made a standard: a message carries *templates* (which information
elements, in which order and size) and *data sets* that follow a template, so any
collector — nfcapd, pmacct, a SIEM — decodes our records without knowing our code.
We send one template per address family (IPv4: id 256, IPv6: id 257) in every
message, as exporters on UDP do (a collector that restarts needs them again).
Information element numbers are IANA's (https://www.iana.org/assignments/ipfix).
"""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import os
import socket
import struct
import time
from collections.abc import Iterable, Sequence

from packetlab.tools.analyzer.records import FlowRecord

IPFIX_VERSION = 10
IPFIX_PORT = 4739
TEMPLATE_SET_ID = 2
TEMPLATE_V4, TEMPLATE_V6 = 256, 257
MAX_MESSAGE = 1400  # stay below a typical MTU: one UDP datagram per message

# (IANA element id, length): the fields of one record, shared by both templates except the addresses
_COMMON = [
    (7, 2),  # sourceTransportPort
    (11, 2),  # destinationTransportPort
    (4, 1),  # protocolIdentifier
    (6, 1),  # tcpControlBits (the OR of the flags seen)
    (2, 8),  # packetDeltaCount
    (1, 8),  # octetDeltaCount
    (152, 8),  # flowStartMilliseconds
    (153, 8),  # flowEndMilliseconds
]
_FIELDS = {
    TEMPLATE_V4: [(8, 4), (12, 4), *_COMMON],  # sourceIPv4Address, destinationIPv4Address
    TEMPLATE_V6: [(27, 16), (28, 16), *_COMMON],  # sourceIPv6Address, destinationIPv6Address
}
_RECORD = {TEMPLATE_V4: struct.Struct("!4s4sHHBBQQQQ"), TEMPLATE_V6: struct.Struct("!16s16sHHBBQQQQ")}


# ---- CSV and JSON -------------------------------------------------------------------------------
def to_csv(rows: Sequence[dict]) -> str:
    if not rows:
        return ""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()})
    return out.getvalue()


def to_json(rows: Sequence[dict]) -> str:
    return json.dumps(list(rows), indent=1, default=str)


# ---- PCAP ---------------------------------------------------------------------------------------
class PcapWriter:
    """A classic pcap file (Ethernet, microsecond times) that tcpdump, tshark and nDPI read,
    written as frames come (the live session's sampled heads, `snaplen` bytes at most)."""

    def __init__(self, path: str | os.PathLike, snaplen: int = 65535) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 (closed by close(), frames are written as they come)
        self.file.write(struct.pack("=IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, 1))
        self.frames = 0

    def write(self, data: bytes, ts: float, wirelen: int | None = None) -> None:
        """One frame; `wirelen` is its length on the wire when `data` is only its head."""
        sec = int(ts)
        usec = min(int(round((ts - sec) * 1e6)), 999_999)
        self.file.write(struct.pack("=IIII", sec, usec, len(data), max(wirelen or 0, len(data))) + data)
        self.frames += 1

    def close(self) -> None:
        self.file.close()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_pcap(path: str | os.PathLike, frames: Iterable[tuple[bytes, float]]) -> None:
    """Write (frame, time) pairs to a pcap file."""
    with PcapWriter(path) as w:
        for data, ts in frames:
            w.write(data, ts)


# ---- IPFIX --------------------------------------------------------------------------------------
def template_set() -> bytes:
    body = b""
    for tid, fields in _FIELDS.items():
        body += struct.pack("!HH", tid, len(fields)) + b"".join(struct.pack("!HH", i, n) for i, n in fields)
    return struct.pack("!HH", TEMPLATE_SET_ID, 4 + len(body)) + body


def _record(rec: FlowRecord) -> tuple[int, bytes]:
    k = rec.key
    tid = TEMPLATE_V6 if k.family == 6 else TEMPLATE_V4
    src, dst = ipaddress.ip_address(k.src).packed, ipaddress.ip_address(k.dst).packed
    data = _RECORD[tid].pack(
        src,
        dst,
        k.sport,
        k.dport,
        k.proto,
        rec.tcp_flags & 0xFF,
        rec.packets,
        rec.bytes,
        int(rec.first * 1000),
        int(rec.last * 1000),
    )
    return tid, data


def ipfix_messages(
    records: Iterable[FlowRecord], *, domain: int = 1, sequence: int = 0, export_time: int | None = None
) -> list[bytes]:
    """IPFIX messages (each under MAX_MESSAGE bytes) carrying the templates and every record.

    The sequence number counts data records sent before each message (RFC 7011 §3.1),
    so a collector can tell how many were lost."""
    when = int(time.time()) if export_time is None else export_time
    tmpl = template_set()
    messages: list[bytes] = []
    pending = list(records)
    while pending or not messages:
        sets: dict[int, list[bytes]] = {TEMPLATE_V4: [], TEMPLATE_V6: []}
        size, n = 16 + len(tmpl) + 8, 0
        while pending:
            tid, data = _record(pending[0])
            if size + len(data) + 4 > MAX_MESSAGE:
                break
            sets[tid].append(data)
            size += len(data)
            n += 1
            pending.pop(0)
        body = tmpl
        for tid, recs in sets.items():
            if recs:
                payload = b"".join(recs)
                body += struct.pack("!HH", tid, 4 + len(payload)) + payload
        messages.append(struct.pack("!HHIII", IPFIX_VERSION, 16 + len(body), when, sequence, domain) + body)
        sequence += n
        if not pending:
            break
    return messages


def send_ipfix(records: Iterable[FlowRecord], collector: tuple[str, int], *, domain: int = 1) -> int:
    """Send `records` to a collector over UDP; return how many messages were sent."""
    messages = ipfix_messages(records, domain=domain)
    family = socket.AF_INET6 if ":" in collector[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        for m in messages:
            s.sendto(m, collector)
    return len(messages)


def parse_ipfix(message: bytes) -> list[dict]:
    """Decode one of our IPFIX messages back into dicts (tests; collectors use their own decoder)."""
    version, length, _when, _seq, _domain = struct.unpack_from("!HHIII", message)
    if version != IPFIX_VERSION or length != len(message):
        raise ValueError("not an IPFIX message of this length")
    off, out = 16, []
    while off + 4 <= length:
        set_id, set_len = struct.unpack_from("!HH", message, off)
        if set_id in _RECORD:
            fmt = _RECORD[set_id]
            for pos in range(off + 4, off + set_len - fmt.size + 1, fmt.size):
                src, dst, sp, dp, proto, flags, pk, by, start, end = fmt.unpack_from(message, pos)
                out.append(
                    {
                        "src": str(ipaddress.ip_address(src)),
                        "dst": str(ipaddress.ip_address(dst)),
                        "sport": sp,
                        "dport": dp,
                        "proto": proto,
                        "tcp_flags": flags,
                        "packets": pk,
                        "bytes": by,
                        "first_ms": start,
                        "last_ms": end,
                    }
                )
        off += set_len
    return out
