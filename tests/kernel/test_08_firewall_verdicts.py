"""Module 08: the XDP firewall's verdicts, through BPF_PROG_TEST_RUN on the real kernel.

A table of crafted frames with the verdict each must get — port-range
boundaries, /0 /32 /128 prefixes, VLAN tags, IPv6 extension headers,
fragments, truncated and malformed headers — then the counters each rule
must show; a randomised comparison with the reference (linear scan); rate
limiting; and the guarantee that a rejected rule file changes nothing.
"""

from __future__ import annotations

import random
import struct

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from packetlab.ebpf.maps import BpfMap
from packetlab.errors import PacketlabError
from packetlab.tools.firewall import layout as L
from packetlab.tools.firewall.compiler import compile_rules
from packetlab.tools.firewall.layout import Capacity
from packetlab.tools.firewall.program import CapacityError, Firewall
from packetlab.tools.firewall.reference import decide
from packetlab.tools.firewall.rulefile import parse_rules
from packetlab.tools.firewall.rules import RuleError

E = dict(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
SRV4, SRV6 = "10.0.2.1", "fd00:9::1"

RULES = """\
default: drop
fragments: l3
rules:
  - name: admin-ssh          # /28 boundaries
    action: allow
    src: 10.0.1.0/28
    proto: tcp
    dport: 22
  - name: web                # port list with a range
    action: allow
    proto: tcp
    dport: [80, 443, "8000-8080"]
  - name: blocked-host       # a /32
    action: drop
    src: 192.0.2.7/32
  - name: v6-admin
    action: allow
    src: "fd00:1::/64"
    proto: tcp
    dport: 22
  - name: v6-host            # a /128
    action: allow
    src: "fd00:2::5/128"
  - name: syn-9000           # TCP flags: new connections only
    action: allow
    proto: tcp
    dport: 9000
    tcp_flags: "syn,!ack"
  - name: dns
    action: allow
    proto: udp
    dport: 53
  - name: high-udp           # both port dimensions, boundaries 1024 and 65535
    action: allow
    proto: udp
    dport: 1024-65535
    sport: 1024-65535
  - name: icmp
    action: allow
    proto: icmp
  - name: icmpv6
    action: allow
    proto: icmpv6
"""

ALLOW_ALL_BUT = """\
default: allow
rules:
  - name: gre-any            # /0 and ::/0 prefixes
    action: drop
    src: 0.0.0.0/0
    proto: 47
  - name: v6-any-esp
    action: drop
    src: "::/0"
    proto: esp
"""


def t4(src, dport, flags="S", sport=40000, **ip):
    return Ether(**E) / IP(src=src, dst=SRV4, **ip) / TCP(sport=sport, dport=dport, flags=flags)


def u4(src, dport, sport=40000):
    return Ether(**E) / IP(src=src, dst=SRV4) / UDP(sport=sport, dport=dport)


def t6(src, dport, flags="S", ext=None):
    pkt = Ether(**E) / IPv6(src=src, dst=SRV6)
    if ext is not None:
        pkt = pkt / ext
    return pkt / TCP(sport=40000, dport=dport, flags=flags)


def cut(pkt, n):
    """The first n bytes of a frame (a truncated header)."""
    return bytes(pkt)[:n]


ETH, IP4, IP6 = 14, 20, 40

TABLE = [
    # (description, frame, verdict, counter that must count it)
    ("ssh from 10.0.1.0 (first of /28)", t4("10.0.1.0", 22), "XDP_PASS", "admin-ssh"),
    ("ssh from 10.0.1.15 (last of /28)", t4("10.0.1.15", 22), "XDP_PASS", "admin-ssh"),
    ("ssh from 10.0.1.16 (outside /28)", t4("10.0.1.16", 22), "XDP_DROP", "default"),
    ("ssh from 10.0.0.255 (outside /28)", t4("10.0.0.255", 22), "XDP_DROP", "default"),
    ("tcp 21 from admin", t4("10.0.1.1", 21), "XDP_DROP", "default"),
    ("tcp 23 from admin", t4("10.0.1.1", 23), "XDP_DROP", "default"),
    ("web 80", t4("198.51.100.1", 80), "XDP_PASS", "web"),
    ("web 79 (below)", t4("198.51.100.1", 79), "XDP_DROP", "default"),
    ("web 81 (above)", t4("198.51.100.1", 81), "XDP_DROP", "default"),
    ("web 443", t4("198.51.100.1", 443), "XDP_PASS", "web"),
    ("web 7999 (below range)", t4("198.51.100.1", 7999), "XDP_DROP", "default"),
    ("web 8000 (range start)", t4("198.51.100.1", 8000), "XDP_PASS", "web"),
    ("web 8080 (range end)", t4("198.51.100.1", 8080), "XDP_PASS", "web"),
    ("web 8081 (above range)", t4("198.51.100.1", 8081), "XDP_DROP", "default"),
    ("udp to 80 is not web", u4("198.51.100.1", 80), "XDP_DROP", "default"),
    ("blocked /32 host, web port", t4("192.0.2.7", 80), "XDP_PASS", "web"),  # web comes first
    ("blocked /32 host, udp", u4("192.0.2.7", 9), "XDP_DROP", "blocked-host"),
    ("neighbour of the /32", u4("192.0.2.8", 9), "XDP_DROP", "default"),
    ("blocked /32 host, icmp", Ether(**E) / IP(src="192.0.2.7", dst=SRV4) / ICMP(), "XDP_DROP", "blocked-host"),
    ("icmp from anyone", Ether(**E) / IP(src="203.0.113.9", dst=SRV4) / ICMP(), "XDP_PASS", "icmp"),
    ("syn to 9000", t4("203.0.113.9", 9000, "S"), "XDP_PASS", "syn-9000"),
    ("syn+ack to 9000", t4("203.0.113.9", 9000, "SA"), "XDP_DROP", "default"),
    ("ack to 9000", t4("203.0.113.9", 9000, "A"), "XDP_DROP", "default"),
    ("syn+ece+cwr to 9000 (other flags free)", t4("203.0.113.9", 9000, "SEC"), "XDP_PASS", "syn-9000"),
    ("dns", u4("203.0.113.9", 53), "XDP_PASS", "dns"),
    ("udp 1024->1024", u4("203.0.113.9", 1024, 1024), "XDP_PASS", "high-udp"),
    ("udp 65535->65535", u4("203.0.113.9", 65535, 65535), "XDP_PASS", "high-udp"),
    ("udp 1023 dport", u4("203.0.113.9", 1023, 5000), "XDP_DROP", "default"),
    ("udp 1023 sport", u4("203.0.113.9", 5000, 1023), "XDP_DROP", "default"),
    ("udp port 0", u4("203.0.113.9", 0, 0), "XDP_DROP", "default"),
    # IPv6
    ("v6 ssh from admin /64", t6("fd00:1::abcd", 22), "XDP_PASS", "v6-admin"),
    ("v6 ssh from outside /64", t6("fd00:1:0:1::1", 22), "XDP_DROP", "default"),
    ("v6 web (proto rule covers both families)", t6("2001:db8::1", 443), "XDP_PASS", "web"),
    ("v6 /128 host, any port", t6("fd00:2::5", 5555), "XDP_PASS", "v6-host"),
    ("v6 neighbour of /128", t6("fd00:2::6", 5555), "XDP_DROP", "default"),
    ("v6 hop-by-hop then ssh", t6("fd00:1::1", 22, ext=IPv6ExtHdrHopByHop()), "XDP_PASS", "v6-admin"),
    (
        "v6 routing + dest-opts then ssh",
        t6("fd00:1::1", 22, ext=IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt()),
        "XDP_PASS",
        "v6-admin",
    ),
    (
        "v6 four extension headers",
        t6("fd00:1::1", 22, ext=IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / IPv6ExtHdrRouting() / IPv6ExtHdrDestOpt()),
        "XDP_PASS",
        "v6-admin",
    ),
    (
        "v6 five extension headers (more than we walk)",
        t6(
            "fd00:1::1",
            22,
            ext=IPv6ExtHdrHopByHop()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrRouting()
            / IPv6ExtHdrDestOpt()
            / IPv6ExtHdrDestOpt(),
        ),
        "XDP_DROP",
        "malformed",
    ),
    (
        "v6 first fragment (offset 0) with ports",
        t6("fd00:1::1", 22, ext=IPv6ExtHdrFragment(offset=0, m=1)),
        "XDP_PASS",
        "v6-admin",
    ),
    (
        "v6 later fragment: no ports, port rule cannot match",
        Ether(**E) / IPv6(src="fd00:1::1", dst=SRV6) / IPv6ExtHdrFragment(offset=100, nh=6) / Raw(b"x" * 16),
        "XDP_DROP",
        "default",
    ),
    (
        "v6 later fragment from the /128 host (address-only rule)",
        Ether(**E) / IPv6(src="fd00:2::5", dst=SRV6) / IPv6ExtHdrFragment(offset=100, nh=17) / Raw(b"x" * 16),
        "XDP_PASS",
        "v6-host",
    ),
    (
        "icmpv6 neighbour solicitation",
        Ether(**E) / IPv6(src="fe80::1", dst="ff02::1:ff00:1", nh=58) / Raw(b"\x87" + b"\0" * 23),
        "XDP_PASS",
        "icmpv6",
    ),
    # VLAN
    (
        "802.1Q tagged ssh from admin",
        Ether(**E) / Dot1Q(vlan=10) / IP(src="10.0.1.2", dst=SRV4) / TCP(dport=22),
        "XDP_PASS",
        "admin-ssh",
    ),
    (
        "QinQ (802.1ad + 802.1Q) tagged web",
        Ether(**E) / Dot1AD(vlan=20) / Dot1Q(vlan=10) / IP(src="1.2.3.4", dst=SRV4) / TCP(dport=80),
        "XDP_PASS",
        "web",
    ),
    (
        "QinQ tagged, dropped by default",
        Ether(**E) / Dot1AD(vlan=20) / Dot1Q(vlan=10) / IP(src="1.2.3.4", dst=SRV4) / TCP(dport=81),
        "XDP_DROP",
        "default",
    ),
    (
        "three VLAN tags (a bypass attempt)",
        Ether(**E) / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(src="10.0.1.2", dst=SRV4) / TCP(dport=22),
        "XDP_DROP",
        "malformed",
    ),
    (
        "tagged IPv6",
        Ether(**E) / Dot1Q(vlan=5) / IPv6(src="fd00:1::9", dst=SRV6) / TCP(dport=22),
        "XDP_PASS",
        "v6-admin",
    ),
    # IPv4 options and fragments
    ("IPv4 with options (ihl 6)", t4("10.0.1.3", 22, options=b"\x01\x01\x01\x00"), "XDP_PASS", "admin-ssh"),
    (
        "TCP with options (doff 8)",
        Ether(**E)
        / IP(src="10.0.1.3", dst=SRV4)
        / TCP(dport=22, options=[("MSS", 1460), ("SAckOK", b""), ("WScale", 7)]),
        "XDP_PASS",
        "admin-ssh",
    ),
    (
        "IPv4 first fragment with full TCP header",
        Ether(**E) / IP(src="198.51.100.1", dst=SRV4, flags="MF", frag=0) / TCP(dport=80) / Raw(b"x" * 32),
        "XDP_PASS",
        "web",
    ),
    (
        "IPv4 later fragment of web traffic: no ports",
        Ether(**E) / IP(src="198.51.100.1", dst=SRV4, frag=100, proto=6) / Raw(b"x" * 32),
        "XDP_DROP",
        "default",
    ),
    (
        "IPv4 later fragment from the blocked /32",
        Ether(**E) / IP(src="192.0.2.7", dst=SRV4, frag=100, proto=17) / Raw(b"x" * 32),
        "XDP_DROP",
        "blocked-host",
    ),
    (
        "IPv4 later fragment, icmp (address/proto rule)",
        Ether(**E) / IP(src="198.51.100.1", dst=SRV4, frag=50, proto=1) / Raw(b"x" * 32),
        "XDP_PASS",
        "icmp",
    ),
    (
        "TCP fragment at offset 8 (RFC 1858)",
        Ether(**E) / IP(src="198.51.100.1", dst=SRV4, frag=1, proto=6) / Raw(b"x" * 32),
        "XDP_DROP",
        "malformed",
    ),
    (
        "tiny first fragment: TCP header cut",
        cut(Ether(**E) / IP(src="198.51.100.1", dst=SRV4, flags="MF") / TCP(dport=80), ETH + IP4 + 8),
        "XDP_DROP",
        "malformed",
    ),
    # truncated and malformed
    ("Ethernet header only, says IPv4", cut(t4("10.0.1.1", 22), ETH), "XDP_DROP", "malformed"),
    ("IPv4 header cut at 10 bytes", cut(t4("10.0.1.1", 22), ETH + 10), "XDP_DROP", "malformed"),
    ("TCP header cut at 12 bytes", cut(t4("10.0.1.1", 22), ETH + IP4 + 12), "XDP_DROP", "malformed"),
    ("UDP header cut at 4 bytes", cut(u4("1.2.3.4", 53), ETH + IP4 + 4), "XDP_DROP", "malformed"),
    ("IPv6 header cut at 30 bytes", cut(t6("fd00:1::1", 22), ETH + 30), "XDP_DROP", "malformed"),
    (
        "IPv4 ihl 4 (too small)",
        bytes(t4("10.0.1.1", 22))[:ETH] + bytes([0x44]) + bytes(t4("10.0.1.1", 22))[ETH + 1 :],
        "XDP_DROP",
        "malformed",
    ),
    (
        "EtherType IPv4, version 6 inside",
        bytes(t4("10.0.1.1", 22))[:ETH] + bytes([0x65]) + bytes(t4("10.0.1.1", 22))[ETH + 1 :],
        "XDP_DROP",
        "malformed",
    ),
    (
        "truncated VLAN tag",
        cut(Ether(**E) / Dot1Q(vlan=1) / IP(src="10.0.1.1", dst=SRV4), ETH + 2),
        "XDP_DROP",
        "malformed",
    ),
    # not IP
    ("ARP passes", Ether(**E) / ARP(psrc="10.0.1.1", pdst=SRV4), "XDP_PASS", "not-ip"),
    ("LLDP-ish EtherType passes", Ether(**E, type=0x88CC) / Raw(b"\0" * 30), "XDP_PASS", "not-ip"),
]


@pytest.fixture(scope="module")
def fw():
    firewall = Firewall.load(RULES)
    yield firewall
    firewall.close()


@pytest.fixture()
def main_rules(fw):
    fw.apply(RULES)
    fw.clear_counters()
    return fw


def test_program_maps_match_the_python_layouts(fw):
    assert set(fw.maps) == set(L.MAP_NAMES)
    for name, (key, value) in L.MAPS.items():
        assert (fw.maps[name].info.key_size, fw.maps[name].info.value_size) == (key.size, value.size)


def test_layout_mismatch_is_refused_naming_both_sides(fw):
    wrong = struct.Struct("<B3xIIIQ")  # struct fw_rule without its last field: 32 bytes, not 40
    with pytest.raises(PacketlabError, match="disagree on its layout") as err:
        BpfMap(fw.maps["fw_rule"].fd, "fw_rule", L.U32, wrong)
    assert f"value {L.RULE.size} B" in str(err.value) and "value 32 B" in str(err.value)


def test_verdict_table(main_rules):
    fw = main_rules
    rs = parse_rules(RULES)
    wrong = []
    expected_counts: dict[str, int] = {}
    for what, frame, verdict, counter in TABLE:
        data = bytes(frame)
        got = fw.test_run(data).verdict
        ref = decide(rs, data)
        if got != verdict or ref.verdict != verdict or ref.counter != counter:
            wrong.append(
                f"{what}: kernel {got}, reference {ref.verdict} by {ref.counter}, expected {verdict} by {counter}"
            )
        expected_counts[counter] = expected_counts.get(counter, 0) + 1
    assert not wrong, "\n".join(wrong)
    st = fw.status()
    got_counts = {r.name: r.packets for r in st.rules if r.packets}
    got_counts.update({k: v["packets"] for k, v in st.special.items() if v["packets"]})
    assert got_counts == expected_counts


def test_bytes_are_counted_per_rule(main_rules):
    fw = main_rules
    frames = [bytes(t4("198.51.100.1", 80) / Raw(b"x" * n)) for n in (0, 100, 1000)]
    for f in frames:
        fw.test_run(f)
    web = fw.status().rule("web")
    assert web.packets == 3 and web.bytes == sum(len(f) for f in frames)


def test_zero_and_full_prefixes(fw):
    fw.apply(ALLOW_ALL_BUT)
    gre4 = Ether(**E) / IP(src="1.1.1.1", dst=SRV4, proto=47) / Raw(b"\0" * 8)
    gre6 = Ether(**E) / IPv6(src="fd00::1", dst=SRV6, nh=47) / Raw(b"\0" * 8)
    esp6 = Ether(**E) / IPv6(src="2001:db8::1", dst=SRV6, nh=50) / Raw(b"\0" * 8)
    esp4 = Ether(**E) / IP(src="1.1.1.1", dst=SRV4, proto=50) / Raw(b"\0" * 8)
    assert fw.verdict(gre4) == "XDP_DROP"  # 0.0.0.0/0 matches every IPv4 source...
    assert fw.verdict(gre6) == "XDP_PASS"  # ...and no IPv6 one
    assert fw.verdict(esp6) == "XDP_DROP"
    assert fw.verdict(esp4) == "XDP_PASS"
    assert fw.verdict(t4("1.1.1.1", 80)) == "XDP_PASS"


@pytest.mark.parametrize("policy,verdict", [("pass", "XDP_PASS"), ("drop", "XDP_DROP"), ("l3", "XDP_DROP")])
def test_fragment_policies(fw, policy, verdict):
    fw.apply(RULES.replace("fragments: l3", f"fragments: {policy}"))
    fw.clear_counters()
    later = Ether(**E) / IP(src="198.51.100.1", dst=SRV4, frag=100, proto=6) / Raw(b"x" * 32)
    later6 = Ether(**E) / IPv6(src="2001:db8::1", dst=SRV6) / IPv6ExtHdrFragment(offset=9, nh=6) / Raw(b"x" * 16)
    assert fw.verdict(later) == verdict and fw.verdict(later6) == verdict
    counter = "fragment" if policy != "l3" else "default"
    assert fw.status().special[counter]["packets"] == 2
    # first fragments are always classified with their ports
    first = Ether(**E) / IP(src="198.51.100.1", dst=SRV4, flags="MF") / TCP(dport=80) / Raw(b"x" * 32)
    assert fw.verdict(first) == "XDP_PASS"


def test_kernel_agrees_with_the_reference_on_random_rules_and_packets(fw):
    """Random rule sets (rate limits included) and packets: the kernel's verdict is the reference's.

    A rate-limit rule here allows 1 packet a minute after a burst of 1-3, so within a set's 50
    packets (milliseconds apart) each source passes exactly `burst` times and is dropped after:
    the reference counts that per (rule, source), and each set's rate-limit rules have names of
    their own, so they start with fresh buckets (a re-applied identical rule keeps its bucket)."""
    rnd = random.Random(808)
    nets4 = ["10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.128/25", "0.0.0.0/0"]
    nets6 = ["fd00::/8", "fd00:1::/32", "fd00:1::5/128", "::/0"]
    checked = sets = limited = 0
    while sets < 40:
        rules = []
        for i in range(rnd.randint(1, 14)):
            fam = rnd.choice([nets4, nets6, None])
            r = {"name": f"r{i}", "action": rnd.choice(["allow", "drop", "rate-limit"])}
            if r["action"] == "rate-limit":
                r.update(name=f"s{sets}-rl{i}", rate="1/m", burst=rnd.randint(1, 3))
            if fam and rnd.random() < 0.8:
                r["src"] = rnd.sample(fam, rnd.randint(1, 2))
            if fam and rnd.random() < 0.4:
                r["dst"] = rnd.choice(fam)
            proto = rnd.choice([None, "tcp", "udp", ["tcp", "udp"], "gre"])
            if proto:
                r["proto"] = proto
            if proto in ("tcp", "udp", ["tcp", "udp"]) and rnd.random() < 0.7:
                lo = rnd.choice([0, 22, 80, 1024, 65535])
                r["dport"] = f"{lo}-{min(65535, lo + rnd.choice([0, 1, 100]))}"
                if rnd.random() < 0.3:
                    r["sport"] = rnd.choice([1000, "1000-2000"])
            if proto == "tcp" and rnd.random() < 0.3:
                r["tcp_flags"] = rnd.choice(["syn,!ack", "ack", "rst", "!syn"])
            rules.append(r)
        try:
            rs = parse_rules(yaml.safe_dump({"default": rnd.choice(["allow", "drop"]), "rules": rules}))
            fw.apply(rs)
        except RuleError:
            continue
        sets += 1
        buckets: dict[tuple[str, str], int] = {}  # (rate-limit rule, source) -> packets it passed
        for _ in range(50):
            v6 = rnd.random() < 0.4
            src = rnd.choice(
                ["fd00:1::5", "fd00:1::6", "fd00:2::1", "fe80::1"]
                if v6
                else ["10.1.2.3", "10.1.2.200", "10.1.3.1", "10.9.9.9", "8.8.8.8"]
            )
            l3 = IPv6(src=src, dst="fd00:1::7") if v6 else IP(src=src, dst=rnd.choice(["10.1.2.4", "192.168.0.1"]))
            kind = rnd.random()
            dport = rnd.choice([0, 21, 22, 23, 79, 80, 81, 180, 181, 1023, 1024, 1124, 1125, 65534, 65535])
            sport = rnd.choice([999, 1000, 1500, 2000, 2001])
            if kind < 0.4:
                l4 = TCP(sport=sport, dport=dport, flags=rnd.choice(["S", "SA", "A", "R", "PA", "F", "FA"]))
            elif kind < 0.8:
                l4 = UDP(sport=sport, dport=dport)
            else:
                l4 = Raw(b"\0" * 8)
            frame = Ether(**E)
            if rnd.random() < 0.2:
                frame = frame / Dot1Q(vlan=7)
            frame = frame / l3
            if v6 and rnd.random() < 0.2:
                frame = frame / IPv6ExtHdrHopByHop()
            if kind >= 0.8 and not v6:
                frame[IP].proto = 47
            data = bytes(frame / l4)
            want = decide(rs, data)
            verdict, rule = want.verdict, next((r for r in rs.rules if r.name == want.rule), None)
            if rule is not None and rule.action == "rate-limit":
                key = (rule.name, str(want.fields.src))
                buckets[key] = buckets.get(key, 0) + 1
                limited += buckets[key] > (rule.burst or 0)
                verdict = "XDP_DROP" if buckets[key] > (rule.burst or 0) else "XDP_PASS"
            assert fw.test_run(data).verdict == verdict, (rs.to_yaml(), frame.summary())
            checked += 1
    assert checked >= 2000 and limited >= 50  # rate limits did limit, and agreed


def test_rate_limit_is_per_source_token_bucket(fw):
    fw.apply("default: drop\nrules:\n  - {name: ping, action: rate-limit, proto: icmp, rate: 1/s, burst: 4}\n")
    fw.clear_counters()
    a = Ether(**E) / IP(src="10.0.0.1", dst=SRV4) / ICMP()
    b = Ether(**E) / IP(src="10.0.0.2", dst=SRV4) / ICMP()
    verdicts = [fw.verdict(a) for _ in range(10)]
    assert verdicts[:4] == ["XDP_PASS"] * 4 and verdicts[4:] == ["XDP_DROP"] * 6
    assert fw.verdict(b) == "XDP_PASS"  # a different source has its own bucket
    st = fw.status().rule("ping")
    assert (st.packets, st.limited) == (11, 6)


def test_rate_limit_bucket_survives_a_reapply_of_the_same_rule(fw):
    text = "default: drop\nrules:\n  - {name: ping, action: rate-limit, proto: icmp, rate: 1/s, burst: 2}\n"
    fw.apply(text)
    a = Ether(**E) / IP(src="10.0.0.9", dst=SRV4) / ICMP()
    assert [fw.verdict(a) for _ in range(3)] == ["XDP_PASS", "XDP_PASS", "XDP_DROP"]
    before = fw.status().rule("ping")
    fw.apply(text)  # same rule: same counter, same bucket
    assert fw.verdict(a) == "XDP_DROP"
    after = fw.status().rule("ping")
    assert after.counter == before.counter and after.packets == before.packets + 1


def test_counters_follow_rules_across_reordering(fw):
    fw.apply(
        "default: drop\nrules:\n  - {name: a, action: allow, proto: udp}\n  - {name: b, action: allow, proto: tcp}\n"
    )
    fw.clear_counters()
    fw.verdict(u4("1.2.3.4", 9))
    fw.verdict(t4("1.2.3.4", 9))
    fw.verdict(t4("1.2.3.4", 9))
    fw.apply(
        "default: drop\nrules:\n  - {name: b, action: allow, proto: tcp}\n  - {name: c, action: drop, proto: icmp}\n"
        "  - {name: a, action: allow, proto: udp}\n"
    )
    st = fw.status()
    assert (st.rule("a").packets, st.rule("b").packets, st.rule("c").packets) == (1, 2, 0)


def test_rejected_rule_file_changes_nothing(fw):
    fw.apply(RULES)
    slot, gen = fw.active_slot()
    probes = [bytes(f) for _, f, _, _ in TABLE[:20]]
    before = [fw.test_run(p).verdict for p in probes]
    for bad in (
        "default: drop\nrules:\n  - {action: allow, src: 10.0.0.0/33}\n",
        "default: drop\nrules:\n  - {name: a, action: allow, proto: tcp}\n  - {name: b, action: drop, proto: tcp, dport: 1}\n",
        "not: [valid\n",
    ):
        with pytest.raises(RuleError):
            fw.apply(bad)
        assert fw.active_slot() == (slot, gen)
        assert [fw.test_run(p).verdict for p in probes] == before


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    case=st.sampled_from(
        [("src", v) for v in ("10.0.0.0/40", "1.2.3.4/8", 7, "::1/129")]
        + [("dport", v) for v in (99999, -1, "80-70", "www")]
        + [("action", v) for v in ("maybe", None, 3)]
        + [("proto", v) for v in ("tcpp", 300, "icmp")]  # icmp has no ports
        + [("burst", v) for v in (0, -1, "lots", 10**7)]
    )
)
def test_property_bad_files_never_partially_apply(fw, case):
    field, value = case
    fw.apply(RULES)
    slot, gen = fw.active_slot()
    probes = [bytes(f) for _, f, _, _ in TABLE[:12]]
    before = [fw.test_run(p).verdict for p in probes]
    doc = yaml.safe_load(RULES)
    rule = {"name": "mutant", "action": "allow", "proto": "tcp", "dport": 7}
    if field == "burst":
        rule.update(action="rate-limit", rate="5/s")
    rule[field] = value
    doc["rules"].insert(2, rule)
    text = yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(RuleError) as err:
        fw.apply(text)
    assert any(p.field in (field, "dport") and p.line for p in err.value.problems), str(err.value)
    assert fw.active_slot() == (slot, gen)
    assert [fw.test_run(p).verdict for p in probes] == before


