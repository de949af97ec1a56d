"""`packetlab dhcp serve`: the slow path's socket loop, the fast path's upkeep, metrics and JSON logs.

The daemon reads what XDP passed up through a packet socket (a DHCP client has no
address yet, so replies are whole Ethernet frames too, sent on the same socket),
answers with `DhcpServer`, and once a second expires leases (after reading back
the renewals the fast path made). It installs the fast path on start, or finds
the pinned one still attached and reuses it, and on exit leaves it running: a
restart does not interrupt subscribers with a cached lease. `packetlab dhcp
remove` takes it away.

Logs are JSON lines on stderr (one object per event: start/stop, each slow-path
request with its reply, grant/renew/release/decline/expire of a lease, errors);
metrics are Prometheus text on ``http://<gateway>:<port>/metrics`` inside the
namespace, beside two probes for an orchestrator or a watchdog:

- ``/healthz``: the process is alive and its main loop went round in the last
  `HEALTH_STALE` seconds (a wedged loop answers 503 even though the HTTP thread runs);
- ``/readyz``: the fast path is attached to the interface (the very program this
  daemon installed or reused) and its pins are in bpffs, the lease store answers a
  query, and the cache was warmed from the store. 503 names each check that fails.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import select
import socket
import sqlite3
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from packetlab.ebpf.loader import attached_xdp_prog_id
from packetlab.errors import PacketlabError
from packetlab.show.prometheus import MetricFamily, exposition, serve_metrics
from packetlab.tools.dhcp import layout as L
from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.config import DhcpConfig
from packetlab.tools.dhcp.fastpath import STATE_DIR, FastPath, pin_dir
from packetlab.tools.dhcp.server import DhcpServer
from packetlab.tools.dhcp.store import BOUND, OFFERED, LeaseStore
from packetlab.topo import netns as _netns
from packetlab.topo.host import attach_capture_filter

STORE_DIR = Path(os.environ.get("PACKETLAB_DHCP_STORE_DIR", "/var/lib/packetlab/dhcp"))
ETH_P_ALL, SOL_PACKET, PACKET_AUXDATA, PACKET_OUTGOING = 0x0003, 263, 8, 4
TP_STATUS_VLAN_VALID = 1 << 4
AUXDATA = struct.Struct("=IIIHHHH")
LATENCY_WINDOW = 10_000  # slow-path handling times kept for the percentiles
HEALTH_STALE = 5.0  # seconds without a main-loop round before /healthz says 503 (the loop wakes every 0.5 s)


def instance_name(netns: str | None, dev: str) -> str:
    return f"{netns or 'host'}-{dev}"


def state_file(netns: str | None, dev: str) -> Path:
    return STATE_DIR / f"{instance_name(netns, dev)}.json"


def default_store(netns: str | None, dev: str) -> Path:
    return STORE_DIR / f"{instance_name(netns, dev)}.sqlite"


def percentiles(samples: list[float], points: tuple[float, ...] = (0.5, 0.95, 0.99)) -> dict[float, float]:
    """Nearest-rank percentiles of `samples` (0.0 for none)."""
    if not samples:
        return {p: 0.0 for p in points}
    s = sorted(samples)
    return {p: s[min(len(s) - 1, max(0, int(round(p * len(s))) - 1))] for p in points}


class Daemon:
    """One DHCP server on one interface of one namespace."""

    def __init__(
        self,
        config: DhcpConfig,
        netns: str | None,
        dev: str,
        *,
        store_path: str | Path | None = None,
        mode: str = "native",
        metrics_port: int | None = 9167,
        log: TextIO | None = None,
    ) -> None:
        self.config, self.netns, self.dev, self.mode = config, netns, dev, mode
        self.store_path = Path(store_path) if store_path else default_store(netns, dev)
        self.metrics_port = metrics_port
        self.log_stream = log or sys.stderr
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()  # (type, outcome)
        self.errors: collections.Counter[str] = collections.Counter()
        self.latency: collections.deque[float] = collections.deque(maxlen=LATENCY_WINDOW)
        self.stop_event = threading.Event()
        self.sock: socket.socket | None = None
        self._quiet: socket.socket | None = None
        self.fast: FastPath | None = None
        self.metrics_server: Any = None
        self.last_tick = time.monotonic()
        self.warmed: int | None = None  # leases put in the cache on start (None: not warmed yet)

    # ---- lifecycle --------------------------------------------------------------------------
    def start(self) -> Daemon:
        if self.netns:
            _netns.require(self.netns)
        with _netns.entered(self.netns) if self.netns else contextlib.nullcontext():
            try:
                self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
                self.sock.bind((self.dev, 0))
            except OSError as exc:
                raise PacketlabError(
                    f"cannot open a packet socket on {self.netns or 'host'}:{self.dev}",
                    cause=exc.strerror,
                    fix="run as root and check the interface name: ip "
                    + (f"-n {self.netns} " if self.netns else "")
                    + "link",
                ) from None
            attach_capture_filter(self.sock, "udp dst port 67")
            self.sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
            self.sock.setblocking(False)  # drop what came before the filter (IPv6 chatter, ...)
            with contextlib.suppress(BlockingIOError):
                while True:
                    self.sock.recv(4096)
            self.sock.setblocking(True)
            # a bound UDP port 67: unicast renewals get no ICMP port-unreachable from this kernel
            self._quiet = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._quiet.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            with contextlib.suppress(OSError):
                self._quiet.bind(("0.0.0.0", 67))
        self.server_mac = wire.mac_text(self.sock.getsockname()[4])
        self.store = LeaseStore(self.store_path)
        self.fast, reused = FastPath.install(self.netns, self.dev, mode=self.mode)
        self.fast.set_pools(self.config, self.server_mac)
        self.server = DhcpServer(self.config, self.store, self.server_mac, cache=self.fast)
        warmed = self.warmed = self.server.warm_up(self.fast)
        if self.metrics_port:
            self.metrics_server = serve_metrics(
                self.metrics,
                "0.0.0.0",
                self.metrics_port,
                namespace=self.netns,
                probes={"/healthz": self.health, "/readyz": self.readiness},
            )
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        state = {
            "pid": os.getpid(),
            "netns": self.netns,
            "dev": self.dev,
            "store": str(self.store_path),
            "metrics_port": self.metrics_port,
            "config": self.config.source,
            "prog_id": self.fast.prog_id(),
            "started": time.time(),
        }
        state_file(self.netns, self.dev).write_text(json.dumps(state))
        self.log("start", fast_path="reused" if reused else "installed", warmed=warmed, server_mac=self.server_mac)
        return self

    def close(self) -> None:
        """Stop answering; the fast path stays attached and pinned (see the module docstring)."""
        self.stop_event.set()
        if self.metrics_server is not None:
            self.metrics_server.shutdown()
            self.metrics_server.server_close()
        for s in (self.sock, self._quiet):
            if s is not None:
                s.close()
        if self.fast is not None:
            self.fast.close()
        with contextlib.suppress(AttributeError):
            self.store.close()
        with contextlib.suppress(FileNotFoundError):
            state_file(self.netns, self.dev).unlink()
        self.log("stop")

    # ---- the loop ---------------------------------------------------------------------------
    def serve_forever(self) -> None:
        assert self.sock is not None
        next_sweep = time.monotonic() + 1
        while not self.stop_event.is_set():
            self.last_tick = time.monotonic()
            ready, _, _ = select.select([self.sock], [], [], 0.5)
            if ready:
                self.handle_one()
            if time.monotonic() >= next_sweep:
                self.sweep()
                next_sweep = time.monotonic() + 1

    def handle_one(self) -> None:
        assert self.sock is not None
        data, anc, _flags, addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(AUXDATA.size))
        if addr[2] == PACKET_OUTGOING:
            return
        t0 = time.perf_counter()
        try:
            msg = wire.parse_frame(data)
        except wire.MalformedDhcp as exc:
            self.errors["malformed"] += 1
            self.log("malformed", level="warning", why=exc.what, bytes=len(data))
            return
        for level, kind, cdata in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA and len(cdata) >= AUXDATA.size:
                status, *_rest, tci, _tpid = AUXDATA.unpack(cdata[: AUXDATA.size])
                if status & TP_STATUS_VLAN_VALID:
                    msg.vlan = tci & 0x0FFF
        try:
            out = self.server.handle(msg)
            if out.frame is not None:
                self.sock.send(out.frame)
        except Exception as exc:  # one bad request must never stop the server
            self.errors["internal"] += 1
            self.log(
                "error",
                level="error",
                mac=msg.chaddr,
                vlan=msg.vlan,
                request=msg.type_name,
                xid=f"{msg.xid:#010x}",
                why=f"{type(exc).__name__}: {exc}",
            )
            return
        self.latency.append(time.perf_counter() - t0)
        self.requests[(out.request, out.reply or "none")] += 1
        self.log(
            "request",
            path="slow",
            request=out.request,
            reply=out.reply,
            mac=msg.chaddr,
            vlan=msg.vlan,
            ip=out.ip,
            xid=f"{msg.xid:#010x}",
            note=out.note or None,
            us=round((time.perf_counter() - t0) * 1e6),
        )
        if out.lease:
            found = self.config.pool_for_vlan(msg.vlan)
            self.log(
                "lease",
                action=out.lease,
                path="slow",
                mac=msg.chaddr,
                vlan=msg.vlan,
                ip=out.ip,
                pool=found[1].name if found else None,
                expires=round(out.expires, 3) if out.expires else None,
                hostname=msg.hostname,
            )

    def sweep(self) -> None:
        fast = self.fast

        def renewed(mac: str, vlan: int) -> float | None:
            entry = fast.lookup(mac, vlan) if fast else None
            return entry.expires if entry else None

        moved: list = []
        for row in self.server.sweep(renewed, moved):
            self.log("lease", action="expire", mac=row.mac, vlan=row.vlan, ip=row.ip, pool=row.pool, was=row.state)
        for row, later in moved:  # renewed by XDP ACKs since the last look: written to the store now
            self.log(
                "lease",
                action="renew",
                path="fast",
                mac=row.mac,
                vlan=row.vlan,
                ip=row.ip,
                pool=row.pool,
                expires=round(later, 3),
            )

    def log(self, event: str, *, level: str = "info", **fields: Any) -> None:
        """One JSON object on one line: ts, level, event, netns, dev, then the event's fields."""
        record = {"ts": round(time.time(), 3), "level": level, "event": event, "netns": self.netns, "dev": self.dev}
        record.update({k: v for k, v in fields.items() if v is not None})
        with contextlib.suppress(OSError, ValueError):
            self.log_stream.write(json.dumps(record) + "\n")
            self.log_stream.flush()

    # ---- probes -----------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        """Liveness: the main loop went round recently (a probe that fails means restart me)."""
        age = time.monotonic() - self.last_tick
        ok = age <= HEALTH_STALE and not self.stop_event.is_set()
        doc: dict[str, Any] = {"alive": ok, "pid": os.getpid(), "loop_age_s": round(age, 3)}
        if not ok:
            doc["why"] = "stopping" if self.stop_event.is_set() else f"main loop stuck for {age:.1f} s"
        return (200 if ok else 503), doc

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """Readiness: every part a subscriber's answer depends on is in place; 503 names what is not."""
        not_ready: list[str] = []
        checks: dict[str, Any] = {}
        ours = None
        if self.fast is None:
            not_ready.append("fast_path: not installed")
        else:
            with contextlib.suppress(OSError):
                ours = self.fast.prog_id()
            attached = attached_xdp_prog_id(self.netns, self.dev)
            checks["prog_id"], checks["attached_prog_id"] = ours, attached
            if attached is None:
                not_ready.append(f"fast_path: no XDP program on {self.netns or 'host'}:{self.dev} (detached)")
            elif attached != ours:
                not_ready.append(f"fast_path: XDP program {attached} on {self.dev} is not ours ({ours})")
            directory = pin_dir(self.netns, self.dev)
            missing = [n for n in (*L.MAPS, "prog") if not (directory / n).exists()]
            if missing:
                not_ready.append(f"pins: {', '.join(missing)} missing from {directory}")
        try:
            self.store.db.execute("SELECT count(*) FROM leases").fetchone()
            checks["store"] = str(self.store_path)
        except (AttributeError, sqlite3.Error) as exc:
            not_ready.append(f"store: {exc}")
        if self.warmed is None:
            not_ready.append("cache: not warmed from the lease store yet")
        else:
            checks["warmed"] = self.warmed
        code = 503 if not_ready else 200
        return code, {"ready": not not_ready, "not_ready": not_ready, **checks}

    # ---- metrics ----------------------------------------------------------------------------
    def metrics(self) -> str:
        return render_metrics(self.config, self.store, self.fast, self.requests, self.errors, list(self.latency))


