"""Capture a realistic mix of frames between two lab hosts, for parsing and benchmarks.

Real traffic, not synthesised: TCP echo connections (handshakes, data with
timestamp options, FINs), UDP request/response datagrams, a few pings, and
some 802.1Q-tagged frames — captured with the raw-socket `Sniffer` on the
server's interface, both directions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packetlab.course.m05_python_network_programming import clients, load
from packetlab.course.m05_python_network_programming.sniffer import Captured, Sniffer
from packetlab.topo import servers as launch

if TYPE_CHECKING:
    from packetlab.topo.host import Host


def capture_mix(
    client: Host,
    server: Host,
    server_ip: str,
    *,
    frames: int = 3000,
    tcp_port: int = 7000,
    udp_port: int = 7001,
    udp_datagrams: int = 100,
    vlan_frames: int = 20,
    client_dev: str = "eth0",
    server_dev: str = "eth0",
) -> list[Captured]:
    """Generate traffic from `client` to echo servers on `server` until about `frames`
    frames are captured on `server_dev`; returns the captured frames (at most `frames`).
    `client_dev` and `server_dev` must be the two ends of one link (for the tagged frames)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether

    tcp = launch.start(
        server,
        launch.python_module(
            "packetlab.course.m05_python_network_programming.echo", "--mode", "asyncio", "--port", tcp_port
        ),
    )
    udp = launch.start(
        server,
        launch.python_module("packetlab.course.m05_python_network_programming.echo", "--udp", "--port", udp_port),
    )
    try:
        with Sniffer(server, server_dev, limit=frames) as cap:
            client.ping(server_ip, count=3, interval=0.01)
            for n in range(udp_datagrams):
                clients.udp_exchange(client, server_ip, udp_port, b"udp-%04d" % n + bytes(n % 200))
            tagged = (
                Ether(dst=server.mac(server_dev), src=client.mac(client_dev))
                / Dot1Q(vlan=42, prio=5)
                / IP(src="10.42.0.1", dst="10.42.0.2")
                / UDP(sport=4242, dport=4242)
                / b"tagged"
            )
            client.send(tagged, client_dev, count=vlan_frames)
            # each request and each echo is one frame (no delayed ACKs on a busy echo), plus handshakes
            per_round = max(1, (frames - len(cap.frames)) // 2)
            while len(cap.frames) < frames:
                load.measure(client, server_ip, tcp_port, clients=10, requests=max(1, per_round // 10))
                per_round = max(1, (frames - len(cap.frames)) // 2)
    finally:
        tcp.stop()
        udp.stop()
    return cap.frames[:frames]
