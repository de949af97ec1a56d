"""Module 01 · the OSI model, no kernel: the dissector against scapy (property tests, options,
fragments, truncation, checksum verdicts), the fragment plan, the proto counter's labels and
the live widget (with a fake reader), and the exercise checks that need no lab. The frame
strategies and the reference decoder are shared with tests/kernel/test_01_osi_model.py."""

from __future__ import annotations

import ipaddress
import struct
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_Router_Alert, IPOption_RR, fragment
from scapy.layers.inet6 import (
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from packetlab.course.grading import CheckFailed
from packetlab.course.m01_osi_model.exercises import (
    check_icmp_identifier,
    check_ipv4_checksum,
)
from packetlab.errors import PacketlabError
from packetlab.proto.dissect import (
    arp_rows,
    compare_with_scapy,
    dissect,
    format_comparison,
    format_fields,
    fragment_plan,
    fragment_rows,
    hexdump,
    internet_checksum,
    ipv4_header_checksum,
    nd_rows,
    ones_sum,
    tcp_flag_names,
    tcp_rows,
)
from packetlab.show.widgets import LiveCounter, enum_labels

PROGRAM = "bpf/01-xdp-proto-counter.c"


SLOW = settings(max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


# ---- strategies: packets scapy builds, which dissect must read exactly as scapy does ----------


macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))


ipv4s = st.integers(0, 2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))


ipv6s = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))


ports = st.integers(0, 65535)


payloads = st.binary(max_size=64)


ip_options = st.lists(
    st.sampled_from(
        [
            lambda: IPOption_NOP(),
            lambda: IPOption_Router_Alert(),
            lambda: IPOption_RR(routers=["192.0.2.1"]),
            lambda: IPOption_RR(routers=["192.0.2.1", "198.51.100.7"]),
        ]
    ),
    max_size=3,
).map(lambda makers: [m() for m in makers])


tcp_options = st.lists(
    st.sampled_from(
        [
            ("MSS", 1460),
            ("MSS", 536),
            ("SAckOK", b""),
            ("Timestamp", (12345, 0)),
            ("Timestamp", (1, 2**32 - 1)),
            ("NOP", None),
            ("WScale", 7),
            ("WScale", 0),
            ("SAck", (100, 200)),
        ]
    ),
    max_size=5,
)


@st.composite
def ipv4_headers(draw):
    return IP(
        src=draw(ipv4s),
        dst=draw(ipv4s),
        tos=draw(st.integers(0, 255)),
        id=draw(ports),
        ttl=draw(st.integers(0, 255)),
        flags=draw(st.sampled_from([0, "DF"])),
        options=draw(ip_options),
    )


@st.composite
def l4_over_v4(draw):
    kind = draw(st.sampled_from(["icmp", "tcp", "udp", "icmp-error"]))
    if kind == "icmp":
        return ICMP(type=draw(st.sampled_from([0, 8])), id=draw(ports), seq=draw(ports)) / draw(payloads)
    if kind == "tcp":
        return TCP(
            sport=draw(ports),
            dport=draw(ports),
            seq=draw(st.integers(0, 2**32 - 1)),
            ack=draw(st.integers(0, 2**32 - 1)),
            flags=draw(st.integers(0, 0x1FF)),
            window=draw(ports),
            options=draw(tcp_options),
        ) / draw(payloads)
    if kind == "udp":
        return UDP(sport=draw(ports), dport=draw(ports)) / draw(payloads)
    inner = IP(src=draw(ipv4s), dst=draw(ipv4s), flags="DF") / ICMP(id=draw(ports)) / b"12345678"
    return ICMP(type=3, code=4, nexthopmtu=draw(st.integers(68, 9000))) / inner


