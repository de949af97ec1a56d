"""Graded exercises of module 11a (the telemetry sketch).

1. choose w and d for a target error and confidence (the program's w is a power of two);
2. predict the error bound of a given trace and sketch — then the kernel's sketch is measured against it;
3. find the flow the kernel's sketch reports as heavy although it is not, and say why.

C assignments (graded by `packetlab.course.assignments`, see `assignments.py`): 11a.A1 the
Count-Min update, 11a.A2 the heavy-hitter candidates, each spliced into bpf/11a-sketch.c.
"""

from __future__ import annotations

import math
from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import graded, pair_answer, passed, require, unanswered
from packetlab.course.m11a_telemetry_sketch.assignments import CMS_UPDATE, HEAVY_HITTERS
from packetlab.tools.sketch.layout import Flow, Geometry


@graded("work out w >= e/epsilon and d >= ln(1/delta) yourself, set answer = (w, d) and run the check again")
def check_dimensions(answer: Any, epsilon: float, delta: float) -> bool:
    """Exercise 1: the smallest power-of-two width and the smallest depth for error <= epsilon*N w.p. >= 1-delta."""
    ex = "11a.1 sizing the sketch"
    w, d = pair_answer(answer, ex, placeholder="(w, d)", shape="a pair of integers like (4096, 3)")
    need_w = math.e / epsilon
    need_d = math.log(1 / delta)
    want_w = 1 << math.ceil(math.log2(need_w))
    want_d = math.ceil(need_d)
    require(
        isinstance(w, int) and w > 0 and w & (w - 1) == 0,
        ex,
        f"w = {w!r} is not a power of two",
        "the program picks a column with a shift (top bits of the hash), so w must be 2**k",
    )
    require(
        w >= need_w, ex, f"w = {w} gives e/w = {math.e / w:.6f} > epsilon = {epsilon}", "epsilon = e / w: solve for w"
    )
    require(w == want_w, ex, f"w = {w} works but is not the smallest power of two", f"e/epsilon = {need_w:.0f}")
    require(
        isinstance(d, int) and d >= need_d,
        ex,
        f"d = {d!r}: e**-d = {math.exp(-d) if isinstance(d, int) else float('nan'):.4f} > delta = {delta}",
        "delta = e**-d: d = ln(1/delta), rounded up",
    )
    require(d == want_d, ex, f"d = {d} works but is more rows than needed", f"ln(1/delta) = {need_d:.2f}")
    return passed(ex, f"w = {w} (e/w = {math.e / w:.2e}), d = {d} (e^-d = {math.exp(-d):.4f})")


@graded("compute (e/w)*N and e**-d for the trace and sketch shown, set answer and run the check again")
def check_error_bound(answer: Any, packets: int, geometry: Geometry) -> bool:
    """Exercise 2: (the overcount in packets, the probability a flow's estimate exceeds it)."""
    ex = "11a.2 predicting the error bound"
    bound, prob = pair_answer(answer, ex, placeholder="(packets, probability)", shape="a pair like (120.5, 0.05)")
    want_bound, want_prob = math.e / geometry.width * packets, math.exp(-geometry.depth)
    require(
        isinstance(bound, int | float) and abs(bound - want_bound) <= 0.01 * want_bound,
        ex,
        f"{bound!r} packets is not the bound",
        f"epsilon = e / w with w = {geometry.width}; the bound is epsilon times all {packets} packets",
    )
    require(
        isinstance(prob, int | float) and abs(prob - want_prob) <= 0.01 * want_prob,
        ex,
        f"{prob!r} is not the probability of exceeding it",
        f"delta = e ** -d with d = {geometry.depth}",
    )
    return passed(ex, f"an estimate exceeds the truth by more than {want_bound:.0f} packets with p <= {want_prob:.4f}")


@graded("compare the report with the exact counts, pick the flow that is not heavy and run the check again")
def check_false_heavy_hitter(answer: Any, scenario: Any) -> bool:
    """Exercise 3: answer = {"flow": <the wrongly reported Flow>, "why": "<one sentence>"}."""
    ex = "11a.3 the wrong heavy hitter"
    require(not unanswered(answer), ex, "no answer yet", 'set answer = {"flow": Flow(...), "why": "..."}')
    require(isinstance(answer, dict) and {"flow", "why"} <= set(answer), ex, "answer needs keys 'flow' and 'why'")
    report = scenario.report
    require(report is not None, ex, "the scenario has not run yet", "run the cell with scenario.run(...) first")
    flow = answer["flow"]
    if isinstance(flow, str):
        flow = next((f for f in report.reported if str(f) == flow), flow)
    require(isinstance(flow, Flow), ex, f"{flow!r} is not a Flow", "pick one from scenario.report.reported")
    require(flow in report.reported, ex, f"the sketch did not report {flow}", "pick one of the reported flows")
    require(
        flow in report.false_positives,
        ex,
        f"{flow} is truly heavy ({scenario.exact.flows[flow][0]} packets >= {scenario.threshold:.0f})",
        "compare each reported estimate with the exact count of the same trace",
    )
    why = str(answer["why"]).lower()
    require(
        any(w in why for w in ("collid", "collision", "share", "same counter")),
        ex,
        "the reason does not say what raised its counters",
        "every row's counter of this flow also holds other flows' packets: what do they have in common?",
    )
    true = scenario.exact.flows[flow][0]
    return passed(
        ex,
        f"{flow}: {true} packets, estimated {scenario.sketch.estimate(flow)}: in every row it shares its counter "
        f"with heavier flows (the minimum is still an overcount)\n{scenario.explain(flow)}",
    )


# ---- C assignments: the learner writes the eBPF (graded by packetlab.course.assignments) --------------
@graded(CMS_UPDATE.try_it)
def check_cms_update(source: str | None) -> bool:
    """Assignment 11a.A1: the Count-Min update of sketch_update(), spliced into 11a-sketch."""
    return check(CMS_UPDATE, source)


@graded(HEAVY_HITTERS.try_it)
def check_heavy_hitters(source: str | None) -> bool:
    """Assignment 11a.A2: the heavy-hitter candidate update of sketch_update(), spliced into 11a-sketch."""
    return check(HEAVY_HITTERS, source)
