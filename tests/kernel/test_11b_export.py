"""Module 11b: our IPFIX export read by a real collector — Debian's nfcapd in a lab namespace
receives the flows, ``nfdump -r`` reads the same flows back (addresses, ports, protocol,
packets, bytes, TCP flags)."""

from __future__ import annotations

import shutil

import pytest

from packetlab.course.m11b_packet_analyzer.collector import start_collector
from packetlab.tools.analyzer.export import send_ipfix
from packetlab.tools.analyzer.records import FlowKey, FlowRecord
from packetlab.topo import netns

pytestmark = pytest.mark.skipif(
    shutil.which("nfcapd") is None, reason="nfdump not installed (vagrant/provision.sh --with-test-tools)"
)


def test_nfcapd_reads_back_our_flows(lab):
    host = lab.host("col")
    recs = [
        FlowRecord(
            FlowKey(6, "10.11.0.1", "10.11.0.2", 40000 + i, 8443), 10 + i, 1000 + 7 * i, 1.7e9, 1.7e9 + 1.5, 0x1B
        )
        for i in range(60)  # more than one IPFIX message
    ]
    recs.append(FlowRecord(FlowKey(17, "fd00::1", "fd00::53", 5353, 53), 3, 300, 1.7e9, 1.7e9 + 2))
    recs.append(FlowRecord(FlowKey(1, "10.11.0.1", "10.11.0.2", 0, 8 << 8), 4, 336, 1.7e9, 1.7e9 + 3))
    collector = start_collector(host)
    with netns.entered(host.namespace):
        assert send_ipfix(recs, ("127.0.0.1", collector.port)) >= 2
    import time

    time.sleep(0.3)  # UDP on loopback: let nfcapd read the last datagram before it is stopped
    got = collector.stop()
    assert len(got) == len(recs)
    want = {(str(r.key.src), r.key.sport, r.key.dport, r.packets, r.bytes) for r in recs if r.key.proto != 1}
    have = {(g["src"], g["sport"], g["dport"], g["packets"], g["bytes"]) for g in got if g["proto"] != "ICMP"}
    assert want <= have
    tcp = next(g for g in got if g["sport"] == 40000)
    assert (tcp["dst"], tcp["proto"], tcp["flags"]) == ("10.11.0.2", "TCP", "...AP.SF")
    assert next(g for g in got if g["dst"] == "fd00::53")["proto"] == "UDP"
    icmp = next(g for g in got if g["proto"] == "ICMP")
    assert (icmp["packets"], icmp["bytes"]) == (4, 336)
