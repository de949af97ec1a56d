"""Module 11b: the analyzer's live dashboard in a real browser — served on 127.0.0.1, it shows the
flows of live traffic between two lab namespaces as they arrive, with the loss counters at zero."""

from __future__ import annotations

import pytest

from packetlab.errors import UsageError
from packetlab.tools.analyzer.dashboard import Dashboard
from packetlab.tools.analyzer.kernel import SOURCE
from packetlab.tools.analyzer.session import LiveSession

from .conftest import screenshot_path


def test_dashboard_shows_live_flows(lab, page):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.11.0.1/24", peer_ip="10.11.0.2/24")
    xdp = h2.attach_xdp(SOURCE)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    with LiveSession(xdp, sample_every=1, idle=60) as session, Dashboard(session) as dash:
        page.goto(dash.url)
        page.wait_for_selector("#status:has-text('updated')", timeout=10_000)
        h1.ping("10.11.0.2", count=3, interval=0.2, check=True)
        dash.step(0.2)
        row = page.locator("tr[data-flow='icmp 10.11.0.1:0 > 10.11.0.2:2048']")
        row.wait_for(timeout=10_000)
        assert row.locator("td").nth(2).inner_text() == "3"
        assert page.locator("tr[data-counter='ringbuf_lost'] td").nth(1).inner_text() == "0"
        assert page.locator(".lost").count() == 0
        page.screenshot(path=str(screenshot_path("11b-dashboard")))
        metrics = page.request.get(dash.url + "metrics").text()
        assert 'packetlab_analyzer_kernel_total{counter="table_full"} 0' in metrics
        assert page.request.get(dash.url + "nothing").status == 404
    xdp.detach()
    assert all(u.startswith(dash.url) for u in requests), requests  # the page loads nothing from elsewhere
    with pytest.raises(UsageError, match="loopback only"):
        Dashboard(session, host="0.0.0.0")
