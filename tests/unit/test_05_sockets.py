"""Module 05, no kernel: the load generator's arithmetic (nearest-rank percentiles)."""

from __future__ import annotations

from packetlab.course.m05_python_network_programming import load


def test_percentile_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert load.percentile(values, 50) == 50.0
    assert load.percentile(values, 99) == 99.0
    assert load.percentile(values, 100) == 100.0
    assert load.percentile([], 50) == 0.0
