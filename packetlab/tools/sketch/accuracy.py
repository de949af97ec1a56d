"""How good a sketch's answers are: heavy-hitter precision/recall/F1, per-flow errors, memory.

The same measures serve the benchmark, the lab and the CLI: given the true
per-flow counts and an estimator, they say what the sketch got right.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from packetlab.ebpf.map_memory import map_bytes
from packetlab.tools.sketch.layout import FLOW_KEY_SIZE, Candidate, Counters, Flow, Geometry


@dataclass(frozen=True)
class HeavyHitters:
    """Reported versus true heavy hitters (flows with at least phi of the packets)."""

    phi: float
    true: frozenset[Flow]
    reported: frozenset[Flow]

    @property
    def precision(self) -> float:
        return len(self.true & self.reported) / len(self.reported) if self.reported else 1.0

    @property
    def recall(self) -> float:
        return len(self.true & self.reported) / len(self.true) if self.true else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def false_positives(self) -> frozenset[Flow]:
        return self.reported - self.true

    @property
    def missed(self) -> frozenset[Flow]:
        return self.true - self.reported


def heavy_hitters(
    truth: Mapping[Flow, int], candidates: list[Flow], estimate: Callable[[Flow], int], phi: float
) -> HeavyHitters:
    """Report the candidates whose estimate reaches phi * N (N: all packets in `truth`)."""
    threshold = phi * sum(truth.values())
    true = frozenset(f for f, n in truth.items() if n >= threshold)
    reported = frozenset(f for f in set(candidates) if estimate(f) >= threshold)
    return HeavyHitters(phi, true, reported)


@dataclass(frozen=True)
class Errors:
    """Per-flow estimate errors over every flow of the stream."""

    aae: float  # average absolute error, packets
    are: float  # average relative error (error / true count)
    max_error: int
    flows: int


def errors(true: np.ndarray, estimated: np.ndarray) -> Errors:
    err = estimated.astype(np.int64) - true.astype(np.int64)
    return Errors(
        float(np.abs(err).mean()), float((np.abs(err) / np.maximum(true, 1)).mean()), int(err.max()), len(true)
    )


def exact_memory(flows: int) -> int:
    """An exact per-flow HASH map (40-byte key, packets and bytes) sized for `flows` flows."""
    return map_bytes("hash", FLOW_KEY_SIZE, ctypes.sizeof(Counters), flows)


def sketch_memory(geometry: Geometry, slots: int = 2) -> int:
    """The sketch's counters and candidate table, for `slots` slots (the program keeps two)."""
    return map_bytes("array", 4, 4, slots * geometry.cells) + map_bytes(
        "array", 4, ctypes.sizeof(Candidate), slots * geometry.candidates
    )