@st.composite
def frames(draw):
    eth = Ether(src=draw(macs), dst=draw(macs))
    if draw(st.booleans()):
        eth = eth / Dot1Q(vlan=draw(st.integers(0, 4095)), prio=draw(st.integers(0, 7)))
    kind = draw(st.sampled_from(["v4", "v4", "arp", "v6"]))
    if kind == "arp":
        return eth / ARP(
            op=draw(st.sampled_from([1, 2])), hwsrc=draw(macs), psrc=draw(ipv4s), hwdst=draw(macs), pdst=draw(ipv4s)
        )
    if kind == "v4":
        return eth / draw(ipv4_headers()) / draw(l4_over_v4())
    v6 = IPv6(
        src=draw(ipv6s),
        dst=draw(ipv6s),
        tc=draw(st.integers(0, 255)),
        fl=draw(st.integers(0, 2**20 - 1)),
        hlim=draw(st.integers(0, 255)),
    )
    if draw(st.booleans()):
        v6 = v6 / draw(st.sampled_from([IPv6ExtHdrHopByHop(), IPv6ExtHdrDestOpt()]))
    upper = draw(st.sampled_from(["echo", "reply", "ns", "na", "udp", "tcp"]))
    if upper == "echo":
        return eth / v6 / ICMPv6EchoRequest(id=draw(ports), seq=draw(ports), data=draw(payloads))
    if upper == "reply":
        return eth / v6 / ICMPv6EchoReply(id=draw(ports), seq=draw(ports), data=draw(payloads))
    if upper == "ns":
        return eth / v6 / ICMPv6ND_NS(tgt=draw(ipv6s)) / ICMPv6NDOptSrcLLAddr(lladdr=draw(macs))
    if upper == "na":
        return (
            eth
            / v6
            / ICMPv6ND_NA(
                tgt=draw(ipv6s), R=draw(st.integers(0, 1)), S=draw(st.integers(0, 1)), O=draw(st.integers(0, 1))
            )
            / ICMPv6NDOptDstLLAddr(lladdr=draw(macs))
        )
    if upper == "udp":
        return eth / v6 / UDP(sport=draw(ports), dport=draw(ports)) / draw(payloads)
    return eth / v6 / TCP(sport=draw(ports), dport=draw(ports), options=draw(tcp_options)) / draw(payloads)


# ---- dissect: unit tests against scapy ---------------------------------------------------------


@SLOW
@given(frames())
def test_every_field_agrees_with_scapy(pkt):
    raw = bytes(pkt)
    comparisons = compare_with_scapy(raw)
    wrong = [(c.field.name, c.field.value, c.scapy_value) for c in comparisons if not c.same]
    assert comparisons and not wrong
    d = dissect(raw)
    for f in d:  # rows are inside the frame, raw is their bytes
        assert f.offset >= 0 and f.offset + f.length <= len(raw)
        assert bytes.fromhex(f.raw) == raw[f.offset : f.offset + f.length]
    covered = set()
    for f in d:
        covered.update(range(f.offset, f.offset + f.length))
    assert covered == set(range(len(raw))), "every byte of the frame belongs to some field"
    for f in d.checksums():
        if "quoted" not in f.name:
            assert f.note.startswith("✔"), (f.name, f.note)
    assert "truncated" not in " ".join(f.name for f in d)


@SLOW
@given(st.builds(lambda ip, l4: Ether() / ip / l4, ipv4_headers(), l4_over_v4()))
def test_ipv4_and_tcp_options_match_scapy(pkt):
    raw = bytes(pkt)
    d = dissect(raw)
    parsed = Ether(raw)
    ours = [f.name.split(".")[-1] for f in d if f.name.startswith("IPv4.opt.") and f.name != "IPv4.opt.padding"]
    theirs = [
        {0: "EOL", 1: "NOP", 7: "RR", 148: "RouterAlert"}[o.copy_flag << 7 | o.optclass << 5 | o.option]
        for o in parsed[IP].options
    ]
    assert ours == _upto_eol(theirs)  # scapy reads the zero padding after EOL as more EOLs
    ours_rr = [f.value for f in d if f.name == "IPv4.opt.RR"]
    theirs_rr = [{"pointer": o.pointer, "routes": list(o.routers)} for o in parsed[IP].options if o.option == 7]
    assert ours_rr == theirs_rr
    if TCP in parsed and "TCP.opt.MSS" in d or TCP in parsed and parsed[TCP].options:
        ours_tcp = [
            (f.name.split(".")[-1], f.value) for f in d if f.name.startswith("TCP.opt.") and f.name != "TCP.opt.padding"
        ]
        theirs_tcp = [(name, value if name not in ("NOP", "EOL") else None) for name, value in parsed[TCP].options]
        assert ours_tcp == _upto_eol(theirs_tcp)


