"""Module 11c's C assignments on the real kernel: each check fails on the untouched starter with a
message naming the first failing test packet, and passes on the solution (reported as the
reference's when handed over by `use_reference`); a wrong bucket or wrong addressing is caught."""

from __future__ import annotations

from pathlib import Path

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11c_dhcp_fastpath import exercises as ex
from tests.kernel.starter_and_solution import starter_fails_and_solution_passes

CASES = [
    (
        ex.check_token_bucket,
        "bpf/11c-assign-token-bucket.c",
        "case 'first frame from a MAC (1/s, burst 3)'",
        "the next frames: ['XDP_PASS', 'XDP_PASS', 'XDP_DROP']",
    ),
    (
        ex.check_reply_headers,
        "bpf/11c-assign-reply-headers.c",
        "case 'DISCOVER: OFFER unicast to yiaddr at chaddr'",
        "first difference at byte 0",
    ),
]


@pytest.mark.parametrize(("check", "starter", "case", "detail"), CASES, ids=["11c.A1", "11c.A2"])
def test_starter_fails_naming_the_case_and_solution_passes(check, starter, case, detail, capsys):
    failure = starter_fails_and_solution_passes(check, starter, capsys)
    assert case in failure and detail in failure


def _mutant(tmp_path, solution: str, old: str, new: str) -> str:
    text = Path(solution).read_text()
    assert old in text
    path = tmp_path / solution.rsplit("/", 1)[1].replace("11c-assign", "11c-mine")
    path.write_text(text.replace(old, new))
    return str(path)


def test_a_bucket_without_a_cap_is_caught(tmp_path):
    from packetlab.paths import REPO_ROOT

    mine = _mutant(
        tmp_path, str(REPO_ROOT / "bpf/solutions/11c-assign-token-bucket.c"), "tokens = cap;", "tokens = tokens;"
    )
    with pytest.raises(CheckFailed) as err:
        ex.check_token_bucket(mine)
    assert "case 'idle for an hour (1/s, burst 2): the refill stops at the burst'" in str(err.value)


def test_broadcast_for_a_renewal_is_caught(tmp_path):
    """ciaddr wins over the BROADCAST bit (RFC 2131 4.1): testing the flag first is wrong."""
    from packetlab.paths import REPO_ROOT

    mine = _mutant(
        tmp_path,
        str(REPO_ROOT / "bpf/solutions/11c-assign-reply-headers.c"),
        "if (bp->ciaddr) {",
        "if (bp->ciaddr && !(bp->flags & bpf_htons(0x8000))) {",
    )
    with pytest.raises(CheckFailed) as err:
        ex.check_reply_headers(mine)
    assert "case 'renewal (ciaddr set, BROADCAST bit too): ACK unicast to ciaddr'" in str(err.value)
