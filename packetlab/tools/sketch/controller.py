"""The adaptive switch: exact per-flow counting while it is affordable, the sketch when load says no.

Each interval the controller ends the epoch (`Telemetry.swap`), reads the load
from the snapshot and decides the next mode:

* load = new flows per second and the exact map's fill. In exact mode both are
  counted by the program (ST_NEW_FLOWS; entries this epoch; ST_FULL means full).
  In sketch mode no map is filled, so the flows are estimated from the sketch's
  first row by linear counting (-w ln(empty/w)): flows *active* in the interval,
  an upper bound of the new ones.
* to the sketch as soon as the rate or the fill crosses its high mark;
* back to exact only after `hold` intervals in a row under both low marks.

The gap between the marks and the hold are the hysteresis: without them, a load
that hovers at one threshold flips the mode every interval, and every flip costs
a snapshot and a slot's worth of per-flow detail.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packetlab.tools.sketch.layout import MODE_EXACT, MODE_SKETCH
from packetlab.tools.sketch.telemetry import Snapshot, Telemetry


@dataclass
class Hysteresis:
    """The thresholds and the decision, without any kernel (unit-tested on its own)."""

    high_rate: float = 10_000.0  # new flows per second that send us to the sketch
    low_rate: float = 2_000.0  # ... and under which we may come back
    high_fill: float = 0.9  # exact map fill that sends us to the sketch
    low_fill: float = 0.5
    hold: int = 3  # quiet intervals in a row before coming back
    quiet: int = field(default=0, init=False)

    def decide(self, mode: int, rate: float, fill: float) -> int:
        if mode == MODE_EXACT:
            self.quiet = 0
            return MODE_SKETCH if rate > self.high_rate or fill >= self.high_fill else MODE_EXACT
        self.quiet = self.quiet + 1 if rate < self.low_rate and fill < self.low_fill else 0
        if self.quiet >= self.hold:
            self.quiet = 0
            return MODE_EXACT
        return MODE_SKETCH


def load_of(snap: Snapshot, capacity: int) -> tuple[float, float]:
    """(flows per second, fill of the exact map) seen in one snapshot."""
    if snap.mode == MODE_EXACT:
        fill = 1.0 if snap.stats["full"] else len(snap.flows) / capacity
        return snap.stats["new_flows"] / snap.seconds, fill
    flows = snap.distinct_flows_estimate()
    return flows / snap.seconds, flows / capacity


@dataclass
class Controller:
    """Runs `Hysteresis` on a Telemetry: call `tick()` once per interval."""

    telemetry: Telemetry
    policy: Hysteresis = field(default_factory=Hysteresis)
    fixed: int | None = None  # a mode to hold (--mode exact|sketch): no adaptation
    last_rate: float = 0.0
    last_fill: float = 0.0

    def tick(self) -> list[Snapshot]:
        """End the epoch; switch if the load says so. Returns the snapshots taken (one, or two on a switch)."""
        snap = self.telemetry.swap()
        snaps = [snap]
        self.last_rate, self.last_fill = load_of(snap, self.telemetry.geometry.flows)
        want = (
            self.fixed
            if self.fixed is not None
            else self.policy.decide(self.telemetry.mode, self.last_rate, self.last_fill)
        )
        if want != self.telemetry.mode:
            snaps.append(self.telemetry.swap(want))
        return snaps