def _upto_eol(options: list) -> list:
    names = [o[0] if isinstance(o, tuple) else o for o in options]
    return options[: names.index("EOL") + 1] if "EOL" in names else options


def test_a_known_frame_field_by_field():
    raw = bytes(
        Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")
        / IP(src="10.0.1.1", dst="10.0.1.2", id=0x1234, ttl=64, flags="DF")
        / ICMP(id=0xBEEF, seq=7)
        / b"hi"
    )
    d = dissect(raw)
    rows = {name: (offset, length, raw_hex, value) for offset, length, name, raw_hex, value in d}
    assert rows["Ethernet.type"] == (12, 2, "0800", 0x0800)
    assert rows["IPv4.version"][:2] == (14, 1) and rows["IPv4.version"][3] == 4
    assert rows["IPv4.ihl"][3] == 5 and d.field("IPv4.ihl").bitmask() == ".... 0101"
    assert rows["IPv4.id"] == (18, 2, "1234", 0x1234)
    assert rows["IPv4.flags"][3] == 2 and d.field("IPv4.flags").note == "DF"
    assert rows["ICMP.id"] == (38, 2, "beef", 0xBEEF)
    assert d.layers == ["Ethernet", "IPv4", "ICMP", "Payload"]
    assert d["Ethernet.dst"] == "ff:ff:ff:ff:ff:ff" and "broadcast" in d.field("Ethernet.dst").note
    with pytest.raises(KeyError, match="no field 'TCP.seq'"):
        d["TCP.seq"]


def test_fragments_are_decoded_as_fragments():
    pieces = [bytes(Ether() / p) for p in fragment(IP(dst="192.0.2.9") / ICMP() / (b"x" * 3000), 1000)]
    first, later = dissect(pieces[0]), dissect(pieces[1])
    assert first["IPv4.flags"] & 1 and "ICMP.type" in first
    assert first.field("ICMP.chksum").note.startswith("not verified")
    assert "ICMP.type" not in later and later.layers[-1] == "Fragment" and later["IPv4.frag"] > 0
    rows = fragment_rows(pieces)
    assert [r[4] for r in rows] == [1] * (len(rows) - 1) + [0]
    v6 = dissect(bytes(Ether() / IPv6() / IPv6ExtHdrFragment(offset=10, m=0, id=9) / (b"y" * 16)))
    assert v6["IPv6Frag.offset"] == 10 and v6.layers[-1] == "Fragment"
    assert all(c.same for c in compare_with_scapy(v6.frame))


def test_icmp_fragmentation_needed_quotes_the_dropped_packet():
    inner = IP(src="10.0.1.1", dst="10.0.9.3", flags="DF", len=1228) / ICMP(id=5) / (b"\0" * 8)
    raw = bytes(Ether() / IP(src="10.0.1.2", dst="10.0.1.1") / ICMP(type=3, code=4, nexthopmtu=1000) / inner)
    d = dissect(raw)
    assert d["ICMP.nexthopmtu"] == 1000 and "fragmentation needed" in d.field("ICMP.code").note
    assert d["IPv4(quoted).len"] == 1228 and d["IPv4(quoted).dst"] == "10.0.9.3"
    assert all(c.same for c in compare_with_scapy(raw))


