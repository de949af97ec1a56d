"""The DHCP benchmark's arithmetic and report (no root): ratios, targets met or not, percentiles."""

from __future__ import annotations

from packetlab.bench.dhcp import LoadResult, mac_of, report


def test_report_states_ratios_and_targets():
    fast = LoadResult(
        "fast", 30_000, 5.0, 0, 0, latencies=[0.001] * 90 + [0.004] * 10, generator_cpu=5.0, xdp_ns=30_000_000
    )
    slow = LoadResult("slow", 2_000, 5.0, 0, 0, latencies=[0.01] * 100, server_cpu_ns=600_000_000)
    kea = LoadResult("kea", 10_000, 5.0, 3, 0, latencies=[0.005] * 100, server_cpu_ns=800_000_000)
    testrun = {"fast path: DISCOVER -> OFFER (XDP_TX)": 400.0, "XDP_DROP floor": 50.0, "XDP_DROP floor verdict": 1}
    text = report([slow, fast, kea], testrun)
    assert "fast / kea DORA/s: 3.00x  (target >= 2x, zero wrong replies): met" in text
    assert "fast-path reply / XDP_DROP floor: 8.00x  (target <= 10x): met" in text
    assert "lower bound" in text  # the generator used all of its CPU
    assert fast.pct(0.5) == 0.001 and fast.pct(0.99) == 0.004
    assert fast.cpu_us == 1.0 and slow.cpu_us == 300.0
    kea.wrong = 1
    fast.wrong = 1
    assert "NOT met" in report([fast, kea], testrun)


def test_generated_macs_are_unique_and_local():
    macs = {mac_of(0x51, n) for n in range(1, 5000)}
    assert len(macs) == 4999 and all(m.startswith("02:51:") for m in macs)
