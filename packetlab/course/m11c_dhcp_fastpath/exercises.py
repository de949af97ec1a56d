"""Checks for the module 11c exercises (the XDP DHCP fast path).

Each check asks the real thing: the gateway's pinned XDP program decides fast or
slow for every request (BPF_PROG_TEST_RUN), scapy recomputes the checksums of
the fixed reply, and the kernel reports what maps of the chosen sizes cost.
"""

from __future__ import annotations

from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m11c_dhcp_fastpath import helpers
from packetlab.course.m11c_dhcp_fastpath.assignments import REPLY_HEADERS, TOKEN_BUCKET


@graded("read the fast path's rules in the lesson, predict each request's path, set answer and run this check again")
def check_path_predictions(answer: Any, topo, steps: list) -> bool:
    """Exercise 1: for each request of the sequence, 'fast' (XDP answers) or 'slow' (the daemon does)."""
    ex = "fast or slow path"
    require(
        not unanswered(answer), ex, "no answer yet", f"answer = ['fast', 'slow', ...]: one per request ({len(steps)})"
    )
    require(
        isinstance(answer, (list, tuple)) and len(answer) == len(steps),
        ex,
        f"give one prediction per request: {len(steps)} of them",
        "answer = ['fast', 'slow', ...] in the order of the table",
    )
    wrong = []
    for step, guess in zip(steps, answer, strict=True):
        require(guess in ("fast", "slow"), ex, f"{guess!r} is neither 'fast' nor 'slow'")
        actual = helpers.path_of(topo, step.frame)
        if guess != actual:
            wrong.append(f"{step.label}: you said {guess}, the kernel took the {actual} path")
    if wrong:
        raise CheckFailed(
            ex,
            f"{len(wrong)} of {len(steps)} wrong:\n  " + "\n  ".join(wrong),
            "XDP answers only DISCOVER and REQUEST from a MAC (and VLAN) with a cached lease, for that "
            "lease's address and from this server; everything else is the slow path's",
        )
    return passed(ex, "every prediction matches what the XDP program did")


@graded("change the UDP checksum of `broken` (RFC 1624, or from scratch), set answer and run this check again")
def check_fixed_checksum(answer: Any, original: bytes, broken: bytes) -> bool:
    """Exercise 2: the reply with its lease time changed must carry a valid UDP checksum again."""
    ex = "fix the checksum"
    require(not unanswered(answer), ex, "no answer yet", "answer = the fixed frame, as bytes")
    require(isinstance(answer, (bytes, bytearray)), ex, f"the answer is a {type(answer).__name__}, not bytes")
    answer = bytes(answer)
    require(len(answer) == len(broken), ex, f"the frame has {len(answer)} bytes, the reply {len(broken)}")
    ok = helpers.checksums(answer)
    require(ok["ipv4"], ex, "the IPv4 header checksum no longer verifies", "only the UDP checksum needed a change")
    require(
        ok["udp"],
        ex,
        "the UDP checksum still does not verify",
        "the checksum covers the pseudo-header, the UDP header and the whole payload; after changing a "
        "32-bit field m to m', HC' = ~(~HC + ~m_hi + ~m_lo + m'_hi + m'_lo) with end-around carry",
    )
    changed = [i for i in range(len(answer)) if answer[i] != broken[i]]
    udp_csum = (14 + 20 + 6, 14 + 20 + 7)
    require(
        all(i in udp_csum for i in changed),
        ex,
        f"bytes other than the UDP checksum changed (offsets {changed[:6]})",
        "keep the new lease time: change only the two checksum bytes at offsets 40 and 41",
    )
    return passed(ex, "the reply verifies again with the new lease time")


@graded("work out entries and bytes from the lesson's formula, set answer and run this check again")
def check_map_sizing(answer: Any, subscribers: int) -> bool:
    """Exercise 3: max_entries for leases and buckets for `subscribers`, and the memory they take."""
    ex = "size the maps"
    require(not unanswered(answer), ex, "no answer yet", "answer = {'leases': ..., 'buckets': ..., 'mib': ...}")
    require(isinstance(answer, dict), ex, "the answer must be a dict", "answer = {'leases': N, 'buckets': N, 'mib': X}")
    missing = [k for k in ("leases", "buckets", "mib") if k not in answer]
    require(not missing, ex, f"missing: {', '.join(missing)}")
    leases, buckets, mib = answer["leases"], answer["buckets"], answer["mib"]
    require(isinstance(leases, int) and isinstance(buckets, int), ex, "entries are whole numbers")
    require(
        leases >= subscribers,
        ex,
        f"{leases} lease entries for {subscribers} subscribers: the slow path's update fails (E2BIG) "
        "once the map is full, and those subscribers never get the fast path",
        "every bound lease needs an entry",
    )
    require(
        leases <= 4 * subscribers,
        ex,
        f"{leases} entries is more than 4x what is needed",
        "leave headroom, not a desert",
    )
    require(
        buckets >= subscribers,
        ex,
        f"{buckets} token buckets for {subscribers} active MACs: the LRU evicts buckets in use, and an evicted "
        "bucket starts full again — a flooder that cycles MACs is never limited",
        "one bucket per MAC that sends DHCP",
    )
    measured = helpers.kernel_map_bytes(leases, buckets)
    modelled = helpers.modelled_map_bytes(leases, buckets)
    try:
        guess = float(mib) * 2**20
    except (TypeError, ValueError):
        raise CheckFailed(ex, f"mib = {mib!r} is not a number") from None
    figure = f"the kernel charges {measured / 2**20:.1f} MiB for these two maps"
    if measured < 0.6 * modelled:  # older kernels (6.1) report keys and values only, not the elements' headers
        figure = (
            f"this kernel reports {measured / 2**20:.1f} MiB (fdinfo memlock: keys and values only; newer kernels "
            f"count the whole element), the maps take about {modelled / 2**20:.1f} MiB"
        )
        measured = modelled
    require(
        abs(guess - measured) <= 0.25 * measured,
        ex,
        f"{figure}, you said {float(mib):.1f}",
        "per entry: about 48 bytes of hash-element header + the key (8) + the value (16); plus 8 bytes per hash "
        "bucket (max_entries rounded up to a power of two), for each map",
    )
    return passed(ex, f"{figure} ({leases} leases and {buckets} buckets)")


# ---- C assignments: the learner writes the eBPF (graded by packetlab.course.assignments) --------------
@graded(TOKEN_BUCKET.try_it)
def check_token_bucket(source: str | None) -> bool:
    """Assignment 11c.A1: take_token(), spliced into 11c-dhcp-fastpath; bursts judged by verdicts and drop counters."""
    return check(TOKEN_BUCKET, source)


@graded(REPLY_HEADERS.try_it)
def check_reply_headers(source: str | None) -> bool:
    """Assignment 11c.A2: reply_headers(), spliced into 11c-dhcp-fastpath; replies compared byte for byte."""
    return check(REPLY_HEADERS, source)
