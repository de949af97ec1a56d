"""Netlink with pyroute2: read links, addresses and routes, and build a veth pair
between two namespaces — what ``packetlab.topo.lab`` does underneath, step by step.

``ip`` is a netlink client: ``ip link`` sends RTM_GETLINK to the kernel over an
AF_NETLINK socket and prints the RTM_NEWLINK messages that come back. pyroute2
speaks the same protocol from Python, so a program can read and change the
network configuration without parsing ``ip``'s text output.

``IPRoute(netns=NAME)`` opens its netlink socket *inside* namespace NAME, so
every call below acts on a lab namespace, never the host's. The calls go
through ``packetlab.topo.rtnl.iproute``, which runs pyroute2's synchronous IPRoute on
a thread of its own: in a notebook the caller's thread runs the kernel's event
loop, where that API cannot run (see ``packetlab.topo.rtnl``).
"""

from __future__ import annotations

import select
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packetlab.errors import PacketlabError
from packetlab.topo.rtnl import iproute

if TYPE_CHECKING:
    from packetlab.topo.host import Host

_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
_PROTOS = {2: "kernel", 3: "boot", 4: "static"}
_TYPES = {1: "unicast", 2: "local", 3: "broadcast", 5: "multicast", 6: "blackhole", 7: "unreachable"}


def links(host: Host) -> list[dict[str, Any]]:
    """RTM_GETLINK in `host`'s namespace: index, name, kind, state, MTU, MAC, peer index."""
    with iproute(netns=host.namespace) as ipr:
        out = []
        for msg in ipr.get_links():
            info = msg.get_attr("IFLA_LINKINFO")
            out.append(
                {
                    "index": msg["index"],
                    "ifname": msg.get_attr("IFLA_IFNAME"),
                    "kind": info.get_attr("IFLA_INFO_KIND") if info else "-",
                    "state": msg.get_attr("IFLA_OPERSTATE"),
                    "mtu": msg.get_attr("IFLA_MTU"),
                    "mac": msg.get_attr("IFLA_ADDRESS"),
                    "peer_index": msg.get_attr("IFLA_LINK") or "-",
                }
            )
        return out


def addresses(host: Host) -> list[dict[str, Any]]:
    """RTM_GETADDR: every address with its interface, family, prefix length and scope."""
    with iproute(netns=host.namespace) as ipr:
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
        return [
            {
                "ifname": names.get(m["index"], m["index"]),
                "family": "inet6" if m["family"] == socket.AF_INET6 else "inet",
                "address": f"{m.get_attr('IFA_ADDRESS')}/{m['prefixlen']}",
                "scope": _SCOPES.get(m["scope"], m["scope"]),
            }
            for m in ipr.get_addr()
        ]


def routes(host: Host, family: int = socket.AF_INET, table: int | None = 254) -> list[dict[str, Any]]:
    """RTM_GETROUTE: destination, gateway, device, protocol, scope (main table by default)."""
    with iproute(netns=host.namespace) as ipr:
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
        kw = {"table": table} if table is not None else {}
        out = []
        for m in ipr.get_routes(family=family, **kw):
            dst = m.get_attr("RTA_DST")
            out.append(
                {
                    "dst": f"{dst}/{m['dst_len']}" if dst else "default",
                    "gateway": m.get_attr("RTA_GATEWAY") or "-",
                    "dev": names.get(m.get_attr("RTA_OIF"), "-"),
                    "table": m.get_attr("RTA_TABLE"),
                    "type": _TYPES.get(m["type"], m["type"]),
                    "proto": _PROTOS.get(m["proto"], m["proto"]),
                    "scope": _SCOPES.get(m["scope"], m["scope"]),
                }
            )
        return out


def route_get(host: Host, dst: str) -> dict[str, Any]:
    """RTM_GETROUTE for one destination: what the kernel would do with a packet to `dst`
    (``ip route get``): the output device, the gateway (if any) and the source address."""
    with iproute(netns=host.namespace) as ipr:
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in ipr.get_links()}
        try:
            msg = ipr.route("get", dst=dst)[0]
        except Exception as exc:  # pyroute2 raises NetlinkError(errno) — e.g. ENETUNREACH
            raise PacketlabError(
                f"{host.name} has no route to {dst}",
                cause=str(exc),
                fix=f"look at the routing table: netlink.routes({host.name})",
            ) from None
        return {
            "dst": dst,
            "dev": names.get(msg.get_attr("RTA_OIF"), "-"),
            "gateway": msg.get_attr("RTA_GATEWAY"),
            "src": msg.get_attr("RTA_PREFSRC"),
        }


