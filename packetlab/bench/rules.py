"""Rule scaling: what N non-matching firewall rules cost each packet.

    python -m packetlab.bench rules [--seconds 1] [--repeat 3] [--sizes 0,100,1000,10000]

One lab ("brules"): a sender namespace with one veth link per variant to its
own receiver namespace, so every variant's rules live alone in their
receiver. Each receiver drops the benchmark traffic in a prerouting chain at
raw priority (-300) after N rules that never match:

* ``iptables-legacy`` — an x_tables chain (``iptables-legacy-restore``);
* ``iptables-nft``    — the same chain through Debian's default ``iptables``,
  which compiles each rule to nf_tables bytecode;
* ``nft-chain``       — N ``ip saddr X drop`` rules in an nftables chain;
* ``nft-set``         — the same N+1 addresses in one nftables hash set.

Traffic is trafgen UDP (64-byte frames, 64 flows) from the sender
(`packetlab.topo.traffic.flood`). A veth without XDP delivers a frame to the
receiver inside the sender's transmit call, on the same CPU, so the rate we
measure is the cost of the whole path: trafgen, veth, and the receiver's
stack up to the drop. A "sink" receiver that drops at its netdev ingress hook,
before IP, measures the sender's own ceiling: a row close to the ceiling was
limited by the sender, a row well below it by the receiver's rules.
Per-packet cost is derived from that single-CPU rate: ns/packet = 1e9 / pps,
and what N rules add is ns/packet(N) - ns/packet(0) of the same variant.
The matching rule's counter is read after each run, to prove that every
packet really walked past all N rules.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.show.tables import format_table
from packetlab.topo.lab import Lab
from packetlab.topo.netfilter import RULE_VARIANTS
from packetlab.topo.traffic import flood

DEFAULT_SIZES = (0, 100, 1_000, 10_000)
DEFAULT_VARIANTS = ("iptables-legacy", "iptables-nft", "nft-chain", "nft-set")
_NODE = {"iptables-legacy": "ipleg", "iptables-nft": "ipnft", "nft-chain": "nftch", "nft-set": "nftset"}
SENDER_BOUND = 0.8  # a row at >= 80 % of the sender's ceiling is called sender-limited


@dataclass
class Point:
    """One (variant, N) measurement: the best of `repeat` floods."""

    variant: str
    n: int
    runs: list[float]
    matched_fraction: float

    @property
    def pps(self) -> float:
        return max(self.runs) if self.runs else 0.0

    @property
    def ns_per_packet(self) -> float:
        return 1e9 / self.pps if self.pps else float("inf")


@dataclass
class RulesResult:
    seconds: float
    repeat: int
    sizes: tuple[int, ...]
    variants: tuple[str, ...]
    ceiling_runs: list[float] = field(default_factory=list)
    points: list[Point] = field(default_factory=list)

    @property
    def ceiling_pps(self) -> float:
        return max(self.ceiling_runs) if self.ceiling_runs else 0.0

    def point(self, variant: str, n: int) -> Point:
        for p in self.points:
            if p.variant == variant and p.n == n:
                return p
        raise KeyError((variant, n))

    def limited_by(self, p: Point) -> str:
        if self.ceiling_pps and p.pps >= SENDER_BOUND * self.ceiling_pps:
            return "sender"
        return "receiver"


def _progress(msg: str, quiet: bool) -> None:
    if not quiet:
        print(msg, file=sys.stderr, flush=True)


def run(
    *,
    seconds: float = 1.0,
    repeat: int = 3,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    variants: tuple[str, ...] = DEFAULT_VARIANTS,
    frame_size: int = 64,
    lab_name: str = "brules",
    quiet: bool = False,
) -> RulesResult:
    """Build the lab, measure every (variant, N) `repeat` times, tear the lab down.

    Rounds are interleaved (every variant and the sink once per N per round,
    in a rotating order), so a burst of load from elsewhere on the machine
    hits one run of many rows rather than every run of one row; the fastest
    run of each point is kept, because outside load can only slow a run down.
    """
    unknown = [v for v in variants if v not in RULE_VARIANTS]
    if unknown:
        raise PacketlabError(
            f"unknown rule variant(s): {', '.join(unknown)}", fix=f"choose from {', '.join(RULE_VARIANTS)}"
        )
    sizes = tuple(sorted(set(sizes)))
    if 0 not in sizes:
        sizes = (0, *sizes)  # ratios are relative to N = 0
    if any(n < 0 for n in sizes):
        raise PacketlabError("rule counts must be >= 0", fix="e.g. --sizes 0,100,1000,10000")
    result = RulesResult(seconds, repeat, sizes, tuple(variants))
    runs: dict[tuple[str, int], list[float]] = {(v, n): [] for v in variants for n in sizes}
    matched: dict[tuple[str, int], list[float]] = {(v, n): [] for v in variants for n in sizes}
    with Lab(lab_name) as lab:
        tx = lab.host("tx")
        links: dict[str, tuple[Any, str, str, str]] = {}
        for i, name in enumerate(("sink", *variants)):
            rx = lab.host(_NODE.get(name, name))
            lab.link(tx, rx, ip=f"10.77.{i}.1/24", peer_ip=f"10.77.{i}.2/24")
            links[name] = (rx, f"eth{i}", f"10.77.{i}.1", f"10.77.{i}.2")
        links["sink"][0].nft(
            "table netdev sink {\n  chain in {\n    type filter hook ingress device eth0 "
            "priority 0; policy drop;\n  }\n}\n"
        )

        def blast(name: str) -> Any:
            rx, dev, src, dst = links[name]
            return flood(tx, rx, src_ip=src, dst_ip=dst, dev=dev, seconds=seconds, frame_size=frame_size)

        for rnd in range(repeat):
            for n in sizes:
                result.ceiling_runs.append(blast("sink").received_pps)
                order = list(variants[rnd % len(variants) :]) + list(variants[: rnd % len(variants)])
                for variant in order:
                    v = RULE_VARIANTS[variant]
                    rx, dev, src, dst = links[variant]
                    started = time.monotonic()
                    v.load(rx, n, src)
                    loaded = time.monotonic() - started
                    f = blast(variant)
                    runs[(variant, n)].append(f.received_pps)
                    matched[(variant, n)].append(v.matched(rx, src) / f.received if f.received else 0.0)
                    v.clear(rx)
                    _progress(
                        f"rules: round {rnd + 1}/{repeat}  {variant:<16} N={n:>6,}  {f.received_pps:>12,.0f} pps"
                        f"  (rules loaded in {loaded:.2f} s)",
                        quiet,
                    )
    for variant in variants:
        for n in sizes:
            fractions = matched[(variant, n)]
            result.points.append(Point(variant, n, runs[(variant, n)], min(fractions) if fractions else 0.0))
    return result


def table_rows(result: RulesResult) -> list[tuple]:
    rows = []
    for variant in result.variants:
        base = result.point(variant, 0)
        for n in result.sizes:
            p = result.point(variant, n)
            added = p.ns_per_packet - base.ns_per_packet
            rows.append(
                (
                    variant,
                    n,
                    round(p.pps),
                    f"{p.pps / base.pps:.3f}" if base.pps else "-",
                    round(p.ns_per_packet),
                    round(added) if n else 0,
                    f"{added / n:.2f}" if n else "-",
                    result.limited_by(p),
                    f"{p.matched_fraction:.0%}",
                )
            )
    return rows


HEADERS = ("variant", "N rules", "pps", "vs N=0", "ns/packet", "+ns vs N=0", "ns/rule", "limited by", "matched")


def format_result(result: RulesResult) -> str:
    """The benchmark table plus the lines that say how each figure was derived."""
    lines = [
        f"rule scaling: best of {result.repeat} x {result.seconds:g} s per point, trafgen UDP 64-byte frames",
        f"sender ceiling (receiver drops at netdev ingress): {result.ceiling_pps:,.0f} pps",
        "",
        format_table(HEADERS, table_rows(result)),
        "",
        "pps: packets per second into the receiver, all dropped by the matching (last) rule;",
        "ns/packet = 1e9 / pps: the whole path runs on one CPU (veth hands each frame to the",
        "receiver inside the sender's transmit call), so +ns vs N=0 is what the N rules cost;",
        f"limited by: 'sender' when pps >= {SENDER_BOUND:.0%} of the sender ceiling, else the receiver (its stack",
        "and its N rules); figures are the fastest of the runs, as load elsewhere on the machine only slows them;",
        "matched: share of received packets counted by the matching rule (100 % = all walked past N rules).",
    ]
    return "\n".join(lines)


def plot(result: RulesResult, ax: Any = None) -> Any:
    """ns/packet against N for each variant (matplotlib axes)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4))
    for variant in result.variants:
        pts = [result.point(variant, n) for n in result.sizes]
        ax.plot(
            [max(p.n, 1) for p in pts], [p.ns_per_packet for p in pts], marker="o", label=RULE_VARIANTS[variant].label
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("non-matching rules before the match (N; N=0 drawn at 1)")
    ax.set_ylabel("ns per packet (whole path, one CPU)")
    ax.set_title("Firewall rule scaling: linear chains vs a set")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return ax


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m packetlab.bench rules", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="flood duration per run (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per point; the fastest is reported (default 3)")
    ap.add_argument(
        "--sizes",
        default=",".join(map(str, DEFAULT_SIZES)),
        help="comma-separated rule counts N (default 0,100,1000,10000)",
    )
    ap.add_argument(
        "--variants", default=",".join(DEFAULT_VARIANTS), help=f"comma-separated, from {','.join(RULE_VARIANTS)}"
    )
    ap.add_argument("--frame-size", type=int, default=64)
    ap.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = ap.parse_args(argv)
    try:
        sizes = tuple(int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip())
        variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
        result = run(
            seconds=args.seconds,
            repeat=max(args.repeat, 1),
            sizes=sizes,
            variants=variants,
            frame_size=args.frame_size,
            quiet=args.quiet,
        )
    except PacketlabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: bad --sizes: {exc}", file=sys.stderr)
        return 2
    print(format_result(result))
    return 0
