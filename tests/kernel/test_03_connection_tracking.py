"""Module 03 on the real kernel: the userspace tracker against the router's conntrack on every
cell of the TCP table and on the kernel's special paths (with the oracle of
tests/unit/test_03_connection_tracking.py), plus the exercise checks."""

from __future__ import annotations

import time

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m03_connection_tracking.craft import TcpConversation, probe, reach_state
from packetlab.course.m03_connection_tracking.kernel_table import format_tally as _tally
from packetlab.course.m03_connection_tracking.kernel_table import kernel_table
from packetlab.proto.conntrack.states import ORIGINAL
from packetlab.proto.conntrack.tracker import Tracker
from tests.unit.test_03_connection_tracking import (  # shared with its unit twin
    SPECIAL_SEQUENCES,
    C,
    S,
    _cells,
    expected,
)

# ---- on the real kernel ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def topo(module_lab):
    from packetlab.course.m03_connection_tracking.topology import build_topology

    return build_topology(module_lab)


@pytest.mark.slow
def test_tracker_agrees_with_the_kernel_on_every_cell(topo):
    """Every (state, direction, flags) cell, on its own connection: the probe's verdict
    (from the router's ct state counters), the entry's state, flags and timeout.

    Both tables are read right after each cell's probe, not once at the end: on a slow machine (a VM
    without KVM) the 114 cells take longer than CLOSE's 10 s timeout, and the early cells' entries
    would be gone from both tables by the end."""
    tracker = Tracker()
    port = iter(range(20000, 30000))
    problems = []
    cells = 0
    for state, direction, fc in _cells():
        c = TcpConversation(C, S, next(port), 7777)
        recipe = reach_state(c, state)
        for p in recipe:
            topo.wire.send(p)
            tracker.feed(p)
        if recipe:
            topo.counters.settle(quiet=0.02)  # the recipe's packets must not count for the probe
        p = probe(c, direction, fc)
        topo.wire.send(p)
        tci = tracker.feed(p).ctinfo
        kci = _tally(topo.counters.settle(quiet=0.02))
        now = time.time()
        keys = ((C, c.port["client"], 7777), (S, 7777, c.port["client"]))
        kernel = {(e.orig.src, e.orig.sport, e.orig.dport): e for e in kernel_table(topo.router, "tcp")}
        mine = {(e.orig.src, e.orig.sport, e.orig.dport): e for e in tracker.entries(now)}
        k = next((kernel[key] for key in keys if key in kernel), None)
        m = next((mine[key] for key in keys if key in mine), None)
        cells += 1
        label = f"{state}/{'orig' if direction == ORIGINAL else 'reply'}/{fc}"
        if kci != tci:
            problems.append(f"{label}: kernel says {kci}, tracker {tci}")
        if (k is None) != (m is None) or (k and m and (k.state, k.flags) != (m.state, m.flags)):
            problems.append(f"{label}: kernel entry {k}, tracker {m}")
        elif k and m and abs(k.timeout - m.timeout) > 3:
            problems.append(f"{label}: kernel timeout {k.timeout}, tracker {m.timeout}")
        want_state, want_ctinfo, _ = expected(state, direction, fc)
        if kci != want_ctinfo or (k.state if k else None) != want_state:
            problems.append(f"{label}: the table test expects {want_state}/{want_ctinfo}, kernel {k}/{kci}")
    assert not problems, "\n".join(problems)
    assert cells == 114


def test_check_state_sequence(topo):
    from packetlab.course.m03_connection_tracking.exercises import check_state_sequence

    right = ["SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT"]
    assert check_state_sequence(topo, right)
    wrong = right[:3] + ["CLOSE_WAIT", "FIN_WAIT", "LAST_ACK", "TIME_WAIT"]  # the classic: server FIN = CLOSE_WAIT
    with pytest.raises(CheckFailed, match="after FIN"):
        check_state_sequence(topo, wrong)
    with pytest.raises(CheckFailed, match="list of 7"):
        check_state_sequence(topo, None)


def test_check_classification(topo):
    from packetlab.course.m03_connection_tracking.exercises import check_classification

    assert check_classification(topo, ["NEW", "ESTABLISHED", "RELATED", "INVALID", "NEW", "INVALID"])
    with pytest.raises(CheckFailed, match="e: you said 'INVALID'"):
        check_classification(topo, ["NEW", "ESTABLISHED", "RELATED", "INVALID", "INVALID", "INVALID"])


FIREWALL = """table inet fw {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    ct state invalid drop
    iifname "eth0" ct state new accept
  }
}
"""


def test_check_stateful_firewall(topo):
    from packetlab.course.m03_connection_tracking.exercises import check_stateful_firewall
    from packetlab.topo.netfilter import delete_table

    try:
        assert check_stateful_firewall(topo, FIREWALL)
        no_related = FIREWALL.replace("established,related", "established")
        with pytest.raises(CheckFailed, match="ICMP port-unreachable"):
            check_stateful_firewall(topo, no_related)
        # with policy drop, invalid packets from outside are dropped anyway; a chain that trusts
        # everything from inside needs the explicit invalid rule
        trusting = FIREWALL.replace('iifname "eth0" ct state new accept', 'iifname "eth0" accept')
        assert check_stateful_firewall(topo, trusting)
        with pytest.raises(CheckFailed, match="forged segment"):
            check_stateful_firewall(topo, trusting.replace("    ct state invalid drop\n", ""))
        open_door = FIREWALL.replace('iifname "eth0" ', "")
        with pytest.raises(CheckFailed, match="server can open"):
            check_stateful_firewall(topo, open_door)
        with pytest.raises(CheckFailed, match="nft rejects"):
            check_stateful_firewall(topo, "table inet fw { chain forward { nonsense } }")
    finally:
        delete_table(topo.router, "inet", "fw")


# ---- the kernel's special paths, offline and live ------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SPECIAL_SEQUENCES))
def test_special_paths_agree_with_the_kernel(topo, name):
    from packetlab.course.m03_connection_tracking.walk import Walkthrough

    c = TcpConversation(C, S, 31000 + list(SPECIAL_SEQUENCES).index(name), 7777)
    packets, _ = SPECIAL_SEQUENCES[name](c)
    walk = Walkthrough(topo.router, topo.wire, topo.counters, Tracker())
    for i, p in enumerate(packets):
        walk.send(str(i), p)
    assert walk.agree(), "\n".join(walk.disagreements()) + "\n" + walk.table()
