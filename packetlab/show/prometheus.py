"""Prometheus text exposition (format 0.0.4): the one writer, its reader, and a tiny /metrics endpoint.

The firewall and the load balancer both expose their counters this way (that
is how people would scrape them). Each builds `MetricFamily` objects and
`exposition` writes them: ``# HELP`` and ``# TYPE`` once per family, then its
samples, with label values escaped as the format requires (backslash,
double quote and newline) so a rule called ``say "hi"`` cannot break a scrape.
`parse_samples` reads the text back (the tests and the labs check our own
output with it). `serve_metrics` answers GET /metrics from a render callback;
`namespace` binds the listening socket inside a lab namespace, so a scraper
there (or `curl` via `host.run`) reaches it and nothing listens on the host.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from packetlab.topo import netns

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
KINDS = ("counter", "gauge", "untyped")

_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def escape_label_value(value: object) -> str:
    """A label value inside its double quotes: backslash, double quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text: backslash and newline escaped (a double quote is fine there)."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_labels(labels: Mapping[str, object]) -> str:
    """``{a="1",b="x"}`` in the given order, or "" for no labels."""
    for name in labels:
        if not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
            raise ValueError(f"{name!r} is not a Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, no leading __)")
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items()) + "}"


def format_value(value: float) -> str:
    """Integers as integers, floats as the shortest text that reads back the same; +Inf, -Inf, NaN."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


@dataclass
class MetricFamily:
    """One metric: its name, kind and help, and its samples (labels, value)."""

    name: str
    kind: str
    help: str
    samples: list[tuple[dict[str, object], float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not _METRIC_NAME.fullmatch(self.name):
            raise ValueError(f"{self.name!r} is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)")
        if self.kind not in KINDS:
            raise ValueError(f"metric kind {self.kind!r}: this writer knows {', '.join(KINDS)}")

    def add(self, value: float, labels: Mapping[str, object] | None = None, **more: object) -> None:
        """One sample; `labels` first (e.g. a target's), then `more`, in that order."""
        self.samples.append(({**(labels or {}), **more}, value))

    def lines(self) -> list[str]:
        out = [f"# HELP {self.name} {escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]
        out += [f"{self.name}{format_labels(labels)} {format_value(value)}" for labels, value in self.samples]
        return out


def exposition(families: Iterable[MetricFamily]) -> str:
    """The text a scraper reads: every family (also one without samples), each name once."""
    out: list[str] = []
    seen: set[str] = set()
    for family in families:
        if family.name in seen:
            raise ValueError(f"metric family {family.name} given twice: its samples must be in one family")
        seen.add(family.name)
        out += family.lines()
    return "\n".join(out) + "\n"


def parse_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(metric, frozenset of (label, value)): value} from exposition text, label values unescaped."""
    out = {}
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.fullmatch(line)
        if not m:
            raise ValueError(f"not a sample line: {line!r}")
        name, body, value = m.groups()
        labels = []
        pos = 0
        while body and pos < len(body):
            lm = _LABEL.match(body, pos)
            if not lm:
                raise ValueError(f"bad labels at {body[pos:]!r} in {line!r}")
            labels.append((lm.group(1), re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group(0)], lm.group(2))))
            pos = lm.end()
        out[(name, frozenset(labels))] = float(value)
    return out


def serve_metrics(
    render: Callable[[], str],
    host: str = "127.0.0.1",
    port: int = 9108,
    *,
    namespace: str | None = None,
    name: str = "metrics",
    probes: dict[str, Callable[[], tuple[int, dict]]] | None = None,
) -> http.server.ThreadingHTTPServer:
    """Serve GET /metrics in a background thread; call .shutdown() to stop.

    `probes` adds JSON endpoints beside it (``{"/healthz": fn}``): each fn returns
    (HTTP status, body), e.g. (503, {"ready": False, "not_ready": [...]}) for a
    readiness probe; an exception in it answers 500 with the error in the body."""
    extra = dict(probes or {})

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            path = self.path.split("?")[0]
            ctype = CONTENT_TYPE
            if path in extra:
                try:
                    code, doc = extra[path]()
                except Exception as exc:  # report, keep serving
                    code, doc = 500, {"error": f"{type(exc).__name__}: {exc}"}
                body, ctype = (json.dumps(doc) + "\n").encode(), "application/json"
            elif path != "/metrics":
                self.send_error(404, "only " + ", ".join(["/metrics", *extra]) + " live here")
                return
            else:
                try:
                    body = render().encode()
                    code = 200
                except Exception as exc:  # report, keep serving
                    body, code = f"# error: {exc}\n".encode(), 500
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    with netns.entered(namespace) if namespace else contextlib.nullcontext():
        server = http.server.ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return server
