"""Module 03 · connection tracking: the lab's topology and the checks.

Topology: client (10.0.1.10) — router — server (10.0.2.10). The router is the
only namespace whose conntrack we read; the end hosts' own TCP stacks are
silenced for the crafted port so scapy can play both ends of a conversation.

Every check replays its scenario on the real router with a fresh 5-tuple and
compares the kernel's verdict with the answer.
"""

from __future__ import annotations

from typing import Any

from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m03_connection_tracking.kernel_table import kernel_entry
from packetlab.course.m03_connection_tracking.topology import (
    SERVER,
    CtTopology,
    conv_tuple,
    firewall_behaviour,
    load_answer_ruleset,
    udp_probe,
)

# ---- exercise 1: the state after each segment -------------------------------------------------

#: the conversation of exercise 1 (note who closes first)
CLOSE_SEQUENCE = (
    ("SYN", "client", "S"),
    ("SYN/ACK", "server", "SA"),
    ("ACK", "client", "A"),
    ("FIN", "server", "FA"),
    ("ACK", "client", "A"),
    ("FIN", "client", "FA"),
    ("ACK", "server", "A"),
)


@graded("list the seven conntrack states of the close sequence yourself as answer and run this check again")
def check_state_sequence(topo: CtTopology, answer: Any) -> bool:
    """Exercise 1: predict the router's TCP state after each segment of CLOSE_SEQUENCE."""
    ex = "Exercise 1 (predict the TCP states)"
    hint = (
        "conntrack's states are a middlebox's view: FIN_WAIT means 'a FIN was seen' from either side, "
        "CLOSE_WAIT 'that FIN was acknowledged', LAST_ACK 'FINs both ways', TIME_WAIT 'the last FIN acknowledged'"
    )
    if unanswered(answer) or not isinstance(answer, (list, tuple)) or len(answer) != len(CLOSE_SEQUENCE):
        raise CheckFailed(ex, f"answer must be a list of {len(CLOSE_SEQUENCE)} state names, one per segment", hint)
    conv = topo.conversation()
    truth: list[str] = []
    for _label, side, flags in CLOSE_SEQUENCE:
        topo.counters.delta()
        topo.wire.send(conv.segment(side, flags))
        topo.counters.settle()
        entry = kernel_entry(topo.router, conv_tuple(conv))
        truth.append((entry.state if entry else None) or "(none)")
    wrong = [
        f"after {lbl} ({side}) you said {a!r}, the kernel says {t}"
        for (lbl, side, _), a, t in zip(CLOSE_SEQUENCE, answer, truth)
        if str(a).strip().upper().replace(" ", "_") != t
    ]
    require(not wrong, ex, "; ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else ""), hint)
    return passed(ex, " -> ".join(truth))


# ---- exercise 2: NEW, ESTABLISHED, RELATED or INVALID? -------------------------------------------

#: the packets of exercise 2, in the order they are sent
CLASSIFY_CASES = (
    "a: the client's SYN to a port it never used",
    "b: the server's SYN/ACK answering it",
    "c: an ICMP port unreachable the server returns for a client UDP datagram",
    "d: a SYN/ACK from the client for a connection nobody opened",
    "e: an ACK from the client for a connection the router never saw",
    "f: a FIN (without ACK) from the client for an unknown connection",
)


@graded("classify the six packets (NEW, ESTABLISHED, RELATED, INVALID) yourself as answer and run this check again")
def check_classification(topo: CtTopology, answer: Any) -> bool:
    """Exercise 2: how does conntrack classify each packet of CLASSIFY_CASES?"""
    ex = "Exercise 2 (NEW, ESTABLISHED, RELATED or INVALID?)"
    hint = (
        "NEW: first packet of a connection conntrack accepts to create; ESTABLISHED: a reply, or anything after "
        "one; RELATED: an ICMP error about a tracked flow; INVALID: fits no state (bad flags, not allowed in "
        "the state). With nf_conntrack_tcp_loose=1 (the default) a lone ACK is picked up as a connection!"
    )
    if unanswered(answer) or not isinstance(answer, (list, tuple)) or len(answer) != len(CLASSIFY_CASES):
        raise CheckFailed(
            ex, f"answer must be a list of {len(CLASSIFY_CASES)} of NEW/ESTABLISHED/RELATED/INVALID", hint
        )
    truth = []
    conv = topo.conversation()
    packets = [
        conv.syn(),
        conv.synack(),
        None,
        topo.conversation().segment("client", "SA"),
        topo.conversation().segment("client", "A", ack=12345),
        topo.conversation().segment("client", "F"),
    ]
    for pkt in packets:
        topo.counters.delta()
        if pkt is None:  # a real UDP datagram to a closed port: the server's kernel answers
            udp_probe(topo.client, SERVER, 9)
            d = topo.counters.settle()
            truth.append("RELATED" if d.get("RELATED") else ", ".join(d) or "?")
            continue
        topo.wire.send(pkt)
        d = topo.counters.settle()
        truth.append(next(iter(d)) if len(d) == 1 else ", ".join(d) or "?")
    wrong = [
        f"{CLASSIFY_CASES[i][:1]}: you said {a!r}, the kernel says {t}"
        for i, (a, t) in enumerate(zip(answer, truth))
        if str(a).strip().upper() != t
    ]
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, ", ".join(f"{c[:1]}={t}" for c, t in zip(CLASSIFY_CASES, truth)))


@graded("write the stateful forward chain yourself as answer (an nftables ruleset string) and run this check again")
def check_stateful_firewall(topo: CtTopology, ruleset: Any) -> bool:
    """Exercise 3: load the learner's ruleset on the router and test it four ways, for real."""
    ex = "Exercise 3 (a stateful firewall)"
    hint = (
        "in a forward chain with policy drop: accept ct state established,related; drop ct state invalid; "
        'accept ct state new only when it comes in on the client\'s side (iifname "eth0")'
    )
    load_answer_ruleset(topo.router, ruleset, ex, hint)
    results = firewall_behaviour(topo)
    require(
        results["client -> server (new TCP)"] == "allowed",
        ex,
        "the client cannot open a TCP connection to the server",
        hint,
    )
    require(
        results["server -> client (new TCP)"] == "blocked",
        ex,
        "the server can open a connection to the client: new connections from outside must be dropped",
        hint,
    )
    require(
        results["ICMP error back to the client (RELATED)"] == "allowed",
        ex,
        "the ICMP port-unreachable the server sends back never reaches the client: accept RELATED",
        hint,
    )
    require(
        results["forged out-of-window segment (INVALID)"] == "blocked",
        ex,
        "a forged segment far outside the TCP window reached the client: drop ct state invalid",
        hint,
    )
    return passed(ex, "; ".join(f"{k}: {v}" for k, v in results.items()))
