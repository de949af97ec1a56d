"""Garbage collection of pinned load balancers whose namespace is gone (``packetlab clean``).

``packetlab lb apply`` pins program and maps so they outlive the command. If
the lab namespace they were attached in disappears (the lab closed, or its
process was killed) without ``packetlab lb remove``, the pins would keep the
maps alive forever; `gc()` finds such installs and unpins them — by their
recorded names only.
"""

from __future__ import annotations

import contextlib

from packetlab.tools.lb.balancer import LoadBalancer
from packetlab.tools.lb.instance import PIN_ROOT, STATE_DIR, installed
from packetlab.topo import netns


def gc() -> list[str]:
    """Remove every stale install; return one line per removed item."""
    removed: list[str] = []
    known = set()
    for inst in installed():
        known.add(inst["name"])
        if not inst["stale"]:
            continue
        with contextlib.suppress(Exception):
            LoadBalancer.open(inst["namespace"], _first_dev(inst)).close()
            removed.append(f"load balancer {inst['name']} (namespace {inst['namespace']} is gone): unpinned")
    # pin folders whose record is missing (e.g. /run was cleared): stale if no namespace matches their name
    if PIN_ROOT.is_dir():
        for d in sorted(PIN_ROOT.iterdir()):
            if not d.is_dir() or d.name in known or not (d / "prog").exists():
                continue
            if any(d.name.startswith(ns + "-") and netns.exists(ns) for ns in _namespaces()):
                continue
            for f in d.iterdir():
                with contextlib.suppress(OSError):
                    f.unlink()
            with contextlib.suppress(OSError):
                d.rmdir()
            removed.append(f"load balancer pins {d} (no record, no namespace): unpinned")
    alive = {i["name"] for i in installed()}
    for lock in STATE_DIR.glob(".*.lock") if STATE_DIR.is_dir() else []:
        if lock.name[1 : -len(".lock")] not in alive:  # "." + name + ".lock"
            with contextlib.suppress(OSError):
                lock.unlink()
    return removed


def _first_dev(inst: dict) -> str:
    """The dev an instance is named after: its name is '<netns>-<dev>'."""
    ns = inst["namespace"] or "host"
    return inst["name"][len(ns) + 1 :]


def _namespaces() -> list[str]:
    import os

    try:
        return os.listdir(netns.NETNS_DIR)
    except OSError:
        return []
