"""Firewall counters in the Prometheus text exposition format.

That is how people monitor a firewall in production: a `/metrics` endpoint
scraped by Prometheus, or a file for node_exporter's textfile collector.
Both are offered (`packetlab.show.prometheus.serve_metrics`, `write_textfile`);
`prometheus_text` says what the firewall's metrics are, and
`packetlab.show.prometheus` writes them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from packetlab.show.prometheus import MetricFamily, exposition
from packetlab.tools.firewall.status import FirewallStatus

PREFIX = "packetlab_firewall"

_HELP = {
    "rule_packets_total": (
        "counter",
        "Packets that matched a firewall rule (for rate-limit rules, passed and limited).",
    ),
    "rule_bytes_total": ("counter", "Bytes (whole frames) that matched a firewall rule."),
    "rule_rate_limited_total": ("counter", "Packets a rate-limit rule dropped because the source was over its rate."),
    "policy_packets_total": (
        "counter",
        "Packets decided without a rule: default policy, malformed, not IP, fragments.",
    ),
    "policy_bytes_total": ("counter", "Bytes decided without a rule."),
    "generation": ("gauge", "How many rule sets have been applied to this firewall (each apply is one atomic swap)."),
    "rules": ("gauge", "Rules in the running rule set."),
    "entries": ("gauge", "Rule combinations (entries) in the running rule set, after expanding lists."),
}

POLICY_VERDICTS = {"not-ip": "pass", "malformed": "drop", "unconfigured": "pass"}


def prometheus_text(
    statuses: FirewallStatus | Iterable[tuple[FirewallStatus, dict[str, str]]], labels: dict[str, str] | None = None
) -> str:
    """Format one status (with `labels`) or several (status, labels) pairs."""
    if isinstance(statuses, FirewallStatus):
        pairs = [(statuses, labels or {})]
    else:
        pairs = list(statuses)
    fam = {name: MetricFamily(f"{PREFIX}_{name}", kind, help_) for name, (kind, help_) in _HELP.items()}
    for st, base in pairs:
        for r in st.rules:
            fam["rule_packets_total"].add(r.packets, base, rule=r.name, action=r.action)
            fam["rule_bytes_total"].add(r.bytes, base, rule=r.name, action=r.action)
            if r.action == "rate-limit":
                fam["rule_rate_limited_total"].add(r.limited, base, rule=r.name, action=r.action)
        for name, c in st.special.items():
            if name == "unconfigured" and not c["packets"]:
                continue
            verdict = {"default": st.default, "fragment": {"l3": "rules"}.get(st.fragments, st.fragments)}.get(
                name, POLICY_VERDICTS.get(name, "")
            )
            if verdict == "allow":
                verdict = "pass"
            fam["policy_packets_total"].add(c["packets"], base, reason=name, verdict=verdict)
            fam["policy_bytes_total"].add(c["bytes"], base, reason=name, verdict=verdict)
        fam["generation"].add(st.generation, base)
        fam["rules"].add(len(st.rules), base)
        fam["entries"].add(st.entries, base)
    return exposition(fam.values())


def write_textfile(path: str | os.PathLike, text: str) -> None:
    """Write atomically (node_exporter must never read half a file)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, p)
