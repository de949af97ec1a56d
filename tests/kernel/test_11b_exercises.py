"""Module 11b exercise 3 on the real kernel: the ring-buffer overflow run and its check."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11b_packet_analyzer.exercises import check_dropped_events
from packetlab.course.m11b_packet_analyzer.helpers import ring_overflow


@pytest.fixture(autouse=True)
def _progress_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("PACKETLAB_DATA_DIR", str(tmp_path))


def test_dropped_event_counter_check():
    run = ring_overflow(packets=60)
    c = run.counters
    assert c["table_full"] == 0 and c["packets"] == 60
    assert run.delivered == c["events"] and run.delivered + c["ringbuf_lost"] == 61
    assert check_dropped_events({"lost": c["ringbuf_lost"], "cause": "b"}, run)
    with pytest.raises(CheckFailed, match="does not match"):
        check_dropped_events({"lost": 60 - run.delivered, "cause": "b"}, run)  # forgot the start event
    with pytest.raises(CheckFailed, match="flow table was full"):
        check_dropped_events({"lost": c["ringbuf_lost"], "cause": "a"}, run)
