"""Module 02: longest-prefix match in Python against the kernel's FIB, the rewrite table, the
whoami service, and every exercise check (right answers pass, wrong ones say why)."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from packetlab import Lab
from packetlab.topo import netns
from packetlab.course.grading import CheckFailed
from packetlab.course.m02_nat_and_routing.exercises import (CLIENT2, LPM_DESTINATIONS, ROUTER_DMZ, SERVER, UPSTREAM_WAN1, check_client_reaches_server, check_lpm, check_port_forward, check_source_prediction)
from packetlab.course.m02_nat_and_routing.routing import (describe_route, longest_prefix_match, route_decision, route_prefix, routes)
from packetlab.course.m02_nat_and_routing.topology import (CLIENT, INTERNET, ROUTER_WAN1, ROUTER_WAN2, add_overlapping_routes, build_topology, remove_overlapping_routes, rewrite_table, tcp_rows)
from packetlab.course.m02_nat_and_routing.whoami import start_whoami, whoami

TABLE = [
    {"dst": "default", "gateway": "198.51.100.100", "dev": "eth2"},
    {"dst": "10.0.0.0/8", "gateway": "198.51.100.100", "dev": "eth2"},
    {"dst": "10.0.2.0/24", "dev": "eth1"},
    {"dst": "10.0.2.128/25", "gateway": "192.0.2.100", "dev": "eth3"},
    {"dst": "10.0.2.200", "type": "blackhole"},
    {"dst": "10.0.3.0/24", "gateway": "192.0.2.100", "dev": "eth3", "metric": 100},
    {"dst": "10.0.3.0/24", "gateway": "198.51.100.100", "dev": "eth2", "metric": 10},
]


@pytest.mark.parametrize("dst,want", [
    ("10.0.2.10", "10.0.2.0/24 dev eth1"),
    ("10.0.2.130", "10.0.2.128/25 via 192.0.2.100 dev eth3"),
    ("10.0.2.200", "blackhole 10.0.2.200"),
    ("10.9.9.9", "10.0.0.0/8 via 198.51.100.100 dev eth2"),
    ("10.0.3.1", "10.0.3.0/24 via 198.51.100.100 dev eth2"),      # equal prefixes: lowest metric
    ("8.8.8.8", "default via 198.51.100.100 dev eth2"),
])
def test_longest_prefix_match(dst, want):
    assert describe_route(longest_prefix_match(TABLE, dst)) == want


def test_route_prefix_and_no_route():
    assert str(route_prefix({"dst": "default"})) == "0.0.0.0/0"
    assert str(route_prefix({"dst": "10.0.2.200"})) == "10.0.2.200/32"
    assert longest_prefix_match(TABLE[1:], "192.168.1.1") is None
    assert describe_route(None) == "(no route)"


def test_rewrite_table_pairs_packets_side_by_side():
    lan = [Ether() / IP(src=CLIENT, dst=INTERNET) / TCP(sport=40000, dport=8000, flags="S"),
           Ether() / IP(src=INTERNET, dst=CLIENT) / TCP(sport=8000, dport=40000, flags="SA")]
    wan = [Ether() / IP(src=ROUTER_WAN1, dst=INTERNET) / TCP(sport=40000, dport=8000, flags="S")]
    assert tcp_rows(lan)[1] == ("SA", f"{INTERNET}:8000 > {CLIENT}:40000")
    text = rewrite_table(lan, wan, "LAN", "WAN")
    lines = text.splitlines()
    assert "LAN" in lines[0] and "WAN" in lines[0]
    assert f"{ROUTER_WAN1}:40000" in lines[2] and lines[3].rstrip().endswith("-")


@pytest.fixture(scope="module")
def topo():
    lab = Lab("t02a").start()
    try:
        yield build_topology(lab)
    finally:
        lab.close()
        assert not any(netns.exists(f"t02a-{n}") for n in ("client", "router", "server", "upstream"))


def test_exercise_1_fails_with_the_missing_hop_then_passes(topo):
    with pytest.raises(CheckFailed, match="ip_forward is 0"):
        check_client_reaches_server(topo)
    topo.router.sysctl("net.ipv4.ip_forward", 1)
    with pytest.raises(CheckFailed, match="no route back"):
        check_client_reaches_server(topo)
    topo.server.add_route("default", via=ROUTER_DMZ)
    assert check_client_reaches_server(topo)


def test_route_decision_reads_the_kernel(topo):
    d = route_decision(topo.client, SERVER)
    assert d.kind == "unicast" and d.via == "10.0.1.1" and d.dev == "eth0" and d.matched.startswith("default")
    assert route_decision(topo.router, "10.0.1.1").kind == "local"


def test_exercise_2_lpm_agrees_with_fibmatch(topo):
    add_overlapping_routes(topo.router)
    try:
        table = routes(topo.router)
        for dst in (*LPM_DESTINATIONS, "10.0.2.201", "10.0.2.202"):
            kernel, ours = route_decision(topo.router, dst), longest_prefix_match(table, dst)
            if kernel.kind in ("blackhole", "unreachable", "prohibit"):
                assert ours["type"] == kernel.kind
            else:
                assert kernel.matched.split()[0] == (ours["dst"] if "/" in ours["dst"] or ours["dst"] == "default"
                                                     else ours["dst"] + "/32")
        right = {"10.0.2.10": "10.0.2.0/24", "10.0.2.130": "10.0.2.128/25", "10.0.3.5": "10.0.0.0/8",
                 "10.0.2.200": "blackhole", "203.0.113.1": "default"}
        assert check_lpm(topo, right)
        assert check_lpm(topo, {**right, "10.0.2.200": "10.0.2.200/32", "203.0.113.1": "0.0.0.0/0"})
        with pytest.raises(CheckFailed, match="10.0.2.130: you said '10.0.2.0/24'"):
            check_lpm(topo, {**right, "10.0.2.130": "10.0.2.0/24"})
        with pytest.raises(CheckFailed, match="dict"):
            check_lpm(topo, None)
    finally:
        remove_overlapping_routes(topo.router)


NAT = """table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname { "eth2", "eth3" } masquerade
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "eth2" tcp dport 8080 dnat to 10.0.2.10:80
  }
}
"""

PORTFWD = """table ip portfwd {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname "eth2" tcp dport 8443 dnat to 10.0.2.10:443
  }
}
"""


def test_nat_port_forward_and_source_predictions(topo):
    topo.router.sysctl("net.ipv4.ip_forward", 1)
    if route_decision(topo.server, CLIENT).kind != "unicast":
        topo.server.add_route("default", via=ROUTER_DMZ)
    topo.router.run(["ip", "route", "replace", "default", "via", "192.0.2.100", "table", "100"], check=True)
    topo.router.run(["ip", "rule", "add", "from", CLIENT2, "lookup", "100", "priority", "100"], check=True)
    start_whoami(topo.upstream, 8000)
    start_whoami(topo.server, 80)
    start_whoami(topo.server, 443)
    assert whoami(topo.client, INTERNET, 8000, timeout=1) is None      # no NAT: the upstream cannot answer
    topo.router.nft(NAT)
    seen = whoami(topo.client, INTERNET, 8000)
    assert seen.server == f"{INTERNET}:8000" and seen.seen_ip == ROUTER_WAN1

    with pytest.raises(CheckFailed, match="nft rejects"):
        check_port_forward(topo, "table ip portfwd { chain prerouting { dnat to } }")
    with pytest.raises(CheckFailed, match="no DNAT rule"):
        check_port_forward(topo, PORTFWD.replace("8443", "9443"))
    with pytest.raises(CheckFailed, match="answered by 10.0.2.10:80"):
        check_port_forward(topo, PORTFWD.replace("10.0.2.10:443", "10.0.2.10:80").replace("table ip portfwd",
                                                                                         "table ip portfwd2"))
    topo.router.run(["nft", "delete", "table", "ip", "portfwd2"])
    topo.router.run(["nft", "delete", "table", "ip", "portfwd"])
    assert check_port_forward(topo, PORTFWD)

    right = {"server_sees_via_port_forward": UPSTREAM_WAN1, "upstream_sees_client": ROUTER_WAN1,
             "upstream_sees_client2": ROUTER_WAN2}
    assert check_source_prediction(topo, right)
    with pytest.raises(CheckFailed, match="upstream_sees_client2: you predicted"):
        check_source_prediction(topo, {**right, "upstream_sees_client2": ROUTER_WAN1})
    with pytest.raises(CheckFailed, match="no prediction"):
        check_source_prediction(topo, {"upstream_sees_client": ROUTER_WAN1})
