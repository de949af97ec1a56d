"""packetlab's own IPAM plugin: hand out pod addresses from a range, remember
them in a lease file that survives restarts.

An IPAM plugin is a CNI plugin with a narrower job: the interface plugin
(ours, or the reference ``bridge``) executes it with the same CNI_* variables
and the same config, and it answers only with ``ips``/``routes``/``dns`` — it
never touches an interface. The reference ``host-local`` keeps one file per
address; this one keeps one JSON document per network, written atomically
under an exclusive lock, so two pods started at the same moment never get the
same address and a crash never leaves half a write::

    "ipam": {"type": "packetlab-ipam", "subnet": "10.244.1.0/24",
             "rangeStart": "10.244.1.10", "rangeEnd": "10.244.1.250",
             "gateway": "10.244.1.1", "routes": [{"dst": "0.0.0.0/0"}],
             "dataDir": "/var/lib/cni/packetlab-ipam"}

Allocation is round-robin from the last address handed out (like host-local),
so a just-released address is not reused at once. ADD for a (container,
interface) that already holds a lease returns that lease again.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from packetlab.tools.cni.spec import (
    CHECK_FAILED,
    INVALID_CONFIG,
    IO_FAILURE,
    IPAM_EXHAUSTED,
    CniError,
    Environment,
    check_version,
    convert_result,
    parse_config,
    version_result,
)

DEFAULT_DATA_DIR = "/var/lib/cni/packetlab-ipam"


class IpamConfig:
    """The validated ``ipam`` section."""

    def __init__(self, net_name: str, ipam: Mapping[str, Any]) -> None:
        if not net_name or "/" in net_name:
            raise CniError(INVALID_CONFIG, f"network name {net_name!r} is not usable as a file name")
        self.net_name = net_name
        try:
            self.subnet = ipaddress.ip_network(ipam["subnet"], strict=True)
        except KeyError:
            raise CniError(INVALID_CONFIG, "ipam.subnet is missing", 'e.g. "subnet": "10.244.1.0/24"') from None
        except (ValueError, TypeError) as exc:
            raise CniError(INVALID_CONFIG, f"ipam.subnet {ipam.get('subnet')!r} is not a network", str(exc)) from None
        hosts = self.subnet.num_addresses
        if hosts < 4 and self.subnet.version == 4:
            raise CniError(INVALID_CONFIG, f"ipam.subnet {self.subnet} is too small for pods")
        first = self.subnet.network_address + 1
        last = self.subnet.broadcast_address - (1 if self.subnet.version == 4 else 0)
        self.gateway = self._addr(ipam, "gateway", first)
        self.range_start = self._addr(ipam, "rangeStart", first)
        self.range_end = self._addr(ipam, "rangeEnd", last)
        if self.range_start > self.range_end:
            raise CniError(INVALID_CONFIG, f"ipam.rangeStart {self.range_start} is after rangeEnd {self.range_end}")
        self.routes = list(ipam.get("routes", []))
        for route in self.routes:
            try:
                ipaddress.ip_network(route["dst"], strict=False)
            except (KeyError, ValueError, TypeError):
                raise CniError(INVALID_CONFIG, f'ipam.routes entry {route!r} needs a valid "dst"') from None
        self.data_dir = Path(ipam.get("dataDir") or DEFAULT_DATA_DIR)

    def _addr(self, ipam: Mapping[str, Any], key: str, default: Any) -> Any:
        if key not in ipam:
            return default
        try:
            addr = ipaddress.ip_address(ipam[key])
        except (ValueError, TypeError) as exc:
            raise CniError(INVALID_CONFIG, f"ipam.{key} {ipam[key]!r} is not an address", str(exc)) from None
        if addr not in self.subnet:
            raise CniError(INVALID_CONFIG, f"ipam.{key} {addr} is outside subnet {self.subnet}")
        return addr


class LeaseStore:
    """The lease file of one network: {"subnet", "last", "leases": {ip: {...}}}."""

    def __init__(self, data_dir: str | os.PathLike, net_name: str) -> None:
        self.dir = Path(data_dir)
        self.path = self.dir / f"{net_name}.json"
        self.lock_path = self.dir / f"{net_name}.lock"

    @contextlib.contextmanager
    def locked(self) -> Iterator[dict[str, Any]]:
        """Read the store under an exclusive lock; write it back atomically on success."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            lock = open(self.lock_path, "a+")  # noqa: SIM115 -- the with below closes it; an OSError here is the CNI error
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot open the lease store in {self.dir}", str(exc)) from None
        with lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            before = json.dumps(data, sort_keys=True)
            yield data
            if json.dumps(data, sort_keys=True) != before:
                self._write(data)

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"subnet": None, "last": None, "leases": {}}
        except (OSError, ValueError) as exc:
            raise CniError(IO_FAILURE, f"the lease store {self.path} is unreadable", str(exc)) from None
        data.setdefault("leases", {})
        return data

    def _write(self, data: dict[str, Any]) -> None:
        tmp = self.path.with_suffix(f".tmp{os.getpid()}")
        try:
            with open(tmp, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)  # readers see the old or the new file, never half
        except OSError as exc:
            raise CniError(IO_FAILURE, f"cannot write the lease store {self.path}", str(exc)) from None

    def leases(self) -> dict[str, dict[str, Any]]:
        """ip -> {"id", "ifname", "since"} (for notebooks and tests)."""
        return dict(self.read()["leases"])


