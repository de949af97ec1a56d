"""Start a server program in a lab host and wait until it is really listening.

``host.popen`` starts a process; it does not know when the server is ready.
Sleeping "long enough" is how flaky labs are made. Instead a server prints a
line when it listens (our modules print ``ready ...``; ``http.server`` prints
``Serving HTTP``) and we wait for exactly that — or for the process to die, in
which case its own error message is raised. After that a thread keeps reading
the output so a chatty server can never block on a full pipe.
"""

from __future__ import annotations

import collections
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from packetlab.errors import PacketlabError
from packetlab.topo import netns
from packetlab.topo.host import stop_process

if TYPE_CHECKING:
    from packetlab.topo.host import Host


class Server:
    """A program running in a lab host: its process, the line it printed when ready, its output tail."""

    def __init__(self, host: Host, proc: subprocess.Popen, ready_line: str) -> None:
        self.host, self.proc, self.ready_line = host, proc, ready_line
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._drain = threading.Thread(target=self._read, daemon=True)
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def threads(self) -> int:
        """How many threads the server process has right now (from /proc)."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("Threads:"):
                        return int(line.split()[1])
        except OSError:
            pass
        return 0

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MB — flat if it streams."""
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def stop(self) -> int:
        """SIGTERM (then SIGKILL if it lingers); returns the exit status (0 = clean exit)."""
        stop_process(self.proc)
        self._drain.join(timeout=2)
        return self.proc.returncode

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.proc.returncode}"
        return f"<Server pid={self.pid} in {self.host.name} ({state}): {self.ready_line}>"


def start(host: Host, argv: Sequence[str], *, ready: str = "ready", timeout: float = 15.0) -> Server:
    """Run `argv` in `host`; return once a line starting with `ready` appears on its output."""
    proc = host.popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=False, bufsize=0)
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    buf, seen = b"", []
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.1)
        chunk = os.read(fd, 65536) if r else b""
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            seen.append(line)
            if line.startswith(ready):
                server = Server(host, proc, line.strip())
                server.output.extend(seen)
                return server
        if r and not chunk or not r and proc.poll() is not None:
            proc.wait()
            raise PacketlabError(
                f"{' '.join(argv[:5])} exited in {host.name} before it was ready",
                cause="\n".join(seen + [buf.decode(errors="replace")]).strip()[-800:]
                or f"exit status {proc.returncode}",
                fix="read the program's message above (a port already in use? a typo in an option?)",
            )
    stop_process(proc)
    raise PacketlabError(
        f"{' '.join(argv[:5])} did not report ready within {timeout} s in {host.name}",
        cause="\n".join(seen)[-800:] or "it printed nothing",
        fix=f"does it print a line starting with {ready!r}? Python servers need -u (unbuffered) when piped",
    )


def python_module(module: str, *args: object) -> list[str]:
    """argv to run ``python -u -m module args...`` with this interpreter (the lab's venv)."""
    return [sys.executable, "-u", "-m", module, *map(str, args)]


def wait_tcp(host: Host, ip: str, port: int, timeout: float = 10.0) -> None:
    """Poll until `ip:port` accepts a TCP connection from `host` (for servers that print nothing)."""
    deadline = time.monotonic() + timeout
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    last: Exception | None = None
    while time.monotonic() < deadline:
        with netns.entered(host.namespace):
            sock = socket.socket(family, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(1)
            try:
                sock.connect((ip, port))
                return
            except OSError as exc:
                last = exc
        time.sleep(0.05)
    raise PacketlabError(
        f"nothing listens on {ip}:{port} as seen from {host.name}",
        cause=str(last),
        fix="is the server running, bound to that address, and is there a route?",
    )
