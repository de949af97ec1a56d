"""Checks for module 08 (the XDP firewall milestone).

1. `check_policy`  — write a rule set that meets a written policy; verified by
   running the real XDP program (BPF_PROG_TEST_RUN) on a table of packets.
2. `check_culprit` — find, from the counters, which rule dropped a packet;
   verified by replaying the traffic and watching the kernel's counters.
3. `check_ipv6`    — make the policy work over IPv6; verified with real TCP
   connections between the lab's namespaces.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m08_milestone_xdp_firewall.assignments import CLASSIFY, RULE_MATCH

SERVER = "10.0.1.2"
MAC: dict[str, Any] = {"src": "02:00:00:00:00:01", "dst": "02:00:00:00:00:02"}


def _as_ruleset(answer: Any, exercise: str):
    from packetlab.tools.firewall.program import as_ruleset
    from packetlab.tools.firewall.rules import RuleError, RuleSet

    if unanswered(answer):
        raise CheckFailed(exercise, "no answer yet", "write your rule file text (or a RuleSet) into `answer`")
    try:
        rs = (
            answer
            if isinstance(answer, RuleSet)
            else as_ruleset(answer if not isinstance(answer, os.PathLike) else str(answer))
        )
    except RuleError as exc:
        raise CheckFailed(
            exercise,
            f"the rule file does not validate:\n{exc.cause}",
            "fix the lines named above (file, line and field are given)",
        ) from None
    if not isinstance(rs, RuleSet):
        rs = rs.ruleset
    return rs


def _policy_table():
    """(description, frame, expected verdict) — what the written policy means."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether

    def tcp(src, dport, flags="S"):
        return Ether(**MAC) / IP(src=src, dst=SERVER) / TCP(sport=40000, dport=dport, flags=flags)

    return [
        ("SSH from admin 10.0.1.5", tcp("10.0.1.5", 22), "XDP_PASS"),
        ("SSH from 10.0.1.15 (last admin address)", tcp("10.0.1.15", 22), "XDP_PASS"),
        ("SSH from 10.0.1.16 (just outside /28)", tcp("10.0.1.16", 22), "XDP_DROP"),
        ("SSH from guest 10.0.1.200", tcp("10.0.1.200", 22), "XDP_DROP"),
        ("HTTP from guest", tcp("10.0.1.200", 80), "XDP_PASS"),
        ("HTTPS from an outside address", tcp("198.51.100.7", 443), "XDP_PASS"),
        ("TCP 8080 from guest", tcp("10.0.1.200", 8080), "XDP_DROP"),
        ("TCP 444 from admin", tcp("10.0.1.5", 444), "XDP_DROP"),
        ("UDP 80 from guest", Ether(**MAC) / IP(src="10.0.1.200", dst=SERVER) / UDP(dport=80), "XDP_DROP"),
        ("UDP 53 from admin", Ether(**MAC) / IP(src="10.0.1.5", dst=SERVER) / UDP(dport=53), "XDP_DROP"),
        ("GRE from admin", Ether(**MAC) / IP(src="10.0.1.5", dst=SERVER, proto=47) / (b"\0" * 8), "XDP_DROP"),
        ("first ping from guest", Ether(**MAC) / IP(src="10.0.1.200", dst=SERVER) / ICMP(), "XDP_PASS"),
    ]


@graded("write the rule file yourself as answer (YAML text) and run this check again")
def check_policy(answer: Any) -> bool:
    """Exercise 1: does the rule set implement POLICY? Runs the real program."""
    ex = "Exercise 1 (policy)"
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    from packetlab.tools.firewall.program import Firewall
    from packetlab.tools.firewall.reference import decide

    rs = _as_ruleset(answer, ex)
    fw = Firewall.load(rs)
    try:
        wrong = []
        for what, frame, expected in _policy_table():
            got = fw.verdict(frame)
            if got != expected:
                d = decide(rs, bytes(frame))
                wrong.append(f"{what}: expected {expected}, got {got} (decided by {d.counter})")
        require(
            not wrong,
            ex,
            "some packets get the wrong verdict:\n  " + "\n  ".join(wrong),
            "compare each line with the policy; remember that rules are tried in order and the first match wins",
        )
        # ping: rate-limited per source, at 5/s
        ping = Ether(**MAC) / IP(src="10.0.1.201", dst=SERVER) / ICMP()
        decider = decide(rs, bytes(ping)).rule
        rule = rs.rule(decider) if decider else None
        if rule is None or rule.action != "rate-limit":
            raise CheckFailed(
                ex,
                f"ping is decided by {decider or 'the default policy'}, which is not a rate-limit rule",
                "add a rule with action: rate-limit and proto: icmp",
            )
        require(
            abs(rule.rate - 5) < 1e-9,
            ex,
            f"the ping rule allows {rule.rate:g} packets/s, the policy says 5",
            "rate: 5/s",
        )
        verdicts = [fw.verdict(ping) for _ in range(30)]
        through = verdicts.count("XDP_PASS")
        require(
            through <= 10,
            ex,
            f"{through} of 30 back-to-back pings passed",
            "a 5/s limit may let a short burst through (burst: 10 at most), not dozens of packets at once",
        )
        other = Ether(**MAC) / IP(src="10.0.1.202", dst=SERVER) / ICMP()
        require(
            fw.verdict(other) == "XDP_PASS",
            ex,
            "a second source was limited too",
            "the limit is per source address — the firewall does that for every rate-limit rule",
        )
    finally:
        fw.close()
    return passed(
        ex, f"{len(_policy_table()) + 2} packets checked in the kernel; ping limited to {rule.rate:g}/s per source"
    )


