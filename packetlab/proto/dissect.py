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
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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
]

ETH_P = {
    0x0800: "IPv4",
    0x0806: "ARP",
    0x86DD: "IPv6",
    0x8100: "802.1Q",
    0x88A8: "802.1ad",
    0x88CC: "LLDP",
    0x8847: "MPLS",
}
IP_PROTO = {
    0: "IPv6 hop-by-hop",
    1: "ICMP",
    2: "IGMP",
    6: "TCP",
    17: "UDP",
    43: "IPv6 routing",
    44: "IPv6 fragment",
    47: "GRE",
    50: "ESP",
    58: "ICMPv6",
    59: "no next header",
    60: "IPv6 dest. options",
}
ICMP_TYPES = {
    0: "echo-reply",
    3: "destination-unreachable",
    5: "redirect",
    8: "echo-request",
    11: "time-exceeded",
    12: "parameter-problem",
    13: "timestamp",
    14: "timestamp-reply",
}
UNREACH_CODES = {
    0: "network unreachable",
    1: "host unreachable",
    2: "protocol unreachable",
    3: "port unreachable",
    4: "fragmentation needed and DF set",
    5: "source route failed",
    9: "network prohibited",
    10: "host prohibited",
    13: "administratively prohibited",
}
ICMP6_TYPES = {
    1: "destination-unreachable",
    2: "packet-too-big",
    3: "time-exceeded",
    4: "parameter-problem",
    128: "echo-request",
    129: "echo-reply",
    130: "MLD query",
    131: "MLDv1 report",
    133: "router-solicitation",
    134: "router-advertisement",
    135: "neighbor-solicitation",
    136: "neighbor-advertisement",
    137: "redirect",
    143: "MLDv2 report",
}
ND_OPTIONS = {
    1: "source link-layer address",
    2: "target link-layer address",
    3: "prefix information",
    4: "redirected header",
    5: "MTU",
}
ARP_OPS = {1: "who-has (request)", 2: "is-at (reply)"}
IPV4_OPTIONS = {
    0: "EOL",
    1: "NOP",
    7: "RR",
    68: "Timestamp",
    130: "Security",
    131: "LSRR",
    136: "StreamId",
    137: "SSRR",
    148: "RouterAlert",
}
TCP_OPTIONS = {
    0: "EOL",
    1: "NOP",
    2: "MSS",
    3: "WScale",
    4: "SAckOK",
    5: "SAck",
    8: "Timestamp",
    28: "UTO",
    29: "AO",
    30: "MPTCP",
    34: "TFO",
}
#: TCP flag bits, low to high (the 9-bit flags field as scapy and RFC 3168 lay it out).
TCP_FLAGS = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"]


# ---- rows ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Field:
    """One header field: where it is in the frame, its bytes, and what they mean.

    Iterating a Field yields ``(offset, length, name, raw, value)``, so a
    dissection unpacks like a list of 5-tuples. Fields narrower than a byte
    (IPv4's version and IHL, TCP's flags) share their bytes with neighbours;
    `bits` says which bits of those bytes are theirs.
    """

    offset: int  # first byte, counted from the start of the frame
    length: int  # number of bytes the field touches
    name: str  # "<layer>.<field>", e.g. "IPv4.ttl"
    raw: str  # those bytes in hex, e.g. "40"
    value: Any  # decoded: 64, "10.0.1.1", "66:b5:07:b8:49:85", ...
    bits: tuple[int, int] | None = None  # (first bit, width) inside the bytes, for sub-byte fields
    note: str = ""  # what the value means: "ICMP", "✔ checksum correct", ...
    scapy: tuple[str, str, int] | None = None  # (scapy layer, field, occurrence) for cross-checks

    def __iter__(self) -> Iterator[Any]:
        return iter((self.offset, self.length, self.name, self.raw, self.value))

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def bytes(self) -> bytes:
        return bytes.fromhex(self.raw)

    def bitmask(self) -> str:
        """The field's bits in their bytes, others dotted: ``0100 ....`` for IPv4's version."""
        if self.bits is None:
            return self.raw
        start, width = self.bits
        word = "".join(f"{b:08b}" for b in self.bytes)
        shown = "".join(c if start <= i < start + width else "." for i, c in enumerate(word))
        return " ".join(shown[i : i + 4] for i in range(0, len(shown), 4))


class Dissection(list):
    """The rows of one frame, in order; index by position or by field name."""

    def __init__(self, rows: Iterable[Field], frame: bytes) -> None:
        super().__init__(rows)
        self.frame = frame

    def field(self, name: str, occurrence: int = 0) -> Field:
        """The `occurrence`-th row called `name` (KeyError lists the names that exist)."""
        found = [f for f in self if f.name == name]
        if len(found) <= occurrence:
            raise KeyError(f"no field {name!r} in this frame; fields: {', '.join(dict.fromkeys(f.name for f in self))}")
        return found[occurrence]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self.field(name).value
        except KeyError:
            return default

    def __getitem__(self, key):  # type: ignore[override]
        if isinstance(key, str):
            return self.field(key).value
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return any(f.name == key for f in self)
        return super().__contains__(key)

    @property
    def layers(self) -> list[str]:
        """Layer names in order, e.g. ['Ethernet', 'IPv4', 'ICMP', 'Payload']."""
        return list(dict.fromkeys(f.layer for f in self))

    def checksums(self) -> list[Field]:
        """The checksum rows (their notes say whether each one is correct)."""
        return [f for f in self if f.name.endswith((".chksum", ".cksum"))]

    def __str__(self) -> str:
        return format_fields(self)


