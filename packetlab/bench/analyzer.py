"""``python -m packetlab.bench analyzer``: the module 11b analyzer against the field's tools, in one run.

Labels: one pcap recorded on the lab's server while real programs talk (curl to http.server on
8443, openssl s_client to s_server on 8444, dig to dnsmasq, ping) and the scanner probes 200
ports; every conversation's label from our inspector, from tshark's dissectors and from
nDPI's ndpiReader (when libndpi-bin is installed), with each disagreement explained.

Speed: (1) BPF_PROG_TEST_RUN ns/packet of bpf/11b-flow.c beside an XDP_DROP sink; (2) the
same trafgen flood into the server's interface against each receiver: the XDP_DROP sink, the
flow program (drop verdict; with and without 1-in-1000 sampling read by Python) — these three
in `rounds` interleaved rounds, so a shared machine's drift hits both sides of the flow/sink
ratio alike —, then the analyzer's AF_PACKET TPACKET_V3 ring read by Python (frames only, and
frames fed to the Inspector), tcpdump and tshark writing to /dev/null. For each: packets sent
and handled per second, the drop counters the kernel and the tools report (read, never
guessed), and CPU per packet. Timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packetlab.course.m11b_packet_analyzer.topology import SCANNER_IP, build
from packetlab.show.tables import format_table
from packetlab.tools.analyzer.inspector import Inspector
from packetlab.tools.analyzer.kernel import SOURCE, FlowMonitor
from packetlab.topo.packet_ring import PacketRing

LABELS = ("http", "tls", "dns", "ssh", "smtp", "ftp")
SINK = "bpf/07-xdp-drop.c"
_NDPI_LINE = re.compile(
    r"\b(TCP|UDP|ICMP)\s+(\S+):(\d+)\s+<->\s+(\S+):(\d+)\s+\[proto: [\d.]+/([^\]]+)\].*?\[Confidence: ([^\]]+)\]"
)


# ---- labels --------------------------------------------------------------------------------------
def conv(proto: str, a: str, ap: int, b: str, bp: int) -> tuple:
    return (proto, *sorted([(a, ap), (b, bp)]))


def ours(pcap: Path) -> dict[tuple, str]:
    ins = Inspector().feed_pcap(pcap)
    out = {}
    for r in ins.records():
        k = r.key
        if k.proto in (6, 17):
            out[conv(k.proto_name, k.src, k.sport, k.dst, k.dport)] = r.app or "-"
    return out


def tshark_labels(pcap: Path) -> dict[tuple, str]:
    fields = ["ip.src", "ip.dst", "tcp.srcport", "tcp.dstport", "udp.srcport", "udp.dstport", "frame.protocols"]
    argv = ["tshark", "-r", str(pcap), "-n", "-T", "fields", "-E", "separator=,"]
    out = subprocess.run(argv + sum((["-e", f] for f in fields), []), capture_output=True, text=True, timeout=120)
    labels: dict[tuple, str] = {}
    for line in out.stdout.splitlines():
        src, dst, tsp, tdp, usp, udp, protos = (line.split(",") + [""] * 7)[:7]
        if not src or not (tsp or usp):
            continue
        proto, sp, dp = ("tcp", tsp, tdp) if tsp else ("udp", usp, udp)
        key = conv(proto, src, int(sp), dst, int(dp))
        found = [p for p in protos.split(":") if p in LABELS]
        if found:
            labels[key] = found[-1]
        else:
            labels.setdefault(key, "-")
    return labels


def ndpi_labels(pcap: Path) -> dict[tuple, tuple[str, str]]:
    out = subprocess.run(["ndpiReader", "-i", str(pcap), "-v", "2"], capture_output=True, text=True, timeout=120)
    labels = {}
    for m in _NDPI_LINE.finditer(out.stdout):
        proto, a, ap, b, bp, name, confidence = m.groups()
        if proto == "ICMP":
            continue
        label = name.split(".")[-1].lower()
        label = {"ftp_control": "ftp", "unknown": "-"}.get(label, label)
        labels[conv(proto.lower(), a, int(ap), b, int(bp))] = (label, confidence)
    return labels


@dataclass
class LabelReport:
    pcap_packets: int
    rows: list[tuple] = field(default_factory=list)
    summary: Counter = field(default_factory=Counter)


def compare_labels(pcap: Path) -> LabelReport:
    mine, shark = ours(pcap), tshark_labels(pcap)
    ndpi = ndpi_labels(pcap) if shutil.which("ndpiReader") else {}
    report = LabelReport(sum(1 for _ in Inspector().feed_pcap(pcap).flows))
    groups: dict[tuple, list] = {}
    for key in sorted(set(mine) | set(shark) | set(ndpi)):
        n_label, n_conf = ndpi.get(key, ("n/a", ""))
        triple = (mine.get(key, "n/a"), shark.get(key, "n/a"), n_label if ndpi else "not run")
        why = explain(key, triple, n_conf)
        groups.setdefault((triple, why), []).append(key)
    for (triple, why), keys in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        example = keys[0]
        report.rows.append((len(keys), f"{example[0]} :{max(example[1][1], example[2][1])}", *triple, why))
        report.summary["conversations"] += len(keys)
        report.summary["ours = tshark"] += len(keys) if triple[0] == triple[1] else 0
        if ndpi:
            report.summary["ours = nDPI"] += len(keys) if triple[0] == triple[2] else 0
    return report


def explain(key: tuple, labels: tuple[str, str, str], ndpi_confidence: str) -> str:
    mine, shark, ndpi = labels
    if len({mine, shark, ndpi} - {"not run"}) == 1:
        return "agree"
    if mine == "-" and "port" in ndpi_confidence.lower():
        return "no payload (a scan probe): nDPI guesses from the port, we and tshark do not"
    if mine != "-" and shark == "-":
        return "tshark picks dissectors by port and these ports are not registered; content says otherwise"
    if mine == "-" and ndpi not in ("-", "n/a", "not run"):
        return f"nDPI says {ndpi} ({ndpi_confidence})"
    return "differs: inspect this conversation"


# ---- speed ---------------------------------------------------------------------------------------
@dataclass
class SpeedRow:
    setup: str
    sent_pps: float
    handled_pps: float
    drops: str
    cpu_ns_per_packet: float | None
    note: str = ""
    round: int = 1


def testrun_ns(repeat: int) -> dict[str, float]:
    """ns/packet of the sink and of the flow program (drop verdict) on the same UDP frame."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    from packetlab.ebpf.loader import acquire, release

    frame = bytes(Ether() / IP(src="10.11.9.1", dst="10.11.9.2") / UDP(sport=10000, dport=9) / (b"\0" * 18))
    out = {}
    for name, src in (("XDP_DROP sink", SINK), ("11b-flow (drop)", SOURCE)):
        prog = acquire(src)
        try:
            if src == SOURCE:
                FlowMonitor(prog, drop=True)
            best = min(prog.test_run(frame, repeat=repeat).ns_per_run for _ in range(3))
            out[name] = float(best)
        finally:
            if src == SOURCE:
                FlowMonitor(prog).reset()
            release(prog)
    return out


