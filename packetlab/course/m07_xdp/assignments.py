"""Module 07's C assignments: what the learner writes, and the hidden packets that grade it.

* 07.A1 — count every frame by protocol in a per-CPU map: the `count-proto` region of
  bpf/07-xdp-counter.c (the map and count_proto()).
* 07.A2 — answer ARP in XDP: the `arp-reply` region of bpf/07-xdp-arp-reply.c (the in-place
  rewrite into the reply, and XDP_TX).
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether

from packetlab.course.assignments import Assignment, Case
from packetlab.ebpf.loader import LoadedProgram

_E = Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02")


def _proto_cases() -> list[Case]:
    """One frame per category the counter tells apart, each counted once with its length."""
    frames = [
        ("IPv4 UDP", _E / IP(src="10.7.1.1", dst="10.7.2.2") / UDP(dport=53), 2),
        ("IPv4 TCP", _E / IP(src="10.7.1.1", dst="10.7.2.2") / TCP(dport=80), 1),
        ("IPv6 ICMPv6 echo", _E / IPv6(src="fd07:1::1", dst="fd07:2::2") / ICMPv6EchoRequest(), 7),
        (
            "ARP request (non-IP)",
            Ether(src="02:00:00:00:07:01", dst="ff:ff:ff:ff:ff:ff")
            / ARP(hwsrc="02:00:00:00:07:01", psrc="10.7.1.1", pdst="10.7.2.2"),
            0,
        ),
        ("truncated IPv4 header", Ether(bytes(_E / IP(dst="10.7.2.2") / UDP())[:20]), 10),
    ]
    return [
        Case(name, frame, verdict="XDP_PASS", maps={"proto_stats": {cat: {"packets": 1, "bytes": len(frame)}}})
        for name, frame, cat in frames
    ]


def _is_percpu(prog: LoadedProgram) -> str | None:
    import bcc.table as bt

    table = prog["proto_stats"]
    if isinstance(table, bt.PerCpuArray):
        return None
    return f"proto_stats is a {type(table).__name__}, not a per-CPU array: every CPU would share (and race on) one slot"


PROTO_PERCPU = Assignment(
    key="07.A1",
    title="per-CPU protocol counter",
    starter="bpf/07-assign-proto-percpu.c",
    solution="bpf/solutions/07-assign-proto-percpu.c",
    skeleton="bpf/07-xdp-counter.c",
    region="count-proto",
    cases=_proto_cases,
    inspect=_is_percpu,
    try_it="declare proto_stats and write count_proto() in bpf/07-assign-proto-percpu.c, delete its TODO markers, then "
    "run the check again",
    hint="declare BPF_PERCPU_ARRAY(proto_stats, struct counters, NUM_CATEGORIES); in count_proto() look up "
    "&cat, test for NULL, then add 1 to packets and len to bytes",
)

# ---- 07.A2: ARP in XDP -------------------------------------------------------------------------------
OUR_MAC, OUR_IP = "02:00:00:00:07:fe", "10.7.2.254"
ASKER_MAC, ASKER_IP = "02:00:00:00:07:01", "10.7.2.1"


def configure_arp(prog: LoadedProgram, mac: str = OUR_MAC, ip: str = OUR_IP) -> None:
    """arp_config[0] = (mac, ip): the address the program answers for."""
    import ipaddress

    table = prog["arp_config"]
    value = table.Leaf()
    value.mac[:] = list(bytes.fromhex(mac.replace(":", "")))
    value.ip[:] = list(ipaddress.IPv4Address(ip).packed)
    table[table.Key(0)] = value


def _request(target: str) -> Ether:
    return Ether(src=ASKER_MAC, dst="ff:ff:ff:ff:ff:ff") / ARP(op=1, hwsrc=ASKER_MAC, psrc=ASKER_IP, pdst=target)


def _reply() -> Ether:
    """The reply a correct program makes of _request(OUR_IP), byte for byte."""
    return Ether(src=OUR_MAC, dst=ASKER_MAC) / ARP(op=2, hwsrc=OUR_MAC, psrc=OUR_IP, hwdst=ASKER_MAC, pdst=ASKER_IP)


def _arp_cases() -> list[Case]:
    other = _request("10.7.2.99")
    return [
        Case(
            f"who-has {OUR_IP} (ours)",
            _request(OUR_IP),
            verdict="XDP_TX",
            output=_reply(),
            maps={"arp_replies": {0: 1}},
            prepare=configure_arp,
        ),
        Case("who-has 10.7.2.99 (not ours)", other, verdict="XDP_PASS", output=other, prepare=configure_arp),
        Case("an ARP reply", _reply(), verdict="XDP_PASS", output=_reply(), prepare=configure_arp),
        Case(
            "IPv4 UDP to our address",
            _E / IP(src=ASKER_IP, dst=OUR_IP) / UDP(dport=53),
            verdict="XDP_PASS",
            prepare=configure_arp,
        ),
    ]


ARP_REPLY = Assignment(
    key="07.A2",
    title="ARP reply in XDP",
    starter="bpf/07-assign-arp-reply.c",
    solution="bpf/solutions/07-assign-arp-reply.c",
    skeleton="bpf/07-xdp-arp-reply.c",
    region="arp-reply",
    cases=_arp_cases,
    try_it="write arp_reply() in bpf/07-assign-arp-reply.c, delete its TODO markers, then run the check again",
    hint="opcode = bpf_htons(ARPOP_REPLY); tha/tpa = the asker's sha/spa; sha/spa = cfg->mac/cfg->ip; "
    "Ethernet dst = the old src, src = cfg->mac; count it; return XDP_TX",
)

ASSIGNMENTS = (PROTO_PERCPU, ARP_REPLY)
