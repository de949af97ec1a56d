"""Module 11a's exercise 3 on the real kernel: the scenario's trace, replayed into the program, makes the
sketch report exactly one flow that is not heavy; the check accepts it and refuses the others."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11a_telemetry_sketch import exercises as ex
from packetlab.course.m11a_telemetry_sketch.teach import false_heavy_scenario
from packetlab.tools.sketch.telemetry import Telemetry


def test_false_heavy_hitter_scenario_and_check():
    scenario = false_heavy_scenario()
    with Telemetry.open(scenario.geometry) as tele:
        report = scenario.run(tele)
    assert len(report.false_positives) == 1 and not report.missed
    wrong = next(iter(report.false_positives))
    assert scenario.exact.flows[wrong][0] < scenario.threshold / 2 <= scenario.sketch.estimate(wrong)
    assert ex.check_false_heavy_hitter({"flow": wrong, "why": "it collides with heavy flows"}, scenario)
    assert ex.check_false_heavy_hitter({"flow": str(wrong), "why": "shares counters"}, scenario)
    heavy = next(iter(report.true))
    with pytest.raises(CheckFailed, match="truly heavy"):
        ex.check_false_heavy_hitter({"flow": heavy, "why": "collision"}, scenario)
    with pytest.raises(CheckFailed, match="reason"):
        ex.check_false_heavy_hitter({"flow": wrong, "why": "bad luck"}, scenario)
