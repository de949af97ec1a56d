"""Start the JupyterLab server exactly as a learner does — ``make lab`` — for tests.

The server is the ``lab`` target of the Makefile (same command, same flags, same
root dir ``labs/``), on a free port with a token of our own. Only its settings
and workspaces live in a fresh temporary folder (``JUPYTERLAB_SETTINGS_DIR``,
``JUPYTERLAB_WORKSPACES_DIR``), so a test run neither reads nor changes root's
own JupyterLab state, and can switch off what a test must not have:

- autosave (a notebook left open for minutes would be saved into ``labs/``),
- the news/update-check toasts (they ask to fetch from the internet).

Stopping kills only what was started: ``make``'s process group, then any of
the server's descendants (its kernels run in their own sessions) still alive.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packetlab.paths import REPO_ROOT
from packetlab.topo.servers import startup_scale
from packetlab.topo.state import is_alive, process_start_time

# JupyterLab user settings for the test server: {plugin id: settings}.
TEST_SETTINGS: dict[str, dict[str, Any]] = {
    "@jupyterlab/docmanager-extension:plugin": {"autosave": False},
    "@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False},
}


# Jupyter server configuration for the test server (its own JUPYTER_CONFIG_DIR, so root's
# ~/.jupyter is not read): expose the app as window.jupyterapp, so a test can read each cell's
# execution count from the notebook model (a collapsed cell shows none on the page).
TEST_SERVER_CONFIG: dict[str, Any] = {"LabApp": {"expose_app_in_browser": True}}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def descendants(pid: int) -> list[int]:
    """Every live descendant of `pid` (children first), read from /proc."""
    found, todo = [], [pid]
    while todo:
        for child in _children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class LabServer:
    """A running ``make lab``: where it answers and how to reach its REST API."""

    proc: subprocess.Popen
    port: int
    token: str
    log: Path

    def url(self, path: str) -> str:
        """Browser URL for `path` (e.g. ``lab/tree/x.ipynb``), logged in with the token."""
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path.lstrip('/')}{sep}token={self.token}"

    def api(self, path: str, method: str = "GET", timeout: float = 10) -> Any:
        """Call the server's REST API (``api/...``); returns the decoded JSON (None if empty)."""
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/{path.lstrip('/')}",
            method=method,
            headers={"Authorization": f"token {self.token}"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as r:
            body = r.read()
        return json.loads(body) if body else None

    def kernel_pids(self) -> list[int]:
        """PIDs of the kernels the server runs (not counting what a kernel itself started)."""
        return [
            p
            for p in descendants(self.proc.pid)
            if b"ipykernel" in _cmdline(p) and b"ipykernel" not in _cmdline(_parent(p))
        ]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _write_settings(folder: Path, settings: dict[str, dict[str, Any]]) -> None:
    for plugin, values in settings.items():
        package, name = plugin.rsplit(":", 1)
        path = folder / package / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


@contextmanager
def make_lab(
    log: Path, settings: dict[str, dict[str, Any]] | None = None, start_timeout: float = 180
) -> Iterator[LabServer]:
    """Run ``make lab`` on a free port with a fresh token and private settings; stop it afterwards.

    Everything it prints (provisioning check, server and kernel logs) goes to `log`,
    which outlives the server so a failure can be read afterwards. Waits until
    ``/api/status`` answers (`start_timeout` s x PACKETLAB_STARTUP_SCALE), or fails
    with the tail of that log.
    """
    port, token = free_port(), secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="packetlab-jupyterlab-") as tmp:
        state = Path(tmp)
        _write_settings(state / "settings", TEST_SETTINGS if settings is None else settings)
        (state / "config").mkdir()
        (state / "config" / "jupyter_server_config.json").write_text(json.dumps(TEST_SERVER_CONFIG))
        log.parent.mkdir(parents=True, exist_ok=True)
        # a learner's own `make lab`: nothing inherited from an outer make (make test's flags)
        outer_make = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
        env = {
            **{k: v for k, v in os.environ.items() if k not in outer_make},
            "JUPYTER_TOKEN": token,
            "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
            "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
            "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
            "JUPYTER_CONFIG_DIR": str(state / "config"),
        }
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                ["make", "-s", "lab", f"JUPYTER_PORT={port}"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = LabServer(proc, port, token, log)
        try:
            start_timeout *= startup_scale()
            deadline = time.monotonic() + start_timeout
            while True:
                try:
                    server.api("api/status", timeout=2)
                    break
                except (OSError, urllib.error.URLError):
                    if proc.poll() is not None:
                        raise RuntimeError(
                            f"`make lab` exited with {proc.returncode} before JupyterLab answered:\n{server.log_tail()}"
                        ) from None
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"JupyterLab (make lab) did not answer on port {port} within "
                            f"{start_timeout:.0f} s:\n{server.log_tail()}"
                        ) from None
                    time.sleep(0.5)
            yield server
        finally:
            stop(server)


def stop(server: LabServer, grace: float = 30) -> None:
    """Stop the server (SIGTERM to make's process group: JupyterLab then shuts its kernels
    down), then SIGKILL whatever it had started and is still alive after `grace` seconds."""
    started = {
        p: t for p in [server.proc.pid, *descendants(server.proc.pid)] if (t := process_start_time(p)) is not None
    }
    try:
        os.killpg(server.proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(is_alive(p, t) for p, t in started.items()):
        time.sleep(0.2)
    for pid, t in started.items():  # same pid and start time: still the process we started
        if is_alive(pid, t):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        server.proc.wait(10)
    except subprocess.TimeoutExpired:
        pass
