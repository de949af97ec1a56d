"""IPv6: the fixed header and the extension headers (hop-by-hop, routing, destination options, fragment)."""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

from packetlab.proto.dissect.checksums import pseudo_v6
from packetlab.proto.dissect.names import IP_PROTO

if TYPE_CHECKING:
    from packetlab.proto.dissect.walker import Walker


def ipv6(w: Walker, off: int, end: int) -> None:
    """The 40-byte IPv6 header, its chain of extension headers, then the upper-layer protocol."""
    f = w.frame
    if off + 40 > end:
        w.truncated("IPv6", off, end, 40)
        return
    n = w.begin("IPv6")
    word, plen, nh, hlim = struct.unpack_from("!IHBB", f, off)
    w.add("IPv6.version", off, 4, word >> 28, bits=(0, 4), scapy=("IPv6", "version", n))
    w.add("IPv6.tc", off, 4, (word >> 20) & 0xFF, bits=(4, 8), note="traffic class", scapy=("IPv6", "tc", n))
    w.add("IPv6.fl", off, 4, word & 0xFFFFF, bits=(12, 20), note="flow label", scapy=("IPv6", "fl", n))
    w.add("IPv6.plen", off + 4, 2, plen, note="payload length (after this 40-byte header)", scapy=("IPv6", "plen", n))
    w.add("IPv6.nh", off + 6, 1, nh, note=IP_PROTO.get(nh, ""), scapy=("IPv6", "nh", n))
    w.add("IPv6.hlim", off + 7, 1, hlim, note="hop limit", scapy=("IPv6", "hlim", n))
    src, dst = f[off + 8 : off + 24], f[off + 24 : off + 40]
    w.add("IPv6.src", off + 8, 16, str(ipaddress.IPv6Address(src)), note=_v6_kind(src), scapy=("IPv6", "src", n))
    w.add("IPv6.dst", off + 24, 16, str(ipaddress.IPv6Address(dst)), note=_v6_kind(dst), scapy=("IPv6", "dst", n))
    data_end = min(end, off + 40 + plen)
    pos, proto, fragment = off + 40, nh, False
    ext_cls = {0: "IPv6ExtHdrHopByHop", 43: "IPv6ExtHdrRouting", 60: "IPv6ExtHdrDestOpt"}
    names = {0: "HopByHop", 43: "Routing", 60: "DestOpt"}
    while proto in (0, 43, 60, 44):
        if proto == 44:
            if pos + 8 > data_end:
                w.truncated("IPv6Frag", pos, data_end, 8)
                return
            m = w.begin("IPv6ExtHdrFragment")
            nxt, _res, offm, ident = struct.unpack_from("!BBHI", f, pos)
            sc = "IPv6ExtHdrFragment"
            w.add("IPv6Frag.nh", pos, 1, nxt, note=IP_PROTO.get(nxt, ""), scapy=(sc, "nh", m))
            w.add("IPv6Frag.res1", pos + 1, 1, _res, scapy=(sc, "res1", m))
            w.add(
                "IPv6Frag.offset",
                pos + 2,
                2,
                offm >> 3,
                bits=(0, 13),
                note=f"fragment offset {offm >> 3} x 8 = {(offm >> 3) * 8} bytes",
                scapy=(sc, "offset", m),
            )
            w.add("IPv6Frag.res2", pos + 2, 2, (offm >> 1) & 3, bits=(13, 2), scapy=(sc, "res2", m))
            w.add(
                "IPv6Frag.m",
                pos + 2,
                2,
                offm & 1,
                bits=(15, 1),
                note="more fragments" if offm & 1 else "last fragment",
                scapy=(sc, "m", m),
            )
            w.add("IPv6Frag.id", pos + 4, 4, ident, scapy=(sc, "id", m))
            fragment = fragment or bool(offm >> 3) or bool(offm & 1)
            proto, pos = nxt, pos + 8
            if offm >> 3:
                w.payload("Fragment", pos, data_end, note=f"data from byte {(offm >> 3) * 8} of the original packet")
                return
            continue
        if pos + 2 > data_end:
            w.truncated(f"IPv6{names[proto]}", pos, data_end, 8)
            return
        sc = ext_cls[proto]
        m = w.begin(sc)
        nxt, hlen = f[pos], f[pos + 1]
        size = (hlen + 1) * 8
        layer = f"IPv6{names[proto]}"
        w.add(f"{layer}.nh", pos, 1, nxt, note=IP_PROTO.get(nxt, ""), scapy=(sc, "nh", m))
        w.add(f"{layer}.len", pos + 1, 1, hlen, note=f"({hlen} + 1) x 8 = {size} bytes", scapy=(sc, "len", m))
        if pos + size > data_end:
            w.truncated(layer, pos + 2, data_end, size - 2)
            return
        w.add(
            f"{layer}.options",
            pos + 2,
            size - 2,
            f[pos + 2 : pos + size],
            note=_v6_options(f[pos + 2 : pos + size]),
        )
        proto, pos = nxt, pos + size
    pseudo = None if fragment else pseudo_v6(src, dst, proto, data_end - pos)
    w.upper(proto, pos, data_end, pseudo=pseudo, first_fragment=fragment)
    w.padding(data_end, end)


_SOLICITED_NODE = ipaddress.IPv6Network("ff02::1:ff00:0/104")


def _v6_kind(b: bytes) -> str:
    a = ipaddress.IPv6Address(b)
    if a.is_multicast:
        if a in _SOLICITED_NODE:
            return "solicited-node multicast (ff02::1:ff + low 24 bits)"
        return "multicast"
    if a.is_link_local:
        return "link-local"
    if a.is_unspecified:
        return "unspecified"
    return ""


def _v6_options(data: bytes) -> str:
    kinds = []
    pos = 0
    while pos < len(data):
        t = data[pos]
        if t == 0:
            pos += 1
            continue
        if pos + 1 >= len(data):
            break
        kinds.append({1: "PadN", 5: "RouterAlert", 0xC2: "Jumbo"}.get(t, f"type {t}"))
        pos += 2 + data[pos + 1]
    return ", ".join(kinds) or "padding only"
