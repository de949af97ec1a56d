"""Module 08's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first frame with the wrong verdict, and passes on the solution (reported as the
reference's); 08.A2 runs inside the firewall itself."""

from __future__ import annotations

import pytest

from packetlab.course.assignments import edited
from packetlab.course.grading import CheckFailed, use_reference
from packetlab.course.m08_milestone_xdp_firewall import exercises as ex

CASES = [
    (ex.check_rule_match, "rule-match", "case 'tcp 80 (rule 1: allow 1-1023)'"),
    (ex.check_firewall_core, "classify", "case 'web 80'"),
]


@pytest.mark.parametrize(("check", "key", "case"), CASES, ids=["08.A1", "08.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, key, case, capsys):
    starter = f"bpf/08-assign-{key}.c"
    with pytest.raises(CheckFailed) as err:
        check(starter)
    assert case in str(err.value) and "expected XDP_PASS" in str(err.value) and "got      XDP_DROP" in str(err.value)
    check(use_reference(edited(starter), f"bpf/solutions/08-assign-{key}.c"))
    assert "reference solution used" in capsys.readouterr().out
