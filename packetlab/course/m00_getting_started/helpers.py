"""Module 00's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from packetlab.course.grading import CheckFailed
from packetlab.topo.host import Host


def _links(node: Any) -> list[dict]:
    return json.loads(node.run(["ip", "-j", "-d", "link", "show"], check=True).stdout or "[]")


def veth_peer(host: Host, dev: str = "eth0") -> tuple[str, str]:
    """(namespace, interface) at the other end of veth `dev`, found by interface index.

    ``ip link`` shows a veth as ``eth0@if7``: the peer is interface 7 — but
    interface numbers are per namespace, so the peer is the interface 7 whose
    own peer index is this interface. The lab's namespaces are searched.
    """
    mine = next((link for link in _links(host) if link["ifname"] == dev), None)
    if mine is None:
        raise CheckFailed(
            "veth peer", f"{host.name} has no interface {dev!r}", f"list them with {host.name}.ip('-br link')"
        )
    for node in host.lab.nodes.values():
        if node is host:
            continue
        for link in _links(node):
            if link["ifindex"] == mine.get("link_index") and link.get("link_index") == mine["ifindex"]:
                return node.namespace, link["ifname"]
    raise CheckFailed(
        "veth peer",
        f"{host.name}:{dev} is not a veth pair into another lab namespace",
        "only veth interfaces have a peer (ip -d link shows 'veth')",
    )


def route_choice(host: Host, destination: str) -> tuple[str, str]:
    """(interface, source address) the kernel would use from `host` to `destination`."""
    out = host.run(["ip", "-j", "route", "get", destination], check=True).stdout
    route = json.loads(out)[0]
    return route["dev"], route.get("prefsrc", "")


def lab_namespaces(lab: Any) -> list[str]:
    """The namespaces `ip netns list` shows that belong to `lab` (named ``<lab>-*``)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[0] for line in out.splitlines() if line.startswith(f"{lab.name}-"))