def _proc_cpu_ns(pid: int) -> int:
    """utime + stime of `pid` and its children (dumpcap under tshark), in ns."""
    tick = os.sysconf("SC_CLK_TCK")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(stat[11]) + int(stat[12])
            todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError, IndexError):
            continue
    return int(total * 1e9 / tick)


def ring_row(receiver: Any, blast: Any, *, inspect: bool) -> SpeedRow:
    """The analyzer's AF_PACKET TPACKET_V3 ring on the receiver, read by a Python thread during the
    flood (and until it is empty): frames handed over per second of reading, the thread's CPU per
    frame, and the kernel's PACKET_STATISTICS. With `inspect`, every frame also goes to the Inspector."""
    from packetlab.tools.analyzer.capture import INSPECT_GEOMETRY

    ins = Inspector() if inspect else None
    stop = threading.Event()
    out = {"frames": 0, "cpu": 0, "wall": 0.0}
    with PacketRing(receiver.namespace, "eth0", filter="udp", snaplen=128, geometry=INSPECT_GEOMETRY) as ring:

        def reader() -> None:
            cpu0, t0, n = time.thread_time_ns(), time.monotonic(), 0
            while True:
                got = 0
                for block in ring.blocks(0.05):
                    got += len(block)
                    if ins is not None:
                        for f in block:
                            ins.feed(f.data, f.timestamp)
                n += got
                if stop.is_set() and not got:
                    break
            out.update(frames=n, cpu=time.thread_time_ns() - cpu0, wall=time.monotonic() - t0 - 0.05)

        t = threading.Thread(target=reader, name="bench-ring-reader")
        t.start()
        try:
            res = blast()
            time.sleep(0.05)  # the last block retires after 10 ms
        finally:
            stop.set()
            t.join()
        st = ring.stats()
    n = out["frames"]
    name = "AF_PACKET TPACKET_V3 ring" + (" + Inspector (Python tier)" if inspect else ", Python reads frames")
    return SpeedRow(
        name,
        res.sent_pps,
        n / max(float(out["wall"]), 1e-3),
        f"tp_drops={st['drops']} tp_freeze_q_cnt={st['freeze_q']}",
        out["cpu"] / n if n else None,
        f"{n} read of {st['packets']} the filter accepted; CPU of the reading thread",
    )


