"""Module 11b's inspection source on the real kernel: the TPACKET_V3 ring (packetlab.topo.packet_ring)
between two lab namespaces — known frames read back with their bytes, lengths and kernel times, the
socket filter's counts, the drops PACKET_STATISTICS reports for a ring nobody reads, the socket and
the mapping gone after close — and the live analyzer with ``--inspect afpacket`` labelling HTTP."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from packetlab.tools.analyzer.capture import RingReader, open_ring
from packetlab.tools.analyzer.cli import main as analyze
from packetlab.tools.analyzer.inspector import read_pcap
from packetlab.tools.analyzer.kernel import SOURCE
from packetlab.tools.analyzer.query import run_query
from packetlab.tools.analyzer.session import LiveSession
from packetlab.topo import servers
from packetlab.topo.packet_ring import Geometry, PacketRing, RingFrame

NOBODY = "10.11.7.99"  # on the link's subnet, owned by no one: h2 receives these frames and answers none


@pytest.fixture
def pair(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.11.7.1/24", peer_ip="10.11.7.2/24")
    return h1, h2


def _eth(h1, h2) -> Ether:
    return Ether(src=h1.mac(), dst=h2.mac())


def _read(ring: PacketRing, n: int, timeout: float = 3.0) -> list[RingFrame]:
    out: list[RingFrame] = []
    end = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < end:
        out += ring.read(0.1)
    return out


def test_known_frames_come_back_with_their_bytes_lengths_and_times(pair):
    h1, h2 = pair
    frames = [
        bytes(_eth(h1, h2) / IP(src="10.11.7.1", dst=NOBODY) / UDP(sport=5000 + i, dport=7777) / (bytes([i]) * size))
        for i, size in enumerate((10, 200, 600, 1400))
    ]
    with PacketRing(h2.namespace, "eth0", filter="udp port 7777", snaplen=128) as ring:
        t0 = time.time()
        for f in frames:
            h1.send(Ether(f))
        got = _read(ring, len(frames))
        t1 = time.time()
        stats = ring.stats()
    assert [g.data for g in got] == [f[:128] for f in frames]  # the snap length cut the long ones
    assert [g.wirelen for g in got] == [len(f) for f in frames]
    assert [g.truncated for g in got] == [False, True, True, True]
    times = [g.timestamp for g in got]
    assert times == sorted(times) and t0 <= times[0] and times[-1] <= t1  # the kernel's clock, in send order
    assert stats == {"packets": 4, "drops": 0, "freeze_q": 0}


def test_the_filter_keeps_out_what_it_should(pair):
    h1, h2 = pair
    eth, ip = _eth(h1, h2), IP(src="10.11.7.1", dst=NOBODY)
    sent = {
        "pure ack": (eth / ip / TCP(sport=4000, dport=80, flags="A"), 7),
        "syn": (eth / ip / TCP(sport=4001, dport=80, flags="S"), 3),
        "tcp payload": (eth / ip / TCP(sport=4002, dport=80, flags="PA") / b"GET / HTTP/1.1\r\n\r\n", 4),
        "udp": (eth / ip / UDP(sport=4003, dport=53) / b"q", 5),
        "arp": (Ether(src=h1.mac(), dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.11.7.1", pdst=NOBODY), 6),
    }
    with open_ring(h2.namespace, "eth0") as ring:
        for frame, count in sent.values():
            h1.send(frame, count=count)
        got = _read(ring, 12)
        time.sleep(0.05)
        got += ring.read(0.05)
        stats = ring.stats()
    ours = [g for g in got if g.data[6:12] == bytes.fromhex(h1.mac().replace(":", ""))]
    assert len(ours) == 3 + 4 + 5 == len(got)  # no pure ACK, no ARP; nothing else on the wire
    assert stats["packets"] == 12 and stats["drops"] == 0


def test_a_ring_nobody_reads_reports_its_drops(pair):
    h1, h2 = pair
    burst = 200
    frame = _eth(h1, h2) / IP(src="10.11.7.1", dst=NOBODY) / UDP(sport=6000, dport=7777) / (b"d" * 900)
    tiny = Geometry(block_size=4096, block_nr=2, frame_size=2048, retire_ms=5)  # 4 frames of 942 bytes fit
    with PacketRing(h2.namespace, "eth0", filter="udp port 7777", geometry=tiny) as ring:
        h1.send(frame, count=burst)
        time.sleep(0.1)  # let the kernel retire the last block
        stats = ring.stats()
        kept = len(ring.read())
    assert stats["packets"] == burst  # tp_packets counts the dropped frames too
    assert stats["drops"] > 0 and stats["freeze_q"] >= 1
    assert kept + stats["drops"] == burst  # every frame was either kept or counted as dropped


def test_sparse_frames_retire_blocks_and_the_reader_thread_keeps_them(pair):
    """TPACKET_V3 retires a block on its timeout however few frames it holds: 12 frames 20 ms apart take 12
    blocks. A ring of 2 blocks nobody reads drops some of them; the analyzer's reader thread loses none."""
    h1, h2 = pair
    frame = _eth(h1, h2) / IP(src="10.11.7.1", dst=NOBODY) / UDP(sport=6001, dport=7777) / b"sparse"
    tiny = Geometry(block_size=1 << 16, block_nr=2, frame_size=2048, retire_ms=5)  # room for 900 such frames

    def trickle() -> None:
        for _ in range(12):
            h1.send(frame)
            time.sleep(0.02)
        time.sleep(0.05)

    with PacketRing(h2.namespace, "eth0", filter="udp port 7777", geometry=tiny) as ring:
        trickle()
        unread = ring.stats()
        assert len(ring.read()) + unread["drops"] == 12 and unread["drops"] > 0 and unread["freeze_q"] >= 1
    with PacketRing(h2.namespace, "eth0", filter="udp port 7777", geometry=tiny) as ring:
        reader = RingReader(ring)
        trickle()
        reader.stop()
        assert len(reader.take()) == 12 and ring.stats()["drops"] == 0


