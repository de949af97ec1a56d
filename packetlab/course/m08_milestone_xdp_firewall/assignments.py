"""Module 08's C assignments: the firewall's rule-matching core, small first, then the real one.

* 08.A1 — first matching rule for a small fixed rule shape (protocol + destination port range):
  the `match` region of bpf/08-xdp-rule-match.c, graded by test packets on a fixed rule list.
* 08.A2 — the firewall's own core: the `classify` region of bpf/08-xdp-firewall.c (AND the five
  classes' compressed bitmaps, lowest rule bit wins). The learner's code is swapped into the
  firewall (`Firewall.load(source=...)`), a rule set is applied, and each frame's verdict must
  be the one the reference linear scan (`packetlab.tools.firewall.reference.decide`) gives —
  the comparison the firewall's own verdict tests make.
"""

from __future__ import annotations

from pathlib import Path

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from packetlab.course.assignments import Assignment, Case, CaseFailed
from packetlab.ebpf.loader import LoadedProgram

_E = Ether(src="02:00:00:00:08:01", dst="02:00:00:00:08:02")
SRV4, SRV6 = "10.8.2.1", "fd08:2::1"

# ---- 08.A1: a small fixed rule shape ---------------------------------------------------------------
RULES = [  # (proto, action, dport_lo, dport_hi): action 0 allow, 1 drop
    (6, 1, 22, 22),  # drop ssh
    (6, 0, 1, 1023),  # allow other privileged TCP ports
    (17, 0, 53, 53),  # allow dns
    (17, 1, 0, 65535),  # drop any other UDP
]
DEFAULT_DROP = 1


def configure_rules(prog: LoadedProgram) -> None:
    """rm_rules = RULES in order; the default policy drops."""
    rules = prog["rm_rules"]
    for i, (proto, action, lo, hi) in enumerate(RULES):
        value = rules.Leaf()
        value.proto, value.action, value.dport_lo, value.dport_hi = proto, action, lo, hi
        rules[rules.Key(i)] = value
    default = prog["rm_default"]
    default[default.Key(0)] = default.Leaf(DEFAULT_DROP)


def _tcp(dport: int) -> Ether:
    return _E / IP(src="10.8.1.1", dst=SRV4) / TCP(dport=dport)


def _udp(dport: int) -> Ether:
    return _E / IP(src="10.8.1.1", dst=SRV4) / UDP(dport=dport)


def _match_cases() -> list[Case]:
    def case(name: str, frame: Ether, verdict: str, hit: int) -> Case:
        return Case(name, frame, verdict=verdict, maps={"rm_hits": {hit: 1}}, prepare=configure_rules)

    return [
        case("tcp 80 (rule 1: allow 1-1023)", _tcp(80), "XDP_PASS", 1),
        case("tcp 22 (rule 0 comes first: drop)", _tcp(22), "XDP_DROP", 0),
        case("tcp 1023 (last port of rule 1)", _tcp(1023), "XDP_PASS", 1),
        case("tcp 1024 (no rule: default drop)", _tcp(1024), "XDP_DROP", 8),
        case("udp 53 (rule 2)", _udp(53), "XDP_PASS", 2),
        case("udp 54 (rule 3: drop other UDP)", _udp(54), "XDP_DROP", 3),
        case("icmp (no rule: default drop)", _E / IP(dst=SRV4) / ICMP(), "XDP_DROP", 8),
    ]


RULE_MATCH = Assignment(
    key="08.A1",
    title="first matching rule",
    starter="bpf/08-assign-rule-match.c",
    solution="bpf/solutions/08-assign-rule-match.c",
    skeleton="bpf/08-xdp-rule-match.c",
    region="match",
    cases=_match_cases,
    try_it="write match_rules() in bpf/08-assign-rule-match.c, delete its TODO marker, then run the check again",
    hint="for (u32 i = 0; i < MAX_RULES; i++): look up rule i, stop at NULL or proto 0, return i on the first "
    "match of proto and lo <= dport <= hi; MAX_RULES after the loop",
)

