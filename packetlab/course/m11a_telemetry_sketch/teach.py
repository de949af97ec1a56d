"""What the module 11a notebook shows: error against memory, the top flows against the truth,
memory side by side, and the scenario of exercise 3 (a heavy hitter the sketch gets wrong)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from packetlab.ebpf.map_memory import memlock_is_an_estimate
from packetlab.show.tables import format_table
from packetlab.tools.sketch.accuracy import HeavyHitters, errors, exact_memory, heavy_hitters, sketch_memory
from packetlab.tools.sketch.layout import MODE_SKETCH, Flow, Geometry
from packetlab.tools.sketch.model import CountMinSketch, error_bound, key_array, row_columns
from packetlab.tools.sketch.telemetry import Snapshot, Telemetry
from packetlab.tools.sketch.traffic import Workload, zipf


def error_vs_width(work: Workload, widths_log2: list[int], depths: list[int]) -> list[dict]:
    """For each (d, w): the model's mean and max overcount over every flow, the bound (e/w)N, and the
    share of flows past the bound (to compare with e**-d)."""
    words = key_array(f.key_bytes() for f in work.flows)
    rows = []
    for d in depths:
        for wl in widths_log2:
            g = Geometry(depth=d, width_log2=wl)
            sketch = CountMinSketch(g)
            sketch.add_many(words, work.counts)
            est = sketch.estimates(words)
            e = errors(work.counts, est)
            bound = error_bound(work.packets, g)
            rows.append(
                dict(
                    d=d,
                    w=g.width,
                    kib=g.cells * 4 / 1024,
                    aae=e.aae,
                    max=e.max_error,
                    bound=bound,
                    past=float(((est - work.counts) > bound).mean()),
                    delta=g.delta,
                )
            )
    return rows


def error_table(rows: list[dict]) -> str:
    return format_table(
        ["d", "w", "counters KiB", "mean overcount", "max overcount", "bound (e/w)N", "flows past it", "e^-d"],
        [
            (
                r["d"],
                r["w"],
                f"{r['kib']:.0f}",
                f"{r['aae']:.1f}",
                r["max"],
                f"{r['bound']:.0f}",
                f"{r['past']:.2%}",
                f"{r['delta']:.2%}",
            )
            for r in rows
        ],
    )


def plot_error_vs_memory(rows: list[dict]):
    """Mean and max overcount against counter memory, one line per depth, the bound dashed."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    for d in sorted({r["d"] for r in rows}):
        mine = [r for r in rows if r["d"] == d]
        ax.plot([r["kib"] for r in mine], [r["aae"] for r in mine], "o-", label=f"mean, d={d}")
        ax.plot([r["kib"] for r in mine], [max(r["max"], 0.5) for r in mine], "x:", label=f"max, d={d}")
    first = [r for r in rows if r["d"] == rows[0]["d"]]
    ax.plot([r["kib"] for r in first], [r["bound"] for r in first], "k--", label="bound (e/w)·N")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("counter memory, KiB (d·w·4 bytes)")
    ax.set_ylabel("overcount, packets")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def top_table(snap: Snapshot, truth: dict[Flow, int], k: int = 8) -> str:
    """The snapshot's k heaviest flows beside their true counts."""
    bound = error_bound(sum(truth.values()), snap.geometry) if snap.mode == MODE_SKETCH else 0
    rows = []
    for flow, est, how in snap.top(k):
        true = truth.get(flow, 0)
        rows.append((str(flow), how, est, true, est - true, f"{bound:.0f}"))
    return format_table(["flow", "counted", "estimate", "true", "overcount", "bound"], rows)


def memory_table(flows: int, geometries: list[Geometry]) -> tuple[str, int, list[int]]:
    """Kernel memory (memlock) of an exact map for `flows` flows against each sketch (two slots)."""
    exact = exact_memory(flows)
    sketches = [sketch_memory(g) for g in geometries]
    rows = [(f"exact HASH, {flows} flows", f"{exact / 1024:.0f}", "1")]
    rows += [
        (
            f"sketch d={g.depth} w={g.width} + {g.candidates} candidates, 2 slots",
            f"{m / 1024:.0f}",
            f"1/{exact / m:.1f}",
        )
        for g, m in zip(geometries, sketches, strict=True)
    ]
    table = format_table(["structure", "KiB (memlock)", "share"], rows)
    if memlock_is_an_estimate():
        table += (
            "\nThis kernel's memlock is an estimate (keys and values only, before 6.4): the figures above are"
            "\nmodelled from each map's shape as newer kernels count it (hash element headers and buckets included)."
        )
    return table, exact, sketches


