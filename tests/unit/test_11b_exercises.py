"""Module 11b: the checks of exercises 1 and 2 accept right answers and refuse wrong ones, with a reason."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11b_packet_analyzer import traces as T
from packetlab.course.m11b_packet_analyzer.exercises import check_detection_rule, check_scan_query
from packetlab.course.m11b_packet_analyzer.helpers import default_alerts, slow_scan_trace
from packetlab.tools.analyzer.inspector import inspect_frames
from packetlab.tools.analyzer.store import FlowStore


@pytest.fixture(autouse=True)
def _progress_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PACKETLAB_DATA_DIR", str(tmp_path))


def good_rule(flows):
    probes: dict[str, set] = {}
    for f in flows:
        if f.key.proto == 6 and f.tcp_flags & 0x02 and not f.tcp_flags & 0x10:
            probes.setdefault(f.key.src, set()).add((f.key.dst, f.key.dport))
    return {src for src, ports in probes.items() if len(ports) >= 10}


def test_the_default_detector_misses_the_slow_scan():
    assert default_alerts(slow_scan_trace()) == []


def test_detection_rule_check():
    assert check_detection_rule(good_rule)
    with pytest.raises(CheckFailed, match="did not flag 10.11.0.77"):
        check_detection_rule(lambda flows: set())
    with pytest.raises(CheckFailed, match="false positive"):  # every SYN sender, handshake or not
        check_detection_rule(lambda flows: {f.key.src for f in flows if f.tcp_flags & 0x02})
    with pytest.raises(CheckFailed, match="another slow scan"):  # hard-coded
        check_detection_rule(lambda flows: {"10.11.0.77"} & {f.key.src for f in flows})
    with pytest.raises(CheckFailed, match="no rule yet"):
        check_detection_rule(None)


@pytest.fixture
def store():
    s = FlowStore()
    s.add_flows(inspect_frames(T.merge(T.normal_traffic(1000.0), T.port_scan(1001.0, scanner="10.11.0.66"))).records())
    yield s
    s.close()


def test_scan_query_check(store):
    assert check_scan_query("proto=tcp flags=S noflags=A group=src sort=ports", store, "10.11.0.66")
    with pytest.raises(CheckFailed, match="first row"):
        check_scan_query("group=src sort=bytes", store, "10.11.0.66")
    with pytest.raises(CheckFailed, match="another capture"):
        check_scan_query("src=10.11.0.66 group=src", store, "10.11.0.66")
    with pytest.raises(CheckFailed, match="refused"):
        check_scan_query("colour=red", store, "10.11.0.66")
    with pytest.raises(CheckFailed, match="no src column"):
        check_scan_query("group=app", store, "10.11.0.66")
