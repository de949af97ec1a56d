"""Decode Ethernet / 802.1Q / IPv4 / IPv6 / TCP / UDP from raw bytes with `struct` only.

Why write our own when scapy exists? To see that a packet is nothing but bytes
at known offsets — and that every length field is a promise the sender made and
the parser must not trust. The contract of `decode`:

* It never raises on bad input. A header that is cut short stops decoding and
  names the layer in ``Frame.truncated``; a header whose length fields are
  impossible (IPv4 IHL < 5, TCP data offset < 5) stops decoding and says why in
  ``Frame.error``. Layers before that point are complete and trustworthy.
* A type/length field ≤ 1500 is an IEEE 802.3 length (LLC follows), not an EtherType.
* A layer appears only if its *whole* header (options included) is present.
* Payloads follow the length fields the way the kernel and scapy do: the IPv4
  total length / IPv6 payload length cut Ethernet padding off, the UDP length
  cuts the UDP payload; non-first IPv4 fragments carry no transport header.

`crosscheck` compares every field below with scapy's dissection of the same bytes.
`five_tuple` is the minimal fast path (what an XDP program reads), for the
parse-speed comparison in `parsebench`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

ETH_P_IP, ETH_P_IPV6, ETH_P_8021Q, ETH_P_8021AD = 0x0800, 0x86DD, 0x8100, 0x88A8
IPPROTO_TCP, IPPROTO_UDP = 6, 17
VLAN_TYPES = (ETH_P_8021Q, ETH_P_8021AD)

_ETH = struct.Struct("!6s6sH")
_VLAN = struct.Struct("!HH")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
_TCP_FLAG_LETTERS = "FSRPAUECN"  # bit 0 .. bit 8, the order scapy prints them in


def tcp_flag_letters(flags: int) -> str:
    """0x012 -> 'SA': the TCP flag bits as letters, in scapy's order."""
    return "".join(c for i, c in enumerate(_TCP_FLAG_LETTERS) if flags >> i & 1)


def mac_str(raw: bytes) -> str:
    """b'\\x02\\x00...' -> '02:00:...' (lower-case, like scapy and ip link)."""
    return raw.hex(":")


@dataclass(frozen=True, slots=True)
class Ethernet:
    dst: str
    src: str
    type: int  # EtherType of what follows (≤ 1500: an 802.3 length instead)


@dataclass(frozen=True, slots=True)
class Vlan:
    """One 802.1Q (or 802.1ad) tag: 16-bit TCI = PCP(3) DEI(1) VID(12), then the next EtherType."""

    tpid: int
    pcp: int
    dei: int
    vid: int
    type: int


@dataclass(frozen=True, slots=True)
class IPv4:
    version: int
    ihl: int  # header length in 32-bit words (5 = no options)
    tos: int
    total_length: int
    id: int
    flags: int  # bit 0 MF, bit 1 DF, bit 2 reserved ("evil")
    frag_offset: int  # in 8-byte units
    ttl: int
    proto: int
    checksum: int
    src: str
    dst: str
    options: bytes  # raw option bytes (ihl*4 - 20 of them)

    @property
    def option_types(self) -> list[int]:
        """Type byte of each option (copy flag | class | number), walking the TLVs."""
        out, opts, i = [], self.options, 0
        while i < len(opts):
            kind = opts[i]
            out.append(kind)
            if kind == 0:  # End of Option List
                break
            if kind == 1:  # No Operation: a single byte
                i += 1
                continue
            length = opts[i + 1] if i + 1 < len(opts) else 0
            i += max(length, 2)
        return out


@dataclass(frozen=True, slots=True)
class IPv6:
    version: int
    traffic_class: int
    flow_label: int
    payload_length: int
    next_header: int
    hop_limit: int
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class TCP:
    sport: int
    dport: int
    seq: int
    ack: int
    data_offset: int  # header length in 32-bit words
    reserved: int
    flags: int  # 9 bits: FIN SYN RST PSH ACK URG ECE CWR NS
    window: int
    checksum: int
    urgent: int
    options: tuple = ()  # (("MSS", 1460), ("NOP", None), ...) — scapy's spelling

    @property
    def flag_str(self) -> str:
        """'SA' for SYN+ACK, 'PA' for PSH+ACK — the letters in scapy's order."""
        return tcp_flag_letters(self.flags)


@dataclass(frozen=True, slots=True)
class UDP:
    sport: int
    dport: int
    length: int
    checksum: int