def _owner(data: dict[str, Any], container_id: str, ifname: str) -> str | None:
    for ip, lease in data["leases"].items():
        if lease["id"] == container_id and lease["ifname"] == ifname:
            return ip
    return None


def allocate(cfg: IpamConfig, container_id: str, ifname: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Lease an address to (container, ifname); the same one again if it holds one."""
    store = LeaseStore(cfg.data_dir, cfg.net_name)
    with store.locked() as data:
        if data.get("subnet") not in (None, str(cfg.subnet)):
            raise CniError(
                INVALID_CONFIG,
                f"the lease store {store.path} belongs to subnet {data['subnet']}, not {cfg.subnet}",
                "use another dataDir or network name, or remove the old store when no pod uses it",
            )
        data["subnet"] = str(cfg.subnet)
        held = _owner(data, container_id, ifname)
        if held:
            return ipaddress.ip_address(held)
        start, end = int(cfg.range_start), int(cfg.range_end)
        size = end - start + 1
        last = int(ipaddress.ip_address(data["last"])) if data.get("last") else end
        reserved = {int(cfg.gateway), int(cfg.subnet.network_address), int(cfg.subnet.broadcast_address)}
        for step in range(1, size + 1):
            candidate = start + (last - start + step) % size
            if candidate in reserved:
                continue
            ip = str(ipaddress.ip_address(candidate))
            if ip not in data["leases"]:
                data["leases"][ip] = {"id": container_id, "ifname": ifname, "since": int(time.time())}
                data["last"] = ip
                return ipaddress.ip_address(candidate)
    raise CniError(
        IPAM_EXHAUSTED,
        f"no free address in {cfg.range_start}-{cfg.range_end} of network {cfg.net_name}",
        f"{len(data['leases'])} leases held; delete pods (CNI DEL) or widen the range",
    )


def release(cfg: IpamConfig, container_id: str, ifname: str) -> str | None:
    """Give back the lease of (container, ifname); no error if there is none (DEL is idempotent)."""
    store = LeaseStore(cfg.data_dir, cfg.net_name)
    if not store.path.exists():
        return None
    with store.locked() as data:
        ip = _owner(data, container_id, ifname)
        if ip:
            del data["leases"][ip]
        return ip


def ipam_result(cfg: IpamConfig, ip: Any, version: str) -> dict[str, Any]:
    result = {
        "cniVersion": version,
        "ips": [{"address": f"{ip}/{cfg.subnet.prefixlen}", "gateway": str(cfg.gateway)}],
        "routes": cfg.routes,
        "dns": {},
    }
    return convert_result(result, version)


def handle(env: Environment, conf: dict[str, Any]) -> dict[str, Any] | None:
    """One IPAM invocation (ADD, DEL or CHECK)."""
    version = check_version(conf)
    if not isinstance(conf.get("ipam"), dict):
        raise CniError(INVALID_CONFIG, 'the configuration has no "ipam" object')
    cfg = IpamConfig(conf.get("name", ""), conf["ipam"])
    if env.command == "ADD":
        return ipam_result(cfg, allocate(cfg, env.container_id, env.ifname), version)
    if env.command == "DEL":
        release(cfg, env.container_id, env.ifname)
        return None
    store = LeaseStore(cfg.data_dir, cfg.net_name)  # CHECK
    if not _owner(store.read(), env.container_id, env.ifname):
        raise CniError(CHECK_FAILED, f"container {env.container_id} ({env.ifname}) holds no lease in {store.path}")
    return None


def main() -> int:
    """Entry point when executed as the ``packetlab-ipam`` plugin."""
    version = "1.0.0"
    try:
        env = Environment.from_environ()
        raw = sys.stdin.buffer.read()
        out: dict[str, Any] | None
        if env.command == "VERSION":
            out = version_result()
        else:
            conf = parse_config(raw)
            asked = conf.get("cniVersion")
            version = asked if isinstance(asked, str) else version
            out = handle(env, conf)
    except CniError as exc:
        print(json.dumps(exc.to_dict(version)))
        return 1
    if out is not None:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
