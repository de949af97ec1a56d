"""A live analysis: the kernel tier on an interface, the userspace tier fed with packets,
records expired on an idle timeout into the flow store — and the figures as a table and as
Prometheus metrics.

The inspector's packets come from one of two sources (`INSPECT_SOURCES`):

* ``afpacket`` (the default): an AF_PACKET TPACKET_V3 ring on the same interface, behind a
  socket filter (`capture.INSPECT_FILTER`), frames cut to a snap length. Both directions, whole
  headers and payloads up to the snap length, the kernel's timestamps, its drop counters
  (``PACKET_STATISTICS``). The XDP program then sends no samples, so its ring buffer carries only
  flow-start and flow-end events and a burst of packets cannot crowd out a flow record.
* ``samples``: every Nth received packet's first 128 bytes, sent by the XDP program over its
  BPF ring buffer beside the flow events.

This is what ``packetlab analyze live`` runs and what the lab's live table polls.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.show.prometheus import MetricFamily, exposition
from packetlab.show.tables import format_table
from packetlab.tools.analyzer.anomalies import Thresholds
from packetlab.tools.analyzer.capture import RingReader
from packetlab.tools.analyzer.export import PcapWriter
from packetlab.tools.analyzer.inspector import Inspector, conversation
from packetlab.tools.analyzer.kernel import SOURCE, FlowMonitor
from packetlab.tools.analyzer.records import FlowEvent, FlowRecord, tcp_flag_str
from packetlab.tools.analyzer.store import FlowStore
from packetlab.topo.packet_ring import PacketRing

INSPECT_SOURCES = ("afpacket", "samples")


class LiveSession:
    """Kernel flow records + inspected packets + store. Use ``with``; `step()` as often as you like.

    `ring` (an open `PacketRing`, e.g. `capture.open_ring`) makes the AF_PACKET ring the inspector's
    source; the session closes it. Without one, the inspector reads the XDP program's samples
    (`sample_every`). Both at once would inspect packets twice, and is refused.
    """

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
        ring: PacketRing | None = None,
    ) -> None:
        if ring is not None and sample_every:
            ring.close()
            raise PacketlabError(
                f"both an AF_PACKET ring and sample_every={sample_every} given",
                cause="the inspector would see the sampled packets twice",
                fix="use sample_every=0 with a ring (inspect='afpacket'), or no ring (inspect='samples')",
            )
        self.ring = ring
        self.reader: RingReader | None = None
        self.monitor = FlowMonitor(program, sample_every=sample_every)
        self.monitor.reset()
        self.inspector = Inspector(thresholds)
        self.store = store or FlowStore()
        self.idle = idle
        self.on_event = on_event
        self.pcap = pcap  # what was inspected (samples or ring frames) as a capture file, nothing more
        self.events: dict[str, int] = {"start": 0, "end": 0, "sample": 0}
        self.inspected = 0  # frames the inspector read from the AF_PACKET ring
        self.stored = 0
        if ring is not None:
            self.reader = RingReader(ring)  # last: nothing above can fail and leave its thread running

    @property
    def source(self) -> str:
        return "afpacket" if self.ring is not None else "samples"

    def step(self, timeout: float = 0.1) -> list[FlowEvent]:
        """Read events (samples go to the inspector) and the ring's frames, store flows idle for `idle` s."""
        end = time.monotonic() + timeout
        events = self.monitor.poll(timeout if self.ring is None else min(timeout, 0.01))
        for ev in events:
            self.events[ev.type] = self.events.get(ev.type, 0) + 1
            if ev.type == "sample" and ev.data:
                self.inspector.feed(ev.data, ev.record.last)
                if self.pcap is not None:
                    self.pcap.write(ev.data, ev.record.last, ev.wirelen)
            if self.on_event:
                self.on_event(ev)
        if self.reader is not None:
            for frame in self.reader.take(max(end - time.monotonic(), 0.0)):
                self.inspected += 1
                self.inspector.feed(frame.data, frame.timestamp)
                if self.pcap is not None:
                    self.pcap.write(frame.data, frame.timestamp, frame.wirelen)
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

    def ring_stats(self) -> dict[str, int]:
        """The AF_PACKET ring's kernel counters (packets, drops, freeze_q), the frames the inspector read and
        those waiting in the reader's backlog; {} without a ring."""
        if self.ring is None or self.reader is None:
            return {}
        return {**self.ring.stats(), "read": self.inspected, "backlog": len(self.reader)}

    def metrics(self) -> str:
        return metrics_text(self.monitor.counters(), self.events, len(self.inspector.alerts), self.ring_stats())

    def close(self) -> None:
        try:
            if self.reader is not None:
                self.reader.stop()  # what is left in the ring goes to the backlog, and flush() inspects it
            with contextlib.suppress(Exception):
                self.flush()
        finally:
            if self.ring is not None:
                self.ring.close()

    def __enter__(self) -> LiveSession:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def metrics_text(
    counters: dict[str, int], events: dict[str, int], alerts: int, ring: dict[str, int] | None = None
) -> str:
    """Prometheus exposition of the kernel tier's counters, the events read, the AF_PACKET ring's
    counters (when it is the inspector's source) and the alerts."""
    kernel = MetricFamily("packetlab_analyzer_kernel_total", "counter", "bpf/11b-flow.c counters, summed over CPUs")
    for name, value in counters.items():
        kernel.add(value, counter=name)
    ev = MetricFamily("packetlab_analyzer_events_total", "counter", "ring-buffer events read, by type")
    for name, value in events.items():
        ev.add(value, type=name)
    families = [kernel, ev]
    if ring:
        rf = MetricFamily(
            "packetlab_analyzer_afpacket_total", "counter", "AF_PACKET ring: PACKET_STATISTICS and frames read"
        )
        for name, value in ring.items():
            rf.add(value, counter=name)
        families.append(rf)
    al = MetricFamily("packetlab_analyzer_alerts", "gauge", "anomaly alerts raised")
    al.add(alerts)
    return exposition([*families, al])


def attach(namespace: str, dev: str, mode: str = "native") -> Any:
    """The flow program on `dev` in `namespace`, outside any Lab (the CLI's case); detach() it."""
    from packetlab.ebpf.loader import XdpAttachment, acquire

    program = acquire(SOURCE)
    try:
        return XdpAttachment(program, namespace, dev, mode)
    except BaseException:
        program.close()
        raise
