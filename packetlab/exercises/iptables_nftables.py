"""Module 04 · iptables and nftables: the lab's topology, demo rulesets and the checks.

Topology: client (10.0.1.10, .11, .12) — router — server (10.0.2.10), with the
whoami service (`packetlab.exercises.nat_and_routing`) on the server's ports
22, 80 and 443, so every rule is tested with real TCP connections.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..netfilter import TraceSession, annotate_hooks, base_chains, delete_table, nft_check, translate
from . import CheckFailed, graded, passed, require, unanswered
from .nat_and_routing import start_whoami, wait_links_up, whoami

CLIENTS = ("10.0.1.10", "10.0.1.11", "10.0.1.12")
SERVER = "10.0.2.10"
ROUTER_LAN, ROUTER_DMZ = "10.0.1.1", "10.0.2.1"
SERVER_PORTS = (22, 80, 443)


@dataclass
class FwTopology:
    lab: Any
    client: Any
    router: Any
    server: Any


def build_topology(lab: Any) -> FwTopology:
    client, router, server = lab.host("client"), lab.router("router"), lab.host("server")
    lab.link(client, router, ip=[f"{a}/24" for a in CLIENTS], peer_ip=f"{ROUTER_LAN}/24")
    lab.link(server, router, ip=f"{SERVER}/24", peer_ip=f"{ROUTER_DMZ}/24")
    client.add_route("default", via=ROUTER_LAN)
    server.add_route("default", via=ROUTER_DMZ)
    wait_links_up(client, router, server)
    for port in SERVER_PORTS:
        start_whoami(server, port)
    return FwTopology(lab, client, router, server)


def reachability(topo: FwTopology, sources: tuple[str, ...] = CLIENTS, ports: tuple[int, ...] = SERVER_PORTS,
                 timeout: float = 0.5) -> dict[tuple[str, int], bool]:
    """Try a real TCP connection from each client address to each server port."""
    return {(src, port): whoami(topo.client, SERVER, port, source=src, timeout=timeout) is not None
            for src in sources for port in ports}


def reachability_table(result: dict[tuple[str, int], bool]) -> str:
    from ..bench import format_table
    sources = sorted({s for s, _ in result})
    ports = sorted({p for _, p in result})
    rows = [[src] + ["open" if result[(src, p)] else "-" for p in ports] for src in sources]
    return format_table(["client address"] + [f"port {p}" for p in ports], rows)


# ---- hooks and tracing -----------------------------------------------------------------------

#: one base chain per hook (and several on prerouting and forward) so a trace shows the order.
#: The `ct state` rule switches connection tracking on in the namespace: without it the
#: nat chains would never run (they only see packets conntrack tracks, first packets only).
HOOKS_DEMO = """table inet demo {
  chain pre_raw     { type filter hook prerouting priority raw; icmp type echo-request meta nftrace set 1; }
  chain pre_nat     { type nat hook prerouting priority dstnat; }
  chain pre_filter  { type filter hook prerouting priority filter; ct state new counter; }
  chain in_filter   { type filter hook input priority filter; }
  chain fwd_early   { type filter hook forward priority -50; }
  chain fwd_late    { type filter hook forward priority 50; }
  chain out_raw     { type filter hook output priority raw; icmp type echo-request meta nftrace set 1; }
  chain out_filter  { type filter hook output priority filter; }
  chain post_nat    { type nat hook postrouting priority srcnat; }
  chain post_late   { type filter hook postrouting priority 300; }
}
"""


def load_hooks_demo(topo: FwTopology) -> None:
    """The demo chains, plus one rule through iptables (nf_tables backend) in FORWARD."""
    delete_table(topo.router, "inet", "demo")
    topo.router.nft(HOOKS_DEMO)
    topo.router.run(["iptables", "-w", "-A", "FORWARD", "-p", "icmp", "-j", "ACCEPT"], check=True)


def trace_ping(topo: FwTopology, src_host: Any, dst: str) -> list:
    """Ping once under ``nft monitor trace`` on the router; the hops of the echo request.

    The monitor needs a moment to subscribe; on a busy machine the first ping can
    pass before it listens, so up to three attempts are made."""
    for attempt in range(3):
        with TraceSession(topo.router, settle=0.3 * (attempt + 1)) as trace:
            src_host.ping(dst, count=1, timeout=1)
        paths = trace.paths()
        annotate_hooks(paths, base_chains(topo.router))
        requests = [hops for hops in paths.values()        # complete paths only: from the marking rule on
                    if hops and "echo-request" in hops[0].packet and "nftrace" in " ".join(hops[0].rules)]
        if requests:
            return requests[0]
    return []


@graded('order the counters by the hooks a forwarded packet passes, set answer to your list and run this '
        'check again')
def check_hook_order(topo: FwTopology, answer: Any) -> bool:
    """Exercise 1: list, in order, the chains an echo request from the client to the
    server passes through on the router; checked against a real trace."""
    ex = "Exercise 1 (the path of a forwarded packet)"
    hint = ("a forwarded packet meets prerouting, then forward, then postrouting; within a hook, lower "
            "priority numbers run first (raw -300 < dstnat -100 < filter 0 < srcnat 100); input and "
            "output are for the router's own traffic. iptables' FORWARD chain is a chain too.")
    if unanswered(answer) or not isinstance(answer, (list, tuple)):
        raise CheckFailed(ex, "answer must be a list of chain names, in order", hint)
    hops = trace_ping(topo, topo.client, SERVER)
    truth = [h.chain for h in hops]
    require(bool(truth), ex, "no trace came back: is the demo ruleset (with nftrace) loaded?",
            "run the cells of part 1 that load HOOKS_DEMO first")
    given = [str(a).split()[-1] for a in answer]
    if given != truth:
        first = next((i for i, (g, t) in enumerate(zip(given, truth)) if g != t), min(len(given), len(truth)))
        raise CheckFailed(ex, f"the trace went {' -> '.join(truth)}; yours differs at position {first + 1}", hint)
    return passed(ex, " -> ".join(truth))


# ---- iptables -> nftables --------------------------------------------------------------------------

TRANSLATE_TASK = "-A FORWARD -s 10.0.1.0/24 -p tcp --dport 22 -m conntrack --ctstate NEW -j ACCEPT"


def rule_body(text: str) -> str:
    """The match-and-action part of an nft rule: drops ``nft``, ``add rule <family> <table> <chain>``."""
    text = text.strip().strip("'\"")
    text = re.sub(r"^nft\s+", "", text)
    text = re.sub(r"^(add|insert)\s+rule\s+\S+\s+\S+\s+\S+\s+", "", text)
    return text.strip()


def _normalized_exprs(host: Any, body: str) -> list[str]:
    """Load `body` into a scratch chain and read back its expressions, order- and counter-insensitive."""
    table = "plxlate"
    delete_table(host, "ip", table)
    host.nft(f"table ip {table} {{\n  chain c {{\n  }}\n}}\n")
    try:
        res = host.run(["nft", "add", "rule", "ip", table, "c", *body.split()])
        if not res.ok:
            raise CheckFailed("Exercise 2 (iptables -> nftables)", f"nft rejects the rule: {res.stderr.strip()}",
                              "write the rule body only, e.g. 'ip saddr 10.0.0.0/8 tcp dport 80 accept'")
        items = json.loads(host.run(["nft", "-j", "list", "chain", "ip", table, "c"], check=True).stdout)["nftables"]
        exprs = [e for item in items if "rule" in item for e in item["rule"]["expr"]]
        return sorted(json.dumps(e, sort_keys=True) for e in exprs if "counter" not in e)
    finally:
        delete_table(host, "ip", table)


@graded('translate the iptables rule to one nftables rule yourself, set answer and run this check again')
def check_translation(topo: FwTopology, answer: Any) -> bool:
    """Exercise 2: write the nft equivalent of TRANSLATE_TASK; compared, after the kernel
    has parsed both, with what iptables-translate produces."""
    ex = "Exercise 2 (iptables -> nftables)"
    reference = translate(topo.router, TRANSLATE_TASK)
    hint = ("-s is 'ip saddr', '-p tcp --dport' is 'tcp dport', '-m conntrack --ctstate NEW' is 'ct state new', "
            "-j ACCEPT is 'accept' (order does not matter here; a counter is optional)")
    if unanswered(answer) or not isinstance(answer, str):
        raise CheckFailed(ex, "answer must be the nft rule as a string", hint)
    mine = _normalized_exprs(topo.router, rule_body(answer))
    theirs = _normalized_exprs(topo.router, rule_body(reference))
    require(mine == theirs, ex, f"after parsing, your rule differs from iptables-translate's: {reference!r}", hint)
    return passed(ex, f"same expressions as iptables-translate: {reference}")


# ---- sets, verdict maps and rate limits -------------------------------------------------------------

def load_ruleset(topo: FwTopology, ruleset: str, ex: str, hint: str) -> None:
    error = nft_check(topo.router, ruleset)
    require(error is None, ex, f"nft rejects the ruleset: {error}", hint)
    for family, name in re.findall(r"^\s*table\s+(\w+)\s+([\w-]+)", ruleset, flags=re.M):
        delete_table(topo.router, family, name)
    topo.router.nft(ruleset)


#: exercise 3's policy: which (client address, port) may connect
POLICY_EXPECTED = {(src, port): src != "10.0.1.11" and port in (80, 443) for src in CLIENTS for port in SERVER_PORTS}


@graded('write the ruleset with the denylist set and the verdict map yourself as answer and run this check again')
def check_set_and_vmap(topo: FwTopology, ruleset: Any) -> bool:
    """Exercise 3: a denylist set and a port verdict map, tested with real connections."""
    ex = "Exercise 3 (a set and a verdict map)"
    hint = ("set denylist { type ipv4_addr; elements = { 10.0.1.11 } }, then in a forward chain: "
            "ip saddr @denylist drop; tcp dport vmap { 80 : accept, 443 : accept }; and drop other new TCP "
            "(ct state established,related must stay accepted for the replies)")
    if unanswered(ruleset) or not isinstance(ruleset, str):
        raise CheckFailed(ex, "answer must be an nftables ruleset (a string)", hint)
    load_ruleset(topo, ruleset, ex, hint)
    text = topo.router.run(["nft", "list", "ruleset"]).stdout
    require("@" in text or "set " in text, ex, "the ruleset uses no named set", hint)
    require("vmap" in text, ex, "the ruleset uses no verdict map (vmap)", hint)
    got = reachability(topo)
    wrong = [f"{src} -> port {port}: {'open' if got[(src, port)] else 'blocked'}, should be "
             f"{'open' if want else 'blocked'}" for (src, port), want in POLICY_EXPECTED.items()
             if got[(src, port)] != want]
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, "10.0.1.11 is denied everywhere; the others reach 80 and 443 only")


def ping_flood(topo: FwTopology, count: int = 100, interval: float = 0.005) -> int:
    """Echo replies the client gets back for `count` pings sent every `interval` seconds."""
    return topo.client.ping(SERVER, count=count, interval=interval, timeout=1).received


@graded('write the ping rate limit ruleset yourself as answer and run this check again')
def check_rate_limit(topo: FwTopology, ruleset: Any) -> bool:
    """Exercise 4: at most 10 echo requests per second (burst 10) through the router."""
    ex = "Exercise 4 (rate limit)"
    hint = ("in a forward chain: icmp type echo-request limit rate 10/second burst 10 packets accept, "
            "then icmp type echo-request drop (a limit statement matches while under the rate)")
    if unanswered(ruleset) or not isinstance(ruleset, str):
        raise CheckFailed(ex, "answer must be an nftables ruleset (a string)", hint)
    load_ruleset(topo, ruleset, ex, hint)
    import time
    time.sleep(1.1)                         # let the token bucket fill up again
    slow = topo.client.ping(SERVER, count=3, interval=0.3, timeout=1)
    require(slow.received == 3, ex, f"a slow ping (3 at 0.3 s) lost replies ({slow}): the limit is too strict",
            hint)
    time.sleep(1.1)
    got = ping_flood(topo)
    require(got <= 40, ex, f"{got} of 100 fast pings (every 5 ms) got through: nothing limits them", hint)
    require(got >= 8, ex, f"only {got} of 100 fast pings got through: expected about 10 + 10/s x 0.5 s", hint)
    return passed(ex, f"100 pings in ~0.5 s: {got} answered; 3 slow pings: all answered")
