"""pytest plugin: prove the test run left the host exactly as it found it.

Loaded by ``make test`` (``-p packetlab.testing.host_guard``). At session start it
snapshots the root namespace's links, addresses, routes, nftables ruleset, key
sysctls and packetlab's bpffs pins; at
the end it compares, and fails the run if anything changed, if a lab left a
namespace behind, or if a lab record outlived its process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from packetlab.testing import private_progress_dir
from packetlab.topo import netns
from packetlab.topo.state import all_records


def _cmd(argv: list[str]) -> str:
    return subprocess.run(argv, capture_output=True, text=True).stdout


def host_snapshot() -> dict[str, object]:
    """The root namespace's network configuration, minus counters and timers."""
    links = sorted(
        (
            link["ifname"],
            link.get("mtu"),
            link.get("master"),
            tuple(sorted(link.get("flags", []))),
            link.get("link_type"),
        )
        for link in json.loads(_cmd(["ip", "-j", "link", "show"]) or "[]")
    )
    addrs = sorted(
        (a["ifname"], i["local"], i["prefixlen"])
        for a in json.loads(_cmd(["ip", "-j", "addr", "show"]) or "[]")
        for i in a.get("addr_info", [])
    )
    routes = sorted(
        json.dumps(r, sort_keys=True)
        for fam in ("-4", "-6")
        for r in json.loads(_cmd(["ip", "-j", fam, "route", "show", "table", "all"]) or "[]")
        if r.get("protocol") != "kernel" or fam == "-4"
    )
    return {
        "links": links,
        "addresses": addrs,
        "routes": routes,
        "nftables": _cmd(["nft", "list", "ruleset"]),
        "sysctls": _sysctls(),
        "pins": sorted(str(p) for p in PIN_ROOT.rglob("*") if not p.is_dir()) if PIN_ROOT.exists() else [],
        "namespaces": set(_namespaces()),
    }


PIN_ROOT = Path("/sys/fs/bpf/packetlab")
WATCHED_SYSCTLS = [
    "net/ipv4/ip_forward",
    "net/ipv6/conf/all/forwarding",
    "net/ipv4/conf/all/rp_filter",
    "net/netfilter/nf_conntrack_max",
    "net/core/bpf_jit_enable",
    "kernel/bpf_stats_enabled",
]


def _sysctls() -> dict[str, str]:
    """Root-namespace sysctls a lab might be tempted to set (labs set them in their own namespaces)."""
    out = {}
    for key in WATCHED_SYSCTLS:
        try:
            out[key] = Path("/proc/sys", key).read_text().strip()
        except OSError:
            out[key] = "(absent)"
    return out


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _cmd(["ip", "netns", "list"]).splitlines() if line.strip()]


def leftovers(before_namespaces: set[str]) -> list[str]:
    """Namespaces and records that no live lab accounts for."""
    problems = []
    live_owned = set()
    for record in all_records():
        if record.owner_alive():
            live_owned.update(record.namespaces)
        else:
            problems.append(f"lab record {record.lab!r} outlived its process {record.pid}")
    for ns in set(_namespaces()) - before_namespaces - live_owned:
        if netns.exists(ns):
            problems.append(f"namespace {ns} was left behind")
    return problems


_before: dict[str, object] = {}


def pytest_configure(config: pytest.Config) -> None:
    private_progress_dir()  # graded checks run by tests and notebooks never touch the learner's progress


def pytest_sessionstart(session: pytest.Session) -> None:
    _before.update(host_snapshot())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _before:
        return
    after = host_snapshot()
    problems = leftovers(_before["namespaces"])  # type: ignore[arg-type]
    for key in ("links", "addresses", "routes", "nftables", "sysctls", "pins"):
        if after[key] != _before[key]:
            problems.append(f"the host's {key} changed during the run: {_before[key]!r} -> {after[key]!r}"[:600])
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if problems:
        if reporter:
            reporter.write_sep("=", "host guard: the host was NOT left as found", red=True)
            for p in problems:
                reporter.write_line(f"  - {p}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter:
        reporter.ensure_newline()
        reporter.write_line(
            "host guard: root namespace links, addresses, routes, nftables, sysctls and bpffs pins unchanged; no lab leftovers"
        )