def timeline_table(ticks) -> str:
    """The adaptive controller's intervals (topology.Tick rows)."""
    return format_table(
        ["t (s)", "phase", "counted in", "packets", "flows/s", "fill", "next"],
        [
            (f"{t.at:.2f}", t.phase, t.counted_in, t.packets, f"{t.rate:,.0f}", f"{t.fill:.0%}", t.next_mode)
            for t in ticks
        ],
    )


# ---- exercise 3: a heavy hitter the sketch reports wrongly ----------------------------------------------
EX3_GEOMETRY = Geometry(depth=2, width_log2=8, candidates=64, flows=1024, sources=256)
EX3_PHI = 0.02


@dataclass
class FalseHeavyScenario:
    """A trace whose sketch report (phi = 2 %) holds exactly one flow that is not heavy."""

    work: Workload
    geometry: Geometry = EX3_GEOMETRY
    phi: float = EX3_PHI
    report: HeavyHitters | None = None
    sketch: Snapshot | None = None
    exact: Snapshot | None = None

    @property
    def threshold(self) -> float:
        return self.phi * self.work.packets

    def run(self, telemetry: Telemetry) -> HeavyHitters:
        """Replay the trace into the kernel twice: in sketch mode, then in exact mode (the truth)."""
        telemetry.set_mode("sketch")
        telemetry.replay(self.work.runs(rounds=4, seed=11))
        self.sketch = telemetry.set_mode("exact")
        telemetry.replay(self.work.runs(rounds=4, seed=11))
        self.exact = telemetry.swap()
        truth = {f: pc[0] for f, pc in self.exact.flows.items()}
        sketch = self.sketch
        self.report = heavy_hitters(truth, [f for f, _ in sketch.candidates], sketch.estimate, self.phi)
        return self.report

    def report_table(self) -> str:
        assert self.report is not None and self.sketch is not None, "run() first"
        rows = sorted(((self.sketch.estimate(f), str(f)) for f in self.report.reported), reverse=True)
        return format_table(["flow the sketch reports as heavy", "estimate"], [(f, est) for est, f in rows])

    def explain(self, flow: Flow) -> str:
        """Which heavy flows share each of `flow`'s counters."""
        assert self.exact is not None
        truth = {f: pc[0] for f, pc in self.exact.flows.items()}
        mine = row_columns(flow.key_bytes(), self.geometry)
        lines = []
        for i, col in enumerate(mine):
            sharing = [
                (truth[f], str(f))
                for f in truth
                if f != flow and row_columns(f.key_bytes(), self.geometry)[i] == col and truth[f] >= 50
            ]
            heavy = ", ".join(f"{s} ({n})" for n, s in sorted(sharing, reverse=True)[:2]) or "only light flows"
            lines.append(f"row {i}, counter {col}: shared with {heavy}")
        return "\n".join(lines)


def false_heavy_scenario() -> FalseHeavyScenario:
    """The first seed whose model report holds exactly one false heavy hitter (deterministic)."""
    for seed in range(200):
        work = zipf(300, 20000, 1.0, seed=seed)
        model = CountMinSketch(EX3_GEOMETRY)
        for flow, count in work.runs(rounds=4, seed=11):
            model.update(flow.key_bytes(), count)
        threshold = EX3_PHI * work.packets
        truth = work.truth()
        reported = {Flow.from_key(k) for k in model.candidate_keys() if model.estimate(k) >= threshold}
        wrong = [f for f in reported if truth[f] < threshold]
        missed = [f for f, n in truth.items() if n >= threshold and f not in reported]
        if len(wrong) == 1 and truth[wrong[0]] < threshold / 2 and not missed:
            return FalseHeavyScenario(work)
    raise RuntimeError("no seed gives one false heavy hitter")  # the search is deterministic: never for these sizes


def bound_for(packets: int, geometry: Geometry) -> tuple[float, float]:
    """(e/w * N, e**-d): the reference answer of exercise 2."""
    return math.e / geometry.width * packets, math.exp(-geometry.depth)


def share_past(snap: Snapshot, truth: dict[Flow, int], bound: float) -> float:
    flows = list(truth)
    est = np.array([snap.estimate(f) for f in flows])
    true = np.array([truth[f] for f in flows])
    return float(((est - true) > bound).mean())
