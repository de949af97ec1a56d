"""The Verifier Diary, no kernel: it covers the eight classic rejections, its files follow the
naming and comment conventions, and verifier logs are mapped to the right source line."""

from __future__ import annotations

import pytest

from packetlab.course.m06_ebpf_fundamentals import verifier_diary as diary
from packetlab.ebpf.loader import explain_verifier_log, resolve_source

REQUIRED = {
    "packet-bounds",
    "unbounded-loop",
    "uninit-stack",
    "null-map-value",
    "map-out-of-range",
    "bad-helper",
    "misaligned",
    "stack-too-large",
}


IDS = [e.key for e in diary.ENTRIES]


def test_the_diary_covers_the_eight_classic_rejections():
    assert set(diary.BY_KEY) >= REQUIRED
    assert len(diary.ENTRIES) >= 8


@pytest.mark.parametrize("entry", diary.ENTRIES, ids=IDS)
def test_files_follow_the_naming_and_comment_conventions(entry):
    broken, fixed = resolve_source(entry.broken), resolve_source(entry.fixed)
    assert broken.name.startswith("06-fail-") and fixed.name.startswith("06-fixed-")
    head = broken.read_text()[:600]
    assert "REJECTED on purpose" in head and "Why it fails" in head  # header comment says why
    assert diary.MARKER in broken.read_text().splitlines()[entry.marked_line - 1]
    assert diary.MARKER not in fixed.read_text()


# ---- the toolkit changes this module made in packetlab/ebpf/loader.py ---------------------------------


def test_log_lines_with_hyphenated_file_names_map_to_the_source():
    source = "int a;\nint b = ctx->x;   /* the read */\nreturn 0;\n"
    log = (
        "0: R1=ctx()\n; int b = ctx->x;   /* the read */ @ 06-fail-some-thing.bpf.c:2\n"
        "1: (61) r1 = *(u32 *)(r1 +0)\ninvalid access to packet, off=0 size=4\n"
    )
    ex = explain_verifier_log(log, source)
    assert ex.line_number == 2 and "ctx->x" in ex.source_line


def test_helper_rejection_without_line_info_points_at_the_call_not_a_comment():
    source = (
        "/* bpf_skb_load_bytes() is a tc helper */\nint f(void *ctx)\n{\n"
        "    bpf_skb_load_bytes(ctx, 0, &w, 4);\n    return 0;\n}\n"
    )
    log = "6: (85) call bpf_skb_load_bytes#26\nprogram of this type cannot use helper bpf_skb_load_bytes#26\n"
    ex = explain_verifier_log(log, source)
    assert ex.line_number == 4
    assert ex.meaning and "helper" in ex.meaning


def test_jump_complexity_is_explained_as_a_loop_problem():
    ex = explain_verifier_log("16: (55) if r4 != 0x0 goto pc-6\nThe sequence of 8193 jumps is too complex.\n", "")
    assert ex.meaning and "loop" in ex.meaning


def test_a_rewritten_map_call_in_a_log_without_line_numbers_maps_by_likeness():
    """Linux 6.1 prints source lines without '@ file:line', and bcc rewrote the map call: the line
    is found by how alike it is (taken from a real 6.1 log of bpf/06-fail-uninit-stack.c)."""
    entry = diary.BY_KEY["uninit-stack"]
    log = (
        "; if (ip->protocol == IPPROTO_TCP && (void *)(tcp + 1) <= data_end)\n"
        "15: (55) if r3 != 0x6 goto pc+8       ; R3=6\n"
        "; bpf_ringbuf_output((void *)bpf_pseudo_fd(1, -1), &ev, sizeof(ev), 0);"
        "   /* REJECTED HERE: ev.ports may be unset */\n"
        "30: (85) call bpf_ringbuf_output#130\n"
        "invalid indirect read from stack R2 off -32+16 size 24\n"
    )
    ex = explain_verifier_log(log, entry.source())
    assert ex.line_number == entry.marked_line and diary.MARKER in ex.source_line
    # and a line that resembles nothing in the source is not forced onto one
    ex = explain_verifier_log("; totally_unrelated_call(42);\n7: (85) call foo#1\ninvalid mem access\n", entry.source())
    assert ex.line_number is None
