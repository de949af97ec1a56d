"""Compile a RuleSet into the lookup tables of bpf/08-xdp-firewall.c (pure Python).

The classifier ("aggregated bit vectors"): rule lists are expanded into
*entries* (one per src × dst × proto × port combination), and entry i owns
bit i — lower bit, higher priority. For each of five dimensions we
precompute, for every possible packet value, the set of entries that value
could match, and give each distinct set a *class* number:

* addresses (src and dst, IPv4 and IPv6): the rule prefixes go into an LPM
  trie; the longest rule prefix containing an address P determines the set
  (every rule prefix containing the address is an ancestor of P);
* ports (dst and src): the rule ranges cut 0..65535 into elementary
  intervals; each port maps to its interval's set (index 65536 = "no ports");
* protocol + TCP flags: 256 protocol numbers plus 256 flag bytes for TCP.

A packet's match is the lowest bit in the AND of its five sets. Sets are
stored as compressed bitmaps: a 256-bit summary of non-zero 64-bit words plus
only those words (the "pool"). Nothing here touches the kernel: a rule set
that compiles is known to fit before any map is written.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import product
from typing import Any

from packetlab.tools.firewall.layout import (
    FW_L4_SIZE,
    FW_PORT_NONE,
    FW_PORTS,
    FW_SUMMARY,
    MAX_RULE_BITS,
    WORDS_PER_SUMMARY,
)
from packetlab.tools.firewall.rules import Network, Problem, Rule, RuleError, RuleSet

ADDR_DIMS = ("src", "dst")
PORT_DIMS = ("dport", "sport")


@dataclass(frozen=True)
class Entry:
    """One expanded rule combination; `bit` is its priority (lower wins)."""

    bit: int
    rule: int  # index into RuleSet.rules
    src: Network | None
    dst: Network | None
    proto: int | None
    dport: tuple[int, int] | None
    sport: tuple[int, int] | None
    flags: tuple[int, int] | None


@dataclass
class ClassTable:
    """Distinct entry sets (Python ints used as bitsets) and their compressed bitmaps."""

    sets: list[int] = field(default_factory=list)
    index: dict[int, int] = field(default_factory=dict)

    def class_of(self, bits: int) -> int:
        cid = self.index.get(bits)
        if cid is None:
            cid = self.index[bits] = len(self.sets)
            self.sets.append(bits)
        return cid


@dataclass
class Compiled:
    """Everything the kernel needs for one rule set, slot-independent."""

    ruleset: RuleSet
    entries: list[Entry]
    prefixes: dict[tuple[int, int, Network], int]  # (dim, version, network) -> class id
    ports: dict[str, list[int]]  # dim name -> FW_PORTS class ids
    l4: list[int]  # FW_L4_SIZE class ids
    classes: ClassTable
    class_records: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)  # (sum, rel base)
    pool: list[int] = field(default_factory=list)  # non-zero words, classes in order
    class_pool_offset: list[int] = field(default_factory=list)

    @property
    def n_entries(self) -> int:
        return len(self.entries)

    @property
    def n_classes(self) -> int:
        return len(self.classes.sets)

    @property
    def n_pool_words(self) -> int:
        return len(self.pool)

    @property
    def n_prefixes(self) -> int:
        return len(self.prefixes)

    def rule_of_bit(self, bit: int) -> Rule:
        return self.ruleset.rules[self.entries[bit].rule]

    def dimensions(
        self,
        *,
        src: str,
        dst: str,
        proto: int,
        dport: int | None = None,
        sport: int | None = None,
        tcp_flags: int | None = None,
    ) -> list[tuple[str, str, int]]:
        """The five lookups the kernel makes for one packet: (dimension, the packet's value, class id).
        The entries that can match are the AND of the five classes' sets."""
        l4i = 256 + tcp_flags if proto == 6 and tcp_flags is not None else proto
        return [
            ("src address", src, self._addr_class(0, ipaddress.ip_address(src))),
            ("dst address", dst, self._addr_class(1, ipaddress.ip_address(dst))),
            (
                "dst port",
                "none" if dport is None else str(dport),
                self.ports["dport"][FW_PORT_NONE if dport is None else dport],
            ),
            (
                "src port",
                "none" if sport is None else str(sport),
                self.ports["sport"][FW_PORT_NONE if sport is None else sport],
            ),
            ("proto/flags", f"{proto}" + (f" flags 0x{tcp_flags:02x}" if l4i >= 256 else ""), self.l4[l4i]),
        ]

    def lookup(self, **packet: Any) -> Rule | None:
        """Classify a packet in Python with the same tables the kernel uses (for teaching
        and for cross-checking the kernel): the matching rule, or None for the default.
        `packet`: the keywords of `dimensions` (src, dst, proto; dport, sport, tcp_flags)."""
        both = -1
        for _, _, cid in self.dimensions(**packet):
            both &= self.classes.sets[cid]
        return self.rule_of_bit((both & -both).bit_length() - 1) if both else None

    def trace(self, **packet: Any) -> str:
        """Show the five lookups for one packet, the AND, and the winning rule (for the lab);
        `packet` as for `lookup`."""
        from packetlab.show.tables import format_table

        both = -1
        rows = []
        for name, value, cid in self.dimensions(**packet):
            bits = self.classes.sets[cid]
            both &= bits
            rows.append([name, value, cid, self._names(bits)])
        rows.append(["AND", "", "", self._names(both)])
        winner = self.rule_of_bit((both & -both).bit_length() - 1).name if both else f"(default {self.ruleset.default})"
        return (
            format_table(["dimension", "packet value", "class", "entries that can match (rule#bit)"], rows)
            + f"\nlowest bit wins -> {winner}"
        )

    def _names(self, bits: int) -> str:
        names = [f"{self.ruleset.rules[self.entries[b].rule].name}#{b}" for b in iter_bits(bits)]
        return ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "") if names else "(none)"

    def _addr_class(self, dim: int, addr) -> int:
        """The class of the longest prefix in dimension `dim` that holds `addr` (0, the empty set: none)."""
        for plen in range(addr.max_prefixlen, -1, -1):
            net = ipaddress.ip_network(f"{addr}/{plen}", strict=False)
            cid = self.prefixes.get((dim, addr.version, net))
            if cid is not None:
                return cid
        return 0


