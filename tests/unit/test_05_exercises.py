"""Module 05, no kernel: the TCP payload check — the right answer passes, typical wrong answers
fail with a useful reason."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m05_python_network_programming import exercises as ex

# ---- 1: TCP payload ---------------------------------------------------------------------


def reference_payload(frame):
    ihl = (frame[14] & 0x0F) * 4
    total = int.from_bytes(frame[16:18], "big")
    tcp = 14 + ihl
    return frame[tcp + (frame[tcp + 12] >> 4) * 4 : 14 + total]


def test_tcp_payload_reference_passes(capsys):
    assert ex.check_tcp_payload(reference_payload)
    assert "✔" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, reason",
    [
        (lambda f: f[54:], "TCP header has options here"),  # right for the plain frame only
        (lambda f: f[14 + (f[14] & 15) * 4 + (f[14 + (f[14] & 15) * 4 + 12] >> 4) * 4 :], "Ethernet padding"),
        (lambda f: f[34 + (f[34 + 12] >> 4) * 4 : 14 + int.from_bytes(f[16:18], "big")], "IPv4 header has options"),
        (lambda f: f[14 + (f[14] & 15) * 4 + 20 : 14 + int.from_bytes(f[16:18], "big")], "TCP header has options"),
        (lambda f: f[99999], "raised IndexError"),
        (lambda f: "text", "not bytes"),
        (None, "no function"),
    ],
)
def test_tcp_payload_wrong_answers_explain_themselves(wrong, reason):
    with pytest.raises(CheckFailed, match=reason):
        ex.check_tcp_payload(wrong)
