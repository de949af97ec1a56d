"""Checks for module 05 — Python network programming.

1. `check_line_handler`    — an asyncio handler that answers each line, many clients at once
2. `check_connect_request` — the bytes that open a CONNECT tunnel through the lab's proxy
3. `check_tcp_payload`     — slice a TCP payload out of raw bytes (IHL, data offset, total length)
4. `check_veth`            — a veth pair between two lab namespaces, built with pyroute2

Each check runs your answer against the real thing: real frames, a real server
in a lab namespace, the real proxy, the kernel's own netlink view.
"""

from __future__ import annotations

import inspect
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m05_python_network_programming.helpers import _link, edge_frames
from packetlab.topo import netns
from packetlab.topo.rtnl import iproute

if TYPE_CHECKING:
    from packetlab.topo.host import Host


EX_LINES = "Exercise 1 · an asyncio line server"
EX_CONNECT = "Exercise 2 · a CONNECT tunnel by hand"
EX_PAYLOAD = "Exercise 3 · the TCP payload, by hand"
EX_VETH = "Exercise 4 · a veth pair with pyroute2"


def _diagnose_payload(frame: bytes, got: bytes, want: bytes) -> str:
    """Name the usual mistake by recomputing the payload the way that mistake would."""
    ihl = (frame[14] & 0x0F) * 4
    end = 14 + int.from_bytes(frame[16:18], "big")
    doff = (frame[14 + ihl + 12] >> 4) * 4
    ends = (end, len(frame))
    if doff > 20 and any(got == frame[14 + ihl + 20 : e] for e in ends):
        return (
            f"the TCP header has options here (data offset {doff // 4} words = {doff} bytes): "
            "the payload starts data_offset*4 bytes into the TCP header, not 20"
        )
    wrong_doff = (frame[14 + 20 + 12] >> 4) * 4
    if ihl > 20 and any(got in (frame[34 + wrong_doff : e], frame[34 + doff : e]) for e in ends):
        return (
            f"the IPv4 header has options here (IHL {ihl // 4} words = {ihl} bytes): "
            "the TCP header starts at 14 + IHL*4, not at 14 + 20"
        )
    if got.startswith(want) and len(got) > len(want):
        return (
            f"{len(got) - len(want)} extra bytes at the end: Ethernet padding — stop at the IPv4 total length "
            "(bytes 16-17), not at the end of the frame"
        )
    return f"expected {want[:24]!r}{'...' if len(want) > 24 else ''} ({len(want)} bytes), got {got[:24]!r} ({len(got)} bytes)"


@graded(
    "write tcp_payload from the IHL, total length and data offset fields, delete the 'tcp_payload = "
    "None' line and run this check again"
)
def check_tcp_payload(fn: Callable[[bytes], bytes] | None, frames: Sequence[bytes] = ()) -> bool:
    """Run `fn` on crafted edge cases and on `frames` (untagged IPv4/TCP ones), compare with `decode`."""
    from packetlab.proto.decode import TCP, IPv4, decode

    if unanswered(fn) or not callable(fn):
        raise CheckFailed(
            EX_PAYLOAD,
            "no function given",
            "define def tcp_payload(frame: bytes) -> bytes: ... and pass it: check_tcp_payload(tcp_payload, frames)",
        )
    cases = edge_frames()
    for n, f in enumerate(frames):
        d = decode(f)
        if not d.vlans and isinstance(d.ip, IPv4) and isinstance(d.l4, TCP) and not d.truncated and not d.error:
            cases.append((f"captured frame {n} ({d.summary()})", bytes(f)))
    for name, frame in cases:
        want = decode(frame).payload
        try:
            got = fn(frame)
        except Exception as exc:
            raise CheckFailed(
                EX_PAYLOAD,
                f"your function raised {type(exc).__name__}: {exc} on the {name} frame",
                "index into the bytes object; frame[14] is the first IPv4 byte",
            ) from None
        if not isinstance(got, (bytes, bytearray, memoryview)):
            raise CheckFailed(EX_PAYLOAD, f"it returned {type(got).__name__}, not bytes", "return a slice of `frame`")
        if bytes(got) != want:
            raise CheckFailed(
                EX_PAYLOAD,
                f"wrong payload for the {name} frame: {_diagnose_payload(frame, bytes(got), want)}",
                "payload = frame[14 + IHL*4 + data_offset*4 : 14 + total_length]",
            )
    return passed(EX_PAYLOAD, f"{len(cases)} frames right, including IPv4 options, TCP options and Ethernet padding")


