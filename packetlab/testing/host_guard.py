"""pytest plugin: prove the test run left the host exactly as it found it.

Loaded by ``make test`` (``-p packetlab.testing.host_guard``). At session start it
snapshots every class of host state a lab could change (`CHECKS`: the root
namespace's links, addresses, routes, XDP/tc attachments and qdiscs, nftables,
iptables-legacy and ip6tables rules, every writable sysctl, mounts, packetlab's
cgroups, bpffs pins and /tmp entries); at the end it compares, and fails the run
if anything changed, if a lab left a namespace behind, or if a lab record
outlived its process (or is corrupt). Every check only reads.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from packetlab.testing import private_progress_dir
from packetlab.topo import cgroups, netns
from packetlab.topo.state import scan_records

Snapshot = dict[str, object]


def _cmd(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True).stdout
    except FileNotFoundError:
        return f"({argv[0]} is not installed)"


def _links() -> list[tuple]:
    return sorted(
        (
            link["ifname"],
            link.get("mtu"),
            link.get("master"),
            tuple(sorted(link.get("flags", []))),
            link.get("link_type"),
        )
        for link in json.loads(_cmd(["ip", "-j", "link", "show"]) or "[]")
    )


def _addresses() -> list[tuple]:
    return sorted(
        (a["ifname"], i["local"], i["prefixlen"])
        for a in json.loads(_cmd(["ip", "-j", "addr", "show"]) or "[]")
        for i in a.get("addr_info", [])
    )


def _routes() -> list[str]:
    return sorted(
        json.dumps(r, sort_keys=True)
        for fam in ("-4", "-6")
        for r in json.loads(_cmd(["ip", "-j", fam, "route", "show", "table", "all"]) or "[]")
        if r.get("protocol") != "kernel" or fam == "-4"
    )


def _bpf_attachments() -> list[str]:
    """XDP, tc (clsact/tcx), flow dissector and netfilter BPF programs on the root namespace's links."""
    out = _cmd(["bpftool", "-j", "net", "show"])
    if out.startswith("("):
        return [out]
    return sorted(
        f"{kind}: {json.dumps(entry, sort_keys=True)}"
        for section in json.loads(out or "[]")
        for kind, entries in section.items()
        for entry in entries
    )


def _qdiscs() -> list[str]:
    """Root-namespace qdiscs (a clsact or ingress qdisc is how tc programs attach)."""
    return sorted(
        json.dumps({k: v for k, v in q.items() if k != "refcnt"}, sort_keys=True)
        for q in json.loads(_cmd(["tc", "-j", "qdisc", "show"]) or "[]")
    )


_COUNTERS = re.compile(r"\[\d+:\d+\]")


def iptables_rules(save_output: str) -> list[str]:
    """The meaningful lines of an ``*tables-save`` dump: tables with rules, user chains,
    non-ACCEPT policies — not counters, comments, or the empty tables that merely
    loading the module creates."""
    lines, table = [], ""
    for raw in save_output.splitlines():
        line = _COUNTERS.sub("", raw).strip()
        if not line or line.startswith("#") or line == "COMMIT":
            continue
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":"):
            name, policy = (line[1:].split() + ["-"])[:2]
            if policy not in ("ACCEPT",):  # a user chain ("-") or a DROP policy
                lines.append(f"{table}: chain {name} policy {policy}")
        else:
            lines.append(f"{table}: {line}")
    return sorted(lines)


def _iptables(tool: str, names: str) -> list[str]:
    if not Path(names).exists():  # the legacy module is not loaded: it holds no rules (and is not loaded by us)
        return []
    return iptables_rules(_cmd([tool]))


# Writable sysctls whose value the kernel changes by itself.
VOLATILE_SYSCTLS = {"kernel/ns_last_pid", "kernel/perf_event_max_sample_rate", "kernel/random/write_wakeup_threshold"}


def _sysctls() -> dict[str, str]:
    """Every writable sysctl of the root namespace (net.* and the global kernel.*, vm.*, fs.*...)."""
    out = {}
    for root, dirs, files in os.walk("/proc/sys"):
        # never step into a mount point (fs/binfmt_misc is an automount: looking would mount it)
        dirs[:] = [d for d in dirs if not os.path.ismount(os.path.join(root, d))]
        for name in files:
            path = os.path.join(root, name)
            key = path.removeprefix("/proc/sys/")
            if key in VOLATILE_SYSCTLS:
                continue
            try:
                if not os.stat(path).st_mode & stat.S_IWUSR:
                    continue
                with open(path) as f:
                    out[key] = f.read().strip()
            except OSError:
                continue  # write-only (route/flush, drop_caches) or gone
    return out


