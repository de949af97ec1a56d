"""The host's own counters (veth statistics, ICMP SNMP counters) that show who answered."""

from __future__ import annotations

from typing import Any


def veth_stats(host: Any, dev: str = "eth0") -> dict[str, int]:
    """`ethtool -S dev` inside the host's namespace as {name: value}.

    veth keeps its own XDP counters per queue (rx_queue_0_xdp_packets, _xdp_drops,
    _xdp_tx, _xdp_tx_errors, _xdp_redirect ...): they count what the *driver's*
    XDP hook did, so they move in native mode only.
    """
    import re

    out = host.run(["ethtool", "-S", dev], check=True).stdout
    return {k: int(v) for k, v in re.findall(r"^\s*(\w+):\s*(\d+)\s*$", out, re.M)}


def icmp_counters(host: Any) -> dict[str, int]:
    """The kernel's ICMP and ICMPv6 echo counters in `host`'s namespace.

    Read from /proc/net/snmp and /proc/net/snmp6 inside the namespace (each
    namespace has its own MIB): InEchos/OutEchoReps move when the *kernel*
    answers a ping, and stay put when an XDP program answers it instead.
    """
    out: dict[str, int] = {}
    snmp = host.run(["cat", "/proc/net/snmp"], check=True).stdout.splitlines()
    rows = [line.split() for line in snmp if line.startswith("Icmp:")]
    if len(rows) >= 2:
        out.update({f"Icmp{k}": int(v) for k, v in zip(rows[0][1:], rows[1][1:])})
    for line in host.run(["cat", "/proc/net/snmp6"], check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("Icmp6"):
            out[parts[0]] = int(parts[1])
    return out


ECHO_COUNTERS = ("IcmpInEchos", "IcmpOutEchoReps", "Icmp6InEchos", "Icmp6OutEchoReplies")


def counter_delta(
    before: dict[str, int], after: dict[str, int], keys: tuple[str, ...] = ECHO_COUNTERS
) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}
