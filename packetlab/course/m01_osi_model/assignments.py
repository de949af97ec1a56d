"""Module 01's C assignments, in bpf/01-xdp-proto-counter.c: the learner's first eBPF.

* 01.A1 — extend the protocol counter to IPv6: the `ipv6` region of classify().
* 01.A2 — count the frame: the `count` region of xdp_proto_counter() (the per-CPU map update).
"""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import ARP, Ether

from packetlab.course.assignments import Assignment, Case

PROGRAM = "bpf/01-xdp-proto-counter.c"
# enum proto in bpf/01-xdp-proto-counter.c
P_ARP, P_ICMP, P_TCP, P_UDP, P_ICMPV6, P_IPV4_OTHER, P_IPV6_OTHER, P_OTHER, P_MALFORMED = range(9)

_E = Ether(src="02:00:00:00:01:01", dst="02:00:00:00:01:02")
_V6 = IPv6(src="fd01::1", dst="fd01::2")


def _counted(name: str, frame, counter: int) -> Case:
    """`frame` must be passed and counted once, with its length, in `counter`."""
    return Case(name, frame, verdict="XDP_PASS", maps={"stats": {counter: {"packets": 1, "bytes": len(frame)}}})


def _ipv6_cases() -> list[Case]:
    return [
        _counted("IPv4 UDP (already counted before your change)", _E / IP(dst="10.1.0.2") / UDP(dport=53), P_UDP),
        _counted("IPv6 TCP", _E / _V6 / TCP(dport=443), P_TCP),
        _counted("IPv6 UDP", _E / _V6 / UDP(dport=53), P_UDP),
        _counted("IPv6 ICMPv6 echo request", _E / _V6 / ICMPv6EchoRequest(), P_ICMPV6),
        _counted("IPv6 hop-by-hop header, then UDP", _E / _V6 / IPv6ExtHdrHopByHop() / UDP(dport=53), P_UDP),
        _counted(
            "IPv6 carrying GRE (next header 47)",
            _E / IPv6(src="fd01::1", dst="fd01::2", nh=47) / (b"\0" * 8),
            P_IPV6_OTHER,
        ),
        _counted("IPv6 later fragment of UDP", _E / _V6 / IPv6ExtHdrFragment(offset=100, nh=17) / (b"\0" * 16), P_UDP),
        _counted("IPv6 header cut short", Ether(bytes(_E / _V6 / UDP())[:40]), P_MALFORMED),
        _counted("IPv6 TCP header cut short", Ether(bytes(_E / _V6 / TCP())[:64]), P_MALFORMED),
    ]


def _count_cases() -> list[Case]:
    arp = Ether(src="02:00:00:00:01:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        hwsrc="02:00:00:00:01:01", psrc="10.1.0.1", pdst="10.1.0.2"
    )
    return [
        _counted("ARP request", arp, P_ARP),
        _counted("IPv4 ICMP echo", _E / IP(dst="10.1.0.2") / ICMP(), P_ICMP),
        _counted("IPv6 TCP", _E / _V6 / TCP(dport=80), P_TCP),
    ]


IPV6 = Assignment(
    key="01.A1",
    title="the protocol counter speaks IPv6",
    starter="bpf/01-assign-ipv6.c",
    solution="bpf/solutions/01-assign-ipv6.c",
    skeleton=PROGRAM,
    region="ipv6",
    cases=_ipv6_cases,
    try_it="write the IPv6 branch in bpf/01-assign-ipv6.c, delete its TODO marker, then run the check again",
    hint="mirror the IPv4 branch: if (eth_type == bpf_htons(ETH_P_IPV6)) { parse_ip6hdr(...); ... }, and only "
    "parse the transport header when frag_off is 0",
)

COUNT = Assignment(
    key="01.A2",
    title="count the frame",
    starter="bpf/01-assign-count.c",
    solution="bpf/solutions/01-assign-count.c",
    skeleton=PROGRAM,
    region="count",
    cases=_count_cases,
    try_it="write the map update in bpf/01-assign-count.c, delete its TODO marker, then run the check again",
    hint="look up &key in stats, test the pointer, then add 1 to packets and data_end - data to bytes",
)

ASSIGNMENTS = (IPV6, COUNT)