def expand(ruleset: RuleSet) -> list[Entry]:
    """Rules -> entries (cross product of list fields; mixed IPv4/IPv6 pairs skipped)."""
    entries: list[Entry] = []
    for ri, rule in enumerate(ruleset.rules):
        combos = product(
            rule.src or (None,),
            rule.dst or (None,),
            rule.proto or (None,),
            rule.dport or (None,),
            rule.sport or (None,),
        )
        for src, dst, proto, dport, sport in combos:
            if src is not None and dst is not None and src.version != dst.version:
                continue
            entries.append(Entry(len(entries), ri, src, dst, proto, dport, sport, rule.tcp_flags))
            if len(entries) > MAX_RULE_BITS:
                raise RuleError(
                    [
                        Problem(
                            ruleset.source,
                            rule.line,
                            None,
                            f"the rule set expands to more than {MAX_RULE_BITS:,} combinations "
                            "(each list in a rule multiplies: src × dst × proto × dport × sport); "
                            f"the firewall's bitmaps hold {MAX_RULE_BITS:,}",
                            rule.name,
                        )
                    ]
                )
    return entries


def compile_rules(ruleset: RuleSet, *, check_shadows: bool = True) -> Compiled:
    """Build every table; raise RuleError for contradictions (see `shadow_problems`)."""
    entries = expand(ruleset)
    classes = ClassTable()
    classes.class_of(0)  # class 0: the empty set
    addr_sets: dict[tuple[int, int, Network], int] = {}
    prefixes: dict[tuple[int, int, Network], int] = {}
    for dim, name in enumerate(ADDR_DIMS):
        for version, sets in _address_sets(entries, name).items():
            for net, bits in sets.items():
                addr_sets[(dim, version, net)] = bits
                prefixes[(dim, version, net)] = classes.class_of(bits)
    port_sets: dict[str, tuple[list[int], list[int]]] = {}
    ports: dict[str, list[int]] = {}
    for name in PORT_DIMS:
        bounds, interval_sets = _port_intervals(entries, name)
        port_sets[name] = (bounds, interval_sets)
        table: list[int] = []
        for i, bits in enumerate(interval_sets):
            lo = bounds[i]
            hi = bounds[i + 1] if i + 1 < len(bounds) else 65536
            table.extend([classes.class_of(bits)] * (hi - lo))
        table.append(classes.class_of(_any_bits(entries, name)))  # FW_PORT_NONE
        assert len(table) == FW_PORTS
        ports[name] = table
    l4_sets = _l4_sets(entries)
    l4 = [classes.class_of(bits) for bits in l4_sets]
    compiled = Compiled(ruleset, entries, prefixes, ports, l4, classes)
    _compress(compiled)
    if check_shadows:
        problems, warnings = shadow_problems(compiled, addr_sets, port_sets)
        ruleset.warnings.extend(w for w in warnings if w not in ruleset.warnings)
        if problems:
            raise RuleError(problems)
    return compiled


