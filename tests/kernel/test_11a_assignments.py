"""Module 11a's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first failing case, and passes on the solution (reported as the reference's
when handed over by `use_reference`)."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11a_telemetry_sketch import exercises as ex
from tests.kernel.starter_and_solution import starter_fails_and_solution_passes

CASES = [
    (ex.check_cms_update, "bpf/11a-assign-cms-update.c", "case 'one IPv4 UDP packet'", "cms slot 0 row 0"),
    (ex.check_heavy_hitters, "bpf/11a-assign-heavy-hitters.c", "case 'the first packet of a flow'", "hh slot 0 place"),
]


@pytest.mark.parametrize(("check", "starter", "case", "detail"), CASES, ids=["11a.A1", "11a.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, starter, case, detail, capsys):
    failure = starter_fails_and_solution_passes(check, starter, capsys)
    assert case in failure and detail in failure


def test_the_cases_collide_where_they_mean_to():
    from packetlab.course.m11a_telemetry_sketch.assignments import A, collisions

    c = collisions()
    assert {"row0", "first", "second"} <= set(c) and A not in c.values()


def test_evicting_an_equal_candidate_is_caught_by_its_case(tmp_path):
    from packetlab.paths import REPO_ROOT

    solution = (REPO_ROOT / ex.HEAVY_HITTERS.solution).read_text()
    mine = tmp_path / "11a-mine.c"
    mine.write_text(solution.replace("est > lighter->estimate", "est >= lighter->estimate"))
    with pytest.raises(CheckFailed) as err:
        ex.check_heavy_hitters(str(mine))
    assert "case 'a flow no heavier than its places'" in str(err.value) and "hh slot 0 place" in str(err.value)
