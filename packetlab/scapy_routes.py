"""Scapy's "No route found" warnings, filtered out.

To fill in an address a frame leaves unset, scapy looks up routes in the network
namespace the process started in: the host's, not the lab's. packetlab builds frames
to hand to BPF_PROG_TEST_RUN or to send from inside a lab namespace, so the host's
routing table says nothing about them; on a machine without a default route (an
offline classroom, vagrant/kernel61.sh's guest) every such frame printed a red
"WARNING: No route found for IPv4 destination ... (no default route?)" under the
cell. Other scapy warnings still show.
"""

from __future__ import annotations

import logging


def _not_about_host_routes(record: logging.LogRecord) -> bool:
    # scapy's own rate limiter may already have prefixed the message with "more "
    return "No route found for IPv" not in record.getMessage()


def quiet_host_route_warnings() -> None:
    """Drop scapy's route-lookup warnings (idempotent; scapy need not be imported yet)."""
    runtime = logging.getLogger("scapy.runtime")
    if _not_about_host_routes not in runtime.filters:
        runtime.addFilter(_not_about_host_routes)