@graded("read the per-rule counters after the mystery traffic, set answer to the rule's name and run this check again")
def check_culprit(firewall: Any, mystery: Callable[[], Any], answer: Any) -> bool:
    """Exercise 2: which rule dropped the mystery traffic? Verified by replaying it
    and watching which counter the kernel increments."""
    ex = "Exercise 2 (find the culprit)"
    require(not unanswered(answer), ex, "no answer yet", "answer = 'rule-name' (or 'default' for the default policy)")
    before = firewall.status()
    mystery()
    after = firewall.status()
    grew = [a.name for b, a in zip(before.rules, after.rules) if a.packets > b.packets and a.action == "drop"]
    if after.special["default"]["packets"] > before.special["default"]["packets"] and before.default == "drop":
        grew.append("default")
    require(
        len(grew) >= 1,
        ex,
        "replaying the traffic dropped nothing this time",
        "run the cell that applies the exercise's rule set again, then re-run the mystery cell",
    )
    culprit = grew[0]
    names = [r.name for r in after.rules] + ["default"]
    require(str(answer) in names, ex, f"there is no rule named {answer!r}", f"the rules are: {', '.join(names)}")
    require(
        str(answer) == culprit,
        ex,
        f"{answer!r} did not count the mystery packets",
        "print(fw.status().table()) before and after running mystery(): the rule whose packet counter "
        "grows is the one that decided (rules are tried in order; the first match wins)",
    )
    return passed(ex, f"{culprit!r} counted the dropped packets")


@graded("extend the rule file for IPv6 yourself (sources and ICMPv6) as answer and run this check again")
def check_ipv6(lab: Any, firewall: Any, answer: Any) -> bool:
    """Exercise 3: apply `answer`, then really connect over IPv6 (and IPv4)."""
    ex = "Exercise 3 (IPv6)"
    from packetlab.course.m08_milestone_xdp_firewall.topology import connection_mismatches

    rs = _as_ruleset(answer, ex)
    firewall.apply(rs)
    for host in (lab.srv, lab.admin, lab.guest):  # forget neighbours: ND must work through the firewall
        host.run(["ip", "-6", "neigh", "flush", "all"])
    srv6, srv4 = lab.ip("srv", 6), lab.ip("srv", 4)
    expectations = [
        ("guest", srv6, 80, True),
        ("guest", srv6, 443, True),
        ("admin", srv6, 22, True),
        ("guest", srv6, 22, False),
        ("admin", srv4, 22, True),
        ("guest", srv4, 22, False),
        ("guest", srv4, 80, True),
        ("guest", srv6, 8080, False),
    ]
    wrong = connection_mismatches(lab, expectations, timeout=1.5)
    st = firewall.status()
    hint = (
        "IPv6 finds neighbours with ICMPv6 (neighbour discovery): without an icmpv6 rule nothing reaches the "
        "server at all; the admin network in IPv6 is fd00:1::/124"
    )
    if wrong and st.special["default"]["packets"]:
        hint += f" (the default policy has dropped {st.special['default']['packets']} packets so far)"
    require(not wrong, ex, "real connections disagree with the policy:\n  " + "\n  ".join(wrong), hint)
    return passed(ex, f"{len(expectations)} real TCP connections behaved as the policy says, over IPv4 and IPv6")


# ---- C assignments: the learner writes the rule-matching core (graded by packetlab.course.assignments) --
@graded(RULE_MATCH.try_it)
def check_rule_match(source: str | None) -> bool:
    """Assignment 08.A1: first matching rule for a small fixed rule shape (bpf/08-xdp-rule-match.c)."""
    return check(RULE_MATCH, source)


@graded(CLASSIFY.try_it)
def check_firewall_core(source: str | None) -> bool:
    """Assignment 08.A2: the firewall's bitmap AND, swapped into bpf/08-xdp-firewall.c, under its verdicts."""
    return check(CLASSIFY, source)
