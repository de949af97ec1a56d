"""Prometheus text exposition (format 0.0.4) of the load balancer's counters.

Counters come from the per-CPU maps (summed), gauges from the control plane
(health, weight, table share) and from the connection table (flows by state).
A scraper can read ``packetlab lb status --prometheus`` or the HTTP endpoint
``packetlab lb health --metrics-port PORT`` serves.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from packetlab.show.prometheus import MetricFamily, exposition

if TYPE_CHECKING:
    from packetlab.tools.lb.balancer import LoadBalancer

PREFIX = "packetlab_lb"


def render(lb: LoadBalancer) -> str:
    st = lb.stats()
    families: list[MetricFamily] = []

    def family(name: str, kind: str, help_: str, samples: list[tuple[dict[str, object], float]]) -> None:
        families.append(MetricFamily(f"{PREFIX}_{name}", kind, help_, samples))

    vl: dict[object, dict[str, object]] = {
        vs.vip.key: dict(
            vip=vs.vip.label, address=vs.vip.address, port=vs.vip.port, protocol=vs.vip.protocol, mode=vs.vip.mode
        )
        for vs in st.vips
    }
    for field, help_ in (
        ("packets", "Packets from clients to the VIP."),
        ("bytes", "Bytes from clients to the VIP."),
        ("conns", "Connections (new flows) balanced by the VIP."),
        ("reply_packets", "Reply packets rewritten back to the VIP (NAT mode)."),
        ("reply_bytes", "Reply bytes rewritten back to the VIP (NAT mode)."),
    ):
        name = "vip_connections_total" if field == "conns" else f"vip_{field}_total"
        family(name, "counter", help_, [(vl[vs.vip.key], getattr(vs.counters, field)) for vs in st.vips])
    rows = [(vs, b) for vs in st.vips for b in vs.backends]

    def bl(vs, b) -> dict[str, object]:
        return dict(vip=vs.vip.label, backend=b.label, address=b.address, port=b.port)

    for field, help_ in (
        ("packets", "Packets forwarded to the backend for this VIP."),
        ("bytes", "Bytes forwarded to the backend."),
        ("conns", "Connections assigned to the backend."),
        ("reply_packets", "Reply packets from the backend through the LB (NAT mode)."),
        ("reply_bytes", "Reply bytes from the backend through the LB (NAT mode)."),
    ):
        name = "backend_connections_total" if field == "conns" else f"backend_{field}_total"
        family(name, "counter", help_, [(bl(vs, b), getattr(b.counters, field)) for vs, b in rows])
    family(
        "backend_up", "gauge", "1 if the backend passes its health checks.", [(bl(vs, b), int(b.up)) for vs, b in rows]
    )
    family(
        "backend_draining",
        "gauge",
        "1 if the backend is draining (no new flows).",
        [(bl(vs, b), int(b.drain)) for vs, b in rows],
    )
    family("backend_weight", "gauge", "Configured Maglev weight.", [(bl(vs, b), b.weight) for vs, b in rows])
    family(
        "backend_table_share",
        "gauge",
        "Share of the VIP's Maglev table the backend owns.",
        [(bl(vs, b), round(b.in_table, 6)) for vs, b in rows],
    )
    family(
        "events_total",
        "counter",
        "Data-plane events of the XDP program (verdict reasons).",
        [({"event": k}, v) for k, v in st.events.items()],
    )
    states = Counter(c.state for c in lb.connections())
    family(
        "connections",
        "gauge",
        "Flows in the XDP connection table, by state.",
        [({"state": s}, n) for s, n in sorted(states.items())],
    )
    return exposition(families)
