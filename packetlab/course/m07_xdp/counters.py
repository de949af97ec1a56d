"""Readers for module 07's counting programs: per-protocol and per-source counters, per-CPU sums."""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
from typing import Any

from packetlab.ebpf.maps import percpu_sum
from packetlab.errors import PacketlabError

# Index = enum category in bpf/07-xdp-counter.c (keep the two in the same order).
CATEGORIES: tuple[str, ...] = (
    "non-IP",
    "IPv4 TCP",
    "IPv4 UDP",
    "IPv4 ICMP",
    "IPv4 other",
    "IPv6 TCP",
    "IPv6 UDP",
    "IPv6 ICMPv6",
    "IPv6 other",
    "fragment",
    "malformed",
)


# ---- reading the counter program's maps ---------------------------------------------------
def _counter(value: Any, what: str) -> int:
    """Packets or bytes of a `struct counters` value, summed over CPUs if per-CPU."""
    return int(getattr(percpu_sum(value), what))


def _check_layout(table: Any, map_name: str, fields: tuple[str, ...]) -> None:
    """The map's value struct (as bcc built it from the C source) must have `fields`."""
    leaf = getattr(table, "sLeaf", None) or table.Leaf  # per-CPU tables keep the element type in sLeaf
    have = tuple(name for name, *_ in getattr(leaf, "_fields_", ()))
    if have[: len(fields)] != fields:
        raise PacketlabError(
            f"map {map_name} has values {{{', '.join(have) or leaf.__name__}}}",
            cause=f"packetlab.course.m07_xdp.counters expects struct {{{', '.join(fields)}}} "
            "(struct counters in bpf/07-xdp-counter.c)",
            fix="keep the C struct and this module in step, or read the map yourself",
        )


def protocol_counts(program: Any, what: str = "packets") -> dict[str, int]:
    """Packets (or bytes) per category from ``proto_stats``, summed over CPUs.

    `program` is an XdpAttachment or LoadedProgram of bpf/07-xdp-counter.c.
    """
    if what not in ("packets", "bytes"):
        raise PacketlabError(f"cannot count {what!r}", fix="use what='packets' or what='bytes'")
    table = program["proto_stats"]
    _check_layout(table, "proto_stats", ("packets", "bytes"))
    out = dict.fromkeys(CATEGORIES, 0)
    for k, v in table.items():
        idx = int(getattr(k, "value", k))
        if 0 <= idx < len(CATEGORIES):
            out[CATEGORIES[idx]] = _counter(v, what)
    return out


def source_key_address(key: Any) -> str:
    """The address in a ``struct src_key`` (family 4 or 6 + 16 address bytes)."""
    raw = bytes(key.addr)
    if key.family == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    if key.family == 6:
        return str(ipaddress.IPv6Address(raw))
    return f"family-{key.family}"


def source_counts(program: Any, what: str = "packets") -> dict[str, int]:
    """Packets (or bytes) per source address from ``src_stats``, largest first."""
    table = program["src_stats"]
    _check_layout(table, "src_stats", ("packets", "bytes"))
    pairs = [(source_key_address(k), _counter(v, what)) for k, v in table.items()]
    return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def clear_maps(program: Any) -> None:
    """Empty every map the program declares (zero for arrays).

    Pooled programs are reset when released, but only the maps Python has
    touched; this clears all of them, e.g. before handing a program back.
    """
    inner = getattr(program, "program", program)
    for name in inner.map_names():
        with contextlib.suppress(Exception):
            inner[name].clear()


def percpu_array(program: Any, map_name: str) -> list[int]:
    """Every slot of a per-CPU u64 array, each summed over CPUs."""
    table = program[map_name]
    slots = sorted(table.items(), key=lambda kv: int(getattr(kv[0], "value", kv[0])))
    return [int(getattr(total, "value", total)) for total in (percpu_sum(v) for _k, v in slots)]


def percpu_total(program: Any, map_name: str, index: int) -> int:
    """One slot of a per-CPU u64 array (e.g. ``replies``, ``redirected``), summed over CPUs."""
    total = percpu_sum(program[map_name][ctypes.c_int(index)])
    return int(getattr(total, "value", total))  # a map that is not per-CPU gives one ctypes value


def _attachment_ifindex(program: Any) -> int | None:
    """The ifindex (in its own namespace) of the interface an attachment is on; None for a bare program."""
    namespace, dev = getattr(program, "namespace", None), getattr(program, "dev", None)
    if namespace is None or dev is None:
        return None
    from packetlab.topo.rtnl import iproute

    with iproute(netns=namespace) as ipr:
        found = ipr.link_lookup(ifname=dev)
    return found[0] if found else None
