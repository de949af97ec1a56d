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
import fcntl
import ipaddress
import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.ebpf.fdinfo import prog_id
from packetlab.ebpf.maps import BpfMap, percpu_sum
from packetlab.ebpf.syscall import obj_get, obj_pin
from packetlab.errors import PacketlabError
from packetlab.show.tables import format_table
from packetlab.tools.lb import maglev
from packetlab.tools.lb.config import MAX_BACKENDS, MAX_VIPS, VIP, Backend, ConfigError, LBConfig, load, parse_backend
from packetlab.tools.lb.flows import (
    STATE_NAMES,
    Connection,
    idle_seconds,
    ip_from_be,
    jiffies_now,
    monotonic_ns,
    port_from_be,
)
from packetlab.tools.lb.health import BackendHealth, probe
from packetlab.tools.lb.layout import (
    LB_MAPS,
    BackendEntry,
    Counters,
    Settings,
    Vip,
    VipKey,
    mac_bytes,
)
from packetlab.tools.lb.nexthop import NextHop, link_info, resolve
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.topo.host import Host

PROGRAM = "bpf/09-lb.c"
MAX_RING = 65537  # LB_MAX_RING
MAX_IFINDEX = 1024  # LB_MAX_IFINDEX
PIN_ROOT = Path(os.environ.get("PACKETLAB_LB_PIN_ROOT", "/sys/fs/bpf/packetlab/lb"))
STATE_DIR = Path(os.environ.get("PACKETLAB_LB_STATE_DIR", "/run/packetlab/lb"))

VIP_F_DSR, VIP_F_STICKY, VIP_F_ACTIVE = 1, 2, 4
FILTER_VIP_DST, FILTER_BE_SRC = 1, 2
BE_F_ACTIVE, BE_F_UP, BE_F_NEXTHOP, BE_F_REDIRECT = 1, 2, 4, 8
SET_F_REDIRECT = 1
EVENTS = [
    "pass_not_ipv4",
    "pass_not_vip",
    "pass_malformed",
    "drop_fragment",
    "drop_no_backend",
    "xmit_kernel",
    "reply_nat",
    "conn_new",
    "conn_reselect",
    "drop_encap",
]
XDP_FLAGS = {"native": 4, "generic": 2}


def be32(addr: str) -> int:
    """An IPv4 address as the integer whose memory bytes are in network order."""
    return int.from_bytes(socket.inet_aton(addr), "little")


def be16(port: int) -> int:
    return socket.htons(port)


def addr_bucket(addr: str) -> int:
    """lb_addr_bucket() in bpf/09-lb.c: the XOR of the address's four bytes."""
    a, b, c, d = socket.inet_aton(addr)
    return a ^ b ^ c ^ d


def instance_name(namespace: str | None, dev: str) -> str:
    return f"{namespace or 'host'}-{dev}"


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


@dataclass
class CounterSet:
    packets: int = 0
    bytes: int = 0
    conns: int = 0
    reply_packets: int = 0
    reply_bytes: int = 0

    def add(self, other: CounterSet) -> None:
        for f in ("packets", "bytes", "conns", "reply_packets", "reply_bytes"):
            setattr(self, f, getattr(self, f) + getattr(other, f))

    @classmethod
    def from_percpu(cls, values: Sequence[Counters] | None) -> CounterSet:
        """The counters of one stats slot, summed over CPUs (all zero if the slot is absent)."""
        total = percpu_sum(values) if values else Counters()
        return cls(**{f: getattr(total, f) for f, *_ in Counters._fields_})


@dataclass
class BackendStatus:
    """One backend of one VIP, as the data plane sees it now."""

    label: str
    address: str
    port: int
    slot: int
    weight: int
    up: bool
    drain: bool
    in_table: float  # share of the VIP's Maglev table it owns
    nexthop: str
    counters: CounterSet
    health: str = ""

    @property
    def state(self) -> str:
        return "drain" if self.drain and self.up else ("up" if self.up else "DOWN")


@dataclass
class VipStatus:
    vip: VIP
    index: int
    counters: CounterSet
    backends: list[BackendStatus]


@dataclass
class LBStats:
    vips: list[VipStatus]
    events: dict[str, int]

    def vip(self, ref: str) -> VipStatus:
        for v in self.vips:
            if v.vip.matches(ref):
                return v
        raise PacketlabError(f"no VIP {ref!r}", fix="use the VIP's name or address:port/protocol")

    def backend_packets(self, ref: str) -> dict[str, int]:
        """{backend label: packets} for one VIP — handy in assertions."""
        return {b.label: b.counters.packets for b in self.vip(ref).backends}


