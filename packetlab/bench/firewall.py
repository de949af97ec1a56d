"""Benchmark: the XDP firewall vs iptables and nftables, 1 to 10,000 rules.

    python -m packetlab.bench firewall [--sizes 1,100,1000,10000] [--seconds 2]

One lab (sender h1 — receiver h2 on a veth pair), one traffic pattern (64-byte
UDP from 10.0.1.1 to 10.0.1.2:9, 64 source ports, sent by trafgen), and for
each rule count N the same rule set in every implementation: N-1 rules that
drop other sources (172.16.x.y/32, udp dport 9) and a last rule that matches
the traffic and drops it — the worst case for a linear chain, a typical
"blocklist plus policy" shape for everyone. Measured, all in one run:

* ns/packet with BPF_PROG_TEST_RUN (XDP only: the kernel runs the program on
  one frame `repeat` times and reports the mean);
* live processing rate: packets/s that reached the final rule while trafgen
  floods the receiver (counted by each implementation's own counter), for the
  XDP firewall, an iptables (legacy, x_tables) linear chain, an nftables
  linear chain and an nftables set holding the same rules, all at the
  earliest hook (XDP / raw PREROUTING), plus the XDP_DROP floor.

On veth the receive work runs on the sending CPU (the sender waits for it),
so a live rate is what one CPU achieves sending *and* filtering, and "live
ns/packet" = 1e9 / rate is an upper bound on the filter's own cost. For the
XDP variants trafgen's own cost dominates (compare the XDP_DROP floor): their
test-run figure is the filter alone.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from packetlab.bench import median
from packetlab.show.tables import format_table

BENCH_SRC, BENCH_DST, BENCH_PORT = "10.0.1.1", "10.0.1.2", 9
BLOCK_BASE = int(ipaddress.ip_address("172.16.0.0"))
DEFAULT_SIZES = (1, 100, 1000, 10000)
VARIANTS = ("xdp-firewall", "iptables-linear", "nft-linear", "nft-set")


QUIET = False


def log(msg: str) -> None:
    if not QUIET:
        print(f"[bench firewall] {msg}", file=sys.stderr, flush=True)


# ---- the same rules, four ways ------------------------------------------------------------------
def blocked_source(i: int) -> str:
    return str(ipaddress.ip_address(BLOCK_BASE + i))


def firewall_rules(n: int):
    """The firewall's RuleSet: n-1 blocked /32 sources, then the rule the traffic hits."""
    from packetlab.tools.firewall.rules import Rule, RuleSet

    rules = [
        Rule(
            name=f"block-{i}",
            action="drop",
            src=(ipaddress.ip_network(blocked_source(i)),),
            proto=(17,),
            dport=((BENCH_PORT, BENCH_PORT),),
        )
        for i in range(n - 1)
    ]
    rules.append(
        Rule(
            name="bench",
            action="drop",
            src=(ipaddress.ip_network("10.0.1.0/24"),),
            proto=(17,),
            dport=((BENCH_PORT, BENCH_PORT),),
        )
    )
    return RuleSet(default="allow", rules=rules, source=f"<benchmark: {n} rules>")


def adversarial_rules(n: int = 16_384):
    """The bitmap classifier's worst case: n-1 rules whose source-address bitmap and
    destination-port bitmap are non-zero in the *same* words but never share a bit
    (even rules: the packet's source, another port; odd rules: the packet's port,
    another source), then a catch-all. Every summary word is a candidate, none
    matches: the program checks all of them before the last rule wins."""
    from packetlab.tools.firewall.rules import Rule, RuleSet

    rules = []
    for i in range(n - 1):
        src, port = (BENCH_SRC, 7) if i % 2 == 0 else ("10.0.2.1", BENCH_PORT)
        rules.append(
            Rule(name=f"x-{i}", action="drop", src=(ipaddress.ip_network(src),), proto=(17,), dport=((port, port),))
        )
    rules.append(Rule(name="catch-all", action="drop", proto=(17,)))
    return RuleSet(default="allow", rules=rules, source=f"<adversarial: {n} rules>")


def iptables_restore_text(n: int) -> str:
    lines = ["*raw", ":PREROUTING ACCEPT [0:0]"]
    lines += [
        f"-A PREROUTING -s {blocked_source(i)}/32 -p udp -m udp --dport {BENCH_PORT} -j DROP" for i in range(n - 1)
    ]
    lines.append(f"-A PREROUTING -s 10.0.1.0/24 -p udp -m udp --dport {BENCH_PORT} -j DROP")
    lines.append("COMMIT")
    return "\n".join(lines) + "\n"


