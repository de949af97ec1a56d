"""Layer 4: TCP (with its options) and UDP."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from packetlab.proto.dissect.checksums import checksum_note
from packetlab.proto.dissect.names import TCP_OPTIONS, tcp_flag_names

if TYPE_CHECKING:
    from packetlab.proto.dissect.walker import Walker


def tcp(
    w: Walker, off: int, end: int, *, pseudo: bytes | None = None, quoted: bool = False, first_fragment: bool = False
) -> None:
    """TCP: ports, sequence numbers, flags, window, options (an ICMP error quotes only the first 8 bytes)."""
    f = w.frame
    layer, cls = ("TCP", "TCP") if not quoted else ("TCP(quoted)", "TCPerror")
    if off + 20 > end:
        if quoted and off + 8 <= end:  # ICMP errors quote only 8 bytes: the ports and seq
            n = w.begin(cls)
            sport, dport, seq = struct.unpack_from("!HHI", f, off)
            w.add(f"{layer}.sport", off, 2, sport, scapy=(cls, "sport", n))
            w.add(f"{layer}.dport", off + 2, 2, dport, scapy=(cls, "dport", n))
            w.add(f"{layer}.seq", off + 4, 4, seq, scapy=(cls, "seq", n))
            return
        w.truncated(layer, off, end, 20)
        return
    n = w.begin(cls)
    sport, dport, seq, ack, word, window, chksum, urg = struct.unpack_from("!HHIIHHHH", f, off)
    doff = word >> 12
    flags = word & 0x1FF
    w.add(f"{layer}.sport", off, 2, sport, note="source port", scapy=(cls, "sport", n))
    w.add(f"{layer}.dport", off + 2, 2, dport, note="destination port", scapy=(cls, "dport", n))
    w.add(
        f"{layer}.seq",
        off + 4,
        4,
        seq,
        note="sequence number of the first data byte (or of the SYN/FIN)",
        scapy=(cls, "seq", n),
    )
    w.add(
        f"{layer}.ack",
        off + 8,
        4,
        ack,
        note="next byte expected from the peer" if flags & 0x10 else "(ACK not set)",
        scapy=(cls, "ack", n),
    )
    w.add(
        f"{layer}.dataofs",
        off + 12,
        1,
        doff,
        bits=(0, 4),
        note=f"header length {doff} x 4 = {doff * 4} bytes",
        scapy=(cls, "dataofs", n),
    )
    w.add(f"{layer}.reserved", off + 12, 1, (word >> 9) & 7, bits=(4, 3), scapy=(cls, "reserved", n))
    w.add(f"{layer}.flags", off + 12, 2, flags, bits=(7, 9), note=tcp_flag_names(flags), scapy=(cls, "flags", n))
    w.add(f"{layer}.window", off + 14, 2, window, note="receive window (before scaling)", scapy=(cls, "window", n))
    if pseudo is not None and not quoted:
        note = checksum_note(chksum, f[off:end], 16, pseudo)
    else:
        note = "not verified: " + ("a fragment" if first_fragment else "the segment is not all here")
    w.add(f"{layer}.chksum", off + 16, 2, chksum, note=note, scapy=(cls, "chksum", n))
    w.add(f"{layer}.urgptr", off + 18, 2, urg, note="urgent pointer", scapy=(cls, "urgptr", n))
    hlen = doff * 4
    if hlen < 20:
        w.payload(layer, off + 20, end, note=f"not decoded: data offset {doff} is invalid")
        return
    if off + hlen > end:
        w.truncated(layer, off + 20, end, hlen - 20)
        return
    tcp_options(w, layer, off + 20, off + hlen)
    w.payload("Payload", off + hlen, end)


def tcp_options(w: Walker, layer: str, off: int, end: int) -> None:
    """The options after TCP's 20 fixed bytes: MSS, window scale, SACK, timestamps, ..."""
    w.options(layer, off, end, _describe_tcp_option, _read_tcp_option, padding="padding")


def _describe_tcp_option(kind: int) -> tuple[str, str]:
    return TCP_OPTIONS.get(kind, f"kind{kind}"), f"kind {kind}"


def _read_tcp_option(kind: int, data: bytes) -> tuple[Any, str]:
    length = len(data) + 2
    if kind == 2 and length == 4:
        return struct.unpack("!H", data)[0], ": maximum segment size"
    if kind == 3 and length == 3:
        return data[0], f": window scale (x{1 << min(data[0], 14)})"
    if kind == 4 and length == 2:
        return b"", ": selective ACKs permitted"
    if kind == 5 and (length - 2) % 8 == 0:
        return tuple(struct.unpack(f"!{(length - 2) // 4}I", data)), ": SACK blocks"
    if kind == 8 and length == 10:
        return struct.unpack("!II", data), ": (TSval, TSecr)"
    return data, ""


def udp(
    w: Walker, off: int, end: int, *, pseudo: bytes | None = None, quoted: bool = False, first_fragment: bool = False
) -> None:
    """UDP: ports, length, checksum (0 means "none" over IPv4)."""
    f = w.frame
    layer, cls = ("UDP", "UDP") if not quoted else ("UDP(quoted)", "UDPerror")
    if off + 8 > end:
        w.truncated(layer, off, end, 8)
        return
    n = w.begin(cls)
    sport, dport, length, chksum = struct.unpack_from("!HHHH", f, off)
    w.add(f"{layer}.sport", off, 2, sport, note="source port", scapy=(cls, "sport", n))
    w.add(f"{layer}.dport", off + 2, 2, dport, note="destination port", scapy=(cls, "dport", n))
    w.add(f"{layer}.len", off + 4, 2, length, note="header + data, bytes", scapy=(cls, "len", n))
    v4 = pseudo is not None and len(pseudo) == 12
    if pseudo is not None and not quoted and length == end - off:
        note = checksum_note(chksum, f[off:end], 6, pseudo, udp=True, zero_means_none=v4)
    else:
        note = "not verified: " + ("a fragment" if first_fragment else "the datagram is not all here")
    w.add(f"{layer}.chksum", off + 6, 2, chksum, note=note, scapy=(cls, "chksum", n))
    if not quoted:
        w.payload("Payload", off + 8, end)
