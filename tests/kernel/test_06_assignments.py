"""Module 06's C assignments on the real kernel: each starter (a Verifier Diary bug) is rejected and
the check explains it with the diary's page at the learner's own line; each solution loads, passes
the hidden test packets, and is reported as the reference's when handed over by `use_reference`."""

from __future__ import annotations

import pytest

from packetlab.course.assignments import edited
from packetlab.course.grading import CheckFailed, use_reference
from packetlab.course.m06_ebpf_fundamentals import exercises as ex

CASES = [
    (ex.check_fix_packet_bounds, "packet-bounds", "u32 proto = ip->protocol;"),
    (ex.check_fix_null_map_value, "null-map-value", "__sync_fetch_and_add(count, 1);"),
    (ex.check_fix_map_out_of_range, "map-out-of-range", "h->bucket[b] += 1;"),
]


@pytest.mark.parametrize(("check", "key", "line"), CASES, ids=["06.A1", "06.A2", "06.A3"])
def test_starter_is_explained_at_its_line_and_solution_passes(check, key, line, capsys):
    starter = f"bpf/06-assign-{key}.c"
    with pytest.raises(CheckFailed) as err:
        check(starter)
    text = str(err.value)
    assert "the verifier rejected it" in text and f"(Verifier Diary: {key})" in text
    assert f"at {starter}:" in text and line in text
    check(use_reference(edited(starter), f"bpf/solutions/06-assign-{key}.c"))
    assert "reference solution used" in capsys.readouterr().out


def test_a_fix_that_loads_but_stops_counting_names_the_packet(tmp_path):
    mine = tmp_path / "06-mine.c"
    mine.write_text("int xdp_sizes(struct xdp_md *ctx)\n{\n    return XDP_PASS;\n}\n")
    with pytest.raises(CheckFailed) as err:
        ex.check_fix_map_out_of_range(str(mine))
    assert "case 'a 42-byte frame'" in str(err.value) and "frame_sizes[0]" in str(err.value)
