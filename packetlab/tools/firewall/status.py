"""What a running firewall reports: its rule set and every counter (`FirewallStatus`).

A plain record, read from the kernel by `program.Firewall.status` and formatted
by `stats` (Prometheus) and the CLI; it knows nothing of maps or programs.
"""

from __future__ import annotations

from dataclasses import dataclass

from packetlab.show.tables import format_table


@dataclass
class RuleStatus:
    """One rule of the running set with its counters."""

    name: str
    action: str
    match: str
    line: int
    packets: int
    bytes: int
    limited: int
    counter: int


@dataclass
class FirewallStatus:
    """Everything `status` shows: the running rule set and its counters."""

    source: str
    generation: int
    slot: int
    default: str
    fragments: str
    rules: list[RuleStatus]
    special: dict[str, dict[str, int]]  # default / not-ip / malformed / fragment / unconfigured
    entries: int
    capacity: dict[str, int]
    where: str = ""

    def rule(self, name: str) -> RuleStatus:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(f"no rule named {name!r} (rules: {', '.join(r.name for r in self.rules)})")

    def table(self) -> str:
        """The status as a text table (what `packetlab firewall status` prints)."""
        rows = [
            [r.name, r.action, r.packets, r.bytes, r.limited if r.action == "rate-limit" else "", r.match]
            for r in self.rules
        ]
        d = self.special["default"]
        rows.append([f"(default {self.default})", self.default, d["packets"], d["bytes"], "", "no rule matched"])
        for key, label in (
            ("malformed", "dropped: truncated/unparseable"),
            ("not-ip", "passed: ARP and other non-IP"),
            ("fragment", f"non-first fragments ({self.fragments})"),
        ):
            c = self.special[key]
            if c["packets"]:
                rows.append([f"({key})", "", c["packets"], c["bytes"], "", label])
        head = (
            f"firewall {self.where} generation {self.generation} (slot {self.slot}), "
            f"{len(self.rules)} rules from {self.source}\n"
        )
        return head + format_table(["rule", "action", "packets", "bytes", "limited", "match"], rows)
