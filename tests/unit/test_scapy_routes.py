"""Scapy's warnings about the host's routing table are dropped; its other warnings are not."""

from __future__ import annotations

import logging

import pytest

import packetlab  # noqa: F401  (importing packetlab installs the filter)


def test_route_lookup_warnings_are_dropped_other_warnings_kept(caplog: pytest.LogCaptureFixture) -> None:
    import scapy.error  # noqa: F401  (scapy's own rate-limiting filter, as in a lab)

    runtime = logging.getLogger("scapy.runtime")
    runtime.addHandler(caplog.handler)  # scapy's logger does not propagate to the root logger
    try:
        runtime.warning("No route found for IPv4 destination %s (no default route?)", "10.0.1.2")
        runtime.warning("more No route found for IPv6 destination ::1 (no default route?)")
        runtime.warning("Mac address to reach destination not found. Using broadcast.")
    finally:
        runtime.removeHandler(caplog.handler)
    assert [r.getMessage() for r in caplog.records] == ["Mac address to reach destination not found. Using broadcast."]