# ---- checksums -------------------------------------------------------------------------------
def ones_sum(data: bytes) -> int:
    """The ones'-complement sum of `data` as 16-bit big-endian words, carries folded in (odd length: zero-padded)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones'-complement of the ones'-complement sum of 16-bit big-endian words.

    Over data whose checksum field holds the right value, the result is 0.
    """
    return ~ones_sum(data) & 0xFFFF


def ipv4_header_checksum(header: bytes) -> int:
    """The checksum an IPv4 header should carry (its own checksum field is ignored)."""
    header = bytes(header)
    return internet_checksum(header[:10] + b"\x00\x00" + header[12:])


def _pseudo_v4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def _pseudo_v6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, proto)


def _checksum_note(
    stored: int, data: bytes, field_at: int, pseudo: bytes = b"", *, udp: bool = False, zero_means_none: bool = False
) -> str:
    """Verify a checksum and say so; recognise one left for the NIC (checksum offload)."""
    if zero_means_none and stored == 0:
        return "0: no checksum (allowed for UDP over IPv4)"
    zeroed = data[:field_at] + b"\x00\x00" + data[field_at + 2 :]
    expected = internet_checksum(pseudo + zeroed)
    if udp and expected == 0:
        expected = 0xFFFF  # UDP transmits a computed 0 as 0xFFFF (0 means "none")
    if stored == expected:
        return "✔ checksum correct"
    if pseudo and stored == ones_sum(pseudo):
        # CHECKSUM_PARTIAL: the stack wrote the pseudo-header sum and left the rest to the NIC
        return "offloaded: only the pseudo-header sum (the NIC would finish it; veth never does)"
    return f"✘ wrong checksum: should be 0x{expected:04x}"


# ---- the walker ------------------------------------------------------------------------------
def _mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


