"""Reading a rule file: YAML in, a validated `RuleSet` out (or one `RuleError` naming every problem).

A rule file looks like this (see packetlab/tools/firewall/examples/)::

    default: drop            # what happens when no rule matches: allow | drop
    fragments: l3            # non-first fragments: l3 (classify without ports) | pass | drop
    rules:
      - name: ssh-admins
        action: allow        # allow | drop | rate-limit
        src: 10.0.1.0/28     # CIDR, address, "any", or a list of them (IPv4 and IPv6)
        proto: tcp           # tcp | udp | icmp | icmpv6 | a number | any, or a list
        dport: 22            # a port, "8000-8080", or a list (needs proto tcp/udp)
      - name: ping
        action: rate-limit   # token bucket per source address, in the kernel
        proto: icmp
        rate: 5/s            # packets per second ("300/m" also works)
        burst: 10

Everything is checked before anything touches the kernel, and every problem
is reported with file, line and field (`RuleError`), so a typo never leaves a
half-applied rule set behind. Contradictions among rules (a rule that can never
match) are found by compiling them (`compiler`), and reported together with the
field errors.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from packetlab import safeyaml
from packetlab.errors import InputError
from packetlab.tools.firewall.compiler import compile_rules
from packetlab.tools.firewall.rules import (
    ACTIONS,
    DEFAULTS,
    FRAGMENT_POLICIES,
    PORT_PROTOCOLS,
    PROTOCOLS,
    TCP_FLAGS,
    Network,
    Problem,
    Rule,
    RuleError,
    RuleSet,
    format_port_range,
)

RULE_FIELDS = ("name", "action", "src", "dst", "proto", "dport", "sport", "tcp_flags", "rate", "burst", "comment")
TOP_FIELDS = ("default", "fragments", "rules")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")
MAX_RATE = 100_000_000  # packets per second; above that a rate limit is meaningless
MAX_BURST = 1_000_000
DEFAULT_BURST = 5  # like nftables' `limit rate`

# ---- loading ------------------------------------------------------------------------------


def load_rules(path: str | Path) -> RuleSet:
    """Read and validate a rule file (raises RuleError naming file, line and field)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise InputError(
            f"cannot read rule file {p}",
            cause=exc.strerror or str(exc),
            fix="check the path (example files: packetlab/tools/firewall/examples/)",
        ) from None
    return parse_rules(text, source=str(p))


def parse_rules(text: str, source: str = "<rules>") -> RuleSet:
    """Validate rule-file text (YAML) into a RuleSet."""
    loader = None
    try:
        try:
            node, loader = safeyaml.compose(text, source)  # tags, repeated keys: refused here
        except safeyaml.YamlError as exc:
            raise RuleError([Problem(source, exc.line, exc.field, exc.message)]) from None
        builder = _Builder(source, loader)
        try:
            return builder.ruleset(node)
        except RuleError as exc:
            exc = _with_contradictions(exc, builder)
            raise exc from None
    finally:
        if loader is not None:
            loader.dispose()


def _with_contradictions(exc: RuleError, builder: _Builder) -> RuleError:
    """Report contradictions among the rules that did parse, together with the
    field errors — so one run names every problem in the file."""
    if not builder.good_rules:
        return exc
    partial = RuleSet(default=builder.default, rules=builder.good_rules, fragments="l3", source=builder.source)
    try:
        compile_rules(partial)
    except RuleError as more:
        problems = sorted(exc.problems + more.problems, key=lambda p: p.line or 0)
        return RuleError(problems)
    except Exception:
        pass
    return exc


def ruleset_from_dicts(
    default: str, rules: Sequence[dict[str, Any]], *, fragments: str = "l3", source: str = "<python>"
) -> RuleSet:
    """Build a RuleSet from Python dicts (same validation as files) — for notebooks and tests."""
    doc = {"default": default, "fragments": fragments, "rules": list(rules)}
    return parse_rules(yaml.safe_dump(doc, sort_keys=False), source=source)


