"""A tiny Prometheus endpoint: GET /metrics answered from a render callback.

The firewall and the load balancer both expose their counters this way
(that is how people would scrape them); one server serves both. `namespace`
binds the listening socket inside a lab namespace, so a scraper there (or
`curl` via `host.run`) reaches it and nothing listens on the host.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def serve_metrics(
    render: Callable[[], str],
    host: str = "127.0.0.1",
    port: int = 9108,
    *,
    namespace: str | None = None,
    name: str = "metrics",
) -> http.server.ThreadingHTTPServer:
    """Serve GET /metrics in a background thread; call .shutdown() to stop."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404, "only /metrics lives here")
                return
            try:
                body = render().encode()
                code = 200
            except Exception as exc:  # report, keep serving
                body, code = f"# error: {exc}\n".encode(), 500
            self.send_response(code)
            self.send_header("Content-Type", CONTENT_TYPE)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    from packetlab.topo import netns

    with netns.entered(namespace) if namespace else contextlib.nullcontext():
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return server
