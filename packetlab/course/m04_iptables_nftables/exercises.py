"""Module 04 · iptables and nftables: the lab's topology, demo rulesets and the checks.

Topology: client (10.0.1.10, .11, .12) — router — server (10.0.2.10), with the
whoami service (`packetlab.course.m02_nat_and_routing.whoami`) on the server's ports
22, 80 and 443, so every rule is tested with real TCP connections.
"""

from __future__ import annotations

import json
from typing import Any

from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m03_connection_tracking.topology import load_answer_ruleset
from packetlab.course.m04_iptables_nftables.topology import (
    CLIENTS,
    SERVER,
    SERVER_PORTS,
    FwTopology,
    ping_flood,
    reachability,
    rule_body,
    trace_ping,
)
from packetlab.topo.netfilter import delete_table, translate


@graded("order the counters by the hooks a forwarded packet passes, set answer to your list and run this check again")
def check_hook_order(topo: FwTopology, answer: Any) -> bool:
    """Exercise 1: list, in order, the chains an echo request from the client to the
    server passes through on the router; checked against a real trace."""
    ex = "Exercise 1 (the path of a forwarded packet)"
    hint = (
        "a forwarded packet meets prerouting, then forward, then postrouting; within a hook, lower "
        "priority numbers run first (raw -300 < dstnat -100 < filter 0 < srcnat 100); input and "
        "output are for the router's own traffic. iptables' FORWARD chain is a chain too."
    )
    if unanswered(answer) or not isinstance(answer, (list, tuple)):
        raise CheckFailed(ex, "answer must be a list of chain names, in order", hint)
    hops = trace_ping(topo, topo.client, SERVER)
    truth = [h.chain for h in hops]
    require(
        bool(truth),
        ex,
        "no trace came back: is the demo ruleset (with nftrace) loaded?",
        "run the cells of part 1 that load HOOKS_DEMO first",
    )
    given = [str(a).split()[-1] for a in answer]
    if given != truth:
        first = next((i for i, (g, t) in enumerate(zip(given, truth)) if g != t), min(len(given), len(truth)))
        raise CheckFailed(ex, f"the trace went {' -> '.join(truth)}; yours differs at position {first + 1}", hint)
    return passed(ex, " -> ".join(truth))


# ---- iptables -> nftables --------------------------------------------------------------------------

TRANSLATE_TASK = "-A FORWARD -s 10.0.1.0/24 -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT"


def _normalized_exprs(host: Any, body: str) -> list[str]:
    """Load `body` into a scratch chain and read back its expressions, order- and counter-insensitive."""
    table = "plxlate"
    delete_table(host, "ip", table)
    host.nft(f"table ip {table} {{\n  chain c {{\n  }}\n}}\n")
    try:
        res = host.run(["nft", "add", "rule", "ip", table, "c", *body.split()])
        if not res.ok:
            raise CheckFailed(
                "Exercise 2 (iptables -> nftables)",
                f"nft rejects the rule: {res.stderr.strip()}",
                "write the rule body only, e.g. 'ip saddr 10.0.0.0/8 tcp dport 80 accept'",
            )
        items = json.loads(host.run(["nft", "-j", "list", "chain", "ip", table, "c"], check=True).stdout)["nftables"]
        exprs = [e for item in items if "rule" in item for e in item["rule"]["expr"]]
        return sorted(json.dumps(e, sort_keys=True) for e in exprs if "counter" not in e)
    finally:
        delete_table(host, "ip", table)


@graded("translate the iptables rule to one nftables rule yourself, set answer and run this check again")
def check_translation(topo: FwTopology, answer: Any) -> bool:
    """Exercise 2: write the nft equivalent of TRANSLATE_TASK; compared, after the kernel
    has parsed both, with what iptables-translate produces."""
    ex = "Exercise 2 (iptables -> nftables)"
    reference = translate(topo.router, TRANSLATE_TASK)
    hint = (
        "-s is 'ip saddr', '-p tcp --dport' is 'tcp dport', '-m conntrack --ctstate NEW' is 'ct state new', "
        "-j ACCEPT is 'accept' (order does not matter here; a counter is optional)"
    )
    if unanswered(answer) or not isinstance(answer, str):
        raise CheckFailed(ex, "answer must be the nft rule as a string", hint)
    mine = _normalized_exprs(topo.router, rule_body(answer))
    theirs = _normalized_exprs(topo.router, rule_body(reference))
    require(mine == theirs, ex, f"after parsing, your rule differs from iptables-translate's: {reference!r}", hint)
    return passed(ex, f"same expressions as iptables-translate: {reference}")


#: exercise 3's policy: which (client address, port) may connect
POLICY_EXPECTED = {(src, port): src != "10.0.1.11" and port in (80, 443) for src in CLIENTS for port in SERVER_PORTS}


@graded("write the ruleset with the denylist set and the verdict map yourself as answer and run this check again")
def check_set_and_vmap(topo: FwTopology, ruleset: Any) -> bool:
    """Exercise 3: a denylist set and a port verdict map, tested with real connections."""
    ex = "Exercise 3 (a set and a verdict map)"
    hint = (
        "set denylist { type ipv4_addr; elements = { 10.0.1.11 } }, then in a forward chain: "
        "ip saddr @denylist drop; tcp dport vmap { 80 : accept, 443 : accept }; and drop other new TCP "
        "(ct state established,related must stay accepted for the replies)"
    )
    load_answer_ruleset(topo.router, ruleset, ex, hint)
    text = topo.router.run(["nft", "list", "ruleset"]).stdout
    require("@" in text or "set " in text, ex, "the ruleset uses no named set", hint)
    require("vmap" in text, ex, "the ruleset uses no verdict map (vmap)", hint)
    got = reachability(topo)
    wrong = [
        f"{src} -> port {port}: {'open' if got[(src, port)] else 'blocked'}, should be {'open' if want else 'blocked'}"
        for (src, port), want in POLICY_EXPECTED.items()
        if got[(src, port)] != want
    ]
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, "10.0.1.11 is denied everywhere; the others reach 80 and 443 only")


@graded("write the ping rate limit ruleset yourself as answer and run this check again")
def check_rate_limit(topo: FwTopology, ruleset: Any) -> bool:
    """Exercise 4: at most 10 echo requests per second (burst 10) through the router."""
    ex = "Exercise 4 (rate limit)"
    hint = (
        "in a forward chain: icmp type echo-request limit rate 10/second burst 10 packets accept, "
        "then icmp type echo-request drop (a limit statement matches while under the rate)"
    )
    load_answer_ruleset(topo.router, ruleset, ex, hint)
    import time

    time.sleep(1.1)  # let the token bucket fill up again
    slow = topo.client.ping(SERVER, count=3, interval=0.3, timeout=1)
    require(slow.received == 3, ex, f"a slow ping (3 at 0.3 s) lost replies ({slow}): the limit is too strict", hint)
    time.sleep(1.1)
    got = ping_flood(topo)
    require(got <= 40, ex, f"{got} of 100 fast pings (every 5 ms) got through: nothing limits them", hint)
    require(got >= 8, ex, f"only {got} of 100 fast pings got through: expected about 10 + 10/s x 0.5 s", hint)
    return passed(ex, f"100 pings in ~0.5 s: {got} answered; 3 slow pings: all answered")
