"""The kernel's side: its conntrack table, statistics and timeouts in a lab
namespace, and per-packet verdicts counted by nftables.

Everything runs inside the lab host's namespace (``conntrack -L`` / ``-S`` /
``-F`` there, sysctls read there): the machine's own table is never read or flushed.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from packetlab.errors import MissingRequirement, PacketlabError
from packetlab.proto.conntrack.states import DEFAULT_TIMEOUTS, PROTO_ICMP, PROTO_NAMES, CtEntry, FlowTuple, short_tuple
from packetlab.topo.host import Host

_SYSCTL_TIMEOUTS = {
    "SYN_SENT": "tcp_timeout_syn_sent",
    "SYN_RECV": "tcp_timeout_syn_recv",
    "ESTABLISHED": "tcp_timeout_established",
    "FIN_WAIT": "tcp_timeout_fin_wait",
    "CLOSE_WAIT": "tcp_timeout_close_wait",
    "LAST_ACK": "tcp_timeout_last_ack",
    "TIME_WAIT": "tcp_timeout_time_wait",
    "CLOSE": "tcp_timeout_close",
    "RETRANS": "tcp_timeout_max_retrans",
    "UNACK": "tcp_timeout_unacknowledged",
    "udp": "udp_timeout",
    "udp_stream": "udp_timeout_stream",
    "icmp": "icmp_timeout",
}


# ---- the kernel's table ----------------------------------------------------------------------

_KV = re.compile(r"^(\w+)=(.*)$")


def _flow_tuple(protonum: int, d: dict[str, str]) -> FlowTuple:
    """One direction's ``src= dst= sport= dport=`` (ICMP: ``id= type=``) as a FlowTuple."""
    if protonum == PROTO_ICMP:
        return FlowTuple(PROTO_ICMP, d["src"], d["dst"], int(d.get("id", 0)), int(d.get("type", 0)))
    return FlowTuple(protonum, d["src"], d["dst"], int(d.get("sport", 0)), int(d.get("dport", 0)))


def parse_conntrack(text: str) -> list[CtEntry]:
    """Parse ``conntrack -L`` output (or /proc/net/nf_conntrack) into CtEntry rows."""
    entries = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 4 or "=" not in line:
            continue
        if tokens[0] in ("ipv4", "ipv6"):  # /proc/net/nf_conntrack format
            tokens = tokens[2:]
        proto, protonum = tokens[0], int(tokens[1])
        timeout = int(tokens[2])
        rest = tokens[3:]
        state = None
        if rest and "=" not in rest[0] and not rest[0].startswith("["):
            state, rest = rest[0], rest[1:]
        tuples: list[dict[str, str]] = []
        flags: list[str] = []
        extra: dict[str, str] = {}
        for tok in rest:
            if tok.startswith("[") and tok.endswith("]"):
                flags.append(tok[1:-1])
                continue
            m = _KV.match(tok)
            if not m:
                continue
            key, value = m.groups()
            if key == "src":
                tuples.append({})
            if key in ("src", "dst", "sport", "dport", "type", "code", "id") and tuples:
                tuples[-1][key] = value
            else:
                extra[key] = value
        if len(tuples) != 2:
            continue

        wanted = [f for f in flags if f in ("ASSURED", "UNREPLIED")]
        entries.append(
            CtEntry(
                proto,
                _flow_tuple(protonum, tuples[0]),
                _flow_tuple(protonum, tuples[1]),
                state,
                timeout,
                tuple(wanted),
                int(extra.get("mark", 0)),
                int(extra.get("zone", 0)),
            )
        )
    return entries


def _conntrack(host: Host, *args: str) -> str:
    try:
        result = host.run(["conntrack", *args])
    except FileNotFoundError:  # pragma: no cover - nsenter reports it instead, below
        result = None
    if result is None or (result.returncode == 127) or "No such file" in (result.stderr or ""):
        raise MissingRequirement(
            "the conntrack tool is not installed",
            cause="reading the kernel's connection table uses conntrack-tools",
            fix="apt-get install conntrack (vagrant/provision.sh installs it)",
        )
    if not result.ok and "0 flow entries" not in result.stderr:
        raise PacketlabError(
            f"conntrack {' '.join(args)} failed in {host.name}",
            cause=(result.stderr or result.stdout).strip(),
            fix="is connection tracking active in that namespace (an nft rule using ct, or NAT)?",
        )
    return result.stdout


def kernel_table(host: Host, proto: str | None = None) -> list[CtEntry]:
    """The kernel's conntrack table of `host`'s namespace (``conntrack -L``), oldest first
    is not guaranteed: sort as you need."""
    return parse_conntrack(_conntrack(host, "-L", *(["-p", proto] if proto else [])))


