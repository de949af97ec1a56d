"""The module 08 lab topology and the traffic the lab and tests drive through it.

    admin (10.0.1.5, fd00:1::5) ──┐
    guest (10.0.1.200, fd00:1::c8)─┤ sw ├── srv (10.0.1.2, fd00:1::2)  ← the firewall, on srv's eth0
    (client: used by checks)      ─┘

`srv` runs small TCP listeners (22 "ssh", 80, 443, 8080) and a UDP sink on
5000, started as lab processes (`python -m packetlab.course.m08_milestone_xdp_firewall.topology serve`)
so the lab stops them. Traffic helpers open their sockets inside a host's
namespace and close them before returning.
"""

from __future__ import annotations

import argparse
import errno
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packetlab.topo import netns
from packetlab.topo import servers as launch
from packetlab.topo.socket_buffers import grow_receive_buffer, socket_drops

if TYPE_CHECKING:
    from collections.abc import Sequence

    from packetlab.topo.host import Host
    from packetlab.topo.lab import Lab
    from packetlab.topo.servers import Server

ADDRESSES = {
    "srv": ("10.0.1.2/24", "fd00:1::2/64"),
    "admin": ("10.0.1.5/24", "fd00:1::5/64"),
    "guest": ("10.0.1.200/24", "fd00:1::c8/64"),
    "client": ("10.0.1.77/24", "fd00:1::4d/64"),
}
TCP_PORTS = (22, 80, 443, 8080)
UDP_PORT = 5000


@dataclass
class FirewallLab:
    lab: Any
    srv: Any
    admin: Any
    guest: Any
    client: Any

    def ip(self, name: str, version: int = 4) -> str:
        return ADDRESSES[name][0 if version == 4 else 1].split("/")[0]


def build(lab: Lab, *, servers: bool = True) -> FirewallLab:
    """Switch + server + three clients, IPv4 and IPv6; TCP listeners on srv."""
    sw = lab.switch("sw")
    hosts = {}
    for name in ("srv", "admin", "guest", "client"):
        hosts[name] = lab.host(name)
        lab.link(hosts[name], sw, ip=list(ADDRESSES[name]))
    if servers:
        start_servers(hosts["srv"])
    return FirewallLab(lab, hosts["srv"], hosts["admin"], hosts["guest"], hosts["client"])


def start_servers(host: Host, tcp_ports=TCP_PORTS, udp_port: int | None = UDP_PORT) -> Server:
    """TCP listeners (accept and close) and a UDP sink, as one lab process."""
    argv = launch.python_module(
        "packetlab.course.m08_milestone_xdp_firewall.topology", "serve", "--tcp", ",".join(map(str, tcp_ports))
    )
    if udp_port:
        argv += ["--udp", str(udp_port)]
    return launch.start(host, argv)


def tcp_connect(host: Host, address: str, port: int, *, timeout: float = 1.0, source: str | None = None) -> bool:
    """Does a TCP handshake from `host` to address:port complete within `timeout`?"""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with netns.entered(host.namespace):
        sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((address, port))
        return True
    except TimeoutError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
            return False
        raise
    finally:
        sock.close()


def connection_mismatches(
    lab: Any, expectations: Sequence[tuple[str, str, int, bool]], *, timeout: float = 1.0
) -> list[str]:
    """Connect for real, from `lab.<who>` to address:port, for each (who, address, port, allowed);
    a line for each connection the policy and the wire disagree on (none: they agree)."""
    wrong = []
    for who, address, port, allowed in expectations:
        ok = tcp_connect(getattr(lab, who), address, port, timeout=timeout)
        if ok != allowed:
            wrong.append(
                f"{who} -> [{address}]:{port}: {'connected' if ok else 'timed out'}, "
                f"policy says {'allow' if allowed else 'drop'}"
            )
    return wrong


@dataclass
class UdpRun:
    """A paced UDP stream: how many datagrams went out and how many arrived.

    `overflowed` counts the lost datagrams that reached the receiver's socket but found
    its buffer full (the socket's drop count): the receiving thread fell behind on
    a busy machine; neither the firewall nor the wire dropped those."""

    sent: int
    received: int
    seconds: float
    lost_sequence: list[int]
    overflowed: int = 0

    @property
    def lost(self) -> int:
        return self.sent - self.received

    def losses(self) -> str:
        """Where the lost datagrams went: the receiver's full socket, or dropped before it."""
        return (
            f"{self.lost} of {self.sent} lost: {self.lost - self.overflowed} dropped on the way, "
            f"{self.overflowed} at the receiving socket, its buffer full (a receiver too slow for "
            "the stream on a busy machine, not the firewall)"
        )


