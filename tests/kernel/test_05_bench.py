"""Module 05 on the real kernel: a tiny smoke run of `python -m packetlab.bench parsing` (it
captures in a lab of its own; shape only, never speed)."""

from __future__ import annotations

from packetlab.bench import parsing
from packetlab.topo import netns


def test_bench_parsing_smoke(capsys):
    assert parsing.main(["--frames", "150", "--repeat", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("frames: 150 (captured in lab pybench)") and "decode 150/150 agree" in out[0]
    assert out[1].split() == ["parser", "frames", "best", "s", "packets/s", "µs/frame", "vs", "scapy"]
    assert [line.split()[0] for line in out[3:]] == ["scapy", "dpkt", "decode", "five_tuple"]
    assert not netns.exists("pybench-c") and not netns.exists("pybench-s")
