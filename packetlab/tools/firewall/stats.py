"""Firewall counters in the Prometheus text exposition format.

That is how people monitor a firewall in production: a `/metrics` endpoint
scraped by Prometheus, or a file for node_exporter's textfile collector.
Both are offered (`serve_metrics`, `write_textfile`); `prometheus_text` is
the one formatter behind them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from packetlab.show.prometheus import serve_metrics  # noqa: F401  (the CLI and tests import it from here)
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


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(base: dict[str, str], **extra: str) -> str:
    items = {**base, **extra}
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in items.items()) + "}" if items else ""


def prometheus_text(
    statuses: FirewallStatus | Iterable[tuple[FirewallStatus, dict[str, str]]], labels: dict[str, str] | None = None
) -> str:
    """Format one status (with `labels`) or several (status, labels) pairs."""
    if isinstance(statuses, FirewallStatus):
        pairs = [(statuses, labels or {})]
    else:
        pairs = list(statuses)
    samples: dict[str, list[str]] = {name: [] for name in _HELP}
    for st, base in pairs:
        for r in st.rules:
            lab = _labels(base, rule=r.name, action=r.action)
            samples["rule_packets_total"].append(f"{PREFIX}_rule_packets_total{lab} {r.packets}")
            samples["rule_bytes_total"].append(f"{PREFIX}_rule_bytes_total{lab} {r.bytes}")
            if r.action == "rate-limit":
                samples["rule_rate_limited_total"].append(f"{PREFIX}_rule_rate_limited_total{lab} {r.limited}")
        for name, c in st.special.items():
            if name == "unconfigured" and not c["packets"]:
                continue
            verdict = {"default": st.default, "fragment": {"l3": "rules"}.get(st.fragments, st.fragments)}.get(
                name, POLICY_VERDICTS.get(name, "")
            )
            if verdict == "allow":
                verdict = "pass"
            lab = _labels(base, reason=name, verdict=verdict)
            samples["policy_packets_total"].append(f"{PREFIX}_policy_packets_total{lab} {c['packets']}")
            samples["policy_bytes_total"].append(f"{PREFIX}_policy_bytes_total{lab} {c['bytes']}")
        samples["generation"].append(f"{PREFIX}_generation{_labels(base)} {st.generation}")
        samples["rules"].append(f"{PREFIX}_rules{_labels(base)} {len(st.rules)}")
        samples["entries"].append(f"{PREFIX}_entries{_labels(base)} {st.entries}")
    out = []
    for name, lines in samples.items():
        if not lines:
            continue
        kind, help_ = _HELP[name]
        out.append(f"# HELP {PREFIX}_{name} {help_}")
        out.append(f"# TYPE {PREFIX}_{name} {kind}")
        out.extend(lines)
    return "\n".join(out) + "\n"


def parse_prometheus_text(text: str) -> dict[tuple[str, frozenset], float]:
    """{(metric, frozenset(labels)): value} — a small parser to check our own output."""
    import re

    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)", line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def write_textfile(path: str | os.PathLike, text: str) -> None:
    """Write atomically (node_exporter must never read half a file)."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, p)