def udp_stream(
    sender: Host,
    receiver: Host,
    address: str,
    *,
    port: int = 6000,
    pps: float = 1000,
    seconds: float | None = None,
    during=None,
    settle: float = 0.3,
    source: str | None = None,
) -> UdpRun:
    """Send numbered datagrams at `pps` for `seconds` (or while `during()` runs).

    The receiving socket lives in `receiver`'s namespace and counts distinct
    sequence numbers, so any datagram dropped anywhere shows up as lost.
    """
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with netns.entered(receiver.namespace):
        rx = socket.socket(family, socket.SOCK_DGRAM)
    with netns.entered(sender.namespace):
        tx = socket.socket(family, socket.SOCK_DGRAM)
    seen: set[int] = set()
    stop = threading.Event()  # sender
    done = threading.Event()  # receiver
    sent = 0
    try:
        grow_receive_buffer(rx, 4 << 20)  # so a receiver slowed by a busy machine does not drop datagrams
        rx.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", port))
        if source:
            tx.bind((source, 0))

        def receive() -> None:
            while True:
                ready, _, _ = select.select([rx], [], [], 0.05)
                if ready:
                    data = rx.recv(64)
                    if len(data) >= 8:
                        seen.add(struct.unpack("!Q", data[:8])[0])
                elif done.is_set():
                    return

        def send(until: float | None) -> None:
            nonlocal sent
            interval = 1.0 / pps
            start = time.monotonic()
            while not stop.is_set() and (until is None or time.monotonic() < until):
                tx.sendto(struct.pack("!Q", sent) + b"packetlab", (address, port))
                sent += 1
                delay = start + sent * interval - time.monotonic()
                if delay > 0:
                    time.sleep(delay)

        rthread = threading.Thread(target=receive, daemon=True)
        rthread.start()
        t0 = time.monotonic()
        if during is None:
            send(t0 + (seconds or 1.0))
        else:
            sthread = threading.Thread(target=send, args=(None,), daemon=True)
            sthread.start()
            try:
                during()
            finally:
                stop.set()
                sthread.join()
        elapsed = time.monotonic() - t0
        time.sleep(settle)
        done.set()
        rthread.join()
        overflowed = socket_drops(rx)
    finally:
        rx.close()
        tx.close()
    lost = sorted(set(range(sent)) - seen)[:20]
    return UdpRun(sent, len(seen), elapsed, lost, overflowed)


def sample_frames() -> list[tuple[str, bytes]]:
    """A few crafted frames for the lab's BPF_PROG_TEST_RUN step (to the lab's server)."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrHopByHop
    from scapy.layers.l2 import ARP, Dot1Q, Ether
    from scapy.packet import Raw

    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    srv4, srv6 = ADDRESSES["srv"][0].split("/")[0], ADDRESSES["srv"][1].split("/")[0]
    syn = TCP(sport=40000, dport=22, flags="S")
    return [
        ("SSH from admin", bytes(e / IP(src="10.0.1.5", dst=srv4) / syn)),
        ("SSH from guest", bytes(e / IP(src="10.0.1.200", dst=srv4) / syn)),
        ("HTTP, 802.1Q-tagged", bytes(e / Dot1Q(vlan=7) / IP(src="10.0.1.200", dst=srv4) / TCP(dport=80))),
        (
            "HTTP over IPv6 with a hop-by-hop header",
            bytes(e / IPv6(src="fd00:1::c8", dst=srv6) / IPv6ExtHdrHopByHop() / TCP(dport=80)),
        ),
        ("DNS query to the server", bytes(e / IP(src="10.0.1.200", dst=srv4) / UDP(dport=53))),
        ("DNS reply to the server", bytes(e / IP(src="10.0.1.200", dst=srv4) / UDP(sport=53, dport=33000))),
        ("later fragment of HTTP", bytes(e / IP(src="10.0.1.200", dst=srv4, frag=100, proto=6) / Raw(b"x" * 40))),
        ("TCP header cut short", bytes(e / IP(src="10.0.1.200", dst=srv4) / TCP(dport=80))[: 14 + 20 + 10]),
        ("ping", bytes(e / IP(src="10.0.1.200", dst=srv4) / ICMP())),
        ("ARP", bytes(e / ARP(hwsrc=e.src, psrc="10.0.1.200", pdst=srv4))),  # hwsrc given: no route lookup
    ]


def cli(*args: str) -> subprocess.CompletedProcess:
    """Run `packetlab firewall ARGS...` as a separate process (as a user would) and print its output."""
    result = subprocess.run(
        [sys.executable, "-m", "packetlab", "firewall", *args], capture_output=True, text=True, timeout=120
    )
    print(f"$ packetlab firewall {' '.join(args)}   (exit {result.returncode})")
    print((result.stdout + result.stderr).rstrip())
    return result


# ---- the server process ----------------------------------------------------------------------
def _serve(tcp_ports: list[int], udp_port: int | None) -> None:
    socks = []
    for port in tcp_ports:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # one socket for IPv4 and IPv6
        s.bind(("::", port))
        s.listen(128)
        socks.append(s)
    if udp_port:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        u.bind(("::", udp_port))
        socks.append(u)
    print("ready", flush=True)
    while True:
        ready, _, _ = select.select(socks, [], [])
        for s in ready:
            if s.type == socket.SOCK_STREAM:
                conn, _ = s.accept()
                conn.close()
            else:
                s.recv(2048)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m packetlab.course.m08_milestone_xdp_firewall.topology")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="TCP listeners and a UDP sink (run inside a lab host)")
    p.add_argument("--tcp", default=",".join(map(str, TCP_PORTS)))
    p.add_argument("--udp", type=int)
    args = parser.parse_args(argv)
    _serve([int(x) for x in args.tcp.split(",") if x], args.udp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