class _Walker:
    """Emits rows for one frame; tracks which scapy layer occurrence each row belongs to."""

    def __init__(self, frame: bytes) -> None:
        self.frame = frame
        self.rows: list[Field] = []
        self._seen: dict[str, int] = {}

    def begin(self, scapy_layer: str | None) -> int:
        """Start a layer that scapy also decodes; returns its occurrence index."""
        if scapy_layer is None:
            return 0
        n = self._seen.get(scapy_layer, -1) + 1
        self._seen[scapy_layer] = n
        return n

    def add(
        self,
        name: str,
        offset: int,
        length: int,
        value: Any,
        *,
        bits: tuple[int, int] | None = None,
        note: str = "",
        scapy: tuple[str, str, int] | None = None,
    ) -> Field:
        row = Field(offset, length, name, self.frame[offset : offset + length].hex(), value, bits, note, scapy)
        self.rows.append(row)
        return row

    def truncated(self, layer: str, offset: int, end: int, need: int) -> None:
        have = max(0, end - offset)
        self.add(
            f"{layer}.truncated",
            offset,
            have,
            self.frame[offset:end],
            note=f"frame ends: the {layer} header needs {need} bytes here, only {have} left",
        )

    def payload(self, layer: str, offset: int, end: int, note: str = "") -> None:
        if end > offset:
            data = self.frame[offset:end]
            self.add(f"{layer}.data", offset, end - offset, data, note=note or f"{end - offset} bytes")

    # -- layer 2 -----------------------------------------------------------------------------
    def ethernet(self) -> None:
        f, end = self.frame, len(self.frame)
        if end < 14:
            self.truncated("Ethernet", 0, end, 14)
            return
        n = self.begin("Ether")
        self.add("Ethernet.dst", 0, 6, _mac(f[0:6]), note=_mac_kind(f[0:6]), scapy=("Ether", "dst", n))
        self.add("Ethernet.src", 6, 6, _mac(f[6:12]), scapy=("Ether", "src", n))
        etype = struct.unpack_from("!H", f, 12)[0]
        self.add("Ethernet.type", 12, 2, etype, note=_ethertype(etype), scapy=("Ether", "type", n))
        off = 14
        while etype in (0x8100, 0x88A8):  # VLAN tags (802.1ad outer, 802.1Q inner)
            layer, cls = ("802.1Q", "Dot1Q") if etype == 0x8100 else ("802.1ad", "Dot1AD")
            if off + 4 > end:
                self.truncated(layer, off, end, 4)
                return
            n = self.begin(cls)
            tci = struct.unpack_from("!H", f, off)[0]
            self.add(
                f"{layer}.prio", off, 2, tci >> 13, bits=(0, 3), note="priority code point", scapy=(cls, "prio", n)
            )
            self.add(f"{layer}.dei", off, 2, (tci >> 12) & 1, bits=(3, 1), note="drop eligible", scapy=(cls, "dei", n))
            self.add(f"{layer}.vlan", off, 2, tci & 0x0FFF, bits=(4, 12), note="VLAN id", scapy=(cls, "vlan", n))
            etype = struct.unpack_from("!H", f, off + 2)[0]
            self.add(f"{layer}.type", off + 2, 2, etype, note=_ethertype(etype), scapy=(cls, "type", n))
            off += 4
        if etype == 0x0806:
            self.arp(off, end)
        elif etype == 0x0800:
            self.ipv4(off, end)
        elif etype == 0x86DD:
            self.ipv6(off, end)
        else:
            self.payload("Payload", off, end, note=f"EtherType 0x{etype:04x} is not decoded here")

    def arp(self, off: int, end: int) -> None:
        f = self.frame
        if off + 8 > end:
            self.truncated("ARP", off, end, 28)
            return
        n = self.begin("ARP")
        hwtype, ptype, hwlen, plen, op = struct.unpack_from("!HHBBH", f, off)
        self.add("ARP.hwtype", off, 2, hwtype, note="Ethernet" if hwtype == 1 else "", scapy=("ARP", "hwtype", n))
        self.add("ARP.ptype", off + 2, 2, ptype, note=_ethertype(ptype), scapy=("ARP", "ptype", n))
        self.add("ARP.hwlen", off + 4, 1, hwlen, note="bytes per hardware address", scapy=("ARP", "hwlen", n))
        self.add("ARP.plen", off + 5, 1, plen, note="bytes per protocol address", scapy=("ARP", "plen", n))
        self.add("ARP.op", off + 6, 2, op, note=ARP_OPS.get(op, ""), scapy=("ARP", "op", n))
        pos = off + 8
        if pos + 2 * (hwlen + plen) > end:
            self.truncated("ARP", pos, end, 2 * (hwlen + plen))
            return
        ether_ip = hwlen == 6 and plen == 4
        for who in ("src", "dst"):
            hw, pa = f[pos : pos + hwlen], f[pos + hwlen : pos + hwlen + plen]
            role = "sender" if who == "src" else "target"
            self.add(
                f"ARP.hw{who}",
                pos,
                hwlen,
                _mac(hw) if ether_ip else hw,
                note=f"{role} MAC" + (" (unknown yet: zero)" if who == "dst" and not any(hw) else ""),
                scapy=("ARP", f"hw{who}", n) if ether_ip else None,
            )
            self.add(
                f"ARP.p{who}",
                pos + hwlen,
                plen,
                str(ipaddress.IPv4Address(pa)) if ether_ip else pa,
                note=f"{role} IP",
                scapy=("ARP", f"p{who}", n) if ether_ip else None,
            )
            pos += hwlen + plen
        self.padding(pos, end)

    def padding(self, off: int, end: int) -> None:
        if end > off:
            self.add(
                "Ethernet.padding",
                off,
                end - off,
                self.frame[off:end],
                note="bytes after the packet (Ethernet pads frames to 60 bytes)",
            )

    # -- IPv4 --------------------------------------------------------------------------------
    def ipv4(self, off: int, end: int, *, quoted: bool = False) -> None:
        f = self.frame
        layer, cls = ("IPv4", "IP") if not quoted else ("IPv4(quoted)", "IPerror")
        if off + 20 > end:
            self.truncated(layer, off, end, 20)
            return
        n = self.begin(cls)
        vihl, tos, total, ident, flagfrag, ttl, proto, chksum = struct.unpack_from("!BBHHHBBH", f, off)
        version, ihl = vihl >> 4, vihl & 0x0F
        hlen = ihl * 4
        self.add(f"{layer}.version", off, 1, version, bits=(0, 4), scapy=(cls, "version", n))
        self.add(
            f"{layer}.ihl",
            off,
            1,
            ihl,
            bits=(4, 4),
            note=f"header length {ihl} x 4 = {hlen} bytes",
            scapy=(cls, "ihl", n),
        )
        self.add(f"{layer}.tos", off + 1, 1, tos, note=f"DSCP {tos >> 2}, ECN {tos & 3}", scapy=(cls, "tos", n))
        self.add(f"{layer}.len", off + 2, 2, total, note="header + data, bytes", scapy=(cls, "len", n))
        self.add(f"{layer}.id", off + 4, 2, ident, note="identification (groups fragments)", scapy=(cls, "id", n))
        flags, frag = flagfrag >> 13, flagfrag & 0x1FFF
        names = [name for bit, name in ((4, "reserved bit set"), (2, "DF"), (1, "MF")) if flags & bit]
        self.add(
            f"{layer}.flags", off + 6, 2, flags, bits=(0, 3), note=" ".join(names) or "none", scapy=(cls, "flags", n)
        )
        self.add(
            f"{layer}.frag",
            off + 6,
            2,
            frag,
            bits=(3, 13),
            note=f"fragment offset {frag} x 8 = {frag * 8} bytes",
            scapy=(cls, "frag", n),
        )
        self.add(f"{layer}.ttl", off + 8, 1, ttl, note="time to live (hops)", scapy=(cls, "ttl", n))
        self.add(f"{layer}.proto", off + 9, 1, proto, note=IP_PROTO.get(proto, ""), scapy=(cls, "proto", n))
        header_ok = hlen >= 20 and off + hlen <= end
        note = _checksum_note(chksum, f[off : off + hlen], 10) if header_ok else "not verified: header incomplete"
        self.add(f"{layer}.chksum", off + 10, 2, chksum, note=note, scapy=(cls, "chksum", n))
        src, dst = f[off + 12 : off + 16], f[off + 16 : off + 20]
        self.add(f"{layer}.src", off + 12, 4, str(ipaddress.IPv4Address(src)), scapy=(cls, "src", n))
        self.add(f"{layer}.dst", off + 16, 4, str(ipaddress.IPv4Address(dst)), scapy=(cls, "dst", n))
        if version != 4 or hlen < 20:
            self.payload(layer, off + 20, end, note=f"not decoded: version {version}, IHL {ihl} is invalid")
            return
        if off + hlen > end:
            self.truncated(layer, off + 20, end, hlen - 20)
            return
        self.ipv4_options(layer, off + 20, off + hlen)
        data_end = min(end, off + total) if total >= hlen else end
        complete = not quoted and off + total <= end and total >= hlen
        if frag:
            self.payload(
                "Fragment",
                off + hlen,
                data_end,
                note=f"{IP_PROTO.get(proto, f'protocol {proto}')} data from byte {frag * 8} of the original datagram",
            )
        elif flags & 1:  # first fragment: the L4 header is here, the checksum spans all
            self.upper(proto, off + hlen, data_end, pseudo=None, quoted=quoted, first_fragment=True)
        else:
            pseudo = _pseudo_v4(src, dst, proto, data_end - off - hlen) if complete else None
            self.upper(proto, off + hlen, data_end, pseudo=pseudo, quoted=quoted)
        if not quoted:
            self.padding(data_end, end)

    def ipv4_options(self, layer: str, off: int, end: int) -> None:
        f = self.frame
        pos = off
        while pos < end:
            kind = f[pos]
            name = IPV4_OPTIONS.get(kind, f"option{kind}")
            desc = f"type {kind} (copy {kind >> 7}, class {(kind >> 5) & 3}, number {kind & 31})"
            if kind == 0:
                self.add(f"{layer}.opt.EOL", pos, 1, None, note="end of options")
                if end > pos + 1:
                    self.add(
                        f"{layer}.opt.padding",
                        pos + 1,
                        end - pos - 1,
                        f[pos + 1 : end],
                        note="padding to a 4-byte boundary",
                    )
                return
            if kind == 1:
                self.add(f"{layer}.opt.NOP", pos, 1, None, note="no operation (alignment)")
                pos += 1
                continue
            if pos + 2 > end or f[pos + 1] < 2 or pos + f[pos + 1] > end:
                self.add(f"{layer}.opt.malformed", pos, end - pos, f[pos:end], note=desc + ": bad length")
                return
            length = f[pos + 1]
            data = f[pos + 2 : pos + length]
            if kind in (7, 131, 137) and length >= 3:
                value: Any = {
                    "pointer": data[0],
                    "routes": [str(ipaddress.IPv4Address(data[i : i + 4])) for i in range(1, len(data) - 3, 4)],
                }
            elif kind == 148 and length == 4:
                value = struct.unpack("!H", data)[0]
            else:
                value = data
            self.add(f"{layer}.opt.{name}", pos, length, value, note=f"{desc}, length {length}")
            pos += length

    # -- IPv6 --------------------------------------------------------------------------------
    def ipv6(self, off: int, end: int) -> None:
        f = self.frame
        if off + 40 > end:
            self.truncated("IPv6", off, end, 40)
            return
        n = self.begin("IPv6")
        word, plen, nh, hlim = struct.unpack_from("!IHBB", f, off)
        self.add("IPv6.version", off, 4, word >> 28, bits=(0, 4), scapy=("IPv6", "version", n))
        self.add("IPv6.tc", off, 4, (word >> 20) & 0xFF, bits=(4, 8), note="traffic class", scapy=("IPv6", "tc", n))
        self.add("IPv6.fl", off, 4, word & 0xFFFFF, bits=(12, 20), note="flow label", scapy=("IPv6", "fl", n))
        self.add(
            "IPv6.plen", off + 4, 2, plen, note="payload length (after this 40-byte header)", scapy=("IPv6", "plen", n)
        )
        self.add("IPv6.nh", off + 6, 1, nh, note=IP_PROTO.get(nh, ""), scapy=("IPv6", "nh", n))
        self.add("IPv6.hlim", off + 7, 1, hlim, note="hop limit", scapy=("IPv6", "hlim", n))
        src, dst = f[off + 8 : off + 24], f[off + 24 : off + 40]
        self.add("IPv6.src", off + 8, 16, str(ipaddress.IPv6Address(src)), note=_v6_kind(src), scapy=("IPv6", "src", n))
        self.add(
            "IPv6.dst", off + 24, 16, str(ipaddress.IPv6Address(dst)), note=_v6_kind(dst), scapy=("IPv6", "dst", n)
        )
        data_end = min(end, off + 40 + plen)
        pos, proto, fragment = off + 40, nh, False
        ext_cls = {0: "IPv6ExtHdrHopByHop", 43: "IPv6ExtHdrRouting", 60: "IPv6ExtHdrDestOpt"}
        names = {0: "HopByHop", 43: "Routing", 60: "DestOpt"}
        while proto in (0, 43, 60, 44):
            if proto == 44:
                if pos + 8 > data_end:
                    self.truncated("IPv6Frag", pos, data_end, 8)
                    return
                m = self.begin("IPv6ExtHdrFragment")
                nxt, _res, offm, ident = struct.unpack_from("!BBHI", f, pos)
                sc = "IPv6ExtHdrFragment"
                self.add("IPv6Frag.nh", pos, 1, nxt, note=IP_PROTO.get(nxt, ""), scapy=(sc, "nh", m))
                self.add("IPv6Frag.res1", pos + 1, 1, _res, scapy=(sc, "res1", m))
                self.add(
                    "IPv6Frag.offset",
                    pos + 2,
                    2,
                    offm >> 3,
                    bits=(0, 13),
                    note=f"fragment offset {offm >> 3} x 8 = {(offm >> 3) * 8} bytes",
                    scapy=(sc, "offset", m),
                )
                self.add("IPv6Frag.res2", pos + 2, 2, (offm >> 1) & 3, bits=(13, 2), scapy=(sc, "res2", m))
                self.add(
                    "IPv6Frag.m",
                    pos + 2,
                    2,
                    offm & 1,
                    bits=(15, 1),
                    note="more fragments" if offm & 1 else "last fragment",
                    scapy=(sc, "m", m),
                )
                self.add("IPv6Frag.id", pos + 4, 4, ident, scapy=(sc, "id", m))
                fragment = fragment or bool(offm >> 3) or bool(offm & 1)
                proto, pos = nxt, pos + 8
                if offm >> 3:
                    self.payload(
                        "Fragment", pos, data_end, note=f"data from byte {(offm >> 3) * 8} of the original packet"
                    )
                    return
                continue
            if pos + 2 > data_end:
                self.truncated(f"IPv6{names[proto]}", pos, data_end, 8)
                return
            sc = ext_cls[proto]
            m = self.begin(sc)
            nxt, hlen = f[pos], f[pos + 1]
            size = (hlen + 1) * 8
            layer = f"IPv6{names[proto]}"
            self.add(f"{layer}.nh", pos, 1, nxt, note=IP_PROTO.get(nxt, ""), scapy=(sc, "nh", m))
            self.add(f"{layer}.len", pos + 1, 1, hlen, note=f"({hlen} + 1) x 8 = {size} bytes", scapy=(sc, "len", m))
            if pos + size > data_end:
                self.truncated(layer, pos + 2, data_end, size - 2)
                return
            self.add(
                f"{layer}.options",
                pos + 2,
                size - 2,
                f[pos + 2 : pos + size],
                note=_v6_options(f[pos + 2 : pos + size]),
            )
            proto, pos = nxt, pos + size
        pseudo = None if fragment else _pseudo_v6(src, dst, proto, data_end - pos)
        self.upper(proto, pos, data_end, pseudo=pseudo, first_fragment=fragment)
        self.padding(data_end, end)

    # -- layer 4 -----------------------------------------------------------------------------
    def upper(
        self,
        proto: int,
        off: int,
        end: int,
        *,
        pseudo: bytes | None,
        quoted: bool = False,
        first_fragment: bool = False,
    ) -> None:
        if proto == 1:
            self.icmp(off, end, quoted=quoted, verify=not quoted and not first_fragment)
        elif proto == 6:
            self.tcp(off, end, pseudo, quoted=quoted, first_fragment=first_fragment)
        elif proto == 17:
            self.udp(off, end, pseudo, quoted=quoted, first_fragment=first_fragment)
        elif proto == 58:
            self.icmp6(off, end, pseudo, first_fragment=first_fragment)
        elif proto == 59:
            self.payload("Payload", off, end, note="no next header")
        else:
            self.payload("Payload", off, end, note=f"protocol {proto} ({IP_PROTO.get(proto, 'not decoded here')})")

    def icmp(self, off: int, end: int, *, quoted: bool = False, verify: bool = True) -> None:
        f = self.frame
        layer, cls = ("ICMP", "ICMP") if not quoted else ("ICMP(quoted)", "ICMPerror")
        if off + 4 > end:
            self.truncated(layer, off, end, 8)
            return
        n = self.begin(cls)
        typ, code, chksum = struct.unpack_from("!BBH", f, off)
        self.add(f"{layer}.type", off, 1, typ, note=ICMP_TYPES.get(typ, ""), scapy=(cls, "type", n))
        self.add(
            f"{layer}.code",
            off + 1,
            1,
            code,
            note=UNREACH_CODES.get(code, "") if typ == 3 else "",
            scapy=(cls, "code", n),
        )
        note = _checksum_note(chksum, f[off:end], 2) if verify else "not verified: the message is not all here"
        self.add(f"{layer}.chksum", off + 2, 2, chksum, note=note, scapy=(cls, "chksum", n))
        if off + 8 > end:
            self.truncated(layer, off + 4, end, 4)
            return
        if typ in (0, 8, 13, 14, 15, 16, 17, 18):
            ident, seq = struct.unpack_from("!HH", f, off + 4)
            self.add(
                f"{layer}.id", off + 4, 2, ident, note="identifier (matches replies to requests)", scapy=(cls, "id", n)
            )
            self.add(f"{layer}.seq", off + 6, 2, seq, note="sequence number", scapy=(cls, "seq", n))
            self.payload("Payload", off + 8, end, note=f"{end - off - 8} bytes of echo data")
        elif typ in (3, 11, 12):
            if typ == 3 and code == 4:
                self.add(f"{layer}.unused", off + 4, 2, struct.unpack_from("!H", f, off + 4)[0], note="unused")
                mtu = struct.unpack_from("!H", f, off + 6)[0]
                self.add(
                    f"{layer}.nexthopmtu",
                    off + 6,
                    2,
                    mtu,
                    note="MTU of the next hop: send at most this",
                    scapy=(cls, "nexthopmtu", n),
                )
            else:
                self.add(f"{layer}.unused", off + 4, 4, struct.unpack_from("!I", f, off + 4)[0], note="unused")
            if not quoted:
                self.ipv4(off + 8, end, quoted=True)  # the start of the datagram that caused the error
            else:
                self.payload(layer, off + 8, end)
        else:
            self.add(f"{layer}.rest", off + 4, 4, f[off + 4 : off + 8], note="rest of header")
            self.payload("Payload", off + 8, end)

    def tcp(
        self, off: int, end: int, pseudo: bytes | None, *, quoted: bool = False, first_fragment: bool = False
    ) -> None:
        f = self.frame
        layer, cls = ("TCP", "TCP") if not quoted else ("TCP(quoted)", "TCPerror")
        if off + 20 > end:
            if quoted and off + 8 <= end:  # ICMP errors quote only 8 bytes: the ports and seq
                n = self.begin(cls)
                sport, dport, seq = struct.unpack_from("!HHI", f, off)
                self.add(f"{layer}.sport", off, 2, sport, scapy=(cls, "sport", n))
                self.add(f"{layer}.dport", off + 2, 2, dport, scapy=(cls, "dport", n))
                self.add(f"{layer}.seq", off + 4, 4, seq, scapy=(cls, "seq", n))
                return
            self.truncated(layer, off, end, 20)
            return
        n = self.begin(cls)
        sport, dport, seq, ack, word, window, chksum, urg = struct.unpack_from("!HHIIHHHH", f, off)
        doff = word >> 12
        flags = word & 0x1FF
        self.add(f"{layer}.sport", off, 2, sport, note="source port", scapy=(cls, "sport", n))
        self.add(f"{layer}.dport", off + 2, 2, dport, note="destination port", scapy=(cls, "dport", n))
        self.add(
            f"{layer}.seq",
            off + 4,
            4,
            seq,
            note="sequence number of the first data byte (or of the SYN/FIN)",
            scapy=(cls, "seq", n),
        )
        self.add(
            f"{layer}.ack",
            off + 8,
            4,
            ack,
            note="next byte expected from the peer" if flags & 0x10 else "(ACK not set)",
            scapy=(cls, "ack", n),
        )
        self.add(
            f"{layer}.dataofs",
            off + 12,
            1,
            doff,
            bits=(0, 4),
            note=f"header length {doff} x 4 = {doff * 4} bytes",
            scapy=(cls, "dataofs", n),
        )
        self.add(f"{layer}.reserved", off + 12, 1, (word >> 9) & 7, bits=(4, 3), scapy=(cls, "reserved", n))
        self.add(f"{layer}.flags", off + 12, 2, flags, bits=(7, 9), note=tcp_flag_names(flags), scapy=(cls, "flags", n))
        self.add(
            f"{layer}.window", off + 14, 2, window, note="receive window (before scaling)", scapy=(cls, "window", n)
        )
        if pseudo is not None and not quoted:
            note = _checksum_note(chksum, f[off:end], 16, pseudo)
        else:
            note = "not verified: " + ("a fragment" if first_fragment else "the segment is not all here")
        self.add(f"{layer}.chksum", off + 16, 2, chksum, note=note, scapy=(cls, "chksum", n))
        self.add(f"{layer}.urgptr", off + 18, 2, urg, note="urgent pointer", scapy=(cls, "urgptr", n))
        hlen = doff * 4
        if hlen < 20:
            self.payload(layer, off + 20, end, note=f"not decoded: data offset {doff} is invalid")
            return
        if off + hlen > end:
            self.truncated(layer, off + 20, end, hlen - 20)
            return
        self.tcp_options(layer, off + 20, off + hlen)
        self.payload("Payload", off + hlen, end)

    def tcp_options(self, layer: str, off: int, end: int) -> None:
        f = self.frame
        pos = off
        while pos < end:
            kind = f[pos]
            name = TCP_OPTIONS.get(kind, f"kind{kind}")
            if kind == 0:
                self.add(f"{layer}.opt.EOL", pos, 1, None, note="end of options")
                if end > pos + 1:
                    self.add(f"{layer}.opt.padding", pos + 1, end - pos - 1, f[pos + 1 : end], note="padding")
                return
            if kind == 1:
                self.add(f"{layer}.opt.NOP", pos, 1, None, note="no operation (alignment)")
                pos += 1
                continue
            if pos + 2 > end or f[pos + 1] < 2 or pos + f[pos + 1] > end:
                self.add(f"{layer}.opt.malformed", pos, end - pos, f[pos:end], note=f"kind {kind}: bad length")
                return
            length = f[pos + 1]
            data = f[pos + 2 : pos + length]
            value: Any = data
            note = f"kind {kind}, length {length}"
            if kind == 2 and length == 4:
                value = struct.unpack("!H", data)[0]
                note += ": maximum segment size"
            elif kind == 3 and length == 3:
                value = data[0]
                note += f": window scale (x{1 << min(data[0], 14)})"
            elif kind == 4 and length == 2:
                value = b""
                note += ": selective ACKs permitted"
            elif kind == 5 and (length - 2) % 8 == 0:
                value = tuple(struct.unpack(f"!{(length - 2) // 4}I", data))
                note += ": SACK blocks"
            elif kind == 8 and length == 10:
                value = struct.unpack("!II", data)
                note += ": (TSval, TSecr)"
            self.add(f"{layer}.opt.{name}", pos, length, value, note=note)
            pos += length

    def udp(
        self, off: int, end: int, pseudo: bytes | None, *, quoted: bool = False, first_fragment: bool = False
    ) -> None:
        f = self.frame
        layer, cls = ("UDP", "UDP") if not quoted else ("UDP(quoted)", "UDPerror")
        if off + 8 > end:
            self.truncated(layer, off, end, 8)
            return
        n = self.begin(cls)
        sport, dport, length, chksum = struct.unpack_from("!HHHH", f, off)
        self.add(f"{layer}.sport", off, 2, sport, note="source port", scapy=(cls, "sport", n))
        self.add(f"{layer}.dport", off + 2, 2, dport, note="destination port", scapy=(cls, "dport", n))
        self.add(f"{layer}.len", off + 4, 2, length, note="header + data, bytes", scapy=(cls, "len", n))
        v4 = pseudo is not None and len(pseudo) == 12
        if pseudo is not None and not quoted and length == end - off:
            note = _checksum_note(chksum, f[off:end], 6, pseudo, udp=True, zero_means_none=v4)
        else:
            note = "not verified: " + ("a fragment" if first_fragment else "the datagram is not all here")
        self.add(f"{layer}.chksum", off + 6, 2, chksum, note=note, scapy=(cls, "chksum", n))
        if not quoted:
            self.payload("Payload", off + 8, end)

    def icmp6(self, off: int, end: int, pseudo: bytes | None, *, first_fragment: bool = False) -> None:
        f = self.frame
        if off + 4 > end:
            self.truncated("ICMPv6", off, end, 8)
            return
        typ, code, cksum = struct.unpack_from("!BBH", f, off)
        cls = _icmp6_class(typ, code, end - off)
        n = self.begin(cls)
        sc = (lambda fld: (cls, fld, n)) if cls else (lambda fld: None)
        self.add("ICMPv6.type", off, 1, typ, note=ICMP6_TYPES.get(typ, ""), scapy=sc("type"))
        self.add("ICMPv6.code", off + 1, 1, code, scapy=sc("code"))
        note = _checksum_note(cksum, f[off:end], 2, pseudo) if pseudo is not None else "not verified: a fragment"
        self.add("ICMPv6.cksum", off + 2, 2, cksum, note=note, scapy=sc("cksum"))
        if off + 8 > end:
            self.truncated("ICMPv6", off + 4, end, 4)
            return
        body = off + 4
        if typ in (128, 129):
            ident, seq = struct.unpack_from("!HH", f, body)
            self.add("ICMPv6.id", body, 2, ident, note="identifier", scapy=sc("id"))
            self.add("ICMPv6.seq", body + 2, 2, seq, note="sequence number", scapy=sc("seq"))
            self.payload("Payload", body + 4, end, note=f"{end - body - 4} bytes of echo data")
            return
        if typ in (135, 136):
            if body + 20 > end:
                self.truncated("ICMPv6", body, end, 20)
                return
            word = struct.unpack_from("!I", f, body)[0]
            if typ == 136:
                for bit, flag, meaning in (
                    (0, "R", "router"),
                    (1, "S", "solicited (answers an NS)"),
                    (2, "O", "override cached address"),
                ):
                    self.add(
                        f"ICMPv6.{flag}", body, 4, (word >> (31 - bit)) & 1, bits=(bit, 1), note=meaning, scapy=sc(flag)
                    )
                self.add("ICMPv6.res", body, 4, word & 0x1FFFFFFF, bits=(3, 29), note="reserved", scapy=sc("res"))
            else:
                self.add("ICMPv6.res", body, 4, word, note="reserved", scapy=sc("res"))
            tgt = f[body + 4 : body + 20]
            self.add(
                "ICMPv6.tgt",
                body + 4,
                16,
                str(ipaddress.IPv6Address(tgt)),
                note="target: the address being resolved" if typ == 135 else "target: the address that answers",
                scapy=sc("tgt"),
            )
            self.nd_options(body + 20, end)
            return
        if typ == 133:
            self.add("ICMPv6.res", body, 4, struct.unpack_from("!I", f, body)[0], note="reserved", scapy=sc("res"))
            self.nd_options(body + 4, end)
            return
        if typ == 134 and body + 12 <= end:
            chlim, flags, life, reach, retrans = struct.unpack_from("!BBHII", f, body)
            self.add("ICMPv6.chlim", body, 1, chlim, note="hop limit hosts should use", scapy=sc("chlim"))
            self.add("ICMPv6.M", body + 1, 1, flags >> 7, bits=(0, 1), note="managed (DHCPv6)", scapy=sc("M"))
            self.add("ICMPv6.O", body + 1, 1, (flags >> 6) & 1, bits=(1, 1), note="other config", scapy=sc("O"))
            self.add("ICMPv6.routerlifetime", body + 2, 2, life, note="seconds", scapy=sc("routerlifetime"))
            self.add("ICMPv6.reachabletime", body + 4, 4, reach, note="ms", scapy=sc("reachabletime"))
            self.add("ICMPv6.retranstimer", body + 8, 4, retrans, note="ms", scapy=sc("retranstimer"))
            self.nd_options(body + 12, end)
            return
        if typ == 2:
            self.add(
                "ICMPv6.mtu", body, 4, struct.unpack_from("!I", f, body)[0], note="MTU of the next hop", scapy=sc("mtu")
            )
            self.payload("ICMPv6", body + 4, end, note="the start of the packet that was too big")
            return
        self.add("ICMPv6.rest", body, 4, f[body : body + 4], note="rest of header")
        self.payload("Payload", body + 4, end)

    def nd_options(self, off: int, end: int) -> None:
        f = self.frame
        pos = off
        while pos + 2 <= end:
            typ, units = f[pos], f[pos + 1]
            size = units * 8
            if units == 0 or pos + size > end:
                self.add("NDopt.malformed", pos, end - pos, f[pos:end], note="option length 0 or past the end")
                return
            cls = {1: "ICMPv6NDOptSrcLLAddr", 2: "ICMPv6NDOptDstLLAddr"}.get(typ) if size == 8 else None
            n = self.begin(cls)
            sc = (lambda fld: (cls, fld, n)) if cls else (lambda fld: None)
            self.add("NDopt.type", pos, 1, typ, note=ND_OPTIONS.get(typ, ""), scapy=sc("type"))
            self.add("NDopt.len", pos + 1, 1, units, note=f"{units} x 8 = {size} bytes", scapy=sc("len"))
            if typ in (1, 2) and size == 8:
                self.add(
                    "NDopt.lladdr",
                    pos + 2,
                    6,
                    _mac(f[pos + 2 : pos + 8]),
                    note="link-layer (MAC) address",
                    scapy=sc("lladdr"),
                )
            else:
                self.add("NDopt.data", pos + 2, size - 2, f[pos + 2 : pos + size])
            pos += size
        if pos < end:
            self.payload("NDopt", pos, end, note="trailing bytes")


