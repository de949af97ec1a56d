"""Module 01 · the OSI model on the real kernel: the proto counter on every frame kind
(BPF_PROG_TEST_RUN), and in a lab: ARP and bridge learning, real captures against scapy,
kernel fragments against the plan, path MTU discovery, IPv6 neighbour discovery and the XDP
counter on a live link."""

from __future__ import annotations

import errno
import socket

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    ICMPv6ND_NS,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from packetlab.course.grading import CheckFailed
from packetlab.course.m01_osi_model.exercises import (
    check_arp_reply_macs,
    check_fragment_count,
    check_ipv4_checksum,
)
from packetlab.course.m01_osi_model.helpers import observed_fragments
from packetlab.ebpf.loader import LoadedProgram
from packetlab.proto.dissect import (
    arp_rows,
    compare_with_scapy,
    dissect,
    format_fields,
    fragment_plan,
    nd_rows,
)
from packetlab.show.widgets import LiveCounter, array_reader, enum_labels
from packetlab.topo import netns
from packetlab.topo.traffic import link_counters
from tests.unit.test_01_osi_model import (  # shared with its unit twin
    PROGRAM,
    _reference,
)


# ---- the XDP program: BPF_PROG_TEST_RUN with crafted frames ----------------------------------------
@pytest.fixture(scope="module")
def counter():
    prog = LoadedProgram(PROGRAM)
    yield prog
    prog.close()


CASES = [
    ("ARP", Ether() / ARP()),
    ("ICMP", Ether() / IP() / ICMP()),
    ("TCP", Ether() / IP() / TCP()),
    ("UDP", Ether() / IP() / UDP()),
    ("ICMPV6", Ether() / IPv6() / ICMPv6EchoRequest()),
    ("ICMPV6", Ether() / IPv6() / ICMPv6ND_NS(tgt="fd00::2") / ICMPv6NDOptSrcLLAddr()),
    ("TCP", Ether() / IPv6() / TCP()),
    ("UDP", Ether() / IPv6() / IPv6ExtHdrHopByHop() / UDP()),
    ("TCP", Ether() / Dot1Q(vlan=7) / IP() / TCP()),
    ("UDP", Ether() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IP() / UDP()),
    ("TCP", Ether() / IP(options=[IPOption_RR(routers=["1.2.3.4"])]) / TCP(options=[("MSS", 1460)])),
    ("ICMP", Ether() / IP(frag=100, proto=1) / (b"x" * 4)),  # a later fragment: no ICMP header inside
    ("IPV4_OTHER", Ether() / IP(proto=47) / (b"\0" * 8)),
    ("IPV6_OTHER", Ether() / IPv6(nh=59)),
    ("OTHER", Ether(type=0x88CC) / (b"\0" * 40)),
    ("MALFORMED", bytes(Ether() / IP() / TCP())[:30]),  # cut inside the IPv4 header
    ("MALFORMED", bytes(Ether() / IP() / TCP())[:40]),  # cut inside the TCP header
    ("MALFORMED", bytes(Ether() / ARP())[:20]),
    ("MALFORMED", bytes(Ether() / Dot1Q() / IP())[:16]),  # cut inside the VLAN tag
    ("MALFORMED", bytes(Ether() / IPv6() / ICMPv6EchoRequest())[:50]),
    ("MALFORMED", bytes(Ether() / IP(ihl=4) / TCP())),  # IHL below 5
]


@pytest.mark.parametrize(("expected", "frame"), CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(CASES)])
def test_each_frame_lands_in_its_counter(counter, expected, frame):
    labels = enum_labels(PROGRAM, "proto")
    read = array_reader(counter, "stats", labels)
    before = read()
    data = bytes(frame)
    result = counter.test_run(data)
    after = read()
    assert result.verdict == "XDP_PASS" and result.data == data  # counted, never changed
    grew = {k for k in labels if after[k]["packets"] != before[k]["packets"]}
    assert grew == {expected}
    assert after[expected]["packets"] - before[expected]["packets"] == 1
    assert after[expected]["bytes"] - before[expected]["bytes"] == len(data)


