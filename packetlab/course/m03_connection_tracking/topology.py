"""Module 03's lab topology and the probes its notebook and checks run against it."""

from __future__ import annotations

import errno
import itertools
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packetlab.course.grading import CheckFailed, require, unanswered
from packetlab.course.m02_nat_and_routing.topology import wait_links_up
from packetlab.course.m02_nat_and_routing.whoami import start_whoami
from packetlab.course.m03_connection_tracking.craft import LabWire, TcpConversation, silence_kernel
from packetlab.course.m03_connection_tracking.kernel_table import CtStateCounters

if TYPE_CHECKING:
    from packetlab.topo.host import Host

CLIENT, SERVER = "10.0.1.10", "10.0.2.10"
ROUTER_LAN, ROUTER_DMZ = "10.0.1.1", "10.0.2.1"
CRAFT_PORT = 7777  # the server port of crafted conversations (end hosts silenced for it)
_ports = itertools.count(41000)


@dataclass
class CtTopology:
    lab: Any
    client: Any
    router: Any
    server: Any
    wire: LabWire
    counters: CtStateCounters

    def conversation(self, **kw: Any) -> TcpConversation:
        """A crafted conversation on a client port never used before in this lab."""
        return TcpConversation(CLIENT, SERVER, next(_ports), CRAFT_PORT, **kw)


def build_topology(lab: Any) -> CtTopology:
    client, router, server = lab.host("client"), lab.router("router"), lab.host("server")
    lab.link(client, router, ip=f"{CLIENT}/24", peer_ip=f"{ROUTER_LAN}/24")
    lab.link(server, router, ip=f"{SERVER}/24", peer_ip=f"{ROUTER_DMZ}/24")
    client.add_route("default", via=ROUTER_LAN)
    server.add_route("default", via=ROUTER_DMZ)
    wait_links_up(client, router, server)
    silence_kernel(client, CRAFT_PORT)
    silence_kernel(server, CRAFT_PORT)
    wire = LabWire(router, (client, "eth0", "eth0"), (server, "eth0", "eth1"))
    start_whoami(server, 80)  # real TCP services on both ends, for the firewall tests
    start_whoami(client, 80)
    return CtTopology(lab, client, router, server, wire, CtStateCounters(router))


def udp_probe(host: Any, ip: str, port: int, payload: bytes = b"ping", timeout: float = 1.0) -> str:
    """Send one UDP datagram from `host` on a connected socket and report what came back:
    'reply', 'refused' (an ICMP port unreachable arrived) or 'timeout'."""
    from packetlab.topo import netns

    with netns.entered(host.namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        sock.send(payload)
        sock.recv(100)
        return "reply"
    except ConnectionRefusedError:
        return "refused"
    except OSError as exc:
        return "timeout" if isinstance(exc, socket.timeout) or exc.errno in (errno.EAGAIN,) else f"error {exc}"
    finally:
        sock.close()


def conv_tuple(conv: TcpConversation) -> Any:
    from packetlab.proto.conntrack.states import PROTO_TCP, FlowTuple

    return FlowTuple(PROTO_TCP, conv.ip["client"], conv.ip["server"], conv.port["client"], conv.port["server"])


# ---- exercise 3: a stateful firewall ----------------------------------------------------------------


def load_answer_ruleset(router: Host, ruleset: Any, ex: str, hint: str | None = None) -> None:
    """An exercise's answer as `router`'s firewall (modules 03 and 04): it must be an nftables ruleset
    (a string) that nft accepts; validated with nft -c, the tables it declares are deleted and it is
    loaded. Raises CheckFailed for `ex`, with `hint`, if it is not."""
    from packetlab.topo.netfilter import replace_ruleset

    if unanswered(ruleset) or not isinstance(ruleset, str):
        raise CheckFailed(ex, "answer must be an nftables ruleset (a string)", hint)
    error = replace_ruleset(router, ruleset)
    require(error is None, ex, f"nft rejects the ruleset: {error}", hint)


def firewall_behaviour(topo: CtTopology) -> dict[str, str]:
    """Test the router's firewall with real traffic: returns allowed/blocked per case."""
    from scapy.layers.inet import TCP

    from packetlab.course.m02_nat_and_routing.whoami import whoami

    out = {}
    out["client -> server (new TCP)"] = "allowed" if whoami(topo.client, SERVER, 80, timeout=1) else "blocked"
    out["server -> client (new TCP)"] = "allowed" if whoami(topo.server, CLIENT, 80, timeout=1) else "blocked"
    out["ICMP error back to the client (RELATED)"] = (
        "allowed" if udp_probe(topo.client, SERVER, 9) == "refused" else "blocked"
    )
    conv = topo.conversation()
    topo.wire.send(conv.syn(), conv.synack(), conv.ack("client"), gap=0.01)
    arrived = False
    for side, receiver in (("server", topo.client), ("client", topo.server)):  # forged from outside and inside
        with receiver.capture("eth0", filter=f"tcp port {CRAFT_PORT}") as frames:
            topo.wire.send(conv.out_of_window(side))
            time.sleep(0.05)
        arrived |= any(TCP in f and bytes(f[TCP].payload).startswith(b"forged") for f in frames)
    out["forged out-of-window segment (INVALID)"] = "allowed" if arrived else "blocked"
    return out
