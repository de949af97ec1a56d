"""`LoadBalancer`: the control plane of the XDP load balancer in bpf/09-lb.c.

It loads the program, attaches it to the LB's interfaces, and keeps its maps
in step with a validated config: VIPs, backend slots and next hops, the Maglev
tables, backend health. It reads the counters and the connection table back.

Two ways to own an instance, one code path:

* in a notebook or test: ``LoadBalancer(host, ["eth0", "eth1"])`` — closed
  (detached) with ``close()`` or when the lab closes;
* from the command line: ``pin=True`` pins the program and maps under
  ``/sys/fs/bpf/packetlab/lb/<netns>-<dev>/`` and records the instance in
  ``/run/packetlab/lb/<netns>-<dev>.json``, so it outlives the process;
  ``LoadBalancer.open(netns, dev)`` picks it up again (status, apply, remove).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.ebpf.fdinfo import prog_id
from packetlab.ebpf.loader import LoadedProgram, attached_xdp_prog_id, set_xdp_fd
from packetlab.ebpf.maps import BpfMap
from packetlab.ebpf.syscall import obj_get, obj_pin
from packetlab.ebpf.testrun import prog_test_run
from packetlab.errors import PacketlabError, UsageError
from packetlab.tools.lb import instance, maglev
from packetlab.tools.lb.config import MAX_BACKENDS, VIP, Backend, ConfigError, LBConfig, load, parse_backend
from packetlab.tools.lb.encode import (
    backend_entry,
    backend_key,
    be32,
    filter_marks,
    plan_slots,
    ring_slots,
    usable_backends,
    vip_address_counts,
    vip_key,
    vip_meta,
)
from packetlab.tools.lb.flows import Connection, idle_seconds, jiffies_now
from packetlab.tools.lb.health import BackendHealth, probe
from packetlab.tools.lb.instance import PIN_ROOT, InstanceRecord, instance_name, netns_inode
from packetlab.tools.lb.layout import (
    BE_F_NEXTHOP,
    LB_MAPS,
    MAX_IFINDEX,
    MAX_RING,
    SET_F_REDIRECT,
    BackendEntry,
    Counters,
    Settings,
    Vip,
)
from packetlab.tools.lb.metrics import render as render_prometheus
from packetlab.tools.lb.nexthop import NextHop, link_info, local_addresses, resolve
from packetlab.tools.lb.status import LBStats, format_status, labels_by_slot, read_connections, read_stats
from packetlab.topo import netns
from packetlab.topo.names import check_name, check_namespace

if TYPE_CHECKING:
    from packetlab.topo.host import Host

PROGRAM = "bpf/09-lb.c"
XDP_FLAGS = {"native": 4, "generic": 2}


def disable_tx_checksum(host: Host | str, dev: str = "eth0") -> None:
    """Turn off TX checksum offload on `dev` (in that host's namespace only).

    A packet a local socket sends over veth leaves with CHECKSUM_PARTIAL: its
    TCP/UDP checksum field holds only the pseudo-header sum, to be finished by
    "hardware" that veth does not have. XDP cannot see that flag, so a program
    that rewrites addresses and updates the checksum incrementally would
    produce a wrong checksum. Real NICs deliver complete checksums; in a lab,
    the senders must compute them in software — this switch.
    """
    ns = host if isinstance(host, str) else host.namespace
    netns.run(ns, ["ethtool", "-K", dev, "tx", "off"], check=True)


class _LabHook:
    """Registered with a Lab so that lab.close() closes the load balancer too."""

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    def detach(self) -> None:
        self.lb.close()


class LoadBalancer:
    """An XDP L4 load balancer on interfaces `dev` of namespace `host`.

    >>> lb = LoadBalancer(lbhost, ["eth0", "eth1"])
    >>> lb.apply("packetlab/tools/lb/examples/web-nat.yaml")
    >>> lb.set_backends("web", ["10.9.2.11:80", "10.9.2.12:80"])
    >>> print(lb.status(conns=True)); lb.close()

    Parameters: `host` a lab Host or a namespace name (None = the root namespace,
    refused unless ``allow_host=True``); `dev` one interface or several — every
    interface where client packets *or NAT replies* arrive; `xdp_mode`
    "native" or "generic"; `redirect` allow XDP_REDIRECT between interfaces
    (the veth peer of the egress interface needs GRO or an XDP program, else
    the kernel drops redirected frames — set False to forward those through the
    kernel instead); `pin` keep program and maps in bpffs after this process ends.
    """

    def __init__(
        self,
        host: Host | str | None,
        dev: str | Sequence[str],
        *,
        xdp_mode: str = "native",
        redirect: bool = True,
        pin: bool = False,
        allow_host: bool = False,
        conn_table_size: int | None = None,
    ) -> None:
        self.namespace, self._lab = _namespace_of(host)
        if self.namespace is None and not allow_host:
            raise UsageError(
                "refusing to attach the load balancer to the root network namespace",
                cause="the root namespace carries this machine's own traffic",
                fix="pass a lab host / --netns NAME, or allow_host=True (--allow-host) if you mean it",
            )
        if self.namespace is not None:  # a plain name, not the host's (by inode), made by a lab
            check_namespace(self.namespace, allow_host=allow_host, tool="the load balancer")
        devs = [dev] if isinstance(dev, str) else list(dev)
        if not devs:
            raise PacketlabError("the load balancer needs at least one interface", fix="pass dev='eth0'")
        for d in devs:
            check_name(d)
        if xdp_mode not in XDP_FLAGS:
            raise PacketlabError(f"unknown XDP mode {xdp_mode!r}", fix="use 'native' or 'generic'")
        for d in devs:
            link_info(self.namespace, d)  # raises a clear error for a wrong name
        self.name = instance_name(self.namespace, devs[0])
        self.pin_dir = PIN_ROOT / self.name if pin else None
        self.state = InstanceRecord(self.namespace, [], xdp_mode, redirect, netns_inode(self.namespace))
        self.config = LBConfig()
        self.health: dict[str, BackendHealth] = {}
        self.nexthops: dict[str, NextHop] = {}
        self._lock = threading.RLock()
        self._health_thread: threading.Thread | None = None
        self._health_stop = threading.Event()
        self._closed = False
        self.stale, self.stale_reason = False, ""  # only an instance opened from pins can be stale
        self._program = None
        if pin:
            instance.refuse_existing(self.name)
        cflags = [f"-DLB_MAX_CONNS={int(conn_table_size)}"] if conn_table_size else []
        self._program = LoadedProgram(PROGRAM, prog_type="xdp", cflags=cflags)
        self.prog_fd = self._program.fd
        self.maps = {name: BpfMap(self._program[name].map_fd, name, k, v) for name, (k, v) in LB_MAPS.items()}
        try:
            self.maps["settings"].update(0, Settings(flags=SET_F_REDIRECT if redirect else 0))
            for d in devs:
                self.attach(d)
            if pin:
                self._pin()
            self._save()
        except BaseException:
            self._teardown(unpin=True)
            raise
        if self._lab is not None:  # lab.close() closes (detaches, unpins) it too
            track = getattr(self._lab, "track", None) or self._lab._track_attachment
            track(_LabHook(self))

    # ---- opening a pinned instance --------------------------------------------------------
    @classmethod
    def open(cls, namespace: str | None, dev: str) -> LoadBalancer:
        """Pick up the instance `packetlab lb apply` left pinned for (namespace, first dev)."""
        name = instance_name(namespace, dev)
        record = instance.read_record(name)
        self = cls.__new__(cls)
        self.state = record
        self.namespace, self._lab = self.state.namespace, None
        self.name, self.pin_dir = name, PIN_ROOT / name
        self._lock = threading.RLock()
        self._health_thread, self._health_stop, self._closed = None, threading.Event(), False
        self._program = None
        self.health, self.nexthops = {}, {}
        self.config = load(self.state.config)
        stale = self.namespace is not None and netns_inode(self.namespace) != self.state.netns_inode
        self.maps = {}
        try:
            self.prog_fd = obj_get(str(self.pin_dir / "prog"))
            for n, (k, v) in LB_MAPS.items():
                self.maps[n] = BpfMap.open_pinned(self.pin_dir / n, n, k, v)
        except OSError as exc:
            stale = True
            for m in self.maps.values():
                m.close()
            self.prog_fd, self.maps = -1, {}
            self.stale_reason = f"its pinned objects are missing ({exc.strerror})"
        else:
            self.stale_reason = "its network namespace is gone (or was re-created)" if stale else ""
        self.stale = stale
        for key in self.state.down:
            self.health[key] = BackendHealth(up=False)
        self.nexthops = {k: NextHop(**v) for k, v in self.state.nexthops.items()}
        return self

    # ---- attaching ---------------------------------------------------------------------------
    def attach(self, dev: str) -> None:
        """Attach the program to one more interface of the namespace (e.g. a new pod veth)."""
        with self._lock:
            if dev in self.state.devs:
                return
            ifindex, _ = link_info(self.namespace, check_name(dev))
            current = attached_xdp_prog_id(self.namespace, dev)
            if current is not None:
                raise PacketlabError(
                    f"{self.namespace or 'root'}:{dev} already has an XDP program (id {current})",
                    cause="an interface runs one XDP program; attaching would silently replace it",
                    fix=f"remove it first (ip -n {self.namespace} link set {dev} xdp off) "
                    "or `packetlab lb remove` if it is an old load balancer",
                )
            set_xdp_fd(self.namespace, dev, self.prog_fd, XDP_FLAGS[self.state.xdp_mode], self._program)
            self.state.devs.append(dev)
            self._set_tx_port(ifindex)
            self._save()

    def detach(self, dev: str) -> None:
        """Detach from one interface (the others keep balancing)."""
        with self._lock:
            if dev not in self.state.devs:
                return
            with contextlib.suppress(OSError, PacketlabError):
                set_xdp_fd(self.namespace, dev, -1, XDP_FLAGS[self.state.xdp_mode], None)
            self.state.devs.remove(dev)
            self._save()

    def _set_tx_port(self, ifindex: int) -> None:
        # A devmap resolves the ifindex in the network namespace of the process that
        # writes the entry: write it from inside the LB's namespace.
        if ifindex >= MAX_IFINDEX:
            return
        ctx = netns.entered(self.namespace) if self.namespace else contextlib.nullcontext()
        with ctx:
            self.maps["tx_ports"].update(ifindex, ifindex)

    # ---- configuration ------------------------------------------------------------------------
    def apply(self, config: LBConfig | Mapping | str | Path, *, probe_first: bool = False) -> LBConfig:
        """Install `config` (validated first; nothing changes if it is invalid).

        VIPs and backends that stay keep their table rows, slots, counters and
        connections; new ones are added, missing ones removed. With
        `probe_first`, every backend is health-checked once before it is put in
        a table, so a dead one never receives a flow.
        """
        cfg = load(config)
        with self._lock:
            self._need_open()
            vip_index, slots, retired = plan_slots(cfg, self.state.vip_index, self.state.slots, self.state.retired)
            keys = {backend_key(v, b) for v in cfg.vips for b in v.backends}
            hops: dict[str, NextHop] = {}
            problems = []
            own = local_addresses(self.namespace)
            for i, v in enumerate(cfg.vips):
                if v.address in own:
                    problems.append(
                        f"vips[{i}].address: {v.address} is the load balancer's own address (on {own[v.address]}): "
                        "traffic to it is the LB host's own, not a service — give the VIP an address of its own "
                        "(routed to the LB, e.g. 10.9.100.1)"
                    )
            for v in cfg.vips:
                for j, b in enumerate(v.backends):
                    k = backend_key(v, b)
                    if k in hops:
                        continue
                    try:
                        hops[k] = resolve(self.namespace, b.address, wait=1.0)
                    except PacketlabError as exc:
                        problems.append(f"vips[{cfg.vips.index(v)}].backends[{j}]: {exc.what} ({exc.cause})")
            if problems:
                raise ConfigError(problems, "config")
            # -- validated and resolved: from here on we write the maps --
            self.nexthops.update(hops)
            for k in keys:
                self.health.setdefault(k, BackendHealth(up=k not in self.state.down))
            if probe_first:
                for v in cfg.vips:
                    for b in v.backends:
                        r = probe(self.namespace, b.address, v.backend_port(b), v.health)
                        h = self.health[backend_key(v, b)]
                        h.last, h.up = r, r.ok
            new_slots = set(slots.values()) - set(self.state.slots.values())
            new_rows = {vip_index[v.key] for v in cfg.vips if v.key not in self.state.vip_index}
            for row in new_rows:  # a fresh row: forget a previous VIP's counters
                for s in range(MAX_BACKENDS):
                    self.maps["stats"].update(row * MAX_BACKENDS + s, Counters())
            for s in new_slots:  # a fresh slot: forget a previous backend's counters
                for row in set(vip_index.values()) - new_rows:
                    self.maps["stats"].update(row * MAX_BACKENDS + s, Counters())
            for k, s in slots.items():
                self._write_backend(s, k)
            for v in cfg.vips:
                self._write_ring(v, vip_index[v.key], slots)
            for v in cfg.vips:
                meta = vip_meta(v, vip_index[v.key])
                self.maps["vip_meta"].update(meta.index, meta)
                self.maps["vips"].update(vip_key(v), meta)
            for old in self.config.vips:
                if old.key not in vip_index:
                    self.maps["vips"].delete(vip_key(old))
                    if self.state.vip_index.get(old.key) not in vip_index.values():
                        self.maps["vip_meta"].update(self.state.vip_index[old.key], Vip())
            self._write_vip_addrs(cfg)
            self.maps["addr_filter"].update_batch(list(range(256)), filter_marks(cfg))
            for k, s in self.state.slots.items():
                if k not in slots:
                    self.maps["backends"].update(s, BackendEntry())  # flags 0: flows on it move
            self.config = cfg
            self.state.config = cfg.to_dict()
            self.state.vip_index, self.state.slots, self.state.retired = vip_index, slots, retired
            for v in cfg.vips:
                for b in v.backends:
                    self.state.labels[str(slots[backend_key(v, b)])] = b.label
            self.state.down = sorted(k for k in keys if not self.health[k].up)
            self.state.nexthops = {k: asdict(h) for k, h in self.nexthops.items() if k in keys}
            self._save()
            return cfg

    def set_backends(self, vip: str, backends: Sequence[Backend | Mapping | str]) -> LBConfig:
        """Replace one VIP's backends (``["10.0.0.2:8080", {"address": ..., "weight": 2}]``)."""
        parsed = [parse_backend(b, f"backends[{i}]") for i, b in enumerate(backends)]
        return self.apply(self.config.with_backends(vip, parsed))

    def add_vip(self, vip: VIP | Mapping) -> LBConfig:
        """Add a VIP (or replace the one with the same address:port/protocol)."""
        if isinstance(vip, Mapping):
            vip = load({"vips": [dict(vip)]}).vips[0]
        return self.apply(self.config.with_vip(vip))

    def remove_vip(self, ref: str) -> LBConfig:
        return self.apply(self.config.without_vip(ref))

    def set_weight(self, vip: str, backend: str, weight: int) -> LBConfig:
        """Change one backend's weight (by its name or address[:port])."""
        v = self.config.vip(vip)
        found = False
        bs = []
        for b in v.backends:
            if backend in (b.name, b.address, f"{b.address}:{v.backend_port(b)}"):
                b, found = replace(b, weight=weight), True
            bs.append(b)
        if not found:
            raise PacketlabError(
                f"VIP {vip!r} has no backend {backend!r}", fix="name it by its name, address or address:port"
            )
        return self.apply(self.config.with_backends(vip, bs))

    def _write_backend(self, slot: int, key: str) -> None:
        hop = self.nexthops.get(key)
        up = self.health.get(key, BackendHealth()).up
        entry = backend_entry(key, up=up, hop=hop, redirect=self.state.redirect)
        if hop is not None and entry.flags & BE_F_NEXTHOP:
            self._set_tx_port(hop.ifindex)
        self.maps["backends"].update(slot, entry)

    def _write_ring(self, v: VIP, row: int, slots: Mapping[str, int]) -> None:
        values = ring_slots(v, usable_backends(v, self.health), slots)
        base = row * MAX_RING
        self.maps["ring"].update_batch(list(range(base, base + v.table_size)), values)

    def _write_vip_addrs(self, cfg: LBConfig) -> None:
        counts = vip_address_counts(cfg)
        for v in self.config.vips:
            if v.address not in counts:
                self.maps["vip_addrs"].delete(be32(v.address))
        for addr, n in counts.items():
            self.maps["vip_addrs"].update(be32(addr), n)

    # ---- health ---------------------------------------------------------------------------------
    def check_health(self, *, immediate: bool = False) -> list[str]:
        """Probe every backend once; apply up/down changes. Returns what changed (readable lines).

        Normally a backend changes state after `fall` failures / `rise` successes in a
        row; with `immediate`, this one probe decides (``packetlab lb health --once``)."""
        with self._lock:
            self._need_open()
            cfg = self.config
        results = []
        done: set[str] = set()
        for v in cfg.vips:  # probe without holding the lock
            for b in v.backends:
                k = backend_key(v, b)
                if k not in done:
                    done.add(k)
                    results.append(
                        (v, b, k, probe(self.namespace, b.address, v.health.port or v.backend_port(b), v.health))
                    )
        with self._lock:
            return self._record_health(results, immediate)

    def _record_health(self, results: list, immediate: bool) -> list[str]:
        changes = []
        for v, b, k, r in results:
            h = self.health.setdefault(k, BackendHealth())
            check = replace(v.health, fall=1, rise=1) if immediate else v.health
            if h.record(r, check):
                changes.append(f"{b.label} ({k}) is {'up' if h.up else 'DOWN'}: {r.detail}")
                if h.up or k not in self.nexthops or not self.nexthops[k].resolved:
                    with contextlib.suppress(PacketlabError):
                        self.nexthops[k] = resolve(self.namespace, b.address, wait=0.5)
            elif h.up and (k not in self.nexthops or not self.nexthops[k].resolved):
                with contextlib.suppress(PacketlabError):
                    hop = resolve(self.namespace, b.address, wait=0.2)
                    if hop.resolved:
                        self.nexthops[k] = hop
                        changes.append(f"{b.label} ({k}): next hop resolved ({hop.dev} {hop.mac})")
        if changes:
            self._refresh_health()
        return changes

    def mark(self, vip: str, backend: str, up: bool) -> None:
        """Set a backend's health by hand (what a failing probe would do)."""
        v = self.config.vip(vip)
        for b in v.backends:
            if backend in (b.name, b.address, backend_key(v, b)):
                self.health.setdefault(backend_key(v, b), BackendHealth()).up = up
                with self._lock:
                    self._refresh_health()
                return
        raise PacketlabError(f"VIP {vip!r} has no backend {backend!r}")

    def _refresh_health(self) -> None:
        slots = self.state.slots
        for k, s in slots.items():
            self._write_backend(s, k)
        for v in self.config.vips:
            self._write_ring(v, self.state.vip_index[v.key], slots)
        self.state.down = sorted(k for k in slots if not self.health.get(k, BackendHealth()).up)
        self.state.nexthops = {k: asdict(h) for k, h in self.nexthops.items() if k in slots}
        self._save()

    def start_health_checks(self, interval: float | None = None) -> None:
        """Probe in a background thread every `interval` s (default: the smallest VIP interval)."""
        if self._health_thread is not None and self._health_thread.is_alive():
            return
        every = interval or min([v.health.interval for v in self.config.vips] or [1.0])
        self._health_stop.clear()

        def loop() -> None:
            while not self._health_stop.wait(every):
                with contextlib.suppress(Exception):
                    self.check_health()

        self._health_thread = threading.Thread(target=loop, name=f"lb-health-{self.name}", daemon=True)
        self._health_thread.start()

    def stop_health_checks(self) -> None:
        self._health_stop.set()
        if self._health_thread is not None:
            self._health_thread.join(5)
            self._health_thread = None

    # ---- reading back ---------------------------------------------------------------------------
    def table(self, vip: str) -> list[str | None]:
        """The Maglev table installed for `vip`, as backend labels (None = empty slot)."""
        with self._lock:
            v = self.config.vip(vip)
            row = self.state.vip_index[v.key]
            by_slot = labels_by_slot(self, v)
            values = self.maps["ring"].lookup_range(row * MAX_RING, v.table_size)
        return [by_slot.get(s) for s in values]

    def backend_up(self, vip: str, backend: str) -> bool:
        """Does the health checker consider `backend` (name or address[:port]) of `vip` up?"""
        v = self.config.vip(vip)
        for b in v.backends:
            if backend in (b.name, b.address, backend_key(v, b)):
                return self.health.get(backend_key(v, b), BackendHealth(up=backend_key(v, b) not in self.state.down)).up
        raise PacketlabError(f"VIP {vip!r} has no backend {backend!r}")

    def table_shares(self, vip: str) -> dict[str, float]:
        """Share of `vip`'s installed Maglev table each backend owns (read from the kernel map)."""
        v = self.config.vip(vip)
        t = self.table(vip)
        return {b.label: t.count(b.label) / len(t) for b in v.backends}

    def predict(self, vip: str, client: str, client_port: int) -> str | None:
        """The backend a *new* flow client:port -> vip gets (Maglev alone, from the installed table)."""
        v = self.config.vip(vip)
        h = maglev.flow_hash(client, v.address, client_port, v.port, v.proto_number)
        row = self.state.vip_index[v.key]
        s = self.maps["ring"].lookup(row * MAX_RING + h % v.table_size)
        return labels_by_slot(self, v).get(s)

    def stats(self) -> LBStats:
        """Per-VIP and per-backend counters (summed over CPUs) and the program's event counters."""
        with self._lock:
            self._need_open()
            return read_stats(self)

    def connections(self, vip: str | None = None) -> list[Connection]:
        """The XDP connection table, decoded (optionally only one VIP's flows)."""
        self._need_open()
        return read_connections(self, vip)

    def expire_connections(self, *, closed_after: float = 10.0, idle_after: float = 300.0) -> int:
        """Delete closed flows idle for `closed_after` s and any flow idle for `idle_after` s.

        The LRU map evicts old entries by itself when it is full; this keeps the
        table (and ``status --conns``) to the flows that matter. Returns how many went."""
        self._need_open()
        jnow = jiffies_now()
        gone = 0
        for k, c in list(self.maps["conns"].items()):
            idle = idle_seconds(c.last_jiffies, jnow)
            if idle >= idle_after or (c.state in (3, 4) and idle >= closed_after):
                gone += self.maps["conns"].delete(k)
        return gone

    def flush_connections(self) -> int:
        """Forget every tracked flow (each is balanced afresh by Maglev on its next packet)."""
        self._need_open()
        return self.maps["conns"].clear() + 0 * self.maps["nat_rev"].clear()

    def status(self, conns: bool = False, limit: int = 40) -> str:
        """A readable report: VIPs, backends with health, table share and counters; events (and flows)."""
        return format_status(self, self.stats(), self.connections() if conns else None, limit)

    def prometheus(self) -> str:
        """Counters in the Prometheus text exposition format (version 0.0.4)."""
        return render_prometheus(self)

    def test_run(self, packet: Any, *, repeat: int = 1):
        """Run the attached program on one frame with BPF_PROG_TEST_RUN (maps are the live ones)."""
        self._need_open()
        return prog_test_run(self.prog_fd, bytes(packet), repeat=repeat)

    # ---- pinning and lifetime --------------------------------------------------------------------
    def _pin(self) -> None:
        assert self.pin_dir is not None
        self.pin_dir.mkdir(parents=True, exist_ok=True)
        obj_pin(self.prog_fd, str(self.pin_dir / "prog"))
        for n, m in self.maps.items():
            m.pin(str(self.pin_dir / n))

    def _save(self) -> None:
        if self.pin_dir is not None:
            instance.write_record(self.name, self.state)

    def _need_open(self) -> None:
        if self._closed:
            raise PacketlabError(f"load balancer {self.name} is closed", fix="create a new LoadBalancer")
        if self.stale:
            raise PacketlabError(
                f"load balancer {self.name} is stale: {self.stale_reason}",
                fix=f"remove it with `packetlab lb remove --netns {self.namespace} --dev "
                f"{(self.state.devs or ['IF'])[0]}` and apply again",
            )

    def close(self) -> None:
        """Detach from every interface, unpin, unload. Idempotent."""
        if self._closed:
            return
        self.stop_health_checks()
        self._teardown(unpin=True)

    remove = close

    def _teardown(self, *, unpin: bool) -> None:
        self._closed = True
        for d in list(self.state.devs):
            with contextlib.suppress(OSError, PacketlabError):
                if self.stale:
                    raise OSError("namespace gone")
                if attached_xdp_prog_id(self.namespace, d) == prog_id(self.prog_fd):
                    set_xdp_fd(self.namespace, d, -1, XDP_FLAGS[self.state.xdp_mode], None)
        if unpin and self.pin_dir is not None:
            instance.remove_pins(self.name)
        for m in getattr(self, "maps", {}).values():
            m.close()
        if self._program is not None:
            self._program.close()
            self._program = None
        elif getattr(self, "prog_fd", -1) >= 0:
            with contextlib.suppress(OSError):
                os.close(self.prog_fd)
        self.prog_fd = -1

    def __enter__(self) -> LoadBalancer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ",".join(self.state.devs)
        return f"<LoadBalancer {self.name} ({state}): {len(self.config.vips)} VIP(s)>"


# ---- helpers --------------------------------------------------------------------------------------
def _namespace_of(host: Any) -> tuple[str | None, Any]:
    if host is None:
        return None, None
    if isinstance(host, str):
        return host, None
    return host.namespace, getattr(host, "lab", None)
