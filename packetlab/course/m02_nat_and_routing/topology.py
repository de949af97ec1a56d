"""Module 02's lab topology (every address is the lab's own, inside its namespaces)::

    client ──── router ──── server
      10.0.1.10   │  10.0.2.10
      10.0.1.11   │
            wan1  │  wan2
   198.51.100.0/24│  192.0.2.0/24
               upstream   (holds 203.0.113.1, "the internet", on its loopback)

The upstream knows nothing about 10.0.0.0/8, like a provider: a client reaches
it only through NAT. Also the capture views the lab prints (TCP rows, rewrite tables).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CLIENT, CLIENT2, SERVER = "10.0.1.10", "10.0.1.11", "10.0.2.10"
ROUTER_LAN, ROUTER_DMZ = "10.0.1.1", "10.0.2.1"
ROUTER_WAN1, UPSTREAM_WAN1 = "198.51.100.1", "198.51.100.100"
ROUTER_WAN2, UPSTREAM_WAN2 = "192.0.2.1", "192.0.2.100"
INTERNET = "203.0.113.1"


@dataclass
class NatTopology:
    """The four hosts of the module 02 lab (router interfaces: eth0 LAN, eth1 DMZ, eth2 wan1, eth3 wan2)."""

    lab: Any
    client: Any
    router: Any
    server: Any
    upstream: Any


def build_topology(lab: Any, *, forwarding: bool = False, server_default_route: bool = False) -> NatTopology:
    """Build client — router — server plus the upstream with two links to the router.

    The router starts with forwarding OFF and the server without a default
    route, so the first exercise has something to fix; pass True to skip that.
    """
    client, router, server, upstream = (lab.host(n) for n in ("client", "router", "server", "upstream"))
    lab.link(client, router, ip=[f"{CLIENT}/24", f"{CLIENT2}/24"], peer_ip=f"{ROUTER_LAN}/24")
    lab.link(server, router, ip=f"{SERVER}/24", peer_ip=f"{ROUTER_DMZ}/24")
    lab.link(upstream, router, ip=f"{UPSTREAM_WAN1}/24", peer_ip=f"{ROUTER_WAN1}/24")
    lab.link(upstream, router, ip=f"{UPSTREAM_WAN2}/24", peer_ip=f"{ROUTER_WAN2}/24")
    upstream.run(["ip", "addr", "add", f"{INTERNET}/32", "dev", "lo"], check=True)
    client.add_route("default", via=ROUTER_LAN)
    router.add_route("default", via=UPSTREAM_WAN1)
    if server_default_route:
        server.add_route("default", via=ROUTER_DMZ)
    router.sysctl("net.ipv4.ip_forward", 1 if forwarding else 0)
    wait_links_up(client, router, server, upstream)
    return NatTopology(lab, client, router, server, upstream)


def wait_links_up(*hosts: Any, timeout: float = 3.0) -> None:
    """Wait until every veth of `hosts` reports operstate UP.

    The kernel applies a new link's carrier state lazily (the link watcher runs up
    to a second later), so a table printed right after building shows DOWN for a
    moment; waiting keeps the first observations of a lab clean.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [
            link.get("operstate")
            for h in hosts
            for link in json.loads(h.run(["ip", "-j", "link", "show", "type", "veth"]).stdout or "[]")
        ]
        if all(state == "UP" for state in states):
            return
        time.sleep(0.05)


#: the overlapping routes part 3 adds to the router (and the exercise predicts)
OVERLAPPING_ROUTES = (
    "10.0.0.0/8 via 198.51.100.100",  # a summary: "all of 10/8 is upstream"
    "10.0.2.128/25 via 192.0.2.100",  # more specific than the connected 10.0.2.0/24
    "blackhole 10.0.2.200/32",  # silently dropped
    "unreachable 10.0.2.201/32",  # dropped, ICMP host unreachable to the sender
    "prohibit 10.0.2.202/32",  # dropped, ICMP administratively prohibited
)


def add_overlapping_routes(router: Any) -> None:
    for spec in OVERLAPPING_ROUTES:
        router.run(["ip", "route", "replace", *spec.split()], check=True)


def remove_overlapping_routes(router: Any) -> None:
    for spec in OVERLAPPING_ROUTES:
        router.run(["ip", "route", "del", *spec.split()])


# ---- showing a rewrite ----------------------------------------------------------------------


def tcp_rows(frames: Sequence[Any]) -> list[tuple[str, str]]:
    """(flags, "src:sport > dst:dport") for each TCP frame, in capture order."""
    from scapy.layers.inet import IP, TCP

    rows = []
    for f in frames:
        if IP in f and TCP in f:
            rows.append((str(f[TCP].flags), f"{f[IP].src}:{f[TCP].sport} > {f[IP].dst}:{f[TCP].dport}"))
    return rows


def rewrite_table(left: Sequence[Any], right: Sequence[Any], left_label: str, right_label: str, limit: int = 6) -> str:
    """The same TCP packets as captured on two router interfaces, side by side."""
    from packetlab.show.tables import format_table

    a, b = tcp_rows(left), tcp_rows(right)
    rows = []
    for i in range(min(max(len(a), len(b)), limit)):
        flags = (a[i] if i < len(a) else b[i])[0]
        rows.append((i + 1, flags, a[i][1] if i < len(a) else "-", b[i][1] if i < len(b) else "-"))
    return format_table(["#", "flags", left_label, right_label], rows)
