"""One row per packet, for tables: fragments, TCP segments, ARP and neighbour discovery; and a fragment plan."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from packetlab.proto.dissect.names import ARP_OPS, ICMP6_TYPES, tcp_flag_names
from packetlab.proto.dissect.walk import dissect


def fragment_plan(payload_len: int, mtu: int, header_len: int = 20) -> list[tuple[int, int, bool]]:
    """How IPv4 splits `payload_len` bytes (after the IP header) for a link of `mtu` bytes.

    Returns ``(offset in bytes, data length, more-fragments flag)`` per fragment,
    as the kernel's ip_do_fragment() cuts them: every fragment but the last
    carries the most data that fits *rounded down to a multiple of 8* (the
    offset field counts 8-byte units); the last one carries whatever is left,
    up to the full room. No options are assumed to be copied.
    """
    room = mtu - header_len
    if room < 8:
        raise ValueError(f"an MTU of {mtu} cannot carry a {header_len}-byte header plus 8 data bytes")
    if payload_len <= room:
        return [(0, payload_len, False)]
    per = room // 8 * 8
    out = []
    offset = 0
    while payload_len - offset > room:
        out.append((offset, per, True))
        offset += per
    out.append((offset, payload_len - offset, False))
    return out


def _frames_bytes(frames: Iterable[Any]) -> list[bytes]:
    return [bytes(f) for f in frames]


def fragment_rows(frames: Iterable[Any]) -> list[tuple]:
    """IPv4 packets as (src, dst, id in hex, DF, MF, offset bytes, data bytes, total length)."""
    rows = []
    for data in _frames_bytes(frames):
        d = dissect(data)
        if "IPv4.len" not in d:
            continue
        flags = d["IPv4.flags"]
        rows.append(
            (
                d["IPv4.src"],
                d["IPv4.dst"],
                f"0x{d['IPv4.id']:04x}",
                int(bool(flags & 2)),
                int(bool(flags & 1)),
                d["IPv4.frag"] * 8,
                d["IPv4.len"] - d["IPv4.ihl"] * 4,
                d["IPv4.len"],
            )
        )
    return rows


def tcp_rows(frames: Iterable[Any]) -> list[tuple]:
    """TCP segments as (source, destination, flags, relative seq, relative ack, data bytes).

    Sequence numbers are shown relative to each side's initial sequence number
    (the seq of its SYN), as Wireshark does, so a handshake reads 0, 0/1, 1/1.
    """
    segments = []
    isn: dict[str, int] = {}
    for data in _frames_bytes(frames):
        d = dissect(data)
        if "TCP.flags" not in d:
            continue
        ip = "IPv4" if "IPv4.src" in d else "IPv6"
        src = f"{d[f'{ip}.src']}:{d['TCP.sport']}"
        dst = f"{d[f'{ip}.dst']}:{d['TCP.dport']}"
        flags = d["TCP.flags"]
        if flags & 0x02:
            isn[src] = d["TCP.seq"]
        payload = len(d.get("Payload.data", b"") or b"")
        segments.append((src, dst, flags, d["TCP.seq"], d["TCP.ack"], payload))
    rows = []
    for src, dst, flags, seq, ack, payload in segments:
        rel_seq = (seq - isn[src]) % 2**32 if src in isn else seq
        rel_ack = (ack - isn[dst]) % 2**32 if dst in isn and flags & 0x10 else (ack if flags & 0x10 else "")
        rows.append((src, dst, tcp_flag_names(flags), rel_seq, rel_ack, payload))
    return rows


def arp_rows(frames: Iterable[Any]) -> list[tuple]:
    """ARP frames as (operation, Ethernet src, Ethernet dst, sender MAC, sender IP, target MAC, target IP)."""
    rows = []
    for data in _frames_bytes(frames):
        d = dissect(data)
        if "ARP.op" not in d:
            continue
        rows.append(
            (
                ARP_OPS.get(d["ARP.op"], d["ARP.op"]),
                d["Ethernet.src"],
                d["Ethernet.dst"],
                d["ARP.hwsrc"],
                d["ARP.psrc"],
                d["ARP.hwdst"],
                d["ARP.pdst"],
            )
        )
    return rows


def nd_rows(frames: Iterable[Any]) -> list[tuple]:
    """ICMPv6 messages as (type, Ethernet dst, IPv6 src, IPv6 dst, target, link-layer address option)."""
    rows = []
    for data in _frames_bytes(frames):
        d = dissect(data)
        if "ICMPv6.type" not in d:
            continue
        rows.append(
            (
                ICMP6_TYPES.get(d["ICMPv6.type"], d["ICMPv6.type"]),
                d["Ethernet.dst"],
                d["IPv6.src"],
                d["IPv6.dst"],
                d.get("ICMPv6.tgt", ""),
                d.get("NDopt.lladdr", ""),
            )
        )
    return rows
