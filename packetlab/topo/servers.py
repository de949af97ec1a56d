"""Start a server program in a lab host and wait until it is really ready: the one launcher.

``host.popen`` starts a process; it does not know when the server is ready.
Sleeping "long enough" is how flaky labs are made. Instead we wait for a sign
the server gives, whichever it has:

* a line on its output (our modules print ``ready ...``; ``http.server`` prints
  ``Serving HTTP``; a shell script can ``echo ready``),
* a TCP port that accepts connections (nginx, HAProxy: they print nothing),
* a unix socket that appears (containerd).

If the process dies first, or the sign does not come in time, the error shows
what the server printed. A thread reads the output all along, so a chatty
server can never block on a full pipe, and `Server.output` keeps its tail.
"""

from __future__ import annotations

import collections
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from packetlab.errors import PacketlabError
from packetlab.topo import netns
from packetlab.topo.host import stop_process

if TYPE_CHECKING:
    from packetlab.topo.host import Host

READY = "ready"  # the line our own servers print when they listen


class Server:
    """A program running in a lab host: its process, what told us it was ready, its output tail."""

    def __init__(self, host: Host, proc: subprocess.Popen, ready: str | None = None) -> None:
        self.host, self.proc = host, proc
        self.ready_line = ""  # the line (or the condition) that said "ready"
        self.output: collections.deque[str] = collections.deque(maxlen=200)
        self._ready_prefix = ready
        self._seen = threading.Event()  # the ready line was printed, or the output ended
        self._drain = threading.Thread(target=self._read, daemon=True, name=f"server-{proc.pid}")
        self._drain.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n") if isinstance(raw, bytes) else raw.rstrip("\n")
            self.output.append(line)
            if self._ready_prefix is not None and not self.ready_line and line.startswith(self._ready_prefix):
                self.ready_line = line.strip()
                self._seen.set()
        self._seen.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def text(self, limit: int = 800) -> str:
        """The tail of what the server printed (stdout and stderr), for error messages."""
        return "\n".join(self.output).strip()[-limit:]

    def threads(self) -> int:
        """How many threads the server process has right now (from /proc)."""
        return int(self._status_field("Threads:") or 0)

    def peak_rss_mb(self) -> float:
        """The process's peak resident memory so far (VmHWM), in MB — flat if it streams."""
        return int(self._status_field("VmHWM:") or 0) / 1024

    def _status_field(self, name: str) -> str | None:
        try:
            with open(f"/proc/{self.proc.pid}/status") as f:
                for line in f:
                    if line.startswith(name):
                        return line.split()[1]
        except OSError:
            pass
        return None

    def stop(self) -> int:
        """SIGTERM (then SIGKILL if it lingers); returns the exit status (0 = clean exit)."""
        stop_process(self.proc)
        self._drain.join(timeout=2)
        return self.proc.returncode

    def __repr__(self) -> str:
        state = "running" if self.running else f"exited {self.proc.returncode}"
        return f"<Server pid={self.pid} in {self.host.name} ({state}): {self.ready_line}>"


def startup_scale() -> float:
    """How much longer than usual a process may take to start: PACKETLAB_STARTUP_SCALE (default 1).

    Scales the waits for servers here, and the tests' waits for a lab's guardian, Jupyter
    kernels, JupyterLab and the browser. For machines far slower than a learner's:
    vagrant/kernel61.sh's guest emulates its CPU (no KVM), where the DHCP daemon's import and
    BPF compile alone take over 30 s."""
    try:
        return max(1.0, float(os.environ.get("PACKETLAB_STARTUP_SCALE", "1")))
    except ValueError:
        return 1.0


def start(
    host: Host,
    argv: Sequence[str],
    *,
    ready: str | None = None,
    tcp: tuple[str, int] | None = None,
    unix: str | os.PathLike | None = None,
    timeout: float = 15.0,
    fix: str | None = None,
) -> Server:
    """Run `argv` in `host`; return once it is ready, as a `Server` (``.stop()`` ends it; the lab does too).

    Ready means: a line starting with `ready` appeared on its output; with
    `tcp=(ip, port)`, that address accepts a connection from `host`; with
    `unix=path`, that socket exists. Name several and all must hold; name none
    and it is the ``ready`` line our own servers print. Raises PacketlabError
    with the server's output if it exits first or is not ready in `timeout` s;
    `fix` replaces the generic advice in that error when the caller knows better.
    """
    if ready is None and tcp is None and unix is None:
        ready = READY
    timeout *= startup_scale()
    proc = host.popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=False)
    server = Server(host, proc, ready)
    what = " ".join(str(a) for a in argv[:5])
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while True:
        line_ok = ready is None or bool(server.ready_line)
        tcp_ok = tcp is None or (last_error := _connect_error(host, *tcp)) is None
        unix_ok = unix is None or Path(unix).exists()
        if line_ok and tcp_ok and unix_ok:
            if not server.ready_line:
                server.ready_line = f"accepts TCP on {tcp[0]}:{tcp[1]}" if tcp else f"listens on {unix}"
            return server
        if proc.poll() is not None:
            server._drain.join(timeout=2)
            raise PacketlabError(
                f"{what} exited in {host.name} before it was ready",
                cause=server.text() or f"exit status {proc.returncode}, and it printed nothing",
                fix=fix or "read the program's message above (a port already in use? a typo in an option?)",
            )
        if time.monotonic() > deadline:
            server.stop()
            waited = [f"a line starting with {ready!r}"] if ready and not line_ok else []
            waited += [f"TCP {tcp[0]}:{tcp[1]} to accept ({last_error})"] if tcp and not tcp_ok else []
            waited += [f"{unix} to appear"] if unix and not unix_ok else []
            raise PacketlabError(
                f"{what} did not report ready within {timeout} s in {host.name}: waited for {' and '.join(waited)}",
                cause=server.text() or "it printed nothing",
                fix=fix
                or "does it print that line (Python servers need -u when piped) or listen there? Is the machine busy?",
            )
        if server._seen.wait(0.05):  # the line came (or the output ended): poll the rest at the same pace
            time.sleep(0.05)


def python_module(module: str, *args: object) -> list[str]:
    """argv to run ``python -u -m module args...`` with this interpreter (the lab's venv)."""
    return [sys.executable, "-u", "-m", module, *map(str, args)]


def _connect_error(host: Host, ip: str, port: int) -> OSError | None:
    """None if `ip:port` accepts a TCP connection from `host`, else why not."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with netns.entered(host.namespace):
        sock = socket.socket(family, socket.SOCK_STREAM)
    with sock:
        sock.settimeout(1)
        try:
            sock.connect((ip, port))
        except OSError as exc:
            return exc
    return None
