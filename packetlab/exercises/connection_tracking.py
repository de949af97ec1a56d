"""Module 03 · connection tracking: the lab's topology and the checks.

Topology: client (10.0.1.10) — router — server (10.0.2.10). The router is the
only namespace whose conntrack we read; the end hosts' own TCP stacks are
silenced for the crafted port so scapy can play both ends of a conversation.

Every check replays its scenario on the real router with a fresh 5-tuple and
compares the kernel's verdict with the answer.
"""
from __future__ import annotations

import errno
import itertools
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..conntrack import CtStateCounters, LabWire, TcpConversation, kernel_entry, silence_kernel
from . import CheckFailed, graded, passed, require, unanswered
from .nat_and_routing import start_whoami, wait_links_up

CLIENT, SERVER = "10.0.1.10", "10.0.2.10"
ROUTER_LAN, ROUTER_DMZ = "10.0.1.1", "10.0.2.1"
CRAFT_PORT = 7777          # the server port of crafted conversations (end hosts silenced for it)
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
    start_whoami(server, 80)      # real TCP services on both ends, for the firewall tests
    start_whoami(client, 80)
    return CtTopology(lab, client, router, server, wire, CtStateCounters(router))


def udp_probe(host: Any, ip: str, port: int, payload: bytes = b"ping", timeout: float = 1.0) -> str:
    """Send one UDP datagram from `host` on a connected socket and report what came back:
    'reply', 'refused' (an ICMP port unreachable arrived) or 'timeout'."""
    from .. import netns
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


# ---- exercise 1: the state after each segment -------------------------------------------------

#: the conversation of exercise 1 (note who closes first)
CLOSE_SEQUENCE = (("SYN", "client", "S"), ("SYN/ACK", "server", "SA"), ("ACK", "client", "A"),
                  ("FIN", "server", "FA"), ("ACK", "client", "A"), ("FIN", "client", "FA"),
                  ("ACK", "server", "A"))


@graded('list the seven conntrack states of the close sequence yourself as answer and run this check again')
def check_state_sequence(topo: CtTopology, answer: Any) -> bool:
    """Exercise 1: predict the router's TCP state after each segment of CLOSE_SEQUENCE."""
    ex = "Exercise 1 (predict the TCP states)"
    hint = ("conntrack's states are a middlebox's view: FIN_WAIT means 'a FIN was seen' from either side, "
            "CLOSE_WAIT 'that FIN was acknowledged', LAST_ACK 'FINs both ways', TIME_WAIT 'the last FIN acknowledged'")
    if unanswered(answer) or not isinstance(answer, (list, tuple)) or len(answer) != len(CLOSE_SEQUENCE):
        raise CheckFailed(ex, f"answer must be a list of {len(CLOSE_SEQUENCE)} state names, one per segment", hint)
    conv = topo.conversation()
    truth = []
    for _label, side, flags in CLOSE_SEQUENCE:
        topo.counters.delta()
        topo.wire.send(conv.segment(side, flags))
        topo.counters.settle()
        entry = kernel_entry(topo.router, conv_tuple(conv))
        truth.append(entry.state if entry else "(none)")
    wrong = [f"after {lbl} ({side}) you said {a!r}, the kernel says {t}"
             for (lbl, side, _), a, t in zip(CLOSE_SEQUENCE, answer, truth)
             if str(a).strip().upper().replace(" ", "_") != t]
    require(not wrong, ex, "; ".join(wrong[:3]) + (" ..." if len(wrong) > 3 else ""), hint)
    return passed(ex, " -> ".join(truth))


def conv_tuple(conv: TcpConversation) -> Any:
    from ..conntrack import PROTO_TCP, FlowTuple
    return FlowTuple(PROTO_TCP, conv.ip["client"], conv.ip["server"], conv.port["client"], conv.port["server"])


# ---- exercise 2: NEW, ESTABLISHED, RELATED or INVALID? -------------------------------------------

#: the packets of exercise 2, in the order they are sent
CLASSIFY_CASES = (
    "a: the client's SYN to a port it never used",
    "b: the server's SYN/ACK answering it",
    "c: an ICMP port unreachable the server returns for a client UDP datagram",
    "d: a SYN/ACK from the client for a connection nobody opened",
    "e: an ACK from the client for a connection the router never saw",
    "f: a FIN (without ACK) from the client for an unknown connection",
)


@graded('classify the six packets (NEW, ESTABLISHED, RELATED, INVALID) yourself as answer and run this '
        'check again')
