"""Module 11b's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first failing test packet, and passes on the solution (reported as the
reference's when handed over by `use_reference`)."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11b_packet_analyzer import exercises as ex
from packetlab.course.m11b_packet_analyzer.assignments import FLOW_PORTS, FLOW_RECORD
from packetlab.ebpf.loader import resolve_source
from tests.kernel.starter_and_solution import starter_fails_and_solution_passes

CASES = [
    (ex.check_flow_record, "bpf/11b-assign-flow-record.c", "case 'the first packet of a flow (TCP SYN)'", "no record"),
    (ex.check_flow_ports, "bpf/11b-assign-flow-ports.c", "case 'IPv4 TCP SYN'", "10.11.0.1:0 > 10.11.0.2:0"),
]


@pytest.mark.parametrize(("check", "starter", "case", "detail"), CASES, ids=["11b.A1", "11b.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, starter, case, detail, capsys):
    failure = starter_fails_and_solution_passes(check, starter, capsys)
    assert case in failure and detail in failure


def test_a_record_that_forgets_the_end_names_the_fin_case(tmp_path):
    """The record without the FLOW_END bookkeeping passes the first cases and fails on the FIN."""
    text = resolve_source(FLOW_RECORD.solution).read_text().replace("val->ended = 1;", "")
    mine = tmp_path / "11b-mine.c"
    mine.write_text(text)
    with pytest.raises(CheckFailed) as err:
        ex.check_flow_record(str(mine))
    assert "case 'FIN ends the flow'" in str(err.value) and "ended no" in str(err.value)


def test_a_port_parser_that_reads_fragments_names_the_fragment_case(tmp_path):
    text = resolve_source(FLOW_PORTS.solution).read_text().replace("if (later_fragment) {", "if (0) {")
    mine = tmp_path / "11b-mine.c"
    mine.write_text(text)
    with pytest.raises(CheckFailed) as err:
        ex.check_flow_ports(str(mine))
    assert "case 'a later IPv4 fragment" in str(err.value)