# ---- exercise 1: an asyncio line server -------------------------------------------------
def _line_client(
    client: Host, ip: str, port: int, lines: list[bytes], barrier: threading.Barrier, results: list, idx: int
) -> None:
    try:
        with netns.entered(client.namespace):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(3)
            sock.connect((ip, port))
            barrier.wait(timeout=10)  # every client connected before any sends
            replies: list[bytes] = []
            buf = b""
            for line in lines:
                try:
                    sock.sendall(line)
                    while b"\n" not in buf:
                        chunk = sock.recv(4096)
                        if not chunk:
                            raise ConnectionResetError
                        buf += chunk
                except (ConnectionResetError, BrokenPipeError):
                    raise ConnectionError(
                        f"the server closed the connection after {len(replies)} replies of {len(lines)}"
                    ) from None
                reply, buf = buf.split(b"\n", 1)
                replies.append(reply + b"\n")
            sock.shutdown(socket.SHUT_WR)  # "I am done": the server should close too
            try:
                closed = sock.recv(4096) == b""
            except TimeoutError:
                closed = False
            results[idx] = ("ok", replies, closed)
    except TimeoutError:
        results[idx] = ("timeout", None, False)
    except Exception as exc:
        results[idx] = ("error", str(exc) if type(exc) is ConnectionError else f"{type(exc).__name__}: {exc}", False)


@graded(
    "write the body of handle (readline, write line.upper(), drain, close), delete the 'handle = "
    "None' line and run this check again"
)
def check_line_handler(
    handler: Any, server: Host, client: Host, server_ip: str, *, port: int = 7500, clients: int = 20
) -> bool:
    """Serve `handler` in `server` (asyncio, in-process), hit it with `clients` clients at once."""
    from packetlab.course.m05_python_network_programming.inprocess import AsyncioServerThread

    require(not unanswered(handler), EX_LINES, "no handler given", "write async def handle(reader, writer): ...")
    require(
        inspect.iscoroutinefunction(handler),
        EX_LINES,
        "the handler is not a coroutine function",
        "define it with `async def handle(reader, writer):` — asyncio.start_server awaits it",
    )
    lines = [b"hello\n", b"packets are bytes\n", b"mixed Case 123\n"]
    results: list = [None] * clients
    barrier = threading.Barrier(clients)
    with AsyncioServerThread(server, handler, port) as srv:
        threads = [
            threading.Thread(
                target=_line_client, args=(client, server_ip, port, lines, barrier, results, i), daemon=True
            )
            for i in range(clients)
        ]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=20)
        seconds = time.monotonic() - t0
        errors = list(srv.errors)
    if errors:
        raise CheckFailed(
            EX_LINES,
            f"your handler raised {type(errors[0]).__name__}: {errors[0]}",
            "read the message; reader.readline() returns bytes, so compare and write bytes",
        )
    kinds = [r[0] if r else "timeout" for r in results]
    if "timeout" in kinds:
        raise CheckFailed(
            EX_LINES,
            f"{kinds.count('timeout')} of {clients} clients got no complete reply line in 3 s",
            "does each reply end with b'\\n' (readline keeps it)? and call await writer.drain() — "
            "and never block the loop (time.sleep, a blocking socket)",
        )
    bad = next((r for r in results if r[0] == "error"), None)
    if bad:
        raise CheckFailed(EX_LINES, bad[1], "keep answering until the client closes: loop while the line is not b''")
    for _kind, replies, _closed in results:
        want = [line.upper() for line in lines]
        if replies != want:
            raise CheckFailed(
                EX_LINES, f"replied {replies!r}, expected {want!r}", "each reply is the line, upper-cased"
            )
    if not all(closed for _k, _r, closed in results):
        raise CheckFailed(
            EX_LINES,
            "after the client closed its side (FIN), the server did not close the connection",
            "reader.readline() returns b'' at end of stream: leave the loop and writer.close()",
        )
    return passed(EX_LINES, f"{clients} concurrent clients × {len(lines)} lines in {seconds:.2f} s, all closed cleanly")


