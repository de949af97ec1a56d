"""``python -m packetlab.bench dhcp``: DORA exchanges per second — XDP fast path, our slow path, ISC Kea.

One run, one topology (a gateway namespace and a load-generator namespace on a
veth pair), three servers on the gateway's eth0:

* **slow**: `packetlab dhcp serve` with MACs it has never seen (every exchange
  is a new subscriber: allocation, SQLite write, reply through a packet socket);
* **fast**: the same daemon, with MACs whose leases it bound in the slow run —
  every DISCOVER and REQUEST is answered by bpf/11c-dhcp-fastpath.c (XDP_TX);
* **kea**: Debian's kea-dhcp4 (memfile lease database, raw sockets), new MACs.

The slow path is measured once (it must bind the fast path's subscribers first).
Fast path and Kea are then measured in `rounds` rounds, alternating which goes
first (fast, kea | kea, fast | ...), with Kea running throughout: a fast round
attaches the pinned fast path (every cached subscriber is answered by XDP_TX
before Kea's socket could see it), a Kea round detaches it, so Kea runs as it
would alone, with new MACs each round. Each server gets `warmup` seconds of
unmeasured load first (Kea's first second is slower: its sockets, its lease
file). The ratio is taken per round (fast and Kea measured within seconds of
each other, under the same load from the machine's other tenants) and reported
as the median over rounds with its min and max. Why: on 2 shared vCPUs a single
pair of runs moved from 1.8x to 2.5x with what else ran on the machine, and the
fast figure is the generator's limit (a whole CPU), so it moves with the CPU the
generator gets. `--pin` puts the generator on the first CPU and the servers on
the others; that gives Kea a CPU of its own while the XDP program runs in the
generator's softirq on the generator's CPU — a placement against the fast path,
shown for comparison, not the default.

The load generator is ours (Kea's perfdhcp always acts as a relay, setting giaddr,
which the fast path leaves to the slow path by design): a closed loop in this
process that keeps `window` exchanges in flight, each a full DORA with its own MAC
and xid, and checks every reply (type, xid, chaddr, the ACK's address equal to the
OFFER's, and one in 64 checksummed with scapy). Being Python, it can be the
bottleneck: its own CPU is printed, and a fast-path figure at the generator's limit
is a lower bound.

CPU per exchange: for the slow path and Kea, the CPU time of every task in the
gateway namespace plus ksoftirqd, plus (slow, fast) the XDP program's run time as
the kernel accounts it (BPF_ENABLE_STATS, switched on for the measurement only);
for the fast path only the XDP program's run time — its work happens in the
generator's softirq context. Then ns per packet of the fast path with
BPF_PROG_TEST_RUN (a fresh DISCOVER per call), beside an XDP_DROP program
measured the same way.

Targets (issue 15): fast ≥ 2x Kea's exchanges/s in the same run, with zero wrong
replies; the fast path's reply ≤ 10x the XDP_DROP floor per packet.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from packetlab.bench.lb import _netns_inodes, cpu_snapshot
from packetlab.course.m11c_dhcp_fastpath.topology import SERVER_IP, pools
from packetlab.ebpf.loader import LoadedProgram, set_xdp_fd
from packetlab.ebpf.stats import ProgStats, bpf_stats
from packetlab.ebpf.testrun import prog_test_run
from packetlab.show.tables import format_table
from packetlab.tools.dhcp import fastpath, wire
from packetlab.topo import netns
from packetlab.topo import servers as launch
from packetlab.topo.host import attach_capture_filter
from packetlab.topo.lab import Lab
from packetlab.topo.socket_buffers import grow_receive_buffer

ETH_P_ALL = 0x0003
POOL_SIZE = 60_000
KEA_CONFIG = {
    "Dhcp4": {
        "interfaces-config": {"interfaces": ["eth0"], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 0},
        "valid-lifetime": 600,
        "subnet4": [
            {
                "id": 1,
                "subnet": "10.66.0.0/15",  # holds the gateway's 10.67.0.1: new MACs in every round, no reuse
                "pools": [
                    {"pool": "10.66.0.10 - 10.66.255.250"},
                    {"pool": "10.67.0.100 - 10.67.255.250"},
                ],
                "option-data": [
                    {"name": "routers", "data": SERVER_IP},
                    {"name": "domain-name-servers", "data": SERVER_IP},
                ],
            }
        ],
        "loggers": [{"name": "kea-dhcp4", "severity": "WARN", "output_options": [{"output": "stdout"}]}],
    }
}


def log(msg: str) -> None:
    print(f"[bench dhcp] {msg}", file=sys.stderr, flush=True)


def mac_of(prefix: int, n: int) -> str:
    return f"02:{prefix:02x}:{(n >> 24) & 0xFF:02x}:{(n >> 16) & 0xFF:02x}:{(n >> 8) & 0xFF:02x}:{n & 0xFF:02x}"


@dataclass
class LoadResult:
    side: str
    exchanges: int
    seconds: float
    timeouts: int
    wrong: int
    latencies: list[float] = field(default_factory=list)  # seconds, DISCOVER sent -> ACK received
    generator_cpu: float = 0.0  # seconds of this process's CPU
    server_cpu_ns: int = 0
    xdp_ns: int = 0
    checked: int = 0
    why_wrong: dict[str, int] = field(default_factory=dict)
    round: int = 0  # 0: measured once (the slow path); 1..: the alternating rounds of fast and Kea
    placement: str = ""

    def bad(self, why: str) -> None:
        self.wrong += 1
        self.why_wrong[why] = self.why_wrong.get(why, 0) + 1

    @property
    def rate(self) -> float:
        return self.exchanges / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(p * len(s)))]

    @property
    def cpu_us(self) -> float:
        return (self.server_cpu_ns + self.xdp_ns) / 1e3 / self.exchanges if self.exchanges else 0.0


XID_OFF, UDP_CSUM_OFF, CHADDR_OFF = 46, 40, 70  # in an untagged request frame: 14 + 20 + 8 (+ 4 / + 28)
BOOTP_OFF = 42


def with_xid(template: bytes, xid: int) -> bytes:
    """`template` (a request built with xid 0) with `xid`, its UDP checksum updated incrementally
    (RFC 1624: HC' = ~(~HC + m'), the old words being 0) — what makes a frame cost ~1 µs, not ~5."""
    s = (~int.from_bytes(template[UDP_CSUM_OFF : UDP_CSUM_OFF + 2], "big") & 0xFFFF) + (xid >> 16) + (xid & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    ck = ~s & 0xFFFF or 0xFFFF
    return b"".join(
        (
            template[:UDP_CSUM_OFF],
            ck.to_bytes(2, "big"),
            template[UDP_CSUM_OFF + 2 : XID_OFF],
            xid.to_bytes(4, "big"),
            template[XID_OFF + 4 :],
        )
    )


def quick_reply(frame: bytes) -> tuple[int, int, bytes, str, int] | None:
    """(xid, type, chaddr, yiaddr, op) of an untagged DHCP reply from fixed offsets and a walk to option 53;
    None when the frame is not one this reads (the full parser then decides)."""
    if len(frame) < BOOTP_OFF + 244 or frame[12:14] != b"\x08\x00" or frame[14] != 0x45 or frame[36:38] != b"\x00\x44":
        return None
    b = BOOTP_OFF
    if frame[b + 236 : b + 240] != b"\x63\x82\x53\x63":
        return None
    i, end = b + 240, len(frame)
    while i + 2 < end:
        code = frame[i]
        if code == 0:
            i += 1
            continue
        if code == 255:
            return None
        if code == 53 and frame[i + 1] == 1:
            xid = int.from_bytes(frame[b + 4 : b + 8], "big")
            return xid, frame[i + 2], frame[b + 28 : b + 34], socket.inet_ntoa(frame[b + 16 : b + 20]), frame[b]
        i += 2 + frame[i + 1]
    return None


class Generator:
    """A closed-loop DORA load generator on a packet socket in namespace `ns`.

    Requests come from per-MAC templates with the xid patched in (a returning subscriber's
    DISCOVER and REQUEST are the same bytes every time but for the xid); replies are read from
    fixed offsets, and every 64th is also parsed in full and checksummed. Python costs about
    33 µs a DORA this way (about 50 µs building and parsing each frame in full), which still
    bounds the fast path's figure: the generator uses a whole CPU there (about half of one in
    the Kea rounds, where Kea is the limit)."""

    def __init__(self, ns: str, dev: str = "eth0") -> None:
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((dev, 0))
        attach_capture_filter(self.sock, "udp dst port 68")
        grow_receive_buffer(self.sock, 4 << 20)  # past rmem_max: a reader behind by a moment loses no replies
        drain(self.sock)
        self.sock.settimeout(0.02)
        self.templates: dict[tuple, bytes] = {}

    def _request(self, mac: str, mtype: int, xid: int, requested: str | None = None, server_id: str | None = None):
        key = (mac, mtype, requested, server_id)
        t = self.templates.get(key)
        if t is None:
            t = wire.request_frame(mac, mtype, xid=0, requested=requested, server_id=server_id)
            if len(self.templates) < 200_000:
                self.templates[key] = t
        return with_xid(t, xid)

    def close(self) -> None:
        self.sock.close()

    def run(self, side: str, macs, seconds: float, *, window: int = 64, timeout: float = 1.0) -> LoadResult:
        """DORA exchanges for `seconds`; `macs` yields the MAC of each new exchange."""
        out = LoadResult(side, 0, seconds, 0, 0)
        pending: dict[int, tuple[str, float, str | None]] = {}  # xid -> (mac, start, offered ip)
        xid = int.from_bytes(os.urandom(3), "big") << 8
        cpu0 = time.process_time()
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            while len(pending) < window:
                xid = (xid + 1) & 0xFFFFFFFF
                mac = next(macs)
                pending[xid] = (mac, time.monotonic(), None)
                self.sock.send(self._request(mac, wire.DISCOVER, xid))
            try:
                frame = self.sock.recv(2048)
            except TimeoutError:
                frame = b""
            if frame:
                self._reply(frame, pending, out)
            if out.exchanges % 256 == 0:  # expire lost exchanges now and then
                for x in [x for x, (_, t, _) in pending.items() if now - t > timeout]:
                    del pending[x]
                    out.timeouts += 1
        out.seconds = seconds
        out.generator_cpu = time.process_time() - cpu0
        return out

    def _reply(self, frame: bytes, pending: dict, out: LoadResult) -> None:
        quick = quick_reply(frame)
        full = quick is None or out.exchanges % 64 == 0  # every 64th, and anything unusual: the full parser
        if full:
            try:
                msg = wire.parse_reply(frame)
            except (wire.MalformedDhcp, struct.error, IndexError) as exc:
                out.bad(f"unparsable: {exc}".splitlines()[0][:60])
                return
            xid, mtype, chaddr, yiaddr, op = msg.xid, msg.type, wire.mac_raw(msg.chaddr), msg.yiaddr, msg.op
            server_id = msg.server_id
            if quick is not None and quick != (xid, mtype, chaddr, yiaddr, op):
                out.bad("the quick reader and the parser disagree")
        else:
            assert quick is not None
            xid, mtype, chaddr, yiaddr, op = quick
            server_id = None
        entry = pending.get(xid)
        if entry is None:
            return  # a late reply to an exchange that timed out
        mac, start, offered = entry
        ok = chaddr == wire.mac_raw(mac) and op == 2
        if mtype == wire.OFFER and offered is None and ok:
            pending[xid] = (mac, start, yiaddr)
            if server_id is None:
                server_id = _server_id(frame)
            self.sock.send(self._request(mac, wire.REQUEST, xid, yiaddr, server_id))
        elif mtype == wire.ACK and offered == yiaddr and ok:
            del pending[xid]
            out.exchanges += 1
            out.latencies.append(time.monotonic() - start)
            if full:
                out.checked += 1
                if not _checksums_ok(frame):
                    out.bad("bad checksum")
        else:
            del pending[xid]
            name = wire.TYPE_NAMES.get(mtype, str(mtype))
            out.bad(f"{name} after {'OFFER ' + offered if offered else 'DISCOVER'}, yiaddr {yiaddr}")


def _server_id(frame: bytes) -> str | None:
    """Option 54 of an OFFER (what the REQUEST must name)."""
    i, end = BOOTP_OFF + 240, len(frame)
    while i + 2 < end and frame[i] != 255:
        if frame[i] == 0:
            i += 1
            continue
        if frame[i] == 54 and frame[i + 1] == 4:
            return socket.inet_ntoa(frame[i + 2 : i + 6])
        i += 2 + frame[i + 1]
    return None


def drain(sock: socket.socket) -> None:
    """Discard what arrived between bind() and the filter's attachment (IPv6 chatter, ...)."""
    sock.setblocking(False)
    with contextlib.suppress(BlockingIOError):
        while True:
            sock.recv(4096)


