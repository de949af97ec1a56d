"""A tiny smoke run of ``python -m packetlab.bench analyzer`` (labels on a synthetic pcap, short floods).
Nothing here asserts on speed."""

from __future__ import annotations

import shutil

from packetlab.bench import analyzer
from packetlab.course.m11b_packet_analyzer import traces as T


def test_bench_analyzer_smoke(tmp_path, capsys):
    pcap = tmp_path / "t.pcap"
    T.write_pcap(pcap, T.merge(T.normal_traffic(1000.0), T.port_scan(1005.0, ports=range(1, 11))))
    result = analyzer.run(seconds=0.3, repeat=1000, pcap=str(pcap))
    out = capsys.readouterr().out
    assert "ours = tshark" in out and "XDP_DROP sink" in out
    assert result["labels"].summary["conversations"] > 20
    assert set(result["testrun"]) == {"XDP_DROP sink", "11b-flow (drop)"}
    setups = [r.setup for r in result["live"]]
    assert setups[:2] == ["XDP_DROP sink", "11b-flow (drop)"]
    flow = result["live"][1]
    assert "ringbuf_lost=0" in flow.drops and "table_full=0" in flow.drops
    rings = [r for r in result["live"] if r.setup.startswith("AF_PACKET TPACKET_V3 ring")]
    assert len(rings) == 2 and all("tp_drops=" in r.drops and "tp_freeze_q_cnt=" in r.drops for r in rings)
    assert [p[0] for p in result["flow_vs_sink"]] == [1]  # one round: one flow/sink pair
    if shutil.which("tcpdump"):
        assert "tcpdump -w /dev/null" in setups
