"""Byte-level header dissection: every field of a frame, where it lives and what it means.

scapy tells you a field's *value*; someone reading a hex dump (or writing an
XDP parser) needs to know *where* it lives: which bytes, which bits, in which
byte order. `dissect()` walks a frame once, in pure Python (``struct`` and
``ipaddress``, no scapy), and returns one `Field` row per header field:

    >>> d = dissect(frame)
    >>> for offset, length, name, raw, value in d: ...
    >>> d["IPv4.ttl"]            # the value of a field
    64
    >>> print(d)                 # the whole table, Wireshark style

Covered: Ethernet (+ 802.1Q/802.1ad tags), ARP, IPv4 (with options), ICMP
(echo, destination unreachable incl. "fragmentation needed" with the quoted
datagram, time exceeded), TCP (with options), UDP, IPv6 (+ hop-by-hop,
routing, destination-options and fragment headers), ICMPv6 (echo, neighbour
and router discovery with their options). Every checksum is verified, and a
checksum the kernel left for the NIC to finish (checksum offload) is named as
such. Truncated frames decode as far as they go and end with a
``*.truncated`` row instead of an exception.

Every row that has a scapy counterpart records it (`Field.scapy`), so
`compare_with_scapy()` can check the decoder field by field — the tests do that
on thousands of generated packets, and the module 01 lab shows it live.

The package, one module per layer: `ethernet` (Ethernet, VLAN tags, ARP),
`ipv4`, `ipv6` (with extension headers), `icmp`, `icmpv6` (with neighbour
discovery), `transport` (TCP, UDP); `walker` hands each header's bytes to the
next decoder and `walk.dissect` starts it. `checksums` verifies, `names` holds
the protocol numbers, `fields` the rows, `compare` the scapy cross-check,
`formatting` the text for people and `rows` one-row-per-packet summaries.
"""

from __future__ import annotations

from packetlab.proto.dissect.checksums import internet_checksum, ipv4_header_checksum, ones_sum
from packetlab.proto.dissect.compare import Comparison, compare_with_scapy
from packetlab.proto.dissect.fields import Dissection, Field
from packetlab.proto.dissect.formatting import format_comparison, format_fields, hexdump
from packetlab.proto.dissect.names import TCP_FLAGS, tcp_flag_names
from packetlab.proto.dissect.rows import arp_rows, fragment_plan, fragment_rows, nd_rows, tcp_rows
from packetlab.proto.dissect.walk import dissect

__all__ = [
    "Field",
    "Dissection",
    "dissect",
    "compare_with_scapy",
    "Comparison",
    "internet_checksum",
    "ones_sum",
    "ipv4_header_checksum",
    "hexdump",
    "format_fields",
    "format_comparison",
    "fragment_plan",
    "fragment_rows",
    "tcp_rows",
    "arp_rows",
    "nd_rows",
    "TCP_FLAGS",
    "tcp_flag_names",
]
