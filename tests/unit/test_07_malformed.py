"""Malformed input for every XDP parser in bpf/ (module 07), no kernel: the corpus of odd frames
itself (truncated headers, IPv4 options, VLAN and QinQ tags, IPv6 extension headers in and beyond
the parser's limit, fragments, bad length fields), the sweep's list of parsers, and the counter's
parser limits against bpf/include/parse.h. tests/kernel/test_07_malformed.py feeds this corpus
through BPF_PROG_TEST_RUN to every XDP program."""

from __future__ import annotations

import re
from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from packetlab.ebpf.loader import BPF_DIR

MAC_A, MAC_B = "02:00:00:00:07:01", "02:00:00:00:07:02"


ETH = Ether(src=MAC_A, dst=MAC_B)


V4 = dict(src="10.7.1.1", dst="10.7.2.2")


V6 = dict(src="fd07:1::1", dst="fd07:2::2")


PAD = b"\x00" * 8


def _patch(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


def corpus() -> list[tuple[str, bytes, str, str]]:
    """(name, frame, category 07-xdp-counter must count, verdict 07-xdp-icmp-echo must return)."""
    udp4 = bytes(ETH / IP(**V4) / UDP(sport=1, dport=9) / PAD)
    tcp4 = bytes(ETH / IP(**V4) / TCP(sport=1, dport=80) / PAD)
    echo4 = bytes(ETH / IP(**V4) / ICMP(id=1, seq=1) / PAD)
    echo6 = bytes(ETH / IPv6(**V6) / ICMPv6EchoRequest(id=1, seq=1) / PAD)
    opts = [IPOption_RR(routers=["10.7.0.1"]), IPOption_NOP()]  # 8 bytes: ihl 7
    max_opts = [IPOption_RR(routers=[f"10.7.0.{i}" for i in range(9)]), IPOption_NOP()]  # 40 bytes: ihl 15
    # PL_MAX_IPV6_EXT (parse.h) extension headers: the most the parsers skip
    four_ext = IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt()
    c: list[tuple[str, bytes, str, str]] = [
        # --- well-formed references
        ("ipv4-udp", udp4, "IPv4 UDP", "XDP_PASS"),
        ("ipv4-tcp", tcp4, "IPv4 TCP", "XDP_PASS"),
        ("ipv4-echo-request", echo4, "IPv4 ICMP", "XDP_TX"),
        ("ipv4-echo-reply", bytes(ETH / IP(**V4) / ICMP(type=0) / PAD), "IPv4 ICMP", "XDP_PASS"),
        ("ipv4-gre", bytes(ETH / IP(proto=47, **V4) / PAD), "IPv4 other", "XDP_PASS"),
        ("ipv6-echo-request", echo6, "IPv6 ICMPv6", "XDP_TX"),
        ("ipv6-udp", bytes(ETH / IPv6(**V6) / UDP(dport=9) / PAD), "IPv6 UDP", "XDP_PASS"),
        ("ipv6-tcp", bytes(ETH / IPv6(**V6) / TCP(dport=80) / PAD), "IPv6 TCP", "XDP_PASS"),
        (
            "arp",
            bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.7.1.1", pdst="10.7.1.2")),
            "non-IP",
            "XDP_PASS",
        ),
        ("lldp-ethertype", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x88CC) / (b"\x02" * 46)), "non-IP", "XDP_PASS"),
        ("all-zero-60", bytes(60), "non-IP", "XDP_PASS"),
        ("all-ff-60", b"\xff" * 60, "non-IP", "XDP_PASS"),
        ("ipv4-udp-1514", bytes(ETH / IP(**V4) / UDP(dport=9) / (b"x" * 1472)), "IPv4 UDP", "XDP_PASS"),
        # --- VLAN tags
        ("vlan-udp", bytes(ETH / Dot1Q(vlan=7) / IP(**V4) / UDP(dport=9) / PAD), "IPv4 UDP", "XDP_PASS"),
        (
            "qinq-udp",
            bytes(ETH / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IP(**V4) / UDP(dport=9) / PAD),
            "IPv4 UDP",
            "XDP_PASS",
        ),
        # id 0, seq 0, zero payload: the reply's ICMP bytes are all zero, the one case where the
        # incremental update must write 0xffff rather than 0x0000 (see bpf/include/csum.h)
        ("vlan-echo-request", bytes(ETH / Dot1Q(vlan=7) / IP(**V4) / ICMP() / PAD), "IPv4 ICMP", "XDP_TX"),
        (
            "qinq-echo6-request",
            bytes(ETH / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IPv6(**V6) / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_TX",
        ),
        (
            "triple-vlan",
            bytes(ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(**V4) / UDP() / PAD),
            "malformed",
            "XDP_PASS",
        ),
        ("vlan-tag-truncated", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x8100)) + b"\x00\x07", "malformed", "XDP_PASS"),
        ("vlan-ethertype-only", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x8100)), "malformed", "XDP_PASS"),
        ("vlan-arp", bytes(ETH / Dot1Q(vlan=7) / ARP()), "non-IP", "XDP_PASS"),
        # --- IPv4 header oddities
        ("ipv4-ethertype-only", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x0800)), "malformed", "XDP_PASS"),
        ("ipv4-header-cut-10", udp4[:24], "malformed", "XDP_PASS"),
        ("ipv4-ihl-4", _patch(udp4, 14, b"\x44"), "malformed", "XDP_PASS"),
        ("ipv4-ihl-0", _patch(udp4, 14, b"\x40"), "malformed", "XDP_PASS"),
        ("ipv4-ihl-15-short", _patch(udp4, 14, b"\x4f"), "malformed", "XDP_PASS"),
        ("ipv4-version-6", _patch(udp4, 14, b"\x65"), "malformed", "XDP_PASS"),
        ("ipv4-options-udp", bytes(ETH / IP(options=opts, **V4) / UDP(dport=9) / PAD), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-options-tcp", bytes(ETH / IP(options=opts, **V4) / TCP(dport=80) / PAD), "IPv4 TCP", "XDP_PASS"),
        ("ipv4-options-echo", bytes(ETH / IP(options=opts, **V4) / ICMP() / PAD), "IPv4 ICMP", "XDP_PASS"),
        ("ipv4-max-options-tcp", bytes(ETH / IP(options=max_opts, **V4) / TCP() / PAD), "IPv4 TCP", "XDP_PASS"),
        ("ipv4-options-udp-cut", bytes(ETH / IP(options=opts, **V4) / UDP())[: 14 + 28 + 4], "malformed", "XDP_PASS"),
        ("ipv4-total-length-too-big", _patch(udp4, 16, b"\x03\xe8"), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-total-length-too-small", _patch(udp4, 16, b"\x00\x0a"), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-later-fragment", bytes(ETH / IP(frag=100, proto=17, **V4) / (b"\xff" * 3)), "fragment", "XDP_PASS"),
        ("ipv4-first-fragment-udp", bytes(ETH / IP(flags="MF", **V4) / UDP(dport=9) / PAD), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-fragmented-echo", bytes(ETH / IP(flags="MF", **V4) / ICMP() / PAD), "IPv4 ICMP", "XDP_PASS"),
        (
            "ipv4-echo-to-broadcast",
            bytes(ETH / IP(src="10.7.1.1", dst="255.255.255.255") / ICMP()),
            "IPv4 ICMP",
            "XDP_PASS",
        ),
        ("ipv4-echo-to-multicast", bytes(ETH / IP(src="10.7.1.1", dst="224.0.0.1") / ICMP()), "IPv4 ICMP", "XDP_PASS"),
        (
            "ipv4-echo-broadcast-mac",
            bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / IP(**V4) / ICMP()),
            "IPv4 ICMP",
            "XDP_PASS",
        ),
        ("ipv4-echo-code-1", bytes(ETH / IP(**V4) / ICMP(code=1) / PAD), "IPv4 ICMP", "XDP_PASS"),
        # --- L4 oddities
        ("tcp-doff-0", _patch(tcp4, 14 + 20 + 12, b"\x00"), "malformed", "XDP_PASS"),
        ("tcp-doff-4", _patch(tcp4, 14 + 20 + 12, b"\x40"), "malformed", "XDP_PASS"),
        ("tcp-doff-15-short", _patch(tcp4, 14 + 20 + 12, b"\xf0"), "malformed", "XDP_PASS"),
        ("tcp-cut-10", tcp4[: 14 + 20 + 10], "malformed", "XDP_PASS"),
        ("udp-cut-4", udp4[: 14 + 20 + 4], "malformed", "XDP_PASS"),
        ("icmp-cut-2", echo4[: 14 + 20 + 2], "malformed", "XDP_PASS"),
        ("ipv4-no-l4-bytes", udp4[:34], "malformed", "XDP_PASS"),
        # --- IPv6 header and extension headers
        ("ipv6-ethertype-only", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x86DD)), "malformed", "XDP_PASS"),
        ("ipv6-header-cut-20", echo6[:34], "malformed", "XDP_PASS"),
        ("ipv6-version-4", _patch(echo6, 14, b"\x40"), "malformed", "XDP_PASS"),
        ("ipv6-hbh-udp", bytes(ETH / IPv6(**V6) / IPv6ExtHdrHopByHop() / UDP(dport=9) / PAD), "IPv6 UDP", "XDP_PASS"),
        (
            "ipv6-routing-tcp",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrRouting() / TCP(dport=80) / PAD),
            "IPv6 TCP",
            "XDP_PASS",
        ),
        (
            "ipv6-dstopt-echo",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrDestOpt() / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "ipv6-hbh-echo",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        ("ipv6-4-ext-udp", bytes(ETH / IPv6(**V6) / four_ext / UDP(dport=9) / PAD), "IPv6 UDP", "XDP_PASS"),
        (
            "ipv6-5-ext-udp",
            bytes(ETH / IPv6(**V6) / four_ext / IPv6ExtHdrDestOpt() / UDP(dport=9) / PAD),
            "IPv6 other",
            "XDP_PASS",
        ),
        (
            "ipv6-frag-first-udp",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrFragment(m=1) / UDP(dport=9) / PAD),
            "IPv6 UDP",
            "XDP_PASS",
        ),
        (
            "ipv6-frag-later",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrFragment(offset=100, nh=17) / (b"\xff" * 3)),
            "fragment",
            "XDP_PASS",
        ),
        (
            "ipv6-fragmented-echo",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrFragment(m=1) / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "ipv6-hbh-len-overflow",
            _patch(bytes(ETH / IPv6(**V6) / IPv6ExtHdrHopByHop() / UDP() / PAD), 55, b"\xff"),
            "malformed",
            "XDP_PASS",
        ),
        ("ipv6-hbh-cut-1", bytes(ETH / IPv6(nh=0, **V6)) + b"\x11", "malformed", "XDP_PASS"),
        ("ipv6-frag-cut-4", bytes(ETH / IPv6(nh=44, **V6)) + b"\x11\x00\x00\x00", "malformed", "XDP_PASS"),
        ("ipv6-udp-cut-4", bytes(ETH / IPv6(**V6) / UDP())[: 14 + 40 + 4], "malformed", "XDP_PASS"),
        ("ipv6-tcp-cut-12", bytes(ETH / IPv6(**V6) / TCP())[: 14 + 40 + 12], "malformed", "XDP_PASS"),
        ("ipv6-icmp6-cut-4", echo6[: 14 + 40 + 4], "malformed", "XDP_PASS"),
        (
            "ipv6-echo-to-multicast",
            bytes(ETH / IPv6(src="fd07:1::1", dst="ff02::1") / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "vlan-ipv6-2-ext-udp",
            bytes(ETH / Dot1Q(vlan=7) / IPv6(**V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(dport=9) / PAD),
            "IPv6 UDP",
            "XDP_PASS",
        ),
    ]
    return c


CORPUS = corpus()


def test_corpus_is_sane():
    frames = dict((name, frame) for name, frame, *_ in CORPUS)
    assert frames["ipv4-options-udp"][14] == 0x47 and frames["ipv4-max-options-tcp"][14] == 0x4F  # ihl 7, 15
    names = [name for name, *_ in CORPUS]
    assert len(names) == len(set(names))
    assert all(len(frame) >= 14 for _, frame, *_ in CORPUS)


# ---- every XDP program in bpf/ -----------------------------------------------------------------


_BCC_ENTRY = re.compile(r"^\s*int\s+(\w+)\s*\(\s*struct\s+xdp_md\s*\*", re.M)


_CORE_ENTRY = re.compile(r'SEC\("xdp[^"]*"\)\s*\n?\s*int\s+(\w+)', re.M)


def xdp_programs() -> list[tuple[str, str, str]]:
    """(file, function, kind) for every XDP entry point in bpf/*.c, except *fail* programs,
    which are rejected by the verifier on purpose, and assignment starters (``*-assign-*``),
    which are function bodies spliced into a host program, not programs of their own (their
    assembled programs are graded by tests/kernel/test_*_assignments.py)."""
    out = []
    for path in sorted(BPF_DIR.glob("*.c")):
        if "fail" in path.name or "-assign-" in path.name:
            continue
        text = path.read_text()
        if path.name.endswith(".bpf.c"):
            out += [(path.name, fn, "core") for fn in _CORE_ENTRY.findall(text)]
        else:
            out += [(path.name, fn, "bcc") for fn in _BCC_ENTRY.findall(text)]
    return out


def test_the_sweep_covers_the_known_parsers():
    found = {(s, f) for s, f, _ in xdp_programs()}
    for must in [
        ("00-xdp-pass.c", "xdp_pass"),
        ("07-xdp-counter.c", "xdp_counter"),
        ("07-xdp-icmp-echo.c", "xdp_icmp_echo"),
        ("07-xdp-redirect.c", "xdp_redirect_wire"),
    ]:
        assert must in found
    assert not any("fail" in s or "-assign-" in s for s, _ in found)


# ---- module 07's programs: exact verdicts -----------------------------------------------------------


def test_counter_parser_limits_match_parse_h():
    """The corpus's 'beyond the limit' cases are built on parse.h's constants."""
    header = (Path(BPF_DIR) / "include" / "parse.h").read_text()
    assert re.search(r"#define PL_MAX_VLAN 2\b", header)
    assert re.search(r"#define PL_MAX_IPV6_EXT 4\b", header)
