"""Module 09's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SurvivalExercise:
    """A live connection that Maglev alone would move when `new_backend` joins."""

    lb: Any
    topo: Any
    connection: Any
    home: str
    moves_to: str
    config: dict
    new_backend: dict
    notes: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        c = self.connection
        return (
            f"connection {self.topo.clients[1].name} :{c.source_port} -> {c.address}:{c.port} is served by "
            f"{self.home}.\nThe change to make: add backend {self.new_backend['name']} "
            f"({self.new_backend['address']}).\nWith Maglev alone this flow would then hash to "
            f"{self.moves_to}, a server that knows nothing of this connection."
        )


def survival_exercise(lb, topo, *, vip: str = "web") -> SurvivalExercise:
    """Set up exercise 3: a non-sticky VIP with b1, b2 and a connection that b3's arrival would move."""
    from packetlab.course.m09_milestone_l4_load_balancer.topology import VIP, HttpConnection
    from packetlab.tools.lb import maglev

    entries = topo.backend_entries(port=80)
    base = {
        "vips": [
            {
                "name": vip,
                "address": VIP,
                "port": 80,
                "mode": "nat",
                "sticky": False,
                "table_size": 65537,
                "health": {"type": "none"},
                "backends": entries[:2],
            }
        ]
    }
    lb.apply(base)
    after = [f"{e['address']}:80" for e in entries[:3]]
    before = after[:2]
    t_before = maglev.build_table(before, size=65537)
    t_after = maglev.build_table(after, size=65537)
    client = topo.client_ip(1)
    for port in range(42000, 43000):
        slot = maglev.flow_hash(client, VIP, port, 80, "tcp") % 65537
        if t_before[slot] != t_after[slot]:
            break
    conn = HttpConnection(topo.clients[1], VIP, 80, source_port=port)
    home = conn.get()
    moves_to = entries[t_after[slot]]["name"]
    return SurvivalExercise(lb, topo, conn, home, moves_to, copy.deepcopy(base), dict(entries[2]))