def check_classification(topo: CtTopology, answer: Any) -> bool:
    """Exercise 2: how does conntrack classify each packet of CLASSIFY_CASES?"""
    ex = "Exercise 2 (NEW, ESTABLISHED, RELATED or INVALID?)"
    hint = ("NEW: first packet of a connection conntrack accepts to create; ESTABLISHED: a reply, or anything after "
            "one; RELATED: an ICMP error about a tracked flow; INVALID: fits no state (bad flags, not allowed in "
            "the state). With nf_conntrack_tcp_loose=1 (the default) a lone ACK is picked up as a connection!")
    if unanswered(answer) or not isinstance(answer, (list, tuple)) or len(answer) != len(CLASSIFY_CASES):
        raise CheckFailed(ex, f"answer must be a list of {len(CLASSIFY_CASES)} of NEW/ESTABLISHED/RELATED/INVALID",
                          hint)
    truth = []
    conv = topo.conversation()
    packets = [conv.syn(), conv.synack(), None,
               topo.conversation().segment("client", "SA"),
               topo.conversation().segment("client", "A", ack=12345),
               topo.conversation().segment("client", "F")]
    for pkt in packets:
        topo.counters.delta()
        if pkt is None:     # a real UDP datagram to a closed port: the server's kernel answers
            udp_probe(topo.client, SERVER, 9)
            d = topo.counters.settle()
            truth.append("RELATED" if d.get("RELATED") else ", ".join(d) or "?")
            continue
        topo.wire.send(pkt)
        d = topo.counters.settle()
        truth.append(next(iter(d)) if len(d) == 1 else ", ".join(d) or "?")
    wrong = [f"{CLASSIFY_CASES[i][:1]}: you said {a!r}, the kernel says {t}"
             for i, (a, t) in enumerate(zip(answer, truth)) if str(a).strip().upper() != t]
    require(not wrong, ex, "; ".join(wrong), hint)
    return passed(ex, ", ".join(f"{c[:1]}={t}" for c, t in zip(CLASSIFY_CASES, truth)))


# ---- exercise 3: a stateful firewall ----------------------------------------------------------------

def _tables_in(ruleset: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s*table\s+(\w+)\s+([\w-]+)", ruleset, flags=re.M)


@graded('write the stateful forward chain yourself as answer (an nftables ruleset string) and run this '
        'check again')
def check_stateful_firewall(topo: CtTopology, ruleset: Any) -> bool:
    """Exercise 3: load the learner's ruleset on the router and test it four ways, for real."""
    ex = "Exercise 3 (a stateful firewall)"
    hint = ("in a forward chain with policy drop: accept ct state established,related; drop ct state invalid; "
            "accept ct state new only when it comes in on the client's side (iifname \"eth0\")")
    if unanswered(ruleset) or not isinstance(ruleset, str):
        raise CheckFailed(ex, "answer must be an nftables ruleset (a string)", hint)
    load_ruleset(topo, ruleset, ex, hint)
    results = firewall_behaviour(topo)
    require(results["client -> server (new TCP)"] == "allowed", ex,
            "the client cannot open a TCP connection to the server", hint)
    require(results["server -> client (new TCP)"] == "blocked", ex,
            "the server can open a connection to the client: new connections from outside must be dropped", hint)
    require(results["ICMP error back to the client (RELATED)"] == "allowed", ex,
            "the ICMP port-unreachable the server sends back never reaches the client: accept RELATED", hint)
    require(results["forged out-of-window segment (INVALID)"] == "blocked", ex,
            "a forged segment far outside the TCP window reached the client: drop ct state invalid", hint)
    return passed(ex, "; ".join(f"{k}: {v}" for k, v in results.items()))


def load_ruleset(topo: CtTopology, ruleset: str, ex: str = "ruleset", hint: str | None = None) -> None:
    """Validate `ruleset` with nft -c, delete the tables it declares, then load it on the router."""
    from ..netfilter import delete_table, nft_check
    error = nft_check(topo.router, ruleset)
    require(error is None, ex, f"nft rejects the ruleset: {error}", hint)
    for family, name in _tables_in(ruleset):
        delete_table(topo.router, family, name)
    topo.router.nft(ruleset)


def firewall_behaviour(topo: CtTopology) -> dict[str, str]:
    """Test the router's firewall with real traffic: returns allowed/blocked per case."""
    from scapy.layers.inet import TCP
    from .nat_and_routing import whoami
    out = {}
    out["client -> server (new TCP)"] = "allowed" if whoami(topo.client, SERVER, 80, timeout=1) else "blocked"
    out["server -> client (new TCP)"] = "allowed" if whoami(topo.server, CLIENT, 80, timeout=1) else "blocked"
    out["ICMP error back to the client (RELATED)"] = (
        "allowed" if udp_probe(topo.client, SERVER, 9) == "refused" else "blocked")
    conv = topo.conversation()
    topo.wire.send(conv.syn(), conv.synack(), conv.ack("client"), gap=0.01)
    arrived = False
    for side, receiver in (("server", topo.client), ("client", topo.server)):   # forged from outside and inside
        with receiver.capture("eth0", filter=f"tcp port {CRAFT_PORT}") as frames:
            topo.wire.send(conv.out_of_window(side))
            time.sleep(0.05)
        arrived |= any(TCP in f and bytes(f[TCP].payload).startswith(b"forged") for f in frames)
    out["forged out-of-window segment (INVALID)"] = "allowed" if arrived else "blocked"
    return out
