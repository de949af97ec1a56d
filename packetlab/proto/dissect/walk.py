"""`dissect()`: a walker with every decoder this package has, started at the Ethernet header."""

from __future__ import annotations

from typing import Any

from packetlab.proto.dissect import ethernet, icmp, icmpv6, ipv4, ipv6, transport
from packetlab.proto.dissect.fields import Dissection
from packetlab.proto.dissect.walker import EtherTypeDecoder, ProtocolDecoder, Walker

ETHERTYPES: dict[int, EtherTypeDecoder] = {0x0806: ethernet.arp, 0x0800: ipv4.ipv4, 0x86DD: ipv6.ipv6}
PROTOCOLS: dict[int, ProtocolDecoder] = {1: icmp.icmp, 6: transport.tcp, 17: transport.udp, 58: icmpv6.icmp6}


def dissect(frame: bytes | Any) -> Dissection:
    """Decode an Ethernet frame (bytes, or anything bytes() accepts, e.g. a scapy packet)."""
    data = bytes(frame)
    walker = Walker(data, ETHERTYPES, PROTOCOLS)
    ethernet.ethernet(walker)
    return Dissection(walker.rows, data)
