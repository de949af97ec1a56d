"""Module 11b: the userspace tier — fragment reassembly, connection tracking through module 03's
tracker, flows and labels, the anomaly detectors on attack traces and on normal traffic."""

from __future__ import annotations

from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
from scapy.layers.l2 import Ether

from packetlab.course.m11b_packet_analyzer import traces as T
from packetlab.tools.analyzer.anomalies import Thresholds, entropy, suspicious_dns_name
from packetlab.tools.analyzer.inspector import Inspector, inspect_frames, read_pcap
from packetlab.tools.analyzer.reassembly import Reassembler
from packetlab.tools.analyzer.records import FlowKey

HTTP_REQUEST = b"GET /big HTTP/1.1\r\nHost: frag.lab.test\r\n\r\n"


def test_ipv4_fragments_reassemble_out_of_order():
    pkt = IP(src="10.11.0.1", dst="10.11.0.2", id=77) / UDP(sport=1, dport=2) / (b"a" * 3000)
    frags = [bytes(Ether() / f) for f in fragment(pkt, fragsize=1000)]
    assert len(frags) == 4
    r = Reassembler()
    assert [r.feed(f, 0.1) for f in (frags[3], frags[0], frags[2])] == [None] * 3
    whole = r.feed(frags[1], 0.2)
    assert whole is not None
    got = Ether(whole)
    assert got[IP].flags == 0 and got[IP].frag == 0 and got[UDP].len == 3008
    assert bytes(got[UDP].payload) == b"a" * 3000
    assert got[IP].chksum == IP(bytes(got[IP]))[IP].chksum  # a valid header checksum
    assert r.stats.reassembled == 1 and not r.pending


def test_ipv6_fragments_and_overlaps():
    pkt = IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(id=5) / UDP(sport=1, dport=2) / (b"b" * 2500)
    frags = [bytes(Ether() / f) for f in fragment6(pkt, 1280)]
    r = Reassembler()
    outs = [r.feed(f, 0.0) for f in frags]
    assert outs[:-1] == [None] * (len(frags) - 1)
    assert bytes(Ether(outs[-1])[UDP].payload) == b"b" * 2500
    first = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", id=1, flags="MF", frag=0, proto=17) / (b"x" * 16))
    overlap = bytes(Ether() / IP(src="1.1.1.1", dst="2.2.2.2", id=1, flags=0, frag=1, proto=17) / (b"y" * 16))
    assert r.feed(first, 1.0) is None and r.feed(overlap, 1.0) is None
    assert r.stats.overlaps == 1 and not r.pending


def test_fragmented_http_request_is_still_labelled():
    frames = T.tcp_session(
        T.CLIENT, T.SERVER, 40500, 8443, HTTP_REQUEST + b"x" * 2000, b"HTTP/1.1 200 OK\r\n\r\n", 10.0
    )
    split = []
    for data, ts in frames:
        pkt = Ether(data)
        pieces = fragment(pkt[IP], fragsize=600) if len(data) > 1000 else [pkt[IP]]
        split += [(bytes(Ether(src=pkt.src, dst=pkt.dst) / p), ts) for p in pieces]
    ins = inspect_frames(split)
    rec = {r.key: r for r in ins.records()}[FlowKey(6, T.CLIENT, T.SERVER, 40500, 8443)]
    assert rec.app == "http" and ins.reassembler.stats.reassembled == 1
    assert any(t.info.fields.get("host") == "frag.lab.test" for t in ins.transactions)


def test_flows_labels_hosts_and_tracker_states():
    ins = inspect_frames(T.normal_traffic())
    recs = {r.key: r for r in ins.records()}
    web = recs[FlowKey(6, T.CLIENT, T.SERVER, 41000, 8080)]
    assert (web.app, web.packets, web.state) == ("http", 5, "TIME_WAIT")
    assert recs[FlowKey(6, T.SERVER, T.CLIENT, 8080, 41000)].app == "http"  # the reply direction too
    assert recs[FlowKey(6, T.CLIENT, T.SERVER, 40100, 2222)].app == "ssh"  # SSH on a port that is not 22
    assert recs[FlowKey(1, T.CLIENT, T.SERVER, 0, 8 << 8)].packets == 3
    assert ins.hosts[T.SERVER] == T.MACS[T.SERVER]
    usage = ins.usage_by_label()
    assert usage["http"] > 0 and usage["dns"] > 0
    rcodes = [t.info.fields.get("rcode") for t in ins.transactions if t.info.app == "dns"]
    assert "NXDOMAIN" in rcodes


def test_normal_traffic_raises_no_alert():
    assert inspect_frames(T.normal_traffic()).alerts == []


def test_each_attack_raises_its_alert_with_evidence():
    cases = {
        "port_scan": T.port_scan(100.0),
        "syn_flood": T.syn_flood(100.0),
        "udp_flood": T.udp_flood(100.0),
        "dns_tunnel": T.dns_tunnel(100.0),
    }
    for kind, trace in cases.items():
        alerts = inspect_frames(T.merge(T.normal_traffic(99.0), trace)).alerts
        assert [a.kind for a in alerts] == [kind], kind
        assert alerts[0].evidence and alerts[0].threshold
    wide = inspect_frames(T.port_scan(0.0, ports=range(1, 301))).alerts  # 300 SYNs, but over 300 ports
    assert [a.kind for a in wide] == ["port_scan"]
    scan = inspect_frames(T.port_scan(100.0)).alerts[0]
    assert (scan.source, scan.target, scan.evidence["ports"]) == ("10.11.0.66", T.SERVER, 100)


def test_thresholds_are_the_users():
    small_scan = T.port_scan(0.0, ports=range(1, 11))
    assert inspect_frames(small_scan).alerts == []
    assert [a.kind for a in inspect_frames(small_scan, Thresholds(scan_ports=10)).alerts] == ["port_scan"]
    slow_scan = T.port_scan(0.0, ports=range(1, 31))
    slow = [(f, t * 1000) for f, t in slow_scan]  # 2 s between probes: wider than the 10 s window holds 20 of
    assert inspect_frames(slow).alerts == []  # the documented blind spot of a windowed detector


def test_dns_name_heuristics():
    t = Thresholds()
    assert suspicious_dns_name("www.lab.test", t) is None
    assert suspicious_dns_name("_ldap._tcp.dc._msdcs.lab.test", t) is None
    assert suspicious_dns_name("a" * 50 + ".x.example", t) == "label of 50 characters"
    assert entropy("aaaa") == 0.0 and round(entropy("abcd"), 3) == 2.0


def test_pcap_round_trip(tmp_path):
    path = tmp_path / "normal.pcap"
    frames = T.normal_traffic()
    T.write_pcap(path, frames)
    back = list(read_pcap(path))
    assert [d for d, _ in back] == [d for d, _ in frames]
    assert abs(back[5][1] - frames[5][1]) < 1e-5
    assert len(Inspector().feed_pcap(path).records()) == len(inspect_frames(frames).records())
