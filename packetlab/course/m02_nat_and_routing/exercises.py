"""Checks for module 02 · NAT and routing.

Checks verify by doing: they ping, open TCP connections and ask the small
"whoami" service (`whoami.py`) what source address it saw.
"""

from __future__ import annotations

from typing import Any

from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m02_nat_and_routing.routing import longest_prefix_match, route_decision, route_prefix, routes
from packetlab.course.m02_nat_and_routing.topology import (
    CLIENT,
    CLIENT2,
    INTERNET,
    ROUTER_DMZ,
    ROUTER_LAN,
    ROUTER_WAN1,
    SERVER,
    NatTopology,
)
from packetlab.course.m02_nat_and_routing.whoami import WHOAMI_PORT, whoami

# ---- checks ------------------------------------------------------------------------------------


@graded(
    "in a fresh run, turn on forwarding in the router and give the server a way back in the answer "
    "cell yourself, then Restart Kernel and Run All"
)
def check_client_reaches_server(topo: NatTopology) -> bool:
    """Exercise 1: the client pings the server, for real, through the router."""
    ex = "Exercise 1 (make the client reach the server)"
    r = topo.client.ping(SERVER, count=2, timeout=1, interval=0.2)
    if r.ok:
        return passed(ex, f"{r} — forwarding is on and the server knows the way back")
    forwarding = topo.router.sysctl("net.ipv4.ip_forward") == "1"
    require(
        forwarding,
        ex,
        "the router does not forward: net.ipv4.ip_forward is 0 in its namespace",
        "router.sysctl('net.ipv4.ip_forward', 1) — it is per namespace, the host is not affected",
    )
    to_server = route_decision(topo.client, SERVER)
    require(
        to_server.kind == "unicast" and to_server.via == ROUTER_LAN,
        ex,
        f"the client's route to {SERVER} is not via the router: {to_server}",
        f"client.add_route('default', via='{ROUTER_LAN}')",
    )
    back = route_decision(topo.server, CLIENT)
    require(
        back.kind == "unicast" and back.via == ROUTER_DMZ,
        ex,
        f"the server has no route back to the client ({back}); echo requests arrive, replies cannot leave",
        f"server.add_route('default', via='{ROUTER_DMZ}') (or a route to 10.0.1.0/24 via {ROUTER_DMZ})",
    )
    raise CheckFailed(
        ex,
        f"the ping still fails ({r}) although routes and forwarding look right",
        "look for firewall rules on the router: router.run('nft list ruleset')",
    )


#: the destinations of exercise 2
LPM_DESTINATIONS = ("10.0.2.10", "10.0.2.130", "10.0.3.5", "10.0.2.200", "203.0.113.1")


@graded(
    "predict each destination's longest-prefix match from the router's table, fill in the answer dict"
    " and run this check again"
)
def check_lpm(topo: NatTopology, answer: Any) -> bool:
    """Exercise 2: predict the route the router picks for each destination of LPM_DESTINATIONS.

    `answer` maps each destination to a route written like ``ip route`` shows it:
    the prefix (``"10.0.2.0/24"``, ``"default"``) or, for special routes, the type
    (``"blackhole"``).
    """
    ex = "Exercise 2 (longest-prefix match)"
    hint = (
        "for each destination list every route whose prefix contains it; the longest prefix wins, "
        "whatever order the routes were added in; blackhole/unreachable/prohibit are routes too"
    )
    if unanswered(answer) or not isinstance(answer, dict):
        raise CheckFailed(ex, "answer must be a dict {destination: prefix or route type}", hint)
    table = routes(topo.router)
    wrong = []
    for dst in LPM_DESTINATIONS:
        kernel = route_decision(topo.router, dst)
        ours = longest_prefix_match(table, dst)
        accepted = set()
        if kernel.kind in ("blackhole", "unreachable", "prohibit"):
            accepted.add(kernel.kind)
        elif kernel.matched:
            accepted.add(kernel.matched.split()[0])
        if ours is not None and (ours.get("type", "unicast") == kernel.kind or kernel.kind == "unicast"):
            prefix = route_prefix(ours)
            accepted |= {str(prefix), str(prefix.network_address) if prefix.prefixlen == 32 else str(prefix)}
        if "default" in accepted:
            accepted.add("0.0.0.0/0")
        given = {tok for tok in str(answer.get(dst, "")).strip().lower().split()}
        if not given & accepted:
            truth = kernel.kind if kernel.kind != "unicast" else (kernel.matched or "?").split()[0]
            wrong.append(f"{dst}: you said {answer.get(dst)!r}, the kernel chose {truth}")
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, "every prediction matches `ip route get fibmatch` on the router")


