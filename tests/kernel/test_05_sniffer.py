"""Module 05: the AF_PACKET sniffer on real lab traffic, checked frame by frame against scapy."""

from __future__ import annotations

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from packetlab.course.m05_python_network_programming import clients
from packetlab.course.m05_python_network_programming.crosscheck import compare_many
from packetlab.course.m05_python_network_programming.sniffer import Sniffer
from packetlab.proto.decode import decode
from packetlab.topo import servers as launch


@pytest.fixture(scope="module")
def pair(module_lab):
    """a — b."""
    a, b = module_lab.host("a"), module_lab.host("b")
    module_lab.link(a, b, ip="10.0.1.1/24", peer_ip="10.0.1.2/24")
    return module_lab


def test_sniffer_sees_real_traffic_both_ways_and_decodes_like_scapy(pair):
    a, b = pair.nodes["a"], pair.nodes["b"]
    tcp = launch.start(b, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--port", 7000))
    udp = launch.start(
        b, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--udp", "--port", 7001)
    )
    with Sniffer(b, "eth0") as cap:
        a.ping("10.0.1.2", count=2, interval=0.01)
        clients.udp_exchange(a, "10.0.1.2", 7001, b"datagram")
        clients.tcp_exchange(a, "10.0.1.2", 7000, b"x" * 3000)
        cap.wait(12)
    assert tcp.stop() == 0 and udp.stop() == 0
    frames = cap.frames
    decoded = [decode(f.data) for f in frames]
    layers = {" ".join(d.layers) for d in decoded}
    assert {"ethernet ipv4 tcp", "ethernet ipv4 udp", "ethernet ipv4"} <= layers
    assert {f.direction for f in frames} == {"in", "out"}
    agree, problems = compare_many([f.data for f in frames])
    assert problems == [] and agree == len(frames)
    syns = [d for d in decoded if d.l4 is not None and getattr(d.l4, "flag_str", "") == "S"]
    assert syns and dict(syns[0].l4.options).get("MSS") == 1460  # the kernel's SYN carries options
    assert cap.stats["kernel_drops"] == 0 and cap.stats["captured"] == len(frames)


def test_vlan_tag_is_restored_from_auxdata_and_lost_without(pair):
    a, b = pair.nodes["a"], pair.nodes["b"]
    frame = (
        Ether(src=a.mac("eth0"), dst=b.mac("eth0"))
        / Dot1Q(vlan=42, prio=5)
        / IP(src="10.42.0.1", dst="10.42.0.2")
        / UDP(sport=4242, dport=4242)
        / b"tagged"
    )
    for auxdata in (True, False):
        with Sniffer(b, "eth0", outgoing=False, auxdata=auxdata) as cap:
            a.send(frame, "eth0", count=3)
            cap.wait(3)
        tagged = [f for f in cap.frames if decode(f.data).ip is not None and decode(f.data).ip.dst == "10.42.0.2"]
        assert len(tagged) == 3
        d = decode(tagged[0].data)
        if auxdata:
            assert tagged[0].vlan_restored and [v.vid for v in d.vlans] == [42] and d.vlans[0].pcp == 5
            assert tagged[0].data == bytes(frame)
        else:
            assert not tagged[0].vlan_restored and d.vlans == ()  # the kernel stripped it before us
        assert compare_many([f.data for f in tagged])[1] == []


def test_crafted_edge_frames_on_the_wire(pair):
    """IPv4 options, odd TCP options and a truncated-looking frame survive a real veth and decode like scapy."""
    from scapy.layers.inet import IPOption_NOP, IPOption_RR

    a, b = pair.nodes["a"], pair.nodes["b"]
    eth = Ether(src=a.mac("eth0"), dst=b.mac("eth0"))
    frames = [
        eth
        / IP(src="10.0.1.1", dst="10.0.1.2", options=[IPOption_RR(), IPOption_NOP()])
        / TCP(dport=9, flags="S", options=[("SAck", (1, 2)), (77, b"hi")]),
        eth / IP(src="10.0.1.1", dst="10.0.1.2", len=200) / UDP(dport=9) / b"claims more than it has",
        eth / IP(src="10.0.1.1", dst="10.0.1.2", frag=3, proto=6) / (b"\xff" * 30),
    ]
    with Sniffer(b, "eth0", outgoing=False) as cap:
        for f in frames:
            a.send(f, "eth0")
        cap.wait(3)
    mine = [f.data for f in cap.frames if f.data[12:14] == b"\x08\x00"]
    assert len(mine) >= 3
    assert compare_many(mine)[1] == []