def test_checksum_verdicts_wrong_offloaded_and_udp_zero():
    good = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(dport=80) / b"data")
    bad = bytearray(good)
    bad[24] ^= 0xFF  # IPv4 checksum
    bad[50] ^= 0x01  # TCP checksum
    d = dissect(bytes(bad))
    assert d.field("IPv4.chksum").note.startswith("✘ wrong") and d.field("TCP.chksum").note.startswith("✘ wrong")
    pseudo = (
        ipaddress.IPv4Address("10.0.0.1").packed
        + ipaddress.IPv4Address("10.0.0.2").packed
        + struct.pack("!BBH", 0, 6, 24)
    )
    partial = bytearray(good)
    partial[50:52] = struct.pack("!H", ones_sum(pseudo))  # what CHECKSUM_PARTIAL leaves in the packet
    assert dissect(bytes(partial)).field("TCP.chksum").note.startswith("offloaded")
    no_sum = dissect(bytes(Ether() / IP() / UDP(chksum=0) / b"x"))
    assert no_sum.field("UDP.chksum").note.startswith("0: no checksum")


def test_internet_checksum_rfc1071_example_and_ipv4_header():
    data = bytes.fromhex("0001f203f4f5f6f7")  # RFC 1071 section 3: sum 0xddf2
    assert internet_checksum(data) == ~0xDDF2 & 0xFFFF
    header = bytes(IP(src="10.0.1.1", dst="10.0.1.2", options=[IPOption_Router_Alert()]))[:24]
    assert ipv4_header_checksum(header) == IP(header).chksum
    assert internet_checksum(header) == 0  # a correct header sums to zero


@pytest.mark.parametrize(
    "pkt",
    [
        Ether() / IP() / TCP(options=[("MSS", 1460), ("WScale", 7)]) / b"abc",
        Ether() / Dot1Q() / ARP(),
        Ether() / IPv6() / ICMPv6ND_NS() / ICMPv6NDOptSrcLLAddr(),
        Ether() / IP(options=[IPOption_RR(routers=["1.2.3.4"])]) / UDP() / b"u",
        Ether() / Dot1AD(vlan=1) / Dot1Q(vlan=2) / IPv6() / UDP(),
    ],
)
def test_truncated_frames_decode_as_far_as_they_go(pkt):
    raw = bytes(pkt)
    for cut in range(len(raw) + 1):
        d = dissect(raw[:cut])  # never raises, never reads past the end
        assert all(f.offset + f.length <= cut for f in d)
        incomplete = any(f.name.endswith((".truncated", ".malformed")) for f in d) or any(
            not f.note.startswith("✔") for f in d.checksums()
        )
        assert incomplete == (cut < len(raw)), (cut, format_fields(d))


