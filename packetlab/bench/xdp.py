"""XDP costs, measured two ways in one run.

    python -m packetlab.bench xdp [--repeat 1000000] [--rounds 3] [--seconds 2] [--no-live]

1. **BPF_PROG_TEST_RUN**: every module-07 program (and 00-xdp-pass) runs
   `repeat` times on a representative frame; the kernel reports the mean
   ns/run. Rounds are interleaved (all programs, then all again) and the median
   is kept, so a noisy neighbour hits every program alike. Ratios are to
   07-xdp-drop.c, the floor: the cost of running *any* program on the hook.
2. **Live on veth**: 64-byte UDP floods from h1 to h2 in lab ``bxdp`` while
   h2 throws them away at different places — XDP_DROP (native and generic),
   an nftables ``netdev`` ingress drop, an ``inet`` prerouting drop, and the
   full stack (UDP to a closed port). Each is counted by its own mechanism
   (bpf_stats run_cnt, nft counter, Udp NoPorts). Two kinds of traffic:
   trafgen (sk_buffs, the usual veth case) and xdp_frames sent by an XDP_TX
   program in BPF_PROG_TEST_RUN live-frames mode (no sk_buff, as from a NIC).
   The kernel's BPF run-time accounting is switched on for this part only and
   released afterwards (BPF_ENABLE_STATS; the sysctl is not written).

Nothing here asserts on speed; the numbers are for reading, with their ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import statistics
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.show.tables import format_table

VETH_NOTE = """\
Reading the live table. "limited by sender" means the receiver handled (>=95% of)
everything sent: on veth the receive work runs on the sender's CPU, in the same
softirq context, so a row's pps is the cost of the *whole* path (ns/pkt = 1/pps).
trafgen rows: each frame is an sk_buff before it crosses the pair -- the sender's
  stack built it (packet socket -> dev_queue_xmit -> veth_xmit). Native XDP on veth
  runs on that skb's data (copying it first if it lacks XDP's 256 bytes of
  headroom), so XDP_DROP saves only the receive path after the hook (taps, tc,
  netfilter, routing), not the allocation: the rows sit close together and the
  sender's cost dominates. This is why veth narrows the gap.