def test_capacity_error_names_what_does_not_fit():
    small = Capacity(rules=8, classes=64, pool_words=64, prefixes=64, rl_entries=64)
    fw = Firewall.load("default: allow\nrules: []\n", capacity=small)
    try:
        rules = [{"name": f"r{i}", "action": "drop", "src": f"10.0.{i}.0/24"} for i in range(20)]
        with pytest.raises(CapacityError) as err:
            fw.apply(yaml.safe_dump({"default": "allow", "rules": rules}))
        assert "needs 20" in str(err.value) and "holds 8" in str(err.value)
        assert fw.active_slot()[1] == 1
    finally:
        fw.close()


def test_ten_thousand_rules_classify_correctly():
    from packetlab.bench.firewall import blocked_source, firewall_rules

    compiled = compile_rules(firewall_rules(10_000))
    fw = Firewall.load(compiled)
    try:
        for i in (0, 1, 4_999, 9_997, 9_998):
            frame = Ether(**E) / IP(src=blocked_source(i), dst="10.0.1.2") / UDP(dport=9)
            assert fw.verdict(frame) == "XDP_DROP"
            assert fw.status().rule(f"block-{i}").packets == 1
        assert fw.verdict(Ether(**E) / IP(src=blocked_source(9_999), dst="10.0.1.2") / UDP(dport=9)) == "XDP_PASS"
        assert fw.verdict(Ether(**E) / IP(src="10.0.1.1", dst="10.0.1.2") / UDP(dport=9)) == "XDP_DROP"
        assert fw.status().rule("bench").packets == 1
        assert fw.verdict(Ether(**E) / IP(src=blocked_source(5), dst="10.0.1.2") / UDP(dport=10)) == "XDP_PASS"
    finally:
        fw.close()


