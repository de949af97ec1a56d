"""The load balancer's configuration: VIPs, backends, health checks — validated up front.

A config is checked completely *before* anything touches the kernel, and every
problem is reported at once with its place in the file (``vips[0].backends[2].weight``),
so ``packetlab lb apply`` either installs all of a config or none of it.

    vips:
      - name: web
        address: 10.9.100.1
        port: 80
        protocol: tcp          # tcp | udp
        mode: nat              # nat (full NAT, like kube-proxy) | dsr (IPIP + direct server return, like Katran)
        table_size: 65537      # Maglev lookup table size: a prime
        sticky: true           # keep established flows on their backend (the connection table)
        health: {type: tcp, interval: 1.0, timeout: 0.5, fall: 2, rise: 2}
        backends:
          - {name: b1, address: 10.9.2.11, port: 80, weight: 1}
          - {name: b2, address: 10.9.2.12, weight: 2}     # port defaults to the VIP's
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, overload

from packetlab import safeyaml
from packetlab.errors import InputError, PacketlabError

PROTOCOLS = {"tcp": 6, "udp": 17}
MODES = ("nat", "dsr")
HEALTH_TYPES = ("tcp", "http", "none")
DEFAULT_TABLE_SIZE = 65537  # what Katran and the Maglev paper use
MAX_TABLE_SIZE = 65537  # LB_MAX_RING in bpf/09-lb.c
MAX_VIPS = 16  # LB_MAX_VIPS
MAX_BACKENDS = 256  # LB_MAX_BACKENDS (backend slots, all VIPs together)
MAX_WEIGHT = 1000
# The smallest backend must own at least this many slots of its VIP's table. Maglev's fill gives
# each backend its weighted share to within about one slot, so a backend's share is off by at most
# 1/BALANCE_SLOTS = 2 % of what its weight asks for (measured: at most 1.6 % over random weights).
BALANCE_SLOTS = 50
MAX_IMBALANCE = 1 / BALANCE_SLOTS
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")


class ConfigError(InputError):
    """A load balancer config is invalid; `problems` lists every mistake with its place."""

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems)
        super().__init__(
            f"{source}: {len(problems)} problem(s), nothing was applied",
            cause="the configuration is checked completely before anything is installed",
            fix="correct the fields listed below and apply again",
            detail=shown,
        )


def is_prime(n: int) -> bool:
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def next_prime(n: int) -> int:
    while not is_prime(n):
        n += 1
    return n


def _live_weights(weights: Iterable[Any]) -> list[int]:
    return [w for w in weights if isinstance(w, int) and not isinstance(w, bool) and w > 0]


def min_table_size(weights: Iterable[Any]) -> int:
    """The smallest table (a prime) where every backend of these weights owns at least
    `BALANCE_SLOTS` slots per unit of the smallest weight — so the imbalance is at most about 2 %;
    `MAX_TABLE_SIZE` when even that is not enough (see `imbalance_bound`)."""
    live = _live_weights(weights)
    if not live:
        return 2
    need = -(-BALANCE_SLOTS * sum(live) // min(live))
    return MAX_TABLE_SIZE if need >= MAX_TABLE_SIZE else next_prime(need)


def imbalance_bound(table_size: int, weights: Iterable[Any]) -> float:
    """The largest relative error of a backend's table share against its weighted share,
    for a Maglev table of `table_size` (one slot of the smallest backend's share)."""
    live = _live_weights(weights)
    return sum(live) / (table_size * min(live)) if live and table_size > 0 else 0.0


def vip_weights(v: VIP) -> list[int]:
    """The weights that fill `v`'s table: backends not drained in the config."""
    return [b.weight for b in v.backends if b.drain is not True]


def warnings(cfg: LBConfig) -> list[str]:
    """What a valid config does that its author may not expect (printed by validate and apply)."""
    out = []
    for v in cfg.vips:
        if not v.backends:
            out.append(f"VIP {v.label} has no backends: every new connection to it is dropped")
        elif all(b.drain is True for b in v.backends):
            out.append(
                f"VIP {v.label} DRAINS every backend (drain: true on all): established connections stay, "
                "every NEW connection is dropped"
            )
        bound = imbalance_bound(v.table_size, vip_weights(v)) if isinstance(v.table_size, int) else 0.0
        if bound > MAX_IMBALANCE + 1e-9:
            out.append(
                f"VIP {v.label}: the weights are too uneven for a {MAX_IMBALANCE:.0%} balance even with "
                f"{v.table_size} slots: a backend's share may be off by up to {bound:.1%}"
            )
    return out


@dataclass(frozen=True)
class HealthCheck:
    """How the control plane probes a VIP's backends (from the LB's namespace)."""

    type: str = "tcp"  # tcp: connect(); http: GET path, expect 2xx/3xx; none: always healthy
    port: int | None = None  # default: the backend's port
    path: str = "/"
    interval: float = 1.0  # seconds between probe rounds
    timeout: float = 0.5  # seconds per probe
    fall: int = 2  # consecutive failures before a backend is marked down
    rise: int = 2  # consecutive successes before it returns


@dataclass(frozen=True)
class Backend:
    """A real server behind a VIP. Identified by (address, port)."""

    address: str
    port: int | None = None  # None: the VIP's port (required in DSR mode)
    weight: int = 1
    name: str | None = None
    drain: bool = False  # administratively draining: no new flows, existing flows stay

    @property
    def label(self) -> str:
        return self.name or (f"{self.address}:{self.port}" if self.port else self.address)


@dataclass(frozen=True)
class VIP:
    """A virtual service: address + port + protocol in front of backends."""

    address: str
    port: int
    protocol: str = "tcp"
    mode: str = "nat"
    backends: tuple[Backend, ...] = ()
    name: str | None = None
    table_size: int = DEFAULT_TABLE_SIZE
    sticky: bool = True
    health: HealthCheck = field(default_factory=HealthCheck)

    @property
    def key(self) -> str:
        """``10.9.100.1:80/tcp`` — how VIPs are named when they have no name."""
        return f"{self.address}:{self.port}/{self.protocol}"

    @property
    def label(self) -> str:
        return self.name or self.key

    @property
    def proto_number(self) -> int:
        return PROTOCOLS[self.protocol]

    def backend_port(self, backend: Backend) -> int:
        return backend.port if backend.port is not None else self.port

    def matches(self, ref: str) -> bool:
        """True if `ref` names this VIP: its name, ``addr:port/proto`` or ``addr:port``."""
        return ref in (self.name, self.key, f"{self.address}:{self.port}")


@dataclass(frozen=True)
class LBConfig:
    """A whole load balancer: its VIPs."""

    vips: tuple[VIP, ...] = ()

    def vip(self, ref: str) -> VIP:
        for v in self.vips:
            if v.matches(ref):
                return v
        known = ", ".join(v.label for v in self.vips) or "none"
        raise PacketlabError(
            f"no VIP {ref!r} in this load balancer",
            cause=f"configured VIPs: {known}",
            fix="name a VIP by its name or as address:port/protocol",
        )

    def to_dict(self) -> dict:
        return {"vips": [_vip_to_dict(v) for v in self.vips]}

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def with_backends(self, ref: str, backends: Sequence[Backend]) -> LBConfig:
        """A copy with `ref`'s backends replaced (validated)."""
        target = self.vip(ref)
        vips = tuple(replace(v, backends=tuple(backends)) if v is target else v for v in self.vips)
        return validate(LBConfig(vips))

    def with_vip(self, vip: VIP) -> LBConfig:
        """A copy with `vip` added, or replacing the VIP with the same address:port/proto."""
        vips = [v for v in self.vips if v.key != vip.key]
        return validate(LBConfig(tuple(vips) + (vip,)))

    def without_vip(self, ref: str) -> LBConfig:
        target = self.vip(ref)
        return LBConfig(tuple(v for v in self.vips if v is not target))


def _vip_to_dict(v: VIP) -> dict:
    d = {
        "name": v.name,
        "address": v.address,
        "port": v.port,
        "protocol": v.protocol,
        "mode": v.mode,
        "table_size": v.table_size,
        "sticky": v.sticky,
        "health": asdict(v.health),
        "backends": [
            {k: val for k, val in asdict(b).items() if val is not None and not (k == "drain" and not val)}
            for b in v.backends
        ],
    }
    return {k: val for k, val in d.items() if val is not None}


# ---- parsing ------------------------------------------------------------------------------
def load(source: LBConfig | Mapping | str | Path) -> LBConfig:
    """Parse and validate a config: an LBConfig, a dict, a YAML file path, or YAML text."""
    if isinstance(source, LBConfig):
        return validate(source)
    where = "config"
    if isinstance(source, Path) or (
        isinstance(source, str) and "\n" not in source and source.endswith((".yaml", ".yml"))
    ):
        where = str(source)
        source = safeyaml.read(
            source, "load balancer config", "check the path (example configs are in packetlab/tools/lb/examples/)"
        )
    if not isinstance(source, str):
        return from_dict(source, where)
    try:
        doc = safeyaml.load(source, where)
    except safeyaml.YamlError as exc:
        at = (f"line {exc.line}: " if exc.line else "") + (f"{exc.field}: " if exc.field else "")
        raise ConfigError([at + exc.message], where) from None
    try:
        return from_dict(doc.data, where)
    except ConfigError as exc:  # name the line of each field the problems start with
        raise ConfigError([_with_line(p, doc) for p in exc.problems], where) from None


_FIELD_PATH = re.compile(r"^([A-Za-z_]\w*(?:\[\d+\]|\.[A-Za-z_]\w*)*)(?=[: ])")


def _with_line(problem: str, doc: safeyaml.Document) -> str:
    """``vips[0].port: ...`` -> ``line 7: vips[0].port: ...`` (the line the field is on)."""
    m = _FIELD_PATH.match(problem)
    if not m:
        return problem
    return f"line {doc.line_of(safeyaml.path_of(m.group(1)))}: {problem}"


def from_dict(data: Any, where: str = "config") -> LBConfig:
    """Build an LBConfig from plain data, collecting every problem before raising."""
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError([f"the top level must be a mapping with a 'vips' list, got {type(data).__name__}"], where)
    _unknown(data, {"vips", "table_size", "health"}, "", problems)
    defaults_table = data.get("table_size", DEFAULT_TABLE_SIZE)
    defaults_health = data.get("health", {})
    raw_vips = data.get("vips", [])
    if not isinstance(raw_vips, list):
        problems.append("vips: must be a list of VIPs")
        raw_vips = []
    vips = []
    for i, rv in enumerate(raw_vips):
        v = _parse_vip(rv, f"vips[{i}]", defaults_table, defaults_health, problems)
        if v is not None:
            vips.append(v)
    if problems:
        raise ConfigError(problems, where)
    return validate(LBConfig(tuple(vips)), where)


def _unknown(d: Mapping, allowed: set[str], at: str, problems: list[str]) -> None:
    for k in d:
        if k not in allowed:
            problems.append(f"{at + '.' if at else ''}{k}: unknown field (allowed: {', '.join(sorted(allowed))})")


def _parse_vip(rv: Any, at: str, table_default: Any, health_default: Any, problems: list[str]) -> VIP | None:
    if not isinstance(rv, Mapping):
        problems.append(f"{at}: must be a mapping (address, port, protocol, mode, backends)")
        return None
    _unknown(
        rv, {"name", "address", "port", "protocol", "mode", "backends", "table_size", "sticky", "health"}, at, problems
    )
    for req in ("address", "port"):
        if req not in rv:
            problems.append(f"{at}.{req}: required")
    health_raw = dict(health_default or {}) if isinstance(health_default, Mapping) else {}
    if isinstance(rv.get("health"), Mapping):
        health_raw.update(rv["health"])
    elif rv.get("health") is not None:
        problems.append(f"{at}.health: must be a mapping such as {{type: tcp}}")
    if "type" not in health_raw and str(rv.get("protocol", "tcp")).lower() == "udp":
        health_raw["type"] = "none"  # a UDP service has no generic probe: say which TCP port to check
    health = _parse_health(health_raw, f"{at}.health", problems)
    backends_raw = rv.get("backends", [])
    backends = []
    if not isinstance(backends_raw, list):
        problems.append(f"{at}.backends: must be a list")
        backends_raw = []
    for j, rb in enumerate(backends_raw):
        b = parse_backend(rb, f"{at}.backends[{j}]", problems)
        if b is not None:
            backends.append(b)
    return VIP(
        address=str(rv.get("address", "")),
        port=rv.get("port", 0),
        protocol=str(rv.get("protocol", "tcp")).lower(),
        mode=str(rv.get("mode", "nat")).lower(),
        backends=tuple(backends),
        name=rv.get("name"),
        table_size=rv.get("table_size", table_default),
        sticky=rv.get("sticky", True),
        health=health,
    )


def _parse_health(raw: Mapping, at: str, problems: list[str]) -> HealthCheck:
    _unknown(raw, {"type", "port", "path", "interval", "timeout", "fall", "rise"}, at, problems)
    known = {k: raw[k] for k in ("type", "port", "path", "interval", "timeout", "fall", "rise") if k in raw}
    return HealthCheck(**known)


@overload
def parse_backend(rb: Any, at: str = "backend", problems: None = None) -> Backend: ...
@overload
def parse_backend(rb: Any, at: str, problems: list[str]) -> Backend | None: ...
def parse_backend(rb: Any, at: str = "backend", problems: list[str] | None = None) -> Backend | None:
    """A backend from a dict, an ``"addr:port"``/``"addr"`` string, or a Backend.

    Without `problems` a bad backend raises ConfigError; with it, the problems are appended
    and the result is None when there is no backend at all."""
    own = problems is None
    problems = [] if problems is None else problems
    b: Backend | None
    if isinstance(rb, Backend):
        b = rb
    elif isinstance(rb, str):
        addr, _, port_text = rb.partition(":")
        port: Any = int(port_text) if port_text.isdigit() else (port_text or None)  # as read: validate() checks it
        b = Backend(address=addr, port=port)
    elif isinstance(rb, Mapping):
        _unknown(rb, {"name", "address", "port", "weight", "drain"}, at, problems)
        if "address" not in rb:
            problems.append(f"{at}.address: required")
        b = Backend(
            address=str(rb.get("address", "")),
            port=rb.get("port"),
            weight=rb.get("weight", 1),
            name=rb.get("name"),
            drain=rb.get("drain", False),
        )
    else:
        problems.append(f"{at}: must be a mapping {{address, port, weight}} or 'address:port'")
        b = None
    if own and problems:
        raise ConfigError(problems, at)
    return b


# ---- validation ---------------------------------------------------------------------------
def validate(cfg: LBConfig, where: str = "config") -> LBConfig:
    """Check every rule; raise one ConfigError listing all problems, or return `cfg`."""
    problems: list[str] = []
    if len(cfg.vips) > MAX_VIPS:
        problems.append(f"vips: {len(cfg.vips)} VIPs, at most {MAX_VIPS} (LB_MAX_VIPS in bpf/09-lb.c)")
    seen_keys: dict[str, str] = {}
    seen_names: dict[str, str] = {}
    slots: set[tuple[str, int]] = set()
    for i, v in enumerate(cfg.vips):
        at = f"vips[{i}]"
        problems += _check_vip(v, at)
        if v.key in seen_keys:
            problems.append(f"{at}: {v.key} is already defined at {seen_keys[v.key]}")
        seen_keys.setdefault(v.key, at)
        if isinstance(v.name, str) and v.name:
            if v.name in seen_names:
                problems.append(f"{at}.name: {v.name!r} is already used at {seen_names[v.name]}")
            seen_names.setdefault(v.name, at)
        for b in v.backends:
            if isinstance(b.port, int) or b.port is None:
                port = v.backend_port(b) if isinstance(v.port, int) else 0
                slots.add((b.address, port if isinstance(port, int) else 0))
    if len(slots) > MAX_BACKENDS:
        problems.append(f"backends: {len(slots)} distinct backends, at most {MAX_BACKENDS} (LB_MAX_BACKENDS)")
    if problems:
        raise ConfigError(problems, where)
    return cfg


def _ipv4(value: Any) -> ipaddress.IPv4Address | None:
    try:
        addr = ipaddress.ip_address(str(value))
    except ValueError:
        return None
    return addr if addr.version == 4 else None


def _port_ok(p: Any) -> bool:
    return isinstance(p, int) and not isinstance(p, bool) and 1 <= p <= 65535


def _check_vip(v: VIP, at: str) -> list[str]:
    out = []
    addr = _ipv4(v.address)
    if addr is None:
        hint = " (IPv6 VIPs are not supported yet)" if ":" in str(v.address) else ""
        out.append(f"{at}.address: {v.address!r} is not an IPv4 address{hint}")
    elif addr.is_multicast or addr.is_unspecified or str(addr) == "255.255.255.255":
        out.append(f"{at}.address: {v.address} cannot be a VIP (multicast/unspecified/broadcast)")
    if not _port_ok(v.port):
        out.append(f"{at}.port: {v.port!r} is not a port number (1-65535)")
    if v.protocol not in PROTOCOLS:
        out.append(f"{at}.protocol: {v.protocol!r} is not one of {', '.join(PROTOCOLS)}")
    if v.mode not in MODES:
        out.append(
            f"{at}.mode: {v.mode!r} is not one of {', '.join(MODES)} "
            "(nat: rewrite to the backend and back; dsr: IPIP to the backend, replies go direct)"
        )
    if v.name is not None and (not isinstance(v.name, str) or not _NAME.match(v.name)):
        out.append(f"{at}.name: {v.name!r} must be 1-32 letters, digits, '-', '_' or '.'")
    ts = v.table_size
    if not isinstance(ts, int) or isinstance(ts, bool) or not is_prime(ts) or ts > MAX_TABLE_SIZE:
        suggestion = (
            f" (the next prime is {next_prime(ts)})" if isinstance(ts, int) and ts > 1 and ts <= MAX_TABLE_SIZE else ""
        )
        out.append(
            f"{at}.table_size: {ts!r} must be a prime no larger than {MAX_TABLE_SIZE}{suggestion} — "
            "Maglev's permutations only visit every slot when the size is prime"
        )
    elif isinstance(v.backends, tuple) and ts < min_table_size(vip_weights(v)):
        need = min_table_size(vip_weights(v))
        out.append(
            f"{at}.table_size: {ts} is too small for these backends and weights: a backend's share could be "
            f"off by {imbalance_bound(ts, vip_weights(v)):.1%} — use at least {need} (each backend needs "
            f"{BALANCE_SLOTS} slots per unit of the smallest weight for at most {MAX_IMBALANCE:.0%}; "
            "65537 always works)"
        )
    if not isinstance(v.sticky, bool):
        out.append(f"{at}.sticky: must be true or false")
    out += _check_health(v.health, f"{at}.health")
    if v.protocol == "udp" and v.health.type in ("tcp", "http") and v.health.port is None:
        out.append(
            f"{at}.health.port: a UDP VIP cannot be probed with {v.health.type} on its own port — "
            "give the TCP port to check (health: {type: tcp, port: 80}) or type: none"
        )
    weights = vip_weights(v)
    if weights and all(isinstance(w, int) and not isinstance(w, bool) for w in weights) and not any(weights):
        out.append(
            f"{at}.backends: every backend has weight 0, so the table would be empty and every new connection "
            "dropped — give one a weight above 0, or, to drain the VIP on purpose, set drain: true on its backends"
        )
    seen: dict[tuple, int] = {}
    names: dict[Any, int] = {}
    for j, b in enumerate(v.backends):
        bat = f"{at}.backends[{j}]"
        baddr = _ipv4(b.address)
        if baddr is None:
            out.append(f"{bat}.address: {b.address!r} is not an IPv4 address")
        elif addr is not None and baddr == addr:
            out.append(f"{bat}.address: a backend cannot be the VIP itself")
        if b.port is not None and not _port_ok(b.port):
            out.append(f"{bat}.port: {b.port!r} is not a port number (1-65535)")
        if v.mode == "dsr" and b.port is not None and b.port != v.port:
            out.append(
                f"{bat}.port: {b.port} differs from the VIP port {v.port}, which DSR cannot do — "
                "the backend answers the client directly from VIP:port, so it must listen on the VIP's port "
                "(use mode: nat to translate ports)"
            )
        if not isinstance(b.weight, int) or isinstance(b.weight, bool) or not 0 <= b.weight <= MAX_WEIGHT:
            out.append(f"{bat}.weight: {b.weight!r} must be an integer from 0 to {MAX_WEIGHT}")
        if not isinstance(b.drain, bool):
            out.append(f"{bat}.drain: must be true or false")
        if b.name is not None and (not isinstance(b.name, str) or not _NAME.match(b.name)):
            out.append(f"{bat}.name: {b.name!r} must be 1-32 letters, digits, '-', '_' or '.'")
        if isinstance(b.name, str):
            if b.name in names:
                out.append(f"{bat}.name: {b.name!r} is already used by backends[{names[b.name]}]")
            names.setdefault(b.name, j)
        ident = (b.address, repr(b.port if b.port is not None else v.port))  # repr: a list port is no key
        if ident in seen:
            out.append(f"{bat}: {b.address}:{v.backend_port(b)} is listed twice (also backends[{seen[ident]}])")
        seen.setdefault(ident, j)
    return out


def _check_health(h: HealthCheck, at: str) -> list[str]:
    out = []
    if h.type not in HEALTH_TYPES:
        out.append(f"{at}.type: {h.type!r} is not one of {', '.join(HEALTH_TYPES)}")
    if h.port is not None and not _port_ok(h.port):
        out.append(f"{at}.port: {h.port!r} is not a port number")
    for name in ("interval", "timeout"):
        val = getattr(h, name)
        if not isinstance(val, int | float) or isinstance(val, bool) or not 0.05 <= val <= 3600:
            out.append(f"{at}.{name}: {val!r} must be a number of seconds from 0.05 to 3600")
    for name in ("fall", "rise"):
        val = getattr(h, name)
        if not isinstance(val, int) or isinstance(val, bool) or not 1 <= val <= 100:
            out.append(f"{at}.{name}: {val!r} must be an integer from 1 to 100")
    if not isinstance(h.path, str) or not h.path.startswith("/"):
        out.append(f"{at}.path: {h.path!r} must start with '/'")
    return out


def make_vip(address: str, port: int, backends: Iterable[Backend | Mapping | str] = (), **kw: Any) -> VIP:
    """Convenience constructor: ``make_vip("10.96.0.10", 80, ["10.244.1.2:8080"], mode="nat")``."""
    bs = tuple(parse_backend(b) for b in backends)
    health = kw.pop("health", HealthCheck())
    if isinstance(health, Mapping):
        health = HealthCheck(**health)
    return VIP(address=address, port=port, backends=bs, health=health, **kw)
