"""Module 05: the struct decoder, field by field against scapy (no lab needed)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert, IPOption_RR
from scapy.layers.inet6 import ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, LLC, Dot1AD, Dot1Q, Dot3, Ether

from packetlab.course.m05_python_network_programming.crosscheck import compare, compare_many
from packetlab.course.m05_python_network_programming.sniffer import restore_vlan
from packetlab.proto.decode import IPv4, Vlan, decode, five_tuple, tcp_options

E = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
V4 = dict(src="10.0.1.1", dst="10.0.2.2")
V6 = dict(src="fd00::1", dst="fd00::2")
ALL_TCP_OPTIONS = [
    ("MSS", 1460),
    ("NOP", None),
    ("WScale", 7),
    ("SAckOK", b""),
    ("Timestamp", (11, 22)),
    ("SAck", (100, 200, 300, 400)),
    ("EOL", None),
]

FRAMES = {
    "tcp-syn-options": Ether(**E) / IP(**V4) / TCP(sport=40000, dport=80, flags="S", options=ALL_TCP_OPTIONS),
    "tcp-data": Ether(**E)
    / IP(**V4, flags="DF", ttl=3, tos=0xB8)
    / TCP(sport=1, dport=2, flags="PA", seq=7, ack=9)
    / b"data",
    "tcp-unknown-options": Ether(**E)
    / IP(**V4)
    / TCP(options=[("MD5", b"k" * 16), (99, b"zz"), ("SAck", (5,))])
    / b"x",
    "tcp-all-flags": Ether(**E) / IP(**V4) / TCP(flags=0x1FF, reserved=5, urgptr=7, window=0),
    "udp": Ether(**E) / IP(**V4) / UDP(sport=5353, dport=53) / b"query",
    "udp-zero-checksum": Ether(**E) / IP(**V4) / UDP(sport=1, dport=2, chksum=0) / b"z",
    "ipv4-options": Ether(**E)
    / IP(**V4, options=[IPOption_RR(routers=["1.2.3.4"]), IPOption_NOP(), IPOption_Router_Alert()])
    / TCP(options=[("MSS", 536)])
    / b"o",
    "ipv4-fragment-first": Ether(**E) / IP(**V4, flags="MF", id=77) / UDP(sport=9, dport=9) / (b"f" * 40),
    "ipv4-fragment-later": Ether(**E) / IP(**V4, frag=185, proto=6, id=77) / (b"g" * 24),
    "icmp": Ether(**E) / IP(**V4) / ICMP(id=1, seq=2) / b"ping",
    "vlan": Ether(**E) / Dot1Q(vlan=42, prio=5, dei=1) / IP(**V4) / UDP(sport=4242, dport=4242) / b"tagged",
    "qinq": Ether(**E) / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IP(**V4) / TCP(flags="A") / b"q",
    "ipv6-tcp": Ether(**E)
    / IPv6(**V6, tc=3, fl=0xABCDE, hlim=9)
    / TCP(sport=22, dport=5000, options=[("MSS", 1220)])
    / b"v6",
    "ipv6-udp": Ether(**E) / IPv6(**V6) / UDP(sport=546, dport=547) / b"dhcp6",
    "ipv6-nd": Ether(**E) / IPv6(**V6) / ICMPv6ND_NS(tgt="fd00::2"),
    "arp": Ether(**E) / ARP(psrc="10.0.1.1", pdst="10.0.1.2"),
    "llc-802.3": Ether(**E) / LLC() / b"spanning tree-ish",
    "dot3": Dot3(**E) / LLC() / b"x",
}


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_decode_agrees_with_scapy(name):
    frame = bytes(FRAMES[name])
    assert compare(frame) == []
    assert compare(frame + b"\x00" * 18) == [], "Ethernet padding must be cut off by the length fields"


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_every_truncation_is_handled(name):
    frame = bytes(FRAMES[name])
    for n in range(len(frame)):
        cut = frame[:n]
        d = decode(cut)  # never raises
        assert compare(cut) == [], f"cut at {n} bytes"
        if n < 14:
            assert d.eth is None and d.truncated == "ethernet"


def test_fields_of_a_tagged_tcp_frame():
    frame = bytes(
        Ether(**E)
        / Dot1Q(vlan=42, prio=5)
        / IP(**V4, options=[IPOption_RR(), IPOption_NOP()])
        / TCP(sport=40000, dport=443, flags="SA", seq=1000, ack=2000, options=ALL_TCP_OPTIONS)
        / b"hi"
    )
    d = decode(frame)
    assert d.layers == ["ethernet", "vlan", "ipv4", "tcp"]
    assert d.eth.src == "02:00:00:00:00:01" and d.eth.type == 0x8100
    assert d.vlans == (Vlan(0x8100, 5, 0, 42, 0x0800),)
    assert isinstance(d.ip, IPv4) and d.ip.ihl == 6 and d.ip.option_types == [7, 1]
    assert (d.l4.sport, d.l4.dport, d.l4.seq, d.l4.ack, d.l4.flag_str) == (40000, 443, 1000, 2000, "SA")
    assert d.l4.options == tuple(ALL_TCP_OPTIONS)
    assert d.payload == b"hi"
    assert "vlan 42" in d.summary() and "[SA]" in d.summary()


def test_impossible_length_fields_are_errors_not_crashes():
    base = bytearray(bytes(Ether(**E) / IP(**V4) / TCP() / b"p"))
    bad_ihl = bytearray(base)
    bad_ihl[14] = 0x43
    assert "IPv4 header length 3" in decode(bytes(bad_ihl)).error
    bad_doff = bytearray(base)
    bad_doff[14 + 20 + 12] = 0x40
    assert "data offset 4" in decode(bytes(bad_doff)).error
    udp = bytearray(bytes(Ether(**E) / IP(**V4) / UDP() / b"p"))
    udp[14 + 20 + 4 : 14 + 20 + 6] = b"\x00\x04"
    assert "UDP length 4" in decode(bytes(udp)).error


def test_tcp_option_walk_survives_malformed_lengths():
    assert tcp_options(b"\x02\x00\x05") == (("MSS", b""), ("SAck", ()))  # length 0 counts as 2
    assert tcp_options(b"\x01\x01\x00\x02\x04") == (("NOP", None), ("NOP", None), ("EOL", None))
    assert tcp_options(b"\x02\x03\x05") == (("MSS", b"\x05"),)  # wrong size: raw value, like scapy
    assert tcp_options(b"\x05\x06abcd") == (("SAck", 0x61626364),)  # one SACK value: unwrapped, like scapy


def test_five_tuple_fast_path():
    assert five_tuple(bytes(FRAMES["tcp-data"])) == ("10.0.1.1", "10.0.2.2", 6, 1, 2)
    assert five_tuple(bytes(FRAMES["udp"])) == ("10.0.1.1", "10.0.2.2", 17, 5353, 53)
    assert five_tuple(bytes(FRAMES["ipv4-options"]))[3:] == (20, 80)
    for name in ("vlan", "ipv6-tcp", "ipv4-fragment-later", "icmp", "arp"):
        assert five_tuple(bytes(FRAMES[name])) is None, name


def test_restore_vlan_puts_the_tag_back():
    tagged = bytes(Ether(**E) / Dot1Q(vlan=42, prio=5) / IP(**V4) / UDP())
    untagged = tagged[:12] + tagged[16:]
    assert restore_vlan(untagged, (5 << 13) | 42) == tagged


def test_compare_reports_disagreement():
    frame = bytes(FRAMES["tcp-data"])
    d = decode(frame)
    d.l4 = type(d.l4)(**{**{f: getattr(d.l4, f) for f in d.l4.__dataclass_fields__}, "dport": 9999})
    problems = compare(frame, decoded=d)
    assert problems == ["tcp.dport: decode=9999 scapy=2"]
    agree, lines = compare_many([frame, frame[:20]])
    assert agree == 2 and lines == []


ports = st.integers(0, 65535)
payloads = st.binary(max_size=64)


@st.composite
def random_frames(draw):
    """Well-formed frames with random field values, built by scapy."""
    l3 = draw(st.sampled_from(["v4", "v6"]))
    vlans = draw(st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 7)), max_size=2))
    pkt = Ether(**E)
    for vid, prio in vlans:
        pkt = pkt / Dot1Q(vlan=vid, prio=prio)
    if l3 == "v4":
        opts = draw(st.lists(st.sampled_from([IPOption_NOP(), IPOption_RR(), IPOption_Router_Alert()]), max_size=3))
        pkt = pkt / IP(
            **V4,
            tos=draw(st.integers(0, 255)),
            ttl=draw(st.integers(0, 255)),
            id=draw(ports),
            flags=draw(st.integers(0, 2)),
            options=opts,
        )
    else:
        pkt = pkt / IPv6(**V6, tc=draw(st.integers(0, 255)), fl=draw(st.integers(0, 0xFFFFF)))
    if draw(st.booleans()):
        opts = draw(
            st.lists(
                st.sampled_from(
                    [
                        ("NOP", None),
                        ("MSS", 1400),
                        ("WScale", 3),
                        ("SAckOK", b""),
                        ("Timestamp", (5, 6)),
                        ("SAck", (1, 2)),
                    ]
                ),
                max_size=4,
            )
        )
        pkt = pkt / TCP(
            sport=draw(ports),
            dport=draw(ports),
            seq=draw(st.integers(0, 2**32 - 1)),
            flags=draw(st.integers(0, 0x1FF)),
            window=draw(ports),
            options=opts,
        )
    else:
        pkt = pkt / UDP(sport=draw(ports), dport=draw(ports))
    return bytes(pkt / draw(payloads)) + bytes(draw(st.integers(0, 20)))


@settings(max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_frames())
def test_random_wellformed_frames_agree_with_scapy(frame):
    assert compare(frame) == []


@settings(max_examples=500, database=None, deadline=None)
@given(st.binary(max_size=120))
def test_arbitrary_bytes_never_crash(blob):
    decode(blob)
    compare(blob)


@settings(max_examples=300, database=None, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_frames(), st.data())
def test_mutated_frames_agree_with_scapy(frame, data):
    """Random byte flips: length fields lie, types change; the parsers must still agree."""
    b = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        b[data.draw(st.integers(0, len(b) - 1))] = data.draw(st.integers(0, 255))
    assert compare(bytes(b)) == []