def _icmp6_class(typ: int, code: int, length: int) -> str | None:
    return {
        128: "ICMPv6EchoRequest",
        129: "ICMPv6EchoReply",
        133: "ICMPv6ND_RS",
        134: "ICMPv6ND_RA",
        135: "ICMPv6ND_NS",
        136: "ICMPv6ND_NA",
        2: "ICMPv6PacketTooBig",
    }.get(typ)


def _mac_kind(b: bytes) -> str:
    if b == b"\xff" * 6:
        return "broadcast: every host on the segment"
    if b[:2] == b"\x33\x33":
        return "IPv6 multicast (33:33 + low 32 bits of the group)"
    if b[0] & 1:
        return "multicast"
    return "unicast"


def _ethertype(t: int) -> str:
    if t <= 1500:
        return "an IEEE 802.3 length, not a type"
    return ETH_P.get(t, "")


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


def tcp_flag_names(flags: int) -> str:
    """'SYN ACK' for 0x12: the names of the set bits, in header order (high to low)."""
    names = [name for bit, name in enumerate(TCP_FLAGS) if flags & (1 << bit)]
    order = ["NS", "CWR", "ECE", "URG", "SYN", "FIN", "RST", "PSH", "ACK"]
    return " ".join(sorted(names, key=order.index)) or "none"


