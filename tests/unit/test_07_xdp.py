"""Module 07 (XDP), no kernel: the counter's categories and map layout, run-rate arithmetic,
the bpf_stats sysctl switch (on a stand-in file), the action check, the echo request set and the
benchmark's argument checks."""

from __future__ import annotations

import re

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m07_xdp import exercises as ex
from packetlab.course.m07_xdp.counters import CATEGORIES, protocol_counts
from packetlab.ebpf.loader import BPF_DIR
from packetlab.ebpf.stats import ProgStats, bpf_stats

# ---- pure logic ------------------------------------------------------------------------------


def test_categories_mirror_the_c_enum():
    text = (BPF_DIR / "07-xdp-counter.c").read_text()
    body = re.search(r"enum category \{(.*?)\};", text, re.S).group(1)
    names = re.findall(r"^\s*(CAT_\w+)", body, re.M)
    assert len(names) == len(CATEGORIES)
    assert names[0] == "CAT_NON_IP" and names[-1] == "CAT_MALFORMED"


def test_map_layout_is_checked():
    import ctypes

    class Other(ctypes.Structure):
        _fields_ = [("hits", ctypes.c_uint64)]

    class FakeTable(dict):
        Leaf = Other

    with pytest.raises(Exception, match="expects struct {packets, bytes}"):
        protocol_counts({"proto_stats": FakeTable()})


def test_run_rate_arithmetic():
    a, b = ProgStats(10.0, 100, 5_000), ProgStats(12.0, 2_100, 45_000)
    r = b.since(a)
    assert (r.runs, r.pps, r.ns_per_run) == (2_000, 1_000.0, 20.0)
    assert ProgStats(1.0, 5, 5).since(ProgStats(1.0, 5, 5)).ns_per_run is None


def test_bpf_stats_sysctl_method_restores_even_on_error(tmp_path):
    fake = tmp_path / "bpf_stats_enabled"
    fake.write_text("0\n")
    said: list[str] = []
    with pytest.raises(RuntimeError), bpf_stats(method="sysctl", sysctl_path=str(fake), announce=said.append):
        assert fake.read_text() == "1"
        raise RuntimeError("measurement failed")
    assert fake.read_text() == "0"
    assert "set to 1" in said[0] and "restored to 0" in said[1]


# ---- exercise checks (pure or test-run based) -----------------------------------------------------


def test_check_actions():
    right = {"not_mine": "XDP_PASS", "blocked": "drop", "bug": 0, "pong": "tx", "elsewhere": "XDP_REDIRECT"}
    assert ex.check_actions(right)
    for wrong, why in [
        ({**right, "blocked": "XDP_ABORTED"}, "blocked"),
        ({**right, "pong": "XDP_REDIRECT"}, "pong"),
        ({**right, "bug": "XDP_DROP"}, "bug"),
        ({k: v for k, v in right.items() if k != "bug"}, "bug"),
        ({**right, "pong": "bounce"}, "not an XDP action"),
    ]:
        with pytest.raises(CheckFailed, match=why):
            ex.check_actions(wrong)
    with pytest.raises(CheckFailed, match="no answer"):
        ex.check_actions(None)


def test_echo_request_set_includes_carries():
    reqs = ex.echo_requests()
    assert sum(int.from_bytes(r[36:38], "big") >= 0xF800 for r in reqs) >= len(reqs) // 3


# ---- live frames and the benchmark ----------------------------------------------------------------


def test_bench_main_rejects_bad_options(capsys):
    from packetlab.bench import xdp as bench

    with pytest.raises(SystemExit):
        bench.main(["--rounds", "x"])
