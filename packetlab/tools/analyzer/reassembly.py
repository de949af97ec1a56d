"""IP fragment reassembly (IPv4, and IPv6's fragment header): fragments in, whole frames out.

A fragment after the first carries no TCP or UDP header, so neither a port filter nor
an application detector can place it until the datagram is whole again. Fragments
are kept per (source, destination, protocol, identification), as the kernel's
ip_defrag does, until the last piece fills the hole at the end; the result is a new
frame (the first fragment's Ethernet and IP headers, fragment fields cleared, lengths
fixed) that `packetlab.proto.decode.decode` reads like any other. Incomplete
datagrams are dropped after `timeout` seconds (the kernel's ipfrag_time is 30 s), and
overlapping pieces are refused, because overlaps are how IDS evasion works
(Ptacek and Newsham, 1998): the analyzer counts them instead of guessing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from packetlab.proto.decode import IPv4, IPv6, decode
from packetlab.proto.dissect.checksums import ipv4_header_checksum

IPPROTO_FRAGMENT = 44
MAX_DATAGRAM = 65535


@dataclass
class _Pending:
    family: int
    l3: int  # where the IP header starts in `head`
    proto: int
    started: float
    head: bytes = b""  # Ethernet (+VLAN) and IP header of the first fragment; b"" until it came
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> data
    total: int | None = None  # known once the last fragment (MF=0) came


@dataclass
class FragmentStats:
    fragments: int = 0
    reassembled: int = 0
    overlaps: int = 0
    timed_out: int = 0
    too_big: int = 0


class Reassembler:
    """Feed every frame; get back the frame to analyse (itself, a whole datagram, or None while waiting)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.pending: dict[tuple, _Pending] = {}
        self.stats = FragmentStats()

    def feed(self, frame: bytes, now: float) -> bytes | None:
        self._expire(now)
        d = decode(frame)
        l3 = 14 + 4 * len(d.vlans)
        if isinstance(d.ip, IPv4):
            if not (d.ip.flags & 1 or d.ip.frag_offset):
                return frame
            hlen = d.ip.ihl * 4
            data = frame[l3 + hlen : l3 + d.ip.total_length]
            key = (4, d.ip.src, d.ip.dst, d.ip.proto, d.ip.id)
            return self._add(key, l3, now, d.ip.frag_offset * 8, bool(d.ip.flags & 1), data, frame[: l3 + hlen])
        if isinstance(d.ip, IPv6) and d.ip.next_header == IPPROTO_FRAGMENT and len(d.payload) >= 8:
            nh, _res, offmf, ident = struct.unpack_from("!BBHI", d.payload)
            key = (6, d.ip.src, d.ip.dst, nh, ident)
            return self._add(key, l3, now, offmf & 0xFFF8, bool(offmf & 1), d.payload[8:], frame[: l3 + 40])
        return frame

    def _add(self, key: tuple, l3: int, now: float, offset: int, more: bool, data: bytes, head: bytes) -> bytes | None:
        """Keep one piece; the whole frame once the pieces leave no hole (key: family, src, dst, proto, id)."""
        self.stats.fragments += 1
        p = self.pending.setdefault(key, _Pending(key[0], l3, key[3], now))
        end = offset + len(data)
        if end > MAX_DATAGRAM:
            self.stats.too_big += 1
            del self.pending[key]
            return None
        for o, piece in p.pieces.items():
            if offset < o + len(piece) and o < end:
                self.stats.overlaps += 1
                del self.pending[key]
                return None
        p.pieces[offset] = data
        if offset == 0:
            p.head = head
        if not more:
            p.total = end
        if p.total is None or not p.head:
            return None
        have = 0
        for o in sorted(p.pieces):
            if o != have:
                return None
            have = o + len(p.pieces[o])
        if have != p.total:
            return None
        del self.pending[key]
        self.stats.reassembled += 1
        return _rebuild(p, b"".join(p.pieces[o] for o in sorted(p.pieces)))

    def _expire(self, now: float) -> None:
        for key in [k for k, p in self.pending.items() if now - p.started > self.timeout]:
            del self.pending[key]
            self.stats.timed_out += 1


def _rebuild(p: _Pending, payload: bytes) -> bytes:
    head, l3 = bytearray(p.head), p.l3
    if p.family == 6:
        head[l3 + 6] = p.proto  # next header: what the fragment header said
        struct.pack_into("!H", head, l3 + 4, len(payload))
        return bytes(head) + payload
    hlen = (head[l3] & 0x0F) * 4
    struct.pack_into("!H", head, l3 + 2, hlen + len(payload))  # total length
    struct.pack_into("!H", head, l3 + 6, 0)  # flags and fragment offset cleared
    struct.pack_into("!H", head, l3 + 10, ipv4_header_checksum(bytes(head[l3 : l3 + hlen])))
    return bytes(head) + payload
