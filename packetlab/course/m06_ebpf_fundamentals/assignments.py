"""Module 06's C assignments: fix three Verifier Diary programs so the kernel accepts them.

Each starter is the broken function of a diary entry (``bpf/06-fail-<key>.c``); it is spliced
into the fixed program (``bpf/06-fixed-<key>.c``, region ``body``) in place of the diary's
fix, so the maps around it are the same. A rejection is explained by the Verifier Diary's
own page for that entry (what the verifier saw, and the remedy), and once the program loads,
hidden test packets check that it still counts what it counted.
"""

from __future__ import annotations

import re

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether
from scapy.packet import Raw

from packetlab.course.assignments import Assignment, Case
from packetlab.course.m06_ebpf_fundamentals.verifier_diary import BY_KEY
from packetlab.errors import VerifierError

_E = Ether(src="02:00:00:00:06:01", dst="02:00:00:00:06:02")
LOOPBACK_IFINDEX = 1  # BPF_PROG_TEST_RUN runs an XDP program as if the frame came in on lo


def diary_explainer(key: str):
    """The Verifier Diary's page for entry `key`, when the verifier's log shows that entry's reason."""
    entry = BY_KEY[key]

    def explain(exc: VerifierError, source: str) -> tuple[str, str] | None:
        if not re.search(entry.expect, exc.log):
            return None
        return f"{entry.title} (Verifier Diary: {key}). {entry.explanation}", entry.remedy

    return explain


def _assignment(n: int, key: str, title: str, cases, hint: str) -> Assignment:
    return Assignment(
        key=f"06.A{n}",
        title=title,
        starter=f"bpf/06-assign-{key}.c",
        solution=f"bpf/solutions/06-assign-{key}.c",
        skeleton=f"bpf/06-fixed-{key}.c",
        region="body",
        cases=cases,
        explain=diary_explainer(key),
        try_it=f"fix the function in bpf/06-assign-{key}.c, delete its TODO marker, then run the check again",
        hint=hint,
    )


def _bounds_cases() -> list[Case]:
    udp = _E / IP(src="10.6.0.1", dst="10.6.0.2") / UDP(dport=53)
    cut = Ether(bytes(_E / IP(dst="10.6.0.2"))[:20])  # 6 bytes of IPv4 header: no protocol byte to read
    return [
        Case("IPv4 UDP", udp, verdict="XDP_PASS", maps={"protocols": {17: 1}}),
        Case("IPv4 TCP", _E / IP(dst="10.6.0.2") / TCP(dport=80), verdict="XDP_PASS", maps={"protocols": {6: 1}}),
        Case("truncated IPv4 header", cut, verdict="XDP_PASS", maps={"protocols": {17: 0, 6: 0, 0: 0}}),
    ]


def _null_cases() -> list[Case]:
    arp = Ether(src="02:00:00:00:06:01", dst="ff:ff:ff:ff:ff:ff") / ARP(
        hwsrc="02:00:00:00:06:01", psrc="10.6.0.1", pdst="10.6.0.2"
    )
    return [
        Case(
            "the first frame on an interface (ARP)",
            arp,
            verdict="XDP_PASS",
            maps={"frames_by_ifindex": {LOOPBACK_IFINDEX: 1}},
        )
    ]


def _histogram(bucket: int) -> dict:
    return {0: {"bucket": [1 if b == bucket else 0 for b in range(16)]}}


def _range_cases() -> list[Case]:
    small = _E / IP(dst="10.6.0.2") / UDP(dport=9)
    mid = _E / IP(dst="10.6.0.2") / UDP(dport=9) / Raw(b"x" * 600)
    big = _E / IP(dst="10.6.0.2") / UDP(dport=9) / Raw(b"x" * 2400)
    return [
        Case(f"a {len(small)}-byte frame", small, verdict="XDP_PASS", maps={"frame_sizes": _histogram(0)}),
        Case(f"a {len(mid)}-byte frame", mid, verdict="XDP_PASS", maps={"frame_sizes": _histogram(len(mid) // 128)}),
        Case(f"a {len(big)}-byte frame (last bucket)", big, verdict="XDP_PASS", maps={"frame_sizes": _histogram(15)}),
    ]


PACKET_BOUNDS = _assignment(
    1,
    "packet-bounds",
    "unchecked packet bounds",
    _bounds_cases,
    "prove the IPv4 header is inside the packet before reading it",
)
NULL_MAP_VALUE = _assignment(
    2,
    "null-map-value",
    "map value used without a NULL check",
    _null_cases,
    "a missing key is not an error: insert the first count with frames_by_ifindex.update()",
)
MAP_OUT_OF_RANGE = _assignment(
    3,
    "map-out-of-range",
    "out-of-range map value access",
    _range_cases,
    "frames too large for the last bucket still count, in the last bucket",
)

ASSIGNMENTS = (PACKET_BOUNDS, NULL_MAP_VALUE, MAP_OUT_OF_RANGE)
