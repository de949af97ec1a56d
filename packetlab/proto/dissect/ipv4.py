"""IPv4: the header, its options, fragments; then on to the protocol it carries."""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING, Any

from packetlab.proto.dissect.checksums import checksum_note, pseudo_v4
from packetlab.proto.dissect.names import IP_PROTO, IPV4_OPTIONS

if TYPE_CHECKING:
    from packetlab.proto.dissect.walker import Walker


def ipv4(w: Walker, off: int, end: int, *, quoted: bool = False) -> None:
    """An IPv4 header (`quoted`: the one inside an ICMP error), then its data: a fragment, or the next protocol."""
    f = w.frame
    layer, cls = ("IPv4", "IP") if not quoted else ("IPv4(quoted)", "IPerror")
    if off + 20 > end:
        w.truncated(layer, off, end, 20)
        return
    n = w.begin(cls)
    vihl, tos, total, ident, flagfrag, ttl, proto, chksum = struct.unpack_from("!BBHHHBBH", f, off)
    version, ihl = vihl >> 4, vihl & 0x0F
    hlen = ihl * 4
    w.add(f"{layer}.version", off, 1, version, bits=(0, 4), scapy=(cls, "version", n))
    w.add(
        f"{layer}.ihl",
        off,
        1,
        ihl,
        bits=(4, 4),
        note=f"header length {ihl} x 4 = {hlen} bytes",
        scapy=(cls, "ihl", n),
    )
    w.add(f"{layer}.tos", off + 1, 1, tos, note=f"DSCP {tos >> 2}, ECN {tos & 3}", scapy=(cls, "tos", n))
    w.add(f"{layer}.len", off + 2, 2, total, note="header + data, bytes", scapy=(cls, "len", n))
    w.add(f"{layer}.id", off + 4, 2, ident, note="identification (groups fragments)", scapy=(cls, "id", n))
    flags, frag = flagfrag >> 13, flagfrag & 0x1FFF
    names = [name for bit, name in ((4, "reserved bit set"), (2, "DF"), (1, "MF")) if flags & bit]
    w.add(f"{layer}.flags", off + 6, 2, flags, bits=(0, 3), note=" ".join(names) or "none", scapy=(cls, "flags", n))
    w.add(
        f"{layer}.frag",
        off + 6,
        2,
        frag,
        bits=(3, 13),
        note=f"fragment offset {frag} x 8 = {frag * 8} bytes",
        scapy=(cls, "frag", n),
    )
    w.add(f"{layer}.ttl", off + 8, 1, ttl, note="time to live (hops)", scapy=(cls, "ttl", n))
    w.add(f"{layer}.proto", off + 9, 1, proto, note=IP_PROTO.get(proto, ""), scapy=(cls, "proto", n))
    header_ok = hlen >= 20 and off + hlen <= end
    note = checksum_note(chksum, f[off : off + hlen], 10) if header_ok else "not verified: header incomplete"
    w.add(f"{layer}.chksum", off + 10, 2, chksum, note=note, scapy=(cls, "chksum", n))
    src, dst = f[off + 12 : off + 16], f[off + 16 : off + 20]
    w.add(f"{layer}.src", off + 12, 4, str(ipaddress.IPv4Address(src)), scapy=(cls, "src", n))
    w.add(f"{layer}.dst", off + 16, 4, str(ipaddress.IPv4Address(dst)), scapy=(cls, "dst", n))
    if version != 4 or hlen < 20:
        w.payload(layer, off + 20, end, note=f"not decoded: version {version}, IHL {ihl} is invalid")
        return
    if off + hlen > end:
        w.truncated(layer, off + 20, end, hlen - 20)
        return
    ipv4_options(w, layer, off + 20, off + hlen)
    data_end = min(end, off + total) if total >= hlen else end
    complete = not quoted and off + total <= end and total >= hlen
    if frag:
        w.payload(
            "Fragment",
            off + hlen,
            data_end,
            note=f"{IP_PROTO.get(proto, f'protocol {proto}')} data from byte {frag * 8} of the original datagram",
        )
    elif flags & 1:  # first fragment: the L4 header is here, the checksum spans all
        w.upper(proto, off + hlen, data_end, pseudo=None, quoted=quoted, first_fragment=True)
    else:
        pseudo = pseudo_v4(src, dst, proto, data_end - off - hlen) if complete else None
        w.upper(proto, off + hlen, data_end, pseudo=pseudo, quoted=quoted)
    if not quoted:
        w.padding(data_end, end)


def ipv4_options(w: Walker, layer: str, off: int, end: int) -> None:
    """The options between byte 20 and the header length (record route, router alert, ...)."""
    w.options(layer, off, end, _describe_ipv4_option, _read_ipv4_option, padding="padding to a 4-byte boundary")


def _describe_ipv4_option(kind: int) -> tuple[str, str]:
    desc = f"type {kind} (copy {kind >> 7}, class {(kind >> 5) & 3}, number {kind & 31})"
    return IPV4_OPTIONS.get(kind, f"option{kind}"), desc


def _read_ipv4_option(kind: int, data: bytes) -> tuple[Any, str]:
    if kind in (7, 131, 137) and len(data) >= 1:  # record route, loose and strict source route
        routes = [str(ipaddress.IPv4Address(data[i : i + 4])) for i in range(1, len(data) - 3, 4)]
        return {"pointer": data[0], "routes": routes}, ""
    if kind == 148 and len(data) == 2:  # router alert
        return struct.unpack("!H", data)[0], ""
    return data, ""