def test_counters_add_up_to_every_frame(counter):
    labels = enum_labels(PROGRAM, "proto")
    read = array_reader(counter, "stats", labels)
    before = read()
    for _, frame in CASES:
        counter.test_run(frame, repeat=3)
    after = read()
    total = sum(after[k]["packets"] - before[k]["packets"] for k in labels)
    assert total == 3 * len(CASES)


# ---- live: the lab's own link ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def osi(module_lab):
    """h1 and h2 on a switch, h3 behind h2 on a 1000-byte-MTU link (for fragments and PMTU)."""
    h1, h2, sw = module_lab.host("h1"), module_lab.host("h2"), module_lab.switch("sw")
    for host in (h1, h2):  # no background router solicitations: XDP counts must equal rx counts
        host.sysctl("net.ipv6.conf.default.router_solicitations", 0)
    module_lab.link(h1, sw, ip=["10.0.1.1/24", "fd00:1::1/64"])
    module_lab.link(h2, sw, ip=["10.0.1.2/24", "fd00:1::2/64"])
    h3 = module_lab.host("h3")
    h2.enable_forwarding()
    module_lab.link(h2, h3, ip="10.0.9.2/24", peer_ip="10.0.9.3/24", mtu=1000)
    h1.add_route("10.0.9.0/24", via="10.0.1.2")
    h3.add_route("default", via="10.0.9.2")
    for host in (h1, h2):
        host.run(["ethtool", "-K", "eth0", "tx", "off"], check=True)
    return module_lab


def test_arp_capture_neighbours_and_bridge_learning(osi):
    h1, h2, sw = osi.nodes["h1"], osi.nodes["h2"], osi.nodes["sw"]
    sw.run(["ip", "link", "set", "dev", "sw", "type", "bridge", "fdb_flush"], check=True)
    h1.run(["ip", "neigh", "flush", "all"], check=True)
    with h1.capture("eth0", filter="arp") as arp_frames:
        assert h1.ping("10.0.1.2").ok
    rows = arp_rows(arp_frames)
    assert rows[0][:3] == ("who-has (request)", h1.mac(), "ff:ff:ff:ff:ff:ff")
    assert ("is-at (reply)", h2.mac(), h1.mac()) in [r[:3] for r in rows]
    assert f"{h1.mac()} dev h1-eth0" in sw.fdb() and f"{h2.mac()} dev h2-eth0" in sw.fdb()
    assert check_arp_reply_macs((h2.mac(), h1.mac()), arp_frames, h1, h2)
    assert check_arp_reply_macs((h2.mac().upper(), h1.mac().replace(":", "-")), arp_frames, h1, h2)
    with pytest.raises(CheckFailed, match="not broadcast"):
        check_arp_reply_macs((h2.mac(), "ff:ff:ff:ff:ff:ff"), arp_frames, h1, h2)
    with pytest.raises(CheckFailed, match="swapped"):
        check_arp_reply_macs((h1.mac(), h2.mac()), arp_frames, h1, h2)
    with pytest.raises(CheckFailed, match="wrong source"):
        check_arp_reply_macs(("02:00:00:00:00:99", h1.mac()), arp_frames, h1, h2)
    with pytest.raises(CheckFailed, match="no ARP reply"):
        check_arp_reply_macs((h2.mac(), h1.mac()), [], h1, h2)


def test_real_captures_agree_with_scapy_and_verify(osi):
    h1, h2 = osi.nodes["h1"], osi.nodes["h2"]
    with h2.capture("eth0", filter="icmp or icmp6 or tcp port 8080") as frames:
        h1.ping("10.0.1.2", size=100)
        h1.ping("fd00:1::2", size=100)
        with netns.entered(h2.namespace):
            server = socket.create_server(("10.0.1.2", 8080))
        with server:
            with netns.entered(h1.namespace):
                client = socket.create_connection(("10.0.1.2", 8080), timeout=5)
            conn, _ = server.accept()
            with client, conn:
                client.sendall(b"x" * 300)
                conn.recv(1000)
    assert len(frames) >= 6
    for f in frames:
        d = dissect(f)
        assert all(c.same for c in compare_with_scapy(f)), d
        assert all(c.note.startswith("✔") for c in d.checksums()), format_fields(d)
    assert check_ipv4_checksum(_reference, frames)


