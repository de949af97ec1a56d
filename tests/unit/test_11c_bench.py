"""The DHCP benchmark's arithmetic and report (no root): ratios, targets met or not, percentiles."""

from __future__ import annotations

from packetlab.bench.dhcp import LoadResult, mac_of, report, round_ratios


def test_report_states_ratios_and_targets():
    fast = LoadResult(
        "fast", 30_000, 5.0, 0, 0, latencies=[0.001] * 90 + [0.004] * 10, generator_cpu=5.0, xdp_ns=30_000_000
    )
    slow = LoadResult("slow", 2_000, 5.0, 0, 0, latencies=[0.01] * 100, server_cpu_ns=600_000_000)
    kea = LoadResult("kea", 10_000, 5.0, 3, 0, latencies=[0.005] * 100, server_cpu_ns=800_000_000)
    testrun = {"fast path: DISCOVER -> OFFER (XDP_TX)": 400.0, "XDP_DROP floor": 50.0, "XDP_DROP floor verdict": 1}
    text = report([slow, fast, kea], testrun)
    assert "fast / kea DORA/s: median 3.00x over 1 round(s)" in text
    assert "(target >= 2x, zero wrong replies): met" in text
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


def test_rounds_pair_fast_and_kea_of_the_same_round_and_report_median_and_spread():
    def res(side, rnd, n):
        return LoadResult(side, n, 1.0, 0, 0, latencies=[0.001], round=rnd)

    results = [res("slow", 0, 1000)]
    for rnd, (fast, kea) in enumerate([(10_000, 5_000), (9_000, 6_000), (12_000, 4_000)], start=1):
        results += [res("fast", rnd, fast), res("kea", rnd, kea)]
    assert round_ratios(results) == [2.0, 1.5, 3.0]
    text = report(results, {})
    assert "median 2.00x over 3 round(s) (min 1.50x, max 3.00x; each: 2.00, 1.50, 3.00)" in text
    assert ": met" in text
    assert "fast / slow DORA/s (medians): 10.00x" in text
    results.append(res("kea", 4, 100))  # a round without a fast run is not paired
    assert round_ratios(results) == [2.0, 1.5, 3.0]


def test_the_generators_shortcuts_match_the_codec():
    """A template with the xid patched in is byte for byte the frame the codec builds (UDP checksum
    updated incrementally), and the quick reply reader agrees with the full parser."""
    from packetlab.bench.dhcp import quick_reply, with_xid
    from packetlab.tools.dhcp import wire

    mac = "02:51:00:00:00:01"
    for xid in (0, 1, 0x1234, 0xDEADBEEF, 0xFFFFFFFF, 0xFFFF0000):
        for mtype, kw in ((wire.DISCOVER, {}), (wire.REQUEST, {"requested": "10.67.0.5", "server_id": "10.67.0.1"})):
            assert with_xid(wire.request_frame(mac, mtype, xid=0, **kw), xid) == wire.request_frame(
                mac, mtype, xid=xid, **kw
            )
    params = wire.ReplyParams("10.67.0.1", "02:67:00:00:00:01", "255.255.0.0", "10.67.0.1", ("10.67.0.1",), 600)
    reply = wire.reply_frame(
        wire.parse_frame(wire.request_frame(mac, wire.DISCOVER, xid=77)), wire.OFFER, "10.67.0.9", params
    )
    assert quick_reply(reply) == (77, wire.OFFER, wire.mac_raw(mac), "10.67.0.9", 2)
    assert quick_reply(reply[:100]) is None and quick_reply(b"\0" * 400) is None
