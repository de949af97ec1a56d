"""Module 07's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first failing test packet, and passes on the solution (reported as the
reference's when handed over by `use_reference`)."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m07_xdp import exercises as ex
from tests.kernel.starter_and_solution import starter_fails_and_solution_passes

CASES = [
    (ex.check_proto_percpu, "bpf/07-assign-proto-percpu.c", "case 'IPv4 UDP'", "proto_stats"),
    (ex.check_arp_reply, "bpf/07-assign-arp-reply.c", "case 'who-has 10.7.2.254 (ours)'", "expected XDP_TX"),
]


@pytest.mark.parametrize(("check", "starter", "case", "detail"), CASES, ids=["07.A1", "07.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, starter, case, detail, capsys):
    failure = starter_fails_and_solution_passes(check, starter, capsys)
    assert case in failure and detail in failure


def test_compile_error_shows_clangs_line(tmp_path):
    mine = tmp_path / "07-mine.c"
    mine.write_text("static __always_inline void count_proto(u32 cat, u64 len)\n{\n    return 1\n}\n")
    with pytest.raises(CheckFailed) as err:
        ex.check_proto_percpu(str(mine))
    assert "does not compile" in str(err.value) and "07-mine.c:3" in str(err.value)