def kernel_entry(host: Host, orig: FlowTuple) -> CtEntry | None:
    """The kernel's entry whose original tuple is `orig` (or None)."""
    for e in kernel_table(host, PROTO_NAMES.get(orig.proto)):
        if e.orig == orig:
            return e
    return None


def flush(host: Host) -> None:
    """Empty `host`'s conntrack table (``conntrack -F``, that namespace only)."""
    _conntrack(host, "-F")


def kernel_stats(host: Host) -> dict[str, int]:
    """``conntrack -S``: the namespace's per-CPU counters, summed (found, invalid, insert,
    insert_failed, drop, early_drop, error, ...)."""
    totals: dict[str, int] = {}
    for line in _conntrack(host, "-S").splitlines():
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            if key != "cpu":
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def kernel_count(host: Host) -> int:
    """How many entries `host`'s namespace holds (net.netfilter.nf_conntrack_count)."""
    return int(host.sysctl("net.netfilter.nf_conntrack_count"))


def kernel_timeouts(host: Host) -> dict[str, int]:
    """The namespace's conntrack timeouts (per-namespace sysctls), keyed like DEFAULT_TIMEOUTS."""
    out = dict(DEFAULT_TIMEOUTS)
    for key, name in _SYSCTL_TIMEOUTS.items():
        try:
            out[key] = int(host.sysctl(f"net.netfilter.nf_conntrack_{name}"))
        except OSError:
            pass
    return out


def format_entries(entries: Sequence[CtEntry]) -> str:
    """A text table of conntrack entries."""
    from packetlab.show.tables import format_table

    rows = [(e.proto, short_tuple(e.orig), short_tuple(e.reply), e.state or "-", e.timeout, e.status) for e in entries]
    return (
        format_table(["proto", "original direction", "reply direction", "state", "timeout s", "flags"], rows)
        if rows
        else "(no entries)"
    )


# ---- per-packet verdicts from nftables counters ---------------------------------------------

CT_STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED")


class CtStateCounters:
    """Count forwarded packets per ``ct state`` in a router, to see how the kernel
    classified each packet (conntrack -L shows connections, not packets).

    The chain runs at forward priority -10, before any filter chain, and only counts.
    """

    TABLE = "plctstate"

    def __init__(self, router: Host, hook: str = "forward") -> None:
        self.router = router
        rules = "".join(f'    ct state {s.lower()} counter comment "{s}"\n' for s in CT_STATES)
        router.nft(
            f"table inet {self.TABLE} {{\n  chain count {{\n    type filter hook {hook} priority -10; "
            f"policy accept;\n{rules}  }}\n}}\n"
        )
        self._last = self.read()

    def read(self) -> dict[str, int]:
        from packetlab.topo.netfilter import rule_counters

        counts = rule_counters(self.router, "inet", self.TABLE, "count")
        return {s: counts.get(s, 0) for s in CT_STATES}

    def delta(self) -> dict[str, int]:
        """Packets per state since the last call (or since creation)."""
        now = self.read()
        d = {s: now[s] - self._last[s] for s in CT_STATES}
        self._last = now
        return {s: n for s, n in d.items() if n}

    def last(self, *, settle: bool = True) -> str:
        """The states of the packets since the last call, e.g. 'NEW' or 'ESTABLISHED x2'
        (after waiting for the counters to settle, see `settle()`)."""
        return format_tally(self.settle() if settle else self.delta())

    def settle(self, *, quiet: float = 0.04, timeout: float = 2.0) -> dict[str, int]:
        """Wait until the counters have moved and then stayed still for `quiet` seconds
        (answers from the end hosts' kernels included), and return the delta since the
        last call. Polling instead of a fixed sleep keeps a loaded machine from cutting
        a step short; with no traffic at all it gives up after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        previous, changed_at = self.read(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(quiet / 2)
            current = self.read()
            if current != previous:
                previous, changed_at = current, time.monotonic()
            elif current != self._last and time.monotonic() - changed_at >= quiet:
                break
        d = {s: previous[s] - self._last[s] for s in CT_STATES}
        self._last = previous
        return {s: n for s, n in d.items() if n}


def format_tally(tally: dict[str, int]) -> str:
    """{"NEW": 1, "ESTABLISHED": 2} -> 'NEW, ESTABLISHED x2' (in CT_STATES order)."""
    ordered = [s for s in CT_STATES if tally.get(s)]
    return ", ".join(s if tally[s] == 1 else f"{s} x{tally[s]}" for s in ordered) or "(none)"
