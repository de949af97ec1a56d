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

from packetlab.proto.decode import TCP, UDP, Frame, IPv4, IPv6, decode, tcp_flag_letters

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


Pairs = list[tuple[str, Any, Any]]  # (field, decode's value, scapy's value)


# The fields compared, per layer: "ours=scapy's" where scapy names a field otherwise.
# `compare` and `side_by_side` both read them.
_FIELDS = {
    "ethernet": "dst src type",
    "vlan": "pcp=prio dei vid=vlan type",
    "ipv4": "version ihl tos total_length=len id flags frag_offset=frag ttl proto checksum=chksum src dst",
    "ipv6": "version traffic_class=tc flow_label=fl payload_length=plen next_header=nh hop_limit=hlim src dst",
    "tcp": "sport dport seq ack data_offset=dataofs reserved flags window checksum=chksum urgent=urgptr",
    "udp": "sport dport length=len checksum=chksum",
}


def _pairs(layer: str, mine: Any, s: Any) -> Pairs:
    """(field, decode's value, scapy's value) for every field of `layer` (a key of _FIELDS)."""
    from scapy.fields import FlagValue

    out: Pairs = []
    for spec in _FIELDS[layer].split():
        ours, _, theirs = spec.partition("=")
        if layer == "ethernet" and ours == "type" and not hasattr(s, "type"):
            theirs = "len"  # scapy's Dot3 for 802.3 frames
        value = getattr(s, theirs or ours)
        out.append((ours, getattr(mine, ours), int(value) if isinstance(value, FlagValue) else value))
    if layer == "ipv4":
        out += _option_pairs(mine.option_types, s)
    if layer == "tcp":
        out.append(("options", list(mine.options), _tcp_options(s.options)))
    return out


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
    problems = _diff("ethernet", _pairs("ethernet", mine.eth, pkt))
    i = 1
    last: Packet = pkt  # the deepest layer both sides decoded
    for n, tag in enumerate(mine.vlans):
        s = layers[i] if i < len(layers) else None
        if not isinstance(s, Dot1Q):
            return problems + [f"vlan[{n}]: decode found a tag, scapy has {type(s).__name__}"]
        problems += _diff(f"vlan[{n}]", _pairs("vlan", tag, s))
        i, last = i + 1, s
    if mine.truncated == "vlan" and i < len(layers) and isinstance(layers[i], Dot1Q):
        problems.append("vlan: decode says the tag is cut short, scapy decoded it")
    scapy_class = {IPv4: ("ipv4", IP), IPv6: ("ipv6", S_IPv6), TCP: ("tcp", S_TCP), UDP: ("udp", S_UDP)}
    for header in (mine.ip, mine.l4):
        if header is None:
            continue
        name, cls = scapy_class[type(header)]
        s = layers[i] if i < len(layers) else None
        if not isinstance(s, cls):
            return problems + [f"{name}: decode found it, scapy has {type(s).__name__}"]
        problems += _diff(name, _pairs(name, header, s))
        i, last = i + 1, s
    finished = mine.truncated is None and mine.error is None
    if mine.l4 is None and finished and i < len(layers) and isinstance(layers[i], (S_TCP, S_UDP)):
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
    from scapy.layers.inet6 import IPv6 as S_IPv6
    from scapy.layers.l2 import Dot1Q, Ether

    d = decode(frame)
    pkt = Ether(bytes(frame))
    rows: list[list[object]] = []

    def add(layer: str, pairs: Pairs) -> None:
        for name, mine, theirs in pairs:
            same = "✔" if mine == theirs else "✘"
            rows.append([f"{layer}.{name}", _shown(layer, name, mine), _shown(layer, name, theirs), same])

    if d.eth is not None:
        add("ethernet", _pairs("ethernet", d.eth, pkt))
    tags = [layer for layer in _scapy_layers(pkt) if isinstance(layer, Dot1Q)]
    for n, (tag, s) in enumerate(zip(d.vlans, tags)):
        add(f"vlan[{n}]", _pairs("vlan", tag, s))
    if isinstance(d.ip, IPv4) and pkt.haslayer(IP):
        add("ipv4", _pairs("ipv4", d.ip, pkt[IP]))
    elif d.ip is not None and pkt.haslayer(S_IPv6):
        add("ipv6", _pairs("ipv6", d.ip, pkt[S_IPv6]))
    if isinstance(d.l4, TCP) and pkt.haslayer(S_TCP):
        add("tcp", _pairs("tcp", d.l4, pkt[S_TCP]))
    if isinstance(d.l4, UDP) and pkt.haslayer(S_UDP):
        add("udp", _pairs("udp", d.l4, pkt[S_UDP]))
    return rows


def _shown(layer: str, name: str, value: Any) -> str:
    """A value as a reader checks it: checksums and EtherTypes in hex, TCP flags and options by name."""
    if name in ("checksum", "type") and isinstance(value, int):
        return hex(value)
    if layer == "tcp" and name == "flags":
        return tcp_flag_letters(value)
    if layer == "tcp" and name == "options":
        return _option_names(value)
    return str(value)


def _option_names(options: Any) -> str:
    """'MSS=1460 SAckOK Timestamp=(1, 2) NOP WScale=7' — short enough for a table cell."""
    return " ".join(str(name) if value in (None, b"") else f"{name}={value}" for name, value in options)
