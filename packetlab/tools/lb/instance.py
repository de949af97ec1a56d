"""Pinned load balancers: where their pins and records live, and what a record holds.

``packetlab lb apply`` exits after installing, so an instance lives on in two
places: its program and maps pinned under ``PIN_ROOT/<netns>-<dev>/``, and its
control-plane memory (`InstanceRecord`) in ``STATE_DIR/<netns>-<dev>.json``.
The next command (status, apply, health, remove) reads both back; CLI processes
that change one instance take `instance_lock` first.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from packetlab.errors import PacketlabError
from packetlab.tools.lb.layout import LB_MAPS
from packetlab.topo import netns
from packetlab.topo.names import check_name, check_netns_name

PIN_ROOT = Path(os.environ.get("PACKETLAB_LB_PIN_ROOT", "/sys/fs/bpf/packetlab/lb"))
STATE_DIR = Path(os.environ.get("PACKETLAB_LB_STATE_DIR", "/run/packetlab/lb"))
PINNED = ["prog", *LB_MAPS]  # the file names in an instance's pin folder


@dataclass
class InstanceRecord:
    """What must survive between processes for a pinned instance (the JSON record)."""

    namespace: str | None
    devs: list[str]
    xdp_mode: str
    redirect: bool
    netns_inode: int | None = None
    config: dict = field(default_factory=lambda: {"vips": []})
    vip_index: dict[str, int] = field(default_factory=dict)  # vip key -> row
    slots: dict[str, int] = field(default_factory=dict)  # "addr:port" -> backend slot
    retired: list[int] = field(default_factory=list)  # freed slots, oldest first
    down: list[str] = field(default_factory=list)  # "addr:port" marked down by health checks
    nexthops: dict[str, dict] = field(default_factory=dict)  # "addr:port" -> NextHop fields
    labels: dict[str, str] = field(default_factory=dict)  # slot -> last backend label (for old flows)
    created: float = field(default_factory=time.time)


def instance_name(namespace: str | None, dev: str) -> str:
    """An instance is named after its namespace and the first interface it was applied to.

    Both are checked as names first: the instance name becomes a pin folder and a record file."""
    if namespace is not None:
        check_netns_name(namespace)
    return f"{namespace or 'host'}-{check_name(dev)}"


def record_path(name: str) -> Path:
    return STATE_DIR / f"{name}.json"


def netns_inode(name: str | None) -> int | None:
    """The namespace's identity: a namespace re-created under the same name has another inode."""
    return netns.inode(name) if name else None


def read_record(name: str) -> InstanceRecord:
    """The record of installed instance `name` (a clear error if there is none)."""
    path = record_path(name)
    if not path.exists():
        raise PacketlabError(
            f"no load balancer {name!r} is installed",
            cause=f"{path} does not exist",
            fix="install one with `packetlab lb apply CONFIG --netns NS --dev IF` "
            "(name the first --dev it was applied with); `packetlab lb list` shows them",
        )
    return InstanceRecord(**json.loads(path.read_text()))


def write_record(name: str, record: InstanceRecord) -> None:
    """Replace the record atomically (a reader never sees half a file)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    path = record_path(name)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record.__dict__, indent=1))
    os.replace(tmp, path)


def refuse_existing(name: str) -> None:
    """A new pinned instance must not overwrite an installed one."""
    path = record_path(name)
    if path.exists():
        raise PacketlabError(
            f"a load balancer {name!r} is already installed",
            cause=f"{path} exists",
            fix="update it with LoadBalancer.open(...).apply(...) (the CLI does this), "
            "or remove it first with `packetlab lb remove`",
        )


def remove_pins(name: str) -> None:
    """Unpin the program and maps of `name` and delete its record (the kernel frees what no fd holds)."""
    pin_dir = PIN_ROOT / name
    for n in PINNED:
        with contextlib.suppress(FileNotFoundError):
            (pin_dir / n).unlink()
    with contextlib.suppress(OSError):
        pin_dir.rmdir()
    with contextlib.suppress(FileNotFoundError):
        record_path(name).unlink()


def installed() -> list[dict]:
    """Every pinned instance on this machine: name, namespace, devs, VIP count, whether it is stale."""
    out = []
    for path in sorted(STATE_DIR.glob("*.json")):
        with contextlib.suppress(ValueError, OSError):
            d = json.loads(path.read_text())
            ns = d.get("namespace")
            alive = ns is None or netns_inode(ns) == d.get("netns_inode")
            out.append(
                {
                    "name": path.stem,
                    "namespace": ns,
                    "devs": d.get("devs", []),
                    "vips": len(d.get("config", {}).get("vips", [])),
                    "stale": not alive,
                }
            )
    return out


@contextlib.contextmanager
def instance_lock(name: str) -> Iterator[None]:
    """Serialise CLI processes that change one pinned instance."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / f".{name}.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
