"""Module 11a's checks without a kernel: exercises 1 and 2 accept the right answer and explain wrong ones;
the adaptive controller's hysteresis."""

from __future__ import annotations

import math

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11a_telemetry_sketch import exercises as ex
from packetlab.tools.sketch.controller import Hysteresis
from packetlab.tools.sketch.layout import MODE_EXACT, MODE_SKETCH, Geometry


def test_check_dimensions():
    assert ex.check_dimensions((8192, 5), epsilon=0.0005, delta=0.01)
    for wrong, why in (
        ((5437, 5), "power of two"),
        ((4096, 5), "e/w"),
        ((16384, 5), "smallest"),
        ((8192, 4), "e\\*\\*-d"),
        ((8192, 6), "more rows"),
        (None, "no answer"),
    ):
        with pytest.raises(CheckFailed, match=why):
            ex.check_dimensions(wrong, epsilon=0.0005, delta=0.01)


def test_check_error_bound():
    g = Geometry(depth=4, width_log2=12)
    assert ex.check_error_bound((math.e / 4096 * 50000, math.exp(-4)), 50000, g)
    with pytest.raises(CheckFailed, match="not the bound"):
        ex.check_error_bound((50000 / 4096, math.exp(-4)), 50000, g)
    with pytest.raises(CheckFailed, match="probability"):
        ex.check_error_bound((math.e / 4096 * 50000, 1 / 4), 50000, g)


def test_hysteresis_switches_on_load_and_comes_back_only_after_hold():
    h = Hysteresis(high_rate=1000, low_rate=100, high_fill=0.9, low_fill=0.5, hold=3)
    assert h.decide(MODE_EXACT, 500, 0.2) == MODE_EXACT
    assert h.decide(MODE_EXACT, 1500, 0.2) == MODE_SKETCH
    assert h.decide(MODE_EXACT, 10, 0.95) == MODE_SKETCH
    # in the sketch: between the marks it stays; a noisy interval restarts the hold
    assert [h.decide(MODE_SKETCH, r, 0.1) for r in (500, 50, 50, 500, 50, 50)] == [MODE_SKETCH] * 6
    assert h.decide(MODE_SKETCH, 50, 0.1) == MODE_EXACT