def _address_sets(entries: list[Entry], name: str) -> dict[int, dict[Network, int]]:
    """{version: {prefix: entries whose `name` prefix contains that prefix}} incl. /0 roots."""
    own: dict[Network, int] = {}
    any_bits = 0
    for e in entries:
        net = getattr(e, name)
        if net is None:
            any_bits |= 1 << e.bit
        else:
            own[net] = own.get(net, 0) | (1 << e.bit)
    out: dict[int, dict[Network, int]] = {}
    for version, root in ((4, ipaddress.ip_network("0.0.0.0/0")), (6, ipaddress.ip_network("::/0"))):
        nets = sorted((n for n in own if n.version == version), key=lambda n: n.prefixlen)
        sets = {root: any_bits | own.get(root, 0)}
        lengths: list[int] = [0]
        for net in nets:
            if net == root:
                continue
            parent = root
            for plen in reversed(lengths):  # nearest shorter rule prefix containing net
                if plen >= net.prefixlen:
                    continue
                sup = net.supernet(new_prefix=plen)
                if sup in sets:
                    parent = sup
                    break
            sets[net] = sets[parent] | own[net]
            if lengths[-1] != net.prefixlen:
                lengths.append(net.prefixlen)
        out[version] = sets
    return out


def _any_bits(entries: list[Entry], name: str) -> int:
    bits = 0
    for e in entries:
        if getattr(e, name) is None:
            bits |= 1 << e.bit
    return bits


def _port_intervals(entries: list[Entry], name: str) -> tuple[list[int], list[int]]:
    """Elementary intervals of 0..65535: (start points, entry set of each interval)."""
    any_bits = _any_bits(entries, name)
    events: dict[int, int] = {0: 0}
    for e in entries:
        rng = getattr(e, name)
        if rng is None:
            continue
        lo, hi = rng
        events[lo] = events.get(lo, 0) ^ (1 << e.bit)
        if hi + 1 <= 65535:
            events[hi + 1] = events.get(hi + 1, 0) ^ (1 << e.bit)
    bounds = sorted(events)
    sets: list[int] = []
    active = 0
    for b in bounds:
        active ^= events[b]  # each entry's bit toggles on at lo, off at hi+1
        sets.append(any_bits | active)
    return bounds, sets


def _l4_sets(entries: list[Entry]) -> list[int]:
    """FW_L4_SIZE entry sets: index p < 256 = protocol p without a TCP header;
    256 + f = TCP whose flag byte is f."""
    any_proto = 0
    by_proto: dict[int, int] = {}
    flag_groups: dict[tuple[int, int], int] = {}
    for e in entries:
        bit = 1 << e.bit
        if e.proto is None:
            any_proto |= bit
        elif e.flags is None:
            by_proto[e.proto] = by_proto.get(e.proto, 0) | bit
        else:
            flag_groups[e.flags] = flag_groups.get(e.flags, 0) | bit
    sets = [any_proto | by_proto.get(p, 0) for p in range(256)]
    tcp = any_proto | by_proto.get(6, 0)
    for f in range(256):
        bits = tcp
        for (mask, value), group in flag_groups.items():
            if f & mask == value:
                bits |= group
        sets.append(bits)
    assert len(sets) == FW_L4_SIZE
    return sets


def _compress(compiled: Compiled) -> None:
    """Summary + non-zero words for every class (pool offsets relative to the slot)."""
    nwords = FW_SUMMARY * 64
    for bits in compiled.classes.sets:
        offset = len(compiled.pool)
        compiled.class_pool_offset.append(offset)
        sums = [0] * FW_SUMMARY
        bases = [0] * FW_SUMMARY
        if bits:
            raw = bits.to_bytes(nwords * 8, "little")
            words = struct.unpack(f"<{nwords}Q", raw)
        else:
            words = ()
        count = 0
        for k in range(FW_SUMMARY):
            bases[k] = offset + count
            if not words:
                continue
            for j in range(WORDS_PER_SUMMARY):
                w = words[k * WORDS_PER_SUMMARY + j]
                if w:
                    sums[k] |= 1 << j
                    compiled.pool.append(w)
                    count += 1
        compiled.class_records.append((tuple(sums), tuple(bases)))