def _checksums_ok(frame: bytes) -> bool:
    from packetlab.course.m11c_dhcp_fastpath.helpers import checksums

    return all(checksums(frame).values())


def wire_ip(n: int) -> str:
    import ipaddress

    return str(ipaddress.IPv4Address("10.67.0.100") + n - 1)


def kea_config(workdir: Path) -> dict:
    cfg = json.loads(json.dumps(KEA_CONFIG))
    d = cfg["Dhcp4"]
    d["lease-database"]["name"] = str(workdir / "kea-leases4.csv")
    d["control-socket"] = {"socket-type": "unix", "socket-name": str(workdir / "kea4.sock")}
    return cfg


def testrun_ns(cached_mac: str, prog_fd: int, calls: int) -> dict[str, float]:
    """Median ns per call: the fast path answering a DISCOVER (a fresh frame each call), the fast
    path passing a stranger's DISCOVER, and an XDP_DROP program — all measured per call."""
    floor = LoadedProgram("bpf/07-xdp-drop.c")
    frames = {
        "fast path: DISCOVER -> OFFER (XDP_TX)": (prog_fd, wire.request_frame(cached_mac, wire.DISCOVER, xid=5)),
        "fast path: stranger's DISCOVER (XDP_PASS)": (prog_fd, wire.request_frame(mac_of(0xEE, 1), wire.DISCOVER)),
        "XDP_DROP floor": (floor.fd, wire.request_frame(cached_mac, wire.DISCOVER, xid=5)),
    }
    out: dict[str, float] = {}
    try:
        for name, (fd, frame) in frames.items():
            samples = [prog_test_run(fd, frame).ns_per_run for _ in range(calls)]
            out[name] = float(statistics.median(samples))
            out[name + " verdict"] = prog_test_run(fd, frame).retval
    finally:
        floor.close()
    return out