def _socket_fds() -> set[str]:
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            out.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return {t for t in out if t.startswith("socket:")}


def _mapped(target: str) -> bool:
    return target in Path("/proc/self/maps").read_text()


def test_close_unmaps_and_closes_also_on_an_exception(pair):
    _h1, h2 = pair
    before = _socket_fds()
    with pytest.raises(RuntimeError), PacketRing(h2.namespace, "eth0", filter="udp") as ring:
        target = os.readlink(f"/proc/self/fd/{ring.fileno()}")
        assert target not in before and _mapped(target)
        raise RuntimeError("a reader failed")
    assert ring.closed and ring.ring is None
    assert target not in _socket_fds() and not _mapped(target)


def test_live_session_inspects_the_ring_both_directions(pair):
    h1, h2 = pair
    web = servers.start(h2, servers.python_module("http.server", 8443, "--bind", "10.11.7.2"), tcp=("10.11.7.2", 8443))
    xdp = h2.attach_xdp(SOURCE)
    try:
        with LiveSession(xdp, sample_every=0, idle=60, ring=open_ring(h2.namespace, "eth0")) as session:
            for _ in range(2):
                assert h1.run(["curl", "-sf", "-o", "/dev/null", "http://10.11.7.2:8443/"], timeout=10).returncode == 0
            session.step(0.3)
            assert "http" in session.table()
            session.flush()
            said = {t.info.summary() for t in session.inspector.transactions}
            assert any("200" in s for s in said) and any("GET" in s for s in said)  # the reply is seen too
            c, r = session.monitor.counters(), session.ring_stats()
            assert session.events["sample"] == 0 and c["ringbuf_lost"] == 0 and c["table_full"] == 0
            assert r["drops"] == 0 and r["read"] == r["packets"] > 0
            assert session.inspector.alerts == []
            assert len(run_query(session.store, "app=http dport=8443")) == 2
            assert 'packetlab_analyzer_afpacket_total{counter="drops"} 0' in session.metrics()
        assert session.ring is not None and session.ring.closed
    finally:
        xdp.detach()
        web.stop()


def test_cli_live_afpacket_labels_http(pair, capsys, tmp_path):
    h1, h2 = pair
    web = servers.start(h2, servers.python_module("http.server", 8081, "--bind", "10.11.7.2"), tcp=("10.11.7.2", 8081))
    client = h1.popen("sleep 0.7; for i in 1 2 3; do curl -sf -o /dev/null http://10.11.7.2:8081/; done")
    db, pcap = tmp_path / "flows.db", tmp_path / "inspected.pcap"
    argv = ["live", "--netns", h2.namespace, "--dev", "eth0", "--seconds", "2.5", "--db", str(db), "--pcap", str(pcap)]
    assert analyze([*argv, "--inspect", "afpacket"]) == 0
    assert client.wait(timeout=10) == 0
    out = capsys.readouterr().out
    assert "drops=0" in out and "ringbuf_lost=0" in out
    assert "http" in out  # the table's app column
    frames = list(read_pcap(pcap))
    assert frames and f"{len(frames)} inspected frames written" in out
    assert analyze(["query", "app=http dport=8081", "--db", str(db), "--csv"]) == 0
    assert capsys.readouterr().out.count("10.11.7.1") == 3
    assert analyze([*argv, "--inspect", "afpacket", "--sample", "2"]) == 2  # --sample is for samples
    assert analyze([*argv, "--filter", "udp prot 53"]) == 1  # a bad filter is refused input
    web.stop()
