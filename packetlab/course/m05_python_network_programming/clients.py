"""One-shot TCP and UDP clients whose sockets live in a lab host's namespace.

A socket belongs to the network namespace of the thread that *created* it, and
stays there: create it inside ``netns.entered(host.namespace)`` and you can use
it from anywhere in this process afterwards. That is all it takes to make the
notebook process a client "on" h1.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.errors import PacketlabError
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.topo.host import Host


def socket_in(host: Host, kind: int = socket.SOCK_STREAM, family: int = socket.AF_INET) -> socket.socket:
    """A new socket created in `host`'s network namespace."""
    with netns.entered(host.namespace):
        return socket.socket(family, kind)


def _family(ip: str) -> int:
    return socket.AF_INET6 if ":" in ip else socket.AF_INET


@dataclass
class Exchange:
    """What one request/response round trip looked like."""

    local: tuple
    remote: tuple
    sent: bytes
    received: bytes
    seconds: float

    @property
    def echoed(self) -> bool:
        return self.sent == self.received


def tcp_exchange(
    host: Host, ip: str, port: int, data: bytes, *, expect: int | None = None, timeout: float = 5.0
) -> Exchange:
    """Connect from `host`, send `data`, read `expect` bytes (default len(data)) or until EOF."""
    want = len(data) if expect is None else expect
    sock = socket_in(host, socket.SOCK_STREAM, _family(ip))
    with sock:
        sock.settimeout(timeout)
        t0 = time.perf_counter()
        try:
            sock.connect((ip, port))
            sock.sendall(data)
            got = bytearray()
            while len(got) < want:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            raise PacketlabError(
                f"no answer from {ip}:{port} (TCP) within {timeout} s, from {host.name}",
                fix="is the server running there, and listening on that address?",
            ) from None
        except ConnectionRefusedError:
            raise PacketlabError(
                f"{ip}:{port} refused the TCP connection from {host.name}",
                cause="the kernel answered with RST: nothing listens on that port",
                fix="start the server first (launch.start) and check the port",
            ) from None
        return Exchange(sock.getsockname(), (ip, port), data, bytes(got), time.perf_counter() - t0)


def udp_exchange(host: Host, ip: str, port: int, data: bytes, *, timeout: float = 2.0) -> Exchange:
    """Send one datagram from `host` and wait for one datagram back."""
    sock = socket_in(host, socket.SOCK_DGRAM, _family(ip))
    with sock:
        sock.settimeout(timeout)
        sock.connect((ip, port))  # UDP "connect": fixes the peer, so ICMP errors reach us
        t0 = time.perf_counter()
        sock.send(data)
        try:
            got = sock.recv(65535)
        except TimeoutError:
            raise PacketlabError(
                f"no datagram back from {ip}:{port} within {timeout} s, from {host.name}",
                cause="UDP has no handshake: a lost datagram just never answers",
                fix="is the UDP server running there (--udp)?",
            ) from None
        except ConnectionRefusedError:
            raise PacketlabError(
                f"{ip}:{port} answered with ICMP port unreachable",
                cause="nothing listens on that UDP port",
                fix="start the server with --udp, on that port",
            ) from None
        return Exchange(sock.getsockname(), (ip, port), data, got, time.perf_counter() - t0)


def nonblocking_demo(host: Host, ip: str, port: int) -> list[tuple[str, str, str]]:
    """Show, on a real connection, how blocking, timeout and non-blocking reads behave
    when no data is waiting. Returns (mode, what happened, after how long) rows."""
    rows = []
    sock = socket_in(host, socket.SOCK_STREAM, _family(ip))
    with sock:
        sock.connect((ip, port))  # an echo server: it sends nothing until we do
        sock.settimeout(0.2)
        t0 = time.perf_counter()
        try:
            sock.recv(100)
            outcome = "data"
        except TimeoutError:
            outcome = "TimeoutError (a blocking recv with a timeout gave up)"
        rows.append(("blocking, timeout 0.2 s", outcome, f"{(time.perf_counter() - t0) * 1000:.1f} ms"))
        sock.setblocking(False)
        t0 = time.perf_counter()
        try:
            sock.recv(100)
            outcome = "data"
        except BlockingIOError as exc:
            outcome = f"BlockingIOError errno {exc.errno} (EAGAIN): nothing to read yet"
        rows.append(("non-blocking", outcome, f"{(time.perf_counter() - t0) * 1000:.3f} ms"))
        import selectors

        with selectors.DefaultSelector() as sel:
            sel.register(sock, selectors.EVENT_READ)
            sock.send(b"ping")
            t0 = time.perf_counter()
            ready = sel.select(timeout=2)
            waited = (time.perf_counter() - t0) * 1000
            data = sock.recv(100) if ready else b""
        rows.append((f"{type(sel).__name__}.select()", f"readable, recv -> {data!r}", f"{waited:.3f} ms"))
    return rows
