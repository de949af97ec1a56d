"""Module 11a with real protocol traffic: the shipped captures (curl/http.server, dig/dnsmasq, iperf3),
replayed by tcpreplay from h1 into h2, are counted by the XDP program exactly as the capture says;
and make_captures makes such captures from the real programs."""

from __future__ import annotations

import pytest

from packetlab.course.m11a_telemetry_sketch.captures import SHIPPED, make_captures, replay
from packetlab.course.m11a_telemetry_sketch.topology import build
from packetlab.tools.sketch.layout import Geometry
from packetlab.tools.sketch.traffic import from_pcap


@pytest.fixture(scope="module")
def topo(module_lab):
    return build(module_lab)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_replayed_capture_is_counted_exactly(topo, name):
    pcap = SHIPPED[name]
    truth = from_pcap(pcap).truth()
    tele = topo.attach(Geometry(width_log2=10, flows=1024))
    try:
        sent = replay(topo, pcap)
        snap = tele.swap()
    finally:
        topo.detach()
    assert sent >= sum(truth.values())  # the capture may hold ARP too: counted as "other", as are h2's own ARP replies
    assert snap.counted == sum(truth.values())
    assert {f: pc[0] for f, pc in snap.flows.items()} == truth


def test_make_captures_records_real_programs(topo, tmp_path):
    tmp_path.chmod(0o777)  # tcpdump writes as its own user
    made = make_captures(topo, tmp_path)
    flows = {name: from_pcap(path) for name, path in made.items()}
    assert any(f.dport == 8080 and f.proto == 6 for f in flows["http"].flows)
    assert sum(1 for f in flows["dns"].flows if f.dport == 53) >= 12
    assert any(f.dport == 5201 and f.proto == 17 for f in flows["iperf3"].flows)
