"""Module 05, no kernel: the parsers the parse-speed benchmark compares read the same keys, and
its table has the right shape."""

from __future__ import annotations

from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Dot1Q, Ether

from packetlab.course.m05_python_network_programming import parsebench

FRAMES = [
    bytes(p)
    for p in (
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=1, dport=2, options=[("MSS", 1460)]) / b"abc",
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=3, dport=4) / b"x",
        Ether() / Dot1Q(vlan=5) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5, dport=6) / b"tag",
        Ether() / IPv6(src="fd00::1", dst="fd00::2") / TCP(sport=7, dport=8) / b"v6",
        Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=9, dport=10) / b"p",  # padded to 60 below
    )
]
FRAMES[-1] += b"\0" * (60 - len(FRAMES[-1]))


def test_all_parsers_read_the_same_keys():
    keys = {name: [fn(f) for f in FRAMES] for name, fn in parsebench.PARSERS.items()}
    assert keys["scapy"] == keys["dpkt"] == keys["decode"]
    assert keys["scapy"][0] == ("10.0.0.1", "10.0.0.2", 6, 1, 2, 3)
    assert keys["scapy"][4][5] == 1  # padding is not payload
    assert keys["five_tuple"][2] is None and keys["five_tuple"][3] is None  # VLAN, IPv6: not its job
    assert parsebench.agreement(FRAMES) == {
        "dpkt": "5/5 agree",
        "decode": "5/5 agree",
        "five_tuple": "3/3 agree, 2 skipped",
    }
    assert parsebench.key_dpkt(b"\x00" * 5) is None and parsebench.key_scapy(b"\x00" * 5) is None


def test_compare_parsers_table_shape():
    results = parsebench.compare_parsers(FRAMES * 10, repeat=1)
    rows = parsebench.table_rows(results)
    assert [r[0] for r in rows] == ["scapy", "dpkt", "decode", "five_tuple"]
    assert all(len(r) == len(parsebench.TABLE_HEADERS) and r[1] == 50 for r in rows)
    assert rows[0][5] == "1.0x" and all(r.pps > 0 for r in results)
