"""Module 11a's C assignments in the telemetry sketch, bpf/11a-sketch.c (graded on a small geometry).

* 11a.A1 — the Count-Min update: the `cms-update` region (the key's digest, one column per row
  from its seed, an atomic add per row, the estimate as the minimum, the two candidate places).
* 11a.A2 — the heavy-hitter candidates: the `hh-update` region (refresh a known key, else
  replace the lighter of its two places when the flow now outweighs it).

Each hidden case is a short packet sequence fed in sketch mode with BPF_PROG_TEST_RUN (the case's
packet is the last one); the oracle is the Python model of the same sketch
(`packetlab.tools.sketch.model.CountMinSketch`), compared counter for counter and candidate for
candidate, in the slot of the case's epoch — the other slot must stay untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
from scapy.layers import inet, inet6  # noqa: F401  (binds IP and IPv6 under Ether: a case's packet reads in one line)

from packetlab.course.assignments import Assignment, Case
from packetlab.ebpf.loader import LoadedProgram
from packetlab.tools.sketch.layout import MODE_SKETCH, Flow, Geometry, control_word
from packetlab.tools.sketch.model import CountMinSketch, row_columns
from packetlab.tools.sketch.traffic import frame

GEOMETRY = Geometry(depth=3, width_log2=8, candidates=16, flows=512, sources=64)
A = Flow(4, 17, "10.11.1.1", "10.11.2.2", 40002, 53)
T6 = Flow(6, 6, "fd11::1", "fd11::2", 40001, 443)


def _udp(sport: int) -> Flow:
    return Flow(4, 17, "10.11.1.9", "10.11.2.2", sport, 53)


def _places(flow: Flow) -> tuple[list[int], int, int]:
    cols = row_columns(flow.key_bytes(), GEOMETRY)
    mask = GEOMETRY.candidates - 1
    return cols, cols[0] & mask, cols[1] & mask


@lru_cache(maxsize=1)
def collisions() -> dict[str, Flow]:
    """Flows that collide with A where a case needs it (found once, deterministically, by port).

    row0: shares A's row-0 counter and no other; first / second: take A's first / second
    candidate place as their own first place, and neither touches A's other place.
    """
    cols, first, second = _places(A)
    assert first != second, "A's two candidate places coincide: pick another A"
    found: dict[str, Flow] = {}
    for sport in range(1024, 65536):
        f = _udp(sport)
        c, p1, p2 = _places(f)
        if "row0" not in found and c[0] == cols[0] and all(c[i] != cols[i] for i in range(1, GEOMETRY.depth)):
            found["row0"] = f
        elif "first" not in found and p1 == first and p2 != second and set(c) & set(cols) == set():
            found["first"] = f
        elif "second" not in found and p1 == second and p2 != first and set(c) & set(cols) == set():
            found["second"] = f
        if len(found) == 3:
            return found
    raise AssertionError("no colliding flows found")


# ---- one case: a packet sequence in sketch mode, compared with the model ---------------------------
def _describe(flows: Sequence[Flow]) -> str:
    return ", ".join(f"{n} x {f}" for f, n in _runs(flows))


def _runs(flows: Sequence[Flow]) -> list[tuple[Flow, int]]:
    runs: list[tuple[Flow, int]] = []
    for f in flows:
        if runs and runs[-1][0] == f:
            runs[-1] = (f, runs[-1][1] + 1)
        else:
            runs.append((f, 1))
    return runs


def _compare(prog: LoadedProgram, flows: Sequence[Flow], slot: int) -> tuple[str, str] | None:
    from packetlab.tools.sketch.telemetry import Telemetry

    g = GEOMETRY
    model = CountMinSketch(g)
    for f in flows:
        model.update(f.key_bytes())
    tel = Telemetry(prog, g)
    seen = f"after {_describe(flows)} in slot {slot}"
    for s in (0, 1):
        cells = np.array(tel.cms.lookup_range(s * g.cells, g.cells), dtype=np.int64).reshape(g.depth, g.width)
        want = model.counters if s == slot else np.zeros_like(model.counters)
        for row in range(g.depth):
            if not np.array_equal(cells[row], want[row]):
                col = int(np.flatnonzero(cells[row] != want[row])[0])
                return (
                    f"{seen}: cms slot {s} row {row} column {col} = {int(want[row, col])}",
                    f"{int(cells[row, col])} (the cells of slot {s} row {row} that are not zero: "
                    f"{ {int(c): int(cells[row, c]) for c in np.flatnonzero(cells[row])} })",
                )
    for s in (0, 1):
        got = list(tel.hh.lookup_range(s * g.candidates, g.candidates))
        for place in range(g.candidates):
            c = got[place]
            key, est = (model.candidates[place].key, model.candidates[place].estimate) if s == slot else (bytes(40), 0)
            if bytes(c.key) != key or c.estimate != est:
                name = lambda k, e: f"{Flow.from_key(k)} with estimate {e}" if e else "empty"  # noqa: E731
                return (
                    f"{seen}: hh slot {s} place {place} {name(key, est)}",
                    name(bytes(c.key), c.estimate),
                )
    return None


def _sequence(name: str, flows: Sequence[Flow], epoch: int = 0) -> Case:
    def prepare(prog: LoadedProgram) -> None:
        prog["ctl"][prog["ctl"].Key(0)] = prog["ctl"].Leaf(control_word(MODE_SKETCH, epoch))
        for f in flows[:-1]:
            prog.test_run(frame(f))

    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        return _compare(prog, flows, epoch & 1)

    return Case(name, frame(flows[-1]), verdict="XDP_PASS", prepare=prepare, after=after)


def _cms_cases() -> list[Case]:
    c = collisions()
    return [
        _sequence("one IPv4 UDP packet", [A]),
        _sequence("three packets of an IPv6 TCP flow", [T6] * 3),
        _sequence("two flows in slot 1 (epoch 1)", [A, T6, A], epoch=1),
        _sequence("a flow sharing only row 0's counter", [c["row0"]] * 4 + [A]),
    ]


def _hh_cases() -> list[Case]:
    c = collisions()
    p, q = c["first"], c["second"]
    return [
        _sequence("the first packet of a flow", [A]),
        _sequence("three packets of one flow", [A] * 3),
        _sequence("a flow no heavier than its places", [p] * 3 + [q, A]),
        _sequence("a flow outweighing the lighter place", [p] * 3 + [q, A, A]),
        _sequence("both places equally light", [p, q, A, A]),
        _sequence("a flow in slot 1 (epoch 3)", [A, A], epoch=3),
    ]


def _assignment(key: str, title: str, name: str, region: str, cases: Callable[[], list[Case]], hint: str) -> Assignment:
    starter = f"bpf/11a-assign-{name}.c"
    return Assignment(
        key=key,
        title=title,
        starter=starter,
        solution=f"bpf/solutions/11a-assign-{name}.c",
        skeleton="bpf/11a-sketch.c",
        region=region,
        cases=cases,
        function="xdp_sketch",
        cflags=GEOMETRY.cflags(),
        try_it=f"write your part in {starter}, delete its TODO markers, then run the check again",
        hint=hint,
    )


CMS_UPDATE = _assignment(
    "11a.A1",
    "Count-Min Sketch update",
    "cms-update",
    "cms-update",
    _cms_cases,
    hint="h = key_digest(key); per row: col = fmix64(h ^ row_seed(i)) >> (64 - SK_WIDTH_LOG2), "
    "idx = slot * SK_CELLS + i * SK_WIDTH + col, __sync_fetch_and_add(c, 1), est = min(est, *c); "
    "first/second = row 0/1's col & (SK_HH - 1)",
)
HEAVY_HITTERS = _assignment(
    "11a.A2",
    "heavy-hitter candidates",
    "heavy-hitters",
    "hh-update",
    _hh_cases,
    hint="places slot * SK_HH + first and + second; same_key() on each: refresh its estimate and return; "
    "else lighter = a->estimate <= b->estimate ? a : b, replaced (key and est) only if est > lighter->estimate",
)

ASSIGNMENTS = (CMS_UPDATE, HEAVY_HITTERS)