def nft_linear_text(n: int) -> str:
    rules = [f"    ip saddr {blocked_source(i)} udp dport {BENCH_PORT} drop" for i in range(n - 1)]
    rules.append(f"    ip saddr 10.0.1.0/24 udp dport {BENCH_PORT} counter drop")
    return (
        "table ip bfw {\n  chain pre {\n    type filter hook prerouting priority raw; policy accept;\n"
        + "\n".join(rules)
        + "\n  }\n}\n"
    )


def nft_set_text(n: int) -> str:
    elems = [f"{blocked_source(i)} . {BENCH_PORT}" for i in range(n - 1)] + [f"10.0.1.0/24 . {BENCH_PORT}"]
    return (
        "table ip bfw {\n  set rules {\n    type ipv4_addr . inet_service; flags interval;\n    elements = { "
        + ", ".join(elems)
        + " }\n  }\n  chain pre {\n    type filter hook prerouting priority raw; policy accept;\n"
        "    ip protocol udp ip saddr . udp dport @rules counter drop\n  }\n}\n"
    )


def bench_frame(src: str = BENCH_SRC) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    return bytes(
        Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
        / IP(src=src, dst=BENCH_DST, ttl=64)
        / UDP(sport=10000, dport=BENCH_PORT)
        / (b"\0" * 18)
    )


# ---- results -------------------------------------------------------------------------------------
@dataclass
class Row:
    variant: str
    rules: int
    testrun_ns: float | None = None  # BPF_PROG_TEST_RUN mean ns/packet (median of runs)
    live_pps: float | None = None  # packets/s that reached the final rule
    sent_pps: float | None = None

    @property
    def live_ns(self) -> float | None:
        return 1e9 / self.live_pps if self.live_pps else None


@dataclass
class Report:
    sizes: list[int]
    seconds: float
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    deep_trie_ns: float | None = None  # XDP firewall, largest N, source found deep in the trie
    worst_case_ns: float | None = None  # XDP firewall, adversarial_rules(): every summary word a candidate
    worst_case_rules: int = 0

    def get(self, variant: str, rules: int) -> Row | None:
        for r in self.rows:
            if r.variant == variant and r.rules == rules:
                return r
        return None

    def table(self) -> str:
        rows = []
        for r in self.rows:
            rows.append(
                [
                    r.variant,
                    r.rules if r.variant != "xdp-drop-floor" else "-",
                    "-" if r.testrun_ns is None else f"{r.testrun_ns:.1f}",
                    _f(r.live_pps),
                    _f(r.live_ns),
                    _f(r.sent_pps),
                ]
            )
        return format_table(["variant", "rules", "test-run ns/pkt", "live pkt/s", "live ns/pkt", "sent pkt/s"], rows)

    def targets(self) -> list[tuple[str, str, bool | None]]:
        """(target, measured, met?) for the module's two targets."""
        lo, hi = min(self.sizes), max(self.sizes)
        out: list[tuple[str, str, bool | None]] = []
        a, b = self.get("xdp-firewall", lo), self.get("xdp-firewall", hi)
        if a and b and a.testrun_ns and b.testrun_ns:
            ratio = b.testrun_ns / a.testrun_ns
            out.append(
                (
                    f"XDP firewall ns/packet at {hi:,} rules within 1.5x of {lo:,} rule",
                    f"{b.testrun_ns:.1f} / {a.testrun_ns:.1f} ns = {ratio:.2f}x",
                    ratio <= 1.5,
                )
            )
        ipt = self.get("iptables-linear", hi)
        if b and ipt and ipt.live_ns and b.testrun_ns:
            ratio = ipt.live_ns / b.testrun_ns
            out.append(
                (
                    f"XDP firewall >= 20x cheaper per packet than an iptables linear chain at {hi:,} rules",
                    f"iptables {ipt.live_ns:,.0f} ns (live) / XDP {b.testrun_ns:.1f} ns (test-run) = {ratio:,.0f}x",
                    ratio >= 20,
                )
            )
            if b.live_ns:
                live_ratio = ipt.live_ns / b.live_ns
                out.append(
                    (
                        "  same, both sides measured live (the XDP figure is mostly trafgen: a lower bound)",
                        f"{ipt.live_ns:,.0f} / {b.live_ns:,.0f} ns = {live_ratio:,.1f}x",
                        live_ratio >= 20,
                    )
                )
        return out

    def ratios_table(self) -> str:
        """Per rule count: how many times more each implementation costs per packet than the XDP firewall."""
        rows = []
        for n in self.sizes:
            x = self.get("xdp-firewall", n)
            if not x or not x.live_ns:
                continue
            row: list[Any] = [n]
            for v in VARIANTS[1:]:
                r = self.get(v, n)
                row.append(f"{r.live_ns / x.live_ns:,.1f}x" if r and r.live_ns else "-")
            smallest = self.get("xdp-firewall", min(self.sizes))
            base = smallest.testrun_ns if smallest else None
            row.append(f"{x.testrun_ns / base:.2f}x" if x.testrun_ns and base else "-")
            rows.append(row)
        return format_table(
            [
                "rules",
                "iptables/XDP (live)",
                "nft-linear/XDP (live)",
                "nft-set/XDP (live)",
                "XDP vs its 1-rule cost (test-run)",
            ],
            rows,
        )

    def text(self) -> str:
        parts = [self.table(), "", self.ratios_table(), ""]
        if self.deep_trie_ns is not None:
            parts.append(
                f"XDP firewall, {max(self.sizes):,} rules, packet from a *blocked* source (deepest LPM path): "
                f"{self.deep_trie_ns:.1f} ns/packet (test-run)"
            )
        if self.worst_case_ns is not None:
            parts.append(
                f"XDP firewall, adversarial {self.worst_case_rules:,}-rule set (every bitmap word a false "
                f"candidate): {self.worst_case_ns:.1f} ns/packet (test-run) — the classifier's worst case"
            )
        for target, measured, met in self.targets():
            parts.append(f"target: {target}: {measured} -> {'met' if met else 'NOT met'}")
        parts += self.notes
        return "\n".join(parts)

    def to_json(self) -> str:
        return json.dumps(
            {
                "sizes": self.sizes,
                "seconds": self.seconds,
                "rows": [asdict(r) for r in self.rows],
                "deep_trie_ns": self.deep_trie_ns,
                "worst_case_ns": self.worst_case_ns,
                "notes": self.notes,
            },
            indent=1,
        )


