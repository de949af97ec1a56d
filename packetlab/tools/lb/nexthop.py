"""Where does a backend live, seen from the load balancer's namespace?

XDP has no routing table of its own: to forward a rewritten frame it needs the
egress interface and both MAC addresses. The control plane asks the kernel —
``ip route get <backend>`` for the interface, source address and gateway, the
neighbour table for the next hop's MAC (resolving it first if needed) — and
installs the answer in the `backends` map. A backend whose MAC cannot be
resolved is still served: the program then hands the rewritten packet to the
kernel (XDP_PASS), which routes it and resolves ARP itself.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from dataclasses import dataclass

from packetlab.errors import PacketlabError
from packetlab.topo import netns


@dataclass(frozen=True)
class NextHop:
    """How the LB reaches one backend."""

    address: str  # the backend
    dev: str  # egress interface
    ifindex: int
    src: str  # our address towards it (DSR's outer source)
    via: str | None  # gateway, or None when on-link
    mac: str | None  # next hop's MAC (None: not resolved, the kernel will forward)
    our_mac: str

    @property
    def resolved(self) -> bool:
        return self.mac is not None


def _ip_json(namespace: str | None, args: list[str]) -> list:
    cmd = ["ip", "-j", *args]
    if namespace is None:
        import subprocess

        out = subprocess.run(cmd, capture_output=True, text=True)
        rc, stdout, stderr = out.returncode, out.stdout, out.stderr
    else:
        r = netns.run(namespace, cmd, timeout=10)
        rc, stdout, stderr = r.returncode, r.stdout, r.stderr
    if rc != 0:
        raise OSError(stderr.strip() or f"ip {' '.join(args)} failed")
    return json.loads(stdout or "[]")


def link_info(namespace: str | None, dev: str) -> tuple[int, str]:
    """(ifindex, MAC) of `dev` in `namespace`."""
    try:
        info = _ip_json(namespace, ["link", "show", "dev", dev])[0]
    except (OSError, IndexError):
        raise PacketlabError(
            f"no interface {dev!r} in namespace {namespace or '(root)'}",
            cause="the device name is wrong, or the namespace is not the one you meant",
            fix=f"list interfaces: ip -n {namespace} link" if namespace else "list interfaces: ip link",
        ) from None
    return int(info["ifindex"]), info.get("address", "00:00:00:00:00:00")


def _neighbour(namespace: str | None, addr: str, dev: str) -> str | None:
    with contextlib.suppress(OSError):
        for n in _ip_json(namespace, ["neigh", "show", "to", addr, "dev", dev]):
            states = set(n.get("state", []))
            if n.get("lladdr") and not states & {"FAILED", "INCOMPLETE"}:
                return n["lladdr"]
    return None


def _poke(namespace: str | None, addr: str) -> None:
    """Make the kernel resolve `addr`'s MAC: one UDP datagram to the discard port."""
    ctx = netns.entered(namespace) if namespace else contextlib.nullcontext()
    with ctx:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.closing(s), contextlib.suppress(OSError):
        s.sendto(b"packetlab-lb arp probe", (addr, 9))


def local_addresses(namespace: str | None) -> dict[str, str]:
    """{address: interface} of every IPv4 address configured in `namespace`."""
    out = {}
    with contextlib.suppress(OSError):
        for link in _ip_json(namespace, ["-4", "addr", "show"]):
            for a in link.get("addr_info", []):
                if a.get("local"):
                    out[a["local"]] = link.get("ifname", "?")
    return out


def resolve(namespace: str | None, addr: str, *, wait: float = 1.0) -> NextHop:
    """Route and neighbour lookup for `addr` from `namespace` (raises if there is no route)."""
    try:
        route = _ip_json(namespace, ["route", "get", addr])[0]
    except (OSError, IndexError) as exc:
        raise PacketlabError(
            f"backend {addr} is unreachable from the load balancer's namespace",
            cause=f"ip route get {addr}: {exc}",
            fix="add a route to the backend in the LB's namespace (or fix the address)",
        ) from None
    kind = route.get("type", "unicast")
    if kind != "unicast" or "dev" not in route:
        why = {
            "local": "it is an address of the load balancer's own namespace",
            "broadcast": "it is a broadcast address",
            "multicast": "it is a multicast address",
            "unreachable": "the routing table marks it unreachable",
            "blackhole": "the routing table drops it (blackhole)",
            "prohibit": "the routing table prohibits it",
        }.get(kind, f"its route is of type {kind!r}" + ("" if "dev" in route else " without an interface"))
        raise PacketlabError(
            f"backend {addr} is not a unicast destination from the load balancer",
            cause=f"ip route get {addr}: {why}",
            fix="backends must be other hosts reachable by a unicast route, not local addresses",
        )
    dev, via = route["dev"], route.get("gateway")
    ifindex, our_mac = link_info(namespace, dev)
    hop = via or addr
    mac = _neighbour(namespace, hop, dev)
    if mac is None and wait > 0:
        _poke(namespace, hop)
        deadline = time.monotonic() + wait
        while mac is None and time.monotonic() < deadline:
            time.sleep(0.02)
            mac = _neighbour(namespace, hop, dev)
    return NextHop(addr, dev, ifindex, route.get("prefsrc", ""), via, mac, our_mac)