@dataclass
class _State:
    """What must survive between processes for a pinned instance (the JSON record)."""

    namespace: str | None
    devs: list[str]
    xdp_mode: str
    redirect: bool
    netns_inode: int | None = None
    config: dict = field(default_factory=lambda: {"vips": []})
    vip_index: dict[str, int] = field(default_factory=dict)  # vip key -> row
    slots: dict[str, int] = field(default_factory=dict)  # "addr:port" -> backend slot
    retired: list[int] = field(default_factory=list)  # freed slots, oldest first
    down: list[str] = field(default_factory=list)  # "addr:port" marked down by health checks
    nexthops: dict[str, dict] = field(default_factory=dict)  # "addr:port" -> NextHop fields
    labels: dict[str, str] = field(default_factory=dict)  # slot -> last backend label (for old flows)
    created: float = field(default_factory=time.time)


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
            raise PacketlabError(
                "refusing to attach the load balancer to the root network namespace",
                cause="the root namespace carries this machine's own traffic",
                fix="pass a lab host / --netns NAME, or allow_host=True (--allow-host) if you mean it",
            )
        if self.namespace is not None and not netns.exists(self.namespace):
            raise PacketlabError(
                f"network namespace {self.namespace!r} does not exist", fix="list namespaces with `ip netns list`"
            )
        devs = [dev] if isinstance(dev, str) else list(dev)
        if not devs:
            raise PacketlabError("the load balancer needs at least one interface", fix="pass dev='eth0'")
        if xdp_mode not in XDP_FLAGS:
            raise PacketlabError(f"unknown XDP mode {xdp_mode!r}", fix="use 'native' or 'generic'")
        for d in devs:
            link_info(self.namespace, d)  # raises a clear error for a wrong name
        self.name = instance_name(self.namespace, devs[0])
        self.pin_dir = PIN_ROOT / self.name if pin else None
        self.state = _State(self.namespace, [], xdp_mode, redirect, _ns_inode(self.namespace))
        self.config = LBConfig()
        self.health: dict[str, BackendHealth] = {}
        self.nexthops: dict[str, NextHop] = {}
        self._lock = threading.RLock()
        self._health_thread: threading.Thread | None = None
        self._health_stop = threading.Event()
        self._closed = False
        self._program = None
        if pin:
            _refuse_existing(self.name)
        from packetlab.ebpf.loader import LoadedProgram

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
        path = STATE_DIR / f"{name}.json"
        if not path.exists():
            raise PacketlabError(
                f"no load balancer {name!r} is installed",
                cause=f"{path} does not exist",
                fix="install one with `packetlab lb apply CONFIG --netns NS --dev IF` "
                "(name the first --dev it was applied with); `packetlab lb list` shows them",
            )
        self = cls.__new__(cls)
        data = json.loads(path.read_text())
        self.state = _State(**data)
        self.namespace, self._lab = self.state.namespace, None
        self.name, self.pin_dir = name, PIN_ROOT / name
        self._lock = threading.RLock()
        self._health_thread, self._health_stop, self._closed = None, threading.Event(), False
        self._program = None
        self.health, self.nexthops = {}, {}
        self.config = load(self.state.config)
        stale = self.namespace is not None and _ns_inode(self.namespace) != self.state.netns_inode
        try:
            self.prog_fd = obj_get(str(self.pin_dir / "prog"))
            self.maps = {}
            for n, (k, v) in LB_MAPS.items():
                self.maps[n] = BpfMap.open_pinned(self.pin_dir / n, n, k, v)
        except OSError as exc:
            stale = True
            for m in self.maps.values():
                m.close()
            self.prog_fd, self.maps = -1, {}
            self._stale_reason = f"its pinned objects are missing ({exc.strerror})"
        else:
            self._stale_reason = "its network namespace is gone (or was re-created)" if stale else ""
        self.stale = stale
        for key in self.state.down:
            self.health[key] = BackendHealth(up=False)
        self.nexthops = {k: NextHop(**v) for k, v in self.state.nexthops.items()}
        return self

    @staticmethod
    def installed() -> list[dict]:
        """Every pinned instance on this machine: name, namespace, devs, whether it is stale."""
        out = []
        for path in sorted(STATE_DIR.glob("*.json")):
            with contextlib.suppress(ValueError, OSError):
                d = json.loads(path.read_text())
                ns = d.get("namespace")
                alive = ns is None or _ns_inode(ns) == d.get("netns_inode")
                out.append(
                    {
                        "name": path.stem,
                        "namespace": ns,
                        "devs": d.get("devs", []),
                        "vips": len(d.get("config", {}).get("vips", [])),
                        "stale": not alive,
                    }
                )
        return out

    # ---- attaching ---------------------------------------------------------------------------
    def attach(self, dev: str) -> None:
        """Attach the program to one more interface of the namespace (e.g. a new pod veth)."""
        from packetlab.ebpf.loader import set_xdp_fd

        with self._lock:
            if dev in self.state.devs:
                return
            ifindex, _ = link_info(self.namespace, dev)
            current = _attached_prog_id(self.namespace, dev)
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
        from packetlab.ebpf.loader import set_xdp_fd

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
            vip_index, slots, retired = self._plan(cfg)
            keys = {_bkey(v, b) for v in cfg.vips for b in v.backends}
            hops: dict[str, NextHop] = {}
            problems = []
            for v in cfg.vips:
                for j, b in enumerate(v.backends):
                    k = _bkey(v, b)
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
                        h = self.health[_bkey(v, b)]
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
                self._write_backend(s, k, cfg)
            for v in cfg.vips:
                self._write_ring(v, vip_index[v.key], slots)
            for v in cfg.vips:
                idx = vip_index[v.key]
                flags = (VIP_F_DSR if v.mode == "dsr" else 0) | (VIP_F_STICKY if v.sticky else 0) | VIP_F_ACTIVE
                meta = Vip(
                    index=idx,
                    ring_size=v.table_size,
                    flags=flags,
                    addr=be32(v.address),
                    port=be16(v.port),
                    proto=v.proto_number,
                )
                self.maps["vip_meta"].update(idx, meta)
                self.maps["vips"].update(_vip_key(v), meta)
            for old in self.config.vips:
                if old.key not in vip_index:
                    self.maps["vips"].delete(_vip_key(old))
                    if self.state.vip_index.get(old.key) not in vip_index.values():
                        self.maps["vip_meta"].update(self.state.vip_index[old.key], Vip())
            self._write_vip_addrs(cfg)
            self._write_filter(cfg)
            for k, s in self.state.slots.items():
                if k not in slots:
                    self.maps["backends"].update(s, BackendEntry())  # flags 0: flows on it move
            self.config = cfg
            self.state.config = cfg.to_dict()
            self.state.vip_index, self.state.slots, self.state.retired = vip_index, slots, retired
            for v in cfg.vips:
                for b in v.backends:
                    self.state.labels[str(slots[_bkey(v, b)])] = b.label
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

    def _plan(self, cfg: LBConfig) -> tuple[dict[str, int], dict[str, int], list[int]]:
        """Rows for VIPs and slots for backends: existing ones keep theirs."""
        vip_index = {k: i for k, i in self.state.vip_index.items() if any(v.key == k for v in cfg.vips)}
        free_rows = [i for i in range(MAX_VIPS) if i not in vip_index.values()]
        for v in cfg.vips:
            if v.key not in vip_index:
                vip_index[v.key] = free_rows.pop(0)
        wanted = {_bkey(v, b) for v in cfg.vips for b in v.backends}
        slots = {k: s for k, s in self.state.slots.items() if k in wanted}
        retired = [s for s in self.state.retired if s not in slots.values()]
        retired += [s for k, s in self.state.slots.items() if k not in wanted and s not in retired]
        used = set(slots.values()) | set(retired)
        fresh = [s for s in range(MAX_BACKENDS) if s not in used]
        for k in sorted(wanted - set(slots)):
            if fresh:
                slots[k] = fresh.pop(0)
            elif retired:
                slots[k] = retired.pop(0)  # reuse the slot freed longest ago
            else:
                raise ConfigError([f"more than {MAX_BACKENDS} backends"], "config")
        return vip_index, slots, retired

    def _write_backend(self, slot: int, key: str, cfg: LBConfig) -> None:
        hop = self.nexthops.get(key)
        addr, port = key.rsplit(":", 1)
        up = self.health.get(key, BackendHealth()).up
        flags = BE_F_ACTIVE | (BE_F_UP if up else 0)
        entry = BackendEntry(addr=be32(addr), port=be16(int(port)))
        if hop is not None:
            entry.saddr = be32(hop.src) if hop.src else 0
            entry.ifindex = hop.ifindex
            if hop.mac and hop.ifindex < MAX_IFINDEX:
                flags |= BE_F_NEXTHOP | (BE_F_REDIRECT if self.state.redirect else 0)
                entry.dmac[:] = list(mac_bytes(hop.mac))
                entry.smac[:] = list(mac_bytes(hop.our_mac))
                self._set_tx_port(hop.ifindex)
        entry.flags = flags
        self.maps["backends"].update(slot, entry)

    def _usable(self, v: VIP) -> list[Backend]:
        return [
            b for b in v.backends if b.weight > 0 and not b.drain and self.health.get(_bkey(v, b), BackendHealth()).up
        ]

    def _write_ring(self, v: VIP, row: int, slots: Mapping[str, int]) -> None:
        usable = self._usable(v)
        names = [_bkey(v, b) for b in usable]
        table = maglev.build_table(names, [b.weight for b in usable], v.table_size)
        values = [slots[names[t]] if t != maglev.EMPTY else maglev.EMPTY for t in table]
        base = row * MAX_RING
        self.maps["ring"].update_batch(list(range(base, base + v.table_size)), values)

    def _write_vip_addrs(self, cfg: LBConfig) -> None:
        counts: dict[str, int] = {}
        for v in cfg.vips:
            counts[v.address] = counts.get(v.address, 0) + 1
        for v in self.config.vips:
            if v.address not in counts:
                self.maps["vip_addrs"].delete(be32(v.address))
        for addr, n in counts.items():
            self.maps["vip_addrs"].update(be32(addr), n)

    def _write_filter(self, cfg: LBConfig) -> None:
        """The 256-bucket pre-filter: which buckets hold a VIP address / a NAT backend address."""
        marks = [0] * 256
        for v in cfg.vips:
            marks[addr_bucket(v.address)] |= FILTER_VIP_DST
            if v.mode == "nat":
                for b in v.backends:
                    marks[addr_bucket(b.address)] |= FILTER_BE_SRC
        self.maps["addr_filter"].update_batch(list(range(256)), marks)

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
                k = _bkey(v, b)
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
            if backend in (b.name, b.address, _bkey(v, b)):
                self.health.setdefault(_bkey(v, b), BackendHealth()).up = up
                with self._lock:
                    self._refresh_health()
                return
        raise PacketlabError(f"VIP {vip!r} has no backend {backend!r}")

    def _refresh_health(self) -> None:
        slots = self.state.slots
        for k, s in slots.items():
            self._write_backend(s, k, self.config)
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
            by_slot = self._labels_by_slot(v)
            values = self.maps["ring"].lookup_range(row * MAX_RING, v.table_size)
        return [by_slot.get(s) for s in values]

    def backend_up(self, vip: str, backend: str) -> bool:
        """Does the health checker consider `backend` (name or address[:port]) of `vip` up?"""
        v = self.config.vip(vip)
        for b in v.backends:
            if backend in (b.name, b.address, _bkey(v, b)):
                return self.health.get(_bkey(v, b), BackendHealth(up=_bkey(v, b) not in self.state.down)).up
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
        return self._labels_by_slot(v).get(s)

    def _labels_by_slot(self, v: VIP) -> dict[int, str]:
        return {self.state.slots[_bkey(v, b)]: b.label for b in v.backends if _bkey(v, b) in self.state.slots}

    def stats(self) -> LBStats:
        """Per-VIP and per-backend counters (summed over CPUs) and the program's event counters."""
        with self._lock:
            return self._stats()

    def _stats(self) -> LBStats:
        self._need_open()
        vips = []
        for v in self.config.vips:
            row = self.state.vip_index[v.key]
            bstats = []
            shares = self._shares_fast(v)
            vip_total = CounterSet()
            for b in v.backends:
                k = _bkey(v, b)
                slot = self.state.slots[k]
                counters = CounterSet.from_percpu(self.maps["stats"].lookup(row * MAX_BACKENDS + slot))
                vip_total.add(counters)
                h = self.health.get(k, BackendHealth(up=k not in self.state.down))
                hop = self.nexthops.get(k)
                hop_txt = f"{hop.dev} {hop.mac}" if hop and hop.mac else (f"{hop.dev} (kernel)" if hop else "?")
                bstats.append(
                    BackendStatus(
                        label=b.label,
                        address=b.address,
                        port=v.backend_port(b),
                        slot=slot,
                        weight=b.weight,
                        up=h.up,
                        drain=b.drain,
                        in_table=shares.get(k, 0.0),
                        nexthop=hop_txt,
                        counters=counters,
                        health=h.last.detail if h.last else "",
                    )
                )
            for s in self._retired_slots_with_counts(row, v):  # flows of removed backends still count
                vip_total.add(s)
            vips.append(VipStatus(v, row, vip_total, bstats))
        ev = {name: percpu_sum(self.maps["events"].lookup(i) or []) for i, name in enumerate(EVENTS)}
        return LBStats(vips, ev)

    def _retired_slots_with_counts(self, row: int, v: VIP) -> list[CounterSet]:
        mine = {self.state.slots[_bkey(v, b)] for b in v.backends}
        out = []
        for s in set(self.state.slots.values()) | set(self.state.retired):
            if s not in mine:
                c = CounterSet.from_percpu(self.maps["stats"].lookup(row * MAX_BACKENDS + s))
                if c.packets or c.reply_packets:
                    out.append(c)
        return out

    def _shares_fast(self, v: VIP) -> dict[str, float]:
        usable = self._usable(v)
        if not usable:
            return {}
        total = sum(b.weight for b in usable)
        return {_bkey(v, b): b.weight / total for b in usable}

    def connections(self, vip: str | None = None) -> list[Connection]:
        """The XDP connection table, decoded (optionally only one VIP's flows)."""
        self._need_open()
        now = monotonic_ns()
        jnow = jiffies_now()
        current = set(self.state.slots.values())
        labels: dict[int, str] = {
            int(s): f"{name} (removed)" for s, name in self.state.labels.items() if int(s) not in current
        }
        for v in self.config.vips:
            labels.update(self._labels_by_slot(v))
        only = self.config.vip(vip) if vip else None
        out = []
        for k, c in self.maps["conns"].items():
            dst, dport = ip_from_be(k.dst), port_from_be(k.dport)
            if only is not None and (dst != only.address or dport != only.port):
                continue
            out.append(
                Connection(
                    client=ip_from_be(k.src),
                    client_port=port_from_be(k.sport),
                    vip=dst,
                    vip_port=dport,
                    protocol={6: "tcp", 17: "udp"}.get(k.proto, str(k.proto)),
                    backend=labels.get(c.backend, f"slot {c.backend}"),
                    state=STATE_NAMES.get(c.state, str(c.state)),
                    age_s=max(0, now - c.created_ns) / 1e9,
                    idle_s=idle_seconds(c.last_jiffies, jnow),
                    packets=c.packets,
                    reply_packets=c.reply_packets,
                    tcp_flags=c.tcp_flags,
                )
            )
        out.sort(key=lambda c: (c.vip, c.vip_port, c.client, c.client_port))
        return out

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
        """A readable report: VIPs, backends with health, table share and counters; events."""
        st = self.stats()
        where = f"{self.namespace or 'root namespace'}: {','.join(self.state.devs) or '(detached)'}"
        lines = [
            f"load balancer {self.name} — XDP {self.state.xdp_mode} on {where}"
            + (f", pinned at {self.pin_dir}" if self.pin_dir else "")
        ]
        for vs in st.vips:
            v = vs.vip
            c = vs.counters
            lines.append("")
            lines.append(
                f"VIP {v.label}  {v.key}  mode={v.mode}  table={v.table_size}  "
                f"sticky={'yes' if v.sticky else 'no'}  health={v.health.type}  "
                f"packets={c.packets} bytes={c.bytes} conns={c.conns}"
                + (f" reply_packets={c.reply_packets}" if v.mode == "nat" else "")
            )
            rows = [
                [
                    b.label,
                    f"{b.address}:{b.port}",
                    b.weight,
                    b.state,
                    f"{100 * b.in_table:.1f}%",
                    b.counters.packets,
                    b.counters.bytes,
                    b.counters.conns,
                    b.counters.reply_packets,
                    b.nexthop,
                ]
                for b in vs.backends
            ]
            lines.append(
                format_table(
                    [
                        "backend",
                        "address",
                        "weight",
                        "state",
                        "table",
                        "packets",
                        "bytes",
                        "conns",
                        "replies",
                        "next hop",
                    ],
                    rows,
                )
            )
        lines.append("")
        lines.append("events: " + ", ".join(f"{k}={v}" for k, v in st.events.items() if v) or "events: none")
        if conns:
            cs = self.connections()
            lines.append("")
            lines.append(f"connection table: {len(cs)} flows")
            if cs:
                shown = sorted(cs, key=lambda c: c.idle_s)[:limit] if limit else cs
                lines.append(
                    format_table(
                        ["flow", "backend", "state", "age s", "idle s", "packets", "replies"],
                        [
                            [
                                c.flow,
                                c.backend,
                                c.state,
                                f"{c.age_s:.1f}",
                                f"{c.idle_s:.1f}",
                                c.packets,
                                c.reply_packets,
                            ]
                            for c in shown
                        ],
                    )
                )
                if len(shown) < len(cs):
                    lines.append(f"... {len(cs) - len(shown)} more (most recently active shown first)")
        return "\n".join(lines)

    def prometheus(self) -> str:
        """Counters in the Prometheus text exposition format (version 0.0.4)."""
        from packetlab.tools.lb.metrics import render

        return render(self)

    def test_run(self, packet: Any, *, repeat: int = 1):
        """Run the attached program on one frame with BPF_PROG_TEST_RUN (maps are the live ones)."""
        from packetlab.ebpf.testrun import prog_test_run

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
        if self.pin_dir is None:
            return
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        path = STATE_DIR / f"{self.name}.json"
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        d = self.state.__dict__.copy()
        tmp.write_text(json.dumps(d, indent=1))
        os.replace(tmp, path)

    def _need_open(self) -> None:
        if self._closed:
            raise PacketlabError(f"load balancer {self.name} is closed", fix="create a new LoadBalancer")
        if getattr(self, "stale", False):
            raise PacketlabError(
                f"load balancer {self.name} is stale: {self._stale_reason}",
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
        from packetlab.ebpf.loader import set_xdp_fd

        self._closed = True
        for d in list(self.state.devs):
            with contextlib.suppress(OSError, PacketlabError):
                if getattr(self, "stale", False):
                    raise OSError("namespace gone")
                if _attached_prog_id(self.namespace, d) == prog_id(self.prog_fd):
                    set_xdp_fd(self.namespace, d, -1, XDP_FLAGS[self.state.xdp_mode], None)
        if unpin and self.pin_dir is not None:
            for n in ["prog", *LB_MAPS]:
                with contextlib.suppress(FileNotFoundError):
                    (self.pin_dir / n).unlink()
            with contextlib.suppress(OSError):
                self.pin_dir.rmdir()
            with contextlib.suppress(FileNotFoundError):
                (STATE_DIR / f"{self.name}.json").unlink()
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
def _bkey(v: VIP, b: Backend) -> str:
    return f"{b.address}:{v.backend_port(b)}"


def _vip_key(v: VIP) -> VipKey:
    return VipKey(addr=be32(v.address), port=be16(v.port), proto=v.proto_number)


def _namespace_of(host: Any) -> tuple[str | None, Any]:
    if host is None:
        return None, None
    if isinstance(host, str):
        return host, None
    return host.namespace, getattr(host, "lab", None)


def _ns_inode(name: str | None) -> int | None:
    return netns.inode(name) if name else None


def _refuse_existing(name: str) -> None:
    path = STATE_DIR / f"{name}.json"
    if path.exists():
        raise PacketlabError(
            f"a load balancer {name!r} is already installed",
            cause=f"{path} exists",
            fix="update it with LoadBalancer.open(...).apply(...) (the CLI does this), "
            "or remove it first with `packetlab lb remove`",
        )


def _attached_prog_id(namespace: str | None, dev: str) -> int | None:
    from packetlab.tools.lb.nexthop import _ip_json

    try:
        info = _ip_json(namespace, ["-d", "link", "show", "dev", dev])[0]
    except (OSError, IndexError):
        return None
    xdp = info.get("xdp") or {}
    prog = xdp.get("prog") or {}
    if "id" in prog:
        return int(prog["id"])
    for att in xdp.get("attached", []):
        if "prog" in att and "id" in att["prog"]:
            return int(att["prog"]["id"])
    return None


@contextlib.contextmanager
def instance_lock(name: str) -> Iterator[None]:
    """Serialise CLI processes that change one pinned instance."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ip_in(addr: str, cidr: str) -> bool:
    return ipaddress.ip_address(addr) in ipaddress.ip_network(cidr, strict=False)