class _Builder:
    def __init__(self, source: str, loader: yaml.SafeLoader) -> None:
        self.source, self.loader = source, loader
        self.problems: list[Problem] = []
        self.good_rules: list[Rule] = []
        self.default = "drop"

    def problem(self, node: yaml.Node | None, fieldname: str | None, message: str, rule: str | None = None) -> None:
        line = node.start_mark.line + 1 if node is not None else None
        self.problems.append(Problem(self.source, line, fieldname, message, rule))

    def scalar(self, node: yaml.Node) -> Any:
        """The value of `node`; None, with a problem recorded, if YAML cannot build it (``!!int x``)."""
        try:
            return safeyaml.construct(self.loader, node, self.source)
        except safeyaml.YamlError as exc:
            self.problem(node, None, exc.message)
            return None

    def mapping(self, node: yaml.Node, allowed: Sequence[str], what: str, rule: str | None = None) -> dict:
        """{key: (key_node, value_node)} with unknown and duplicate keys reported."""
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            key = self.scalar(knode) if isinstance(knode, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(knode, None, f"{what} keys must be words, got {key!r}", rule)
                continue
            if key not in allowed:
                close = [a for a in allowed if sorted(a) == sorted(key)] or difflib.get_close_matches(key, allowed, n=1)
                hint = f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(allowed)})"
                self.problem(knode, key, f"unknown field{hint}", rule)
                continue
            if key in out:
                self.problem(knode, key, "appears twice in the same " + what, rule)
                continue
            out[key] = (knode, vnode)
        return out

    def ruleset(self, node: yaml.Node | None) -> RuleSet:
        if node is None or not isinstance(node, yaml.MappingNode):
            self.problem(
                node,
                None,
                "a rule file is a mapping with 'default:' and 'rules:' "
                "(see packetlab/tools/firewall/examples/basic.yaml)",
            )
            raise RuleError(self.problems)
        top = self.mapping(node, TOP_FIELDS, "rule file")
        default = "drop"
        if "default" not in top:
            self.problem(node, "default", "missing: say what happens when no rule matches (default: allow | drop)")
        else:
            default = self.choice(top["default"][1], "default", DEFAULTS) or default
        fragments = "l3"
        if "fragments" in top:
            fragments = self.choice(top["fragments"][1], "fragments", FRAGMENT_POLICIES) or fragments
        rules: list[Rule] = []
        if "rules" not in top:
            self.problem(node, "rules", "missing: give a list of rules (it may be empty: rules: [])")
        else:
            rnode = top["rules"][1]
            if isinstance(rnode, yaml.ScalarNode) and self.scalar(rnode) is None:
                pass  # "rules:" with nothing = no rules
            elif not isinstance(rnode, yaml.SequenceNode):
                self.problem(rnode, "rules", "must be a list of rules (each starting with '- ')")
            else:
                names: dict[str, int] = {}
                for i, item in enumerate(rnode.value):
                    rule = self.rule(item, i)
                    if rule is None:
                        continue
                    if rule.name in names:
                        self.problem(
                            item, "name", f"name {rule.name!r} is already used on line {names[rule.name]}", rule.name
                        )
                        continue
                    names[rule.name] = rule.line
                    rules.append(rule)
        self.good_rules, self.default = rules, default
        if self.problems:
            raise RuleError(self.problems)
        rs = RuleSet(default=default, rules=rules, fragments=fragments, source=self.source)
        rs.warnings.extend(_policy_warnings(rs))
        return rs

    def choice(self, node: yaml.Node, fieldname: str, options: Sequence[str], rule: str | None = None) -> str | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if not isinstance(value, str) or value.lower() not in options:
            close = difflib.get_close_matches(str(value), options, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else ""
            self.problem(node, fieldname, f"{value!r} is not one of {', '.join(options)}{hint}", rule)
            return None
        return value.lower()

    def rule(self, node: yaml.Node, index: int) -> Rule | None:
        label = f"#{index + 1}"
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, None, "each rule is a mapping (action: ..., src: ...)", label)
            return None
        before = len(self.problems)
        for knode, vnode in node.value:  # the rule's name labels its problems
            if (
                isinstance(knode, yaml.ScalarNode)
                and knode.value == "name"
                and isinstance(vnode, yaml.ScalarNode)
                and NAME_RE.match(str(vnode.value))
            ):
                label = str(vnode.value)
        fields = self.mapping(node, RULE_FIELDS, "rule", label)
        name = f"rule-{index + 1}"
        if "name" in fields:
            value = self.scalar(fields["name"][1]) if isinstance(fields["name"][1], yaml.ScalarNode) else None
            if not isinstance(value, str | int) or not NAME_RE.match(str(value)):
                self.problem(
                    fields["name"][1],
                    "name",
                    f"{value!r} is not a usable name (letters, digits, '-', '_', '.'; at most 48 characters)",
                    label,
                )
            else:
                name = str(value)
        label = name
        lines = {k: kn.start_mark.line + 1 for k, (kn, _) in fields.items()}
        action = None
        if "action" not in fields:
            self.problem(node, "action", f"missing (one of {', '.join(ACTIONS)})", label)
        else:
            action = self.choice(fields["action"][1], "action", ACTIONS, label)
        src = self.networks(fields.get("src"), "src", label)
        dst = self.networks(fields.get("dst"), "dst", label)
        proto = self.protocols(fields.get("proto"), label)
        dport = self.ports(fields.get("dport"), "dport", label)
        sport = self.ports(fields.get("sport"), "sport", label)
        flags = self.tcp_flags(fields.get("tcp_flags"), label)
        rate = burst = None
        if action == "rate-limit":
            if "rate" not in fields:
                self.problem(node, "rate", "a rate-limit rule needs a rate (e.g. rate: 100/s)", label)
            else:
                rate = self.rate(fields["rate"][1], label)
            burst = DEFAULT_BURST
            if "burst" in fields:
                burst = self.burst(fields["burst"][1], label)
        elif action is not None:
            for key in ("rate", "burst"):
                if key in fields:
                    self.problem(
                        fields[key][0], key, f"only rate-limit rules take a {key} (this rule is {action})", label
                    )
        # cross-field checks
        if (dport or sport) and proto is not None:
            bad = [p for p in proto or (0,) if p not in PORT_PROTOCOLS]
            if not proto or bad:
                key = "dport" if dport else "sport"
                self.problem(
                    fields[key][0],
                    key,
                    "ports only exist in TCP and UDP: add proto: tcp (or udp, or [tcp, udp])",
                    label,
                )
        if flags is not None and proto is not None and tuple(proto) != (6,):
            self.problem(fields["tcp_flags"][0], "tcp_flags", "TCP flags need proto: tcp (and only tcp)", label)
        if src and dst and not any(s.version == d.version for s in src for d in dst):
            self.problem(
                fields["dst"][1],
                "dst",
                "src and dst are of different IP versions (IPv4 vs IPv6): this rule could never match",
                label,
            )
        if proto is not None and (src or dst):
            versions = {n.version for n in (src or []) + (dst or [])}
            if versions == {6} and proto == [1]:
                self.problem(fields["proto"][1], "proto", "icmp is IPv4's ICMP; for IPv6 write icmpv6", label)
            if versions == {4} and proto == [58]:
                self.problem(fields["proto"][1], "proto", "icmpv6 never appears in IPv4; write icmp", label)
        if len(self.problems) > before or action is None:
            return None
        return Rule(
            name=name,
            action=action,
            src=tuple(src or ()),
            dst=tuple(dst or ()),
            proto=tuple(proto or ()),
            dport=tuple(dport or ()),
            sport=tuple(sport or ()),
            tcp_flags=flags,
            rate=rate,
            burst=burst,
            line=node.start_mark.line + 1,
            lines=lines,
        )

    def items(self, entry: tuple[yaml.Node, yaml.Node] | None) -> list[tuple[yaml.Node, Any]] | None:
        if entry is None:
            return None
        node = entry[1]
        if isinstance(node, yaml.SequenceNode):
            return [(n, self.scalar(n) if isinstance(n, yaml.ScalarNode) else n) for n in node.value]
        if isinstance(node, yaml.ScalarNode):
            return [(node, self.scalar(node))]
        return [(node, node)]

    def networks(self, entry, fieldname: str, label: str) -> list[Network] | None:
        items = self.items(entry)
        if items is None:
            return []
        if not items:
            self.problem(entry[1], fieldname, "an empty list matches nothing; leave the field out to mean any", label)
            return None
        out: list[Network] = []
        ok = True
        for node, value in items:
            if isinstance(value, str) and value.strip().lower() == "any":
                if len(items) > 1:
                    self.problem(node, fieldname, "'any' cannot be combined with other networks", label)
                    ok = False
                continue
            net = parse_network(value)
            if isinstance(net, str):
                self.problem(node, fieldname, net, label)
                ok = False
            else:
                out.append(net)
        if len(set(out)) != len(out):
            self.problem(entry[1], fieldname, "lists the same network twice", label)
            ok = False
        return out if ok else None

    def protocols(self, entry, label: str) -> list[int] | None:
        items = self.items(entry)
        if items is None:
            return []
        if not items:  # not "any": a drop rule with proto: [] would otherwise drop everything
            self.problem(entry[1], "proto", "an empty list matches nothing; leave the field out to mean any", label)
            return None
        out: list[int] = []
        ok = True
        for node, value in items:
            if isinstance(value, str) and value.lower() == "any":
                continue
            if isinstance(value, bool) or not isinstance(value, int | str):
                self.problem(node, "proto", f"{value!r} is not a protocol", label)
                ok = False
                continue
            if isinstance(value, int) or str(value).isdigit():
                num = int(value)
                if not 0 <= num <= 255:
                    self.problem(node, "proto", f"protocol number {num} is outside 0..255", label)
                    ok = False
                    continue
                out.append(num)
            elif value.lower() in PROTOCOLS:
                out.append(PROTOCOLS[value.lower()])
            else:
                close = difflib.get_close_matches(value.lower(), list(PROTOCOLS), n=1)
                hint = (
                    f" — did you mean {close[0]!r}?"
                    if close
                    else " (use a name like tcp, udp, icmp, icmpv6 or a number)"
                )
                self.problem(node, "proto", f"unknown protocol {value!r}{hint}", label)
                ok = False
        if len(set(out)) != len(out):
            self.problem(entry[1], "proto", "lists the same protocol twice", label)
            ok = False
        return sorted(out) if ok else None

    def ports(self, entry, fieldname: str, label: str) -> list[tuple[int, int]] | None:
        items = self.items(entry)
        if items is None:
            return []
        if not items:
            self.problem(entry[1], fieldname, "an empty list matches nothing; leave the field out to mean any", label)
            return None
        out: list[tuple[int, int]] = []
        ok = True
        for node, value in items:
            rng = parse_port_range(value)
            if isinstance(rng, str):
                self.problem(node, fieldname, rng, label)
                ok = False
            else:
                out.append(rng)
        if ok:
            spans = sorted(out)
            for a, b in zip(spans, spans[1:]):
                if b[0] <= a[1]:
                    self.problem(
                        entry[1],
                        fieldname,
                        f"port ranges {format_port_range(a)} and {format_port_range(b)} overlap",
                        label,
                    )
                    ok = False
                    break
        return out if ok else None

    def tcp_flags(self, entry, label: str) -> tuple[int, int] | None:
        if entry is None:
            return None
        value = self.scalar(entry[1]) if isinstance(entry[1], yaml.ScalarNode) else None
        result = parse_tcp_flags(value)
        if isinstance(result, str):
            self.problem(entry[1], "tcp_flags", result, label)
            return None
        return result

    def rate(self, node: yaml.Node, label: str) -> float | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        result = parse_rate(value)
        if isinstance(result, str):
            self.problem(node, "rate", result, label)
            return None
        return result

    def burst(self, node: yaml.Node, label: str) -> int | None:
        value = self.scalar(node) if isinstance(node, yaml.ScalarNode) else None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_BURST:
            self.problem(node, "burst", f"{value!r} is not a whole number of packets from 1 to {MAX_BURST:,}", label)
            return None
        return value