# ---- public entry points --------------------------------------------------------------------
def dissect(frame: bytes | Any) -> Dissection:
    """Decode an Ethernet frame (bytes, or anything bytes() accepts, e.g. a scapy packet)."""
    data = bytes(frame)
    walker = _Walker(data)
    walker.ethernet()
    return Dissection(walker.rows, data)


@dataclass(frozen=True)
class Comparison:
    """One decoded field next to scapy's value for it."""

    field: Field
    scapy_value: Any
    same: bool


def compare_with_scapy(frame: bytes | Any) -> list[Comparison]:
    """Decode `frame` here and with scapy; pair every field that both know.

    Values are compared after normalising representations (scapy's flag
    objects → int, address strings → ipaddress objects, MACs → lower case).
    """
    from scapy.layers.inet6 import IPv6  # noqa: F401 (registers every layer used below)
    from scapy.layers.l2 import Ether

    data = bytes(frame)
    pkt = Ether(data)
    out = []
    for row in dissect(data):
        if row.scapy is None:
            continue
        layer_name, field_name, occurrence = row.scapy
        layer = _scapy_layer(pkt, layer_name, occurrence)
        if layer is None:
            out.append(Comparison(row, "(scapy has no such layer)", False))
            continue
        value = layer.getfieldval(field_name)
        out.append(Comparison(row, value, _norm(row.value) == _norm(value)))
    return out


