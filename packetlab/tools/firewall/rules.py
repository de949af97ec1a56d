"""The firewall's rule model: `Rule`, `RuleSet`, and `RuleError` with its located `Problem`s.

Both the rule-file reader (`rulefile`) and the compiler build on these;
neither is needed to hold or describe a rule set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from packetlab.errors import InputError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

ACTIONS = ("allow", "drop", "rate-limit")
DEFAULTS = ("allow", "drop")
FRAGMENT_POLICIES = ("l3", "pass", "drop")
PROTOCOLS = {"icmp": 1, "tcp": 6, "udp": 17, "gre": 47, "esp": 50, "ah": 51, "icmpv6": 58, "sctp": 132}
PORT_PROTOCOLS = {6, 17}
TCP_FLAGS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10, "urg": 0x20, "ece": 0x40, "cwr": 0x80}


@dataclass(frozen=True)
class Rule:
    """One rule as written (lists not yet expanded). Empty tuples mean "any"."""

    name: str
    action: str
    src: tuple[Network, ...] = ()
    dst: tuple[Network, ...] = ()
    proto: tuple[int, ...] = ()
    dport: tuple[tuple[int, int], ...] = ()
    sport: tuple[tuple[int, int], ...] = ()
    tcp_flags: tuple[int, int] | None = None  # (mask, value)
    rate: float | None = None  # packets per second
    burst: int | None = None
    line: int = 0
    lines: dict = field(default_factory=dict, compare=False, hash=False)  # field -> line

    def identity(self) -> tuple:
        """What makes two rules "the same rule" across applies (keeps its counters)."""
        return (
            self.name,
            self.action,
            self.src,
            self.dst,
            self.proto,
            self.dport,
            self.sport,
            self.tcp_flags,
            self.rate,
            self.burst,
        )

    def describe(self) -> str:
        """A one-line human description: 'allow tcp 10.0.1.0/28 -> any dport 22'."""
        parts = [self.action]
        if self.action == "rate-limit":
            parts[0] = f"rate-limit {self.rate:g}/s burst {self.burst}"
        parts.append(",".join(_proto_name(p) for p in self.proto) or "any")
        parts.append(",".join(map(str, self.src)) or "any")
        parts.append("->")
        parts.append(",".join(map(str, self.dst)) or "any")
        if self.dport:
            parts.append("dport " + ",".join(format_port_range(r) for r in self.dport))
        if self.sport:
            parts.append("sport " + ",".join(format_port_range(r) for r in self.sport))
        if self.tcp_flags:
            parts.append("flags " + format_tcp_flags(self.tcp_flags))
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The rule as it would be written in a rule file (round-trips through load)."""
        out: dict[str, Any] = {"name": self.name, "action": self.action}
        if self.src:
            out["src"] = _one_or_list([str(n) for n in self.src])
        if self.dst:
            out["dst"] = _one_or_list([str(n) for n in self.dst])
        if self.proto:
            out["proto"] = _one_or_list([_proto_name(p) for p in self.proto])
        if self.dport:
            out["dport"] = _one_or_list([_range_value(r) for r in self.dport])
        if self.sport:
            out["sport"] = _one_or_list([_range_value(r) for r in self.sport])
        if self.tcp_flags:
            out["tcp_flags"] = format_tcp_flags(self.tcp_flags)
        if self.action == "rate-limit":
            out["rate"] = f"{self.rate:g}/s"
            out["burst"] = self.burst
        return out


@dataclass
class RuleSet:
    """A validated rule file: default policy, fragment policy, ordered rules."""

    default: str
    rules: list[Rule]
    fragments: str = "l3"
    source: str = "<rules>"
    warnings: list[str] = field(default_factory=list)

    def to_yaml(self) -> str:
        """Serialise in the rule-file format (what the notebook editor writes)."""
        doc = {"default": self.default, "fragments": self.fragments, "rules": [r.to_dict() for r in self.rules]}
        return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)


@dataclass
class Problem:
    """One thing wrong in a rule file, located."""

    source: str
    line: int | None
    field: str | None
    message: str
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        what = []
        if self.rule:
            what.append(f"rule {self.rule!r}")
        if self.field:
            what.append(f"field {self.field!r}")
        return f"{where}: " + (" ".join(what) + ": " if what else "") + self.message


class RuleError(InputError):
    """A rule file is invalid; `problems` lists each one with file, line and field.
    Nothing was applied: the rules already running are unchanged."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        first = self.problems[0]
        count = f"{len(self.problems)} problems" if len(self.problems) > 1 else "1 problem"
        super().__init__(
            f"invalid rule file {first.source} ({count}); nothing was applied",
            cause="\n         ".join(str(p) for p in self.problems[:20])
            + ("\n         ..." if len(self.problems) > 20 else ""),
            fix="correct the lines named above and apply again; the running rules stay as they were",
        )

    @property
    def line(self) -> int | None:
        return self.problems[0].line

    @property
    def field(self) -> str | None:
        return self.problems[0].field


def format_tcp_flags(flags: tuple[int, int]) -> str:
    mask, value = flags
    return ",".join(("" if value & bit else "!") + name for name, bit in TCP_FLAGS.items() if mask & bit)


def _proto_name(num: int) -> str:
    for name, n in PROTOCOLS.items():
        if n == num:
            return name
    return str(num)


def format_port_range(r: tuple[int, int]) -> str:
    return str(r[0]) if r[0] == r[1] else f"{r[0]}-{r[1]}"


def _range_value(r: tuple[int, int]) -> int | str:
    return r[0] if r[0] == r[1] else f"{r[0]}-{r[1]}"


def _one_or_list(values: list) -> Any:
    return values[0] if len(values) == 1 else values
