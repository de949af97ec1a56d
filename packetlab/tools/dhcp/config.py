"""The pools file of `packetlab dhcp serve`: YAML in, a validated `DhcpConfig` out.

Every problem names the file and the field (``pools.yaml: pools[0].range: ...``)
and all problems are reported at once, before anything is started or changed.

    server:
      id: 10.67.0.1            # server identifier: our address on the subscriber side
      offer_hold: 30           # seconds an offered address stays reserved
    rate_limit:                # enforced in XDP; 0 switches a bucket off
      per_mac: 20              # DHCP frames per second per subscriber MAC
      per_mac_burst: 40
      slow_path: 2000          # frames per second to the slow path, all MACs together
      slow_path_burst: 4000
      data_rate: 0             # optional: bytes per second per subscriber MAC for everything but
      data_burst: 0            #   DHCP and ARP (0/absent: off); burst in bytes (0: one second's worth)
    pools:
      - name: subscribers
        vlan: 0                # 802.1Q id the pool serves; 0 = untagged
        subnet: 10.67.0.0/24
        range: 10.67.0.100-10.67.0.199
        router: 10.67.0.1
        dns: [10.67.0.53]      # at most 2 (what the fast path carries)
        lease_time: 600
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packetlab.errors import InputError
from packetlab.tools.dhcp.layout import MAX_DNS, MAX_POOLS

DATA_KEYS = ("data_rate", "data_burst")
DATA_MAX = 4_000_000_000  # bytes (per second): what the program's u32 holds, 32 Gbit/s
MAX_FRAME = 1518  # an Ethernet frame with a 1500-byte payload and a VLAN tag, without FCS


class ConfigError(InputError):
    """The pools file was refused; nothing was started."""


@dataclass(frozen=True)
class PoolConfig:
    name: str
    vlan: int
    subnet: ipaddress.IPv4Network
    first: ipaddress.IPv4Address
    last: ipaddress.IPv4Address
    router: str | None
    dns: tuple[str, ...]
    lease_time: int

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def contains(self, addr: str) -> bool:
        try:
            a = ipaddress.IPv4Address(addr)
        except ValueError:
            return False
        return self.first <= a <= self.last

    def addresses(self):
        for n in range(int(self.first), int(self.last) + 1):
            yield str(ipaddress.IPv4Address(n))


@dataclass(frozen=True)
class RateLimit:
    per_mac: int = 20
    per_mac_burst: int = 40
    slow_path: int = 2000
    slow_path_burst: int = 4000
    data_rate: int = 0  # bytes/s per subscriber for non-DHCP frames; 0 = no data rate limit
    data_burst: int = 0  # bytes; 0 = data_rate (one second's worth)


@dataclass(frozen=True)
class DhcpConfig:
    server_id: str
    pools: tuple[PoolConfig, ...]
    offer_hold: int = 30
    rate_limit: RateLimit = field(default_factory=RateLimit)
    source: str = "<dict>"

    def pool_for_vlan(self, vlan: int) -> tuple[int, PoolConfig] | None:
        for i, p in enumerate(self.pools):
            if p.vlan == vlan:
                return i, p
        return None

    def pool_named(self, name: str) -> tuple[int, PoolConfig] | None:
        for i, p in enumerate(self.pools):
            if p.name == name:
                return i, p
        return None


def load(path: str | os.PathLike) -> DhcpConfig:
    """Read and validate a pools file."""
    import yaml

    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read {p}", cause=exc.strerror, fix="give the path of a pools YAML file") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{p.name}: not valid YAML", cause=str(exc).splitlines()[0], fix="fix the YAML syntax"
        ) from None
    return parse(data, source=p.name)


def parse(data: Any, *, source: str = "<dict>") -> DhcpConfig:
    """Validate a parsed pools document; raise one ConfigError listing every problem."""
    problems: list[str] = []

    def bad(where: str, what: str) -> None:
        problems.append(f"{source}: {where}: {what}")

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must be a mapping with 'server' and 'pools'", fix=_EXAMPLE)
    for key in data:
        if key not in ("server", "rate_limit", "pools"):
            bad(str(key), "unknown key (known: server, rate_limit, pools)")
    server = data.get("server") or {}
    server_id = str(server.get("id", "")) if isinstance(server, dict) else ""
    try:
        ipaddress.IPv4Address(server_id)
    except ValueError:
        bad("server.id", f"{server_id or '(missing)'!r} is not an IPv4 address")
        server_id = ""
    offer_hold = _int(
        server.get("offer_hold", 30) if isinstance(server, dict) else 30, "server.offer_hold", 1, 3600, bad
    )
    rl = data.get("rate_limit") or {}
    if not isinstance(rl, dict):
        bad("rate_limit", "must be a mapping")
        rl = {}
    for key in rl:
        if key not in RateLimit.__dataclass_fields__:
            bad(f"rate_limit.{key}", f"unknown key (known: {', '.join(RateLimit.__dataclass_fields__)})")
    defaults = RateLimit()
    rate = RateLimit(
        **{
            k: _int(
                rl.get(k, getattr(defaults, k)), f"rate_limit.{k}", 0, DATA_MAX if k in DATA_KEYS else 10_000_000, bad
            )
            for k in RateLimit.__dataclass_fields__
        }
    )
    if rate.data_rate and (rate.data_burst or rate.data_rate) < MAX_FRAME:
        where = "rate_limit.data_burst" if rate.data_burst else "rate_limit.data_rate"
        bad(
            where,
            f"a bucket of {rate.data_burst or rate.data_rate} bytes can never pay for a full {MAX_FRAME}-byte frame",
        )
    pools_raw = data.get("pools")
    if not isinstance(pools_raw, list) or not pools_raw:
        bad("pools", "must be a non-empty list of pools")
        pools_raw = []
    if len(pools_raw) > MAX_POOLS:
        bad("pools", f"{len(pools_raw)} pools, the fast path holds {MAX_POOLS}")
    pools: list[PoolConfig] = []
    seen_names: dict[str, int] = {}
    seen_vlans: dict[int, int] = {}
    for i, raw in enumerate(pools_raw):
        pool = _pool(raw, f"pools[{i}]", server_id, bad)
        if pool is None:
            continue
        if pool.name in seen_names:
            bad(f"pools[{i}].name", f"{pool.name!r} is also pools[{seen_names[pool.name]}]'s name")
        if pool.vlan in seen_vlans:
            bad(f"pools[{i}].vlan", f"VLAN {pool.vlan} is already served by pools[{seen_vlans[pool.vlan]}]")
        for j, other in enumerate(pools):
            if other.first <= pool.last and pool.first <= other.last:
                bad(f"pools[{i}].range", f"overlaps pools[{j}] ({other.name})")
        seen_names.setdefault(pool.name, i)
        seen_vlans.setdefault(pool.vlan, i)
        pools.append(pool)
    if problems:
        raise ConfigError(
            f"{source}: {len(problems)} problem(s) in the pools file",
            cause="\n         ".join(problems),
            fix="fix the fields named above; nothing was started",
        )
    return DhcpConfig(server_id, tuple(pools), offer_hold, rate, source)


def _int(value: Any, where: str, lo: int, hi: int, bad) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        bad(where, f"{value!r} is not a whole number from {lo} to {hi}")
        return lo
    return value


def _pool(raw: Any, where: str, server_id: str, bad) -> PoolConfig | None:
    if not isinstance(raw, dict):
        bad(where, "must be a mapping (name, subnet, range, ...)")
        return None
    known = ("name", "vlan", "subnet", "range", "router", "dns", "lease_time")
    for key in raw:
        if key not in known:
            bad(f"{where}.{key}", f"unknown key (known: {', '.join(known)})")
    ok = True
    name = str(raw.get("name") or "")
    if not name:
        bad(f"{where}.name", "missing")
        ok = False
    vlan = _int(raw.get("vlan", 0), f"{where}.vlan", 0, 4094, bad)
    try:
        subnet = ipaddress.IPv4Network(str(raw.get("subnet")), strict=True)
    except ValueError as exc:
        bad(f"{where}.subnet", f"{raw.get('subnet')!r}: {exc}")
        return None
    if subnet.prefixlen > 30:
        bad(f"{where}.subnet", f"/{subnet.prefixlen} leaves no room for subscribers")
        ok = False
    rng = str(raw.get("range", ""))
    try:
        lo_s, hi_s = (s.strip() for s in rng.split("-"))
        first, last = ipaddress.IPv4Address(lo_s), ipaddress.IPv4Address(hi_s)
    except ValueError:
        bad(f"{where}.range", f"{rng or '(missing)'!r} is not 'FIRST-LAST' (e.g. 10.67.0.100-10.67.0.199)")
        return None
    if first > last:
        bad(f"{where}.range", f"{first} comes after {last}")
        ok = False
    for a in (first, last):
        if a not in subnet or a in (subnet.network_address, subnet.broadcast_address):
            bad(f"{where}.range", f"{a} is not a host address of {subnet}")
            ok = False
    if server_id and ipaddress.IPv4Address(server_id) in subnet and first <= ipaddress.IPv4Address(server_id) <= last:
        bad(f"{where}.range", f"contains the server's own address {server_id}")
        ok = False
    router = raw.get("router")
    if router is not None:
        try:
            if ipaddress.IPv4Address(str(router)) not in subnet:
                bad(f"{where}.router", f"{router} is not in {subnet}")
                ok = False
        except ValueError:
            bad(f"{where}.router", f"{router!r} is not an IPv4 address")
            ok = False
    dns_raw = raw.get("dns", [])
    dns_list = dns_raw if isinstance(dns_raw, list) else [dns_raw]
    if len(dns_list) > MAX_DNS:
        bad(f"{where}.dns", f"{len(dns_list)} servers; the fast path carries at most {MAX_DNS}")
        ok = False
    for d in dns_list:
        try:
            ipaddress.IPv4Address(str(d))
        except ValueError:
            bad(f"{where}.dns", f"{d!r} is not an IPv4 address")
            ok = False
    lease_time = _int(raw.get("lease_time", 3600), f"{where}.lease_time", 10, 7 * 86400, bad)
    if not ok:
        return None
    return PoolConfig(
        name,
        vlan,
        subnet,
        first,
        last,
        str(router) if router is not None else None,
        tuple(str(d) for d in dns_list[:MAX_DNS]),
        lease_time,
    )


_EXAMPLE = "see the example in packetlab/tools/dhcp/examples/pools.yaml"