def _scapy_layer(pkt: Any, name: str, occurrence: int) -> Any:
    count = -1
    layer = pkt
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if layer.__class__.__name__ == name:
            count += 1
            if count == occurrence:
                return layer
        layer = layer.payload
    return None


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if type(value).__name__ == "FlagValue":
        return int(value)
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            return value.lower()
    return value


# ---- presentation ---------------------------------------------------------------------------
def hexdump(frame: bytes | Any, *, width: int = 16, start: int = 0, end: int | None = None) -> str:
    """Offsets, hex and printable ASCII, like ``tcpdump -XX`` / ``xxd``."""
    data = bytes(frame)
    end = len(data) if end is None else min(end, len(data))
    lines = []
    for row in range(start - start % width, end, width):
        chunk = data[row : row + width]
        cells = [(f"{b:02x}" if start <= row + i < end else "  ") for i, b in enumerate(chunk)]
        halves = " ".join(cells[:8]) + "  " + " ".join(cells[8:])
        text = "".join(chr(b) if 32 <= b < 127 and start <= row + i < end else "." for i, b in enumerate(chunk))
        lines.append(f"{row:04x}  {halves:<{3 * width + 1}} {text}")
    return "\n".join(lines)


def format_fields(rows: Sequence[Field], *, max_hex: int = 8, notes: bool = True) -> str:
    """A text table of dissected fields: offset, length, name, bytes (or bits), value, note."""
    table = [("offset", "len", "field", "bytes / bits", "value", "meaning" if notes else "")]
    for f in rows:
        raw = f.bitmask() if f.bits is not None else " ".join(f.raw[i : i + 2] for i in range(0, len(f.raw), 2))
        if f.bits is None and f.length > max_hex:
            raw = " ".join(f.raw[i : i + 2] for i in range(0, 2 * max_hex, 2)) + " …"
        value = f.value
        if isinstance(value, (bytes, bytearray)):
            value = (value[:max_hex].hex() + ("…" if len(value) > max_hex else "")) if value else "''"
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and f.name.endswith(("chksum", "cksum", ".type", ".id"))
            and f.length >= 2
        ):
            value = f"0x{value:0{2 * min(f.length, 4)}x} ({value})"
        table.append((str(f.offset), str(f.length), f.name, raw, str(value), f.note if notes else ""))
    widths = [max(len(r[i]) for r in table) for i in range(6)]
    lines = []
    for n, r in enumerate(table):
        lines.append(
            "  ".join(
                [r[0].rjust(widths[0]), r[1].rjust(widths[1])] + [c.ljust(w) for c, w in zip(r[2:], widths[2:])]
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_comparison(comparisons: Sequence[Comparison]) -> str:
    """A text table: each field's value from `dissect` next to scapy's, and whether they agree."""
    table = [("field", "dissect", "scapy", "same")]
    for c in comparisons:
        table.append((c.field.name, _short(c.field.value), _short(c.scapy_value), "✔" if c.same else "✘"))
    widths = [max(len(r[i]) for r in table) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _short(value: Any, limit: int = 24) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ---- what the kernel will do, and what it did -------------------------------------------------
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
