"""The in-kernel tier: load bpf/11b-flow.c, read its ring buffer, its flow table and its
drop counters.

Why in the kernel: copying every packet to Python costs microseconds each; the XDP
program counts a packet in tens of nanoseconds and tells userspace only when a flow
starts or ends (and, if asked, about every Nth packet). What cannot be kept is never
hidden: ``table_full`` counts packets whose new flow found no room, ``ringbuf_lost``
events the reader was too slow to take (`FlowMonitor.counters`).
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Callable
from typing import Any

from packetlab.ebpf import features
from packetlab.ebpf.maps import percpu_sum
from packetlab.errors import MissingRequirement, PacketlabError
from packetlab.tools.analyzer.records import (
    CONF_SAMPLE_EVERY,
    CONF_VERDICT,
    STATS,
    FlowEvent,
    FlowRecord,
    decode_event,
    decode_record,
)

SOURCE = "bpf/11b-flow.c"
XDP_DROP, XDP_PASS = 1, 2


def require_ringbuf() -> None:
    """Refuse early, with the reason, on a kernel without BPF ring buffers (Linux < 5.8)."""
    if not features.has("ringbuf"):
        raise MissingRequirement(
            "this kernel has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF)",
            cause=features.probe("ringbuf").detail,
            fix="use Linux 5.8 or newer (Debian 12's 6.1 has it)",
        )


class FlowMonitor:
    """Events and records of one loaded or attached copy of bpf/11b-flow.c.

    `program` is an `XdpAttachment` (``host.attach_xdp(SOURCE)``) or a `LoadedProgram`
    (``acquire(SOURCE)``, fed with ``test_run``). The ring-buffer callback is
    registered once per compiled program and kept with it, because bcc cannot
    unregister one and pooled programs are reused.
    """

    def __init__(self, program: Any, *, sample_every: int = 0, drop: bool = False) -> None:
        require_ringbuf()
        self.program = program
        self._loaded = getattr(program, "program", program)  # the LoadedProgram
        self._sink: list[bytes] = self._ring_sink()
        self.configure(sample_every=sample_every, drop=drop)
        self.drain()  # a pooled program may hold a previous user's events

    def _ring_sink(self) -> list[bytes]:
        sink = getattr(self._loaded, "_analyzer_sink", None)
        if sink is None:
            sink = []

            def collect(ctx: Any, data: Any, size: int, _sink: list = sink) -> int:
                _sink.append(ctypes.string_at(data, size))
                return 0

            self._loaded["events"].open_ring_buffer(collect)
            self._loaded._analyzer_sink = sink
            self._loaded._analyzer_callback = collect  # keep the ctypes callback alive
        return sink

    def configure(self, *, sample_every: int = 0, drop: bool = False) -> None:
        """Send every `sample_every`-th packet as a SAMPLE event (0: none); `drop`: end
        every frame with XDP_DROP (a counting sink, for benchmarks) instead of XDP_PASS."""
        if sample_every < 0:
            raise PacketlabError(f"sample_every={sample_every}", fix="use 0 (no samples) or a positive N")
        table = self._loaded["config"]
        table[ctypes.c_int(CONF_SAMPLE_EVERY)] = ctypes.c_uint32(sample_every)
        table[ctypes.c_int(CONF_VERDICT)] = ctypes.c_uint32(XDP_DROP if drop else XDP_PASS)

    # ---- events ---------------------------------------------------------------------------------
    def poll(self, timeout: float = 0.1, *, expect: int | None = None) -> list[FlowEvent]:
        """Events that arrived since the last call; waits up to `timeout` s (less once `expect` came)."""
        bpf = self._loaded.bpf
        deadline = time.monotonic() + timeout
        while True:
            bpf.ring_buffer_consume()
            if expect is not None and len(self._sink) >= expect:
                break
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            bpf.ring_buffer_poll(max(1, int(min(remaining, 0.05) * 1000)))
        raw, self._sink[:] = list(self._sink), []
        return [decode_event(r) for r in raw]

    def drain(self) -> int:
        """Discard pending events; return how many there were."""
        self._loaded.bpf.ring_buffer_consume()
        n = len(self._sink)
        self._sink.clear()
        return n

    # ---- the table ------------------------------------------------------------------------------
    def records(self) -> list[FlowRecord]:
        """Every flow record in the kernel's table, oldest first."""
        out = [decode_record(bytes(k), bytes(v)) for k, v in self._loaded["flows"].items()]
        return sorted(out, key=lambda r: (r.first, str(r.key)))

    def expire(self, idle: float, now: float | None = None) -> list[FlowRecord]:
        """Remove records idle for `idle` s (or ended and quiet that long) and return them: the
        inactive timeout of a flow exporter. A flow that comes back later starts a new record."""
        now = time.time() if now is None else now
        table = self._loaded["flows"]
        gone = []
        for k, v in list(table.items()):
            rec = decode_record(bytes(k), bytes(v))
            if now - rec.last >= idle:
                with contextlib.suppress(KeyError):
                    del table[k]
                gone.append(rec)
        return gone

    def counters(self) -> dict[str, int]:
        """The program's counters, summed over CPUs: packets, bytes, flows, table_full,
        events, ringbuf_lost, not_ip."""
        table = self._loaded["stats"]
        out = dict.fromkeys(STATS, 0)
        for k, v in table.items():
            idx = int(getattr(k, "value", k))
            if 0 <= idx < len(STATS):
                total = percpu_sum(v)
                out[STATS[idx]] = int(getattr(total, "value", total))
        return out

    def reset(self) -> None:
        """Empty the flow table and zero the counters (the configuration stays)."""
        for name in ("flows", "stats", "sample_clock"):
            with contextlib.suppress(Exception):
                self._loaded[name].clear()
        self.drain()


def follow(monitor: FlowMonitor, on_event: Callable[[FlowEvent], None], *, seconds: float, tick: float = 0.1) -> int:
    """Call `on_event` for every event during `seconds`; return how many there were."""
    n, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        for ev in monitor.poll(min(tick, max(end - time.monotonic(), 0.001))):
            on_event(ev)
            n += 1
    return n
