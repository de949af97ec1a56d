"""Module 09's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first frame that went wrong, and passes on the solution (reported as the
reference's)."""

from __future__ import annotations

import pytest

from packetlab.course.assignments import edited
from packetlab.course.grading import CheckFailed, use_reference
from packetlab.course.m09_milestone_l4_load_balancer import exercises as ex

CASES = [
    (ex.check_maglev_lookup, "maglev", "case 'SYN from 10.9.1.11:40000 to the VIP", "got      XDP_DROP"),
    (ex.check_nat_rewrite, "nat", "case 'SYN from 10.9.1.11:40000 to the VIP'", "first difference at byte 24"),
]


@pytest.mark.parametrize(("check", "key", "case", "got"), CASES, ids=["09.A1", "09.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, key, case, got, capsys):
    starter = f"bpf/09-assign-{key}.c"
    with pytest.raises(CheckFailed) as err:
        check(starter)
    assert case in str(err.value) and got in str(err.value)
    check(use_reference(edited(starter), f"bpf/solutions/09-assign-{key}.c"))
    assert "reference solution used" in capsys.readouterr().out
