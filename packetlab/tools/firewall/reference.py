"""The firewall's meaning, written the slow obvious way: parse, then scan rules in order.

This is the specification the XDP program is tested against (tests feed
the same frames to both and compare), and what `explain()` uses to tell a
learner which rule decides a packet and why. It shares no code with the
compiler or the C program on purpose.

Policies it encodes (and the lesson documents):

* non-IP frames (ARP, LLDP...) pass — the firewall filters IP only;
* up to two VLAN tags are looked through; a third tag, a truncated header,
  a bad IPv4 header length, more than four IPv6 extension headers, a TCP
  header cut short or a TCP fragment at offset 8 (RFC 1858) is *malformed*:
  dropped, counted in the `malformed` counter;
* non-first fragments carry no ports: with `fragments: l3` they are
  classified on addresses and protocol only (so port rules never match them),
  `pass` / `drop` decide them without rules.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from packetlab.tools.firewall.rules import Rule, RuleSet

IPV6_EXT = {0, 43, 60, 44}


@dataclass
class PacketFields:
    """What the firewall looks at in one frame."""

    kind: str  # "ip", "not-ip" or "malformed"
    reason: str = ""
    version: int | None = None
    src: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None
    proto: int | None = None
    dport: int | None = None
    sport: int | None = None
    flags: int | None = None
    later_fragment: bool = False
    vlan_tags: int = 0


def parse_frame(frame: bytes) -> PacketFields:
    """Parse an Ethernet frame the way the firewall does."""
    data = bytes(frame)
    if len(data) < 14:
        return PacketFields("malformed", "shorter than an Ethernet header")
    ethertype = struct.unpack_from("!H", data, 12)[0]
    off, tags = 14, 0
    while ethertype in (0x8100, 0x88A8):
        if tags == 2:
            return PacketFields("malformed", "more than two VLAN tags", vlan_tags=tags)
        if off + 4 > len(data):
            return PacketFields("malformed", "truncated VLAN tag", vlan_tags=tags)
        ethertype = struct.unpack_from("!H", data, off + 2)[0]
        off += 4
        tags += 1
    if ethertype == 0x0800:
        f = _ipv4(data, off)
    elif ethertype == 0x86DD:
        f = _ipv6(data, off)
    else:
        return PacketFields("not-ip", f"EtherType 0x{ethertype:04x}", vlan_tags=tags)
    f.vlan_tags = tags
    return f


def _ipv4(data: bytes, off: int) -> PacketFields:
    if off + 20 > len(data):
        return PacketFields("malformed", "truncated IPv4 header", version=4)
    ver_ihl = data[off]
    ihl = (ver_ihl & 0x0F) * 4
    if ver_ihl >> 4 != 4 or ihl < 20 or off + ihl > len(data):
        return PacketFields("malformed", "bad IPv4 version or header length", version=4)
    proto = data[off + 9]
    frag = struct.unpack_from("!H", data, off + 6)[0] & 0x1FFF
    if proto == 6 and frag == 1:
        return PacketFields("malformed", "TCP fragment at offset 8 (RFC 1858 overlap attack)", version=4)
    f = PacketFields(
        "ip",
        version=4,
        src=ipaddress.IPv4Address(data[off + 12 : off + 16]),
        dst=ipaddress.IPv4Address(data[off + 16 : off + 20]),
        proto=proto,
        later_fragment=frag != 0,
    )
    return _l4(data, off + ihl, f)


def _ipv6(data: bytes, off: int) -> PacketFields:
    if off + 40 > len(data):
        return PacketFields("malformed", "truncated IPv6 header", version=6)
    if data[off] >> 4 != 6:
        return PacketFields("malformed", "bad IPv6 version", version=6)
    nxt = data[off + 6]
    src = ipaddress.IPv6Address(data[off + 8 : off + 24])
    dst = ipaddress.IPv6Address(data[off + 24 : off + 40])
    pos = off + 40
    frag = 0
    for _ in range(4):
        if nxt in (0, 43, 60):
            if pos + 2 > len(data):
                return PacketFields("malformed", "truncated IPv6 extension header", version=6)
            nxt, pos = data[pos], pos + (data[pos + 1] + 1) * 8
        elif nxt == 44:
            if pos + 8 > len(data):
                return PacketFields("malformed", "truncated IPv6 fragment header", version=6)
            frag = struct.unpack_from("!H", data, pos + 2)[0] >> 3
            nxt, pos = data[pos], pos + 8
        else:
            break
    if pos > len(data):
        return PacketFields("malformed", "IPv6 extension header longer than the packet", version=6)
    if nxt in IPV6_EXT:
        return PacketFields("malformed", "more than four IPv6 extension headers", version=6)
    f = PacketFields("ip", version=6, src=src, dst=dst, proto=nxt, later_fragment=frag != 0)
    return _l4(data, pos, f)


def _l4(data: bytes, pos: int, f: PacketFields) -> PacketFields:
    if f.later_fragment:
        return f
    if f.proto == 6:
        if pos + 20 > len(data):
            return PacketFields("malformed", "truncated TCP header", version=f.version)
        doff = (data[pos + 12] >> 4) * 4
        if doff < 20 or pos + doff > len(data):
            return PacketFields("malformed", "bad TCP header length", version=f.version)
        f.sport, f.dport = struct.unpack_from("!HH", data, pos)
        f.flags = data[pos + 13]
    elif f.proto == 17:
        if pos + 8 > len(data):
            return PacketFields("malformed", "truncated UDP header", version=f.version)
        f.sport, f.dport = struct.unpack_from("!HH", data, pos)
    return f


def rule_matches(rule: Rule, f: PacketFields) -> bool:
    """Does `rule` match these fields? (Every field given must match; empty = any.)"""
    if rule.src and not any(f.src in net for net in rule.src if net.version == f.version):
        return False
    if rule.dst and not any(f.dst in net for net in rule.dst if net.version == f.version):
        return False
    if (
        rule.src
        and rule.dst
        and not any(
            s.version == d.version == f.version and f.src in s and f.dst in d for s in rule.src for d in rule.dst
        )
    ):
        return False
    if rule.proto and f.proto not in rule.proto:
        return False
    for ranges, port in ((rule.dport, f.dport), (rule.sport, f.sport)):
        if ranges and (port is None or not any(lo <= port <= hi for lo, hi in ranges)):
            return False
    if rule.tcp_flags:
        mask, value = rule.tcp_flags
        if f.flags is None or f.flags & mask != value:
            return False
    return True


@dataclass
class Decision:
    """The firewall's decision for one frame, and why."""

    verdict: str  # XDP_PASS / XDP_DROP ("rate-limit" rules: XDP_PASS while under the limit)
    rule: str | None  # the deciding rule's name, or None
    counter: str  # rule name, or "default" / "malformed" / "not-ip" / "fragment"
    why: str
    fields: PacketFields

    def __str__(self) -> str:
        return f"{self.verdict} by {self.counter}: {self.why}"


