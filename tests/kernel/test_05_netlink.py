"""Module 05: netlink with pyroute2, in lab namespaces only."""

from __future__ import annotations

import pytest
from pyroute2 import IPRoute

from packetlab.course.m05_python_network_programming import netlink
from packetlab.errors import PacketlabError
from packetlab.topo.rtnl import FALLBACK_TUNNELS


@pytest.fixture(scope="module")
def pair(module_lab):
    """a — b, with a route to 10.99.0.0/16 via b."""
    a, b = module_lab.host("a"), module_lab.host("b")
    module_lab.link(a, b, ip=["10.0.1.1/24", "fd00:1::1/64"], peer_ip="10.0.1.2/24")
    a.add_route("10.99.0.0/16", via="10.0.1.2")
    return module_lab


def test_links_addresses_routes_match_ip(pair):
    a = pair.nodes["a"]
    links = {row["ifname"]: row for row in netlink.links(a)}
    # lo and the lab's veth; tunnel fallback devices too where a tunnel module is loaded (a 6.1 VM run had them)
    assert set(links) - FALLBACK_TUNNELS == {"lo", "eth0"} and links["eth0"]["kind"] == "veth"
    assert links["eth0"]["mac"] == a.mac("eth0")
    addrs = {(r["ifname"], r["address"]) for r in netlink.addresses(a)}
    assert {("eth0", "10.0.1.1/24"), ("eth0", "fd00:1::1/64"), ("lo", "127.0.0.1/8")} <= addrs
    routes = {r["dst"]: r for r in netlink.routes(a)}
    assert routes["10.99.0.0/16"]["gateway"] == "10.0.1.2" and routes["10.99.0.0/16"]["proto"] == "boot"
    assert routes["10.0.1.0/24"]["proto"] == "kernel" and routes["10.0.1.0/24"]["scope"] == "link"
    assert netlink.route_get(a, "10.99.1.1") == {
        "dst": "10.99.1.1",
        "dev": "eth0",
        "gateway": "10.0.1.2",
        "src": "10.0.1.1",
    }
    with pytest.raises(PacketlabError, match="no route"):
        netlink.route_get(a, "192.0.2.1")


def test_veth_between_namespaces_step_by_step(pair):
    a, b = pair.nodes["a"], pair.nodes["b"]
    with netlink.Monitor(b) as mon:
        steps = netlink.veth_between(a, b, "nl0", "nl1", "10.9.0.1/30", "10.9.0.2/30")
        events = mon.events()
    assert [s.request.split()[0] for s in steps] == [
        "RTM_NEWLINK",
        "RTM_NEWLINK",
        "RTM_NEWADDR",
        "RTM_NEWLINK",
        "RTM_NEWADDR",
        "RTM_NEWLINK",
    ]
    assert "RTM_NEWLINK nl1" in events and "RTM_NEWADDR 10.9.0.2/30" in events  # b's kernel told us
    assert a.ping("10.9.0.2").ok
    with IPRoute(netns=a.namespace) as ipr:
        assert ipr.link_lookup(ifname="nl1") == []  # the peer left a's namespace
    with IPRoute() as root:  # and nothing appeared in the host's
        assert root.link_lookup(ifname="nl0") == [] and root.link_lookup(ifname="nl1") == []


def test_failed_step_rolls_the_pair_back(pair):
    a, b = pair.nodes["a"], pair.nodes["b"]
    with pytest.raises(PacketlabError, match="no prefix length"):
        netlink.veth_between(a, b, "nl2", "nl3", "10.8.0.1", "10.8.0.2/30")
    with IPRoute(netns=a.namespace) as ipr:
        assert ipr.link_lookup(ifname="nl2") == []
    with IPRoute(netns=b.namespace) as ipr:
        assert ipr.link_lookup(ifname="nl3") == []