def render_metrics(
    config: DhcpConfig,
    store: LeaseStore,
    fast: FastPath | None,
    requests: collections.Counter[tuple[str, str]],
    errors: collections.Counter[str],
    latency: list[float],
) -> str:
    """Prometheus text: requests by type and path, cache hit rate, leases, pool use, latency, errors."""
    req = MetricFamily("packetlab_dhcp_requests_total", "counter", "DHCP requests by message type and path")
    for (mtype, reply), n in sorted(requests.items()):
        req.add(n, type=mtype, reply=reply, path="slow")
    kstats = fast.stats() if fast else {}
    req.add(kstats.get("fast_offer", 0), type="DISCOVER", reply="OFFER", path="fast")
    req.add(kstats.get("fast_ack", 0), type="REQUEST", reply="ACK", path="fast")
    kern = MetricFamily("packetlab_dhcp_xdp_total", "counter", "what the XDP fast path did with DHCP frames")
    for name, n in sorted(kstats.items()):
        kern.add(n, outcome=name)
    hit = MetricFamily("packetlab_dhcp_cache_hit_ratio", "gauge", "DHCP frames answered in XDP / DHCP frames seen")
    seen = kstats.get("dhcp", 0)
    hit.add((kstats.get("fast_offer", 0) + kstats.get("fast_ack", 0)) / seen if seen else 0.0)
    counts = store.counts()
    active = MetricFamily("packetlab_dhcp_leases", "gauge", "leases in the store by pool and state")
    util = MetricFamily("packetlab_dhcp_pool_utilisation_ratio", "gauge", "addresses offered or bound / pool size")
    for pool in config.pools:
        for state in ("offered", "bound", "released", "expired"):
            active.add(counts.get((pool.name, state), 0), pool=pool.name, state=state)
        in_use = counts.get((pool.name, BOUND), 0) + counts.get((pool.name, OFFERED), 0)
        util.add(in_use / pool.size, pool=pool.name)
    cached = MetricFamily("packetlab_dhcp_cache_entries", "gauge", "leases in the fast path's map")
    cached.add(len(fast.leases()) if fast else 0)
    lat = MetricFamily("packetlab_dhcp_slow_path_latency_seconds", "gauge", "slow-path handling time, recent requests")
    for q, v in percentiles(latency).items():
        lat.add(v, quantile=str(q))
    err = MetricFamily("packetlab_dhcp_errors_total", "counter", "requests the slow path could not handle")
    for kind in ("malformed", "internal"):
        err.add(errors.get(kind, 0), kind=kind)
    return exposition([req, kern, hit, active, util, cached, lat, err])
