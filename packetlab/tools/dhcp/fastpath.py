"""The kernel half: bpf/11c-dhcp-fastpath.c loaded, pinned, attached, and its maps as the slow path sees them.

Pinned, as the firewall and the load balancer are, under
``/sys/fs/bpf/packetlab/dhcp/<netns>-<dev>/``: the program and its maps outlive
the daemon, so a restart (or a crash) of `packetlab dhcp serve` does not stop
subscribers with a cached lease from getting answers. The next daemon finds the
pins, checks that the program on the interface is still this one, and carries
on with the same maps; only when nothing usable is pinned does it compile and
attach a fresh program.

Times: the store keeps wall-clock seconds, the kernel CLOCK_BOOTTIME nanoseconds
(`bpf_ktime_get_boot_ns`, which keeps counting through suspend). `to_boot_ns`
and `to_wall` convert between them.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from packetlab.ebpf.fdinfo import prog_id
from packetlab.ebpf.loader import LoadedProgram, attached_xdp_prog_id, set_xdp_fd
from packetlab.ebpf.maps import BpfMap, percpu_sum
from packetlab.ebpf.syscall import obj_get, obj_pin
from packetlab.errors import PacketlabError
from packetlab.tools.dhcp import layout as L
from packetlab.tools.dhcp.config import DhcpConfig, PoolConfig
from packetlab.tools.dhcp.wire import mac_raw

PIN_ROOT = Path(os.environ.get("PACKETLAB_DHCP_PIN_ROOT", "/sys/fs/bpf/packetlab/dhcp"))
STATE_DIR = Path(os.environ.get("PACKETLAB_DHCP_STATE_DIR", "/run/packetlab/dhcp"))  # the daemons' state files
XDP_MODES = {"native": 4, "generic": 2}


def to_boot_ns(wall: float) -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME) + int((wall - time.time()) * 1e9)


def to_wall(boot_ns: int) -> float:
    return time.time() + (boot_ns - time.clock_gettime_ns(time.CLOCK_BOOTTIME)) / 1e9


def pin_dir(netns: str | None, dev: str) -> Path:
    return PIN_ROOT / f"{netns or 'host'}-{dev}"


@dataclass
class CachedLease:
    mac: str
    vlan: int
    ip: str
    pool: int
    expires: float  # wall clock


class FastPath:
    """The maps of one fast-path install (and its program fd), however they were found."""

    def __init__(self, maps: dict[str, BpfMap], prog_fd: int, program: LoadedProgram | None = None) -> None:
        self.maps, self.prog_fd, self.program = maps, prog_fd, program

    # ---- finding it -----------------------------------------------------------------------
    @classmethod
    def from_program(cls, program: LoadedProgram) -> FastPath:
        """Views on a program this process compiled (a notebook, a test)."""
        maps = {name: BpfMap(program[name].map_fd, name, *types) for name, types in L.MAPS.items()}
        return cls(maps, program.fd, program)

    @classmethod
    def open_pinned(cls, directory: Path) -> FastPath:
        try:
            maps = {n: BpfMap.open_pinned(directory / n, n, *types) for n, types in L.MAPS.items()}
            fd = obj_get(str(directory / "prog"))
        except OSError as exc:
            raise PacketlabError(
                f"no usable DHCP fast path pinned at {directory}",
                cause=str(exc),
                fix="start one: packetlab dhcp serve --config POOLS.yaml --netns NS --dev IF",
            ) from None
        return cls(maps, fd)

    @classmethod
    def install(cls, netns: str | None, dev: str, *, mode: str = "native") -> tuple[FastPath, bool]:
        """The fast path on `dev`: the pinned one if it is still attached there, else a fresh one
        (compiled, pinned, attached). Returns (fast path, reused)."""
        gc()
        directory = pin_dir(netns, dev)
        if (directory / "prog").exists():
            with contextlib.suppress(PacketlabError):
                fp = cls.open_pinned(directory)
                if attached_xdp_prog_id(netns, dev) == prog_id(fp.prog_fd):
                    return fp, True
                fp.close()
            unpin(netns, dev)
        program = LoadedProgram(L.SOURCE, function=L.FUNCTION)
        fp = cls.from_program(program)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            for name, m in fp.maps.items():
                m.pin(directory / name)
            obj_pin(program.fd, str(directory / "prog"))
            set_xdp_fd(netns, dev, program.fd, XDP_MODES[mode], program)
        except BaseException:
            fp.close()
            unpin(netns, dev)
            raise
        return fp, False

    def close(self) -> None:
        for m in self.maps.values():
            with contextlib.suppress(OSError):
                m.close()
        if self.program is not None:
            self.program.close()
        else:
            with contextlib.suppress(OSError):
                os.close(self.prog_fd)

    # ---- what the slow path writes --------------------------------------------------------
    def set_pools(self, config: DhcpConfig, server_mac: str) -> None:
        for idx, pool in enumerate(config.pools):
            self.maps["pools"].update(idx, pool_entry(config, pool, server_mac))
        rl = config.rate_limit
        self.maps["config"].update(
            0,
            L.Config(rl.per_mac, rl.per_mac_burst, rl.slow_path, rl.slow_path_burst, rl.data_rate, rl.data_burst),
        )

    def put(self, mac: str, vlan: int, ip: str, pool: int, expires: float) -> None:
        self.maps["leases"].update(L.mac_key(mac, vlan), L.Lease(L.be32(ip), pool, to_boot_ns(expires)))

    def remove(self, mac: str, vlan: int) -> bool:
        return self.maps["leases"].delete(L.mac_key(mac, vlan))

    def leases(self) -> list[CachedLease]:
        out = []
        for key, value in self.maps["leases"].items():
            mac, vlan = L.key_mac(key)
            out.append(CachedLease(mac, vlan, L.from_be32(value.addr), value.pool, to_wall(value.expires_ns)))
        return out

    def lookup(self, mac: str, vlan: int) -> CachedLease | None:
        v = self.maps["leases"].lookup(L.mac_key(mac, vlan))
        return None if v is None else CachedLease(mac, vlan, L.from_be32(v.addr), v.pool, to_wall(v.expires_ns))

    def stats(self) -> dict[str, int]:
        return {
            L.STATS[k]: int(percpu_sum(v))
            for k, v in self.maps["stats"].items()
            if isinstance(k, int) and k < len(L.STATS)
        }

    def prog_id(self) -> int:
        return prog_id(self.prog_fd)


def pool_entry(config: DhcpConfig, pool: PoolConfig, server_mac: str) -> L.Pool:
    entry = L.Pool(L.be32(config.server_id), L.be32(str(pool.subnet.netmask)), L.be32(pool.router))
    for i, d in enumerate(pool.dns[: L.MAX_DNS]):
        entry.dns[i] = L.be32(d)
    entry.lease_time = pool.lease_time
    entry.server_mac[:] = list(mac_raw(server_mac))
    return entry


def detach(netns: str | None, dev: str, fast_path_prog_id: int | None) -> bool:
    """Detach XDP from `dev` if the program there is the fast path's (never someone else's)."""
    if fast_path_prog_id is None or attached_xdp_prog_id(netns, dev) != fast_path_prog_id:
        return False
    for flags in XDP_MODES.values():  # whichever mode it was attached in
        with contextlib.suppress(OSError, PacketlabError):
            set_xdp_fd(netns, dev, -1, flags)
    return attached_xdp_prog_id(netns, dev) is None


def unpin(netns: str | None, dev: str) -> list[str]:
    directory = pin_dir(netns, dev)
    done = []
    if directory.is_dir():
        for entry in sorted(directory.iterdir()):
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()
        done.append(f"unpinned {directory}")
    return done


def gc() -> list[str]:
    """Unpin fast paths whose namespace is gone (a lab ended, or was killed, without `packetlab dhcp
    remove`), and forget the state files of daemons that ran there. A fast path on the host's own
    interface (``host-<dev>``) or in a namespace that still exists stays until `packetlab dhcp remove`."""
    from packetlab.topo.netns import NETNS_DIR

    done: list[str] = []
    if not PIN_ROOT.is_dir():
        return done
    try:
        namespaces = os.listdir(NETNS_DIR)
    except OSError:
        namespaces = []
    for d in sorted(PIN_ROOT.iterdir()):
        if d.is_dir() and not d.name.startswith("host-") and not any(d.name.startswith(ns + "-") for ns in namespaces):
            for entry in d.iterdir():
                with contextlib.suppress(OSError):
                    entry.unlink()
            with contextlib.suppress(OSError):
                d.rmdir()
            done.append(f"unpinned {d} (its namespace is gone)")
    if STATE_DIR.is_dir():  # a killed daemon's state file names a namespace that is gone
        for f in sorted(STATE_DIR.glob("*.json")):
            if not f.name.startswith("host-") and not any(f.name.startswith(ns + "-") for ns in namespaces):
                with contextlib.suppress(OSError):
                    f.unlink()
                    done.append(f"removed {f} (its namespace is gone)")
    return done


def remove(netns: str | None, dev: str) -> list[str]:
    """Detach (only our program) and unpin: what `packetlab dhcp remove` and a lab's cleanup do."""
    directory = pin_dir(netns, dev)
    done = []
    ours = None
    with contextlib.suppress(OSError):
        fd = obj_get(str(directory / "prog"))
        ours = prog_id(fd)
        os.close(fd)
    if detach(netns, dev, ours):
        done.append(f"detached the fast path from {netns or 'host'}:{dev}")
    return done + unpin(netns, dev)
