"""Benchmarks: ``python -m packetlab.bench NAME``.

Each benchmark is a module ``packetlab/bench/<name>.py`` with ``main(argv) -> int``;
it runs both sides of its comparison in one run and prints absolute figures and
ratios. Benchmarks are never part of the test suite: tests check correctness only.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    return statistics.median(values)
