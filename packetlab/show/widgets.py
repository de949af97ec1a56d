"""Live counters in a notebook: poll a BPF map in the background, show it as a table.

An XDP program counts in the kernel; a notebook wants to *watch* it count.
`LiveCounter` reads a snapshot (any callable returning ``{row: {column:
int}}``) every `interval` seconds on a daemon thread and renders it into an
``ipywidgets.HTML`` table, with a per-second rate next to each counter. The
notebook cell that starts it returns at once, so traffic can be generated in
the next cells while the table updates.

It never blocks and never outlives its use: ``stop()`` (or leaving a ``with``
block) ends the thread and joins it; a failing reader (say, the program was
unloaded) stops it too. Without a notebook frontend — under nbval, in a
script, or when ipywidgets is missing — it polls the same way and simply has
nothing to draw; ``print(counter)`` always gives the text table.

    reader = array_reader(xdp, "stats", enum_labels("bpf/01-xdp-proto-counter.c", "proto"))
    with LiveCounter(reader, title="h2 eth0") as live:
        h1.ping("10.0.1.2", count=5)
        live.wait_for(lambda s: s["ICMP"]["packets"] >= 5, timeout=5)
"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from packetlab.ebpf.maps import percpu_sum
from packetlab.errors import PacketlabError

Snapshot = dict[str, dict[str, int]]


# ---- where the numbers come from ---------------------------------------------------------
def enum_labels(source: str | Path, enum: str, *, strip_prefix: bool = True) -> list[str]:
    """Names of a C enum in a bpf/ file, in value order, without the trailing ``*_MAX``.

    ``enum proto { PROTO_ARP, PROTO_ICMP, ..., PROTO_MAX }`` gives
    ``["ARP", "ICMP", ...]``. Reading the names from the C source keeps the
    map's index and the labels a notebook prints in one place.
    """
    from packetlab.ebpf.loader import resolve_source

    text = resolve_source(source).read_text()
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)
    m = re.search(rf"\benum\s+{re.escape(enum)}\s*\{{(.*?)\}}", text, re.S)
    if not m:
        raise PacketlabError(
            f"no `enum {enum}` in {source}",
            cause="the labels of a counter map are read from the C enum that indexes it",
            fix=f"declare `enum {enum} {{ A, B, ..., {enum.upper()}_MAX }};` in the program",
        )
    names: list[tuple[int, str]] = []
    value = 0
    for item in (part.strip() for part in m.group(1).split(",")):
        if not item:
            continue
        name, _, explicit = (p.strip() for p in item.partition("="))
        if explicit:
            value = int(explicit, 0)
        names.append((value, name))
        value += 1
    names = [(v, n) for v, n in names if not n.endswith("_MAX")]
    if [v for v, _ in names] != list(range(len(names))):
        raise PacketlabError(
            f"enum {enum} in {source} is not 0, 1, 2, ...",
            cause="an array map needs one label per index, without gaps",
            fix="number the enum from 0 without gaps",
        )
    labels = [n for _, n in names]
    if strip_prefix and len(labels) > 1:
        prefix = _common_prefix(labels)
        labels = [n[len(prefix) :] for n in labels]
    return labels


def _common_prefix(names: Sequence[str]) -> str:
    prefix = names[0]
    for n in names[1:]:
        while not n.startswith(prefix):
            prefix = prefix[:-1]
    return prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""


def array_reader(program: Any, map_name: str, labels: Sequence[str]) -> Callable[[], Snapshot]:
    """A reader for an array map indexed by `labels` (from an XdpAttachment or LoadedProgram).

    Each call returns ``{label: {field: int}}``: struct values keep their
    fields, a plain counter becomes ``{"packets": n}``.
    """

    def read() -> Snapshot:
        table = program.table(map_name)
        out: Snapshot = {}
        for index, label in enumerate(labels):
            value = percpu_sum(table.get(index, 0))
            out[label] = dict(value) if isinstance(value, Mapping) else {"packets": int(value)}
        return out

    return read


# ---- the live view ------------------------------------------------------------------------------
class LiveCounter:
    """Poll `read()` on a background thread and show the snapshot as a live table."""

    def __init__(
        self, read: Callable[[], Snapshot], *, interval: float = 0.5, title: str = "", display: bool = True
    ) -> None:
        if interval <= 0:
            raise PacketlabError("LiveCounter interval must be positive", fix="e.g. interval=0.5 (seconds)")
        self.read, self.interval, self.title = read, interval, title
        self.snapshot: Snapshot = {}
        self.rates: dict[str, float] = {}
        self.updates = 0
        self.error: BaseException | None = None
        self._want_display = display
        self._widget: Any = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._last: tuple[float, Snapshot] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> LiveCounter:
        """Show the widget (if there is a frontend) and start polling; returns at once."""
        if self.running:
            return self
        self.poll()  # a first snapshot before anything is drawn
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=f"LiveCounter({self.title or 'map'})", daemon=True)
        self._thread.start()
        if self._want_display:
            self._widget = _make_widget()
            if self._widget is not None:
                self._widget.value = self.render_html()
                _display(self._widget)
        return self

    def stop(self) -> Snapshot:
        """Stop polling, join the thread, take a last reading; returns the final snapshot."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=max(2.0, 4 * self.interval))
        if self.error is None:
            try:
                self.poll()
            except Exception as exc:  # the map may be gone already: keep the last good reading
                self.error = exc
        self._redraw()
        return self.snapshot

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> LiveCounter:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as exc:  # reader failed (program unloaded, lab closed): stop quietly
                self.error = exc
                break
            self._redraw()

    # -- reading ------------------------------------------------------------------------------
    def poll(self) -> Snapshot:
        """Read once now (also used by the thread); updates snapshot and rates."""
        snap = self.read()
        now = time.monotonic()
        with self._lock:
            if self._last is not None:
                then, before = self._last
                dt = max(now - then, 1e-6)
                self.rates = {
                    k: max(0.0, (v.get("packets", 0) - before.get(k, {}).get("packets", 0)) / dt)
                    for k, v in snap.items()
                }
            self._last = (now, snap)
            self.snapshot = snap
            self.updates += 1
        return snap

    def wait_for(
        self,
        predicate: Callable[[Snapshot], bool],
        *,
        timeout: float = 5.0,
        what: str = "the counters to reach the expected values",
    ) -> Snapshot:
        """Poll until `predicate(snapshot)` holds; raise a PacketlabError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            snap = self.poll()
            if predicate(snap):
                self._redraw()
                return snap
            if time.monotonic() >= deadline:
                raise PacketlabError(
                    f"timed out after {timeout:g} s waiting for {what}",
                    cause="the traffic did not arrive, or arrived on another interface",
                    fix="check that the program is attached where the traffic flows; last reading:\n"
                    + self.render_text(),
                )
            time.sleep(min(0.05, self.interval))

    # -- rendering ----------------------------------------------------------------------------
    def _columns(self) -> list[str]:
        cols: list[str] = []
        for v in self.snapshot.values():
            cols += [k for k in v if k not in cols]
        return cols

    def rows(self) -> list[list[Any]]:
        cols = self._columns()
        return [
            [name] + [values.get(c, 0) for c in cols] + [f"{self.rates.get(name, 0.0):.1f}"]
            for name, values in self.snapshot.items()
        ]

    def render_text(self) -> str:
        from packetlab.show.tables import format_table

        return format_table(["counter", *self._columns(), "packets/s"], self.rows())

    def render_html(self) -> str:
        cols = ["counter", *self._columns(), "packets/s"]
        head = "".join(
            f"<th style='text-align:{'left' if i == 0 else 'right'};padding:0 8px'>{html.escape(c)}</th>"
            for i, c in enumerate(cols)
        )
        body = "".join(
            "<tr>"
            + "".join(
                f"<td style='text-align:{'left' if i == 0 else 'right'};padding:0 8px'>"
                f"{html.escape(f'{c:,}' if isinstance(c, int) else str(c))}</td>"
                for i, c in enumerate(row)
            )
            + "</tr>"
            for row in self.rows()
        )
        state = "live" if self.running else "stopped"
        caption = html.escape(
            f"{self.title} — {state}, {self.updates} readings" if self.title else f"{state}, {self.updates} readings"
        )
        return (
            f"<table style='font-family:monospace'><caption style='text-align:left'>{caption}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        )

    def _redraw(self) -> None:
        if self._widget is not None:
            try:
                self._widget.value = self.render_html()
            except Exception:  # a closed frontend must never kill the poller
                pass

    def __str__(self) -> str:
        return self.render_text()

    def __repr__(self) -> str:
        return f"<LiveCounter {self.title or ''} {'running' if self.running else 'stopped'}, {self.updates} readings>"


def _make_widget() -> Any:
    """An ipywidgets.HTML when running in a Jupyter kernel, else None."""
    try:
        from IPython import get_ipython

        shell = get_ipython()
        if shell is None or not hasattr(shell, "kernel"):
            return None
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets.HTML()


def _display(widget: Any) -> None:
    from IPython.display import display

    display(widget)
