"""Module 02 · NAT and routing: the lab's topology, routing helpers and the checks.

The topology (every address here is the lab's own, inside its namespaces)::

    client ──── router ──── server
      10.0.1.10   │  10.0.2.10
      10.0.1.11   │
            wan1  │  wan2
   198.51.100.0/24│  192.0.2.0/24
               upstream   (holds 203.0.113.1, "the internet", on its loopback)

The upstream knows nothing about 10.0.0.0/8, like a provider: a client reaches
it only through NAT. Checks verify by doing — they ping, open TCP connections
and ask a small "whoami" service what source address it saw.

Run ``python -m packetlab.exercises.nat_and_routing whoami PORT`` inside a
namespace (``Host.popen`` does) to start that service.
"""
from __future__ import annotations

import contextlib
import ipaddress
import json
import socket
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import PacketlabError
from . import CheckFailed, graded, passed, require, unanswered

CLIENT, CLIENT2, SERVER = "10.0.1.10", "10.0.1.11", "10.0.2.10"
ROUTER_LAN, ROUTER_DMZ = "10.0.1.1", "10.0.2.1"
ROUTER_WAN1, UPSTREAM_WAN1 = "198.51.100.1", "198.51.100.100"
ROUTER_WAN2, UPSTREAM_WAN2 = "192.0.2.1", "192.0.2.100"
INTERNET = "203.0.113.1"
WHOAMI_PORT = 8000


@dataclass
class NatTopology:
    """The four hosts of the module 02 lab (router interfaces: eth0 LAN, eth1 DMZ, eth2 wan1, eth3 wan2)."""
    lab: Any
    client: Any
    router: Any
    server: Any
    upstream: Any


def build_topology(lab: Any, *, forwarding: bool = False, server_default_route: bool = False) -> NatTopology:
    """Build client — router — server plus the upstream with two links to the router.

    The router starts with forwarding OFF and the server without a default
    route, so the first exercise has something to fix; pass True to skip that.
    """
    client, router, server, upstream = (lab.host(n) for n in ("client", "router", "server", "upstream"))
    lab.link(client, router, ip=[f"{CLIENT}/24", f"{CLIENT2}/24"], peer_ip=f"{ROUTER_LAN}/24")
    lab.link(server, router, ip=f"{SERVER}/24", peer_ip=f"{ROUTER_DMZ}/24")
    lab.link(upstream, router, ip=f"{UPSTREAM_WAN1}/24", peer_ip=f"{ROUTER_WAN1}/24")
    lab.link(upstream, router, ip=f"{UPSTREAM_WAN2}/24", peer_ip=f"{ROUTER_WAN2}/24")
    upstream.run(["ip", "addr", "add", f"{INTERNET}/32", "dev", "lo"], check=True)
    client.add_route("default", via=ROUTER_LAN)
    router.add_route("default", via=UPSTREAM_WAN1)
    if server_default_route:
        server.add_route("default", via=ROUTER_DMZ)
    router.sysctl("net.ipv4.ip_forward", 1 if forwarding else 0)
    wait_links_up(client, router, server, upstream)
    return NatTopology(lab, client, router, server, upstream)


def wait_links_up(*hosts: Any, timeout: float = 3.0) -> None:
    """Wait until every veth of `hosts` reports operstate UP.

    The kernel applies a new link's carrier state lazily (the link watcher runs up
    to a second later), so a table printed right after building shows DOWN for a
    moment; waiting keeps the first observations of a lab clean.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = [link.get("operstate") for h in hosts
                  for link in json.loads(h.run(["ip", "-j", "link", "show", "type", "veth"]).stdout or "[]")]
        if all(state == "UP" for state in states):
            return
        time.sleep(0.05)


# ---- routing -------------------------------------------------------------------------------

#: what `ip route get` answers for the special route types (the kernel returns an errno)
ROUTE_ERRORS = {"Invalid argument": "blackhole", "No route to host": "unreachable",
                "Permission denied": "prohibit", "Network is unreachable": "no route"}


@dataclass
class RouteDecision:
    """The kernel's answer to "where would a packet to `dst` go?" (``ip route get``)."""
    dst: str
    kind: str                 # unicast, local, blackhole, unreachable, prohibit, no route
    dev: str | None = None
    via: str | None = None
    src: str | None = None
    matched: str | None = None   # the route entry that matched (``ip route get fibmatch``)
    error: str | None = None

    def __str__(self) -> str:
        if self.kind not in ("unicast", "local"):
            return f"{self.dst}: {self.kind} ({self.error})"
        hop = f"via {self.via} " if self.via else ""
        return f"{self.dst}: {hop}dev {self.dev}  [matched {self.matched}]"


