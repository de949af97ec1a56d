"""Module 05's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from packetlab.topo.rtnl import iproute

if TYPE_CHECKING:
    from packetlab.topo.host import Host


# ---- exercise 3: the TCP payload ---------------------------------------------------------
def edge_frames() -> list[tuple[str, bytes]]:
    """Untagged IPv4/TCP frames that break the usual shortcuts (fixed 20-byte headers, no padding)."""
    from scapy.layers.inet import IP, TCP, IPOption_NOP, IPOption_RR
    from scapy.layers.l2 import Ether

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    ip: dict[str, Any] = dict(src="10.0.1.1", dst="10.0.2.2")
    return [
        ("plain", bytes(e / IP(**ip) / TCP(sport=40000, dport=80, flags="PA") / b"GET / HTTP/1.1\r\n\r\n")),
        (
            "TCP options (timestamps)",
            bytes(
                e
                / IP(**ip)
                / TCP(sport=40000, dport=80, flags="PA", options=[("NOP", None), ("NOP", None), ("Timestamp", (1, 2))])
                / b"hello"
            ),
        ),
        (
            "IPv4 options (record route)",
            bytes(
                e / IP(**ip, options=[IPOption_RR(), IPOption_NOP()]) / TCP(sport=1, dport=2, flags="PA") / b"options!"
            ),
        ),
        ("Ethernet padding (tiny payload)", bytes(e / IP(**ip) / TCP(sport=3, dport=4, flags="PA") / b"x") + b"\0" * 5),
        (
            "SYN, no payload, MSS option",
            bytes(e / IP(**ip) / TCP(sport=5, dport=6, flags="S", options=[("MSS", 1460)])) + b"\0" * 2,
        ),
    ]


# ---- exercise 4: veth with pyroute2 -----------------------------------------------------
def _link(ns: str | None, ifname: str) -> Any:
    with iproute(ns) as ipr:  # None: the caller's own (in a notebook: the host's) namespace
        found = ipr.get_links(ifname=ifname) if ipr.link_lookup(ifname=ifname) else []
        return found[0] if found else None


def veth_ready(a: Host, a_if: str, b: Host, b_if: str) -> bool:
    """True if `a_if` exists in a and `b_if` in b (what the reference solution tests before acting)."""
    return _link(a.namespace, a_if) is not None and _link(b.namespace, b_if) is not None