@dataclass(slots=True)
class Frame:
    """A decoded frame: the layers found, the payload after the last one, and what stopped us."""

    length: int
    eth: Ethernet | None = None
    vlans: tuple[Vlan, ...] = ()
    ip: IPv4 | IPv6 | None = None
    l4: TCP | UDP | None = None
    payload: bytes = b""
    truncated: str | None = None  # name of the layer whose header was cut short
    error: str | None = None  # a length field that cannot be right
    layers: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line like tcpdump's: addresses, ports, flags, payload length."""
        if self.eth is None:
            return f"{self.length} bytes: truncated ethernet header"
        parts = [f"{self.eth.src} > {self.eth.dst}"]
        parts += [f"vlan {v.vid}" for v in self.vlans]
        if isinstance(self.ip, (IPv4, IPv6)):
            proto = {6: "tcp", 17: "udp", 1: "icmp", 58: "icmp6"}.get(
                self.ip.proto if isinstance(self.ip, IPv4) else self.ip.next_header, "proto"
            )
            if isinstance(self.l4, (TCP, UDP)):
                fmt = "{}:{}" if isinstance(self.ip, IPv4) else "[{}]:{}"
                parts.append(
                    f"{fmt.format(self.ip.src, self.l4.sport)} > {fmt.format(self.ip.dst, self.l4.dport)} {proto}"
                )
            else:
                parts.append(f"{self.ip.src} > {self.ip.dst} {proto}")
            if isinstance(self.l4, TCP):
                parts.append(f"[{self.l4.flag_str}] seq {self.l4.seq}")
        else:
            parts.append(f"ethertype 0x{(self.vlans[-1].type if self.vlans else self.eth.type):04x}")
        parts.append(f"len {len(self.payload)}")
        if self.truncated:
            parts.append(f"(truncated {self.truncated})")
        if self.error:
            parts.append(f"(error: {self.error})")
        return " ".join(parts)


def decode(frame: bytes) -> Frame:
    """Decode one Ethernet frame (see the module docstring for the contract)."""
    n = len(frame)
    out = Frame(length=n)
    if n < 14:
        out.truncated = "ethernet"
        return out
    dst, src, etype = _ETH.unpack_from(frame, 0)
    out.eth = Ethernet(mac_str(dst), mac_str(src), etype)
    out.layers.append("ethernet")
    off = 14
    vlans: list[Vlan] = []
    while etype in VLAN_TYPES:
        if n - off < 4:
            out.vlans = tuple(vlans)
            out.truncated = "vlan"
            out.payload = frame[off:]
            return out
        tci, next_type = _VLAN.unpack_from(frame, off)
        vlans.append(Vlan(etype, tci >> 13, tci >> 12 & 1, tci & 0xFFF, next_type))
        out.layers.append("vlan")
        etype, off = next_type, off + 4
    out.vlans = tuple(vlans)
    if etype <= 1500:  # IEEE 802.3: a length, not a type (LLC follows)
        out.payload = frame[off : off + etype]
        return out
    if etype == ETH_P_IP:
        _ipv4(frame, off, out)
    elif etype == ETH_P_IPV6:
        _ipv6(frame, off, out)
    else:
        out.payload = frame[off:]
    return out


# --8<-- [start:ipv4]
def _ipv4(frame: bytes, off: int, out: Frame) -> None:
    if len(frame) - off < 20:
        out.truncated, out.payload = "ipv4", frame[off:]
        return
    vihl, tos, total, ident, frag, ttl, proto, csum, src, dst = _IPV4.unpack_from(frame, off)
    ihl = vihl & 0x0F
    hlen = ihl * 4
    if ihl < 5:
        out.error, out.payload = f"IPv4 header length {ihl} words is below the minimum of 5", frame[off:]
        return
    if len(frame) - off < hlen:
        out.truncated, out.payload = "ipv4", frame[off:]
        return
    out.ip = IPv4(
        vihl >> 4,
        ihl,
        tos,
        total,
        ident,
        frag >> 13,
        frag & 0x1FFF,
        ttl,
        proto,
        csum,
        socket.inet_ntoa(src),
        socket.inet_ntoa(dst),
        bytes(frame[off + 20 : off + hlen]),
    )
    out.layers.append("ipv4")
    body = frame[off + hlen : off + total] if total >= hlen else frame[off + hlen :]  # drop Ethernet padding
    if frag & 0x1FFF:  # a later fragment: no transport header in it
        out.payload = body
        return
    _transport(body, proto, out)


# --8<-- [end:ipv4]


