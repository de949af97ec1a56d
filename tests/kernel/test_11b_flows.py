"""Module 11b on the real kernel: bpf/11b-flow.c's flow records and ring-buffer events.

BPF_PROG_TEST_RUN feeds exact frames (records, flags, events, the two loss counters);
live traffic between two lab namespaces checks that records equal what was sent, with
no record and no event lost. Nothing here asserts on speed."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from packetlab.ebpf.loader import acquire, release
from packetlab.tools.analyzer.kernel import SOURCE, FlowMonitor
from packetlab.tools.analyzer.records import FlowKey, tcp_flag_str

MAC = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


@pytest.fixture
def monitor():
    prog = acquire(SOURCE)
    mon = FlowMonitor(prog)
    mon.reset()
    yield mon
    release(prog)


def _by_key(records):
    return {r.key: r for r in records}


def test_records_equal_what_was_sent(monitor):
    prog = monitor.program
    tcp = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=8443, flags="S")
    data = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=8443, flags="PA") / (b"x" * 100)
    fin = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=8443, flags="FA")
    udp6 = Ether(**MAC) / IPv6(src="fd00::1", dst="fd00::2") / UDP(sport=5353, dport=53) / (b"q" * 30)
    ping = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(type=8)
    for frame, times in ((tcp, 1), (data, 4), (fin, 1), (udp6, 3), (ping, 2)):
        assert prog.test_run(frame, repeat=times).verdict == "XDP_PASS"
    prog.test_run(Ether(**MAC) / ARP())
    recs = _by_key(monitor.records())
    t = recs[FlowKey(6, "10.0.0.1", "10.0.0.2", 40000, 8443)]
    assert (t.packets, t.bytes) == (6, len(tcp) + 4 * len(data) + len(fin))
    assert tcp_flag_str(t.tcp_flags) == "FSPA" and t.ended
    u = recs[FlowKey(17, "fd00::1", "fd00::2", 5353, 53)]
    assert (u.packets, u.bytes, u.ended) == (3, 3 * len(udp6), False)
    assert recs[FlowKey(1, "10.0.0.1", "10.0.0.2", 0, 8 << 8)].packets == 2
    assert t.first <= t.last
    c = monitor.counters()
    assert c["packets"] == 12 and c["flows"] == 3 and c["not_ip"] == 1
    assert c["table_full"] == 0 and c["ringbuf_lost"] == 0
    events = monitor.poll(0.5, expect=4)
    kinds = sorted((e.type, e.record.key.proto) for e in events)
    assert kinds == [("end", 6), ("start", 1), ("start", 6), ("start", 17)]
    assert c["events"] == len(events)


def test_samples_carry_the_packet_head(monitor):
    monitor.configure(sample_every=3)
    frame = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2) / (b"z" * 300)
    monitor.program.test_run(frame, repeat=9)
    samples = [e for e in monitor.poll(0.5, expect=4) if e.type == "sample"]
    assert len(samples) == 3
    assert samples[0].data == bytes(frame)[:128] and samples[0].wirelen == len(frame)
    monitor.configure()


def test_drop_verdict_makes_a_counting_sink(monitor):
    monitor.configure(drop=True)
    frame = Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1, dport=2)
    assert monitor.program.test_run(frame).verdict == "XDP_DROP"
    monitor.configure()
    assert monitor.program.test_run(frame).verdict == "XDP_PASS"
    assert monitor.records()[0].packets == 2


def test_full_table_and_full_ring_are_counted_not_hidden():
    prog = acquire(SOURCE, cflags=["-DMAX_FLOWS=4", "-DRING_PAGES=1"], fresh=True)
    try:
        mon = FlowMonitor(prog)
        for port in range(6):  # 6 new flows, room for 4
            prog.test_run(Ether(**MAC) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=1000 + port, dport=9))
        c = mon.counters()
        assert (c["flows"], c["table_full"]) == (4, 2)
        assert len(mon.records()) == 4
        # a 4 KiB ring holds 16 events of 232 + 8 bytes; sampling every packet of 40, with no reader
        # in between, asks for 41 (one start, 40 samples)
        mon.reset()
        mon.configure(sample_every=1)
        prog.test_run(Ether(**MAC) / IP(src="10.0.0.3", dst="10.0.0.2") / UDP(sport=5, dport=9), repeat=40)
        c = mon.counters()
        got = len(mon.poll(0.3))
        assert c["ringbuf_lost"] > 0
        assert got == c["events"] and got + c["ringbuf_lost"] == 41
    finally:
        prog.close()


def test_live_records_between_lab_namespaces(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.11.0.1/24", peer_ip="10.11.0.2/24")
    xdp = h2.attach_xdp(SOURCE)
    mon = FlowMonitor(xdp)
    mon.reset()
    frame = Ether(dst=h2.mac(), src=h1.mac()) / IP(src="10.11.0.1", dst="10.11.0.2") / UDP(sport=7777, dport=9)
    frame = frame / (b"u" * 58)
    h1.send(frame, count=200)
    h1.ping("10.11.0.2", count=3, interval=0.2, check=True)
    recs = _by_key(mon.records())
    u = recs[FlowKey(17, "10.11.0.1", "10.11.0.2", 7777, 9)]
    assert (u.packets, u.bytes) == (200, 200 * len(frame))
    assert recs[FlowKey(1, "10.11.0.1", "10.11.0.2", 0, 8 << 8)].packets == 3
    c = mon.counters()
    assert c["table_full"] == 0 and c["ringbuf_lost"] == 0
    starts = [e for e in mon.poll(0.5, expect=c["events"]) if e.type == "start"]
    assert len(starts) == c["flows"] == len(recs)
    gone = mon.expire(idle=0.0)
    assert len(gone) == len(recs) and mon.records() == []
    xdp.detach()
