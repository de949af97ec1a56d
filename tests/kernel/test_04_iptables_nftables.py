"""Module 04 on the real kernel: the rule generators loaded into a lab namespace (10 000 rules,
only the last matches), base chain order, a smoke run of the rule-scaling benchmark (shape,
never speed), the exercise checks, and nftables counters."""

from __future__ import annotations

import time

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from packetlab.bench import rules as rules_bench
from packetlab.course.grading import CheckFailed
from packetlab.topo import netns
from packetlab.topo.netfilter import (
    BENCH_TABLE,
    RULE_VARIANTS,
    base_chains,
    delete_table,
    nft_check,
    rule_counters,
    translate,
)


@pytest.fixture(scope="module")
def pair(module_lab):
    tx, rx = module_lab.host("tx"), module_lab.host("rx")
    module_lab.link(tx, rx, ip="10.77.1.1/24", peer_ip="10.77.1.2/24")
    return module_lab, tx, rx


@pytest.mark.parametrize("variant", list(RULE_VARIANTS))
def test_every_variant_loads_10000_rules_fast_and_matches_only_the_last(pair, variant):
    lab, tx, rx = pair
    v = RULE_VARIANTS[variant]
    started = time.monotonic()
    v.load(rx, 10_000, "10.77.1.1")
    assert time.monotonic() - started < 20  # one nft -f / iptables-restore call, not 10,000
    frame = Ether(dst=rx.mac("eth0"), src=tx.mac("eth0")) / IP(src="10.77.1.1", dst="10.77.1.2") / UDP(dport=9)
    tx.send(frame, "eth0", count=5)
    other = Ether(dst=rx.mac("eth0"), src=tx.mac("eth0")) / IP(src="10.77.1.9", dst="10.77.1.2") / UDP(dport=9)
    tx.send(other, "eth0", count=3)  # a source in no list: must not be counted
    time.sleep(0.1)
    assert v.matched(rx, "10.77.1.1") == 5
    if variant.startswith("nft"):
        listing = rx.run(["nft", "list", "table", "ip", BENCH_TABLE]).stdout
        assert listing.count("drop") == (10_001 if variant == "nft-chain" else 1)
    v.clear(rx)
    assert v.matched(rx, "10.77.1.1") == 0


def test_base_chains_are_sorted_like_a_packet_meets_them(pair):
    lab, tx, rx = pair
    rx.nft(
        "table inet order {\n"
        "  chain b { type filter hook forward priority 10; }\n"
        "  chain a { type filter hook prerouting priority filter; }\n"
        "  chain c { type nat hook postrouting priority srcnat; }\n"
        "  chain d { type filter hook prerouting priority raw; }\n}\n"
    )
    try:
        names = [(b.hook, b.priority, b.chain) for b in base_chains(rx) if b.table == "order"]
        assert names == [
            ("prerouting", -300, "d"),
            ("prerouting", 0, "a"),
            ("forward", 10, "b"),
            ("postrouting", 100, "c"),
        ]
    finally:
        delete_table(rx, "inet", "order")
    assert nft_check(rx, "table inet x { chain y { bogus } }") is not None
    assert nft_check(rx, "table inet x {\n}\n") is None
    assert translate(rx, "iptables -A INPUT -p tcp --dport 22 -j ACCEPT").endswith("tcp dport 22 counter accept")


def test_benchmark_smoke_run_has_the_right_shape():
    """A few tenths of a second per point: checks the table, not the speed."""
    result = rules_bench.run(
        seconds=0.1, repeat=1, sizes=(10,), variants=("nft-chain", "nft-set"), lab_name="t04b", quiet=True
    )
    assert result.sizes == (0, 10) and len(result.points) == 4 and result.ceiling_pps > 0
    assert all(p.pps > 0 and p.matched_fraction > 0.9 for p in result.points)
    text = rules_bench.format_result(result)
    assert text.count("nft-chain") == 2 and "limited by" in text and "ns/packet" in text
    rows = rules_bench.table_rows(result)
    assert [r[1] for r in rows] == [0, 10, 0, 10] and rows[0][3] == "1.000"
    assert not netns.exists("t04b-tx")


# ---- exercise checks ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topo(module_lab):
    from packetlab.course.m04_iptables_nftables.topology import build_topology

    return build_topology(module_lab)


