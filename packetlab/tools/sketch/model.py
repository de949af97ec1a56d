"""The Count-Min Sketch of bpf/11a-sketch.c in Python: the same hash, the same counters, the same candidates.

Why a model: it is the oracle the kernel is tested against (fed the same
packets, the program's counters must equal these, cell for cell), and it lets
the benchmark and the lab explore sizes and streams far faster than feeding
every packet to the kernel. The arithmetic is 64-bit and wraps, as in C:

    digest(key) = fold over five little-endian u64 words w:  h = (h ^ w) * K;  h ^= h >> 32
    column(row) = fmix64(digest ^ SEED[row]) >> (64 - log2 w)

`digests` and `columns` do the same on numpy arrays of many keys at once.

Count-Min in one paragraph: d rows of w counters; a packet of flow x adds 1
to one counter per row, C[i][h_i(x)]; the estimate is min_i C[i][h_i(x)].
Every counter of x holds x's count plus whatever collided with it, so the
estimate never undercounts; with w = ceil(e/eps) and d = ceil(ln 1/delta) the
overcount exceeds eps*N with probability at most delta (N = packets).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from packetlab.tools.sketch.layout import FLOW_KEY_SIZE, Geometry

MASK64 = (1 << 64) - 1
K_MUL = 0x9E3779B97F4A7C15
FMIX1, FMIX2 = 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53
ROW_SEEDS = (
    0x243F6A8885A308D3,
    0x13198A2E03707344,
    0xA4093822299F31D0,
    0x082EFA98EC4E6C89,
    0x452821E638D01377,
    0xBE5466CF34E90C6C,
    0xC0AC29B7C97C50DD,
    0x3F84D5B5B5470917,
)


def fmix64(h: int) -> int:
    """murmur3's 64-bit finaliser: every input bit affects every output bit."""
    h ^= h >> 33
    h = (h * FMIX1) & MASK64
    h ^= h >> 33
    h = (h * FMIX2) & MASK64
    return h ^ (h >> 33)


def digest(key: bytes) -> int:
    """The 64-bit digest of a 40-byte flow key (its slot byte must be zero)."""
    if len(key) != FLOW_KEY_SIZE:
        raise ValueError(f"a flow key is {FLOW_KEY_SIZE} bytes, got {len(key)}")
    h = 0
    for i in range(0, FLOW_KEY_SIZE, 8):
        h = ((h ^ int.from_bytes(key[i : i + 8], "little")) * K_MUL) & MASK64
        h ^= h >> 32
    return h


def row_columns(key: bytes, geometry: Geometry) -> list[int]:
    """The counter each row of the sketch adds to for `key`."""
    h = digest(key)
    shift = 64 - geometry.width_log2
    return [fmix64(h ^ ROW_SEEDS[i]) >> shift for i in range(geometry.depth)]


