"""Module 11a without a kernel: the sketch's hash family, its error bound, the layout and the workloads.

The kernel test (tests/kernel/test_11a_sketch.py) proves the XDP program equals this model;
here the model itself is held to the Count-Min guarantees.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from packetlab.tools.sketch.layout import Flow, Geometry, control_word, parse_control
from packetlab.tools.sketch.model import (
    CountMinSketch,
    columns,
    digest,
    dimensions_for,
    error_bound,
    key_array,
    row_columns,
)
from packetlab.tools.sketch.traffic import flow_number, flow_of_packet, frame, spike, zipf

KEYS = [flow_number(i).key_bytes() for i in range(20000)]
G = Geometry(depth=4, width_log2=8)


def test_numpy_and_python_hash_agree():
    words = key_array(KEYS[:500])
    cols = columns(words, G)
    for j in (0, 1, 17, 499):
        assert list(cols[:, j]) == row_columns(KEYS[j], G)


def test_each_row_spreads_keys_evenly():
    """Chi-square of 20000 similar keys (neighbouring addresses and ports) over 256 columns."""
    cols = columns(key_array(KEYS), G)
    expected = len(KEYS) / G.width
    for row in cols:
        counts = np.bincount(row, minlength=G.width)
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        assert chi2 < G.width + 4 * math.sqrt(2 * G.width), f"chi-square {chi2:.0f} for {G.width - 1} d.o.f."


def test_rows_are_independent():
    """Keys that collide in one row must not collide in another more often than chance (1/w):
    the point of d rows is that their collisions are independent."""
    cols = columns(key_array(KEYS[:4000]), G)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4000, 200000), rng.integers(0, 4000, 200000)
    keep = a != b
    a, b = a[keep], b[keep]
    for i in range(G.depth):
        same_i = cols[i, a] == cols[i, b]
        for j in range(i + 1, G.depth):
            both = (same_i & (cols[j, a] == cols[j, b])).sum()
            given_i = both / same_i.sum()
            assert abs(given_i - 1 / G.width) < 4 * math.sqrt(1 / G.width / same_i.sum()) + 1e-3, (i, j, given_i)


def test_the_digest_depends_on_every_byte():
    base = bytearray(KEYS[0])
    seen = {digest(bytes(base))}
    for i in range(len(base)):
        changed = bytearray(base)
        changed[i] ^= 1
        seen.add(digest(bytes(changed)))
    assert len(seen) == len(base) + 1


@settings(max_examples=25, deadline=None)
@given(
    flows=st.integers(50, 2000),
    skew=st.floats(0.0, 1.6),
    depth=st.integers(2, 5),
    width_log2=st.integers(5, 9),
    seed=st.integers(0, 2**16),
)
def test_error_bound_holds(flows, skew, depth, width_log2, seed):
    """Never an undercount; an overcount beyond (e/w)*N for at most a fraction e**-d of the flows
    (plus sampling slack: the bound is a probability per flow)."""
    g = Geometry(depth=depth, width_log2=width_log2)
    work = zipf(flows, flows * 5, skew, seed=seed)
    sketch = CountMinSketch(g)
    words = key_array(f.key_bytes() for f in work.flows)
    sketch.add_many(words, work.counts)
    err = sketch.estimates(words) - work.counts
    assert (err >= 0).all()
    over = float((err > error_bound(work.packets, g)).mean())
    assert over <= g.delta + 3 * math.sqrt(g.delta / flows) + 1 / flows


def test_conservative_update_never_undercounts_and_never_does_worse():
    work = zipf(800, 8000, 1.0, seed=3)
    plain, cu = CountMinSketch(G), CountMinSketch(G, conservative=True)
    for flow, count in work.runs(rounds=2):
        plain.update(flow.key_bytes(), count)
        cu.update(flow.key_bytes(), count)
    for flow, true in work.truth().items():
        k = flow.key_bytes()
        assert true <= cu.estimate(k) <= plain.estimate(k)


def test_candidates_hold_the_heavy_flows():
    work = zipf(3000, 60000, 1.2, seed=9)
    sketch = CountMinSketch(Geometry(depth=4, width_log2=10, candidates=128))
    for flow, count in work.runs(rounds=4):
        sketch.update(flow.key_bytes(), count)
    found = {Flow.from_key(k) for k in sketch.candidate_keys()}
    assert work.heavy_hitters(0.005) <= found


def test_dimensions_for_a_target():
    assert dimensions_for(0.001, 0.01) == (2719, 5)
    g = Geometry(depth=5, width_log2=12)
    assert g.epsilon == math.e / 4096 and math.isclose(g.delta, math.exp(-5))


def test_control_word_and_flow_key_round_trip():
    assert parse_control(control_word(1, 41)) == (1, 41)
    assert control_word(0, 3) & 1 == 0 and (control_word(0, 3) >> 1) & 1 == 1  # slot = epoch & 1
    for flow in (Flow(4, 17, "10.0.0.1", "10.0.0.2", 1, 2), Flow(6, 6, "fd00::1", "fd00::2", 80, 443)):
        assert Flow.from_key(flow.key_bytes()) == flow and len(flow.key_bytes()) == 40


def test_frames_parse_back_to_their_flow():
    import scapy.layers.inet  # noqa: F401  (binds IP/TCP/UDP to Ether, as the pcap reader does)
    import scapy.layers.inet6  # noqa: F401
    from scapy.layers.l2 import Ether

    for flow in (
        Flow(4, 17, "10.0.0.1", "10.0.0.2", 1, 2),
        Flow(4, 6, "10.0.0.1", "10.0.0.2", 3, 4),
        Flow(6, 17, "fd00::1", "fd00::2", 5, 6),
        Flow(4, 1, "10.0.0.1", "10.0.0.2"),
    ):
        assert flow_of_packet(Ether(frame(flow))) == flow


def test_workloads_are_reproducible_and_runs_hold_every_packet():
    a, b = zipf(1000, 5000, 1.1, seed=4), zipf(1000, 5000, 1.1, seed=4)
    assert a.flows == b.flows and (a.counts == b.counts).all() and a.packets == 5000
    total: dict[Flow, int] = {}
    for flow, n in a.runs(rounds=3):
        total[flow] = total.get(flow, 0) + n
    assert total == a.truth()
    s = spike(a, 500)
    assert len(s.flows) == 1500 and s.packets == 5500 and len(set(s.flows)) == 1500
