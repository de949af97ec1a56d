"""Prometheus text exposition (format 0.0.4) of the telemetry tool: mode, switches, counts, error bound, top flows."""

from __future__ import annotations

from packetlab.show.prometheus import MetricFamily, exposition
from packetlab.tools.sketch.controller import Controller
from packetlab.tools.sketch.layout import MODES, STATS
from packetlab.tools.sketch.telemetry import Snapshot

PREFIX = "packetlab_sketch"


def render(ctl: Controller, totals: dict[str, int], last: Snapshot | None, top: int = 10) -> str:
    """The metrics after the last interval: `totals` are the stats summed over every snapshot so far."""
    tele = ctl.telemetry
    g = tele.geometry
    fams = [
        MetricFamily(
            f"{PREFIX}_mode",
            "gauge",
            "1 for the mode the XDP program counts in now.",
            [({"mode": m}, int(tele.mode == v)) for m, v in MODES.items()],
        ),
        MetricFamily(f"{PREFIX}_switches_total", "counter", "Mode switches since start.", [({}, len(tele.switches))]),
        MetricFamily(f"{PREFIX}_epoch", "gauge", "The current epoch (one per interval or switch).", [({}, tele.epoch)]),
        MetricFamily(
            f"{PREFIX}_packets_total",
            "counter",
            "Packets by what counted them (stats of the program, summed over every snapshot).",
            [({"counted": s}, totals.get(s, 0)) for s in STATS],
        ),
        MetricFamily(
            f"{PREFIX}_flow_rate", "gauge", "Flows per second seen in the last interval.", [({}, ctl.last_rate)]
        ),
        MetricFamily(
            f"{PREFIX}_exact_fill",
            "gauge",
            "Exact map fill in the last interval (may exceed 1 in sketch mode: the flows it would need).",
            [({}, ctl.last_fill)],
        ),  # noqa: E501
        MetricFamily(
            f"{PREFIX}_error_bound_packets",
            "gauge",
            "The Count-Min bound (e/w)*N for the last interval: an estimate exceeds it with probability e^-d.",
            [({}, g.epsilon * last.stats["sketch"] if last else 0.0)],
        ),
    ]
    if last is not None:
        fams.append(
            MetricFamily(
                f"{PREFIX}_top_flow_packets",
                "gauge",
                "The heaviest flows of the last interval (exact count, or the sketch's estimate).",
                [({"flow": str(f), "counted": how}, n) for f, n, how in last.top(top)],
            )
        )
    return exposition(fams)