# debugfs mounts tracefs here by itself the first time anything looks (bcc's tracepoints do): on a
# freshly booted machine (seen under Debian 12's 6.1 in a fresh VM) it appears during the first run
DEBUGFS_TRACING = "/sys/kernel/debug/tracing"


def _mounts() -> list[str]:
    """Mounts in the host's mount namespace (``ip netns`` bind mounts are the namespaces check)."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        root, point, fstype, source = fields[3], fields[4], fields[sep + 1], fields[sep + 2]
        if point == netns.NETNS_DIR or point.startswith(netns.NETNS_DIR + "/"):
            continue
        if point == DEBUGFS_TRACING and fstype == "tracefs":
            continue  # the kernel's automount on first access by any tracer (bcc), not a lab's doing
        mounts.append(f"{point} {fstype} {source} {root}")
    return sorted(mounts)


def _cgroups() -> list[str]:
    """Every cgroup under packetlab's prefix, in every hierarchy."""
    found = []
    for hierarchy in cgroups.hierarchies():
        for top in hierarchy.glob(f"{cgroups.PREFIX}*"):
            if top.is_dir():
                found.append(str(top))
                found += [str(p) for p in top.rglob("*") if p.is_dir()]
    return sorted(found)


PIN_ROOT = Path("/sys/fs/bpf/packetlab")
TMP_PREFIX = "packetlab-"  # lab workdirs, runtime state, web roots, benches: tempfile.mkdtemp(prefix="packetlab-...")


def _pins() -> list[str]:
    return sorted(str(p) for p in PIN_ROOT.rglob("*") if not p.is_dir()) if PIN_ROOT.exists() else []


# Temp entries of the test harness (not of labs), removed by their owner process — possibly after
# the guard's last look — or kept on purpose between runs. Everything else named packetlab-* is
# checked: lab workdirs (packetlab-<lab>-<node>-...), runtime state, web roots, benches.
TMP_PROCESS_SCOPED = (
    "packetlab-progress-",  # private_progress_dir(): this run's graded-check progress (atexit)
    "packetlab-docs-",  # the docs site's lab renderings (a TemporaryDirectory, removed at exit)
    "packetlab-unit-hypothesis",  # hypothesis' example database for the unit tests (kept on purpose)
    "packetlab-jupyterlab-",  # the browser tests' JupyterLab server (its runner's TemporaryDirectory)
    "packetlab-chromium-",  # the browser tests' Chromium profiles
    "packetlab-runall-progress-",  # a Run All's own progress folder (the runner's)
    "packetlab-apt.log",  # provisioning logs
    "packetlab-pip.log",
)


def _tmp_entries() -> list[str]:
    """packetlab's entries in the temp directory (lab workdirs, runtime state, web roots, benches)."""
    tmp = Path(tempfile.gettempdir())
    return sorted(str(p) for p in tmp.glob(f"{TMP_PREFIX}*") if not p.name.startswith(TMP_PROCESS_SCOPED))


# Every class of host state the guard checks: (key, what the report calls it, how to read it).
CHECKS: list[tuple[str, str, Callable[[], object]]] = [
    ("links", "root namespace links", _links),
    ("addresses", "addresses", _addresses),
    ("routes", "routes", _routes),
    ("bpf_attachments", "XDP/tc/flow-dissector/netfilter BPF attachments", _bpf_attachments),
    ("qdiscs", "tc qdiscs", _qdiscs),
    ("nftables", "nftables ruleset", lambda: _cmd(["nft", "list", "ruleset"])),
    (
        "iptables_legacy",
        "iptables-legacy rules",
        lambda: _iptables("iptables-legacy-save", "/proc/net/ip_tables_names"),
    ),
    (
        "ip6tables_legacy",
        "ip6tables-legacy rules",
        lambda: _iptables("ip6tables-legacy-save", "/proc/net/ip6_tables_names"),
    ),
    ("ip6tables", "ip6tables rules", lambda: iptables_rules(_cmd(["ip6tables-save"]))),
    ("sysctls", "writable sysctls", _sysctls),
    ("mounts", "mounts", _mounts),
    ("cgroups", f"cgroups named {cgroups.PREFIX}*", _cgroups),
    ("pins", "bpffs pins", _pins),
    ("tmp", f"{tempfile.gettempdir()}/{TMP_PREFIX}* entries", _tmp_entries),
]