def live_rows(seconds: float, rounds: int = 1) -> list[SpeedRow]:
    from packetlab.ebpf.stats import ProgStats, bpf_stats
    from packetlab.topo import servers
    from packetlab.topo.lab import Lab
    from packetlab.topo.traffic import flood, link_counters

    rows = []
    lab = Lab("anbench").start()
    try:
        h1, h2 = lab.host("h1"), lab.host("h2")
        lab.link(h1, h2, ip="10.11.9.1/24", peer_ip="10.11.9.2/24")

        def blast() -> Any:
            return flood(h1, h2, src_ip="10.11.9.1", dst_ip="10.11.9.2", seconds=seconds)

        xdp_setups = ("XDP_DROP sink", "11b-flow (drop)", "11b-flow (drop, sample 1/1000, Python reads)")
        with bpf_stats(announce=None):
            for rnd, setup in ((r, s) for r in range(1, rounds + 1) for s in xdp_setups):
                att = h2.attach_xdp(SINK if setup.startswith("XDP_DROP") else SOURCE)
                mon = None if setup.startswith("XDP_DROP") else FlowMonitor(att, drop=True)
                if mon:
                    mon.reset()
                    mon.configure(drop=True, sample_every=1000 if "sample" in setup else 0)
                s0, rx0 = ProgStats.read(att.program.fd), link_counters(h2)
                samples = 0
                if "sample" in setup and mon is not None:
                    box: list = []
                    t = threading.Thread(target=lambda out=box: out.append(blast()))
                    t.start()
                    while t.is_alive():
                        samples += sum(e.type == "sample" for e in mon.poll(0.05))
                    t.join()
                    res = box[0]
                    samples += sum(e.type == "sample" for e in mon.poll(0.1))
                else:
                    res = blast()
                rate = ProgStats.read(att.program.fd).since(s0)
                rx_dropped = link_counters(h2).rx_dropped - rx0.rx_dropped
                drops = f"rx_dropped={rx_dropped}"
                note = ""
                if mon:
                    c = mon.counters()
                    drops += f" table_full={c['table_full']} ringbuf_lost={c['ringbuf_lost']}"
                    note = f"{c['flows']} flows, {c['packets']} packets counted" + (
                        f", {samples} samples read" if samples else ""
                    )
                    mon.configure()
                rows.append(SpeedRow(setup, res.sent_pps, rate.runs / res.seconds, drops, rate.ns_per_run, note, rnd))
                att.detach()
        rows.append(ring_row(h2, blast, inspect=False))
        rows.append(ring_row(h2, blast, inspect=True))
        for name, argv, ready in (
            ("tcpdump -w /dev/null", ["tcpdump", "-i", "eth0", "-n", "-w", "/dev/null"], "tcpdump: listening"),
            ("tshark -w /dev/null", ["tshark", "-i", "eth0", "-n", "-w", "/dev/null"], "Capturing on"),
        ):
            if not shutil.which(argv[0]):
                continue
            srv = servers.start(h2, argv, ready=ready)
            cpu0 = _proc_cpu_ns(srv.pid)
            res = blast()
            time.sleep(0.3)
            cpu = _proc_cpu_ns(srv.pid) - cpu0
            srv.stop()
            text = srv.text(3000)
            captured = _count(text, r"(\d+) packets? captured")
            received = _count(text, r"(\d+) packets? received by filter")
            dropped = _count(text, r"(\d+) packets? dropped by kernel")
            drops = f"kernel dropped={dropped if dropped is not None else 'not reported'}"
            if received is not None and captured is not None:
                drops += f" received-not-written={received - captured}"
            rows.append(
                SpeedRow(
                    name,
                    res.sent_pps,
                    (captured or 0) / res.seconds,
                    drops,
                    cpu / captured if captured else None,
                    "CPU of the capture process",
                )
            )
    finally:
        lab.close()
    return rows