def _f(v: float | None) -> Any:
    return "-" if v is None else float(v)


# ---- measuring ------------------------------------------------------------------------------------
def testrun_ns(run, frame: bytes, repeat: int, rounds: int = 5) -> float:
    return median([run(frame, repeat=repeat).ns_per_run for _ in range(rounds)])


def run(
    sizes=DEFAULT_SIZES,
    *,
    seconds: float = 2.0,
    repeat: int = 100_000,
    live: bool = True,
    lab_name: str = "bfw",
    variants=VARIANTS,
    rounds: int = 5,
    progress: bool = True,
) -> Report:
    """Build the lab, measure every variant at every size, tear the lab down.

    Test-run figures of the XDP firewall are taken in `rounds` rotations over
    the rule sets (swapping them in each time), so that noise from other work
    on the machine spreads over every size instead of favouring one."""
    global QUIET
    QUIET = not progress
    from packetlab import Lab
    from packetlab.tools.firewall.compiler import compile_rules
    from packetlab.tools.firewall.layout import Capacity
    from packetlab.tools.firewall.program import Firewall
    from packetlab.topo.traffic import flood

    sizes = sorted(set(int(s) for s in sizes))
    report = Report(sizes=list(sizes), seconds=seconds)
    frame = bench_frame()
    with Lab(lab_name) as lab:
        h1, h2 = lab.host("h1"), lab.host("h2")
        lab.link(h1, h2, ip=f"{BENCH_SRC}/24", peer_ip=f"{BENCH_DST}/24")

        def live_run(counter) -> tuple[float, float]:
            before = counter()
            res = flood(
                h1,
                h2,
                src_ip=BENCH_SRC,
                dst_ip=BENCH_DST,
                seconds=seconds,
                frame_size=64,
                flows=64,
                dst_port=BENCH_PORT,
            )
            return (counter() - before) / res.seconds, res.sent_pps

        # the floor
        log("XDP_DROP floor")
        att = h2.attach_xdp("bpf/08-xdp-drop.c", dev="eth0", mode="native")
        row = Row("xdp-drop-floor", 0, testrun_ns=testrun_ns(att.test_run, frame, repeat, rounds))
        if live:
            row.live_pps, row.sent_pps = live_run(lambda: int(att.table("dropped")[0]))  # table() sums the CPUs
        att.detach()
        report.rows.append(row)

        if "xdp-firewall" in variants:
            compiled = {}
            for n in sizes:
                log(f"compiling the {n:,}-rule set")
                compiled[n] = compile_rules(firewall_rules(n))
            cap = Capacity.for_compiled(compiled[max(sizes)])
            fw = Firewall.attach(h2, "eth0", compiled[min(sizes)], capacity=cap)
            report.notes.append(
                f"XDP firewall: one program for every size (capacity {cap.rules:,} rules), rule sets "
                "swapped in atomically between measurements"
            )
            rows = {}
            for n in sizes:
                log(f"xdp-firewall, {n:,} rules")
                fw.apply(compiled[n])
                row = rows[n] = Row("xdp-firewall", n)
                assert fw.active is not None  # apply() just set it
                bench_counter = fw.active.counters[-1]  # the last rule: the one the bench traffic matches
                if live:
                    row.live_pps, row.sent_pps = live_run(lambda c=bench_counter: fw.counter(c)["packets"])
                report.rows.append(row)
            log(f"xdp-firewall: BPF_PROG_TEST_RUN, {rounds} rounds over every size")
            samples: dict[int, list[float]] = {n: [] for n in sizes}
            deep_samples: list[float] = []
            deep = bench_frame(src=blocked_source(max(sizes) - 2)) if max(sizes) >= 2 else None
            for _ in range(rounds):
                for n in sizes:
                    fw.apply(compiled[n])
                    samples[n].append(fw.test_run(frame, repeat=repeat).ns_per_run)
                    if n == max(sizes) and deep is not None:
                        deep_samples.append(fw.test_run(deep, repeat=repeat).ns_per_run)
            for n in sizes:
                rows[n].testrun_ns = median(samples[n])
            report.deep_trie_ns = median(deep_samples) if deep_samples else None
            if max(sizes) >= 10_000:
                log("xdp-firewall: the adversarial rule set")
                fw.apply(compile_rules(adversarial_rules(cap.rules), check_shadows=False))
                report.worst_case_ns = testrun_ns(fw.test_run, frame, repeat, rounds)
                report.worst_case_rules = cap.rules
            fw.detach()

        for variant in variants:
            if variant == "xdp-firewall":
                continue
            for n in sizes:
                log(f"{variant}, {n:,} rules")
                load_netfilter(h2, variant, n)
                try:
                    row = Row(variant, n)
                    if live:
                        row.live_pps, row.sent_pps = live_run(lambda v=variant: netfilter_count(h2, v))
                    report.rows.append(row)
                finally:
                    unload_netfilter(h2, variant)
    return report


