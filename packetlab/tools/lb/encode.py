"""What the maps of bpf/09-lb.c hold for a config: pure functions, no kernel.

`LoadBalancer` (balancer.py) decides *when* to write; these say *what*: byte
order, the VIP and backend entries with their flag bits, the address pre-filter,
the Maglev ring of slot numbers, and which table row and backend slot each VIP
and backend gets (`plan_slots`) so that an update keeps what stays.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence

from packetlab.tools.lb import maglev
from packetlab.tools.lb.config import MAX_BACKENDS, MAX_VIPS, VIP, Backend, ConfigError, LBConfig
from packetlab.tools.lb.health import BackendHealth
from packetlab.tools.lb.layout import (
    BE_F_ACTIVE,
    BE_F_NEXTHOP,
    BE_F_REDIRECT,
    BE_F_UP,
    FILTER_BE_SRC,
    FILTER_VIP_DST,
    MAX_IFINDEX,
    VIP_F_ACTIVE,
    VIP_F_DSR,
    VIP_F_STICKY,
    BackendEntry,
    Vip,
    VipKey,
    mac_bytes,
)
from packetlab.tools.lb.nexthop import NextHop


def be32(addr: str) -> int:
    """An IPv4 address as the integer whose memory bytes are in network order."""
    return int.from_bytes(socket.inet_aton(addr), "little")


def be16(port: int) -> int:
    return socket.htons(port)


def addr_bucket(addr: str) -> int:
    """lb_addr_bucket() in bpf/09-lb.c: the XOR of the address's four bytes."""
    a, b, c, d = socket.inet_aton(addr)
    return a ^ b ^ c ^ d


def backend_key(v: VIP, b: Backend) -> str:
    """ "address:port" — one backend slot, shared by every VIP that names the same backend and port."""
    return f"{b.address}:{v.backend_port(b)}"


def vip_key(v: VIP) -> VipKey:
    """The `vips` map key: address, port and protocol, as the program reads them from a packet."""
    return VipKey(addr=be32(v.address), port=be16(v.port), proto=v.proto_number)


def vip_meta(v: VIP, row: int) -> Vip:
    """The `vips`/`vip_meta` value: the VIP's table row, ring size and mode flags."""
    flags = (VIP_F_DSR if v.mode == "dsr" else 0) | (VIP_F_STICKY if v.sticky else 0) | VIP_F_ACTIVE
    return Vip(
        index=row, ring_size=v.table_size, flags=flags, addr=be32(v.address), port=be16(v.port), proto=v.proto_number
    )


def backend_entry(key: str, *, up: bool, hop: NextHop | None, redirect: bool) -> BackendEntry:
    """The `backends` value for backend `key` ("address:port").

    With a resolved next hop on a devmap-sized ifindex the program forwards in XDP
    (BE_F_NEXTHOP, and BE_F_REDIRECT when redirecting is allowed); without one it
    rewrites and hands the packet to the kernel to route."""
    addr, port = key.rsplit(":", 1)
    flags = BE_F_ACTIVE | (BE_F_UP if up else 0)
    entry = BackendEntry(addr=be32(addr), port=be16(int(port)))
    if hop is not None:
        entry.saddr = be32(hop.src) if hop.src else 0
        entry.ifindex = hop.ifindex
        if hop.mac and hop.ifindex < MAX_IFINDEX:
            flags |= BE_F_NEXTHOP | (BE_F_REDIRECT if redirect else 0)
            entry.dmac[:] = list(mac_bytes(hop.mac))
            entry.smac[:] = list(mac_bytes(hop.our_mac))
    entry.flags = flags
    return entry


def usable_backends(v: VIP, health: Mapping[str, BackendHealth]) -> list[Backend]:
    """The backends of `v` that get new flows: weight above 0, not draining, not down."""
    return [b for b in v.backends if b.weight > 0 and not b.drain and health.get(backend_key(v, b), BackendHealth()).up]


def ring_slots(v: VIP, usable: Sequence[Backend], slots: Mapping[str, int]) -> list[int]:
    """The VIP's Maglev table over its `usable` backends, as backend slot numbers (maglev.EMPTY: none)."""
    names = [backend_key(v, b) for b in usable]
    table = maglev.build_table(names, [b.weight for b in usable], v.table_size)
    return [slots[names[t]] if t != maglev.EMPTY else maglev.EMPTY for t in table]


def filter_marks(cfg: LBConfig) -> list[int]:
    """The 256-bucket pre-filter: which buckets hold a VIP address / a NAT backend address."""
    marks = [0] * 256
    for v in cfg.vips:
        marks[addr_bucket(v.address)] |= FILTER_VIP_DST
        if v.mode == "nat":
            for b in v.backends:
                marks[addr_bucket(b.address)] |= FILTER_BE_SRC
    return marks


def vip_address_counts(cfg: LBConfig) -> dict[str, int]:
    """The `vip_addrs` map: how many VIPs share each address."""
    counts: dict[str, int] = {}
    for v in cfg.vips:
        counts[v.address] = counts.get(v.address, 0) + 1
    return counts


def plan_slots(
    cfg: LBConfig, vip_rows: Mapping[str, int], slots: Mapping[str, int], retired: Sequence[int]
) -> tuple[dict[str, int], dict[str, int], list[int]]:
    """Table rows for `cfg`'s VIPs and slots for its backends, given the current ones.

    VIPs and backends that stay keep their row and slot (so their counters and
    flows stay); new ones get a row or slot never used, else the one freed
    longest ago. Returns (vip key -> row, backend key -> slot, retired slots)."""
    new_rows = {k: i for k, i in vip_rows.items() if any(v.key == k for v in cfg.vips)}
    free_rows = [i for i in range(MAX_VIPS) if i not in new_rows.values()]
    for v in cfg.vips:
        if v.key not in new_rows:
            new_rows[v.key] = free_rows.pop(0)
    wanted = {backend_key(v, b) for v in cfg.vips for b in v.backends}
    new_slots = {k: s for k, s in slots.items() if k in wanted}
    new_retired = [s for s in retired if s not in new_slots.values()]
    new_retired += [s for k, s in slots.items() if k not in wanted and s not in new_retired]
    used = set(new_slots.values()) | set(new_retired)
    fresh = [s for s in range(MAX_BACKENDS) if s not in used]
    for k in sorted(wanted - set(new_slots)):
        if fresh:
            new_slots[k] = fresh.pop(0)
        elif new_retired:
            new_slots[k] = new_retired.pop(0)  # reuse the slot freed longest ago
        else:
            raise ConfigError([f"more than {MAX_BACKENDS} backends"], "config")
    return new_rows, new_slots, new_retired
