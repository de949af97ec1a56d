"""Putting the kernel and the tracker side by side: table comparisons and the
step-by-step `Walkthrough` the lab uses.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packetlab.course.m03_connection_tracking.craft import LabWire
from packetlab.course.m03_connection_tracking.kernel_table import CtStateCounters, format_tally, kernel_entry
from packetlab.proto.conntrack.states import CtEntry, FlowTuple, segment_from_packet, short_tuple
from packetlab.proto.conntrack.tracker import Tracker
from packetlab.topo.host import Host

# ---- comparing the two tables ----------------------------------------------------------------


@dataclass
class Comparison:
    """One connection as the kernel and the tracker see it."""

    key: FlowTuple
    kernel: CtEntry | None
    tracker: CtEntry | None

    @property
    def agree(self) -> bool:
        k, t = self.kernel, self.tracker
        return bool(k and t and k.state == t.state and set(k.flags) == set(t.flags))


def compare(kernel: Sequence[CtEntry], tracker: Sequence[CtEntry]) -> list[Comparison]:
    """Pair entries by original tuple; entries only one side has are listed too."""
    k = {e.key: e for e in kernel}
    t = {e.key: e for e in tracker}
    keys = sorted(set(k) | set(t), key=lambda x: (x.proto, x.src, x.sport, x.dst, x.dport))
    return [Comparison(key, k.get(key), t.get(key)) for key in keys]


def format_comparison(rows: Sequence[Comparison]) -> str:
    from packetlab.show.tables import format_table

    def side(e: CtEntry | None) -> str:
        return "(absent)" if e is None else f"{e.state or '-'} {e.status} {e.timeout}s"

    table = [(short_tuple(r.key), side(r.kernel), side(r.tracker), "yes" if r.agree else "NO") for r in rows]
    return format_table(["connection (original direction)", "kernel", "our tracker", "agree"], table)


# ---- a step-by-step walk for the lab -----------------------------------------------------------


@dataclass
class Step:
    """One crafted packet and what the kernel and the tracker made of it."""

    label: str
    packet: str
    kernel_ctinfo: str
    kernel: CtEntry | None
    tracker_ctinfo: str | None = None
    tracker: CtEntry | None = None
    reason: str = ""


class Walkthrough:
    """Send crafted packets through a router one at a time and record, after each,
    the kernel's verdict (from `CtStateCounters`), its table entry, and — if a
    `Tracker` is given — what the userspace tracker made of the same traffic.

    The tracker is fed what the router's interfaces actually received during
    the step (captured on `devices`), so answers from the end hosts' kernels
    (an echo reply, an ICMP error) are tracked too, exactly as the router saw them.
    """

    def __init__(
        self,
        router: Host,
        wire: LabWire,
        counters: CtStateCounters,
        tracker: Tracker | None = None,
        *,
        devices: Sequence[str] = ("eth0", "eth1"),
    ) -> None:
        self.router, self.wire, self.counters, self.tracker = router, wire, counters, tracker
        self.devices = tuple(devices)
        self._macs = {dev: router.mac(dev) for dev in self.devices}
        self.steps: list[Step] = []

    def _send_captured(self, pkt: Any) -> tuple[list[Any], dict[str, int]]:
        with contextlib.ExitStack() as stack:
            caps = [
                stack.enter_context(self.router.capture(dev, filter=f"ether dst {mac} and ip", settle=0.02))
                for dev, mac in self._macs.items()
            ]
            self.wire.send(pkt)
            verdicts = self.counters.settle()  # the capture runs until the router has gone quiet
        return sorted((f for cap in caps for f in cap), key=lambda f: float(f.time)), verdicts

    def send(self, label: str, pkt: Any) -> Step:
        """Send `pkt`, then read the kernel's verdict and entry (and the tracker's)."""
        seg = segment_from_packet(pkt)
        self.counters.delta()
        if self.tracker is not None:
            frames, verdicts = self._send_captured(pkt)
        else:
            self.wire.send(pkt)
            verdicts = self.counters.settle()
        step = Step(label, seg.describe() if seg else pkt.summary(), format_tally(verdicts), None)
        key = seg.inner if seg and seg.inner else seg.tuple if seg else None
        if key is not None:
            step.kernel = kernel_entry(self.router, key) or kernel_entry(self.router, key.inverted())
        if self.tracker is not None:
            decisions = [self.tracker.feed(f) for f in frames]
            tally: dict[str, int] = {}
            for d in decisions:
                if d.ctinfo:
                    tally[d.ctinfo] = tally.get(d.ctinfo, 0) + 1
            step.tracker_ctinfo = format_tally(tally)
            step.reason = "; ".join(d.reason for d in decisions if d.reason)
            hit = self.tracker.lookup(key) or self.tracker.lookup(key.inverted()) if key is not None else None
            step.tracker = hit[0].entry(time.time()) if hit else None
        self.steps.append(step)
        return step

    def table(self) -> str:
        """The steps as a text table: kernel columns, then the tracker's."""
        from packetlab.show.tables import format_table

        rows = []
        for s in self.steps:
            k, t = s.kernel, s.tracker
            row = [
                s.label,
                s.packet,
                s.kernel_ctinfo,
                (k.state or "-") if k else "(none)",
                k.timeout if k else "-",
                k.status if k else "-",
            ]
            if self.tracker is not None:
                row += [s.tracker_ctinfo or "-", ((t.state or "-") + " " + t.status) if t else "(none)"]
            rows.append(row)
        headers = ["step", "packet", "kernel: packet", "kernel: entry", "timeout", "flags"]
        if self.tracker is not None:
            headers += ["tracker: packet", "tracker: entry"]
        return format_table(headers, rows)

    def agree(self) -> bool:
        """Did the tracker classify every packet and leave every entry as the kernel did?"""
        return not self.disagreements()

    def disagreements(self) -> list[str]:
        """The steps where the tracker and the kernel differ (empty when they agree)."""
        return [
            f"{s.label}: kernel {s.kernel_ctinfo} {s.kernel}, tracker {s.tracker_ctinfo} {s.tracker}"
            for s in self.steps
            if not _same_step(s)
        ]


def _same_step(s: Step) -> bool:
    k, t = s.kernel, s.tracker
    if k is None or t is None:
        entries = k is None and t is None
    else:
        entries = k.state == t.state and set(k.flags) == set(t.flags)
    return s.kernel_ctinfo == s.tracker_ctinfo and entries