# ---- contradictions -------------------------------------------------------------------------


def shadow_problems(compiled: Compiled, addr_sets: dict, port_sets: dict) -> tuple[list[Problem], list[str]]:
    """Entries that an earlier rule covers completely (in every field).

    Covered by a rule with a *different* action: a contradiction — the later
    rule can never act, which is never what the author meant (an error).
    Covered by a rule with the same action: redundant (a warning). Coverage by
    the union of several earlier rules is not detected (that needs a full
    geometric check; the lesson discusses it).
    """
    rs, entries = compiled.ruleset, compiled.entries
    rule_bits: dict[int, int] = {}
    for e in entries:
        rule_bits[e.rule] = rule_bits.get(e.rule, 0) | (1 << e.bit)
    any_bits = {name: _any_bits(entries, name) for name in ("src", "dst", "dport", "sport", "proto")}
    proto_noflag: dict[int, int] = {}
    flagged: dict[tuple[int, tuple[int, int]], int] = {}
    for e in entries:
        if e.proto is not None and e.flags is None:
            proto_noflag[e.proto] = proto_noflag.get(e.proto, 0) | (1 << e.bit)
        elif e.proto is not None and e.flags is not None:
            flagged[(e.proto, e.flags)] = flagged.get((e.proto, e.flags), 0) | (1 << e.bit)

    def addr_containing(dim: int, net: Network | None, name: str) -> int:
        return any_bits[name] if net is None else addr_sets[(dim, net.version, net)]

    def port_containing(name: str, rng: tuple[int, int] | None) -> int:
        if rng is None:
            return any_bits[name]
        bounds, sets = port_sets[name]
        return _point(bounds, sets, rng[0]) & _point(bounds, sets, rng[1])

    def l4_containing(e: Entry) -> int:
        if e.proto is None:
            return any_bits["proto"]
        bits = any_bits["proto"] | proto_noflag.get(e.proto, 0)
        if e.flags is not None:
            for (proto, (mask, value)), group in flagged.items():
                if proto == e.proto and mask & ~e.flags[0] == 0 and e.flags[1] & mask == value:
                    bits |= group
        return bits

    problems: list[Problem] = []
    warnings: list[str] = []
    reported: set[tuple[int, int]] = set()
    for e in entries:
        earlier = (1 << e.bit) - 1 & ~rule_bits[e.rule]
        if not earlier:
            continue
        cover = earlier & addr_containing(0, e.src, "src")
        if cover:
            cover &= addr_containing(1, e.dst, "dst")
        if cover:
            cover &= port_containing("dport", e.dport) & port_containing("sport", e.sport)
        if cover:
            cover &= l4_containing(e)
        if not cover:
            continue
        first = entries[(cover & -cover).bit_length() - 1]
        if (e.rule, first.rule) in reported:
            continue
        reported.add((e.rule, first.rule))
        rule, by = rs.rules[e.rule], rs.rules[first.rule]
        if rule.action != by.action:
            problems.append(
                Problem(
                    rs.source,
                    rule.lines.get("action", rule.line),
                    "action",
                    f"contradiction: rule {by.name!r} (line {by.line}) comes first and matches "
                    f"everything this rule matches{_which(rule, e)}, so this {rule.action} can never "
                    f"happen ({by.name!r} says {by.action}); reorder the rules or narrow {by.name!r}",
                    rule.name,
                )
            )
        else:
            warnings.append(
                f"{rs.source}:{rule.line}: rule {rule.name!r} is redundant{_which(rule, e)}: "
                f"rule {by.name!r} (line {by.line}) already does the same"
            )
    return problems, warnings


def _which(rule: Rule, e: Entry) -> str:
    multi = [len(rule.src), len(rule.dst), len(rule.proto), len(rule.dport), len(rule.sport)]
    if max(multi) <= 1:
        return ""
    parts = [str(x) for x in (e.src, e.dst) if x is not None]
    if e.dport:
        parts.append(f"dport {e.dport[0]}" + (f"-{e.dport[1]}" if e.dport[1] != e.dport[0] else ""))
    return " (for " + " ".join(parts) + ")" if parts else ""


def _point(bounds: list[int], sets: list[int], port: int) -> int:
    import bisect

    return sets[bisect.bisect_right(bounds, port) - 1]


def iter_bits(bits: int) -> Iterable[int]:
    while bits:
        low = bits & -bits
        yield low.bit_length() - 1
        bits ^= low
