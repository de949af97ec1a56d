"""What every C assignment's kernel test does first: grade the untouched starter, which must fail,
then its solution handed over as the reference, which must pass and say so."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from packetlab.course.assignments import edited
from packetlab.course.grading import CheckFailed, use_reference


def starter_fails_and_solution_passes(check: Callable[[object], object], starter: str, capsys) -> str:
    """Run `check` on `starter` (bpf/NN-assign-*.c, TODO markers intact) and on its solution in
    bpf/solutions/; returns the starter's failure message for the caller's own assertions."""
    with pytest.raises(CheckFailed) as err:
        check(starter)
    assert edited(starter) is None  # the starter still has its TODO markers
    check(use_reference(edited(starter), starter.replace("bpf/", "bpf/solutions/")))
    assert "reference solution used" in capsys.readouterr().out
    return str(err.value)