# ---- the same on arrays (numpy uint64 arithmetic wraps like C's) ---------------------------------------
def key_array(keys: Iterable[bytes]) -> np.ndarray:
    """Keys as an (n, 5) uint64 array of their little-endian words."""
    raw = b"".join(keys)
    return np.frombuffer(raw, dtype="<u8").reshape(-1, FLOW_KEY_SIZE // 8).astype(np.uint64)


def _fmix64_array(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(FMIX1)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(FMIX2)
    return h ^ (h >> np.uint64(33))


def digests(words: np.ndarray) -> np.ndarray:
    """`digest` of every row of a `key_array`."""
    h = np.zeros(len(words), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(words.shape[1]):
            h = (h ^ words[:, i]) * np.uint64(K_MUL)
            h = h ^ (h >> np.uint64(32))
    return h


def columns(words: np.ndarray, geometry: Geometry) -> np.ndarray:
    """(depth, n) array: the column of each key in each row."""
    h = digests(words)
    shift = np.uint64(64 - geometry.width_log2)
    with np.errstate(over="ignore"):
        return np.stack([_fmix64_array(h ^ np.uint64(ROW_SEEDS[i])) >> shift for i in range(geometry.depth)]).astype(
            np.int64
        )


# ---- the sketch ----------------------------------------------------------------------------------------
@dataclass
class CandidateSlot:
    key: bytes = bytes(FLOW_KEY_SIZE)
    estimate: int = 0


@dataclass
class CountMinSketch:
    """d x w counters and the 2-choice candidate table, updated exactly as the XDP program does.

    `conservative=True` is conservative update (only the counters that are at the
    minimum rise): still never an undercount, usually a much smaller overcount —
    but it is not linear any more (two sketches cannot be added) and, in the
    kernel, it needs a compare-and-swap per row; this program keeps the plain
    update, the model has both so the lab can compare them.
    """

    geometry: Geometry = field(default_factory=Geometry)
    conservative: bool = False

    def __post_init__(self) -> None:
        self.counters = np.zeros((self.geometry.depth, self.geometry.width), dtype=np.int64)
        self.candidates = [CandidateSlot() for _ in range(self.geometry.candidates)]
        self.total = 0

    def update(self, key: bytes, count: int = 1) -> int:
        """Add `count` packets of `key` (as `count` repeated runs of the program); return the estimate."""
        cols = row_columns(key, self.geometry)
        rows = range(self.geometry.depth)
        if self.conservative:
            target = min(int(self.counters[i, c]) for i, c in zip(rows, cols, strict=True)) + count
            for i, c in zip(rows, cols, strict=True):
                self.counters[i, c] = max(int(self.counters[i, c]), target)
        else:
            for i, c in zip(rows, cols, strict=True):
                self.counters[i, c] += count
        self.total += count
        est = min(int(self.counters[i, c]) for i, c in zip(rows, cols, strict=True))
        self._keep_candidate(key, cols, est)
        return est

    def _keep_candidate(self, key: bytes, cols: list[int], est: int) -> None:
        mask = self.geometry.candidates - 1
        first = cols[0] & mask
        second = cols[1] & mask if len(cols) > 1 else (first + 1) & mask
        a, b = self.candidates[first], self.candidates[second]
        if a.key == key:
            a.estimate = est
        elif b.key == key:
            b.estimate = est
        else:
            lighter = a if a.estimate <= b.estimate else b
            if est > lighter.estimate:
                lighter.key, lighter.estimate = key, est

    def add_many(self, words: np.ndarray, counts: np.ndarray) -> None:
        """Plain update of many (key, count) pairs at once (no candidates: for accuracy studies)."""
        if self.conservative:
            raise ValueError("conservative update depends on order: feed keys one by one with update()")
        cols = columns(words, self.geometry)
        for i in range(self.geometry.depth):
            np.add.at(self.counters[i], cols[i], counts)
        self.total += int(counts.sum())

    def estimate(self, key: bytes) -> int:
        cols = row_columns(key, self.geometry)
        return min(int(self.counters[i, c]) for i, c in enumerate(cols))

    def estimates(self, words: np.ndarray) -> np.ndarray:
        cols = columns(words, self.geometry)
        return np.min(np.stack([self.counters[i][cols[i]] for i in range(self.geometry.depth)]), axis=0)

    def candidate_keys(self) -> list[bytes]:
        return [c.key for c in self.candidates if c.estimate]


# ---- sizing and bounds ---------------------------------------------------------------------------------
def dimensions_for(epsilon: float, delta: float) -> tuple[int, int]:
    """(w, d) for error at most epsilon*N with probability at least 1 - delta: w = ceil(e/eps), d = ceil(ln 1/delta)."""
    if not (0 < epsilon < 1 and 0 < delta < 1):
        raise ValueError("epsilon and delta are fractions between 0 and 1")
    return math.ceil(math.e / epsilon), math.ceil(math.log(1 / delta))


def error_bound(total: int, geometry: Geometry) -> float:
    """The overcount that an estimate exceeds with probability at most e**-d: (e / w) * N."""
    return geometry.epsilon * total
