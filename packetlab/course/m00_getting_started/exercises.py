"""Checks for module 00 · getting started.

Each check asks the kernel (not the lab's Python objects) what is really
there: which namespace holds an interface, whether a ping gets through, which
route the kernel picks.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from packetlab.course.grading import CheckFailed, graded, pair_answer, passed, require
from packetlab.course.m00_getting_started.helpers import route_choice, veth_peer
from packetlab.topo import netns
from packetlab.topo.host import Host


@graded(
    "read h1.ip('-d link show eth0') ('@ifN' and 'link-netns'), set answer = ('<namespace>', "
    "'<interface>') in the answer cell and run it and this check again"
)
def check_veth_peer(answer: Any, host: Host, dev: str = "eth0") -> bool:
    """Exercise: name the namespace and interface at the other end of `host`'s `dev`."""
    ex = "Exercise 1 (the other end of the cable)"
    hint = (
        f"run {host.name}.ip('-d link show {dev}'): '@ifN' is the peer's interface index and "
        f"'link-netns' names the namespace it lives in; then list that namespace's interfaces"
    )
    answer = pair_answer(
        answer,
        ex,
        placeholder="('<namespace>', '<interface>')",
        shape=f"a pair like ('{host.lab.name}-hX', 'ethN')",
        hint=hint,
    )
    ns, ifname = (str(a).strip() for a in answer)
    real_ns, real_if = veth_peer(host, dev)
    if ns != real_ns:
        if ns == host.namespace:
            raise CheckFailed(
                ex, f"{ns} is {host.name}'s own namespace — that is where {dev} lives, not its peer", hint
            )
        if ns in host.lab.nodes:
            raise CheckFailed(
                ex, f"{ns!r} is a node name; namespaces are called <lab>-<node>, e.g. '{host.lab.name}-{ns}'", hint
            )
        raise CheckFailed(ex, f"the peer of {host.name}:{dev} is not in namespace {ns!r}", hint)
    if ifname != real_if:
        raise CheckFailed(
            ex,
            f"right namespace ({ns}), but the interface there is not called {ifname!r}",
            f"list it with: ip -n {ns} -br link — the one whose '@ifN' points back at {host.name}:{dev}",
        )
    return passed(ex, f"{host.name}:{dev} <-> {real_ns}:{real_if}")


@graded(
    "put your own h3 = lab.host(...) and lab.link(...) in the answer cell, then Restart Kernel and "
    "Run All: the reference cell stays out of the way once h3 exists"
)
def check_third_host(lab: Any, src: str = "h1", name: str = "h3") -> bool:
    """Exercise: the lab has a host `name` with an address that `src` can really ping."""
    ex = "Exercise 2 (a third host)"
    require(
        name in lab.nodes,
        ex,
        f"the lab has no node called {name!r} (nodes: {', '.join(lab.nodes)})",
        f"create it with {name} = lab.host({name!r})",
    )
    host = lab.nodes[name]
    require(
        netns.exists(host.namespace),
        ex,
        f"namespace {host.namespace} does not exist",
        "was the lab closed and restarted? re-run the cells from the top",
    )
    addrs = [a for a in host.addresses() if ipaddress.ip_interface(a).version == 4]
    require(
        bool(addrs),
        ex,
        f"{name} has no IPv4 address yet",
        f"connect it and address both ends: lab.link({src}, {name}, ip='10.0.3.1/24', peer_ip='10.0.3.3/24')",
    )
    source = lab.nodes[src]
    for addr in addrs:
        ip = str(ipaddress.ip_interface(addr).ip)
        if source.ping(ip, count=1, timeout=1).ok:
            return passed(ex, f"{src} reaches {name} at {ip}")
    ip = str(ipaddress.ip_interface(addrs[0]).ip)
    route = source.run(["ip", "route", "get", ip])
    why = (
        f"{src} has no route to {ip}: {route.stderr.strip()}"
        if not route.ok
        else f"{src} sends packets for {ip} via `{route.stdout.splitlines()[0].strip()}`, but no reply comes back"
    )
    raise CheckFailed(
        ex,
        why,
        f"put {name} and {src} on one subnet (one link, addresses from the same /24), "
        f"e.g. lab.link({src}, {name}, ip='10.0.3.1/24', peer_ip='10.0.3.3/24')",
    )


@graded(
    "find the most specific route for h3's address in h1.ip('route'), set answer = ('<interface>', "
    "'<source address>') and run this check again"
)
def check_route_choice(answer: Any, host: Host, destination: str) -> bool:
    """Exercise: which interface and source address `host` uses for `destination`."""
    ex = "Exercise 3 (which way out?)"
    hint = (
        f"the kernel picks the most specific route that contains {destination}: "
        f"read {host.name}.ip('route') and find the line whose prefix includes it"
    )
    answer = pair_answer(
        answer,
        ex,
        placeholder="('<interface>', '<source address>')",
        shape="a pair like ('eth0', '10.0.0.1')",
        hint=hint,
    )
    dev, src = (str(a).strip() for a in answer)
    real_dev, real_src = route_choice(host, destination)
    if dev != real_dev:
        raise CheckFailed(
            ex,
            f"{host.name} does not send packets for {destination} out of {dev}",
            hint + f"; `{host.name}.ip('route get {destination}')` shows the kernel's own answer",
        )
    if src.split("/")[0] != real_src:
        raise CheckFailed(
            ex,
            f"right interface ({dev}), but the source address is not {src}",
            f"the route's 'src' (its preferred source) is the address {host.name} owns on {dev}: "
            f"{host.name}.ip('-br addr show {dev}')",
        )
    return passed(ex, f"{host.name} -> {destination}: out of {real_dev}, from {real_src}")