def decide(ruleset: RuleSet, frame: bytes) -> Decision:
    """What the firewall does with `frame` under `ruleset` (first matching rule wins)."""
    f = parse_frame(frame)
    if f.kind == "not-ip":
        return Decision("XDP_PASS", None, "not-ip", f"not IP ({f.reason}): passed", f)
    if f.kind == "malformed":
        return Decision("XDP_DROP", None, "malformed", f"malformed: {f.reason}", f)
    if f.later_fragment and ruleset.fragments != "l3":
        verdict = "XDP_PASS" if ruleset.fragments == "pass" else "XDP_DROP"
        return Decision(verdict, None, "fragment", f"non-first fragment, fragments: {ruleset.fragments}", f)
    for rule in ruleset.rules:
        if rule_matches(rule, f):
            verdict = "XDP_DROP" if rule.action == "drop" else "XDP_PASS"
            return Decision(
                verdict,
                rule.name,
                rule.name,
                f"first matching rule {rule.name!r} (line {rule.line}): {rule.describe()}",
                f,
            )
    verdict = "XDP_PASS" if ruleset.default == "allow" else "XDP_DROP"
    return Decision(verdict, None, "default", f"no rule matched; default {ruleset.default}", f)


def explain(ruleset: RuleSet, frame: bytes) -> str:
    """A short text: the packet's fields and which rule decides it."""
    d = decide(ruleset, frame)
    f = d.fields
    if f.kind != "ip":
        return str(d)
    ports = f" {f.sport}->{f.dport}" if f.dport is not None else ""
    return f"IPv{f.version} {f.src} -> {f.dst} proto {f.proto}{ports}: {d}"