def route_decision(host: Any, dst: str, *, src: str | None = None, iif: str | None = None) -> RouteDecision:
    """Ask `host`'s kernel how it would route a packet to `dst` (from `src`, arriving on `iif`)."""
    extra = (["from", src] if src else []) + (["iif", iif] if iif else [])
    res = host.run(["ip", "-j", "route", "get", dst, *extra])
    if not res.ok:
        err = res.stderr.strip().removeprefix("RTNETLINK answers: ").strip()
        return RouteDecision(dst, ROUTE_ERRORS.get(err, "error"), error=err)
    info = json.loads(res.stdout)[0]
    kind = "local" if info.get("type") == "local" or info.get("dev") == "lo" else "unicast"
    fib = host.run(["ip", "route", "get", "fibmatch", dst, *extra])
    matched = fib.stdout.strip().splitlines()[0] if fib.ok and fib.stdout.strip() else None
    return RouteDecision(dst, kind, info.get("dev"), info.get("gateway"), info.get("prefsrc"), matched)


def routes(host: Any, table: str = "main") -> list[dict[str, Any]]:
    """``ip -j route show table <table>`` as a list of dicts."""
    return json.loads(host.run(["ip", "-j", "-4", "route", "show", "table", table], check=True).stdout or "[]")


def route_prefix(route: dict[str, Any]) -> ipaddress.IPv4Network:
    dst = route["dst"]
    return ipaddress.ip_network("0.0.0.0/0" if dst == "default" else dst if "/" in dst else f"{dst}/32")


# --8<-- [start:lpm]
def longest_prefix_match(table: Sequence[dict[str, Any]], dst: str) -> dict[str, Any] | None:
    """The route of `table` the kernel would pick for `dst`: the longest matching prefix
    (ties broken by the lowest metric). Pure Python — compare it with route_decision()."""
    addr = ipaddress.ip_address(dst)
    candidates = [r for r in table if addr in route_prefix(r)]
    if not candidates:
        return None
    return max(candidates, key=lambda r: (route_prefix(r).prefixlen, -int(r.get("metric", 0))))
# --8<-- [end:lpm]


def describe_route(route: dict[str, Any] | None) -> str:
    if route is None:
        return "(no route)"
    kind = route.get("type", "unicast")
    text = f"{route['dst']}" if route["dst"] != "default" else "default"
    if kind != "unicast":
        return f"{kind} {text}"
    if route.get("gateway"):
        text += f" via {route['gateway']}"
    return text + (f" dev {route['dev']}" if route.get("dev") else "")


#: the overlapping routes part 3 adds to the router (and the exercise predicts)
OVERLAPPING_ROUTES = (
    "10.0.0.0/8 via 198.51.100.100",     # a summary: "all of 10/8 is upstream"
    "10.0.2.128/25 via 192.0.2.100",     # more specific than the connected 10.0.2.0/24
    "blackhole 10.0.2.200/32",           # silently dropped
    "unreachable 10.0.2.201/32",         # dropped, ICMP host unreachable to the sender
    "prohibit 10.0.2.202/32",            # dropped, ICMP administratively prohibited
)


def add_overlapping_routes(router: Any) -> None:
    for spec in OVERLAPPING_ROUTES:
        router.run(["ip", "route", "replace", *spec.split()], check=True)


def remove_overlapping_routes(router: Any) -> None:
    for spec in OVERLAPPING_ROUTES:
        router.run(["ip", "route", "del", *spec.split()])


# ---- the whoami service ----------------------------------------------------------------------

