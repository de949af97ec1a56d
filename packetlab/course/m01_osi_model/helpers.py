"""Module 01's lab helpers: what its notebook and checks call besides the checks themselves."""

from __future__ import annotations

import json

from packetlab.course.grading import CheckFailed
from packetlab.proto.dissect import dissect
from packetlab.topo.host import Host


def observed_fragments(
    sender: Host, receiver: Host, destination: str, size: int, receiver_dev: str = "eth0"
) -> list[tuple[int, int, bool]]:
    """Ping with `size` data bytes; return the echo request's fragments as the receiver saw them.

    Each fragment is (offset in bytes, data length, more-fragments flag), in offset order.
    """
    with receiver.capture(receiver_dev, filter="icmp") as frames:
        result = sender.ping(destination, size=size, count=1, timeout=2)
    src = sender.run(["ip", "-j", "route", "get", destination], check=True).stdout
    source_ip = json.loads(src)[0].get("prefsrc")
    found: dict[int, list[tuple[int, int, bool]]] = {}
    for f in frames:
        d = dissect(f)
        if d.get("IPv4.src") != source_ip or d.get("IPv4.dst") != destination:
            continue
        found.setdefault(d["IPv4.id"], []).append(
            (d["IPv4.frag"] * 8, d["IPv4.len"] - d["IPv4.ihl"] * 4, bool(d["IPv4.flags"] & 1))
        )
    if not found:
        raise CheckFailed(
            "fragments",
            f"no echo request from {sender.name} reached {receiver.name}:{receiver_dev}",
            f"ping said: {result}; is the path up? {sender.name}.ping('{destination}')",
        )
    frags = max(found.values(), key=len)
    return sorted(frags)
