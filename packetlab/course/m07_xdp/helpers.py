"""Module 07's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

import random
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.show.tables import WORDS, format_table

# ---- exercise 1: which action? ---------------------------------------------------------------
ACTION_SCENARIOS: dict[str, str] = {
    "not_mine": "An ARP request reaches your IPv4-only filter. It must reach the kernel as if no program ran.",
    "blocked": "A UDP packet from an address on your blocklist. It must vanish, quietly and cheaply.",
    "bug": "Your parser reached a state that should be impossible (a bug). The frame must go, and the event "
    "must be visible to tracing (the xdp:xdp_exception tracepoint).",
    "pong": "An ICMP echo request your program has just rewritten into the echo reply. "
    "It must go back out where it came from.",
    "elsewhere": "A frame that must leave through another interface (or another CPU, or an AF_XDP socket).",
}
_ACTION_NUMBERS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}


def show_action_scenarios() -> None:
    """Print the scenarios of exercise 1."""
    print(format_table(["scenario", "what must happen"], list(ACTION_SCENARIOS.items()), align=WORDS))


def normalise_action(value: Any) -> str | None:
    """'drop', 'XDP_DROP', 1 -> 'XDP_DROP'; None for anything unrecognisable."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _ACTION_NUMBERS.get(value)
    if isinstance(value, str):
        name = value.strip().upper()
        name = name if name.startswith("XDP_") else f"XDP_{name}"
        return name if name in _ACTION_NUMBERS.values() else None
    return None


def classify(frame: bytes | Any, program: Any = None) -> str:
    """Run `frame` through bpf/07-xdp-counter.c (BPF_PROG_TEST_RUN) and return the category it counted."""
    from packetlab.course.m07_xdp.counters import clear_maps, protocol_counts
    from packetlab.ebpf.loader import acquire, release

    prog = program or acquire("bpf/07-xdp-counter.c")
    try:
        before = protocol_counts(prog)
        result = prog.test_run(bytes(frame))
        after = protocol_counts(prog)
    finally:
        if program is None:
            clear_maps(prog)
            release(prog)
    if result.verdict != "XDP_PASS":
        raise PacketlabError(
            f"07-xdp-counter returned {result.verdict}",
            cause="it should pass every frame",
            fix="was bpf/07-xdp-counter.c edited?",
        )
    moved = [k for k in after if after[k] != before[k]]
    return moved[0] if moved else "(nothing counted)"


# ---- exercise 3: the incremental checksum ---------------------------------------------------------
def ones_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


def echo_requests(n: int = 200, *, seed: int = 7) -> list[bytes]:
    """ICMP echo requests (Ethernet frames) with random id/seq/payload, including the
    awkward ones: request checksums near 0xffff, where a sum carries."""
    from scapy.layers.inet import ICMP, IP
    from scapy.layers.l2 import Ether

    rng = random.Random(seed)
    out: list[bytes] = []
    high = 0
    while len(out) < n:
        payload = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 48)))
        pkt = (
            Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02")
            / IP(src="10.7.1.1", dst="10.7.2.2")
            / ICMP(id=rng.randrange(65536), seq=rng.randrange(65536))
            / payload
        )
        raw = bytes(pkt)
        csum = int.from_bytes(raw[36:38], "big")
        if csum >= 0xF800:
            high += 1
        elif len(out) - high >= n // 2:  # keep half of the set in the carry zone
            continue
        out.append(raw)
    return out