def test_kernel_fragments_match_the_plan_and_the_check(osi):
    h2, h3 = osi.nodes["h2"], osi.nodes["h3"]
    for size in (972, 973, 2000, 2930):
        assert observed_fragments(h2, h3, "10.0.9.3", size) == fragment_plan(size + 8, 1000), size
    assert check_fragment_count(4, h2, h3, "10.0.9.3", 2930)
    with pytest.raises(CheckFailed, match="ICMP header|multiple of 8"):
        check_fragment_count(3, h2, h3, "10.0.9.3", 2930)
    with pytest.raises(CheckFailed, match="no answer yet"):
        check_fragment_count(None, h2, h3, "10.0.9.3", 2930)


def test_path_mtu_discovery(osi):
    h1 = osi.nodes["h1"]
    h1.run(["ip", "route", "flush", "cache"])
    with h1.capture("eth0", filter="icmp") as frames:
        first = h1.ping("10.0.9.3", size=1200, dont_fragment=True)
    assert "Frag needed" in first.output
    error = next(dissect(f) for f in frames if dissect(f).get("ICMP.type") == 3)
    assert error["ICMP.code"] == 4 and error["ICMP.nexthopmtu"] == 1000
    second = h1.ping("10.0.9.3", size=1200, dont_fragment=True)
    assert "message too long" in second.output


def test_ipv6_neighbour_discovery(osi):
    h1, h2 = osi.nodes["h1"], osi.nodes["h2"]
    h1.run(["ip", "-6", "neigh", "flush", "all"], check=True)
    with h1.capture("eth0", filter="icmp6") as frames:
        assert h1.ping("fd00:1::2").ok
    kinds = [r[0] for r in nd_rows(frames)]
    assert "neighbor-solicitation" in kinds and "neighbor-advertisement" in kinds
    ns = next(dissect(f) for f in frames if dissect(f).get("ICMPv6.type") == 135)
    assert ns["Ethernet.dst"] == "33:33:ff:00:00:02" and ns["ICMPv6.tgt"] == "fd00:1::2"
    assert h2.mac() in h1.ip("-6 neigh show fd00:1::2")


def test_xdp_counter_on_the_live_link(osi):
    h1, h2 = osi.nodes["h1"], osi.nodes["h2"]
    labels = enum_labels(PROGRAM, "proto")
    with h2.attach_xdp(PROGRAM, dev="eth0") as xdp:
        assert xdp.mode == "native" and "prog/xdp" in h2.ip("link show eth0")
        rx_before = link_counters(h2).rx_packets
        with LiveCounter(array_reader(xdp, "stats", labels), interval=0.05) as live:
            n = 10
            assert h1.ping("10.0.1.2", count=n, interval=0.01).received == n
            assert h1.ping("fd00:1::2", count=3, interval=0.01).ok
            with netns.entered(h1.namespace):
                udp, tcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM), socket.socket()
            with udp, tcp:
                for _ in range(4):
                    udp.sendto(b"x", ("10.0.1.2", 9999))
                tcp.settimeout(2)
                assert tcp.connect_ex(("10.0.1.2", 9999)) == errno.ECONNREFUSED  # h2 answers the SYN with a reset
            snap = live.wait_for(
                lambda s: (
                    s["ICMP"]["packets"] >= n
                    and s["ICMPV6"]["packets"] >= 3
                    and s["UDP"]["packets"] >= 4
                    and s["TCP"]["packets"] >= 1
                ),
                timeout=10,
            )
        assert not live.running
        rx_after = link_counters(h2).rx_packets
        total = sum(v["packets"] for v in live.snapshot.values())
        assert total == rx_after - rx_before, (live.snapshot, rx_before, rx_after)
        assert snap["MALFORMED"]["packets"] == 0 and snap["OTHER"]["packets"] == 0
    assert "prog/xdp" not in h2.ip("link show eth0")
