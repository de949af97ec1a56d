"""A smoke run of ``python -m packetlab.bench sketch`` at a tiny size: it runs end to end and prints
its tables and targets. Its figures are not asserted (a timing never becomes a test)."""

from __future__ import annotations

from packetlab.bench import sketch


def test_bench_sketch_smoke(capsys):
    args = ["--flows", "500", "--packets", "3000", "--skews", "1.1", "--spike", "200", "--repeat", "1000"]
    assert sketch.main([*args, "--rounds", "1", "--no-live"]) == 0
    out = capsys.readouterr().out
    assert "zipf s=1.1, 500 flows + spike of 200 flows" in out and "XDP_DROP floor" in out
    assert "sketch update <= 5x the XDP_DROP floor" in out
