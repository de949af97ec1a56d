"""Graded exercises of module 11b (the packet analyzer capstone).

1. write a detection rule for a slow port scan the default detector misses — checked on the
   trace, on a second scan it has not seen, and on busy normal traffic (no false positive);
2. find the scanner in the lab's recorded pcap with one `packetlab analyze query` — checked on
   the lab's store and on a store with another scanner, so a hard-coded address fails;
3. explain the dropped-event counter of the ring-buffer overflow run — the number must be the
   kernel's count, and the cause the right one;

and two C assignments (`assignments.py`): the flow-record update and the ports of the flow key,
each spliced into bpf/11b-flow.c and graded by hidden packets.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m11b_packet_analyzer import traces
from packetlab.course.m11b_packet_analyzer.assignments import FLOW_PORTS, FLOW_RECORD
from packetlab.course.m11b_packet_analyzer.helpers import OVERFLOW_CAUSES, OverflowRun, flows_of, slow_scan_trace
from packetlab.errors import PacketlabError
from packetlab.tools.analyzer.inspector import inspect_frames
from packetlab.tools.analyzer.query import run_query
from packetlab.tools.analyzer.store import FlowStore


def _busy_client(start: float) -> list[tuple[bytes, float]]:
    """40 HTTP connections from one client to one port in 4 s: busy, but not a scan."""
    return traces.merge(*(traces.http_session(start + i * 0.1, sport=42000 + i) for i in range(40)))


@graded("write rule(flows) yourself: which sources sent SYNs to many ports and never completed a handshake?")
def check_detection_rule(rule: Any) -> bool:
    ex = "11b.1 a rule for the slow scan"
    require(not unanswered(rule), ex, "no rule yet", "define def rule(flows): ... returning a set of source addresses")
    require(callable(rule), ex, f"rule is a {type(rule).__name__}, not a function", "def rule(flows): return {...}")
    cases = _rule_cases()
    for what, flows, want in cases:
        try:
            got = rule(copy.deepcopy(flows))  # a rule that edits the records must not change the next run
        except Exception as exc:
            raise CheckFailed(ex, f"rule raised {type(exc).__name__}: {exc} on {what}") from None
        got = {str(x) for x in (got or ())}
        if want:
            require(want <= got, ex, f"on {what} it did not flag {', '.join(sorted(want))}", _hint_missed())
        extra = got - want
        require(not extra, ex, f"on {what} it flagged {', '.join(sorted(extra))}: a false positive", _hint_fp())
    return passed(ex, "caught both scans, and nobody innocent")


@functools.cache
def _rule_cases() -> tuple[tuple[str, list, set[str]], ...]:
    """The four traces a rule is run on (built once per process: they are the same every time)."""
    return (
        ("the slow scan of this exercise", flows_of(slow_scan_trace()), {"10.11.0.77"}),
        ("another slow scan (other scanner, other ports)", flows_of(_other_scan()), {"10.11.0.99"}),
        ("normal lab traffic", flows_of(traces.normal_traffic()), set()),
        ("a busy web client (40 connections to one port)", flows_of(_busy_client(1_700_000_000.0)), set()),
    )


def _other_scan() -> list[tuple[bytes, float]]:
    start = 1_700_000_500.0
    scan = [
        (f, start + (t - start) * 1200) for f, t in traces.port_scan(start, range(1000, 1030), scanner="10.11.0.99")
    ]
    return traces.merge(traces.normal_traffic(start - 5), scan)


def _hint_missed() -> str:
    return (
        "a window of seconds cannot see a probe every 3 s: count per source over the whole trace, "
        "the distinct (destination, port) pairs of TCP flows that had SYN and never ACK"
    )


def _hint_fp() -> str:
    return "a completed handshake (ACK seen) is a connection, not a probe; many connections to ONE port are not a scan"


@graded("write the query yourself: group the flows by source and sort by distinct ports")
def check_scan_query(query: Any, store: FlowStore, scanner: str) -> bool:
    ex = "11b.2 find the scan with a query"
    require(not unanswered(query), ex, "no query yet", 'set answer = "...terms..." (see the query help above)')
    require(isinstance(query, str), ex, "the query is a string of terms", 'e.g. "proto=tcp group=src"')
    try:
        rows = run_query(store, query)
    except PacketlabError as exc:
        raise CheckFailed(ex, f"the query was refused: {exc.what}", exc.cause) from None
    require(rows, ex, "the query returned no rows on the lab's flows", "start broad (proto=tcp) and narrow down")
    require("src" in rows[0], ex, "the rows have no src column", "aggregate per source: group=src")
    require(
        rows[0]["src"] == scanner,
        ex,
        f"the first row is {rows[0]['src']}, not the scanner",
        "sort=ports orders the groups by how many distinct destination ports they touched",
    )
    other = FlowStore()
    ins = inspect_frames(traces.merge(traces.normal_traffic(1000.0), traces.port_scan(1001.0, scanner="10.11.0.88")))
    other.add_flows(ins.records())
    hidden = run_query(other, query)
    other.close()
    require(
        hidden and hidden[0].get("src") == "10.11.0.88",
        ex,
        "on another capture (scanner 10.11.0.88) the first row is not the scanner",
        "do not name an address in the query: let the aggregation find it",
    )
    return passed(ex, f"{scanner} touched {rows[0].get('ports', '?')} ports")


@graded("read the counters yourself: events the kernel could not write are counted where?")
def check_dropped_events(answer: Any, run: OverflowRun) -> bool:
    ex = "11b.3 the dropped-event counter"
    require(not unanswered(answer), ex, "no answer yet", "set answer = {'lost': <number>, 'cause': 'a' | 'b' | 'c'}")
    require(
        isinstance(answer, dict) and {"lost", "cause"} <= set(answer),
        ex,
        "the answer is a dict with 'lost' and 'cause'",
        "{'lost': 42, 'cause': 'b'}",
    )
    expected = run.packets + 1 - run.delivered  # one start event, one sample per packet
    require(
        answer["lost"] == run.counters["ringbuf_lost"] == expected,
        ex,
        f"{answer['lost']!r} events lost does not match this run",
        "events asked for = 1 flow start + one sample per packet; lost = asked for - delivered "
        "(and the kernel's ringbuf_lost counter says the same)",
    )
    require(
        str(answer["cause"]).strip().lower() == "b",
        ex,
        f"{answer['cause']!r}: {OVERFLOW_CAUSES.get(str(answer['cause']).strip().lower(), 'not a choice')} — "
        "is that what the counters show?",
        "table_full is 0 and every packet was counted; what fills when nobody reads?",
    )
    return passed(ex, "a ring buffer is a fixed space: a slow reader loses events, and the counter says how many")


# ---- C assignments: the learner writes the eBPF (graded by packetlab.course.assignments) --------------
@graded(FLOW_RECORD.try_it)
def check_flow_record(source: str | None) -> bool:
    """Assignment 11b.A1: the flow-record update, spliced into bpf/11b-flow.c."""
    return check(FLOW_RECORD, source)


@graded(FLOW_PORTS.try_it)
def check_flow_ports(source: str | None) -> bool:
    """Assignment 11b.A2: the ports (and TCP flags) of the flow key, spliced into bpf/11b-flow.c."""
    return check(FLOW_PORTS, source)