def load_netfilter(host, variant: str, n: int) -> None:
    """Install the n-rule set in `host`'s namespace only."""
    if variant == "iptables-linear":
        host.run(["iptables-legacy-restore"], input=iptables_restore_text(n), check=True, timeout=120)
    elif variant == "nft-linear":
        host.run(["nft", "-f", "-"], input=nft_linear_text(n), check=True, timeout=120)
    elif variant == "nft-set":
        host.run(["nft", "-f", "-"], input=nft_set_text(n), check=True, timeout=120)
    else:
        raise ValueError(variant)


def unload_netfilter(host, variant: str) -> None:
    if variant == "iptables-linear":
        host.run(["iptables-legacy", "-t", "raw", "-F", "PREROUTING"], check=True)
    else:
        host.run(["nft", "delete", "table", "ip", "bfw"], check=True)


def netfilter_count(host, variant: str) -> int:
    """Packets counted by the final (matching) rule."""
    if variant == "iptables-linear":
        out = host.run(["iptables-legacy", "-t", "raw", "-L", "PREROUTING", "-v", "-x", "-n"], check=True).stdout
        last = [line for line in out.splitlines() if line.strip() and line.split()[0].isdigit()][-1]
        return int(last.split()[0])
    from packetlab.topo.netfilter import packet_count

    return packet_count(host, "chain", "ip", "bfw", "pre")


def plot(report: Report, ax=None):
    """Per-packet cost against rule count (log-log), one line per implementation."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for variant, style in (("iptables-linear", "o-"), ("nft-linear", "s-"), ("nft-set", "^-"), ("xdp-firewall", "D-")):
        pts = [(r.rules, r.live_ns) for r in report.rows if r.variant == variant and r.live_ns]
        if pts:
            ax.plot(*zip(*pts), style, label=f"{variant} (live)")
    pts = [(r.rules, r.testrun_ns) for r in report.rows if r.variant == "xdp-firewall" and r.testrun_ns]
    if pts:
        ax.plot(*zip(*pts), "D--", label="xdp-firewall (test-run)")
    floor = report.get("xdp-drop-floor", 0)
    if floor and floor.live_ns:
        ax.axhline(floor.live_ns, color="grey", linestyle=":", label="XDP_DROP floor (live)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("rules")
    ax.set_ylabel("ns per packet")
    ax.set_title("Per-packet cost vs number of rules")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    return ax


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m packetlab.bench firewall", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="rule counts (default %(default)s)")
    parser.add_argument("--seconds", type=float, default=2.0, help="flood duration per measurement (default 2)")
    parser.add_argument("--repeat", type=int, default=100_000, help="BPF_PROG_TEST_RUN repeat count")
    parser.add_argument("--no-live", action="store_true", help="test-run figures only (no floods)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    start = time.monotonic()
    report = run(sizes, seconds=args.seconds, repeat=args.repeat, live=not args.no_live)
    print(report.text())
    print(f"\n(measured in {time.monotonic() - start:.0f} s on {_machine()})")
    if args.json:
        with open(args.json, "w") as f:
            f.write(report.to_json())
    return 0


def _machine() -> str:
    import os

    return f"{os.uname().release}, {os.cpu_count()} CPUs"
