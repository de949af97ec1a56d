"""Layer 2: the Ethernet header, 802.1Q/802.1ad VLAN tags, and ARP."""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

from packetlab.proto.dissect.names import ARP_OPS, ETH_P

if TYPE_CHECKING:
    from packetlab.proto.dissect.walker import Walker


def ethernet(w: Walker) -> None:
    """The Ethernet header at the start of the frame, any VLAN tags, then what the EtherType names."""
    f, end = w.frame, len(w.frame)
    if end < 14:
        w.truncated("Ethernet", 0, end, 14)
        return
    n = w.begin("Ether")
    w.add("Ethernet.dst", 0, 6, mac_text(f[0:6]), note=_mac_kind(f[0:6]), scapy=("Ether", "dst", n))
    w.add("Ethernet.src", 6, 6, mac_text(f[6:12]), scapy=("Ether", "src", n))
    etype = struct.unpack_from("!H", f, 12)[0]
    w.add("Ethernet.type", 12, 2, etype, note=ethertype_note(etype), scapy=("Ether", "type", n))
    off = 14
    while etype in (0x8100, 0x88A8):  # VLAN tags (802.1ad outer, 802.1Q inner)
        layer, cls = ("802.1Q", "Dot1Q") if etype == 0x8100 else ("802.1ad", "Dot1AD")
        if off + 4 > end:
            w.truncated(layer, off, end, 4)
            return
        n = w.begin(cls)
        tci = struct.unpack_from("!H", f, off)[0]
        w.add(f"{layer}.prio", off, 2, tci >> 13, bits=(0, 3), note="priority code point", scapy=(cls, "prio", n))
        w.add(f"{layer}.dei", off, 2, (tci >> 12) & 1, bits=(3, 1), note="drop eligible", scapy=(cls, "dei", n))
        w.add(f"{layer}.vlan", off, 2, tci & 0x0FFF, bits=(4, 12), note="VLAN id", scapy=(cls, "vlan", n))
        etype = struct.unpack_from("!H", f, off + 2)[0]
        w.add(f"{layer}.type", off + 2, 2, etype, note=ethertype_note(etype), scapy=(cls, "type", n))
        off += 4
    w.ethertype(etype, off, end)


def arp(w: Walker, off: int, end: int) -> None:
    """ARP: who has this IP, and the answer (Ethernet/IPv4 addresses decoded, others shown raw)."""
    f = w.frame
    if off + 8 > end:
        w.truncated("ARP", off, end, 28)
        return
    n = w.begin("ARP")
    hwtype, ptype, hwlen, plen, op = struct.unpack_from("!HHBBH", f, off)
    w.add("ARP.hwtype", off, 2, hwtype, note="Ethernet" if hwtype == 1 else "", scapy=("ARP", "hwtype", n))
    w.add("ARP.ptype", off + 2, 2, ptype, note=ethertype_note(ptype), scapy=("ARP", "ptype", n))
    w.add("ARP.hwlen", off + 4, 1, hwlen, note="bytes per hardware address", scapy=("ARP", "hwlen", n))
    w.add("ARP.plen", off + 5, 1, plen, note="bytes per protocol address", scapy=("ARP", "plen", n))
    w.add("ARP.op", off + 6, 2, op, note=ARP_OPS.get(op, ""), scapy=("ARP", "op", n))
    pos = off + 8
    if pos + 2 * (hwlen + plen) > end:
        w.truncated("ARP", pos, end, 2 * (hwlen + plen))
        return
    ether_ip = hwlen == 6 and plen == 4
    for who in ("src", "dst"):
        hw, pa = f[pos : pos + hwlen], f[pos + hwlen : pos + hwlen + plen]
        role = "sender" if who == "src" else "target"
        w.add(
            f"ARP.hw{who}",
            pos,
            hwlen,
            mac_text(hw) if ether_ip else hw,
            note=f"{role} MAC" + (" (unknown yet: zero)" if who == "dst" and not any(hw) else ""),
            scapy=("ARP", f"hw{who}", n) if ether_ip else None,
        )
        w.add(
            f"ARP.p{who}",
            pos + hwlen,
            plen,
            str(ipaddress.IPv4Address(pa)) if ether_ip else pa,
            note=f"{role} IP",
            scapy=("ARP", f"p{who}", n) if ether_ip else None,
        )
        pos += hwlen + plen
    w.padding(pos, end)


def mac_text(b: bytes) -> str:
    """aa:bb:cc:dd:ee:ff"""
    return ":".join(f"{x:02x}" for x in b)


def _mac_kind(b: bytes) -> str:
    if b == b"\xff" * 6:
        return "broadcast: every host on the segment"
    if b[:2] == b"\x33\x33":
        return "IPv6 multicast (33:33 + low 32 bits of the group)"
    if b[0] & 1:
        return "multicast"
    return "unicast"


def ethertype_note(t: int) -> str:
    """The EtherType's name (or that the field is an 802.3 length)."""
    if t <= 1500:
        return "an IEEE 802.3 length, not a type"
    return ETH_P.get(t, "")
