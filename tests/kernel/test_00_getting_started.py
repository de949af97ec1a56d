"""Module 00 · getting started: a first topology appears and disappears, the first XDP
program counts, and every exercise check accepts the right answer and explains a wrong one."""

from __future__ import annotations

import subprocess

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether

from packetlab import Lab
from packetlab.course.grading import CheckFailed
from packetlab.course.m00_getting_started.exercises import check_route_choice, check_third_host, check_veth_peer
from packetlab.course.m00_getting_started.helpers import lab_namespaces, route_choice, veth_peer
from packetlab.doctor import format_report, run_checks
from packetlab.ebpf.loader import LoadedProgram
from packetlab.topo import netns


def _root_addresses() -> str:
    return subprocess.run(["ip", "-br", "addr"], capture_output=True, text=True, check=True).stdout


def test_two_hosts_appear_in_ip_netns_and_vanish_on_close():
    lab = Lab("t00a").start()
    try:
        assert lab_namespaces(lab) == []
        h1, h2 = lab.host("h1"), lab.host("h2")
        assert lab_namespaces(lab) == ["t00a-h1", "t00a-h2"]
        assert h1.ip("-br link").split()[0] == "lo"  # a fresh namespace: loopback only
        lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
        assert "10.0.0.0/24 dev eth0 proto kernel scope link src 10.0.0.1" in h1.ip("route")
        assert h1.ping("10.0.0.2", count=3, interval=0.05).received == 3
        assert "10.0.0.1" not in _root_addresses()  # the host's own stack is untouched
        assert "link-netns t00a-h2" in h1.ip("-d link show eth0")
    finally:
        lab.close()
    assert lab_namespaces(lab) == [] and not netns.exists("t00a-h1") and not netns.exists("t00a-h2")
    assert lab.close() == []  # closing twice is harmless


def test_xdp_pass_counts_frames_live_and_in_test_runs(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    with h2.attach_xdp("bpf/00-xdp-pass.c", dev="eth0") as xdp:
        assert "prog/xdp" in h2.ip("link show eth0")
        before = xdp.table("frames")[0]
        assert h1.ping("10.0.0.2", count=5, interval=0.02).received == 5
        assert xdp.table("frames")[0] - before >= 5
    assert "prog/xdp" not in h2.ip("link show eth0")
    prog = LoadedProgram("bpf/00-xdp-pass.c")
    try:
        result = prog.test_run(Ether() / IP() / ICMP(), repeat=4)
        assert result.verdict == "XDP_PASS" and prog.table("frames")[0] == 4
    finally:
        prog.close()


def test_doctor_table_names_every_check():
    checks = run_checks(live=False)
    table = format_report(checks)
    assert all(c.name in table for c in checks)
    assert table.splitlines()[-1] in ("everything the labs need is here",) or "missing" in table.splitlines()[-1]


@pytest.fixture(scope="module")
def pair(module_lab):
    """h1 — h2 — sw, shared by the veth-peer tests (they only read it)."""
    h1, h2, sw = module_lab.host("h1"), module_lab.host("h2"), module_lab.switch("sw")
    module_lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    module_lab.link(h2, sw, ip="10.0.7.2/24")
    return module_lab


def test_veth_peer_is_found_by_interface_index(pair):
    h1, h2, ns = pair.nodes["h1"], pair.nodes["h2"], pair.name
    assert veth_peer(h1, "eth0") == (f"{ns}-h2", "eth0")
    assert veth_peer(h2, "eth0") == (f"{ns}-h1", "eth0")
    assert veth_peer(h2, "eth1") == (f"{ns}-sw", "h2-eth1")  # a switch port is named after its peer


def test_check_veth_peer(pair):
    h1, ns = pair.nodes["h1"], pair.name
    assert check_veth_peer((f"{ns}-h2", "eth0"), h1)
    assert check_veth_peer([f"{ns}-h2", " eth0 "], h1)
    for answer, message in [
        (None, "no answer yet"),
        (f"{ns}-h2", "should be a pair"),
        ((f"{ns}-h1", "eth0"), "own namespace"),
        (("h2", "eth0"), "namespaces are called"),
        ((f"{ns}-sw", "eth0"), "not in namespace"),
        ((f"{ns}-h2", "eth1"), "right namespace"),
    ]:
        with pytest.raises(CheckFailed, match=message):
            check_veth_peer(answer, h1)
    with pytest.raises(CheckFailed, match="no interface 'eth9'"):
        check_veth_peer((f"{ns}-h2", "eth0"), h1, "eth9")


def test_check_third_host_walks_through_each_missing_step(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    with pytest.raises(CheckFailed, match="no node called 'h3'"):
        check_third_host(lab)
    h3 = lab.host("h3")
    with pytest.raises(CheckFailed, match="no IPv4 address"):
        check_third_host(lab)
    lab.link(h2, h3, ip="10.0.5.2/24", peer_ip="10.0.5.3/24")  # reachable from h2, not from h1
    with pytest.raises(CheckFailed, match="no route to 10.0.5.3"):
        check_third_host(lab)
    h1.add_route("10.0.5.0/24", via="10.0.0.2")  # a route, but h2 does not forward
    with pytest.raises(CheckFailed, match="no reply comes back"):
        check_third_host(lab)
    lab.link(h1, h3, ip="10.0.3.1/24", peer_ip="10.0.3.3/24")
    assert check_third_host(lab)
    assert route_choice(h1, "10.0.3.3") == ("eth1", "10.0.3.1")
    assert check_route_choice(("eth1", "10.0.3.1"), h1, "10.0.3.3")
    assert check_route_choice(("eth1", "10.0.3.1/24"), h1, "10.0.3.3")
    for answer, message in [
        (None, "no answer yet"),
        ("eth1", "should be a pair"),
        (("eth0", "10.0.0.1"), "not send packets for 10.0.3.3 out of eth0"),
        (("eth1", "10.0.0.1"), "right interface"),
    ]:
        with pytest.raises(CheckFailed, match=message):
            check_route_choice(answer, h1, "10.0.3.3")