def test_a_failed_kernel_write_leaves_the_running_rules(fw, monkeypatch):
    """Even a map update failing half-way through an apply (memory, a bug) cannot
    half-apply: the writes went to the idle slot, and the flip never happened."""
    fw.apply(RULES)
    slot, gen = fw.active_slot()
    probes = [bytes(f) for _, f, _, _ in TABLE[:20]]
    before = [fw.test_run(p).verdict for p in probes]
    trie = fw.maps["fw_addr"]
    real_update, calls = trie.update, []

    def failing_update(key, value, flags=0):
        calls.append(key)
        if len(calls) == 3:
            raise OSError(12, "Cannot allocate memory")
        return real_update(key, value, flags)

    monkeypatch.setattr(trie, "update", failing_update)
    other = "default: allow\nrules:\n" + "".join(
        f"  - {{name: n{i}, action: drop, src: 10.{i}.0.0/16}}\n" for i in range(6)
    )
    with pytest.raises(PacketlabError) as err:
        fw.apply(other)
    assert "running rules are unchanged" in str(err.value) and len(calls) == 3
    assert fw.active_slot() == (slot, gen)
    assert [fw.test_run(p).verdict for p in probes] == before
    monkeypatch.undo()
    fw.apply(other)  # the half-written slot is rewritten completely
    frame = Ether(**E) / IP(src="10.3.1.1", dst=SRV4) / UDP(dport=9)
    assert fw.verdict(frame) == "XDP_DROP" and fw.status().rule("n3").packets == 1
    fw.apply(RULES)
    assert [fw.test_run(p).verdict for p in probes] == before


def test_worst_case_rule_set_still_finds_the_last_rule():
    """Every one of the 256 summary words is a candidate and none matches: the bounded
    candidate loop must still reach the catch-all at the last of 16,384 bits."""
    from packetlab.bench.firewall import adversarial_rules, bench_frame

    compiled = compile_rules(adversarial_rules(16_384), check_shadows=False)
    assert compiled.n_entries == L.MAX_RULE_BITS
    fw = Firewall.load(compiled)
    try:
        assert fw.verdict(bench_frame()) == "XDP_DROP"
        st = fw.status()
        assert st.rule("catch-all").packets == 1 and sum(r.packets for r in st.rules) == 1
        other = Ether(**E) / IP(src="10.0.1.1", dst="10.0.1.2") / UDP(dport=7)
        assert fw.verdict(other) == "XDP_DROP" and fw.status().rule("x-0").packets == 1
    finally:
        fw.close()
