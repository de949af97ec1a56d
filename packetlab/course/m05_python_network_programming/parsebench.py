"""Parse speed: scapy vs dpkt vs our struct decoder, on the same frames.

Every parser gets the same job — from raw Ethernet bytes to the flow key
(source, destination, protocol, ports) and the payload length — so the
figures compare the cost of *parsing*, not of doing different amounts of work.
Each runs over the whole frame list `repeat` times; the best round counts
(the machine is shared: the best round is the one least disturbed).

* ``scapy``          — builds a full object tree, every field of every layer
* ``dpkt``           — a lean dissector: one object per layer, fields unpacked by struct
* ``decode``         — this module's decoder (every field, TCP options parsed)
* ``five_tuple``     — the fast path: fixed offsets, no objects, the key only
                       (untagged IPv4 only: it gives up on anything else)
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import dpkt
from scapy.layers.inet import IP
from scapy.layers.inet import TCP as S_TCP
from scapy.layers.inet import UDP as S_UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import NoPayload, Padding

from packetlab.proto.decode import TCP, UDP, decode, five_tuple  # imports above: not timed inside the loops

Key = tuple | None


def key_scapy(frame: bytes) -> Key:
    try:
        pkt = Ether(frame)
    except Exception:
        return None
    ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
    if ip is None or not isinstance(ip.payload, (S_TCP, S_UDP)):
        return None
    l4 = ip.payload
    body = l4.payload
    size = 0 if isinstance(body, (NoPayload, Padding)) else len(body.original)
    return ip.src, ip.dst, 6 if isinstance(l4, S_TCP) else 17, l4.sport, l4.dport, size


def key_dpkt(frame: bytes) -> Key:
    try:
        eth = dpkt.ethernet.Ethernet(frame)
    except (dpkt.UnpackError, struct.error):
        return None
    ip = eth.data
    if isinstance(ip, dpkt.ip.IP):
        src, dst = socket.inet_ntoa(ip.src), socket.inet_ntoa(ip.dst)
    elif isinstance(ip, dpkt.ip6.IP6):
        src, dst = socket.inet_ntop(socket.AF_INET6, ip.src), socket.inet_ntop(socket.AF_INET6, ip.dst)
    else:
        return None
    l4 = ip.data
    if not isinstance(l4, (dpkt.tcp.TCP, dpkt.udp.UDP)):
        return None
    return src, dst, 6 if isinstance(l4, dpkt.tcp.TCP) else 17, l4.sport, l4.dport, len(l4.data)


def key_decode(frame: bytes) -> Key:
    f = decode(frame)
    if f.ip is None or not isinstance(f.l4, (TCP, UDP)):
        return None
    return f.ip.src, f.ip.dst, 6 if isinstance(f.l4, TCP) else 17, f.l4.sport, f.l4.dport, len(f.payload)


def key_five_tuple(frame: bytes) -> Key:
    return five_tuple(frame)


PARSERS: dict[str, Callable[[bytes], Key]] = {
    "scapy": key_scapy,
    "dpkt": key_dpkt,
    "decode": key_decode,
    "five_tuple": key_five_tuple,
}


@dataclass
class ParseResult:
    parser: str
    frames: int
    best_seconds: float
    keys_found: int  # frames the parser turned into a flow key

    @property
    def pps(self) -> float:
        return self.frames / self.best_seconds if self.best_seconds else 0.0

    @property
    def us_per_frame(self) -> float:
        return self.best_seconds / self.frames * 1e6 if self.frames else 0.0


def time_parser(name: str, frames: Sequence[bytes], repeat: int = 3, budget: float = 10.0) -> ParseResult:
    """Best of `repeat` passes of parser `name` over `frames` (stops early past `budget` seconds)."""
    fn = PARSERS[name]
    best, found, spent = float("inf"), 0, 0.0
    for _ in range(max(1, repeat)):
        t0 = time.perf_counter()
        found = sum(1 for f in frames if fn(f) is not None)
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
        if spent > budget:
            break
    return ParseResult(name, len(frames), best, found)


def compare_parsers(
    frames: Sequence[bytes], names: Sequence[str] = tuple(PARSERS), repeat: int = 3, budget: float = 10.0
) -> list[ParseResult]:
    """Time each parser on the same frames, in one run."""
    return [time_parser(n, frames, repeat, budget) for n in names]


def agreement(frames: Sequence[bytes]) -> dict[str, str]:
    """Per parser: on how many frames its flow key equals scapy's. `five_tuple` returns
    only the key (no payload length) and skips VLAN-tagged and IPv6 frames by design."""
    ref = [key_scapy(f) for f in frames]
    out = {}
    for name in ("dpkt", "decode", "five_tuple"):
        fn, same, skipped = PARSERS[name], 0, 0
        for f, r in zip(frames, ref):
            k = fn(f)
            if name == "five_tuple":
                if k is None and r is not None:
                    skipped += 1
                    continue
                r = r[:5] if r else None
            same += k == r
        out[name] = f"{same}/{len(frames) - skipped} agree" + (f", {skipped} skipped" if skipped else "")
    return out


def table_rows(results: Sequence[ParseResult]) -> list[list[object]]:
    """Rows for format_table: parser, frames, best s, packets/s, µs/frame, × scapy."""
    base = next((r.pps for r in results if r.parser == "scapy"), None)
    return [
        [r.parser, r.frames, r.best_seconds, round(r.pps), r.us_per_frame, f"{r.pps / base:.1f}x" if base else "-"]
        for r in results
    ]


TABLE_HEADERS = ["parser", "frames", "best s", "packets/s", "µs/frame", "vs scapy"]