@dataclass
class Placement:
    """Which CPUs the generator and the servers run on (None: wherever the scheduler puts them)."""

    generator: set[int] | None
    server: list[str]  # a prefix for the server's argv (taskset ...), or []

    @classmethod
    def choose(cls, pin: bool) -> Placement:
        cpus = sorted(os.sched_getaffinity(0))
        if not pin or len(cpus) < 2:
            return cls(None, [])
        return cls({cpus[0]}, ["taskset", "-c", ",".join(str(c) for c in cpus[1:])])

    def describe(self) -> str:
        if self.generator is None:
            return "not pinned"
        return f"generator on CPU {min(self.generator)}, servers on CPU {self.server[-1]}"


def run(
    seconds: float = 2.0,
    window: int = 64,
    calls: int = 5000,
    *,
    rounds: int = 5,
    warmup: float = 1.0,
    pin: bool = False,
) -> tuple[list[LoadResult], dict[str, float]]:
    """Slow path once; then `rounds` rounds of fast path and Kea, alternating which goes first.

    Kea keeps running through all rounds; a fast round attaches the pinned fast path (XDP_TX answers
    every cached subscriber before Kea's socket could see it), a Kea round detaches it, so Kea runs
    exactly as it would alone. Warm-ups (`warmup` s of load per server) are not measured."""
    results: list[LoadResult] = []
    place = Placement.choose(pin)
    saved = os.sched_getaffinity(0)
    with Lab("dhbench") as lab:
        gw, lg = lab.host("gw"), lab.host("lg")
        lab.link(gw, lg, ip=f"{SERVER_IP}/16")
        lg.attach_xdp("bpf/00-xdp-pass.c", "eth0")  # veth: XDP_TX frames reach a peer with XDP at once
        inodes = _netns_inodes([gw.namespace])
        workdir = Path(tempfile.mkdtemp(prefix="packetlab-dhbench-"))
        cfg = pools(600, per_mac=0, slow_path=0, size=POOL_SIZE)
        (workdir / "pools.yaml").write_text(json.dumps(cfg))
        gen = Generator(lg.namespace)
        if place.generator is not None:
            os.sched_setaffinity(0, place.generator)
        try:
            argv = launch.python_module(
                "packetlab",
                "dhcp",
                "serve",
                "--config",
                workdir / "pools.yaml",
                "--netns",
                gw.namespace,
                "--dev",
                "eth0",
                "--store",
                workdir / "leases.sqlite",
                "--metrics-port",
                0,
            )
            server = launch.start(gw, [*place.server, *argv], timeout=60)
            fp = fastpath.FastPath.open_pinned(fastpath.pin_dir(gw.namespace, "eth0"))
            kea = None
            try:
                seen: list[str] = []
                bound: list[str] = []  # the MACs the slow path bound: every one is in the fast path's cache

                def fresh(prefix: int, keep: bool = False):
                    n = 0
                    while True:
                        n += 1
                        mac = mac_of(prefix, n)
                        if keep:
                            seen.append(mac)
                        yield mac

                def known():
                    while True:
                        yield from bound

                def attach(on: bool) -> None:
                    if on:
                        set_xdp_fd(gw.namespace, "eth0", fp.prog_fd, fastpath.XDP_MODES["native"])
                    else:
                        fastpath.detach(gw.namespace, "eth0", fp.prog_id())

                with bpf_stats(announce=log):
                    log(f"slow path: {warmup} s warm-up, then {seconds} s of new subscribers")
                    gen.run("warm-up", fresh(0x50, keep=True), warmup, window=window)
                    results.append(_measure("slow", gen, fresh(0x51, keep=True), seconds, window, inodes, fp.prog_fd))
                    server.stop()  # the fast path stays attached and pinned, its cache full
                    bound[:] = [m for m in seen if fp.lookup(m, 0) is not None]  # (not those left in flight)
                    log(f"fast path: {len(bound)} subscribers bound by the slow run, in its cache")
                    testrun = testrun_ns(bound[0], fp.prog_fd, calls)
                    log("kea: kea-dhcp4 (memfile) starts; it runs through every round")
                    (workdir / "kea.json").write_text(json.dumps(kea_config(workdir)))
                    env = ["env", f"KEA_PIDFILE_DIR={workdir}", f"KEA_LOCKFILE_DIR={workdir}"]
                    kea = launch.start(
                        gw,
                        [*env, *place.server, "kea-dhcp4", "-c", str(workdir / "kea.json")],
                        unix=workdir / "kea4.sock",
                        timeout=30,
                    )
                    attach(False)
                    _warm(gen, fresh(0x4B))
                    gen.run("warm-up", fresh(0x4A), warmup, window=window)
                    attach(True)
                    gen.run("warm-up", known(), warmup, window=window)
                    for n in range(rounds):
                        order = ("fast", "kea") if n % 2 == 0 else ("kea", "fast")
                        for side in order:
                            attach(side == "fast")
                            macs = known() if side == "fast" else fresh(0x60 + n)
                            prog = fp.prog_fd if side == "fast" else None
                            res = _measure(side, gen, macs, seconds, window, inodes, prog, server=side == "kea")
                            res.round = n + 1
                            results.append(res)
            finally:
                if kea is not None:
                    kea.stop()
                fp.close()
                server.stop()
                fastpath.remove(gw.namespace, "eth0")
        finally:
            os.sched_setaffinity(0, saved)
            gen.close()
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
    for res in results:
        res.placement = place.describe()
    return results, testrun


