"""Module 10's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first flow with the wrong verdict, and passes on the solution (reported as the
reference's)."""

from __future__ import annotations

import pytest

from packetlab.course.assignments import edited
from packetlab.course.grading import CheckFailed, use_reference
from packetlab.course.m10_kubernetes_networking import exercises as ex

CASES = [
    (ex.check_policy_lookup, "policy", "case '10.1.0.11 -> 10.1.0.10:6379'", "to-pod (ingress) TC_ACT_SHOT"),
    (ex.check_policy_conntrack, "conntrack", "case 'the reply, after db became deny-all'", "TC_ACT_SHOT"),
]


@pytest.mark.parametrize(("check", "key", "case", "got"), CASES, ids=["10.A1", "10.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, key, case, got, capsys):
    starter = f"bpf/10-assign-{key}.c"
    with pytest.raises(CheckFailed) as err:
        check(starter)
    assert case in str(err.value) and got in str(err.value)
    check(use_reference(edited(starter), f"bpf/solutions/10-assign-{key}.c"))
    assert "reference solution used" in capsys.readouterr().out