# ---- field parsers (return the value, or a message string saying what is wrong) ----------


def parse_network(value: Any) -> Network | str:
    if isinstance(value, bool) or not isinstance(value, str):
        return f"{value!r} is not a network: write a CIDR such as 10.0.0.0/8 or fd00::/64"
    text = value.strip()
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError:
        try:
            loose = ipaddress.ip_network(text, strict=False)
        except ValueError:
            detail = ""
            try:  # the family's own parser gives the precise reason
                (ipaddress.IPv6Network if ":" in text else ipaddress.IPv4Network)(text)
            except ValueError as why:
                detail = f": {why}"
            return f"{text!r} is not a valid IPv4 or IPv6 network{detail}"
        return f"{text!r} has host bits set: did you mean {loose}?"


def parse_port_range(value: Any) -> tuple[int, int] | str:
    if isinstance(value, bool):
        return f"{value!r} is not a port"
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        lo = hi = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+\s*-\s*\d+\s*", value):
        lo, hi = (int(x) for x in value.split("-"))
    else:
        return f'{value!r} is not a port or port range (write 443 or "8000-8080")'
    for p in (lo, hi):
        if not 0 <= p <= 65535:
            return f"port {p} is outside 0..65535"
    if lo > hi:
        return f"range {lo}-{hi} is backwards: write {hi}-{lo}"
    return lo, hi