def _count(text: str, pattern: str) -> int | None:
    m = re.search(pattern, text)
    return int(m.group(1)) if m else None


def python_tier_pps() -> dict[str, float]:
    """Packets per second the userspace tier inspects: the ceiling of what it can be fed."""
    from packetlab.course.m11b_packet_analyzer import traces
    from packetlab.tools.analyzer.inspector import inspect_frames

    out = {}
    for name, frames in (
        ("mixed lab traffic", traces.normal_traffic() * 10),
        ("UDP flood", traces.udp_flood(0.0, 10000)),
    ):
        t = time.perf_counter()
        inspect_frames(frames)
        out[name] = len(frames) / (time.perf_counter() - t)
    return out


# ---- the run ---------------------------------------------------------------------------------------
def record_lab_pcap(workdir: Path, rounds: int = 5) -> Path:
    from packetlab.topo.lab import Lab

    pcap = workdir / "lab.pcap"
    lab = Lab("anbl").start()
    try:
        topo = build(lab)
        topo.start_services()
        with topo.record(pcap):
            topo.normal_traffic(rounds=rounds)
            topo.syn_scan(range(1, 201))
        topo.close()
    finally:
        lab.close()
    return pcap


def flow_vs_sink(live: list[SpeedRow]) -> list[tuple[int, float, float, float, float]]:
    """Per round: (round, sink handled/sent, flow handled/sent, flow/sink handled-rate ratio, predicted ratio).

    On a veth pair the receiver's XDP runs in softirq on the sender's CPU, so the two share one CPU's
    budget per packet: 1/sink rate. The flow program adds (its run time - the sink's) to it, which
    predicts its rate as 1 / (1/sink rate + that difference) — the measured ratio should come near.
    """
    out = []
    for rnd in sorted({r.round for r in live}):
        sink = next((r for r in live if r.round == rnd and r.setup == "XDP_DROP sink"), None)
        flow = next((r for r in live if r.round == rnd and r.setup == "11b-flow (drop)"), None)
        if sink and flow and sink.handled_pps and sink.sent_pps and flow.sent_pps:
            extra = max((flow.cpu_ns_per_packet or 0) - (sink.cpu_ns_per_packet or 0), 0) / 1e9
            predicted = 1 / (1 + extra * sink.handled_pps)
            out.append(
                (
                    rnd,
                    sink.handled_pps / sink.sent_pps,
                    flow.handled_pps / flow.sent_pps,
                    flow.handled_pps / sink.handled_pps,
                    predicted,
                )
            )
    return out


