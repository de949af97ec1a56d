"""Synthetic traces with scapy: normal sessions and the four attacks the detectors know.

Each function returns a list of (frame bytes, time) in time order, the form
`Inspector.feed` and `write_pcap` take. They are for unit tests and exercises where an
exact, repeatable trace matters; the lab and the benchmark record real programs
(curl, nginx, dig, dnsmasq, ssh) between namespaces instead.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable

from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.l2 import Ether

from packetlab.tools.analyzer.export import write_pcap as write_pcap  # the tool's writer, for the tests

Frames = list[tuple[bytes, float]]
CLIENT, SERVER, RESOLVER = "10.11.0.1", "10.11.0.2", "10.11.0.53"
MACS = {CLIENT: "02:00:0b:00:00:01", SERVER: "02:00:0b:00:00:02", RESOLVER: "02:00:0b:00:00:35"}


def _eth(src: str, dst: str) -> Ether:
    return Ether(src=MACS.get(src, "02:00:0b:00:00:99"), dst=MACS.get(dst, "02:00:0b:00:00:98"))


def tcp_session(
    client: str, server: str, sport: int, dport: int, request: bytes, response: bytes, t0: float, step: float = 0.001
) -> Frames:
    """A whole TCP connection: handshake, one request, one response, FIN both ways."""
    c, s = 1000, 5000
    out: list = []

    def add(src: str, dst: str, sp: int, dp: int, flags: str, seq: int, ack: int, data: bytes = b"") -> None:
        frame = _eth(src, dst) / IP(src=src, dst=dst) / TCP(sport=sp, dport=dp, flags=flags, seq=seq, ack=ack)
        out.append((bytes(frame / data) if data else bytes(frame), t0 + step * len(out)))

    add(client, server, sport, dport, "S", c, 0)
    add(server, client, dport, sport, "SA", s, c + 1)
    add(client, server, sport, dport, "A", c + 1, s + 1)
    add(client, server, sport, dport, "PA", c + 1, s + 1, request)
    add(server, client, dport, sport, "PA", s + 1, c + 1 + len(request), response)
    add(client, server, sport, dport, "FA", c + 1 + len(request), s + 1 + len(response))
    add(server, client, dport, sport, "FA", s + 1 + len(response), c + 2 + len(request))
    add(client, server, sport, dport, "A", c + 2 + len(request), s + 2 + len(response))
    return out


def http_session(t0: float, *, sport: int = 40000, dport: int = 8080, host: str = "lab.test") -> Frames:
    req = f"GET /index.html HTTP/1.1\r\nHost: {host}\r\nUser-Agent: curl/7.88.1\r\n\r\n".encode()
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    return tcp_session(CLIENT, SERVER, sport, dport, req, resp, t0)


def ssh_session(t0: float, *, sport: int = 40100, dport: int = 2222) -> Frames:
    return tcp_session(CLIENT, SERVER, sport, dport, b"SSH-2.0-OpenSSH_9.2p1\r\n", b"SSH-2.0-OpenSSH_9.2p1\r\n", t0)


def dns_exchange(t0: float, name: str, *, answer: str | None = "10.11.0.2", sport: int = 33333) -> Frames:
    """One query from the client and the resolver's answer (NXDOMAIN when `answer` is None)."""
    q = _eth(CLIENT, RESOLVER) / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=sport, dport=53)
    r = _eth(RESOLVER, CLIENT) / IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=sport)
    query = DNS(id=sport & 0xFFFF, rd=1, qd=DNSQR(qname=name))
    if answer is None:
        reply = DNS(id=sport & 0xFFFF, qr=1, rd=1, ra=1, rcode=3, qd=DNSQR(qname=name))
    else:
        reply = DNS(id=sport & 0xFFFF, qr=1, rd=1, ra=1, qd=DNSQR(qname=name), an=DNSRR(rrname=name, rdata=answer))
    return [(bytes(q / query), t0), (bytes(r / reply), t0 + 0.002)]


def ping(t0: float, count: int = 3) -> Frames:
    out: Frames = []
    for i in range(count):
        req = _eth(CLIENT, SERVER) / IP(src=CLIENT, dst=SERVER) / ICMP(type=8, id=7, seq=i) / (b"p" * 56)
        rep = _eth(SERVER, CLIENT) / IP(src=SERVER, dst=CLIENT) / ICMP(type=0, id=7, seq=i) / (b"p" * 56)
        out += [(bytes(req), t0 + i), (bytes(rep), t0 + i + 0.0005)]
    return out


def normal_traffic(t0: float = 1_700_000_000.0) -> Frames:
    """What a lab's normal minute looks like: web pages, names resolved, an SSH login, pings."""
    frames: Frames = []
    t = t0
    for i in range(10):
        frames += dns_exchange(t, f"host{i}.lab.test", sport=33000 + i)
        frames += http_session(t + 0.01, sport=41000 + i)
        t += 0.5
    frames += dns_exchange(t, "missing.lab.test", answer=None, sport=34000)
    frames += ssh_session(t + 0.1)
    frames += ping(t + 0.2)
    return merge(frames)


def port_scan(t0: float, ports: Iterable[int] = range(1, 101), *, scanner: str = "10.11.0.66") -> Frames:
    """A SYN scan: one SYN per port, the target answers RST (closed) or SYN-ACK (open: 22, 80)."""
    out: Frames = []
    for i, port in enumerate(ports):
        t = t0 + i * 0.002
        syn = _eth(scanner, SERVER) / IP(src=scanner, dst=SERVER) / TCP(sport=50000, dport=port, flags="S", seq=1)
        answer = "SA" if port in (22, 80) else "RA"
        rep = _eth(SERVER, scanner) / IP(src=SERVER, dst=scanner) / TCP(sport=port, dport=50000, flags=answer, ack=2)
        out += [(bytes(syn), t), (bytes(rep), t + 0.0005)]
    return out


def syn_flood(t0: float, count: int = 500, *, dport: int = 8080, seed: int = 11) -> Frames:
    """SYNs from spoofed random sources to one port; no handshake ever completes."""
    rnd = random.Random(seed)
    out: Frames = []
    for i in range(count):
        src = f"198.51.100.{rnd.randrange(1, 255)}"
        f = _eth(src, SERVER) / IP(src=src, dst=SERVER) / TCP(sport=rnd.randrange(1024, 65535), dport=dport, flags="S")
        out.append((bytes(f), t0 + i * 0.001))
    return out


def udp_flood(t0: float, count: int = 6000, *, dport: int = 9) -> Frames:
    frame = bytes(_eth(CLIENT, SERVER) / IP(src=CLIENT, dst=SERVER) / UDP(sport=12345, dport=dport) / (b"\0" * 18))
    return [(frame, t0 + i * 0.0001) for i in range(count)]


def dns_tunnel(t0: float, count: int = 20, *, domain: str = "tunnel.example", seed: int = 3) -> Frames:
    """Data smuggled in query names: base32 chunks of random bytes under one domain, as iodine does."""
    rnd = random.Random(seed)
    out: Frames = []
    for i in range(count):
        chunk = base64.b32encode(bytes(rnd.randrange(256) for _ in range(35))).decode().rstrip("=").lower()
        out += dns_exchange(t0 + i * 0.05, f"{chunk}.{domain}", answer="10.11.0.99", sport=35000 + i)
    return out


def merge(*traces: Iterable[tuple[bytes, float]]) -> Frames:
    """One trace, in time order."""
    return sorted((f for trace in traces for f in trace), key=lambda f: f[1])