def host_snapshot() -> Snapshot:
    """Every checked class of host state (`CHECKS`), minus counters and timers, plus the namespaces."""
    snap: Snapshot = {key: read() for key, _label, read in CHECKS}
    snap["namespaces"] = set(_namespaces())
    return snap


def compare(before: Snapshot, after: Snapshot, live_labs: frozenset[str] = frozenset()) -> list[str]:
    """One problem per class of host state that differs, naming what appeared, vanished or changed.

    Temp entries and cgroups named after a lab that is still running (``packetlab-<lab>-...``) are
    that lab's to remove when it closes, and are not counted (another process's lab on a shared machine)."""
    problems = []
    for key, label, _read in CHECKS:
        old, new = before.get(key), after.get(key)
        if key in ("tmp", "cgroups") and isinstance(old, list) and isinstance(new, list):
            old, new = _not_live(old, live_labs), _not_live(new, live_labs)
        if key == "sysctls" and isinstance(old, dict) and isinstance(new, dict):
            # a module loaded during the run adds keys (nf_conntrack_*): only changed or vanished values count
            changed = {k: (old[k], new.get(k, "(gone)")) for k in old if new.get(k) != old[k]}
            if changed:
                problems.append(f"the host's {label} changed: {_short(changed)}")
        elif key == "tmp" and isinstance(old, list) and isinstance(new, list):
            added = [x for x in new if x not in old]  # (removing an old leftover is cleanup, not a change)
            if added:
                problems.append(f"the host's {label} changed: {_short({'appeared': added})}")
        elif old != new:
            problems.append(f"the host's {label} changed: {_diff(old, new)}")
    return problems


def _not_live(paths: list[str], live_labs: frozenset[str]) -> list[str]:
    """`paths` minus those with a component named ``packetlab-<running lab>-...``."""
    if not live_labs:
        return paths
    prefixes = tuple(f"{cgroups.PREFIX}{lab}-" for lab in live_labs)
    return [p for p in paths if not any(part.startswith(prefixes) for part in Path(p).parts)]


def live_lab_names() -> frozenset[str]:
    return frozenset(r.lab for r in scan_records()[0] if r.owner_alive())


def _diff(old: object, new: object) -> str:
    if isinstance(old, list) and isinstance(new, list):
        gone = [x for x in old if x not in new]
        added = [x for x in new if x not in old]
        return _short({"appeared": added, "vanished": gone})
    if isinstance(old, str) and isinstance(new, str):
        return _short(
            {
                "appeared": sorted(set(new.splitlines()) - set(old.splitlines())),
                "vanished": sorted(set(old.splitlines()) - set(new.splitlines())),
            }
        )
    return _short({"before": old, "after": new})


def _short(value: object, limit: int = 600) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def checked_classes() -> str:
    """The report's list of everything the guard compared."""
    return ", ".join(label for _key, label, _read in CHECKS)


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _cmd(["ip", "netns", "list"]).splitlines() if line.strip()]


def leftovers(before_namespaces: set[str]) -> list[str]:
    """Namespaces and records that no live lab accounts for; corrupt records."""
    problems = []
    live_owned = set()
    records, corrupt = scan_records()
    for record in records:
        if record.owner_alive():
            live_owned.update(record.namespaces)
        else:
            problems.append(f"lab record {record.lab!r} outlived its process {record.pid}")
    problems += [f"lab record {bad.path} is corrupt" for bad in corrupt]
    for ns in set(_namespaces()) - before_namespaces - live_owned:
        if netns.exists(ns):
            problems.append(f"namespace {ns} was left behind")
    return problems


_before: Snapshot = {}


def pytest_configure(config: pytest.Config) -> None:
    private_progress_dir()  # graded checks run by tests and notebooks never touch the learner's progress


def pytest_sessionstart(session: pytest.Session) -> None:
    _before.update(host_snapshot())


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if not _before:
        return
    after = host_snapshot()
    problems = leftovers(_before["namespaces"])  # type: ignore[arg-type]
    problems += compare(_before, after, live_lab_names())
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if problems:
        if reporter:
            reporter.write_sep("=", "host guard: the host was NOT left as found", red=True)
            for p in problems:
                reporter.write_line(f"  - {p}")
            reporter.write_line(f"  (checked: {checked_classes()})")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter:
        reporter.ensure_newline()
        reporter.write_line(f"host guard: unchanged: {checked_classes()}; no lab leftovers")
