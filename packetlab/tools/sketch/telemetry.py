"""The loaded sketch program seen from userspace: mode switches, epoch swaps and consistent snapshots.

One write of the control word changes the mode and/or the slot the program
counts into (`bpf/11a-sketch.c`). `swap` bumps the epoch (and may change the
mode in the same write), waits for an RCU grace period — after it, no run of
the program that read the old word is still going — and then reads the old
slot and clears it. Nothing writes that slot while it is read, so a snapshot
is consistent, and since each packet went into exactly one slot and one
structure, the snapshots add up to every packet the program saw.

A torn read of the word by a run racing the write is harmless for the same
reason: that run finishes before the grace period does.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from packetlab.ebpf.loader import LoadedProgram, acquire, release
from packetlab.ebpf.maps import BpfMap, percpu_sum, synchronize_rcu
from packetlab.ebpf.testrun import prog_test_run
from packetlab.errors import PacketlabError
from packetlab.tools.sketch.layout import (
    MODE_EXACT,
    MODE_NAMES,
    MODE_SKETCH,
    MODES,
    NUM_STATS,
    SOURCE,
    STATS,
    Candidate,
    Counters,
    Flow,
    FlowKey,
    Geometry,
    SrcKey,
    control_word,
    parse_control,
)
from packetlab.tools.sketch.model import row_columns
from packetlab.tools.sketch.traffic import frame

REPEAT_WORTH_IT = 2000  # packets from which one repeated test run beats single ones


@dataclass
class Snapshot:
    """What one slot counted during one epoch, read after the program stopped writing it."""

    epoch: int
    mode: int
    started: float
    ended: float
    geometry: Geometry
    stats: dict[str, int]
    flows: dict[Flow, tuple[int, int]]  # exact: (packets, bytes)
    sources: dict[str, tuple[int, int]]
    sketch: np.ndarray  # (depth, width) counters
    candidates: list[tuple[Flow, int]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return max(self.ended - self.started, 1e-9)

    @property
    def counted(self) -> int:
        """Packets with a flow, counted exactly or in the sketch: the no-loss invariant is counted + other == packets."""
        return self.stats["exact"] + self.stats["sketch"]

    @property
    def sketch_total(self) -> int:
        """Packets in the sketch: every row adds up to it (a plain Count-Min update is linear)."""
        return int(self.sketch[0].sum()) if self.sketch.size else 0

    def estimate(self, flow: Flow) -> int:
        """Packets of `flow`: its exact count plus the sketch's (over)estimate of what went there."""
        exact = self.flows.get(flow, (0, 0))[0]
        if not self.stats["sketch"]:
            return exact
        cols = row_columns(flow.key_bytes(), self.geometry)
        return exact + min(int(self.sketch[i, c]) for i, c in enumerate(cols))

    def distinct_flows_estimate(self) -> float:
        """Flows that went into the sketch, by linear counting on row 0: -w ln(empty/w)."""
        if not self.stats["sketch"]:
            return 0.0
        w = self.geometry.width
        empty = int((self.sketch[0] == 0).sum())
        return float(w * np.log(w / max(empty, 0.5)))

    def top(self, k: int = 10) -> list[tuple[Flow, int, str]]:
        """The k heaviest flows: (flow, packets, 'exact' or 'sketch')."""
        rows: dict[Flow, tuple[int, str]] = {f: (pc[0], "exact") for f, pc in self.flows.items()}
        for flow, _ in self.candidates:
            rows[flow] = (self.estimate(flow), "sketch" if flow not in self.flows else "exact+sketch")
        ranked = sorted(rows.items(), key=lambda item: (-item[1][0], item[0]))
        return [(f, n, how) for f, (n, how) in ranked[:k]]


