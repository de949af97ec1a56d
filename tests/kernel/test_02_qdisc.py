"""Module 02, the egress path: root qdiscs on a veth in a lab namespace, and what tbf lets through."""

from __future__ import annotations

from packetlab.course.m02_nat_and_routing import qdisc as q


def test_tbf_limits_a_tcp_stream_and_the_link_gets_noqueue_back(lab):
    a, b = lab.host("qa"), lab.host("qb")
    lab.link(a, b, ip="10.2.9.1/24", peer_ip="10.2.9.2/24")
    assert a.ping("10.2.9.2", timeout=3).ok
    assert "noqueue" in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout  # veth's default
    runs = {r.name: r for r in q.compare_qdiscs(a, b, "10.2.9.2", seconds=0.5)}
    tbf, fifo = runs[f"tbf {q.TBF_MBIT} Mbit/s"], runs["pfifo_fast"]
    assert tbf.available and fifo.available  # fq_codel may be missing from a kernel (not from stock ones)
    assert tbf.mbit_s <= q.TBF_MBIT * 1.1  # a cap: tbf never lets one stream through faster than its rate
    assert fifo.mbit_s > 2 * tbf.mbit_s  # a FIFO limits nothing
    assert tbf.overlimits > 0 and tbf.packets > 0  # tbf held packets back for want of tokens
    assert "noqueue" in a.run(["tc", "qdisc", "show", "dev", "eth0"]).stdout
    assert "not in this kernel" in q.qdisc_table(list(runs.values())) or runs["fq_codel"].mbit_s > 0


def test_a_ping_shares_the_queue_with_a_stream(lab):
    a, b = lab.host("qa"), lab.host("qb")
    lab.link(a, b, ip="10.2.9.1/24", peer_ip="10.2.9.2/24")
    assert a.ping("10.2.9.2", timeout=3).ok
    q.set_root_qdisc(a, ["tbf", "rate", "20mbit", "burst", "32kbit", "latency", "50ms"])
    r = q.rtt_under_load(a, b, "10.2.9.2", seconds=1.5, pings=8)
    assert r.idle_ms > 0 and r.loaded_ms > r.idle_ms  # queued behind the stream's packets
    assert 0 < r.mbit_s <= 22
