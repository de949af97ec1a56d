"""Module 04's lab topology and the probes its notebook and checks run against it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from packetlab.course.m02_nat_and_routing.topology import wait_links_up
from packetlab.course.m02_nat_and_routing.whoami import start_whoami, whoami
from packetlab.topo.netfilter import TraceSession, annotate_hooks, base_chains, delete_table

CLIENTS = ("10.0.1.10", "10.0.1.11", "10.0.1.12")
SERVER = "10.0.2.10"
ROUTER_LAN, ROUTER_DMZ = "10.0.1.1", "10.0.2.1"
SERVER_PORTS = (22, 80, 443)


@dataclass
class FwTopology:
    lab: Any
    client: Any
    router: Any
    server: Any


def build_topology(lab: Any) -> FwTopology:
    client, router, server = lab.host("client"), lab.router("router"), lab.host("server")
    lab.link(client, router, ip=[f"{a}/24" for a in CLIENTS], peer_ip=f"{ROUTER_LAN}/24")
    lab.link(server, router, ip=f"{SERVER}/24", peer_ip=f"{ROUTER_DMZ}/24")
    client.add_route("default", via=ROUTER_LAN)
    server.add_route("default", via=ROUTER_DMZ)
    wait_links_up(client, router, server)
    for port in SERVER_PORTS:
        start_whoami(server, port)
    return FwTopology(lab, client, router, server)


def reachability(
    topo: FwTopology, sources: tuple[str, ...] = CLIENTS, ports: tuple[int, ...] = SERVER_PORTS, timeout: float = 0.5
) -> dict[tuple[str, int], bool]:
    """Try a real TCP connection from each client address to each server port."""
    return {
        (src, port): whoami(topo.client, SERVER, port, source=src, timeout=timeout) is not None
        for src in sources
        for port in ports
    }


def reachability_table(result: dict[tuple[str, int], bool]) -> str:
    from packetlab.show.tables import format_table

    sources = sorted({s for s, _ in result})
    ports = sorted({p for _, p in result})
    rows = [[src] + ["open" if result[(src, p)] else "-" for p in ports] for src in sources]
    return format_table(["client address"] + [f"port {p}" for p in ports], rows)


# ---- hooks and tracing -----------------------------------------------------------------------

#: one base chain per hook (and several on prerouting and forward) so a trace shows the order.
#: The `ct state` rule switches connection tracking on in the namespace: without it the
#: nat chains would never run (they only see packets conntrack tracks, first packets only).
HOOKS_DEMO = """table inet demo {
  chain pre_raw     { type filter hook prerouting priority raw; icmp type echo-request meta nftrace set 1; }
  chain pre_nat     { type nat hook prerouting priority dstnat; }
  chain pre_filter  { type filter hook prerouting priority filter; ct state new counter; }
  chain in_filter   { type filter hook input priority filter; }
  chain fwd_early   { type filter hook forward priority -50; }
  chain fwd_late    { type filter hook forward priority 50; }
  chain out_raw     { type filter hook output priority raw; icmp type echo-request meta nftrace set 1; }
  chain out_filter  { type filter hook output priority filter; }
  chain post_nat    { type nat hook postrouting priority srcnat; }
  chain post_late   { type filter hook postrouting priority 300; }
}
"""


def load_hooks_demo(topo: FwTopology) -> None:
    """The demo chains, plus one rule through iptables (nf_tables backend) in FORWARD."""
    delete_table(topo.router, "inet", "demo")
    topo.router.nft(HOOKS_DEMO)
    topo.router.run(["iptables", "-w", "-A", "FORWARD", "-p", "icmp", "-j", "ACCEPT"], check=True)


def trace_ping(topo: FwTopology, src_host: Any, dst: str) -> list:
    """Ping once under ``nft monitor trace`` on the router; the hops of the echo request.

    The monitor needs a moment to subscribe; on a busy machine the first ping can
    pass before it listens, so up to three attempts are made."""
    for attempt in range(3):
        with TraceSession(topo.router, settle=0.3 * (attempt + 1)) as trace:
            src_host.ping(dst, count=1, timeout=1)
        paths = trace.paths()
        annotate_hooks(paths, base_chains(topo.router))
        requests = [
            hops
            for hops in paths.values()  # complete paths only: from the marking rule on
            if hops and "echo-request" in hops[0].packet and "nftrace" in " ".join(hops[0].rules)
        ]
        if requests:
            return requests[0]
    return []


def rule_body(text: str) -> str:
    """The match-and-action part of an nft rule: drops ``nft``, ``add rule <family> <table> <chain>``."""
    text = text.strip().strip("'\"")
    text = re.sub(r"^nft\s+", "", text)
    text = re.sub(r"^(add|insert)\s+rule\s+\S+\s+\S+\s+\S+\s+", "", text)
    return text.strip()


# ---- sets, verdict maps and rate limits -------------------------------------------------------------


def ping_flood(topo: FwTopology, count: int = 100, interval: float = 0.005) -> int:
    """Echo replies the client gets back for `count` pings sent every `interval` seconds."""
    return topo.client.ping(SERVER, count=count, interval=interval, timeout=1).received
