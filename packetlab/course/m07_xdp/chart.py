"""A live chart of module 07's counters and the kernel-measured program run time, sampled while traffic runs."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from packetlab.course.m07_xdp.counters import CATEGORIES, protocol_counts, source_counts
from packetlab.ebpf.fdinfo import prog_id, program_fd
from packetlab.ebpf.stats import ProgStats
from packetlab.errors import PacketlabError


# ---- the live chart ------------------------------------------------------------------------
@dataclass
class Sample:
    """One poll of the counter maps."""

    t: float
    protocols: dict[str, int]
    sources: dict[str, int]
    stats: ProgStats | None = None


@dataclass
class ChartSummary:
    """What the chart saw between start() and stop()."""

    samples: int
    seconds: float
    protocol_delta: dict[str, int] = field(default_factory=dict)
    source_delta: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.protocol_delta.values())

    def table(self) -> str:
        from packetlab.show.tables import format_table

        rows = [(name, n, n / self.seconds if self.seconds else 0.0) for name, n in self.protocol_delta.items() if n]
        rows += [
            (f"from {src}", n, n / self.seconds if self.seconds else 0.0) for src, n in self.source_delta.items() if n
        ]
        return format_table(["counted while the chart ran", "packets", "packets/s"], rows)


class LiveCounterChart:
    """A live ipywidgets chart of bpf/07-xdp-counter.c's maps while traffic flows.

    A daemon thread polls the maps every `interval` seconds and redraws: packets
    per second by protocol (lines over the last `window` seconds) and the top
    sources (bars). It stops on `stop()`, after `max_seconds` (so a forgotten
    chart never polls forever), or when the program's maps go away. Widget
    updates from a thread are safe in ipykernel (messages go through its IOPub
    thread), and nothing blocks the cell that started it — which is what lets
    the next cell run the traffic while the chart redraws.
    """

    def __init__(
        self,
        program: Any,
        *,
        interval: float = 0.5,
        window: float = 20.0,
        top: int = 5,
        max_seconds: float = 300.0,
        title: str = "XDP counter",
    ) -> None:
        self.program, self.interval, self.window, self.top = program, interval, window, top
        self.max_seconds, self.title = max_seconds, title
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd = program_fd(program)
        self._prog_id = prog_id(self._fd)
        self._widget = None
        self._image = self._html = self._status = None

    # widgets are built lazily so the class is usable (and testable) without a notebook
    @property
    def widget(self) -> Any:
        if self._widget is None:
            import ipywidgets as w

            self._status = w.HTML(f"<b>{self.title}</b>: not started")
            self._image = w.Image(format="png", layout=w.Layout(max_width="760px"))
            self._html = w.HTML("")
            self._widget = w.VBox([self._status, self._image, self._html])
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def start(self) -> LiveCounterChart:
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self.samples.clear()
        self.error = None
        self._poll()
        self._thread = threading.Thread(target=self._run, name="xdp-live-chart", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> ChartSummary:
        """Stop polling (waits for the thread), take a last sample, return what moved."""
        self._stop.set()
        if self._thread is not None:
            # no time limit: the loop ends after the poll and render in hand, and returning earlier
            # would let that render race the final one (an emulated CPU's render took over 5 s)
            self._thread.join()
        if self.error is None:
            with contextlib.suppress(Exception):
                self._poll()
        self._render(final=True)
        return self.summary()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def summary(self) -> ChartSummary:
        if len(self.samples) < 2:
            return ChartSummary(len(self.samples), 0.0, error=self.error)
        first, last = self.samples[0], self.samples[-1]
        return ChartSummary(
            samples=len(self.samples),
            seconds=last.t - first.t,
            protocol_delta={k: last.protocols.get(k, 0) - first.protocols.get(k, 0) for k in last.protocols},
            source_delta={k: v - first.sources.get(k, 0) for k, v in last.sources.items()},
            error=self.error,
        )

    def moved(self) -> bool:
        """True if any counter increased while the chart ran."""
        return self.summary().total > 0

    def __enter__(self) -> LiveCounterChart:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- internals ---------------------------------------------------------------------
    def _poll(self) -> None:
        if getattr(self.program, "attached", True) is False:
            raise PacketlabError("the program was detached")
        try:
            stats = ProgStats.read(self._fd)
            alive = prog_id(self._fd) == self._prog_id
        except (OSError, PacketlabError):
            stats, alive = None, False
        if not alive:
            raise PacketlabError("the program was unloaded")
        self.samples.append(Sample(time.monotonic(), protocol_counts(self.program), source_counts(self.program), stats))

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            if time.monotonic() - started > self.max_seconds:
                self.error = f"stopped after max_seconds={self.max_seconds:g}"
                break
            try:
                self._poll()
                self._render()
            except Exception as exc:  # maps gone (program detached) or widget trouble: stop quietly
                self.error = f"stopped: {type(exc).__name__}: {exc}"
                break

    def _rates(self) -> tuple[list[float], dict[str, list[float]]]:
        """Per-protocol packets/s between consecutive samples inside the window."""
        now = self.samples[-1].t
        recent = [s for s in self.samples if now - s.t <= self.window]
        times: list[float] = []
        series: dict[str, list[float]] = {c: [] for c in CATEGORIES}
        for a, b in zip(recent, recent[1:]):
            dt = b.t - a.t
            if dt <= 0:
                continue
            times.append(b.t - now)
            for c in CATEGORIES:
                series[c].append((b.protocols[c] - a.protocols[c]) / dt)
        return times, series

    def _render(self, final: bool = False) -> None:
        if self._widget is None or not self.samples:
            return
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        times, series = self._rates()
        last = self.samples[-1]
        fig = Figure(figsize=(8, 2.8), dpi=72)
        FigureCanvasAgg(fig)
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        for c, ys in series.items():
            if any(ys):
                ax1.plot(times, ys, label=c)
        ax1.set_xlabel("seconds ago"), ax1.set_ylabel("packets/s"), ax1.set_title("by protocol")
        if any(any(ys) for ys in series.values()):
            ax1.legend(fontsize=7, loc="upper left")
        top = list(last.sources.items())[: self.top]
        ax2.barh([s for s, _ in top][::-1], [n for _, n in top][::-1], color="tab:blue")
        ax2.set_title("top sources (packets)"), ax2.tick_params(labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        self._image.value = buf.getvalue()
        rate = ""
        if len(self.samples) >= 2 and last.stats and self.samples[-2].stats:
            r = last.stats.since(self.samples[-2].stats)
            if r.runs:
                rate = f" — bpf_stats: {r.pps:,.0f} runs/s, {r.ns_per_run:,.0f} ns/run"
        state = "stopped" if final else f"polling every {self.interval:g} s"
        self._status.value = (
            f"<b>{self.title}</b>: {state}, {len(self.samples)} samples, "
            f"{sum(last.protocols.values()):,} packets counted{rate}"
            + (f" <i>({self.error})</i>" if self.error else "")
        )
        rows = "".join(
            f"<tr><td>{c}</td><td style='text-align:right'>{n:,}</td></tr>" for c, n in last.protocols.items() if n
        )
        self._html.value = f"<table><tr><th>protocol</th><th>packets</th></tr>{rows}</table>"