def whoami_serve(port: int, bind: str = "0.0.0.0") -> None:
    """Answer every TCP connection with "<my address>:<port> sees <peer address>:<port>"
    (blocking; runs inside a lab namespace via Host.popen)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(64)
    print(f"whoami listening on {bind}:{port}", flush=True)
    while True:
        conn, peer = srv.accept()
        with conn:
            me = conn.getsockname()
            conn.sendall(f"{me[0]}:{me[1]} sees {peer[0]}:{peer[1]}\n".encode())


def start_whoami(host: Any, port: int = WHOAMI_PORT, timeout: float = 10) -> Any:
    """Start the whoami service in `host` (stopped with the lab) and wait until it listens."""
    proc = host.popen([sys.executable, "-m", "packetlab.exercises.nat_and_routing", "whoami", str(port)])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PacketlabError(f"the whoami service in {host.name} exited", cause=(proc.stdout.read() or "")[-400:],
                                 fix=f"is port {port} already in use in {host.name}?")
        if f":{port} " in host.run(["ss", "-Htln", f"sport = :{port}"]).stdout:
            return proc
        time.sleep(0.05)
    raise PacketlabError(f"the whoami service in {host.name} did not start listening on {port}")


@dataclass
class WhoamiAnswer:
    server: str          # address:port the server answered on
    seen: str            # address:port the server saw us as

    @property
    def seen_ip(self) -> str:
        return self.seen.rsplit(":", 1)[0]


def whoami(host: Any, ip: str, port: int = WHOAMI_PORT, *, source: str | None = None,
           timeout: float = 2) -> WhoamiAnswer | None:
    """Connect from `host` (optionally from address `source`) and read who the server saw;
    None if the connection failed."""
    from .. import netns
    with netns.entered(host.namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((ip, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(200)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        sock.close()
    parts = data.decode().split()
    return WhoamiAnswer(parts[0], parts[2]) if len(parts) == 3 else None


# ---- showing a rewrite ----------------------------------------------------------------------

def tcp_rows(frames: Sequence[Any]) -> list[tuple[str, str]]:
    """(flags, "src:sport > dst:dport") for each TCP frame, in capture order."""
    from scapy.layers.inet import IP, TCP
    rows = []
    for f in frames:
        if IP in f and TCP in f:
            rows.append((str(f[TCP].flags), f"{f[IP].src}:{f[TCP].sport} > {f[IP].dst}:{f[TCP].dport}"))
    return rows


def rewrite_table(left: Sequence[Any], right: Sequence[Any], left_label: str, right_label: str,
                  limit: int = 6) -> str:
    """The same TCP packets as captured on two router interfaces, side by side."""
    from ..bench import format_table
    a, b = tcp_rows(left), tcp_rows(right)
    rows = []
    for i in range(min(max(len(a), len(b)), limit)):
        flags = (a[i] if i < len(a) else b[i])[0]
        rows.append((i + 1, flags, a[i][1] if i < len(a) else "-", b[i][1] if i < len(b) else "-"))
    return format_table(["#", "flags", left_label, right_label], rows)


# ---- checks ------------------------------------------------------------------------------------

@graded('in a fresh run, turn on forwarding in the router and give the server a way back in the answer '
        'cell yourself, then Restart Kernel and Run All')
def check_client_reaches_server(topo: NatTopology) -> bool:
    """Exercise 1: the client pings the server, for real, through the router."""
    ex = "Exercise 1 (make the client reach the server)"
    r = topo.client.ping(SERVER, count=2, timeout=1, interval=0.2)
    if r.ok:
        return passed(ex, f"{r} — forwarding is on and the server knows the way back")
    forwarding = topo.router.sysctl("net.ipv4.ip_forward") == "1"
    require(forwarding, ex, "the router does not forward: net.ipv4.ip_forward is 0 in its namespace",
            "router.sysctl('net.ipv4.ip_forward', 1) — it is per namespace, the host is not affected")
    to_server = route_decision(topo.client, SERVER)
    require(to_server.kind == "unicast" and to_server.via == ROUTER_LAN, ex,
            f"the client's route to {SERVER} is not via the router: {to_server}",
            f"client.add_route('default', via='{ROUTER_LAN}')")
    back = route_decision(topo.server, CLIENT)
    require(back.kind == "unicast" and back.via == ROUTER_DMZ, ex,
            f"the server has no route back to the client ({back}); echo requests arrive, replies cannot leave",
            f"server.add_route('default', via='{ROUTER_DMZ}') (or a route to 10.0.1.0/24 via {ROUTER_DMZ})")
    raise CheckFailed(ex, f"the ping still fails ({r}) although routes and forwarding look right",
                      "look for firewall rules on the router: router.run('nft list ruleset')")


#: the destinations of exercise 2
LPM_DESTINATIONS = ("10.0.2.10", "10.0.2.130", "10.0.3.5", "10.0.2.200", "203.0.113.1")


@graded("predict each destination's longest-prefix match from the router's table, fill in the answer dict"
        ' and run this check again')
def check_lpm(topo: NatTopology, answer: Any) -> bool:
    """Exercise 2: predict the route the router picks for each destination of LPM_DESTINATIONS.

    `answer` maps each destination to a route written like ``ip route`` shows it:
    the prefix (``"10.0.2.0/24"``, ``"default"``) or, for special routes, the type
    (``"blackhole"``).
    """
    ex = "Exercise 2 (longest-prefix match)"
    hint = ("for each destination list every route whose prefix contains it; the longest prefix wins, "
            "whatever order the routes were added in; blackhole/unreachable/prohibit are routes too")
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


@graded('write the nftables DNAT ruleset yourself as answer (a string), run it and this check again')
def check_port_forward(topo: NatTopology, ruleset: Any, *, public_port: int = 8443, server_port: int = 443) -> bool:
    """Exercise 3: load the learner's nftables ruleset on the router and test the
    port-forward from the upstream: 198.51.100.1:8443 must reach the server's port 443."""
    ex = "Exercise 3 (add a port-forward)"
    hint = (f"a nat chain on the prerouting hook: iifname \"eth2\" tcp dport {public_port} dnat ip to "
            f"{SERVER}:{server_port} — and the router must forward")
    if unanswered(ruleset) or not isinstance(ruleset, str):
        raise CheckFailed(ex, "answer must be an nftables ruleset (a string for nft -f)", hint)
    from ..netfilter import nft_check
    error = nft_check(topo.router, ruleset)
    require(error is None, ex, f"nft rejects the ruleset: {error}", hint)
    topo.router.nft(ruleset)
    got = whoami(topo.upstream, ROUTER_WAN1, public_port)
    if got is None:
        ruleset_now = topo.router.run(["nft", "list", "ruleset"]).stdout
        why = ("no DNAT rule for that port is loaded" if str(public_port) not in ruleset_now else
               f"the connection to {ROUTER_WAN1}:{public_port} from the upstream failed")
        raise CheckFailed(ex, why, hint)
    require(got.server == f"{SERVER}:{server_port}", ex,
            f"the connection was answered by {got.server}, not by the server's port {server_port}", hint)
    return passed(ex, f"upstream -> {ROUTER_WAN1}:{public_port} reached {got.server}, which saw {got.seen}")


