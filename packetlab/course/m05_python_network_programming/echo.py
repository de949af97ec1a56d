"""Echo servers three ways — the same job, three models of waiting for I/O.

* ``threads``   — blocking sockets, one thread per client. Simple; each idle
                  client costs a thread (stack, scheduler work).
* ``selectors`` — one thread, non-blocking sockets, and the kernel's readiness
                  API (epoll on Linux, through `selectors.DefaultSelector`).
* ``asyncio``   — the same event loop idea with coroutines on top.
* ``--udp``     — a datagram echo: no connections, one ``recvfrom`` loop.

Run one inside a lab host (the lab stops it when it closes)::

    srv = launch.start(h2, [sys.executable, "-m", "packetlab.course.m05_python_network_programming.echo", "--mode", "selectors", "--port", "7000"])

Each prints one ``ready ...`` line when it listens and exits with status 0 on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import selectors
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import cast

MODES = ("threads", "selectors", "asyncio")


def listen_tcp(bind: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening TCP socket (SO_REUSEADDR so a restarted server can bind at once)."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((bind, port))
    sock.listen(backlog)
    return sock


# ---- blocking: one thread per connection -------------------------------------------------
def _echo_blocking(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):  # blocks until data arrives; b"" means the peer closed
            conn.sendall(data)  # blocks until the kernel took every byte


def serve_threads(listener: socket.socket) -> None:
    """accept() blocks; every client gets a thread that blocks in recv()."""
    while True:
        conn, _addr = listener.accept()
        threading.Thread(target=_echo_blocking, args=(conn,), daemon=True).start()


# ---- non-blocking: one thread, epoll -------------------------------------------------------
# --8<-- [start:selectors]
def serve_selectors(listener: socket.socket) -> None:
    """One loop: ask the kernel which sockets are ready, then only do what won't block."""
    sel = selectors.DefaultSelector()  # EpollSelector on Linux
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ, None)
    pending: dict[socket.socket, bytearray] = {}  # bytes received but not yet sent back
    while True:
        for key, events in sel.select():
            sock = cast(socket.socket, key.fileobj)  # only sockets are registered
            if sock is listener:
                conn, _addr = listener.accept()
                conn.setblocking(False)
                pending[conn] = bytearray()
                sel.register(conn, selectors.EVENT_READ, None)
                continue
            buf = pending[sock]
            if events & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    data = b""
                if not data:  # peer closed (or reset): forget it
                    sel.unregister(sock)
                    del pending[sock]
                    sock.close()
                    continue
                buf += data
            if buf:
                try:
                    sent = sock.send(buf)  # may take only part of it: keep the rest
                except BlockingIOError:
                    sent = 0
                except ConnectionError:
                    sel.unregister(sock)
                    del pending[sock]
                    sock.close()
                    continue
                del buf[:sent]
            # wait for "writable" only while something is left to send, else epoll spins
            want = selectors.EVENT_READ | (selectors.EVENT_WRITE if buf else 0)
            if key.events != want:
                sel.modify(sock, want, None)


# --8<-- [end:selectors]


# ---- asyncio ------------------------------------------------------------------------------
async def _echo_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()  # back-pressure: wait while the buffer is full
    except ConnectionError:
        pass
    finally:
        writer.close()


async def serve_asyncio(listener: socket.socket, ready: Callable[[], None]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(_echo_stream, sock=listener)
    ready()
    async with server:
        await stop.wait()


# ---- UDP -------------------------------------------------------------------------------------
def serve_udp(bind: str, port: int, ready: Callable[[], None]) -> None:
    """Datagrams: each recvfrom() is one whole message, and says who sent it."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, port))
        ready()
        while True:
            data, peer = sock.recvfrom(65535)
            sock.sendto(data, peer)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m packetlab.course.m05_python_network_programming.echo", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--mode", choices=MODES, default="selectors")
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=7000)
    ap.add_argument("--udp", action="store_true", help="datagram echo instead of TCP")
    args = ap.parse_args(argv)

    def ready() -> None:
        print(f"ready {'udp' if args.udp else 'tcp'} {args.mode} {args.bind}:{args.port}", flush=True)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # blocking modes: leave accept()/select()
    try:
        if args.udp:
            serve_udp(args.bind, args.port, ready)
            return 0
        listener = listen_tcp(args.bind, args.port)
        if args.mode == "asyncio":
            asyncio.run(serve_asyncio(listener, ready))
            return 0
        ready()
        (serve_threads if args.mode == "threads" else serve_selectors)(listener)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