def _ipv6(frame: bytes, off: int, out: Frame) -> None:
    if len(frame) - off < 40:
        out.truncated, out.payload = "ipv6", frame[off:]
        return
    vtf, plen, nh, hlim, src, dst = _IPV6.unpack_from(frame, off)
    out.ip = IPv6(
        vtf >> 28,
        vtf >> 20 & 0xFF,
        vtf & 0xFFFFF,
        plen,
        nh,
        hlim,
        socket.inet_ntop(socket.AF_INET6, src),
        socket.inet_ntop(socket.AF_INET6, dst),
    )
    out.layers.append("ipv6")
    body = frame[off + 40 : off + 40 + plen]  # plen 0 would mean a jumbogram: not handled here
    _transport(body, nh, out)


def _transport(body: bytes, proto: int, out: Frame) -> None:
    if proto == IPPROTO_TCP:
        if len(body) < 20:
            out.truncated, out.payload = "tcp", body
            return
        sport, dport, seq, ack, off_res, flags, win, csum, urg = _TCP.unpack_from(body, 0)
        doff = off_res >> 4
        if doff < 5:
            out.error, out.payload = f"TCP data offset {doff} words is below the minimum of 5", body
            return
        if len(body) < doff * 4:
            out.truncated, out.payload = "tcp", body
            return
        out.l4 = TCP(
            sport,
            dport,
            seq,
            ack,
            doff,
            off_res >> 1 & 7,
            (off_res & 1) << 8 | flags,
            win,
            csum,
            urg,
            tcp_options(body[20 : doff * 4]),
        )
        out.layers.append("tcp")
        out.payload = body[doff * 4 :]
    elif proto == IPPROTO_UDP:
        if len(body) < 8:
            out.truncated, out.payload = "udp", body
            return
        sport, dport, length, csum = _UDP.unpack_from(body, 0)
        out.l4 = UDP(sport, dport, length, csum)
        out.layers.append("udp")
        if length < 8:
            out.error, out.payload = f"UDP length {length} is below the 8-byte header", body[8:]
        else:
            out.payload = body[8:length]
    else:
        out.payload = body


_TCP_OPTS = {
    2: ("MSS", struct.Struct("!H")),
    3: ("WScale", struct.Struct("!B")),
    4: ("SAckOK", None),
    5: ("SAck", None),
    8: ("Timestamp", struct.Struct("!II")),
}


def tcp_options(raw: bytes) -> tuple:
    """Walk TCP option TLVs: kind, length (which counts kind and length bytes), value.

    Known kinds get names and numbers (("MSS", 1460), ("Timestamp", (tsval, tsecr)));
    unknown kinds stay (kind, raw bytes). A length below 2 is malformed: it is
    treated as 2 so the walk always advances (scapy does the same).
    """
    opts: list[tuple[str | int, object]] = []
    i, n = 0, len(raw)
    while i < n:
        kind = raw[i]
        if kind == 0:
            opts.append(("EOL", None))
            break
        if kind == 1:
            opts.append(("NOP", None))
            i += 1
            continue
        length = raw[i + 1] if i + 1 < n else 0
        length = max(length, 2)
        value = raw[i + 2 : i + length]
        known = _TCP_OPTS.get(kind)
        if known is None:
            opts.append((kind, value))
        else:
            name, fmt = known
            if kind == 5 and len(value) % 4 == 0:
                fmt = struct.Struct(f"!{len(value) // 4}I")  # SAck: 1-4 (left, right) edges
            if fmt is not None and fmt.size == len(value):
                vals = fmt.unpack(value)
                opts.append((name, vals[0] if len(vals) == 1 else vals))  # one value: unwrapped
            else:
                opts.append((name, value))
        i += length
    return tuple(opts)


def five_tuple(frame: bytes) -> tuple[str, str, int, int, int] | None:
    """(src, dst, proto, sport, dport) of an untagged IPv4 TCP/UDP frame, else None.

    The fast path: fixed offsets, no objects, no options decoded — what an XDP
    program does before it decides. Compare its speed with `decode` in parsebench.
    """
    if len(frame) < 34 or frame[12] != 0x08 or frame[13] != 0x00:
        return None
    hlen = (frame[14] & 0x0F) * 4
    proto = frame[23]
    if hlen < 20 or proto not in (6, 17) or len(frame) < 14 + hlen + 4 or (frame[20] & 0x1F) | frame[21]:
        return None
    p = 14 + hlen
    return (
        socket.inet_ntoa(frame[26:30]),
        socket.inet_ntoa(frame[30:34]),
        proto,
        frame[p] << 8 | frame[p + 1],
        frame[p + 2] << 8 | frame[p + 3],
    )
