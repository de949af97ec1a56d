"""The module 11a lab: a sender and a collector, the sketch program on the collector's eth0.

::

    h1 (10.11.0.1) eth0 ───── eth0 (10.11.0.2) h2     bpf/11a-sketch.c on h2:eth0 (native XDP)

Traffic is UDP from h1 (trafgen: many source ports, so many flows); IPv6 is off
on both ends so only the flows the lab sends are counted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from packetlab.ebpf.loader import XdpAttachment
from packetlab.tools.sketch.controller import Controller
from packetlab.tools.sketch.layout import SOURCE, Flow, Geometry
from packetlab.tools.sketch.telemetry import Snapshot, Telemetry
from packetlab.topo.host import Host
from packetlab.topo.lab import Lab
from packetlab.topo.traffic import FloodResult, flood

SENDER_IP, COLLECTOR_IP = "10.11.0.1", "10.11.0.2"
DST_PORT = 9
FIRST_PORT = 10000  # trafgen's source ports count up from here (packetlab.topo.traffic)


@dataclass
class SketchTopo:
    lab: Lab
    sender: Host
    collector: Host
    attachment: XdpAttachment | None = None
    telemetry: Telemetry | None = None
    snapshots: list[Snapshot] = field(default_factory=list)

    def attach(self, geometry: Geometry) -> Telemetry:
        """Load the program with `geometry` on the collector's eth0 (replacing an earlier one)."""
        self.detach()
        self.attachment = self.collector.attach_xdp(SOURCE, cflags=geometry.cflags(), mode="native")
        self.telemetry = Telemetry(self.attachment, geometry)
        self.telemetry.swap()  # start from an empty epoch
        self.snapshots = []
        return self.telemetry

    def detach(self) -> None:
        if self.attachment is not None:
            self.attachment.detach()
            self.attachment, self.telemetry = None, None

    def flood(self, *, flows: int, seconds: float) -> FloodResult:
        """UDP from h1 to h2 over `flows` source ports for `seconds` (trafgen)."""
        return flood(
            self.sender,
            self.collector,
            src_ip=SENDER_IP,
            dst_ip=COLLECTOR_IP,
            flows=flows,
            seconds=seconds,
            dst_port=DST_PORT,
        )

    def flood_while(self, every: float, action: Callable[[], list[Snapshot]], **flood_args) -> FloodResult:
        """Flood, and meanwhile call `action` every `every` seconds, keeping the snapshots it returns."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every):
                self.snapshots.extend(action())

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            return self.flood(**flood_args)
        finally:
            stop.set()
            thread.join()

    def controller(self, **policy) -> Controller:
        from packetlab.tools.sketch.controller import Hysteresis

        assert self.telemetry is not None, "attach() first"
        return Controller(self.telemetry, Hysteresis(**policy))

    def collect(self) -> list[Snapshot]:
        """End the current epoch too, and return every snapshot since attach()."""
        assert self.telemetry is not None, "attach() first"
        self.snapshots.append(self.telemetry.swap())
        return self.snapshots


@dataclass
class Tick:
    """One controller interval: when, which phase, the mode counted in, the load seen, the mode chosen."""

    at: float
    phase: str
    counted_in: str
    packets: int
    rate: float
    fill: float
    next_mode: str


def adaptive_timeline(
    topo: SketchTopo, phases: list[tuple[str, int, float]], *, every: float = 0.25, **policy
) -> list[Tick]:
    """Run the adaptive controller through `phases` of (name, flows, seconds): a flood over that many
    flows, or quiet when flows is 0 (seconds / every intervals, however long each takes). Every
    snapshot is kept in topo.snapshots (nothing is lost)."""
    from packetlab.tools.sketch.layout import MODE_NAMES

    ctl = topo.controller(**policy)
    ticks: list[Tick] = []
    start = time.monotonic()
    phase = [""]

    def tick() -> list[Snapshot]:
        snaps = ctl.tick()
        s = snaps[0]
        ticks.append(
            Tick(
                time.monotonic() - start,
                phase[0],
                MODE_NAMES[s.mode],
                s.stats["packets"],
                ctl.last_rate,
                ctl.last_fill,
                ctl.telemetry.mode_name,
            )
        )
        return snaps

    for name, flows, seconds in phases:
        phase[0] = name
        if flows:
            topo.flood_while(every, tick, flows=flows, seconds=seconds)
        else:  # a count of intervals, not a deadline: on a busy machine each tick takes longer
            for _ in range(max(1, round(seconds / every))):
                time.sleep(every)
                topo.snapshots.extend(tick())
    return ticks


def lab_flows(n: int) -> set[Flow]:
    """The 5-tuples of a flood over `n` source ports."""
    return {Flow(4, 17, SENDER_IP, COLLECTOR_IP, FIRST_PORT + i, DST_PORT) for i in range(n)}


def counted(snapshots: list[Snapshot], flows: set[Flow]) -> int:
    """Packets of `flows` over all snapshots: exact counts plus sketch estimates."""
    return sum(s.estimate(f) for s in snapshots for f in flows)


def build(lab: Lab) -> SketchTopo:
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip=f"{SENDER_IP}/24", peer_ip=f"{COLLECTOR_IP}/24")
    for h in (h1, h2):
        h.sysctl("net.ipv6.conf.eth0.disable_ipv6", 1)
    h1.pin_neighbour(COLLECTOR_IP, h2.mac())  # no ARP on the link, ever: only the lab's traffic is counted
    h2.pin_neighbour(SENDER_IP, h1.mac())
    return SketchTopo(lab, h1, h2)
