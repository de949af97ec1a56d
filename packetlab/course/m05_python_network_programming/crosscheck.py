"""Compare `decode` with scapy's dissection of the same bytes, field by field.

A hand-written parser is only as good as the evidence that it reads what an
established one reads. `compare(frame)` decodes the bytes both ways and returns
every disagreement as a readable line (an empty list means they agree on every
layer `decode` produced, and on the payload after the last one).

Where `decode` stops early (a truncated header, an impossible length field) it
makes no claim about that layer; scapy is more lenient and may show a partial
layer there. The comparison then checks only the layers before it, and that
scapy found no transport header `decode` missed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packetlab.proto.decode import TCP, UDP, Frame, IPv4, decode

if TYPE_CHECKING:
    from scapy.packet import Packet


def _scapy_layers(pkt: Any) -> list[Any]:
    from scapy.packet import NoPayload

    out = []
    while pkt is not None and not isinstance(pkt, NoPayload):
        out.append(pkt)
        pkt = pkt.payload
    return out


def _scapy_payload(layer: Any) -> bytes:
    """Bytes scapy handed to the layer after `layer`, without trailing padding."""
    from scapy.packet import NoPayload, Padding

    nxt = layer.payload
    if isinstance(nxt, (NoPayload, Padding)):
        return b""
    return bytes(nxt.original)


def _diff(layer: str, pairs: list[tuple[str, Any, Any]]) -> list[str]:
    return [f"{layer}.{name}: decode={mine!r} scapy={theirs!r}" for name, mine, theirs in pairs if mine != theirs]


def _option_pairs(mine: list[int], scapy_ip: Any) -> list[tuple[str, Any, Any]]:
    """IPv4 option type bytes, when both parsers define them the same way.

    RFC 791 and the kernel (ip_options_compile) treat only the type bytes 0 and 1
    as End and No-Operation; scapy picks the option class from the low five bits
    alone, so it reads e.g. 0xA1 as a one-byte NOP; and some scapy option classes
    have a fixed size whatever the length byte says. On such (malformed) headers
    the option walks differ by design and are not compared.
    """
    if any(t & 0x1F in (0, 1) and t not in (0, 1) for t in mine):
        return []
    theirs = []
    for o in scapy_ip.options:
        if not hasattr(o, "option"):
            return []  # scapy fell back to raw bytes: nothing to compare
        if getattr(o, "length", None) not in (None, len(bytes(o))):
            return []  # a fixed-size scapy class disagrees with the length byte
        theirs.append(o.copy_flag << 7 | o.optclass << 5 | o.option)
        if theirs[-1] == 0:
            break  # End of Option List: the rest is padding (scapy reads on)
    return [("option_types", mine, theirs)]


def compare(frame: bytes, *, decoded: Frame | None = None) -> list[str]:
    """Every field where `decode(frame)` and scapy's ``Ether(frame)`` disagree."""
    from scapy.layers.inet import IP
    from scapy.layers.inet import TCP as S_TCP
    from scapy.layers.inet import UDP as S_UDP
    from scapy.layers.inet6 import IPv6 as S_IPv6
    from scapy.layers.l2 import Dot1Q, Ether

    mine = decoded if decoded is not None else decode(frame)
    if len(frame) < 14:
        return [] if mine.eth is None else ["decode found an Ethernet header in fewer than 14 bytes"]
    try:
        pkt = Ether(bytes(frame))
    except Exception:  # scapy raises on frames shorter than an Ethernet header
        return [] if mine.eth is None else ["scapy could not dissect the Ethernet header, decode did"]
    if mine.eth is None:
        return ["decode found no Ethernet header, scapy did"]
    layers = _scapy_layers(pkt)
    their_type = pkt.type if hasattr(pkt, "type") else pkt.len  # scapy's Dot3 for 802.3 frames
    problems = _diff(
        "ethernet",
        [("dst", mine.eth.dst, pkt.dst), ("src", mine.eth.src, pkt.src), ("type", mine.eth.type, their_type)],
    )
    i = 1
    last: Packet = pkt  # the deepest layer both sides decoded
    for n, tag in enumerate(mine.vlans):
        s = layers[i] if i < len(layers) else None
        if not isinstance(s, Dot1Q):
            return problems + [f"vlan[{n}]: decode found a tag, scapy has {type(s).__name__}"]
        problems += _diff(
            f"vlan[{n}]",
            [("pcp", tag.pcp, s.prio), ("dei", tag.dei, s.dei), ("vid", tag.vid, s.vlan), ("type", tag.type, s.type)],
        )
        i, last = i + 1, s
    if mine.truncated == "vlan" and i < len(layers) and isinstance(layers[i], Dot1Q):
        problems.append("vlan: decode says the tag is cut short, scapy decoded it")
    if mine.ip is not None:
        s = layers[i] if i < len(layers) else None
        if isinstance(mine.ip, IPv4):
            if not isinstance(s, IP):
                return problems + [f"ipv4: decode found it, scapy has {type(s).__name__}"]
            problems += _diff(
                "ipv4",
                [
                    ("version", mine.ip.version, s.version),
                    ("ihl", mine.ip.ihl, s.ihl),
                    ("tos", mine.ip.tos, s.tos),
                    ("total_length", mine.ip.total_length, s.len),
                    ("id", mine.ip.id, s.id),
                    ("flags", mine.ip.flags, int(s.flags)),
                    ("frag_offset", mine.ip.frag_offset, s.frag),
                    ("ttl", mine.ip.ttl, s.ttl),
                    ("proto", mine.ip.proto, s.proto),
                    ("checksum", mine.ip.checksum, s.chksum),
                    ("src", mine.ip.src, s.src),
                    ("dst", mine.ip.dst, s.dst),
                    *_option_pairs(mine.ip.option_types, s),
                ],
            )
        else:
            if not isinstance(s, S_IPv6):
                return problems + [f"ipv6: decode found it, scapy has {type(s).__name__}"]
            problems += _diff(
                "ipv6",
                [
                    ("version", mine.ip.version, s.version),
                    ("traffic_class", mine.ip.traffic_class, s.tc),
                    ("flow_label", mine.ip.flow_label, s.fl),
                    ("payload_length", mine.ip.payload_length, s.plen),
                    ("next_header", mine.ip.next_header, s.nh),
                    ("hop_limit", mine.ip.hop_limit, s.hlim),
                    ("src", mine.ip.src, s.src),
                    ("dst", mine.ip.dst, s.dst),
                ],
            )
        i, last = i + 1, s
    if mine.l4 is not None:
        s = layers[i] if i < len(layers) else None
        if isinstance(mine.l4, TCP):
            if not isinstance(s, S_TCP):
                return problems + [f"tcp: decode found it, scapy has {type(s).__name__}"]
            problems += _diff(
                "tcp",
                [
                    ("sport", mine.l4.sport, s.sport),
                    ("dport", mine.l4.dport, s.dport),
                    ("seq", mine.l4.seq, s.seq),
                    ("ack", mine.l4.ack, s.ack),
                    ("data_offset", mine.l4.data_offset, s.dataofs),
                    ("reserved", mine.l4.reserved, s.reserved),
                    ("flags", mine.l4.flags, int(s.flags)),
                    ("window", mine.l4.window, s.window),
                    ("checksum", mine.l4.checksum, s.chksum),
                    ("urgent", mine.l4.urgent, s.urgptr),
                    ("options", list(mine.l4.options), _tcp_options(s.options)),
                ],
            )
        elif isinstance(mine.l4, UDP):
            if not isinstance(s, S_UDP):
                return problems + [f"udp: decode found it, scapy has {type(s).__name__}"]
            problems += _diff(
                "udp",
                [
                    ("sport", mine.l4.sport, s.sport),
                    ("dport", mine.l4.dport, s.dport),
                    ("length", mine.l4.length, s.len),
                    ("checksum", mine.l4.checksum, s.chksum),
                ],
            )
        i, last = i + 1, s
    elif mine.truncated is None and mine.error is None and i < len(layers) and isinstance(layers[i], (S_TCP, S_UDP)):
        problems.append(f"{type(layers[i]).__name__.lower()}: scapy decoded it, decode did not")
    if mine.truncated or mine.error:
        return problems  # no claim about the payload of a layer we could not finish
    if mine.payload != _scapy_payload(last):
        problems.append(
            f"payload: decode has {len(mine.payload)} bytes, scapy {len(_scapy_payload(last))} "
            f"(after {type(last).__name__})"
        )
    return problems