class Telemetry:
    """The 11a program's maps, its control word and the snapshots read from them.

    Give it a loaded program (``acquire(SOURCE, cflags=geometry.cflags())``) or an
    XDP attachment of one; `open` does the acquiring and gives it back.
    """

    def __init__(self, program: Any, geometry: Geometry) -> None:
        self.program, self.geometry = program, geometry

        def view(name: str, key: Any, value: Any) -> BpfMap:
            return BpfMap(program[name].map_fd, name, key, value)

        self.ctl = view("ctl", ctypes.c_uint32, ctypes.c_uint32)
        self.stats_map = view("stats", ctypes.c_uint32, ctypes.c_uint64)
        self.flows_map = view("flows", FlowKey, Counters)
        self.sources_map = view("sources", SrcKey, Counters)
        self.cms = view("cms", ctypes.c_uint32, ctypes.c_uint32)
        self.hh = view("hh", ctypes.c_uint32, Candidate)
        if self.cms.max_entries != 2 * geometry.cells or self.hh.max_entries != 2 * geometry.candidates:
            raise PacketlabError(
                "the loaded sketch program was compiled for another geometry",
                cause=f"its maps have {self.cms.max_entries // 2} cells and {self.hh.max_entries // 2} candidates "
                f"per slot; {geometry} needs {geometry.cells} and {geometry.candidates}",
                fix="load it with cflags=geometry.cflags()",
            )
        self.mode, self.epoch = parse_control(self.ctl.lookup(0) or 0)
        self.switched_at = time.monotonic()
        self.switches: list[tuple[int, int, float]] = []  # (epoch, new mode, time): the switch record

    @classmethod
    @contextmanager
    def open(cls, geometry: Geometry | None = None) -> Iterator[Telemetry]:
        """A freshly loaded program (not attached) and its Telemetry; unloaded or pooled on exit."""
        geometry = geometry or Geometry()
        prog: LoadedProgram = acquire(SOURCE, cflags=geometry.cflags())
        try:
            yield cls(prog, geometry)
        finally:
            release(prog)

    @property
    def slot(self) -> int:
        return self.epoch & 1

    @property
    def mode_name(self) -> str:
        return MODE_NAMES[self.mode]

    def set_mode(self, mode: str | int) -> Snapshot:
        """Switch exact <-> sketch: one write (a new epoch), then the snapshot of the epoch that ended."""
        return self.swap(MODES[mode] if isinstance(mode, str) else mode)

    def swap(self, mode: int | None = None) -> Snapshot:
        """End the epoch: write (new mode, epoch + 1) in one map update, wait out the running programs,
        read the old slot and clear it for its next turn."""
        if mode not in (None, MODE_EXACT, MODE_SKETCH):
            raise PacketlabError(f"unknown mode {mode!r}", fix="use 0 (exact) or 1 (sketch)")
        old_mode, old_slot, old_epoch = self.mode, self.slot, self.epoch
        new_mode = old_mode if mode is None else mode
        self.ctl.update(0, control_word(new_mode, old_epoch + 1))
        now = time.monotonic()
        synchronize_rcu()  # every run that read the old word has returned
        self.mode, self.epoch = new_mode, old_epoch + 1
        if new_mode != old_mode:
            self.switches.append((self.epoch, new_mode, now))
        snap = self._read_slot(old_slot, old_epoch, old_mode, self.switched_at, now)
        self.switched_at = now
        return snap

    def _read_slot(self, slot: int, epoch: int, mode: int, started: float, ended: float) -> Snapshot:
        """Read the quiescent slot and clear it for its next turn (one walk of each hash map)."""
        g = self.geometry
        stats = {name: int(percpu_sum(self.stats_map.lookup(slot * NUM_STATS + i))) for i, name in enumerate(STATS)}
        flows = {Flow.from_key(_unslotted(k)): (v.packets, v.bytes) for k, v in _drain(self.flows_map, slot)}
        sources = {
            Flow.from_key(bytes([k.family]) + bytes(7) + bytes(k.addr) + bytes(16)).src: (v.packets, v.bytes)
            for k, v in _drain(self.sources_map, slot)
        }
        for i in range(NUM_STATS):
            self.stats_map.update(slot * NUM_STATS + i, 0)
        if not stats["sketch"]:  # the program wrote no counter and no candidate of this slot
            return Snapshot(
                epoch, mode, started, ended, g, stats, flows, sources, np.zeros((g.depth, g.width), np.int64)
            )
        base, hb = slot * g.cells, slot * g.candidates
        sketch = np.array(self.cms.lookup_range(base, g.cells), dtype=np.int64).reshape(g.depth, g.width)
        cands = [c for c in self.hh.lookup_range(hb, g.candidates) if c.estimate]
        candidates = [(Flow.from_key(bytes(c.key)), int(c.estimate)) for c in cands]
        self.cms.update_batch(np.arange(base, base + g.cells, dtype="<u4").tobytes(), bytes(4 * g.cells))
        self.hh.update_batch(
            np.arange(hb, hb + g.candidates, dtype="<u4").tobytes(), bytes(ctypes.sizeof(Candidate) * g.candidates)
        )
        return Snapshot(epoch, mode, started, ended, g, stats, flows, sources, sketch, candidates)

    def replay(self, runs: Iterable[tuple[Flow, int]], *, size: int = 64) -> int:
        """Feed (flow, count) runs to the program by BPF_PROG_TEST_RUN; return the packets fed.

        A run of `count` is `count` single test runs, or one run with ``repeat=count`` when
        that is cheaper: the kernel sets up a repeated run in milliseconds (about 25 ms on
        6.18 here, against about 10 us for a single one), so short runs go one by one.
        """
        fed = 0
        frames: dict[Flow, bytes] = {}
        fd = self.program.fd if hasattr(self.program, "fd") else self.program.program.fd
        for flow, count in runs:
            data = frames.get(flow) or frames.setdefault(flow, frame(flow, size))
            if count >= REPEAT_WORTH_IT:
                prog_test_run(fd, data, repeat=count)
            else:
                for _ in range(count):
                    prog_test_run(fd, data)
            fed += count
        return fed

    def exact_fill(self) -> float:
        """Entries in the exact flow map as a fraction of its capacity."""
        return sum(1 for _ in self.flows_map) / self.geometry.flows


def _drain(m: BpfMap, slot: int) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of `slot` in a hash map keyed with a slot field, deleted as they are read."""
    out = []
    for key in [k for k in m if k.slot == slot]:
        value = m.lookup(key)
        if value is not None:
            out.append((key, value))
            m.delete(key)
    return out


def _unslotted(key: FlowKey) -> bytes:
    raw = bytearray(bytes(key))
    raw[2] = 0
    return bytes(raw)