# ---- 08.A2: the firewall's classify region, under the firewall's verdicts -----------------------------
FIREWALL_RULES = """\
default: drop
rules:
  - name: admin-ssh
    action: allow
    src: 10.8.1.0/28
    proto: tcp
    dport: 22
  - name: web
    action: allow
    proto: tcp
    dport: [80, 443, "8000-8080"]
  - name: blocked-host
    action: drop
    src: 192.0.2.7/32
  - name: v6-admin
    action: allow
    src: "fd08:1::/64"
    proto: tcp
    dport: 22
  - name: syn-9000
    action: allow
    proto: tcp
    dport: 9000
    tcp_flags: "syn,!ack"
  - name: dns
    action: allow
    proto: udp
    dport: 53
  - name: icmp
    action: allow
    proto: icmp
"""


def _t4(src: str, dport: int, flags: str = "S") -> Ether:
    return _E / IP(src=src, dst=SRV4) / TCP(sport=40000, dport=dport, flags=flags)


def firewall_frames() -> list[tuple[str, Ether]]:
    """Frames across every rule and dimension: address prefixes, port lists and ranges, flags, IPv6."""
    return [
        ("web 80", _t4("198.51.100.1", 80)),
        ("ssh from 10.8.1.1 (inside the /28)", _t4("10.8.1.1", 22)),
        ("ssh from 10.8.1.16 (outside the /28)", _t4("10.8.1.16", 22)),
        ("web 8080 (range end)", _t4("198.51.100.1", 8080)),
        ("web 8081 (above the range)", _t4("198.51.100.1", 8081)),
        ("blocked /32 host, web port (web comes first)", _t4("192.0.2.7", 443)),
        ("blocked /32 host, udp", _E / IP(src="192.0.2.7", dst=SRV4) / UDP(dport=9)),
        ("dns", _E / IP(src="203.0.113.9", dst=SRV4) / UDP(dport=53)),
        ("icmp", _E / IP(src="203.0.113.9", dst=SRV4) / ICMP()),
        ("syn to 9000", _t4("203.0.113.9", 9000, "S")),
        ("syn+ack to 9000", _t4("203.0.113.9", 9000, "SA")),
        ("v6 ssh from the admin /64", _E / IPv6(src="fd08:1::5", dst=SRV6) / TCP(dport=22)),
        ("v6 ssh from outside the /64", _E / IPv6(src="fd08:9::5", dst=SRV6) / TCP(dport=22)),
        (
            "ARP (not IP: passed)",
            Ether(src="02:00:00:00:08:01", dst="ff:ff:ff:ff:ff:ff")
            / ARP(hwsrc="02:00:00:00:08:01", psrc="10.8.1.1", pdst=SRV4),
        ),
    ]


def run_firewall(source: Path) -> str:
    """Swap `source` (the firewall with the learner's core) in, apply FIREWALL_RULES, compare each verdict."""
    from packetlab.tools.firewall.program import Firewall
    from packetlab.tools.firewall.reference import decide
    from packetlab.tools.firewall.rulefile import parse_rules

    ruleset = parse_rules(FIREWALL_RULES, source="08.A2")
    fw = Firewall.load(ruleset, source=source)
    try:
        frames = firewall_frames()
        for name, frame in frames:
            want = decide(ruleset, bytes(frame))
            got = fw.verdict(frame)
            if got != want.verdict:
                raise CaseFailed(name, frame, f"{want.verdict} ({want})", got)
    finally:
        fw.close()
    return f"the firewall's verdicts on {len(frames)} frames match the reference"


CLASSIFY = Assignment(
    key="08.A2",
    title="the firewall's rule-matching core",
    starter="bpf/08-assign-classify.c",
    solution="bpf/solutions/08-assign-classify.c",
    skeleton="bpf/08-xdp-firewall.c",
    region="classify",
    runner=run_firewall,
    try_it="write the bitmap AND in bpf/08-assign-classify.c, delete its TODO marker, then run the check again",
    hint="the lowest set bit of cand is cand & -cand; below = that - 1; the word's index in the block is "
    "fw_popcount(below); clear the bit with cand &= cand - 1 and stop at the first non-zero AND",
)

ASSIGNMENTS = (RULE_MATCH, CLASSIFY)
