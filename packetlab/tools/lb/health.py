"""Health checks from userspace: probe each backend, mark it down after `fall`
failures in a row and up again after `rise` successes.

A backend that goes down leaves the Maglev table (no new flows) and its
existing flows are re-balanced by the XDP program the next time they send a
packet; flows on healthy backends keep their backend — the connection table
and Maglev's minimal disruption together. Probes run from the load
balancer's namespace, like a real LB's, so they test the same path the
forwarded traffic takes.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field

from packetlab.tools.lb.config import HealthCheck
from packetlab.topo import netns


@dataclass
class ProbeResult:
    ok: bool
    detail: str
    seconds: float


@dataclass
class BackendHealth:
    """Rise/fall bookkeeping of one backend."""

    up: bool = True
    successes: int = 0
    failures: int = 0
    last: ProbeResult | None = None
    changes: int = 0
    history: list[bool] = field(default_factory=list)

    def record(self, result: ProbeResult, check: HealthCheck) -> bool:
        """Feed one probe result; True if the up/down state changed."""
        self.last = result
        self.history = (self.history + [result.ok])[-20:]
        if result.ok:
            self.successes += 1
            self.failures = 0
            if not self.up and self.successes >= check.rise:
                self.up = True
                self.changes += 1
                return True
        else:
            self.failures += 1
            self.successes = 0
            if self.up and self.failures >= check.fall:
                self.up = False
                self.changes += 1
                return True
        return False


def _socket_in(namespace: str | None, kind: int = socket.SOCK_STREAM) -> socket.socket:
    ctx = netns.entered(namespace) if namespace else contextlib.nullcontext()
    with ctx:
        return socket.socket(socket.AF_INET, kind)


def probe(namespace: str | None, address: str, port: int, check: HealthCheck) -> ProbeResult:
    """One probe of one backend (tcp: connect; http: GET check.path and expect 2xx/3xx)."""
    start = time.monotonic()
    if check.type == "none":
        return ProbeResult(True, "no check", 0.0)
    s = _socket_in(namespace)
    try:
        s.settimeout(check.timeout)
        s.connect((address, port))
        if check.type == "http":
            s.sendall(
                f"GET {check.path} HTTP/1.0\r\nHost: {address}\r\nUser-Agent: packetlab-lb-health\r\n\r\n".encode()
            )
            status = s.recv(64).decode(errors="replace").split("\r\n", 1)[0]
            parts = status.split()
            if len(parts) < 2 or not parts[1].isdigit() or not 200 <= int(parts[1]) < 400:
                return ProbeResult(False, f"HTTP answer {status!r}", time.monotonic() - start)
            return ProbeResult(True, status, time.monotonic() - start)
        return ProbeResult(True, "connected", time.monotonic() - start)
    except TimeoutError:
        return ProbeResult(False, f"timeout after {check.timeout} s", time.monotonic() - start)
    except OSError as exc:
        return ProbeResult(False, exc.strerror or str(exc), time.monotonic() - start)
    finally:
        s.close()
