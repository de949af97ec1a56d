"""nftables and iptables helpers for the netfilter modules (02 NAT, 03 conntrack, 04 iptables/nftables).

Every function here works on a lab host, i.e. inside that host's network
namespace: rulesets are loaded with ``nft -f -`` / ``iptables-restore`` *in the
namespace*, so the machine's own firewall is never read or changed.

What lives here, and why it is shared:

* reading rule counters and base chains back as Python values (``nft -j``),
  so a notebook prints a table instead of a raw dump;
* ``nft monitor trace`` parsed into events, and the path of one packet drawn
  as a mermaid diagram or a text diagram;
* generators for the rule-scaling benchmark (N non-matching rules before the
  matching one, as an nftables chain, an nftables set or an iptables chain),
  one ``nft -f`` / ``iptables-restore`` call each, however large N is.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.show.tables import format_table
from packetlab.topo.host import Host

# ---- reading rulesets back ------------------------------------------------------------

#: hook order a packet meets them (ingress is per device, before prerouting)
HOOK_ORDER = ("ingress", "prerouting", "input", "forward", "output", "postrouting", "egress")

#: the named priorities of `nft` (for the ip/ip6/inet families), as numbers
NAMED_PRIORITIES = {"raw": -300, "mangle": -150, "dstnat": -100, "filter": 0, "security": 50, "srcnat": 100}


def nft_json(host: Host, *args: str) -> list[dict[str, Any]]:
    """``nft -j list ...`` in `host`, returned as the list under the "nftables" key."""
    result = host.run(["nft", "-j", "list", *(args or ("ruleset",))], check=True)
    return json.loads(result.stdout or '{"nftables": []}').get("nftables", [])


@dataclass(frozen=True)
class BaseChain:
    """A chain attached to a hook: where and when netfilter calls it."""

    family: str
    table: str
    chain: str
    type: str
    hook: str
    priority: int
    policy: str

    @property
    def name(self) -> str:
        return f"{self.family} {self.table} {self.chain}"


def base_chains(host: Host) -> list[BaseChain]:
    """Every base chain in `host`'s ruleset, in the order a packet meets them
    (hook order, then priority: lower numbers run first)."""
    chains = []
    for item in nft_json(host, "ruleset"):
        c = item.get("chain")
        if c and "hook" in c:
            prio = c.get("prio", 0)
            if isinstance(prio, str):
                prio = NAMED_PRIORITIES.get(prio, 0)
            chains.append(
                BaseChain(
                    c["family"],
                    c["table"],
                    c["name"],
                    c.get("type", "filter"),
                    c["hook"],
                    int(prio),
                    c.get("policy", "accept"),
                )
            )
    return sorted(chains, key=lambda b: (_hook_rank(b.hook), b.priority, b.family, b.table, b.chain))


def _hook_rank(hook: str) -> int:
    return HOOK_ORDER.index(hook) if hook in HOOK_ORDER else len(HOOK_ORDER)


def rule_counters(host: Host, family: str, table: str, chain: str) -> dict[str, int]:
    """Packet counters of the rules of one chain, keyed by each rule's comment
    (rules without a comment are keyed ``#<handle>``). Rules without a counter are skipped."""
    counters: dict[str, int] = {}
    for item in nft_json(host, "chain", family, table, chain):
        rule = item.get("rule")
        if not rule:
            continue
        for expr in rule.get("expr", []):
            if "counter" in expr and isinstance(expr["counter"], dict):
                counters[rule.get("comment") or f"#{rule['handle']}"] = int(expr["counter"].get("packets", 0))
    return counters


def packet_count(host: Host, *listed: str) -> int:
    """Sum of every rule counter in one listed object, e.g. ``packet_count(h, "table", "ip", "t")``
    or ``packet_count(h, "chain", "ip", "t", "pre")`` (what benchmarks read as "packets handled")."""
    return sum(
        int(expr["counter"].get("packets", 0))
        for item in nft_json(host, *listed)
        for expr in item.get("rule", {}).get("expr", [])
        if isinstance(expr.get("counter"), dict)
    )


def delete_table(host: Host, family: str, table: str) -> bool:
    """Delete one table in `host` if it exists; True if it was there."""
    return host.run(["nft", "delete", "table", family, table]).ok


def nft_check(host: Host, ruleset: str) -> str | None:
    """Parse and validate `ruleset` without loading it (``nft -c``); the error text or None."""
    result = host.run(["nft", "-c", "-f", "-"], input=ruleset)
    return None if result.ok else (result.stderr or result.stdout).strip()


def replace_ruleset(host: Host, ruleset: str) -> str | None:
    """Load `ruleset` in `host` in place of the tables it declares; nft's error text (nothing changed) or None.

    Validated first with ``nft -c``, so a rejected ruleset leaves the running one alone; then each
    ``table FAMILY NAME`` it declares is deleted, so loading it again replaces instead of appending.
    """
    error = nft_check(host, ruleset)
    if error is not None:
        return error
    for family, name in re.findall(r"^\s*table\s+(\w+)\s+([\w-]+)", ruleset, flags=re.M):
        delete_table(host, family, name)
    host.nft(ruleset)
    return None


# ---- iptables ------------------------------------------------------------------------

IPTABLES_BACKENDS = {"nft": "iptables-nft", "legacy": "iptables-legacy"}


def iptables(host: Host, *args: str, backend: str = "nft", check: bool = True) -> str:
    """Run ``iptables`` (nf_tables backend by default, or x_tables 'legacy') in `host`."""
    binary = IPTABLES_BACKENDS.get(backend)
    if binary is None:
        raise PacketlabError(f"unknown iptables backend {backend!r}", fix="use backend='nft' or backend='legacy'")
    return host.run([binary, "-w", *args], check=check).stdout


def iptables_restore(host: Host, text: str, *, backend: str = "nft") -> None:
    """Load a whole iptables-save style `text` in one call (atomic per table)."""
    host.run([IPTABLES_BACKENDS[backend] + "-restore", "-w"], input=text, check=True)


def translate(host: Host, rule: str | Sequence[str]) -> str:
    """``iptables-translate``: the nftables rule equivalent to one iptables rule.

    `rule` is the iptables arguments (``"-A INPUT -p tcp --dport 22 -j ACCEPT"``).
    iptables-translate only prints, it never touches the kernel; it runs in the
    lab host anyway, like every command in a lab.
    """
    argv = rule.split() if isinstance(rule, str) else list(rule)
    if argv and argv[0] == "iptables":
        argv = argv[1:]
    result = host.run(["iptables-translate", *argv])
    if not result.ok:
        raise PacketlabError(
            f"iptables-translate could not translate: {' '.join(argv)}",
            cause=(result.stderr or result.stdout).strip(),
            fix="check the iptables syntax (it must be a valid iptables rule, e.g. -A INPUT ...)",
        )
    out = result.stdout.strip()
    return out[len("nft ") :].strip("'") if out.startswith("nft ") else out


# ---- tracing -------------------------------------------------------------------------


@dataclass
class TraceEvent:
    """One line of ``nft monitor trace``."""

    id: str
    family: str
    table: str
    chain: str
    kind: str  # packet | rule | policy | verdict | unknown
    text: str  # the rest of the line (packet fields, rule, verdict)
    verdict: str | None = None


_TRACE_RE = re.compile(r"^trace id (?P<id>[0-9a-f]+) (?P<family>\w+) (?P<table>\S+) (?P<chain>\S+) (?P<rest>.*)$")


def parse_trace(text: str) -> list[TraceEvent]:
    """Parse ``nft monitor trace`` output into events (unrelated lines are skipped)."""
    events = []
    for line in text.splitlines():
        m = _TRACE_RE.match(line.strip())
        if not m:
            continue
        rest = m.group("rest").strip()
        kind, verdict = "unknown", None
        if rest.startswith("packet:"):
            kind, rest = "packet", rest[len("packet:") :].strip()
        elif rest.startswith("rule "):
            kind = "rule"
            v = re.search(r"\(verdict (\w+)(?: [^)]*)?\)\s*$", rest)
            verdict = v.group(1) if v else None
            rest = rest[len("rule ") :].strip()
        elif rest.startswith("policy "):
            kind, verdict = "policy", rest.split()[1]
        elif rest.startswith("verdict "):
            kind, verdict = "verdict", rest.split()[1]
        events.append(
            TraceEvent(m.group("id"), m.group("family"), m.group("table"), m.group("chain"), kind, rest, verdict)
        )
    return events


class TraceSession:
    """``nft monitor trace`` running in a host while you send traffic.

    >>> with TraceSession(router) as trace:
    ...     client.ping("10.0.2.10")
    >>> trace.events          # parsed TraceEvents, every chain the packet visited

    Only packets with ``meta nftrace set 1`` (set by a rule you add, usually in
    a prerouting chain at raw priority) are traced.
    """

    def __init__(self, host: Host, settle: float = 0.3) -> None:
        self.host, self.settle = host, settle
        self.events: list[TraceEvent] = []
        self.text = ""
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> TraceSession:
        self._proc = self.host.popen(["stdbuf", "-oL", "nft", "monitor", "trace"])
        time.sleep(self.settle)  # let the monitor subscribe before traffic starts
        return self

    def __exit__(self, *exc: Any) -> None:
        proc, self._proc = self._proc, None
        if proc is None:  # not entered
            return
        time.sleep(self.settle)  # let the last trace messages arrive
        proc.terminate()
        try:
            self.text = proc.communicate(timeout=5)[0] or ""
        except Exception:  # a stuck monitor is killed by the lab anyway
            proc.kill()
            self.text = proc.communicate()[0] or ""
        self.events = parse_trace(self.text)

    def paths(self) -> dict[str, list[Hop]]:
        """The chains each traced packet visited, in order, keyed by trace id."""
        return trace_paths(self.events)


@dataclass
class Hop:
    """One chain a traced packet went through, with the verdict it got there."""

    family: str
    table: str
    chain: str
    verdict: str
    rules: list[str] = field(default_factory=list)  # the rules that matched (verdict shown)
    packet: str = ""  # the packet as the chain saw it
    hook: str | None = None
    priority: int | None = None

    @property
    def name(self) -> str:
        return f"{self.family} {self.table} {self.chain}"


def trace_paths(events: Iterable[TraceEvent]) -> dict[str, list[Hop]]:
    """Group trace events into one ordered list of chain visits per trace id.

    A "packet:" line opens a visit (netfilter prints one each time a hook
    starts evaluating a base chain); rule, policy and verdict lines belong to
    the visit they follow. A jump to a regular chain shows as its own visit
    with no hook.
    """
    paths: dict[str, list[Hop]] = {}
    for ev in events:
        hops = paths.setdefault(ev.id, [])
        here = (ev.family, ev.table, ev.chain)
        if ev.kind == "packet" or not hops or (hops[-1].family, hops[-1].table, hops[-1].chain) != here:
            hops.append(Hop(ev.family, ev.table, ev.chain, "continue", packet=ev.text if ev.kind == "packet" else ""))
        hop = hops[-1]
        if ev.kind == "rule":
            hop.rules.append(ev.text)
            if ev.verdict and ev.verdict != "continue":
                hop.verdict = ev.verdict
        elif ev.kind in ("policy", "verdict") and ev.verdict:
            hop.verdict = ev.verdict
    return paths


def annotate_hooks(paths: dict[str, list[Hop]], chains: Sequence[BaseChain]) -> None:
    """Fill in each hop's hook and priority from the ruleset's base chains."""
    index = {(c.family, c.table, c.chain): c for c in chains}
    for hops in paths.values():
        for hop in hops:
            base = index.get((hop.family, hop.table, hop.chain))
            if base:
                hop.hook, hop.priority = base.hook, base.priority


def mermaid_path(hops: Sequence[Hop], title: str = "packet") -> str:
    """A mermaid flowchart of one packet's path, built from its trace hops."""
    lines = ["flowchart LR", f'    start(["{_mm(title)}"])']
    prev = "start"
    for i, hop in enumerate(hops):
        node = f"h{i}"
        where = f"{hop.hook} · prio {hop.priority}" if hop.hook else "chain"
        lines.append(f'    {node}["{_mm(where)}<br/>{_mm(hop.name)}"]')
        lines.append(f"    {prev} --> {node}")
        prev = node
        if hop.verdict in ("drop", "reject"):
            lines.append(f'    end{i}(["{hop.verdict.upper()}"])')
            lines.append(f"    {node} --> end{i}")
            return "\n".join(lines)
    last = hops[-1].hook if hops else None
    target = {"input": "local socket", "postrouting": "out of the interface"}.get(last or "", "continues")
    lines.append(f'    done(["{target}"])')
    lines.append(f"    {prev} --> done")
    return "\n".join(lines)


def text_path(hops: Sequence[Hop]) -> str:
    """The same path as a plain-text table, one chain per row."""
    rows = [(hop.hook or "?", hop.priority if hop.hook else "", hop.name, f"-> {hop.verdict}") for hop in hops]
    return format_table(["hook", "priority", "chain", "verdict"], rows, align="<><")


def _mm(text: str) -> str:
    return text.replace('"', "'")


# ---- rule-scaling rulesets (benchmark) -------------------------------------------------

BENCH_TABLE = "plbench"
#: RFC 2544 benchmarking range: the N non-matching source addresses come from here
FILLER_NET = ipaddress.IPv4Network("198.18.0.0/15")


def filler_addresses(n: int) -> list[str]:
    """`n` distinct addresses from 198.18.0.0/15 (never a lab address)."""
    if n > FILLER_NET.num_addresses - 2:
        raise PacketlabError(f"{n} filler rules is more than 198.18.0.0/15 holds", fix="use n <= 131,000")
    base = int(FILLER_NET.network_address) + 1
    return [str(ipaddress.IPv4Address(base + i)) for i in range(n)]


# --8<-- [start:bench-rulesets]
def nft_linear_ruleset(n: int, match_src: str, *, hook: str = "prerouting", priority: int = -300) -> str:
    """N rules ``ip saddr <filler> drop`` that never match, then the one that does."""
    rules = "".join(f"    ip saddr {a} drop\n" for a in filler_addresses(n))
    return (
        f"table ip {BENCH_TABLE} {{\n  chain c {{\n    type filter hook {hook} priority {priority}; policy accept;\n"
        f'{rules}    ip saddr {match_src} counter drop comment "match"\n  }}\n}}\n'
    )


def nft_set_ruleset(n: int, match_src: str, *, hook: str = "prerouting", priority: int = -300) -> str:
    """The same N+1 addresses in one hash set, looked up by one rule."""
    elements = ", ".join([*filler_addresses(n), match_src])
    return (
        f"table ip {BENCH_TABLE} {{\n  set blocked {{\n    type ipv4_addr\n    elements = {{ {elements} }}\n  }}\n"
        f"  chain c {{\n    type filter hook {hook} priority {priority}; policy accept;\n"
        f'    ip saddr @blocked counter drop comment "match"\n  }}\n}}\n'
    )


# --8<-- [end:bench-rulesets]


def iptables_linear_ruleset(n: int, match_src: str) -> str:
    """iptables-restore input: N non-matching DROP rules, then the matching one,
    in the raw table's PREROUTING chain (the same hook and priority as the nft variants)."""
    rules = "".join(f"-A PREROUTING -s {a}/32 -j DROP\n" for a in filler_addresses(n))
    return f"*raw\n:PREROUTING ACCEPT [0:0]\n{rules}-A PREROUTING -s {match_src}/32 -j DROP\nCOMMIT\n"


def iptables_match_count(host: Host, match_src: str, *, backend: str = "nft") -> int:
    """Packets counted by the matching (last) rule of the benchmark's iptables chain."""
    out = iptables(host, "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n", backend=backend)
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[2] == "DROP" and parts[-2] == match_src:
            return int(parts[0])
    return 0


@dataclass(frozen=True)
class RuleVariant:
    """One way of writing "drop if the source is in this list of N+1 addresses"."""

    key: str
    label: str
    load: Callable[[Host, int, str], None]
    matched: Callable[[Host, str], int]
    clear: Callable[[Host], None]


def _nft_load(builder: Callable[..., str]) -> Callable[[Host, int, str], None]:
    def load(host: Host, n: int, src: str) -> None:
        delete_table(host, "ip", BENCH_TABLE)
        host.nft(builder(n, src))

    return load


def _nft_matched(host: Host, src: str) -> int:
    if not host.run(["nft", "list", "table", "ip", BENCH_TABLE]).ok:
        return 0  # not loaded (or cleared): nothing matched
    return rule_counters(host, "ip", BENCH_TABLE, "c").get("match", 0)


def _nft_clear(host: Host) -> None:
    delete_table(host, "ip", BENCH_TABLE)


def _ipt_load(backend: str) -> Callable[[Host, int, str], None]:
    def load(host: Host, n: int, src: str) -> None:
        iptables_restore(host, iptables_linear_ruleset(n, src), backend=backend)

    return load


def _ipt_clear(backend: str) -> Callable[[Host], None]:
    def clear(host: Host) -> None:
        iptables(host, "-t", "raw", "-F", "PREROUTING", backend=backend, check=False)

    return clear


RULE_VARIANTS: dict[str, RuleVariant] = {
    "iptables-legacy": RuleVariant(
        "iptables-legacy",
        "iptables-legacy chain (x_tables)",
        _ipt_load("legacy"),
        lambda h, s: iptables_match_count(h, s, backend="legacy"),
        _ipt_clear("legacy"),
    ),
    "iptables-nft": RuleVariant(
        "iptables-nft",
        "iptables chain (nf_tables backend)",
        _ipt_load("nft"),
        lambda h, s: iptables_match_count(h, s, backend="nft"),
        _ipt_clear("nft"),
    ),
    "nft-chain": RuleVariant(
        "nft-chain", "nftables linear chain", _nft_load(nft_linear_ruleset), _nft_matched, _nft_clear
    ),
    "nft-set": RuleVariant("nft-set", "nftables set lookup", _nft_load(nft_set_ruleset), _nft_matched, _nft_clear),
}