def _tcp_options(options: list) -> list:
    """scapy's option list with its less common names mapped back to kind numbers."""
    from scapy.layers.inet import TCPOptions

    ours = {"EOL", "NOP", "MSS", "WScale", "SAckOK", "SAck", "Timestamp"}
    out = []
    for name, value in options:
        if isinstance(name, str) and name not in ours:
            kind = TCPOptions[1][name]
            out.append((kind, value if isinstance(value, bytes) else _repack(kind, value)))
        else:
            out.append((name, value))
    return out


def _repack(kind: int, value: Any) -> bytes:
    """Raw bytes of an option scapy unpacked into numbers (we keep unknown kinds raw)."""
    import struct

    from scapy.layers.inet import TCPOptions

    fmt = TCPOptions[0][kind][1]
    return struct.pack(fmt, *(value if isinstance(value, tuple) else (value,))) if fmt else bytes(value)


def compare_many(frames: list[bytes]) -> tuple[int, list[str]]:
    """(frames that agree, problems of the rest as 'frame N: ...' lines)."""
    agree, problems = 0, []
    for n, frame in enumerate(frames):
        p = compare(frame)
        if p:
            problems += [f"frame {n}: {line}" for line in p]
        else:
            agree += 1
    return agree, problems


def side_by_side(frame: bytes) -> list[list[object]]:
    """Rows (field, decode's value, scapy's value, same?) for every header field of one frame —
    the comparison `compare` makes, laid out for reading."""
    from scapy.layers.inet import IP
    from scapy.layers.inet import TCP as S_TCP
    from scapy.layers.inet import UDP as S_UDP
    from scapy.layers.l2 import Dot1Q, Ether

    d = decode(frame)
    pkt = Ether(bytes(frame))
    rows: list[list[object]] = []

    def add(name: str, mine: Any, theirs: Any) -> None:
        rows.append([name, str(mine), str(theirs), "✔" if mine == theirs else "✘"])

    if d.eth is not None:
        add("ethernet.dst", d.eth.dst, pkt.dst)
        add("ethernet.src", d.eth.src, pkt.src)
        add("ethernet.type", hex(d.eth.type), hex(pkt.type))
    tags = [layer for layer in _scapy_layers(pkt) if isinstance(layer, Dot1Q)]
    for n, (tag, s) in enumerate(zip(d.vlans, tags)):
        add(f"vlan[{n}].vid", tag.vid, s.vlan)
        add(f"vlan[{n}].pcp", tag.pcp, s.prio)
    if isinstance(d.ip, IPv4) and pkt.haslayer(IP):
        s = pkt[IP]
        for name, mine, theirs in (
            ("ihl", d.ip.ihl, s.ihl),
            ("total_length", d.ip.total_length, s.len),
            ("id", d.ip.id, s.id),
            ("flags", d.ip.flags, int(s.flags)),
            ("frag_offset", d.ip.frag_offset, s.frag),
            ("ttl", d.ip.ttl, s.ttl),
            ("proto", d.ip.proto, s.proto),
            ("checksum", hex(d.ip.checksum), hex(s.chksum)),
            ("src", d.ip.src, s.src),
            ("dst", d.ip.dst, s.dst),
        ):
            add(f"ipv4.{name}", mine, theirs)
    if isinstance(d.l4, TCP) and pkt.haslayer(S_TCP):
        s = pkt[S_TCP]
        for name, mine, theirs in (
            ("sport", d.l4.sport, s.sport),
            ("dport", d.l4.dport, s.dport),
            ("seq", d.l4.seq, s.seq),
            ("ack", d.l4.ack, s.ack),
            ("data_offset", d.l4.data_offset, s.dataofs),
            ("flags", d.l4.flag_str, str(s.flags)),
            ("window", d.l4.window, s.window),
            ("checksum", hex(d.l4.checksum), hex(s.chksum)),
            ("options", _option_names(d.l4.options), _option_names(_tcp_options(s.options))),
        ):
            add(f"tcp.{name}", mine, theirs)
    if isinstance(d.l4, UDP) and pkt.haslayer(S_UDP):
        s = pkt[S_UDP]
        for name, mine, theirs in (
            ("sport", d.l4.sport, s.sport),
            ("dport", d.l4.dport, s.dport),
            ("length", d.l4.length, s.len),
            ("checksum", hex(d.l4.checksum), hex(s.chksum)),
        ):
            add(f"udp.{name}", mine, theirs)
    return rows


def _option_names(options: Any) -> str:
    """'MSS=1460 SAckOK Timestamp=(1, 2) NOP WScale=7' — short enough for a table cell."""
    return " ".join(str(name) if value in (None, b"") else f"{name}={value}" for name, value in options)
