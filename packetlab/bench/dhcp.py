"""``python -m packetlab.bench dhcp``: DORA exchanges per second — XDP fast path, our slow path, ISC Kea.

One run, one topology (a gateway namespace and a load-generator namespace on a
veth pair), three servers on the gateway's eth0, one after the other:

* **slow**: `packetlab dhcp serve` with MACs it has never seen (every exchange
  is a new subscriber: allocation, SQLite write, reply through a packet socket);
* **fast**: the same daemon, with MACs whose leases it bound in the slow run —
  every DISCOVER and REQUEST is answered by bpf/11c-dhcp-fastpath.c (XDP_TX);
* **kea**: Debian's kea-dhcp4 (memfile lease database, raw sockets), new MACs.

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
from packetlab.ebpf.loader import LoadedProgram
from packetlab.ebpf.stats import ProgStats, bpf_stats
from packetlab.ebpf.testrun import prog_test_run
from packetlab.show.tables import format_table
from packetlab.tools.dhcp import fastpath, wire
from packetlab.topo import netns
from packetlab.topo import servers as launch
from packetlab.topo.host import attach_capture_filter
from packetlab.topo.lab import Lab

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
                "subnet": "10.67.0.0/16",
                "pools": [],  # filled in by kea_config()
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


class Generator:
    """A closed-loop DORA load generator on a packet socket in namespace `ns`."""

    def __init__(self, ns: str, dev: str = "eth0") -> None:
        with netns.entered(ns):
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            self.sock.bind((dev, 0))
        attach_capture_filter(self.sock, "udp dst port 68")
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        drain(self.sock)
        self.sock.settimeout(0.02)

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
                self.sock.send(wire.request_frame(mac, wire.DISCOVER, xid=xid))
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
        try:
            msg = wire.parse_reply(frame)
        except (wire.MalformedDhcp, struct.error, IndexError) as exc:
            out.bad(f"unparsable: {exc}".splitlines()[0][:60])
            return
        entry = pending.get(msg.xid)
        if entry is None:
            return  # a late reply to an exchange that timed out
        mac, start, offered = entry
        ok = msg.chaddr == mac and msg.op == 2
        if msg.type == wire.OFFER and offered is None and ok:
            pending[msg.xid] = (mac, start, msg.yiaddr)
            self.sock.send(
                wire.request_frame(mac, wire.REQUEST, xid=msg.xid, requested=msg.yiaddr, server_id=msg.server_id)
            )
        elif msg.type == wire.ACK and offered == msg.yiaddr and ok:
            del pending[msg.xid]
            out.exchanges += 1
            out.latencies.append(time.monotonic() - start)
            if out.exchanges % 64 == 1:
                out.checked += 1
                if not _checksums_ok(frame):
                    out.bad("bad checksum")
        else:
            del pending[msg.xid]
            out.bad(f"{msg.type_name} after {'OFFER ' + offered if offered else 'DISCOVER'}, yiaddr {msg.yiaddr}")


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
    d["subnet4"][0]["pools"] = [{"pool": f"10.67.0.100 - {wire_ip(POOL_SIZE)}"}]
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


def run(seconds: float = 5.0, window: int = 64, calls: int = 5000) -> tuple[list[LoadResult], dict[str, float]]:
    results: list[LoadResult] = []
    with Lab("dhbench") as lab:
        gw, lg = lab.host("gw"), lab.host("lg")
        lab.link(gw, lg, ip=f"{SERVER_IP}/16")
        lg.attach_xdp("bpf/00-xdp-pass.c", "eth0")  # veth: XDP_TX frames reach a peer with XDP at once
        inodes = _netns_inodes([gw.namespace])
        workdir = Path(tempfile.mkdtemp(prefix="packetlab-dhbench-"))
        cfg = pools(600, per_mac=0, slow_path=0, size=POOL_SIZE)
        (workdir / "pools.yaml").write_text(json.dumps(cfg))
        gen = Generator(lg.namespace)
        try:
            server = launch.start(
                gw,
                launch.python_module(
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
                ),
                timeout=60,
            )
            fp = fastpath.FastPath.open_pinned(fastpath.pin_dir(gw.namespace, "eth0"))
            try:
                seen: list[str] = []

                def fresh(prefix: int):
                    n = 0
                    while True:
                        n += 1
                        mac = mac_of(prefix, n)
                        if prefix == 0x51:
                            seen.append(mac)
                        yield mac

                def known():
                    while True:
                        yield from list(seen)

                with bpf_stats(announce=log):
                    log(f"slow path: {seconds} s of new subscribers")
                    results.append(_measure("slow", gen, fresh(0x51), seconds, window, inodes, fp.prog_fd))
                    log(f"fast path: {seconds} s of the {len(seen)} subscribers bound by the slow run")
                    results.append(_measure("fast", gen, known(), seconds, window, inodes, fp.prog_fd, server=False))
                    testrun = testrun_ns(seen[0], fp.prog_fd, calls)
            finally:
                fp.close()
            server.stop()
            fastpath.remove(gw.namespace, "eth0")
            log("kea: kea-dhcp4 (memfile) with new subscribers")
            (workdir / "kea.json").write_text(json.dumps(kea_config(workdir)))
            env = ["env", f"KEA_PIDFILE_DIR={workdir}", f"KEA_LOCKFILE_DIR={workdir}"]
            kea = launch.start(
                gw, [*env, "kea-dhcp4", "-c", str(workdir / "kea.json")], unix=workdir / "kea4.sock", timeout=30
            )
            try:
                _warm(gen, fresh(0x4B))
                results.append(_measure("kea", gen, fresh(0x4C), seconds, window, inodes, None))
            finally:
                kea.stop()
        finally:
            gen.close()
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)
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


def report(results: list[LoadResult], testrun: dict[str, float]) -> str:
    rows = [
        (
            r.side,
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
    lines = [
        format_table(
            [
                "server",
                "DORAs",
                "DORA/s",
                "server CPU µs/DORA",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "timeouts",
                "wrong",
                "generator CPU",
            ],
            rows,
        ),
        "",
    ]
    by = {r.side: r for r in results}
    tr = {k: v for k, v in testrun.items() if not k.endswith("verdict")}
    lines.append(format_table(["BPF_PROG_TEST_RUN, per call (median)", "ns"], [(k, f"{v:.0f}") for k, v in tr.items()]))
    lines.append("")
    fast, slow, kea = by.get("fast"), by.get("slow"), by.get("kea")
    floor = testrun.get("XDP_DROP floor", 0)
    tx = testrun.get("fast path: DISCOVER -> OFFER (XDP_TX)", 0)
    if fast and kea and kea.rate:
        ratio = fast.rate / kea.rate
        met = ratio >= 2 and fast.wrong == 0
        lines.append(
            f"fast / kea DORA/s: {ratio:.2f}x  (target >= 2x, zero wrong replies): {'met' if met else 'NOT met'}"
        )
    if fast and slow and slow.rate:
        lines.append(f"fast / slow DORA/s: {fast.rate / slow.rate:.2f}x")
    if slow and kea and kea.rate:
        lines.append(f"slow / kea DORA/s: {slow.rate / kea.rate:.2f}x")
    if floor:
        lines.append(
            f"fast-path reply / XDP_DROP floor: {tx / floor:.2f}x  (target <= 10x): {'met' if tx <= 10 * floor else 'NOT met'}"
        )
    if fast and fast.generator_cpu / fast.seconds > 0.9:
        lines.append("note: the generator used a whole CPU in the fast run: the fast path's DORA/s is a lower bound")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m packetlab.bench dhcp", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="length of each run (default 5)")
    p.add_argument("--window", type=int, default=64, help="exchanges in flight (default 64)")
    p.add_argument("--calls", type=int, default=5000, help="BPF_PROG_TEST_RUN calls per figure (default 5000)")
    args = p.parse_args(argv)
    results, testrun = run(args.seconds, args.window, args.calls)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"kernel {os.uname().release}, {os.cpu_count()} CPUs (load average {load}), "
        f"{args.seconds:g} s per server, window {args.window}"
    )
    print(report(results, testrun))
    return 0
