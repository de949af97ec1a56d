"""ICMP for IPv4: echo request and reply, and errors (unreachable, time exceeded) with the quoted datagram."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from packetlab.proto.dissect.checksums import checksum_note
from packetlab.proto.dissect.ipv4 import ipv4
from packetlab.proto.dissect.names import ICMP_TYPES, UNREACH_CODES

if TYPE_CHECKING:
    from packetlab.proto.dissect.walker import Walker


def icmp(
    w: Walker, off: int, end: int, *, pseudo: bytes | None = None, quoted: bool = False, first_fragment: bool = False
) -> None:
    """ICMP (IPv4): echo, and the errors that quote the datagram that caused them."""
    verify = not quoted and not first_fragment  # the checksum covers the whole message
    f = w.frame
    layer, cls = ("ICMP", "ICMP") if not quoted else ("ICMP(quoted)", "ICMPerror")
    if off + 4 > end:
        w.truncated(layer, off, end, 8)
        return
    n = w.begin(cls)
    typ, code, chksum = struct.unpack_from("!BBH", f, off)
    w.add(f"{layer}.type", off, 1, typ, note=ICMP_TYPES.get(typ, ""), scapy=(cls, "type", n))
    w.add(
        f"{layer}.code",
        off + 1,
        1,
        code,
        note=UNREACH_CODES.get(code, "") if typ == 3 else "",
        scapy=(cls, "code", n),
    )
    note = checksum_note(chksum, f[off:end], 2) if verify else "not verified: the message is not all here"
    w.add(f"{layer}.chksum", off + 2, 2, chksum, note=note, scapy=(cls, "chksum", n))
    if off + 8 > end:
        w.truncated(layer, off + 4, end, 4)
        return
    if typ in (0, 8, 13, 14, 15, 16, 17, 18):
        ident, seq = struct.unpack_from("!HH", f, off + 4)
        w.add(f"{layer}.id", off + 4, 2, ident, note="identifier (matches replies to requests)", scapy=(cls, "id", n))
        w.add(f"{layer}.seq", off + 6, 2, seq, note="sequence number", scapy=(cls, "seq", n))
        w.payload("Payload", off + 8, end, note=f"{end - off - 8} bytes of echo data")
    elif typ in (3, 11, 12):
        if typ == 3 and code == 4:
            w.add(f"{layer}.unused", off + 4, 2, struct.unpack_from("!H", f, off + 4)[0], note="unused")
            mtu = struct.unpack_from("!H", f, off + 6)[0]
            w.add(
                f"{layer}.nexthopmtu",
                off + 6,
                2,
                mtu,
                note="MTU of the next hop: send at most this",
                scapy=(cls, "nexthopmtu", n),
            )
        else:
            w.add(f"{layer}.unused", off + 4, 4, struct.unpack_from("!I", f, off + 4)[0], note="unused")
        if not quoted:
            ipv4(w, off + 8, end, quoted=True)  # the start of the datagram that caused the error
        else:
            w.payload(layer, off + 8, end)
    else:
        w.add(f"{layer}.rest", off + 4, 4, f[off + 4 : off + 8], note="rest of header")
        w.payload("Payload", off + 8, end)