def test_check_hook_order(topo):
    from packetlab.course.m04_iptables_nftables.exercises import check_hook_order
    from packetlab.course.m04_iptables_nftables.topology import load_hooks_demo, trace_ping

    load_hooks_demo(topo)
    right = ["pre_raw", "pre_nat", "pre_filter", "fwd_early", "FORWARD", "fwd_late", "post_nat", "post_late"]
    assert check_hook_order(topo, right)
    assert check_hook_order(topo, [f"inet demo {c}" if c != "FORWARD" else "ip filter FORWARD" for c in right])
    with pytest.raises(CheckFailed, match="differs at position 1"):
        check_hook_order(topo, ["pre_nat", "pre_raw", *right[2:]])
    with pytest.raises(CheckFailed, match="position 9"):
        check_hook_order(topo, [*right, "in_filter"])
    local = [h.hook for h in trace_ping(topo, topo.router, "10.0.2.10")]
    assert local == ["output", "output", "postrouting", "postrouting"]
    delete_table(topo.router, "inet", "demo")
    topo.router.run(["iptables", "-F", "FORWARD"], check=True)


def test_check_translation(topo):
    from packetlab.course.m04_iptables_nftables.exercises import check_translation

    assert check_translation(topo, "ip saddr 10.0.1.0/24 tcp dport 22 ct state new accept")
    assert check_translation(
        topo, "nft add rule ip filter FORWARD tcp dport 22 ip saddr 10.0.1.0/24 ct state new counter accept"
    )
    with pytest.raises(CheckFailed, match="differs"):
        check_translation(topo, "ip saddr 10.0.1.0/24 tcp dport 22 accept")
    with pytest.raises(CheckFailed, match="rejects"):
        check_translation(topo, "ip source 10.0.1.0/24 accept")


SET_VMAP = """table inet filter {
  set denylist {
    type ipv4_addr
    elements = { 10.0.1.11 }
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related accept
    ip saddr @denylist drop
    tcp dport vmap { 80 : accept, 443 : accept }
    meta l4proto tcp ct state new drop
  }
}
"""


def test_check_set_and_vmap(topo):
    from packetlab.course.m04_iptables_nftables.exercises import check_set_and_vmap

    try:
        assert check_set_and_vmap(topo, SET_VMAP)
        with pytest.raises(CheckFailed, match="10.0.1.10 -> port 22: open"):
            check_set_and_vmap(topo, SET_VMAP.replace("    meta l4proto tcp ct state new drop\n", ""))
        with pytest.raises(CheckFailed, match="no verdict map"):
            check_set_and_vmap(
                topo, SET_VMAP.replace("tcp dport vmap { 80 : accept, 443 : accept }", "tcp dport { 80, 443 } accept")
            )
    finally:
        delete_table(topo.router, "inet", "filter")


RATE = """table inet ratelimit {
  chain forward {
    type filter hook forward priority filter; policy accept;
    icmp type echo-request limit rate 10/second burst 10 packets accept
    icmp type echo-request drop
  }
}
"""


@pytest.mark.slow
def test_check_rate_limit(topo):
    from packetlab.course.m04_iptables_nftables.exercises import check_rate_limit

    try:
        assert check_rate_limit(topo, RATE)
        with pytest.raises(CheckFailed, match="nothing limits"):
            check_rate_limit(topo, RATE.replace("    icmp type echo-request drop\n", ""))
        with pytest.raises(CheckFailed, match="too strict"):
            check_rate_limit(topo, RATE.replace("10/second burst 10", "1/minute burst 1"))
    finally:
        delete_table(topo.router, "inet", "ratelimit")


def test_packet_count_sums_every_rule_counter_of_a_table_or_chain(lab):
    from packetlab.topo.netfilter import packet_count

    a, b = lab.host("a"), lab.host("b")
    lab.link(a, b, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    b.nft(
        "table ip t {\n chain pre {\n  type filter hook prerouting priority 0;\n"
        '  ip protocol icmp counter comment "icmp"\n  counter\n }\n}\n'
    )
    assert a.ping("10.0.0.2", count=3, interval=0.05).received == 3
    assert rule_counters(b, "ip", "t", "pre")["icmp"] == 3
    assert packet_count(b, "chain", "ip", "t", "pre") == packet_count(b, "table", "ip", "t") == 6
