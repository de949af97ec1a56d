"""Live reachability probes between pod namespaces, like the upstream e2e suite.

* ``serve`` (run as ``python -m packetlab.tools.netpol.probe serve ...`` via host.popen):
  one process opens TCP and UDP listeners *inside every pod's namespace* and
  answers each connection/datagram with the pod's name — so a probe also tells
  which pod answered (useful behind a Service VIP).
* `probe_all`: open every probe at once from the right source namespace
  (non-blocking sockets, one selector, one deadline) and report reachable or
  not. A dropped SYN or datagram shows up as a timeout.

A probe that was expected to succeed and timed out is retried (the machine may
be busy); an unexpected success is never retried — load cannot cause one.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import selectors
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from packetlab.topo import netns

Probe = tuple[str, str, str, int, str]  # (label, source namespace, destination IP, port, protocol)


@dataclass
class ProbeResult:
    ok: bool
    answer: str = ""
    error: str = ""


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {what}")


def _enter(ns_path: str) -> None:
    fd = os.open(ns_path, os.O_RDONLY)
    try:
        _setns(fd, ns_path)
    finally:
        os.close(fd)


def _bound(sock_type: int, port: int, backlog: int = 0) -> socket.socket:
    """A non-blocking socket on 0.0.0.0:`port` in this thread's namespace (a TCP one listening)."""
    s = socket.socket(socket.AF_INET, sock_type)
    tcp = sock_type == socket.SOCK_STREAM
    if tcp:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    if tcp:
        s.listen(backlog)
    s.setblocking(False)
    return s


def serve(
    pods: Sequence[tuple[str, str]], tcp_ports: Sequence[int], udp_ports: Sequence[int], echo_ports: Sequence[int] = ()
) -> None:
    """Listen in each (name, netns path) on the given ports until killed. TCP probe ports
    answer the pod's name and close; UDP ports answer each datagram with the name; TCP
    echo ports keep the connection and echo every byte (for long-lived flows)."""
    sel = selectors.DefaultSelector()
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    tcp, udp = socket.SOCK_STREAM, socket.SOCK_DGRAM
    kinds = (("tcp", tcp, tcp_ports, 128), ("echo-listen", tcp, echo_ports, 16), ("udp", udp, udp_ports, 0))
    for name, path in pods:
        _enter(path)
        for kind, sock_type, ports, backlog in kinds:
            for port in ports:
                sel.register(_bound(sock_type, port, backlog), selectors.EVENT_READ, (kind, name))
        _setns(home, "back home")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            kind, name = key.data
            sock = cast(socket.socket, key.fileobj)  # only sockets are registered
            try:
                if kind == "echo-listen":
                    conn, _ = sock.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, ("echo", name))
                elif kind == "echo":
                    data = sock.recv(65536)
                    if not data:
                        sel.unregister(sock)
                        sock.close()
                    else:
                        sock.sendall(data)
                elif kind == "tcp":
                    conn, _ = sock.accept()
                    conn.setblocking(True)
                    conn.settimeout(1)
                    try:
                        conn.sendall(f"{name}\n".encode())
                    finally:
                        conn.close()
                else:
                    data, addr = sock.recvfrom(2048)
                    sock.sendto(f"{name}\n".encode(), addr)
            except OSError:
                continue


def probe_all(probes: Sequence[Probe], *, timeout: float = 1.5) -> dict[str, ProbeResult]:
    """Run every probe concurrently; {label: ProbeResult}."""
    sel = selectors.DefaultSelector()
    results: dict[str, ProbeResult] = {}
    pending: dict[int, tuple[socket.socket, str, str, bytes]] = {}
    by_ns: dict[str, list[Probe]] = {}
    for p in probes:
        by_ns.setdefault(p[1], []).append(p)
    for ns, items in by_ns.items():
        with netns.entered(ns):
            socks = [
                (p, socket.socket(socket.AF_INET, socket.SOCK_STREAM if p[4] == "TCP" else socket.SOCK_DGRAM))
                for p in items
            ]
        for (label, _, ip, port, proto), s in socks:
            s.setblocking(False)
            if proto == "TCP":
                err = s.connect_ex((ip, port))
                if err not in (0, errno.EINPROGRESS):
                    results[label] = ProbeResult(False, error=os.strerror(err))
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_WRITE | selectors.EVENT_READ, label)
                pending[s.fileno()] = (s, label, "connect", b"")
            else:
                try:
                    s.connect((ip, port))
                    s.send(b"probe")
                except OSError as exc:
                    results[label] = ProbeResult(False, error=str(exc))
                    s.close()
                    continue
                sel.register(s, selectors.EVENT_READ, label)
                pending[s.fileno()] = (s, label, "udp", b"")
    deadline = time.monotonic() + timeout
    while pending and (left := deadline - time.monotonic()) > 0:
        for key, _events in sel.select(left):
            s, label, state, buf = pending[key.fd]
            try:
                if state == "connect":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    sel.modify(s, selectors.EVENT_READ, label)
                    pending[key.fd] = (s, label, "read", b"")
                    continue
                data = s.recv(256)
                if state == "read" and data and not data.endswith(b"\n"):
                    pending[key.fd] = (s, label, "read", buf + data)
                    continue
                results[label] = ProbeResult(True, (buf + data).decode(errors="replace").strip())
            except BlockingIOError:
                continue
            except OSError as exc:
                results[label] = ProbeResult(False, error=exc.strerror or str(exc))
            sel.unregister(s)
            s.close()
            del pending[key.fd]
    for s, label, state, _ in pending.values():
        results[label] = ProbeResult(False, error="timeout" if state != "read" else "no answer after connect")
        sel.unregister(s)
        s.close()
    sel.close()
    return results


def probe_matrix(
    probes: Sequence[Probe], expected: Mapping[str, bool] | None = None, *, timeout: float = 1.5, retries: int = 2
) -> dict[str, ProbeResult]:
    """probe_all, then re-probe (with more time) those expected reachable that were not."""
    results = probe_all(probes, timeout=timeout)
    for attempt in range(retries):
        again = [p for p in probes if expected is not None and expected.get(p[0]) and not results[p[0]].ok]
        if not again:
            break
        results.update(probe_all(again, timeout=timeout * (attempt + 2)))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m packetlab.tools.netpol.probe")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve", help="answer TCP/UDP probes in pod namespaces")
    p.add_argument("--pod", action="append", default=[], help="NAME=NETNS_PATH (repeat)")
    p.add_argument("--tcp", default="80,81")
    p.add_argument("--udp", default="80,81")
    p.add_argument("--echo", default="", help="TCP echo ports (connections stay open)")
    args = parser.parse_args(argv)
    pods = [tuple(item.split("=", 1)) for item in args.pod]
    ports = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    serve(pods, ports(args.tcp), ports(args.udp), ports(args.echo))
    return 0


if __name__ == "__main__":
    sys.exit(main())
