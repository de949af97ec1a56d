"""What the module 11b lab notebook calls besides the tool: the live flow table, the ring-buffer
overflow experiment, and the slow-scan trace of exercise 1."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from packetlab.course.m11b_packet_analyzer import traces
from packetlab.ebpf.loader import acquire
from packetlab.show.widgets import LiveCounter, Snapshot
from packetlab.tools.analyzer.inspector import inspect_frames
from packetlab.tools.analyzer.kernel import SOURCE, FlowMonitor
from packetlab.tools.analyzer.records import FlowRecord
from packetlab.tools.analyzer.session import LiveSession


def flow_reader(session: LiveSession, top: int = 8) -> Any:
    """A LiveCounter reader: the busiest flows in the kernel's table, labelled by the inspector."""

    def read() -> Snapshot:
        recs = session._labelled(session.monitor.records())
        recs.sort(key=lambda r: -r.bytes)
        return {f"{r.key} {r.app or ''}".strip(): {"packets": r.packets, "bytes": r.bytes} for r in recs[:top]}

    return read


def live_table(session: LiveSession, *, interval: float = 0.5) -> LiveCounter:
    """A live table of the busiest flows (started; stop() it when the traffic is done)."""
    return LiveCounter(flow_reader(session), interval=interval, title="flows on the server's eth0").start()


# ---- exercise 3: a dropped-event counter ------------------------------------------------------
@dataclass
class OverflowRun:
    """What the overflow experiment did and what the kernel counted."""

    packets: int
    ring_bytes: int
    event_bytes: int
    delivered: int
    counters: dict[str, int]

    def __str__(self) -> str:
        c = self.counters
        return (
            f"{self.packets} packets of one flow, every one sampled, into a {self.ring_bytes}-byte ring "
            f"({self.event_bytes} bytes per event with its header), read only afterwards:\n"
            f"  kernel counters: packets={c['packets']} flows={c['flows']} events={c['events']} "
            f"ringbuf_lost={c['ringbuf_lost']} table_full={c['table_full']}\n"
            f"  events the reader got: {self.delivered}"
        )


def ring_overflow(packets: int = 60) -> OverflowRun:
    """Run bpf/11b-flow.c with a one-page ring buffer, sample every packet, read nothing until the end."""
    prog = acquire(SOURCE, cflags=["-DRING_PAGES=1"], fresh=True)
    try:
        mon = FlowMonitor(prog, sample_every=1)
        from scapy.layers.inet import IP, UDP
        from scapy.layers.l2 import Ether

        frame = Ether() / IP(src="10.11.0.1", dst="10.11.0.2") / UDP(sport=4000, dport=9) / (b"d" * 100)
        prog.test_run(bytes(frame), repeat=packets)
        counters = mon.counters()
        delivered = len(mon.poll(0.2))
    finally:
        prog.close()
    return OverflowRun(packets, 4096, 232 + 8, delivered, counters)


# ---- exercise 1: a slow scan the default detector misses ----------------------------------------
def slow_scan_trace(scanner: str = "10.11.0.77", start: float = 1_700_000_100.0) -> list[tuple[bytes, float]]:
    """Normal traffic plus a scan of 40 ports at one probe every 3 s: too slow for a 10 s window."""
    scan = [(f, start + (t - start) * 1500) for f, t in traces.port_scan(start, ports=range(20, 60), scanner=scanner)]
    return traces.merge(traces.normal_traffic(start - 5), scan)


def flows_of(frames: list[tuple[bytes, float]]) -> list[FlowRecord]:
    return inspect_frames(frames).records()


def default_alerts(frames: list[tuple[bytes, float]]) -> list[str]:
    """What the built-in detectors (default thresholds) say about a trace."""
    return [a.summary() for a in inspect_frames(frames).alerts]


OVERFLOW_CAUSES = {
    "a": "the flow table was full, so no record and no event could be made",
    "b": "the reader did not drain the ring buffer, so bpf_ringbuf_reserve found no room",
    "c": "the interface dropped the packets before XDP saw them",
}
