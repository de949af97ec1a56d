"""A small live dashboard for a `LiveSession`, served on 127.0.0.1 only.

Three routes: ``/`` is one HTML page (no external scripts, fonts or styles: the lab machine
reaches nothing outside) that asks ``/api/state`` every second and redraws the busiest flows,
the kernel's counters — loss counters first — and the alerts; ``/metrics`` is the same
Prometheus text as ``analyze live --prometheus``. The page only reads: nothing on it changes
the analyzer.

The session is stepped by its owner (the CLI's loop, a notebook); the server reads under a
lock, so a request never sees a half-updated table.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

from packetlab.errors import UsageError
from packetlab.tools.analyzer.records import tcp_flag_str
from packetlab.tools.analyzer.session import LiveSession

LOOPBACK = ("127.0.0.1", "localhost", "::1")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>packetlab analyzer</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222 }
 table { border-collapse: collapse; margin-bottom: 1.2em } td, th { padding: 2px 10px; text-align: right }
 td:first-child, th:first-child { text-align: left; font-family: monospace }
 th { border-bottom: 1px solid #999 } .lost { color: #b00; font-weight: bold } #alerts li { color: #b00 }
</style></head>
<body>
<h1>packetlab analyzer</h1>
<p id="status">waiting for the first reading...</p>
<h2>Counters</h2><table id="counters"><tbody></tbody></table>
<h2>Busiest flows</h2>
<table id="flows"><thead><tr><th>flow</th><th>app</th><th>packets</th><th>bytes</th><th>TCP flags</th></tr></thead>
<tbody></tbody></table>
<h2>Alerts</h2><ul id="alerts"></ul>
<script>
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; }
async function refresh() {
  try {
    const s = await (await fetch("/api/state", {cache: "no-store"})).json();
    const counters = document.querySelector("#counters tbody"); counters.replaceChildren();
    for (const [name, value] of Object.entries(s.counters)) {
      const row = counters.insertRow(); row.dataset.counter = name;
      cell(row, name); cell(row, value.toLocaleString(), (name.endsWith("lost") || name === "table_full") && value ? "lost" : "");
    }
    const flows = document.querySelector("#flows tbody"); flows.replaceChildren();
    for (const f of s.flows) {
      const row = flows.insertRow(); row.dataset.flow = f.flow;
      cell(row, f.flow); cell(row, f.app); cell(row, f.packets.toLocaleString()); cell(row, f.bytes.toLocaleString()); cell(row, f.flags);
    }
    const alerts = document.querySelector("#alerts"); alerts.replaceChildren();
    for (const a of s.alerts) { const li = document.createElement("li"); li.textContent = a; alerts.appendChild(li); }
    document.querySelector("#status").textContent = `updated ${new Date().toLocaleTimeString()}; flows shown: ${s.flows.length}`;
  } catch (e) {
    document.querySelector("#status").textContent = "analyzer not reachable: " + e;
  }
}
refresh(); setInterval(refresh, 1000);
</script></body></html>
"""


def state(session: LiveSession, top: int = 15) -> dict[str, Any]:
    """What the page shows, as JSON-able data."""
    recs = sorted(session._labelled(session.monitor.records()), key=lambda r: -r.bytes)[:top]
    flows = [
        {
            "flow": str(r.key),
            "app": r.app or "-",
            "packets": r.packets,
            "bytes": r.bytes,
            "flags": tcp_flag_str(r.tcp_flags) or "-",
        }
        for r in recs
    ]
    counters = session.monitor.counters()
    counters.update({f"events_{k}": v for k, v in session.events.items()}, stored=session.stored)
    return {"counters": counters, "flows": flows, "alerts": [a.summary() for a in session.inspector.alerts]}


class Dashboard:
    """The HTTP server; ``url`` to open, ``close()`` to stop. Use ``lock`` around ``session.step()``."""

    def __init__(self, session: LiveSession, host: str = "127.0.0.1", port: int = 0) -> None:
        if host not in LOOPBACK:
            raise UsageError(
                f"the dashboard serves on loopback only, not {host}",
                cause="it has no authentication: anyone who reaches it sees every flow",
                fix="use 127.0.0.1 and an SSH tunnel (ssh -L) to look from elsewhere",
            )
        self.session, self.lock = session, threading.Lock()
        dash = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                path = self.path.split("?")[0]
                if path == "/":
                    body, ctype = PAGE.encode(), "text/html; charset=utf-8"
                elif path == "/api/state":
                    with dash.lock:
                        body, ctype = json.dumps(state(dash.session)).encode(), "application/json"
                elif path == "/metrics":
                    with dash.lock:
                        body, ctype = dash.session.metrics().encode(), "text/plain; version=0.0.4"
                else:
                    self.send_error(404, "the dashboard has /, /api/state and /metrics")
                    return
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True, name="analyzer-dashboard")
        self._thread.start()

    def step(self, timeout: float = 0.1) -> None:
        """Step the session under the lock (the page reads consistent state)."""
        with self.lock:
            self.session.step(0)
        self.session.monitor._loaded.bpf.ring_buffer_poll(max(1, int(timeout * 1000)))

    def run(self, seconds: float, tick: float = 0.2) -> None:
        import time

        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step(min(tick, max(end - time.monotonic(), 0.001)))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> Dashboard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