def test_tables_for_the_lab():
    h1, h2 = "02:00:00:00:00:01", "02:00:00:00:00:02"
    arp = [
        Ether(src=h1, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=h1, psrc="10.0.1.1", pdst="10.0.1.2"),
        Ether(src=h2, dst=h1) / ARP(op=2, hwsrc=h2, psrc="10.0.1.2", hwdst=h1, pdst="10.0.1.1"),
    ]
    assert arp_rows(arp) == [
        ("who-has (request)", h1, "ff:ff:ff:ff:ff:ff", h1, "10.0.1.1", "00:00:00:00:00:00", "10.0.1.2"),
        ("is-at (reply)", h2, h1, h2, "10.0.1.2", h1, "10.0.1.1"),
    ]
    c, s = dict(src="10.0.1.1", dst="10.0.1.2"), dict(src="10.0.1.2", dst="10.0.1.1")
    segs = [
        Ether() / IP(**c) / TCP(sport=5000, dport=80, flags="S", seq=1000),
        Ether() / IP(**s) / TCP(sport=80, dport=5000, flags="SA", seq=9000, ack=1001),
        Ether() / IP(**c) / TCP(sport=5000, dport=80, flags="A", seq=1001, ack=9001),
        Ether() / IP(**c) / TCP(sport=5000, dport=80, flags="PA", seq=1001, ack=9001) / b"hello",
        Ether() / IP(**c) / TCP(sport=5000, dport=80, flags="FA", seq=1006, ack=9001),
    ]
    rows = tcp_rows(segs)
    assert [(r[2], r[3], r[4], r[5]) for r in rows] == [
        ("SYN", 0, "", 0),
        ("SYN ACK", 0, 1, 0),
        ("ACK", 1, 1, 0),
        ("PSH ACK", 1, 1, 5),
        ("FIN ACK", 6, 1, 0),
    ]
    ns = (
        Ether(dst="33:33:ff:00:00:02")
        / IPv6(src="fd00:1::1", dst="ff02::1:ff00:2")
        / ICMPv6ND_NS(tgt="fd00:1::2")
        / ICMPv6NDOptSrcLLAddr(lladdr=h1)
    )
    assert nd_rows([ns]) == [
        ("neighbor-solicitation", "33:33:ff:00:00:02", "fd00:1::1", "ff02::1:ff00:2", "fd00:1::2", h1)
    ]
    assert tcp_flag_names(0x12) == "SYN ACK" and tcp_flag_names(0) == "none"
    text = format_fields(dissect(ns))
    assert "solicited-node multicast" in text and "NDopt.lladdr" in text
    assert "✔" in format_comparison(compare_with_scapy(ns))
    dump = hexdump(bytes(ns)).splitlines()
    assert dump[0].startswith("0000  33 33 ff 00 00 02") and len(dump) == -(-len(bytes(ns)) // 16)


@pytest.mark.parametrize(
    ("payload", "mtu", "expected"),
    [
        (100, 1500, [(0, 100, False)]),
        (1480, 1500, [(0, 1480, False)]),
        (1481, 1500, [(0, 1480, True), (1480, 1, False)]),
        (2008, 1000, [(0, 976, True), (976, 976, True), (1952, 56, False)]),
        (2932, 1000, [(0, 976, True), (976, 976, True), (1952, 980, False)]),  # the last one fills the room
        (2938, 1000, [(0, 976, True), (976, 976, True), (1952, 976, True), (2928, 10, False)]),
    ],
)
def test_fragment_plan(payload, mtu, expected):
    assert fragment_plan(payload, mtu) == expected


@settings(derandomize=True)
@given(st.integers(1, 65515), st.integers(68, 9000))
def test_fragment_plan_invariants(payload, mtu):
    plan = fragment_plan(payload, mtu)
    assert sum(n for _, n, _ in plan) == payload
    assert all(off % 8 == 0 for off, _, _ in plan)
    assert all(20 + n <= mtu for _, n, _ in plan)
    assert [mf for _, _, mf in plan] == [True] * (len(plan) - 1) + [False]
    assert all(a + n == b for (a, n, _), (b, _, _) in zip(plan, plan[1:]))


# ---- the XDP program: BPF_PROG_TEST_RUN with crafted frames ----------------------------------------


def test_enum_labels_follow_the_c_enum():
    assert enum_labels(PROGRAM, "proto") == [
        "ARP",
        "ICMP",
        "TCP",
        "UDP",
        "ICMPV6",
        "IPV4_OTHER",
        "IPV6_OTHER",
        "OTHER",
        "MALFORMED",
    ]
    with pytest.raises(PacketlabError, match="no `enum nosuch`"):
        enum_labels(PROGRAM, "nosuch")


# ---- the live widget -----------------------------------------------------------------------------------


def test_live_counter_polls_in_the_background_and_stops_cleanly():
    value = {"n": 0}

    def read():
        value["n"] += 1
        return {"A": {"packets": value["n"], "bytes": 10 * value["n"]}, "B": {"packets": 0}}

    live = LiveCounter(read, interval=0.02, title="test")
    assert live.start() is live and live.running
    snap = live.wait_for(lambda s: s["A"]["packets"] >= 5, timeout=5)
    assert snap["A"]["packets"] >= 5
    thread_names = [t.name for t in threading.enumerate()]
    assert "LiveCounter(test)" in thread_names
    final = live.stop()
    assert not live.running and "LiveCounter(test)" not in [t.name for t in threading.enumerate()]
    assert final["A"]["packets"] >= snap["A"]["packets"]
    text = str(live)
    assert text.splitlines()[0].split() == ["counter", "packets", "bytes", "packets/s"]
    assert "<table" in live.render_html() and "stopped" in live.render_html()
    live.stop()  # idempotent


def test_live_counter_stops_when_its_reader_fails_and_times_out_clearly():
    calls = {"n": 0}

    def read():
        calls["n"] += 1
        if calls["n"] > 2:
            raise OSError("map is gone")
        return {"A": {"packets": 1}}

    with LiveCounter(read, interval=0.01) as live:
        deadline = time.monotonic() + 5
        while live.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not live.running and isinstance(live.error, OSError)
    assert live.snapshot == {"A": {"packets": 1}}  # the last good reading is kept
    steady = LiveCounter(lambda: {"A": {"packets": 1}}, interval=0.05)
    with pytest.raises(PacketlabError, match="timed out after 0.2 s"):
        steady.wait_for(lambda s: s["A"]["packets"] > 1, timeout=0.2)
    with pytest.raises(PacketlabError):
        LiveCounter(lambda: {}, interval=0)


# ---- exercise checks on crafted frames ------------------------------------------------------------


def test_check_icmp_identifier():
    frame = Ether() / IP(src="10.0.1.1", dst="10.0.1.2", id=777) / ICMP(id=0x1A2B, seq=1) / b"payload"
    assert check_icmp_identifier(0x1A2B, frame)
    assert check_icmp_identifier("0x1a2b", frame)
    assert check_icmp_identifier(str(0x1A2B), frame)
    with pytest.raises(CheckFailed, match="wrong order"):
        check_icmp_identifier(0x2B1A, frame)
    with pytest.raises(CheckFailed, match="IPv4.id, at offset 18"):
        check_icmp_identifier(777, frame)
    with pytest.raises(CheckFailed, match="no answer yet"):
        check_icmp_identifier(None, frame)
    with pytest.raises(CheckFailed, match="expected a number"):
        check_icmp_identifier("twelve", frame)
    with pytest.raises(CheckFailed, match="not an ICMP echo"):
        check_icmp_identifier(1, Ether() / ARP())


def _reference(header: bytes) -> int:
    total = sum(int.from_bytes(header[i : i + 2], "big") for i in range(0, len(header), 2))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_check_ipv4_checksum_accepts_a_right_function_and_names_each_mistake():
    captured = [Ether() / IP(src="10.0.1.1", dst="10.0.1.2") / ICMP()]
    assert check_ipv4_checksum(_reference, captured)
    no_invert = lambda h: (~_reference(h)) & 0xFFFF  # noqa: E731
    with pytest.raises(CheckFailed, match="invert it"):
        check_ipv4_checksum(no_invert, captured)
    unfolded = lambda h: ~sum(struct.unpack(f"!{len(h) // 2}H", h)) & 0xFFFFFFFF  # noqa: E731
    with pytest.raises(CheckFailed, match="fold the carries|wider than 16 bits"):
        check_ipv4_checksum(unfolded, captured)
    dropped = lambda h: ~(sum(struct.unpack(f"!{len(h) // 2}H", h)) & 0xFFFF) & 0xFFFF  # noqa: E731
    with pytest.raises(CheckFailed, match="carries were dropped"):
        check_ipv4_checksum(dropped, captured)
    little = lambda h: _reference(bytes(b for i in range(0, len(h), 2) for b in (h[i + 1], h[i])))  # noqa: E731
    with pytest.raises(CheckFailed, match="little-endian"):
        check_ipv4_checksum(little, captured)
    first20 = lambda h: _reference(h[:20])  # noqa: E731
    with pytest.raises(CheckFailed, match="only the first 20 bytes"):
        check_ipv4_checksum(first20, captured)
    with pytest.raises(CheckFailed, match="not written yet"):
        check_ipv4_checksum(lambda h: None, captured)
    with pytest.raises(CheckFailed, match="raised ZeroDivisionError"):
        check_ipv4_checksum(lambda h: 1 // 0, captured)
