"""Checks for module 06 (eBPF fundamentals). Each one asks the real kernel for the truth."""

from __future__ import annotations

import re
from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m06_ebpf_fundamentals.assignments import MAP_OUT_OF_RANGE, NULL_MAP_VALUE, PACKET_BOUNDS

EXERCISE_PROGRAM = "bpf/06-fail-exercise-two-lookups.c"
LRU_SEQUENCE = [1, 2, 3, 4, 1, 5, 6]
LRU_CAPACITY = 4  # lru_by_src in bpf/06-map-types.c


def _need(answer: Any, exercise: str, shape: str) -> None:
    if unanswered(answer):
        raise CheckFailed(exercise, "no answer yet", f"set answer = {shape} in the cell above")


@graded(
    "read the verifier log above: name the entry, the line it complains about and the buggy line in "
    "answer, and run this check again"
)
def check_verifier_reading(answer: Any) -> bool:
    """Exercise 1: which diary entry, which line the verifier names, which line holds the mistake."""
    ex = "verifier reading"
    _need(answer, ex, '{"entry": "...", "verifier_line": N, "bug_line": M}')
    require(
        isinstance(answer, dict) and {"entry", "verifier_line", "bug_line"} <= set(answer),
        ex,
        f"answer must be a dict with keys entry, verifier_line, bug_line; got {answer!r}",
    )
    from packetlab.course.m06_ebpf_fundamentals.verifier_diary import BY_KEY
    from packetlab.ebpf.loader import LoadedProgram, resolve_source
    from packetlab.errors import VerifierError

    try:
        LoadedProgram(EXERCISE_PROGRAM).close()
    except VerifierError as err:
        error = err
    else:
        raise CheckFailed(ex, f"{EXERCISE_PROGRAM} loaded — somebody fixed it?", "restore the file with git checkout")
    entry = str(answer["entry"])
    require(entry in BY_KEY, ex, f"{entry!r} is not a diary entry", f"pick one of: {', '.join(BY_KEY)}")
    require(
        re.search(BY_KEY[entry].expect, error.log) is not None,
        ex,
        f"the verifier's complaint does not match the {entry!r} entry",
        "read the first line of 'cause:' in the VerifierError and compare it with the diary table",
    )
    require(
        answer["verifier_line"] == error.line_number,
        ex,
        f"the verifier points at line {error.line_number}, not {answer['verifier_line']}",
        "the line is printed after 'at 06-fail-exercise-two-lookups.c:'",
    )
    lines = resolve_source(EXERCISE_PROGRAM).read_text().splitlines()
    checks = [n for n, line in enumerate(lines, 1) if re.match(r"\s*if \(!per_if\)", line)]
    bug = checks[-1]  # the second `if (!per_if)` should have tested per_queue
    require(
        answer["bug_line"] != error.line_number,
        ex,
        "the verifier reports where the NULL pointer is USED; the mistake is where its check should be",
        "find the line that was meant to test the second lookup's pointer",
    )
    require(
        answer["bug_line"] == bug,
        ex,
        f"line {answer['bug_line']} is not where the mistake is",
        "two pointers come from two lookups; count the NULL checks and what each one tests",
    )
    return passed(
        ex,
        f"{entry}: the verifier names line {error.line_number} (the use), "
        f"the bug is line {bug} (it tests per_if twice, per_queue never)",
    )


@graded("predict which keys the HASH and the LRU map keep for the sequence, set answer and run this check again")
def check_lru_prediction(answer: Any, sequence: list[int] | None = None) -> bool:
    """Exercise 2: which sources stay in the 4-entry HASH and the 4-entry LRU_HASH after a sequence."""
    ex = "hash vs LRU"
    sequence = list(sequence or LRU_SEQUENCE)
    _need(answer, ex, '{"hash": {..}, "lru": {..}}')
    require(
        isinstance(answer, dict) and {"hash", "lru"} <= set(answer),
        ex,
        f"answer must be a dict with keys 'hash' and 'lru' (sets of last octets); got {answer!r}",
    )
    from packetlab.course.m06_ebpf_fundamentals.demos import lru_vs_hash

    truth = lru_vs_hash(sequence)
    hash_ans, lru_ans = set(answer["hash"]), set(answer["lru"])
    require(
        hash_ans == truth["hash"],
        ex,
        f"the HASH map kept {sorted(truth['hash'])}, not {sorted(hash_ans)}",
        "a full BPF_HASH refuses new keys (the insert returns -E2BIG); existing keys are never evicted",
    )
    exact = exact_lru(sequence, LRU_CAPACITY)
    batch = lru_ans == exact and truth["lru"] != exact and truth["lru"] < exact  # this kernel evicts in batches
    require(
        lru_ans == truth["lru"] or batch,
        ex,
        f"the LRU_HASH kept {sorted(truth['lru'])}, not {sorted(lru_ans)}",
        "an LRU map evicts the least recently USED key; the program looks a key up before updating it, "
        "and a lookup counts as a use",
    )
    note = (
        f"; that is what an exact LRU keeps, but this kernel kept only {sorted(truth['lru'])}: a CPU that finds "
        "no free element evicts a batch of unused keys at once (kernels without the 2025 LRU fix, e.g. Debian 12's "
        "6.1) — LRU maps are approximate"
        if batch
        else ""
    )
    return passed(
        ex,
        f"sequence {sequence}: HASH kept {sorted(truth['hash'])} "
        f"({truth['hash_full']} inserts refused), LRU kept {sorted(lru_ans)}{note}",
    )


