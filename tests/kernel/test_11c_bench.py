"""The DHCP benchmark's correctness on a tiny run: every server answers every DORA right.

No timing is asserted (performance is the benchmark command's job): a fraction of a second per
server, one round, a window of 8. What must hold at any speed: zero wrong replies (type, xid,
chaddr, the ACK's address equal to the OFFER's, checksums of the sampled replies), no exchange
timed out, each server completed DORAs, the fast runs were answered in XDP.
"""

from __future__ import annotations

import shutil

import pytest

from packetlab.bench.dhcp import report, run


@pytest.mark.skipif(
    shutil.which("kea-dhcp4") is None, reason="kea-dhcp4 is not installed (vagrant/provision.sh installs it)"
)
def test_tiny_bench_run_has_no_wrong_replies_and_completes_every_dora():
    results, testrun = run(seconds=0.4, window=8, calls=20, rounds=2, warmup=0.2)
    assert sorted({r.side for r in results}) == ["fast", "kea", "slow"]
    assert [(r.side, r.round) for r in results if r.round] == [("fast", 1), ("kea", 1), ("kea", 2), ("fast", 2)]
    for r in results:
        assert r.wrong == 0, f"{r.side} round {r.round}: wrong replies {r.why_wrong}"
        assert r.timeouts == 0, f"{r.side} round {r.round}: {r.timeouts} DORAs never completed"
        assert r.exchanges > 0 and len(r.latencies) == r.exchanges
    fast = [r for r in results if r.side == "fast"]
    assert all(r.xdp_ns > 0 and r.server_cpu_ns == 0 for r in fast), "fast runs are answered in XDP"
    assert testrun["fast path: DISCOVER -> OFFER (XDP_TX) verdict"] == 3  # XDP_TX
    text = report(results, testrun)
    assert "over 2 round(s)" in text