@graded("write the nftables DNAT ruleset yourself as answer (a string), run it and this check again")
def check_port_forward(topo: NatTopology, ruleset: Any, *, public_port: int = 8443, server_port: int = 443) -> bool:
    """Exercise 3: load the learner's nftables ruleset on the router and test the
    port-forward from the upstream: 198.51.100.1:8443 must reach the server's port 443."""
    ex = "Exercise 3 (add a port-forward)"
    hint = (
        f'a nat chain on the prerouting hook: iifname "eth2" tcp dport {public_port} dnat ip to '
        f"{SERVER}:{server_port} — and the router must forward"
    )
    if unanswered(ruleset) or not isinstance(ruleset, str):
        raise CheckFailed(ex, "answer must be an nftables ruleset (a string for nft -f)", hint)
    from packetlab.topo.netfilter import nft_check

    error = nft_check(topo.router, ruleset)
    require(error is None, ex, f"nft rejects the ruleset: {error}", hint)
    topo.router.nft(ruleset)
    got = whoami(topo.upstream, ROUTER_WAN1, public_port)
    if got is None:
        ruleset_now = topo.router.run(["nft", "list", "ruleset"]).stdout
        why = (
            "no DNAT rule for that port is loaded"
            if str(public_port) not in ruleset_now
            else f"the connection to {ROUTER_WAN1}:{public_port} from the upstream failed"
        )
        raise CheckFailed(ex, why, hint)
    require(
        got.server == f"{SERVER}:{server_port}",
        ex,
        f"the connection was answered by {got.server}, not by the server's port {server_port}",
        hint,
    )
    return passed(ex, f"upstream -> {ROUTER_WAN1}:{public_port} reached {got.server}, which saw {got.seen}")


#: the three connections of exercise 4: (label, from host, source address or None, to ip, to port)
SOURCE_SCENARIOS = {
    "server_sees_via_port_forward": ("upstream", None, ROUTER_WAN1, 8080),
    "upstream_sees_client": ("client", CLIENT, INTERNET, WHOAMI_PORT),
    "upstream_sees_client2": ("client", CLIENT2, INTERNET, WHOAMI_PORT),
}


@graded(
    "predict the three source addresses (DNAT, masquerade, source-based routing), fill in the answer "
    "dict and run this check again"
)
def check_source_prediction(topo: NatTopology, answer: Any) -> bool:
    """Exercise 4: predict which source address each server sees, then watch it happen."""
    ex = "Exercise 4 (which source address does the server see?)"
    hint = (
        "DNAT rewrites only the destination; masquerade rewrites the source to the address of the "
        "interface the packet leaves by — and policy routing decides which interface that is"
    )
    if unanswered(answer) or not isinstance(answer, dict):
        raise CheckFailed(ex, f"answer must be a dict with keys {sorted(SOURCE_SCENARIOS)}", hint)
    missing = [k for k in SOURCE_SCENARIOS if k not in answer]
    require(not missing, ex, f"no prediction for {', '.join(missing)}", hint)
    wrong, seen = [], {}
    for key, (who, source, ip, port) in SOURCE_SCENARIOS.items():
        got = whoami(getattr(topo, who), ip, port, source=source)
        if got is None:
            raise CheckFailed(
                ex,
                f"the connection for {key} failed ({who} -> {ip}:{port})",
                "run the NAT part of the lab first: the masquerade and the 8080 port-forward must be loaded",
            )
        seen[key] = got.seen_ip
        if str(answer[key]).split(":")[0].strip() != got.seen_ip:
            wrong.append(f"{key}: you predicted {answer[key]!r}, the server saw {got.seen_ip}")
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, ", ".join(f"{k} = {v}" for k, v in seen.items()))