def exact_lru(sequence: list[int], capacity: int) -> set[int]:
    """What an exact LRU of `capacity` keys holds after `sequence` (each key looked up, then stored)."""
    kept: list[int] = []
    for key in sequence:
        if key in kept:
            kept.remove(key)
        elif len(kept) == capacity:
            kept.pop(0)
        kept.append(key)
    return set(kept)


@graded(
    "count the helper calls in the translated program yourself (bpftool prog dump xlated), set answer"
    " and run this check again"
)
def check_xlated_calls(answer: Any, prog_id: int) -> bool:
    """Exercise 3: how many helper calls are left in the xlated code of a program."""
    ex = "xlated calls"
    _need(answer, ex, "an int")
    require(isinstance(answer, int), ex, f"answer must be an int, got {answer!r}")
    from packetlab.course.m06_ebpf_fundamentals.demos import count_xlated_calls

    truth = count_xlated_calls(prog_id)
    require(
        answer == truth,
        ex,
        f"bpftool shows {truth} call instructions in program {prog_id}, not {answer}",
        f"count the lines containing '(85) call' in bpftool prog dump xlated id {prog_id}",
    )
    return passed(ex, f"{truth} helper calls remain; the array lookups were inlined by the verifier")


@graded(
    "read the IPv4 counter from the pinned map yourself (bpftool map dump pinned ...), set answer and"
    " run this check again"
)
def check_core_count(answer: Any, core_prog: Any, expected_min: int = 1) -> bool:
    """Exercise 4: the IPv4 frame count of the pinned CO-RE map, read through bpftool's JSON."""
    ex = "read a pinned map"
    _need(answer, ex, "an int")
    require(isinstance(answer, int), ex, f"answer must be an int, got {answer!r}")
    from packetlab.ebpf.bpftool import entries_to_dict, map_dump

    entries = map_dump(str(core_prog.map_pin("frames_by_proto")))
    truth = entries_to_dict(entries).get(0x0800, 0)
    require(
        truth >= expected_min,
        ex,
        f"the map holds only {truth} IPv4 frames",
        "ping h2 from h1 first (the cell above does it), then read the map",
    )
    require(
        answer == truth,
        ex,
        f"bpftool says {truth} IPv4 frames, not {answer}",
        "IPv4 is EtherType 0x0800 = 2048; in 'formatted' the key is the number 2048",
    )
    return passed(ex, f"{truth} IPv4 frames counted by the CO-RE program in h2's namespace")


# ---- C assignments: fix three Verifier Diary programs (graded by packetlab.course.assignments) --------
@graded(PACKET_BOUNDS.try_it)
def check_fix_packet_bounds(source: str | None) -> bool:
    """Assignment 06.A1: the IPv4 protocol counter, accepted by the verifier and still counting."""
    return check(PACKET_BOUNDS, source)


@graded(NULL_MAP_VALUE.try_it)
def check_fix_null_map_value(source: str | None) -> bool:
    """Assignment 06.A2: the per-interface frame counter, accepted and counting from the first frame."""
    return check(NULL_MAP_VALUE, source)


@graded(MAP_OUT_OF_RANGE.try_it)
def check_fix_map_out_of_range(source: str | None) -> bool:
    """Assignment 06.A3: the frame-size histogram, accepted and counting large frames in the last bucket."""
    return check(MAP_OUT_OF_RANGE, source)