# ---- exercise 2: CONNECT by hand --------------------------------------------------------
@graded("write the CONNECT request bytes (request line, Host header, blank line) as answer and run this check again")
def check_connect_request(request: Any, client: Host, proxy_ip: str, proxy_port: int, target: str) -> bool:
    """Send `request` from `client` to the proxy; expect 200 and a working tunnel to `target` (an echo server)."""
    require(not unanswered(request), EX_CONNECT, "no request given", "answer = b'CONNECT host:port HTTP/1.1\\r\\n...'")
    require(
        isinstance(request, (bytes, bytearray)),
        EX_CONNECT,
        f"the request is {type(request).__name__}, not bytes",
        "sockets send bytes: write b'...' or .encode() a str",
    )
    with netns.entered(client.namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(3)
        sock.connect((proxy_ip, proxy_port))
        sock.sendall(bytes(request))
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            raise CheckFailed(
                EX_CONNECT,
                "the proxy did not answer within 3 s",
                "it waits for the end of the request head: a blank line, i.e. the request "
                "must end with b'\\r\\n\\r\\n'",
            ) from None
        status_line = head.split(b"\r\n", 1)[0]
        if not status_line.startswith(b"HTTP/1."):
            raise CheckFailed(
                EX_CONNECT,
                f"the answer is not HTTP: {status_line[:60]!r}",
                "is the request line 'CONNECT host:port HTTP/1.1'?",
            )
        parts = status_line.split(b" ", 2)
        if parts[1] != b"200":
            body = head.split(b"\r\n\r\n", 1)[1].decode(errors="replace").strip()
            raise CheckFailed(
                EX_CONNECT,
                f"the proxy answered {status_line.decode()}" + (f" — {body}" if body else ""),
                f"CONNECT takes host:port of the server to reach ({target}), "
                "not a URL, and the line ends with HTTP/1.1",
            )
        probe = b"through the tunnel\n"
        sock.sendall(probe)
        got = b""
        try:
            while len(got) < len(probe):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                got += chunk
        except TimeoutError:
            pass
        if got != probe:
            raise CheckFailed(
                EX_CONNECT,
                f"the tunnel is open but did not echo: sent {probe!r}, got {got!r}",
                f"tunnel to the echo server at {target}",
            )
    return passed(EX_CONNECT, f"tunnel through {proxy_ip}:{proxy_port} to {target} echoed {probe!r}")


@graded(
    "restart the kernel, run up to Exercise 4 and build pyx0/pyy0 yourself with AsyncIPRoute in the "
    "answer cell before this check"
)
def check_veth(a: Host, a_if: str, b: Host, b_if: str, a_ip: str, b_ip: str) -> bool:
    """Read the kernel's view over netlink: a veth pair a_if (in a) <-> b_if (in b), addressed, up, pinging."""
    for name in (a_if, b_if):
        if _link(None, name) is not None:
            raise CheckFailed(
                EX_VETH,
                f"{name} exists in the HOST's root namespace",
                f"open AsyncIPRoute(netns=host.namespace), never without netns=; remove the stray "
                f"interface with `ip link del {name}` in a root shell",
            )
    la, lb = _link(a.namespace, a_if), _link(b.namespace, b_if)
    if la is None:
        raise CheckFailed(
            EX_VETH,
            f"no interface {a_if} in {a.namespace}",
            f"async with AsyncIPRoute(netns={a.namespace!r}) as ipr: "
            f"await ipr.link('add', ifname={a_if!r}, kind='veth', peer=...)",
        )
    if lb is None:
        stray = _link(a.namespace, b_if)
        raise CheckFailed(
            EX_VETH,
            f"no interface {b_if} in {b.namespace}" + (f" (it is still in {a.namespace})" if stray else ""),
            f"create the peer in {b.namespace}: peer={{'ifname': {b_if!r}, 'net_ns_fd': {b.namespace!r}}}, "
            f"or move it: await ipr.link('set', index=..., net_ns_fd={b.namespace!r})",
        )
    kind = la.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") if la.get_attr("IFLA_LINKINFO") else None
    require(kind == "veth", EX_VETH, f"{a_if} is a {kind or 'plain'} device, not a veth", "use kind='veth'")
    require(
        la.get_attr("IFLA_LINK") == lb["index"] and lb.get_attr("IFLA_LINK") == la["index"],
        EX_VETH,
        f"{a_if} and {b_if} are not the two ends of one pair (IFLA_LINK points elsewhere)",
        "create them together: one await ipr.link('add', kind='veth', peer={...}) call",
    )
    for host, ifname, cidr, link in ((a, a_if, a_ip, la), (b, b_if, b_ip, lb)):
        have = [f"{x.get_attr('IFA_ADDRESS')}/{x['prefixlen']}" for x in _addrs(host.namespace, link["index"])]
        require(
            cidr in have,
            EX_VETH,
            f"{ifname} in {host.name} has {have or 'no IPv4 address'}, not {cidr}",
            f"await ipr.addr('add', index=idx, address={cidr.split('/')[0]!r}, prefixlen={cidr.split('/')[1]})",
        )
        require(
            link["flags"] & 1,
            EX_VETH,
            f"{ifname} in {host.name} is down",
            "await ipr.link('set', index=idx, state='up')",
        )
    ping = a.ping(b_ip.split("/")[0], count=1, timeout=2)
    require(ping.ok, EX_VETH, f"{a.name} cannot ping {b_ip} over the pair", "are both ends up, in one subnet?")
    return passed(
        EX_VETH, f"{a.namespace}/{a_if} <-> {b.namespace}/{b_if}, addressed and up; ping {ping.rtt_avg_ms} ms"
    )


def _addrs(ns: str, index: int) -> list:
    with iproute(netns=ns) as ipr:
        return list(ipr.get_addr(index=index, family=socket.AF_INET))