#: the three connections of exercise 4: (label, from host, source address or None, to ip, to port)
SOURCE_SCENARIOS = {
    "server_sees_via_port_forward": ("upstream", None, ROUTER_WAN1, 8080),
    "upstream_sees_client": ("client", CLIENT, INTERNET, WHOAMI_PORT),
    "upstream_sees_client2": ("client", CLIENT2, INTERNET, WHOAMI_PORT),
}


@graded('predict the three source addresses (DNAT, masquerade, source-based routing), fill in the answer '
        'dict and run this check again')
def check_source_prediction(topo: NatTopology, answer: Any) -> bool:
    """Exercise 4: predict which source address each server sees, then watch it happen."""
    ex = "Exercise 4 (which source address does the server see?)"
    hint = ("DNAT rewrites only the destination; masquerade rewrites the source to the address of the "
            "interface the packet leaves by — and policy routing decides which interface that is")
    if unanswered(answer) or not isinstance(answer, dict):
        raise CheckFailed(ex, f"answer must be a dict with keys {sorted(SOURCE_SCENARIOS)}", hint)
    missing = [k for k in SOURCE_SCENARIOS if k not in answer]
    require(not missing, ex, f"no prediction for {', '.join(missing)}", hint)
    wrong, seen = [], {}
    for key, (who, source, ip, port) in SOURCE_SCENARIOS.items():
        got = whoami(getattr(topo, who), ip, port, source=source)
        require(got is not None, ex, f"the connection for {key} failed ({who} -> {ip}:{port})",
                "run the NAT part of the lab first: the masquerade and the 8080 port-forward must be loaded")
        seen[key] = got.seen_ip
        if str(answer[key]).split(":")[0].strip() != got.seen_ip:
            wrong.append(f"{key}: you predicted {answer[key]!r}, the server saw {got.seen_ip}")
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, ", ".join(f"{k} = {v}" for k, v in seen.items()))


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "whoami":
        with contextlib.suppress(KeyboardInterrupt):
            whoami_serve(int(argv[1]), argv[2] if len(argv) > 2 else "0.0.0.0")
        return 0
    print("usage: python -m packetlab.exercises.nat_and_routing whoami PORT [BIND]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