def run(
    *,
    seconds: float = 2.0,
    repeat: int = 200_000,
    labels: bool = True,
    speed: bool = True,
    pcap: str | None = None,
    rounds: int = 1,
) -> dict:
    result: dict = {}
    workdir = Path(tempfile.mkdtemp(prefix="an-bench-"))
    try:
        if labels:
            path = Path(pcap) if pcap else record_lab_pcap(workdir)
            rep = compare_labels(path)
            print(f"== application labels on {path.name} (scanner {SCANNER_IP}), by conversation")
            print(format_table(("conversations", "example", "ours", "tshark", "nDPI", "why"), rep.rows))
            n = rep.summary["conversations"]
            for k, v in rep.summary.items():
                if k != "conversations":
                    print(f"{k}: {v}/{n} ({v / max(n, 1):.0%})")
            result["labels"] = rep
        if speed:
            ns = testrun_ns(repeat)
            print(f"\n== BPF_PROG_TEST_RUN, best of 3 x {repeat} runs, one 60-byte UDP frame")
            base = ns["XDP_DROP sink"]
            rows = [(k, f"{v:.1f}", f"{1e3 / v:.1f}", f"{base / v:.2f}") for k, v in ns.items()]
            print(format_table(("program", "ns/packet", "Mpps (one CPU)", "sink rate ratio"), rows))
            live = live_rows(seconds, rounds)
            print(f"\n== live: trafgen floods 64 UDP flows into the server's eth0 for {seconds:g} s per setup")
            sink = next((r.handled_pps for r in live if r.setup.startswith("XDP_DROP")), 0.0)
            table = [
                (
                    r.setup + (f" #{r.round}" if rounds > 1 and r.round else ""),
                    f"{r.sent_pps / 1e3:.0f}k",
                    f"{r.handled_pps / 1e3:.0f}k",
                    f"{r.handled_pps / max(r.sent_pps, 1):.2f}",
                    f"{r.handled_pps / sink:.2f}" if sink else "-",
                    f"{r.cpu_ns_per_packet:.0f}" if r.cpu_ns_per_packet else "-",
                    r.drops,
                    r.note,
                )
                for r in live
            ]
            heads = ("receiver", "sent/s", "handled/s", "kept up", "vs sink", "ns/pkt", "drop counters", "")
            print(format_table(heads, table))
            print(
                "ns/pkt: XDP rows = the program's own run time (BPF stats); capture rows = CPU time of the capture\n"
                "process per packet written (the kernel's copy into the socket runs in softirq and is not in it).\n"
                "'kept up' = handled/sent; when every row keeps up, the sender (trafgen on a shared CPU) set the rate.\n"
                "'vs sink' compares with the first round's sink. The ring rows' ns/pkt is the reading thread's CPU:\n"
                "the kernel's filter and copy into the ring (softirq) are not in it; their drops are PACKET_STATISTICS'."
            )
            pairs = flow_vs_sink(live)
            if pairs:
                print(
                    "\n== flow program vs XDP_DROP sink, interleaved rounds (the issue's target: >= 0.9, no lost record)"
                )
                prow = [(r, f"{s:.2f}", f"{f:.2f}", f"{h:.2f}", f"{x:.2f}") for r, s, f, h, x in pairs]
                print(
                    format_table(
                        ("round", "sink kept up", "flow kept up", "flow/sink handled", "predicted from run times"), prow
                    )
                )
                ratios = sorted(p[3] for p in pairs)
                xdp = [r for r in live if r.setup in ("XDP_DROP sink", "11b-flow (drop)")]
                clean = all(
                    r.handled_pps >= 0.99 * r.sent_pps and set(re.findall(r"=(\S+)", r.drops)) <= {"0"} for r in xdp
                )
                print(
                    f"median flow/sink handled-rate ratio: {ratios[len(ratios) // 2]:.2f} over {len(pairs)} rounds "
                    f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}). "
                    + (
                        "Both kept up, every drop counter 0: on veth the receiver's XDP runs on\n"
                        "the sender's CPU, so the rate is that CPU's budget per packet, and the ratio is the flow\n"
                        "program's extra cost in that budget (predicted) plus the shared machine's noise."
                        if clean
                        else "NOT clean: a receiver fell behind or a drop counter is non-zero (see the table)."
                    )
                )
            result["testrun"], result["live"], result["flow_vs_sink"] = ns, live, pairs
            result["python"] = python_tier_pps()
            print(
                "\n== the Python tier (decode, reassembly, tracker, detectors) on synthetic traces: "
                + ", ".join(f"{k} {v:,.0f} packets/s" for k, v in result["python"].items())
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m packetlab.bench analyzer", description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="flood length per live setup (default 2)")
    ap.add_argument("--repeat", type=int, default=200_000, help="test runs per program (default 200000)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the XDP setups (default 3)")
    ap.add_argument("--pcap", help="compare labels on this capture instead of recording the lab's")
    ap.add_argument("--no-labels", action="store_true")
    ap.add_argument("--no-speed", action="store_true")
    args = ap.parse_args(argv)
    run(
        seconds=args.seconds,
        repeat=args.repeat,
        labels=not args.no_labels,
        speed=not args.no_speed,
        pcap=args.pcap,
        rounds=max(args.rounds, 1),
    )
    return 0
