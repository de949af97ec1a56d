"""A live analysis: the kernel tier on an interface, its sampled packet heads fed to the
userspace tier, records expired on an idle timeout into the flow store — and the
figures as a table and as Prometheus metrics.

This is what ``packetlab analyze live`` runs and what the lab's live table polls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from packetlab.show.prometheus import MetricFamily, exposition
from packetlab.show.tables import format_table
from packetlab.tools.analyzer.anomalies import Thresholds
from packetlab.tools.analyzer.export import PcapWriter
from packetlab.tools.analyzer.inspector import Inspector, conversation
from packetlab.tools.analyzer.kernel import SOURCE, FlowMonitor
from packetlab.tools.analyzer.records import FlowEvent, FlowRecord, tcp_flag_str
from packetlab.tools.analyzer.store import FlowStore


class LiveSession:
    """Kernel flow records + inspected samples + store. Use ``with``; `step()` as often as you like."""

    def __init__(
        self,
        program: Any,
        *,
        sample_every: int = 1,
        idle: float = 15.0,
        store: FlowStore | None = None,
        thresholds: Thresholds | None = None,
        on_event: Callable[[FlowEvent], None] | None = None,
        pcap: PcapWriter | None = None,
    ) -> None:
        self.monitor = FlowMonitor(program, sample_every=sample_every)
        self.monitor.reset()
        self.inspector = Inspector(thresholds)
        self.store = store or FlowStore()
        self.idle = idle
        self.on_event = on_event
        self.pcap = pcap  # the sampled heads, as a capture file (what was inspected, nothing more)
        self.events: dict[str, int] = {"start": 0, "end": 0, "sample": 0}
        self.stored = 0

    def step(self, timeout: float = 0.1) -> list[FlowEvent]:
        """Read events (samples go to the inspector), store flows idle for `idle` s."""
        events = self.monitor.poll(timeout)
        for ev in events:
            self.events[ev.type] = self.events.get(ev.type, 0) + 1
            if ev.type == "sample" and ev.data:
                self.inspector.feed(ev.data, ev.record.last)
                if self.pcap is not None:
                    self.pcap.write(ev.data, ev.record.last, ev.wirelen)
            if self.on_event:
                self.on_event(ev)
        self.stored += self.store.add_flows(self._labelled(self.monitor.expire(self.idle)), source="kernel")
        return events

    def run(self, seconds: float, tick: float = 0.2) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.step(min(tick, max(end - time.monotonic(), 0.001)))

    def flush(self) -> int:
        """Store every record still in the kernel's table (at the end of a run) and the alerts."""
        self.step(0.05)
        n = self.store.add_flows(self._labelled(self.monitor.expire(0.0)), source="kernel")
        self.store.add_alerts(self.inspector.alerts)
        self.stored += n
        return n

    def _labelled(self, records: list[FlowRecord]) -> list[FlowRecord]:
        for r in records:
            info = self.inspector.apps.get(conversation(r.key))
            r.app = info.app if info else ""
        return records

    def table(self, top: int = 10) -> str:
        """The busiest flows in the kernel's table right now."""
        recs = sorted(self._labelled(self.monitor.records()), key=lambda r: -r.bytes)[:top]
        rows = [(str(r.key), r.app or "-", r.packets, r.bytes, tcp_flag_str(r.tcp_flags) or "-") for r in recs]
        return format_table(("flow", "app", "packets", "bytes", "flags"), rows)

    def metrics(self) -> str:
        return metrics_text(self.monitor.counters(), self.events, len(self.inspector.alerts))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.flush()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def metrics_text(counters: dict[str, int], events: dict[str, int], alerts: int) -> str:
    """Prometheus exposition of the kernel tier's counters, the events read and the alerts."""
    kernel = MetricFamily("packetlab_analyzer_kernel_total", "counter", "bpf/11b-flow.c counters, summed over CPUs")
    for name, value in counters.items():
        kernel.add(value, counter=name)
    ev = MetricFamily("packetlab_analyzer_events_total", "counter", "ring-buffer events read, by type")
    for name, value in events.items():
        ev.add(value, type=name)
    al = MetricFamily("packetlab_analyzer_alerts", "gauge", "anomaly alerts raised")
    al.add(alerts)
    return exposition([kernel, ev, al])


def attach(namespace: str, dev: str, mode: str = "native") -> Any:
    """The flow program on `dev` in `namespace`, outside any Lab (the CLI's case); detach() it."""
    from packetlab.ebpf.loader import XdpAttachment, acquire

    program = acquire(SOURCE)
    try:
        return XdpAttachment(program, namespace, dev, mode)
    except BaseException:
        program.close()
        raise