@dataclass
class Step:
    """One netlink request and what it did."""

    namespace: str
    request: str
    effect: str


def veth_between(a: Host, b: Host, a_if: str, b_if: str, a_ip: str, b_ip: str) -> list[Step]:
    """Connect two lab namespaces with a veth pair, the long way round, and log each request.

    1. RTM_NEWLINK kind=veth in `a`: both ends are born in `a`'s namespace;
    2. RTM_NEWLINK (set) IFLA_NET_NS_FD on one end: move it into `b`'s namespace;
    3. RTM_NEWADDR on each end; 4. RTM_NEWLINK (set) IFF_UP on each end.
    packetlab.topo.lab does 1+2 in one request (``peer={"net_ns_fd": ...}``). Nothing
    here touches the root namespace. If a step fails, the pair is deleted again.
    """
    steps: list[Step] = []
    with iproute(netns=a.namespace) as ipr:
        ipr.link("add", ifname=a_if, kind="veth", peer={"ifname": b_if})
        steps.append(
            Step(
                a.namespace,
                f"RTM_NEWLINK ifname={a_if} kind=veth peer={b_if}",
                f"veth pair {a_if} <-> {b_if}, both in {a.namespace}",
            )
        )
        try:
            peer = ipr.link_lookup(ifname=b_if)[0]
            ipr.link("set", index=peer, net_ns_fd=b.namespace)
            steps.append(
                Step(
                    a.namespace,
                    f"RTM_NEWLINK index={peer} IFLA_NET_NS_FD={b.namespace}",
                    f"{b_if} moved into {b.namespace} (it vanishes from {a.namespace})",
                )
            )
            _address_and_up(a, a_if, a_ip, steps)
            _address_and_up(b, b_if, b_ip, steps)
        except BaseException:
            for idx in ipr.link_lookup(ifname=a_if):
                ipr.link("del", index=idx)  # deleting one end deletes the pair
            raise
    return steps


def _address_and_up(host: Host, ifname: str, cidr: str, steps: list[Step]) -> None:
    ip, _, plen = cidr.partition("/")
    if not plen:
        raise PacketlabError(f"address {cidr!r} has no prefix length", fix=f"write it as '{cidr}/24'")
    with iproute(netns=host.namespace) as ipr:
        idx = ipr.link_lookup(ifname=ifname)[0]
        ipr.addr("add", index=idx, address=ip, prefixlen=int(plen))
        steps.append(Step(host.namespace, f"RTM_NEWADDR index={idx} {cidr}", f"{ifname} has {cidr}"))
        ipr.link("set", index=idx, state="up")
        steps.append(Step(host.namespace, f"RTM_NEWLINK index={idx} flags=IFF_UP", f"{ifname} is up"))


class Monitor:
    """Listen to the kernel's rtnetlink notifications in one namespace (like ``ip monitor``).

    The kernel multicasts an RTM_NEWLINK/RTM_NEWADDR/RTM_NEWROUTE message to
    every socket subscribed to the matching group whenever something changes.
    """

    def __init__(self, host: Host) -> None:
        self.ipr = iproute(netns=host.namespace)
        self.ipr.bind()  # join the link, address and route groups

    def events(self, timeout: float = 0.5) -> list[str]:
        """Drain the notifications that arrived so far (waiting up to `timeout` for the first)."""
        out: list[str] = []
        wait = timeout
        while select.select([self.ipr.fileno()], [], [], wait)[0]:
            for msg in self.ipr.get():
                event = msg["event"]
                name = msg.get_attr("IFLA_IFNAME") or msg.get_attr("IFA_LABEL") or msg.get_attr("RTA_DST") or ""
                if event.endswith("ADDR"):
                    name = f"{msg.get_attr('IFA_ADDRESS')}/{msg['prefixlen']}"
                elif event.endswith("ROUTE"):
                    name = f"{msg.get_attr('RTA_DST') or 'default'}/{msg['dst_len']}"
                out.append(f"{event} {name}")
            wait = 0.05
        return out

    def close(self) -> None:
        self.ipr.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