def parse_tcp_flags(value: Any) -> tuple[int, int] | str:
    """'syn,!ack' -> (mask, value): SYN must be set and ACK clear; others don't matter."""
    if not isinstance(value, str) or not value.strip():
        return f'{value!r} is not a flag list (write e.g. "syn,!ack")'
    mask = bits = 0
    for word in re.split(r"[,\s]+", value.strip().lower()):
        neg = word.startswith("!")
        name = word[1:] if neg else word
        if name not in TCP_FLAGS:
            return f"unknown TCP flag {name!r} (known: {', '.join(TCP_FLAGS)}; prefix ! for 'not set')"
        bit = TCP_FLAGS[name]
        if mask & bit:
            return f"flag {name!r} is given twice"
        mask |= bit
        if not neg:
            bits |= bit
    return mask, bits


def parse_rate(value: Any) -> float | str:
    """100, "100/s", "6000/m", "100000/h" -> packets per second."""
    per = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
    if isinstance(value, bool):
        return f"{value!r} is not a rate"
    if isinstance(value, int | float):
        rate = float(value)
    elif isinstance(value, str) and (m := re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*/\s*([a-z]+)\s*", value.lower())):
        if m.group(2) not in per:
            return f"unknown time unit {m.group(2)!r} in {value!r} (use /s, /m or /h)"
        rate = float(m.group(1)) / per[m.group(2)]
    else:
        return f"{value!r} is not a rate (write packets per second, e.g. 100/s or 6000/m)"
    if not math.isfinite(rate) or rate <= 0 or rate > MAX_RATE:
        return f"rate {value!r} must be more than 0 and at most {MAX_RATE:,}/s"
    return rate


def _policy_warnings(rs: RuleSet) -> list[str]:
    """Things that are legal but usually a mistake."""
    warnings = []
    if rs.default == "drop":
        v6_allowed = any(
            r.action != "drop" and (not r.proto or 58 in r.proto) and all(n.version == 6 for n in r.src + r.dst)
            for r in rs.rules
        )
        mentions_v6 = any(n.version == 6 for r in rs.rules for n in r.src + r.dst)
        if mentions_v6 and not v6_allowed:
            warnings.append(
                "default is drop and no rule allows icmpv6: IPv6 neighbour discovery will be dropped, "
                "so IPv6 will not work at all (add: {action: allow, proto: icmpv6})"
            )
    return warnings
