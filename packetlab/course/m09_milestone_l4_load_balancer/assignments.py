"""Module 09's C assignments in the load balancer, bpf/09-lb.c, for one NAT VIP.

* 09.A1 — the Maglev lookup: the `maglev` region (lb_pick: the flow's hash into the VIP's row of
  the ring). Each new flow must reach the backend the Python twin predicts.
* 09.A2 — the NAT rewrite: the `nat` region (destination address and port to the backend's, both
  checksums updated incrementally, and the nat_rev entry for the way back). The rewritten frame is
  compared byte for byte with the same frame built by scapy with the backend's address and port
  and checksums computed from scratch.

The maps are written by the LB's own encoders (`packetlab.tools.lb.encode`: VIP key and row,
backend entry, pre-filter, the Maglev ring) for one VIP with two backends and no next hop, so the
program rewrites and passes the frame to the kernel (XDP_PASS), as it does for a backend it has no
neighbour entry for.
"""

from __future__ import annotations

from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from packetlab.course.assignments import Assignment, Case
from packetlab.ebpf.loader import LoadedProgram
from packetlab.ebpf.maps import BpfMap

VIP_ADDR, CLIENT = "10.9.100.1", "10.9.1.11"
BACKENDS = {"10.9.2.11:8080": "10.9.2.11", "10.9.2.12:8080": "10.9.2.12"}
CONFIG = {
    "vips": [
        {
            "name": "web",
            "address": VIP_ADDR,
            "port": 80,
            "mode": "nat",
            "table_size": 251,
            "backends": [
                {"name": "b1", "address": "10.9.2.11", "port": 8080},
                {"name": "b2", "address": "10.9.2.12", "port": 8080},
            ],
        }
    ]
}
RESET = ("conns", "nat_rev", "events")  # the flow state; the ring alone has 16 x 65537 slots to clear
SPORTS = (40000, 40001, 40002, 40003, 40004, 40005)


def _vip() -> Any:
    from packetlab.tools.lb import config

    return config.load(CONFIG).vips[0]


def configure_vip(prog: LoadedProgram) -> None:
    """Write one NAT VIP with two healthy backends (slots 0 and 1) the way the LB's control plane does."""
    from packetlab.tools.lb import encode
    from packetlab.tools.lb.config import LBConfig
    from packetlab.tools.lb.layout import LB_MAPS, Settings

    maps = {n: BpfMap(prog[n].map_fd, n, k, v) for n, (k, v) in LB_MAPS.items() if n != "tx_ports"}
    v = _vip()
    slots = {encode.backend_key(v, b): i for i, b in enumerate(v.backends)}
    maps["settings"].update(0, Settings(flags=0))
    for key, slot in slots.items():
        maps["backends"].update(slot, encode.backend_entry(key, up=True, hop=None, redirect=False))
    ring = encode.ring_slots(v, v.backends, slots)
    maps["ring"].update_batch(list(range(len(ring))), ring)  # row 0: keys 0 .. table_size - 1
    maps["vip_meta"].update(0, encode.vip_meta(v, 0))
    maps["vips"].update(encode.vip_key(v), encode.vip_meta(v, 0))
    maps["vip_addrs"].update(encode.be32(v.address), 1)
    for bucket, mark in enumerate(encode.filter_marks(LBConfig(vips=(v,)))):
        if mark:
            maps["addr_filter"].update(bucket, mark)


def predicted_backend(sport: int) -> str:
    """The backend address the Python twin picks for the client's flow from `sport`."""
    from packetlab.tools.lb import encode, maglev

    v = _vip()
    names = [encode.backend_key(v, b) for b in v.backends]
    table = maglev.build_table(names, [b.weight for b in v.backends], v.table_size)
    slot = maglev.flow_hash(CLIENT, VIP_ADDR, sport, 80, "tcp") % v.table_size
    return BACKENDS[names[table[slot]]]


def syn(sport: int) -> Ether:
    return (
        Ether(src="02:00:00:00:09:0b", dst="02:00:00:00:09:fe")
        / IP(src=CLIENT, dst=VIP_ADDR)
        / TCP(sport=sport, dport=80, flags="S", seq=1000)
        / Raw(b"hello")
    )


def rewritten(sport: int) -> Ether:
    """What a correct NAT makes of syn(sport): the backend's address and port, checksums from scratch."""
    out = syn(sport)
    out[IP].dst, out[TCP].dport = predicted_backend(sport), 8080
    del out[IP].chksum, out[TCP].chksum
    return Ether(bytes(out))


def _maglev_cases() -> list[Case]:
    def case(sport: int) -> Case:
        want = predicted_backend(sport)
        return Case(
            f"SYN from {CLIENT}:{sport} to the VIP (Maglev: {want})",
            syn(sport),
            verdict="XDP_PASS",
            output=rewritten(sport),
            prepare=configure_vip,
        )

    return [case(s) for s in SPORTS]


def _nat_rev(sport: int):
    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        from packetlab.tools.lb import encode
        from packetlab.tools.lb.layout import Flow

        rev = BpfMap(prog["nat_rev"].map_fd, "nat_rev", Flow, Flow)
        backend = predicted_backend(sport)
        key = Flow(
            src=encode.be32(backend),
            dst=encode.be32(CLIENT),
            sport=encode.be16(8080),
            dport=encode.be16(sport),
            proto=6,
        )
        if rev.lookup(key) is None:
            return f"a nat_rev entry {backend}:8080 -> {CLIENT}:{sport}", "none"
        return None

    return after


def _nat_cases() -> list[Case]:
    return [
        Case(
            f"SYN from {CLIENT}:{s} to the VIP",
            syn(s),
            verdict="XDP_PASS",
            output=rewritten(s),
            prepare=configure_vip,
            after=_nat_rev(s),
        )
        for s in SPORTS[:3]
    ]


MAGLEV = Assignment(
    key="09.A1",
    title="the Maglev lookup",
    starter="bpf/09-assign-maglev.c",
    solution="bpf/solutions/09-assign-maglev.c",
    skeleton="bpf/09-lb.c",
    region="maglev",
    cases=_maglev_cases,
    reset=RESET,
    try_it="write lb_pick() in bpf/09-assign-maglev.c, delete its TODO marker, then run the check again",
    hint="pos = vip->index * LB_MAX_RING + lb_flow_hash(flow) % vip->ring_size; slot = ring.lookup(&pos); "
    "a slot >= LB_MAX_BACKENDS means no backend",
)

NAT = Assignment(
    key="09.A2",
    title="the NAT rewrite",
    starter="bpf/09-assign-nat.c",
    solution="bpf/solutions/09-assign-nat.c",
    skeleton="bpf/09-lb.c",
    region="nat",
    cases=_nat_cases,
    reset=RESET,
    try_it="write the rewrite in bpf/09-assign-nat.c, delete its TODO markers, then run the check again",
    hint="pl_csum_replace4(&ip->check, ip->daddr, be->addr) before ip->daddr = be->addr; the L4 checksum "
    "covers the address (pseudo-header) and the port; nat_rev key: {be->addr, key.src, be->port, key.sport, l4}",
)

ASSIGNMENTS = (MAGLEV, NAT)
