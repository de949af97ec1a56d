"""A tiny TCP server that answers with the address it sees you from — how NAT becomes visible."""

from __future__ import annotations

import contextlib
import socket
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packetlab.topo import servers as launch

if TYPE_CHECKING:
    from packetlab.topo.host import Host
    from packetlab.topo.servers import Server

WHOAMI_PORT = 8000


# ---- the whoami service ----------------------------------------------------------------------


def whoami_serve(port: int, bind: str = "0.0.0.0") -> None:
    """Answer every TCP connection with "<my address>:<port> sees <peer address>:<port>"
    (blocking; runs inside a lab namespace via Host.popen)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((bind, port))
    srv.listen(64)
    print(f"whoami listening on {bind}:{port}", flush=True)
    while True:
        conn, peer = srv.accept()
        with conn:
            me = conn.getsockname()
            conn.sendall(f"{me[0]}:{me[1]} sees {peer[0]}:{peer[1]}\n".encode())


def start_whoami(host: Host, port: int = WHOAMI_PORT, timeout: float = 10) -> Server:
    """Start the whoami service in `host` (stopped with the lab) and wait until it listens."""
    return launch.start(
        host,
        launch.python_module("packetlab.course.m02_nat_and_routing.whoami", "whoami", port),
        ready="whoami listening",
        timeout=timeout,
    )


@dataclass
class WhoamiAnswer:
    server: str  # address:port the server answered on
    seen: str  # address:port the server saw us as

    @property
    def seen_ip(self) -> str:
        return self.seen.rsplit(":", 1)[0]


def whoami(
    host: Any, ip: str, port: int = WHOAMI_PORT, *, source: str | None = None, timeout: float = 2
) -> WhoamiAnswer | None:
    """Connect from `host` (optionally from address `source`) and read who the server saw;
    None if the connection failed."""
    from packetlab.topo import netns

    with netns.entered(host.namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        if source:
            sock.bind((source, 0))
        sock.connect((ip, port))
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(200)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    finally:
        sock.close()
    parts = data.decode().split()
    return WhoamiAnswer(parts[0], parts[2]) if len(parts) == 3 else None


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "whoami":
        with contextlib.suppress(KeyboardInterrupt):
            whoami_serve(int(argv[1]), argv[2] if len(argv) > 2 else "0.0.0.0")
        return 0
    print("usage: python -m packetlab.course.m02_nat_and_routing.whoami whoami PORT [BIND]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
