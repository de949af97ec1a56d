"""Reading a load balancer back: its counters, its connection table, and the report `status` prints.

Counters come from the per-CPU `stats` and `events` maps (summed over CPUs),
health and next hops from the control plane's memory. `metrics.py` renders the
same `LBStats` in the Prometheus text format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.ebpf.maps import percpu_sum
from packetlab.errors import PacketlabError
from packetlab.show.tables import format_table
from packetlab.tools.lb.config import MAX_BACKENDS, VIP
from packetlab.tools.lb.encode import backend_key, usable_backends
from packetlab.tools.lb.flows import Connection, decode_connection, jiffies_now, monotonic_ns
from packetlab.tools.lb.health import BackendHealth
from packetlab.tools.lb.layout import EVENTS, Counters

if TYPE_CHECKING:
    from packetlab.tools.lb.balancer import LoadBalancer


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
        c = cls()
        for v in values or []:
            c.packets += v.packets
            c.bytes += v.bytes
            c.conns += v.conns
            c.reply_packets += v.reply_packets
            c.reply_bytes += v.reply_bytes
        return c


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


def read_stats(lb: LoadBalancer) -> LBStats:
    """Per-VIP and per-backend counters (summed over CPUs) and the program's event counters."""
    vips = []
    for v in lb.config.vips:
        row = lb.state.vip_index[v.key]
        bstats = []
        shares = _weight_shares(lb, v)
        vip_total = CounterSet()
        for b in v.backends:
            k = backend_key(v, b)
            slot = lb.state.slots[k]
            counters = CounterSet.from_percpu(lb.maps["stats"].lookup(row * MAX_BACKENDS + slot))
            vip_total.add(counters)
            h = lb.health.get(k, BackendHealth(up=k not in lb.state.down))
            hop = lb.nexthops.get(k)
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
        for c in _retired_counters(lb, row, v):  # flows of removed backends still count
            vip_total.add(c)
        vips.append(VipStatus(v, row, vip_total, bstats))
    ev = {name: percpu_sum(lb.maps["events"].lookup(i) or []) for i, name in enumerate(EVENTS)}
    return LBStats(vips, ev)


def _retired_counters(lb: LoadBalancer, row: int, v: VIP) -> list[CounterSet]:
    mine = {lb.state.slots[backend_key(v, b)] for b in v.backends}
    out = []
    for s in set(lb.state.slots.values()) | set(lb.state.retired):
        if s not in mine:
            c = CounterSet.from_percpu(lb.maps["stats"].lookup(row * MAX_BACKENDS + s))
            if c.packets or c.reply_packets:
                out.append(c)
    return out


def _weight_shares(lb: LoadBalancer, v: VIP) -> dict[str, float]:
    """Each usable backend's expected share of the table (its weight over the total)."""
    usable = usable_backends(v, lb.health)
    total = sum(b.weight for b in usable)
    return {backend_key(v, b): b.weight / total for b in usable} if usable else {}


def labels_by_slot(lb: LoadBalancer, v: VIP) -> dict[int, str]:
    """{backend slot: backend label} for one VIP's current backends."""
    slots = lb.state.slots
    return {slots[backend_key(v, b)]: b.label for b in v.backends if backend_key(v, b) in slots}


def read_connections(lb: LoadBalancer, vip: str | None = None) -> list[Connection]:
    """The XDP connection table, decoded (optionally only one VIP's flows)."""
    now, jnow = monotonic_ns(), jiffies_now()
    current = set(lb.state.slots.values())
    labels = {int(s): f"{name} (removed)" for s, name in lb.state.labels.items() if int(s) not in current}
    for v in lb.config.vips:
        labels.update(labels_by_slot(lb, v))
    only = lb.config.vip(vip) if vip else None
    out = []
    for k, c in lb.maps["conns"].items():
        conn = decode_connection(k, c, labels.get(c.backend, f"slot {c.backend}"), now, jnow)
        if only is None or (conn.vip == only.address and conn.vip_port == only.port):
            out.append(conn)
    out.sort(key=lambda c: (c.vip, c.vip_port, c.client, c.client_port))
    return out


BACKEND_COLUMNS = ["backend", "address", "weight", "state", "table", "packets", "bytes", "conns", "replies", "next hop"]
FLOW_COLUMNS = ["flow", "backend", "state", "age s", "idle s", "packets", "replies"]


def format_status(lb: LoadBalancer, st: LBStats, conns: list[Connection] | None = None, limit: int = 40) -> str:
    """A readable report: VIPs, backends with health, table share and counters; events; flows."""
    where = f"{lb.namespace or 'root namespace'}: {','.join(lb.state.devs) or '(detached)'}"
    lines = [
        f"load balancer {lb.name} — XDP {lb.state.xdp_mode} on {where}"
        + (f", pinned at {lb.pin_dir}" if lb.pin_dir else "")
    ]
    for vs in st.vips:
        v, c = vs.vip, vs.counters
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
        lines.append(format_table(BACKEND_COLUMNS, rows))
    lines.append("")
    lines.append("events: " + (", ".join(f"{k}={v}" for k, v in st.events.items() if v) or "none"))
    if conns is not None:
        lines.append("")
        lines.append(f"connection table: {len(conns)} flows")
        if conns:
            shown = sorted(conns, key=lambda c: c.idle_s)[:limit] if limit else conns
            rows = [
                [c.flow, c.backend, c.state, f"{c.age_s:.1f}", f"{c.idle_s:.1f}", c.packets, c.reply_packets]
                for c in shown
            ]
            lines.append(format_table(FLOW_COLUMNS, rows))
            if len(shown) < len(conns):
                lines.append(f"... {len(conns) - len(shown)} more (most recently active shown first)")
    return "\n".join(lines)