def _warm(gen: Generator, macs) -> None:
    """Wait until the server answers (Kea opens its sockets after it logs its start)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if gen.run("warm-up", macs, 0.5, window=4).exchanges:
            return
    raise RuntimeError("the server never answered a DORA")


def _measure(side, gen, macs, seconds, window, inodes, prog_fd, *, server: bool = True) -> LoadResult:
    before = cpu_snapshot(inodes)
    x0 = ProgStats.read(prog_fd) if prog_fd is not None else None
    res = gen.run(side, macs, seconds, window=window)
    after = cpu_snapshot(inodes)
    if server:
        res.server_cpu_ns = (after.lab_ns - before.lab_ns) + (after.ksoftirqd_ns - before.ksoftirqd_ns)
    if x0 is not None and prog_fd is not None:
        res.xdp_ns = ProgStats.read(prog_fd).since(x0).run_time_ns
    log(
        f"{side}: {res.exchanges} exchanges, {res.rate:.0f}/s, {res.timeouts} timeouts, {res.wrong} wrong {res.why_wrong}"
    )
    return res


def spread(values: list[float]) -> tuple[float, float, float]:
    """(median, min, max) of a list of figures."""
    return float(statistics.median(values)), min(values), max(values)


def round_ratios(results: list[LoadResult], num: str = "fast", den: str = "kea") -> list[float]:
    """num/den DORA/s of each round in which both ran (the same round: the same minute of the machine)."""
    by = {(r.side, r.round): r for r in results}
    return [
        by[(num, n)].rate / by[(den, n)].rate
        for n in sorted({r.round for r in results})
        if (num, n) in by and (den, n) in by and by[(den, n)].rate
    ]


def report(results: list[LoadResult], testrun: dict[str, float]) -> str:
    rows = [
        (
            r.side,
            r.round or "-",
            r.exchanges,
            f"{r.rate:,.0f}",
            f"{r.cpu_us:.1f}",
            f"{r.pct(0.5) * 1e3:.2f}",
            f"{r.pct(0.95) * 1e3:.2f}",
            f"{r.pct(0.99) * 1e3:.2f}",
            r.timeouts,
            f"{r.wrong} ({r.checked} checksummed)",
            f"{r.generator_cpu / r.seconds:.0%}",
        )
        for r in results
    ]
    head = ["server", "round", "DORAs", "DORA/s", "server CPU µs/DORA", "p50 ms", "p95 ms", "p99 ms"]
    lines = [format_table([*head, "timeouts", "wrong", "generator CPU"], rows), ""]
    sides = [s for s in ("fast", "slow", "kea") if any(r.side == s for r in results)]
    summary = []
    for side in sides:
        runs = [r for r in results if r.side == side]
        med, lo, hi = spread([r.rate for r in runs])
        cpu = statistics.median([r.cpu_us for r in runs])
        summary.append((side, len(runs), f"{med:,.0f}", f"{lo:,.0f} - {hi:,.0f}", f"{cpu:.1f}"))
    lines += [format_table(["server", "runs", "median DORA/s", "min - max", "median CPU µs/DORA"], summary), ""]
    tr = {k: v for k, v in testrun.items() if not k.endswith("verdict")}
    lines.append(format_table(["BPF_PROG_TEST_RUN, per call (median)", "ns"], [(k, f"{v:.0f}") for k, v in tr.items()]))
    lines.append("")
    wrong = sum(r.wrong for r in results)
    ratios = round_ratios(results)
    if ratios:
        med, lo, hi = spread(ratios)
        met = med >= 2 and wrong == 0
        each = ", ".join(f"{x:.2f}" for x in ratios)
        lines.append(
            f"fast / kea DORA/s: median {med:.2f}x over {len(ratios)} round(s) (min {lo:.2f}x, max {hi:.2f}x; "
            f"each: {each})  (target >= 2x, zero wrong replies): {'met' if met else 'NOT met'}"
        )
    med_of = {side: statistics.median([r.rate for r in results if r.side == side]) for side in sides}
    if med_of.get("fast") and med_of.get("slow"):
        lines.append(f"fast / slow DORA/s (medians): {med_of['fast'] / med_of['slow']:.2f}x")
    if med_of.get("slow") and med_of.get("kea"):
        lines.append(f"slow / kea DORA/s (medians): {med_of['slow'] / med_of['kea']:.2f}x")
    floor = testrun.get("XDP_DROP floor", 0)
    tx = testrun.get("fast path: DISCOVER -> OFFER (XDP_TX)", 0)
    if floor:
        lines.append(
            f"fast-path reply / XDP_DROP floor: {tx / floor:.2f}x  (target <= 10x): {'met' if tx <= 10 * floor else 'NOT met'}"
        )
    fast_runs = [r for r in results if r.side == "fast"]
    if fast_runs and statistics.median([r.generator_cpu / r.seconds for r in fast_runs]) > 0.9:
        lines.append(
            "note: the generator used a whole CPU in the fast runs: the fast path's DORA/s is the generator's "
            "limit, a lower bound of the fast path's"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m packetlab.bench dhcp", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=2.0, help="length of each measured run (default 2)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of fast path and Kea, alternating (default 5)")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured load per server first (default 1 s)")
    p.add_argument(
        "--pin",
        action="store_true",
        help="generator on the first CPU, servers on the others (default: where the scheduler puts them)",
    )
    p.add_argument("--window", type=int, default=64, help="exchanges in flight (default 64)")
    p.add_argument("--calls", type=int, default=5000, help="BPF_PROG_TEST_RUN calls per figure (default 5000)")
    args = p.parse_args(argv)
    results, testrun = run(args.seconds, args.window, args.calls, rounds=args.rounds, warmup=args.warmup, pin=args.pin)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"kernel {os.uname().release}, {os.cpu_count()} CPUs (load average {load}), "
        f"{args.seconds:g} s per measured run, {args.rounds} rounds alternating fast/Kea, "
        f"{args.warmup:g} s warm-up each (not measured), window {args.window}, {results[0].placement}"
    )
    print(report(results, testrun))
    return 0
