"""Module 11a on the real kernel: bpf/11a-sketch.c fed packets by BPF_PROG_TEST_RUN and by live
traffic between two lab namespaces.

* the sketch's counters and candidates equal the Python model's, cell for cell, for the same packets;
* exact mode counts every flow and source exactly; a full exact map spills into the sketch, losing nothing;
* mode switches under live traffic lose no count: the snapshots add up to the packets sent.

Nothing here asserts on speed.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import numpy as np
import pytest

from packetlab.ebpf.loader import acquire, release
from packetlab.tools.sketch.layout import MODE_EXACT, MODE_SKETCH, SOURCE, Flow, Geometry
from packetlab.tools.sketch.model import CountMinSketch
from packetlab.tools.sketch.telemetry import Snapshot, Telemetry
from packetlab.tools.sketch.traffic import Workload, frame, zipf

SMALL = Geometry(depth=3, width_log2=8, candidates=16, flows=512, sources=64)


def mixed_workload() -> Workload:
    """Zipf UDP flows plus TCP, IPv6 and ICMP flows, so every key shape is hashed."""
    base = zipf(300, 3000, 1.1, seed=7)
    extra = [
        Flow(6, 6, "fd11::1", "fd11::2", 40000, 443),
        Flow(6, 17, "fd11::3", "fd11::2", 5353, 53),
        Flow(4, 1, "10.11.9.9", "10.11.255.254"),
        Flow(4, 6, "10.11.9.8", "10.11.255.254", 33000, 80),
    ]
    return Workload("mixed", base.flows + extra, np.concatenate([base.counts, [40, 9, 5, 120]]))


def feed(telemetry: Telemetry, workload: Workload) -> None:
    assert telemetry.program.test_run(frame(workload.flows[0])).verdict == "XDP_PASS"
    assert telemetry.replay(workload.runs(rounds=3, seed=3)) == workload.packets


@pytest.fixture
def telemetry():
    prog = acquire(SOURCE, cflags=SMALL.cflags())
    try:
        yield Telemetry(prog, SMALL)
    finally:
        release(prog)


def test_sketch_equals_the_python_model(telemetry):
    work = mixed_workload()
    telemetry.set_mode("sketch")
    feed(telemetry, work)
    telemetry.program.test_run(bytes.fromhex("ffffffffffff020000000b010806") + bytes(28))  # ARP: no flow
    snap = telemetry.swap()

    model = CountMinSketch(SMALL)
    model.update(work.flows[0].key_bytes())
    for flow, count in work.runs(rounds=3, seed=3):
        model.update(flow.key_bytes(), count)
    assert np.array_equal(snap.sketch, model.counters), "the kernel's counters differ from the model's"
    want = sorted((Flow.from_key(c.key), c.estimate) for c in model.candidates if c.estimate)
    assert sorted(snap.candidates) == want
    assert snap.stats["sketch"] == snap.sketch_total == work.packets + 1
    assert snap.stats["packets"] == work.packets + 2 and snap.stats["other"] == 1
    truth = work.truth()
    assert all(snap.estimate(f) >= n for f, n in truth.items()), "a Count-Min estimate is never below the truth"


def test_exact_mode_counts_every_flow_and_source(telemetry):
    work = mixed_workload()
    feed(telemetry, work)
    snap = telemetry.swap()
    assert snap.mode == MODE_EXACT and snap.stats["full"] == 0 and snap.stats["sketch"] == 0
    truth = work.truth()
    truth[work.flows[0]] += 1  # the verdict check's packet
    assert {f: pc[0] for f, pc in snap.flows.items()} == truth
    assert all(b == p * len(frame(f)) for f, (p, b) in snap.flows.items())
    by_source: Counter[str] = Counter()
    for f, n in truth.items():
        by_source[f.src] += n
    assert {s: pc[0] for s, pc in snap.sources.items()} == dict(by_source)
    assert snap.stats["new_flows"] == len(work.flows) == len(snap.flows)
    assert telemetry.swap().stats["packets"] == 0, "the next epoch starts empty"


def test_a_full_exact_map_spills_into_the_sketch(telemetry):
    work = zipf(700, 3000, 1.0, seed=5)  # 700 flows into a map of 512
    feed(telemetry, work)
    snap = telemetry.swap()
    assert snap.stats["full"] > 0 and snap.stats["exact"] + snap.stats["sketch"] == work.packets + 1
    assert len(snap.flows) == SMALL.flows
    assert snap.sketch_total == snap.stats["sketch"]
    assert all(snap.estimate(f) >= n for f, n in work.truth().items())


def sum_flow(snaps: list[Snapshot], flows: set[Flow]) -> int:
    return sum(s.estimate(f) for s in snaps for f in flows)


def test_switching_under_live_traffic_loses_nothing(lab):
    """trafgen floods h1 -> h2 while the controller flips exact/sketch every 40 ms; every epoch's
    snapshot is read after its grace period, and together they hold every packet sent."""
    from packetlab.course.m11a_telemetry_sketch.topology import build, lab_flows

    topo = build(lab)  # both neighbour entries pinned: every frame counted is the flood's
    telemetry = topo.attach(Geometry(width_log2=12, flows=1024))  # native XDP on h2, from an empty epoch
    snaps: list[Snapshot] = []
    stop = threading.Event()

    def switcher() -> None:
        while not stop.is_set():
            snaps.append(telemetry.swap(MODE_SKETCH if telemetry.mode == MODE_EXACT else MODE_EXACT))
            time.sleep(0.04)

    thread = threading.Thread(target=switcher)
    thread.start()
    try:
        result = topo.flood(flows=16, seconds=1.5)
    finally:
        stop.set()
        thread.join()
    snaps.append(telemetry.swap())
    topo.detach()
    flows = lab_flows(16)
    modes = {s.mode for s in snaps if s.stats["packets"]}
    assert modes == {MODE_EXACT, MODE_SKETCH}, "the flood spanned both modes"
    assert len(telemetry.switches) >= 10
    assert all(s.counted + s.stats["other"] == s.stats["packets"] for s in snaps)
    assert result.sent > 1000
    assert sum(s.stats["other"] for s in snaps) == 0, "nothing but the flood crossed the link"
    held = sum_flow(snaps, flows)
    assert held == result.sent, f"{result.sent} sent, the snapshots hold {held}"
