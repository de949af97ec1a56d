"""Scapy's warnings about the host's routing table are dropped; its other warnings are not."""

from __future__ import annotations

import logging

import packetlab  # noqa: F401  (importing packetlab installs the filter)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_route_lookup_warnings_are_dropped_other_warnings_kept() -> None:
    import scapy.error  # noqa: F401  (scapy's own rate-limiting filter, as in a lab)

    runtime, seen = logging.getLogger("scapy.runtime"), _Collect()
    runtime.addHandler(seen)
    try:
        runtime.warning("No route found for IPv4 destination %s (no default route?)", "10.0.1.2")
        runtime.warning("more No route found for IPv6 destination ::1 (no default route?)")
        runtime.warning("Mac address to reach destination not found. Using broadcast.")
    finally:
        runtime.removeHandler(seen)
    assert seen.messages == ["Mac address to reach destination not found. Using broadcast."]
