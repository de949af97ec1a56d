"""ICMPv6 and neighbour discovery: echo, packet too big, RS/RA/NS/NA and their options."""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

from packetlab.proto.dissect.checksums import checksum_note
from packetlab.proto.dissect.ethernet import mac_text
from packetlab.proto.dissect.names import ICMP6_TYPES, ND_OPTIONS

if TYPE_CHECKING:
    from packetlab.proto.dissect.walker import Walker

#: the scapy layer of each ICMPv6 message type this dissector decodes field by field (for the cross-check)
SCAPY_CLASSES = {
    128: "ICMPv6EchoRequest",
    129: "ICMPv6EchoReply",
    133: "ICMPv6ND_RS",
    134: "ICMPv6ND_RA",
    135: "ICMPv6ND_NS",
    136: "ICMPv6ND_NA",
    2: "ICMPv6PacketTooBig",
}


def icmp6(
    w: Walker, off: int, end: int, *, pseudo: bytes | None = None, quoted: bool = False, first_fragment: bool = False
) -> None:
    """ICMPv6: echo, packet too big, router and neighbour discovery (with their options)."""
    f = w.frame
    if off + 4 > end:
        w.truncated("ICMPv6", off, end, 8)
        return
    typ, code, cksum = struct.unpack_from("!BBH", f, off)
    cls = SCAPY_CLASSES.get(typ)
    n = w.begin(cls)
    sc = (lambda fld: (cls, fld, n)) if cls else (lambda fld: None)
    w.add("ICMPv6.type", off, 1, typ, note=ICMP6_TYPES.get(typ, ""), scapy=sc("type"))
    w.add("ICMPv6.code", off + 1, 1, code, scapy=sc("code"))
    note = checksum_note(cksum, f[off:end], 2, pseudo) if pseudo is not None else "not verified: a fragment"
    w.add("ICMPv6.cksum", off + 2, 2, cksum, note=note, scapy=sc("cksum"))
    if off + 8 > end:
        w.truncated("ICMPv6", off + 4, end, 4)
        return
    body = off + 4
    if typ in (128, 129):
        ident, seq = struct.unpack_from("!HH", f, body)
        w.add("ICMPv6.id", body, 2, ident, note="identifier", scapy=sc("id"))
        w.add("ICMPv6.seq", body + 2, 2, seq, note="sequence number", scapy=sc("seq"))
        w.payload("Payload", body + 4, end, note=f"{end - body - 4} bytes of echo data")
        return
    if typ in (135, 136):
        if body + 20 > end:
            w.truncated("ICMPv6", body, end, 20)
            return
        word = struct.unpack_from("!I", f, body)[0]
        if typ == 136:
            for bit, flag, meaning in (
                (0, "R", "router"),
                (1, "S", "solicited (answers an NS)"),
                (2, "O", "override cached address"),
            ):
                w.add(f"ICMPv6.{flag}", body, 4, (word >> (31 - bit)) & 1, bits=(bit, 1), note=meaning, scapy=sc(flag))
            w.add("ICMPv6.res", body, 4, word & 0x1FFFFFFF, bits=(3, 29), note="reserved", scapy=sc("res"))
        else:
            w.add("ICMPv6.res", body, 4, word, note="reserved", scapy=sc("res"))
        tgt = f[body + 4 : body + 20]
        w.add(
            "ICMPv6.tgt",
            body + 4,
            16,
            str(ipaddress.IPv6Address(tgt)),
            note="target: the address being resolved" if typ == 135 else "target: the address that answers",
            scapy=sc("tgt"),
        )
        nd_options(w, body + 20, end)
        return
    if typ == 133:
        w.add("ICMPv6.res", body, 4, struct.unpack_from("!I", f, body)[0], note="reserved", scapy=sc("res"))
        nd_options(w, body + 4, end)
        return
    if typ == 134 and body + 12 <= end:
        chlim, flags, life, reach, retrans = struct.unpack_from("!BBHII", f, body)
        w.add("ICMPv6.chlim", body, 1, chlim, note="hop limit hosts should use", scapy=sc("chlim"))
        w.add("ICMPv6.M", body + 1, 1, flags >> 7, bits=(0, 1), note="managed (DHCPv6)", scapy=sc("M"))
        w.add("ICMPv6.O", body + 1, 1, (flags >> 6) & 1, bits=(1, 1), note="other config", scapy=sc("O"))
        w.add("ICMPv6.routerlifetime", body + 2, 2, life, note="seconds", scapy=sc("routerlifetime"))
        w.add("ICMPv6.reachabletime", body + 4, 4, reach, note="ms", scapy=sc("reachabletime"))
        w.add("ICMPv6.retranstimer", body + 8, 4, retrans, note="ms", scapy=sc("retranstimer"))
        nd_options(w, body + 12, end)
        return
    if typ == 2:
        w.add("ICMPv6.mtu", body, 4, struct.unpack_from("!I", f, body)[0], note="MTU of the next hop", scapy=sc("mtu"))
        w.payload("ICMPv6", body + 4, end, note="the start of the packet that was too big")
        return
    w.add("ICMPv6.rest", body, 4, f[body : body + 4], note="rest of header")
    w.payload("Payload", body + 4, end)


def nd_options(w: Walker, off: int, end: int) -> None:
    """Neighbour-discovery options (in units of 8 bytes): link-layer addresses decoded, others raw."""
    f = w.frame
    pos = off
    while pos + 2 <= end:
        typ, units = f[pos], f[pos + 1]
        size = units * 8
        if units == 0 or pos + size > end:
            w.add("NDopt.malformed", pos, end - pos, f[pos:end], note="option length 0 or past the end")
            return
        cls = {1: "ICMPv6NDOptSrcLLAddr", 2: "ICMPv6NDOptDstLLAddr"}.get(typ) if size == 8 else None
        n = w.begin(cls)
        sc = (lambda fld, cls=cls, n=n: (cls, fld, n)) if cls else (lambda fld: None)
        w.add("NDopt.type", pos, 1, typ, note=ND_OPTIONS.get(typ, ""), scapy=sc("type"))
        w.add("NDopt.len", pos + 1, 1, units, note=f"{units} x 8 = {size} bytes", scapy=sc("len"))
        if typ in (1, 2) and size == 8:
            w.add(
                "NDopt.lladdr",
                pos + 2,
                6,
                mac_text(f[pos + 2 : pos + 8]),
                note="link-layer (MAC) address",
                scapy=sc("lladdr"),
            )
        else:
            w.add("NDopt.data", pos + 2, size - 2, f[pos + 2 : pos + size])
        pos += size
    if pos < end:
        w.payload("NDopt", pos, end, note="trailing bytes")
