"""Module 11b live: both tiers on real traffic between lab namespaces — curl to an HTTP server
on port 8443, ping, a UDP burst — flows stored and labelled, no record or event lost, no alert
on normal traffic; and a smoke run of ``packetlab analyze live``."""

from __future__ import annotations

from packetlab.tools.analyzer.cli import main as analyze
from packetlab.tools.analyzer.inspector import read_pcap
from packetlab.tools.analyzer.kernel import SOURCE
from packetlab.tools.analyzer.query import run_query
from packetlab.tools.analyzer.session import LiveSession
from packetlab.topo import servers


def test_live_session_labels_stores_and_stays_quiet(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.11.0.1/24", peer_ip="10.11.0.2/24")
    web = servers.start(h2, servers.python_module("http.server", 8443, "--bind", "10.11.0.2"), tcp=("10.11.0.2", 8443))
    xdp = h2.attach_xdp(SOURCE)
    with LiveSession(xdp, sample_every=1, idle=60) as session:
        for _ in range(3):
            assert h1.run(["curl", "-sf", "-o", "/dev/null", "http://10.11.0.2:8443/"], timeout=10).returncode == 0
        h1.ping("10.11.0.2", count=2, interval=0.2, check=True)
        session.step(0.3)
        assert "http" in session.table()
        session.flush()
        c = session.monitor.counters()
        assert c["table_full"] == 0 and c["ringbuf_lost"] == 0
        assert session.events["sample"] == c["packets"] - c["not_ip"]  # every IP packet's head was inspected
        assert session.inspector.alerts == []
        rows = run_query(session.store, "app=http dport=8443 dst=10.11.0.2")
        assert len(rows) == 3 and all("S" in r["tcp_flags"] and "F" in r["tcp_flags"] for r in rows)
        assert run_query(session.store, "proto=icmp")[0]["packets"] == 2
        assert 'packetlab_analyzer_kernel_total{counter="ringbuf_lost"} 0' in session.metrics()
        hosts = session.inspector.hosts
        assert hosts["10.11.0.1"] == h1.mac()
    xdp.detach()
    web.stop()


def test_cli_live_smoke(lab, capsys, tmp_path):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.11.0.1/24", peer_ip="10.11.0.2/24")
    h1.ping("10.11.0.2", count=1, check=True)
    pcap = tmp_path / "heads.pcap"
    pinger = h1.popen(["ping", "-c", "4", "-i", "0.2", "10.11.0.2"])
    argv = ["live", "--netns", h2.namespace, "--dev", "eth0", "--seconds", "1", "--prometheus", "--pcap", str(pcap)]
    argv += ["--inspect", "samples"]  # the XDP program's heads (test_11b_afpacket runs the default, afpacket)
    assert analyze(argv) == 0
    pinger.wait(timeout=5)
    out = capsys.readouterr().out
    assert "ringbuf_lost=0" in out and "packetlab_analyzer_kernel_total" in out
    heads = list(read_pcap(pcap))  # the sampled heads, readable as a capture
    assert heads and f"{len(heads)} sampled packet heads written" in out
    assert analyze(["live", "--netns", "nonexistent-ns", "--dev", "eth0"]) != 0
