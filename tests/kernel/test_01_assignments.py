"""Module 01's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first failing frame, and passes on the solution (reported as the reference's)."""

from __future__ import annotations

import pytest

from packetlab.course.assignments import edited
from packetlab.course.grading import CheckFailed, use_reference
from packetlab.course.m01_osi_model import exercises as ex

CASES = [
    (ex.check_counter_ipv6, "ipv6", "case 'IPv6 TCP'", "stats[2] = {'packets': 1"),
    (ex.check_counter_count, "count", "case 'ARP request'", "stats[0] = {'packets': 1, 'bytes': 42}"),
]


@pytest.mark.parametrize(("check", "key", "case", "expected"), CASES, ids=["01.A1", "01.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, key, case, expected, capsys):
    starter = f"bpf/01-assign-{key}.c"
    with pytest.raises(CheckFailed) as err:
        check(starter)
    assert case in str(err.value) and f"expected {expected}" in str(err.value)
    check(use_reference(edited(starter), f"bpf/solutions/01-assign-{key}.c"))
    assert "reference solution used" in capsys.readouterr().out