xdp_frames rows: the frame crosses the pair as a bare xdp_frame, the way a NIC
  hands frames to its driver. Native XDP_DROP frees it without an sk_buff ever
  existing; generic XDP, nftables and the stack need veth to build one first.
  That is the gap physical NICs show (the XDP paper measured several times more
  drops per core with XDP than with Linux's earliest netfilter drop), narrowed
  here by the generator sharing the CPUs."""


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- part 1: BPF_PROG_TEST_RUN ----------------------------------------------------------------
def _frames() -> dict[str, bytes]:
    from scapy.layers.inet import ICMP, IP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import Dot1Q, Ether

    eth = Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02")
    pad = b"\x00" * 18
    return {
        "UDP/IPv4 64B": bytes(eth / IP(src="10.7.1.1", dst="10.7.1.2") / UDP(sport=10000, dport=9) / pad),
        "ICMP echo req": bytes(eth / IP(src="10.7.1.1", dst="10.7.1.2") / ICMP(id=7, seq=1) / (b"x" * 56)),
        "ICMP echo reply": bytes(eth / IP(src="10.7.1.1", dst="10.7.1.2") / ICMP(type=0, id=7, seq=1) / (b"x" * 56)),
        "VLAN+IPv6+2 ext+UDP": bytes(
            eth
            / Dot1Q(vlan=7)
            / IPv6(src="fd07::1", dst="fd07::2")
            / IPv6ExtHdrHopByHop()
            / IPv6ExtHdrDestOpt()
            / UDP(sport=1, dport=9)
            / pad
        ),
    }


@dataclass
class ProgramCase:
    """One row of the test-run table.

    `single_runs`: the program rewrites the frame, and BPF_PROG_TEST_RUN does
    not restore the frame between repetitions (run 2 would see run 1's output:
    an echo *reply*, which the responder passes). Such a case is timed with
    repeat=1 calls instead, and the per-call timer overhead is removed by
    subtracting the floor program timed the same way.
    """

    label: str
    source: str
    frame: str
    setup: Callable[[Any], None] | None = None
    single_runs: bool = False


def _set_redirect_to_lo(prog: Any) -> None:
    """tx_port[1] = 1: test runs arrive on the namespace's loopback (ifindex 1).
    Plain BPF_PROG_TEST_RUN only reports the verdict; nothing is transmitted."""
    prog["tx_port"][ctypes.c_int(1)] = ctypes.c_int(1)


CASES: list[ProgramCase] = [
    ProgramCase("07-xdp-drop (floor)", "bpf/07-xdp-drop.c", "UDP/IPv4 64B"),
    ProgramCase("00-xdp-pass", "bpf/00-xdp-pass.c", "UDP/IPv4 64B"),
    ProgramCase("07-xdp-actions", "bpf/07-xdp-actions.c", "UDP/IPv4 64B"),
    ProgramCase("07-xdp-counter", "bpf/07-xdp-counter.c", "UDP/IPv4 64B"),
    ProgramCase("07-xdp-counter", "bpf/07-xdp-counter.c", "VLAN+IPv6+2 ext+UDP"),
    ProgramCase("07-xdp-icmp-echo", "bpf/07-xdp-icmp-echo.c", "ICMP echo reply"),
    ProgramCase("07-xdp-icmp-echo", "bpf/07-xdp-icmp-echo.c", "ICMP echo req", single_runs=True),
    ProgramCase("07-xdp-redirect", "bpf/07-xdp-redirect.c", "UDP/IPv4 64B", _set_redirect_to_lo),
]


def testrun_rows(
    namespace: str, *, repeat: int = 1_000_000, rounds: int = 3, cases: list[ProgramCase] = CASES
) -> list[tuple]:
    """[(program, frame, verdict, ns/packet, ratio to the first case)] — medians over `rounds`.

    Runs inside `namespace` (a lab host's), so the test runs' ingress device is
    that namespace's loopback and the redirect target lives there too.
    """
    from packetlab.ebpf.live_frames import assert_in_namespace
    from packetlab.ebpf.loader import acquire, release
    from packetlab.topo.netns import entered

    frames = _frames()
    loaded: dict[str, Any] = {}
    for c in cases:  # one loaded program per source file
        if c.source not in loaded:
            loaded[c.source] = acquire(c.source)
    progs = [loaded[c.source] for c in cases]
    single_calls = max(200, min(3000, repeat // 300))
    try:
        times: list[list[float]] = [[] for _ in cases]
        singles: list[list[int]] = [[] for _ in cases]
        verdicts = [""] * len(cases)
        with entered(namespace):
            assert_in_namespace(namespace)
            for case, prog in zip(cases, progs):
                if case.setup:
                    case.setup(prog)
            for _round in range(rounds):
                for i, (case, prog) in enumerate(zip(cases, progs)):
                    if case.single_runs:
                        for _ in range(single_calls):
                            res = prog.test_run(frames[case.frame], repeat=1)
                            singles[i].append(res.ns_per_run)
                            floor_res = progs[0].test_run(frames[cases[0].frame], repeat=1)
                            singles[0].append(floor_res.ns_per_run)
                    else:
                        res = prog.test_run(frames[case.frame], repeat=repeat)
                        times[i].append(res.ns_per_run)
                    verdicts[i] = res.verdict
        floor = statistics.median(times[0]) or 1
        rows = []
        for i, c in enumerate(cases):
            if c.single_runs:
                ns = floor + statistics.median(singles[i]) - statistics.median(singles[0])
                label = f"{c.frame} (single runs)"
            else:
                ns, label = statistics.median(times[i]), c.frame
            rows.append((c.label, label, verdicts[i], int(round(ns)), ns / floor))
        return rows
    finally:
        from packetlab.course.m07_xdp.counters import clear_maps

        for prog in loaded.values():
            clear_maps(prog)
            release(prog)


# ---- part 2: live on veth --------------------------------------------------------------------
TRAFFIC = {
    "trafgen": "trafgen: packet socket -> sk_buff -> veth_xmit (the usual veth case)",
    "xdp_frames": "xdp_frames: XDP_TX in BPF_PROG_TEST_RUN live mode -> ndo_xdp_xmit (no sk_buff, like a NIC ring)",
}
LIVE_SETUPS = [
    "XDP_DROP native",
    "XDP_DROP generic",
    "nftables netdev ingress drop",
    "nftables inet prerouting drop",
    "no filter (kernel stack)",
]

NFT_NETDEV = """table netdev bxdp {
    chain ingress { type filter hook ingress device "eth0" priority 0; policy accept; counter drop; }
}"""
NFT_PREROUTING = """table inet bxdp {
    chain pre { type filter hook prerouting priority -300; policy accept; counter drop; }
}"""


@dataclass
class LiveResult:
    traffic: str
    setup: str
    hook: str
    sent_pps: float
    handled_pps: float
    ns_per_run: float | None

    @property
    def limited_by(self) -> str:
        return "receiver" if self.handled_pps < 0.95 * self.sent_pps else "sender"


def _nft_packets(host: Any, family: str) -> int:
    from packetlab.topo.netfilter import packet_count

    return packet_count(host, "table", family, "bxdp")


def _udp_noports(host: Any) -> int:
    lines = [
        line.split()
        for line in host.run(["cat", "/proc/net/snmp"], check=True).stdout.splitlines()
        if line.startswith("Udp:")
    ]
    return int(dict(zip(lines[0][1:], lines[1][1:]))["NoPorts"])


@contextlib.contextmanager
def receiver_setup(receiver: Any, setup: str, *, napi: bool = False) -> Iterator[tuple[str, Callable[[], int], Any]]:
    """Put `setup` on receiver:eth0; yield (where, packets-handled-so-far reader, XDP program or None).

    `napi=True` switches GRO on for setups without a native XDP program, so a
    veth peer can receive xdp_frames at all (and switches it off afterwards).
    """
    from packetlab.ebpf.stats import ProgStats

    gro = napi and setup != "XDP_DROP native"
    if gro:
        receiver.run(["ethtool", "-K", "eth0", "gro", "on"], check=True)
    try:
        if setup.startswith("XDP_DROP"):
            mode = "native" if "native" in setup else "generic"
            with receiver.attach_xdp("bpf/07-xdp-drop.c", dev="eth0", mode=mode) as att:
                yield f"XDP ({mode})", lambda: ProgStats.read(att.program.fd).run_cnt, att
        elif setup.startswith("nftables"):
            family, ruleset, hook = (
                ("netdev", NFT_NETDEV, "netdev ingress")
                if "netdev" in setup
                else ("inet", NFT_PREROUTING, "inet prerouting -300")
            )
            receiver.nft(ruleset)
            try:
                yield hook, lambda: _nft_packets(receiver, family), None
            finally:
                receiver.run(["nft", "delete", "table", family, "bxdp"])
        elif setup.startswith("no filter"):
            yield "UDP: no socket (NoPorts)", lambda: _udp_noports(receiver), None
        else:
            raise PacketlabError(f"unknown receiver setup {setup!r}", fix=f"use one of {LIVE_SETUPS}")
    finally:
        if gro:
            receiver.run(["ethtool", "-K", "eth0", "gro", "off"])


def measure(
    sender: Any, receiver: Any, traffic: str, setup: str, *, seconds: float = 2.0, frame_size: int = 64
) -> LiveResult:
    """One flood of `traffic` from sender:eth0 to receiver:eth0 against one receiver `setup`."""
    from packetlab.ebpf.live_frames import xdp_frames_flood
    from packetlab.ebpf.stats import ProgStats
    from packetlab.topo.traffic import flood

    if traffic not in TRAFFIC:
        raise PacketlabError(f"unknown traffic {traffic!r}", fix=f"use one of {list(TRAFFIC)}")
    with receiver_setup(receiver, setup, napi=traffic == "xdp_frames") as (hook, handled, att):
        before = handled()
        stats0 = ProgStats.read(att.program.fd) if att else None
        if traffic == "trafgen":
            flooded = flood(
                sender, receiver, src_ip="10.7.8.1", dst_ip="10.7.8.2", seconds=seconds, frame_size=frame_size, flows=64
            )
            sent, elapsed = flooded.sent, flooded.seconds
        else:
            frame = _udp_frame(sender.mac("eth0"), receiver.mac("eth0"), frame_size)
            frames = xdp_frames_flood(sender, "eth0", frame, max(1000, int(seconds * XDP_FRAMES_PER_SECOND)))
            sent, elapsed = frames.frames, frames.seconds
        got = handled() - before
        rate = ProgStats.read(att.program.fd).since(stats0) if att and stats0 else None
    return LiveResult(traffic, setup, hook, sent / elapsed, got / elapsed, rate.ns_per_run if rate else None)


XDP_FRAMES_PER_SECOND = 2_500_000  # a guess that makes one xdp_frames flood last about `seconds`


def _udp_frame(src_mac: str, dst_mac: str, size: int) -> bytes:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    pkt = Ether(src=src_mac, dst=dst_mac) / IP(src="10.7.8.1", dst="10.7.8.2") / UDP(sport=10000, dport=9)
    return bytes(pkt / (b"\x00" * max(0, size - len(pkt))))


def live_rows(
    sender: Any,
    receiver: Any,
    *,
    seconds: float = 2.0,
    rounds: int = 3,
    frame_size: int = 64,
    traffic: tuple[str, ...] = ("trafgen", "xdp_frames"),
    setups: list[str] = LIVE_SETUPS,
    announce: Callable[[str], Any] = _progress,
) -> list[tuple]:
    """Every (traffic, setup) pair, `rounds` times interleaved, over one veth pair; medians.

    Returns rows (traffic, setup, where, sent pps, handled pps, ratio to XDP_DROP native on the
    same traffic, ns per packet of the whole path = 1/handled pps, XDP ns/run from bpf_stats,
    limited by). Run-time accounting is on only inside this call.
    """
    from packetlab.ebpf.stats import bpf_stats

    results: dict[tuple[str, str], list[LiveResult]] = {(t, s): [] for t in traffic for s in setups}
    with bpf_stats(announce=announce):
        for r in range(rounds):
            for t in traffic:
                for s in setups:
                    announce(f"  round {r + 1}/{rounds}: {t} -> {s}")
                    results[(t, s)].append(measure(sender, receiver, t, s, seconds=seconds, frame_size=frame_size))
    rows = []
    for t in traffic:
        base = statistics.median(x.handled_pps for x in results[(t, setups[0])]) or 1.0
        for s in setups:
            rs = results[(t, s)]
            handled = statistics.median(x.handled_pps for x in rs)
            ns = [x.ns_per_run for x in rs if x.ns_per_run is not None]
            rows.append(
                (
                    t,
                    s,
                    rs[0].hook,
                    statistics.median(x.sent_pps for x in rs),
                    handled,
                    handled / base,
                    1e9 / handled if handled else "-",
                    statistics.median(ns) if ns else "-",
                    statistics.mode(x.limited_by for x in rs),
                )
            )
    return rows


def bench_lab(name: str = "bxdp") -> Any:
    """Two hosts on one veth pair: h1 10.7.8.1 -- h2 10.7.8.2 (started; close it when done)."""
    from packetlab.topo.lab import Lab

    lab = Lab(name).start()
    try:
        h1, h2 = lab.host("h1"), lab.host("h2")
        lab.link(h1, h2, ip="10.7.8.1/24", peer_ip="10.7.8.2/24")
    except BaseException:
        lab.close()
        raise
    return lab


def run(
    *,
    repeat: int = 1_000_000,
    rounds: int = 3,
    seconds: float = 2.0,
    live: bool = True,
    frame_size: int = 64,
    lab_name: str = "bxdp",
    out: Callable[[str], Any] = print,
) -> dict[str, list[tuple]]:
    """Both parts in one lab, printed as tables; returns the rows (for notebooks and tests)."""
    result: dict[str, list[tuple]] = {}
    lab = bench_lab(lab_name)
    try:
        h1, h2 = lab.nodes["h1"], lab.nodes["h2"]
        _progress(f"BPF_PROG_TEST_RUN: {len(CASES)} cases x {rounds} rounds x {repeat:,} runs ...")
        result["testrun"] = testrun_rows(h2.namespace, repeat=repeat, rounds=rounds)
        out(f"BPF_PROG_TEST_RUN — mean ns per run reported by the kernel, median of {rounds} rounds of {repeat:,} runs")
        out(format_table(["program", "frame", "verdict", "ns/packet", "x XDP_DROP"], result["testrun"]))
        if live:
            _progress(
                f"live: {frame_size}-byte UDP h1 -> h2 over veth, 2 traffic kinds x {len(LIVE_SETUPS)} "
                f"setups x {rounds} rounds x ~{seconds:g} s ..."
            )
            result["live"] = live_rows(h1, h2, seconds=seconds, rounds=rounds, frame_size=frame_size)
            out(
                f"\nLive on veth h1 -> h2 — {frame_size}-byte UDP, median of {rounds} rounds of ~{seconds:g} s "
                f"per row; handled = counted by the dropping mechanism itself"
            )
            for key, text in TRAFFIC.items():
                out(f"  {key:<10} = {text}")
            out(
                format_table(
                    [
                        "traffic",
                        "receiver setup",
                        "where",
                        "sent pps",
                        "handled pps",
                        "x XDP native",
                        "ns/pkt (1/pps)",
                        "bpf_stats ns/run",
                        "limited by",
                    ],
                    result["live"],
                )
            )
            out("\n" + VETH_NOTE)
    finally:
        lab.close()
    return result


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m packetlab.bench xdp", description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1_000_000, help="test runs per program per round (default 1e6)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the median counts (default 3)")
    ap.add_argument("--seconds", type=float, default=2.0, help="flood length per live setup and round (default 2)")
    ap.add_argument("--frame-size", type=int, default=64, help="live frame size in bytes, 60..1514 (default 64)")
    ap.add_argument("--no-live", action="store_true", help="only the BPF_PROG_TEST_RUN part")
    args = ap.parse_args(argv)
    run(repeat=args.repeat, rounds=args.rounds, seconds=args.seconds, live=not args.no_live, frame_size=args.frame_size)
    return 0
