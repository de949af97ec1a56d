"""`packetlab doctor`: does this machine have what the labs need?

Every check runs the real thing where it can (create a namespace pair, compile
and attach an XDP program, load an nftables table) rather than guessing from
version numbers, and every failure names its fix.
"""

from __future__ import annotations

import os
import platform
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from packetlab.show.tables import WORDS, format_table

CAPS = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21, "CAP_BPF": 39, "CAP_PERFMON": 38}
PROVISION = "run `sudo vagrant/provision.sh` (or `make lab`, which runs it)"
REQUIRED_TOOLS = ["ip", "bridge", "nsenter", "nft", "ping", "tcpdump", "clang", "bpftool"]
OPTIONAL_TOOLS = ["tshark", "iptables", "conntrack", "trafgen", "iperf3", "llc", "ethtool", "traceroute"]


@dataclass
class Check:
    """One line of the doctor's report."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    required: bool = True

    def as_dict(self) -> dict:
        return asdict(self)


def kernel_headers_dir() -> Path:
    """Where bcc looks for headers (BCC_KERNEL_SOURCE overrides, as in bcc itself)."""
    override = os.environ.get("BCC_KERNEL_SOURCE")
    return Path(override) if override else Path(f"/lib/modules/{platform.release()}/build")


def _caps() -> Check:
    status = Path("/proc/self/status").read_text()
    eff = int(next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff")), 16)
    missing = [name for name, bit in CAPS.items() if not eff & (1 << bit)]
    return Check(
        "root and capabilities",
        not missing and os.geteuid() == 0,
        "root, " + ", ".join(CAPS) if not missing else f"missing: {', '.join(missing)} (uid {os.geteuid()})",
        "run as root: `sudo .venv/bin/packetlab doctor`",
    )


def _kernel() -> Check:
    """The release, for the record: what the labs can do is probed below, not read from it."""
    return Check(
        "kernel", True, f"{platform.release()} (features are probed, not inferred from the version)", required=False
    )


SUPPORTED = "Debian 12 (6.1), Ubuntu 24.04 (6.8) or a current mainline kernel"


def _features() -> list[Check]:
    """Every kernel feature probe (packetlab.ebpf.features), as information for the module verdicts."""
    from packetlab.ebpf import features as kernel_probes

    return [
        Check(
            f"feature: {name}",
            p.ok,
            p.detail,
            f"kernels that have it: {kernel_probes.FEATURES[name].since}",
            required=False,
        )
        for name, p in kernel_probes.probe_all().items()
    ]


def _modules() -> list[Check]:
    """One line per course module: ready, ready with differences, or not ready (and why)."""
    from packetlab.module_readiness import all_modules

    return [
        Check(
            f"module {r.slug}",
            r.state != "not ready",
            "\n".join((r.state,) + r.reasons),
            f"use {SUPPORTED}; provision.sh says which kernels it supports",
        )
        for r in all_modules()
    ]


def _file_check(name: str, path: str, what: str, fix: str, required: bool = True, want: str | None = None) -> Check:
    p = Path(path)
    if not p.exists():
        return Check(name, False, f"{path} is missing", fix, required)
    if want is not None:
        value = p.read_text().strip()
        return Check(name, value == want, f"{path} = {value}", fix, required)
    return Check(name, True, what, fix, required)


def _bpffs() -> Check:
    mounted = any(line.split()[1:3] == ["/sys/fs/bpf", "bpf"] for line in Path("/proc/mounts").read_text().splitlines())
    return Check(
        "bpffs at /sys/fs/bpf",
        mounted,
        "mounted" if mounted else "not mounted",
        "mount -t bpf bpf /sys/fs/bpf (provision.sh does this)",
    )


def _headers() -> Check:
    build = kernel_headers_dir()
    kconfig = [build / "include/linux/kconfig.h", build.parent / "source/include/linux/kconfig.h"]
    if not build.exists():
        return Check("kernel headers for bcc", False, f"{build} is missing", PROVISION)
    if not any(k.exists() for k in kconfig):
        return Check("kernel headers for bcc", False, f"{build} has no include/linux/kconfig.h", PROVISION)
    return Check("kernel headers for bcc", True, f"{build} -> {build.resolve()}")


def _python_module(name: str, fix: str) -> Check:
    try:
        module = __import__(name)
    except ImportError as exc:
        return Check(f"python: {name}", False, str(exc), fix)
    return Check(f"python: {name}", True, getattr(module, "__version__", "importable"))


def _tools() -> list[Check]:
    checks = []
    for tool in REQUIRED_TOOLS + OPTIONAL_TOOLS:
        path = shutil.which(tool)
        checks.append(
            Check(f"tool: {tool}", path is not None, path or "not found", PROVISION, required=tool in REQUIRED_TOOLS)
        )
    return checks


def _tracing() -> Check:
    kprobes = (
        Path("/sys/kernel/tracing/kprobe_events").exists() or Path("/sys/kernel/debug/tracing/kprobe_events").exists()
    )
    return Check(
        "kprobes",
        kprobes,
        "available" if kprobes else "not in this kernel — the course uses tracepoints and fentry/fexit instead",
        "",
        required=False,
    )


def _live_checks() -> list[Check]:
    """Build a tiny lab: namespaces + veth, bcc compile, native XDP, nftables, conntrack."""
    from packetlab.errors import PacketlabError
    from packetlab.topo.lab import Lab

    checks: list[Check] = []
    try:
        with Lab(f"dr{os.getpid() % 100000}") as lab:  # unique: two doctors may run at once
            a, b = lab.host("a"), lab.host("b")
            lab.link(a, b, ip="10.199.0.1/30", peer_ip="10.199.0.2/30")
            ping = a.ping("10.199.0.2", timeout=1)
            checks.append(
                Check(
                    "namespaces + veth",
                    ping.ok,
                    "two namespaces linked by veth, ping ok" if ping.ok else "ping between lab namespaces failed",
                    "check `ip netns` support in the kernel",
                )
            )
            try:
                xdp = b.attach_xdp("bpf/00-xdp-pass.c", "eth0", mode="native")
                checks.append(Check("bcc compiles and loads XDP", True, "bpf/00-xdp-pass.c loaded"))
                checks.append(
                    Check(
                        "XDP native mode on veth",
                        xdp.mode == "native",
                        f"attached in {xdp.mode} mode",
                        "the kernel needs veth XDP support (4.19+)",
                    )
                )
                run = xdp.test_run(bytes(64))
                checks.append(
                    Check("BPF_PROG_TEST_RUN", run.verdict == "XDP_PASS", f"verdict {run.verdict}, {run.ns_per_run} ns")
                )
                xdp.detach()
            except PacketlabError as exc:
                checks.append(Check("bcc compiles and loads XDP", False, exc.what, exc.fix or PROVISION))
            nft = b.run(["nft", "add", "table", "inet", "doctor"])
            checks.append(
                Check(
                    "nftables in a namespace",
                    nft.ok,
                    "table created in lab namespace" if nft.ok else nft.stderr.strip(),
                    "install nftables; the kernel needs CONFIG_NF_TABLES",
                )
            )
            ct = b.run(
                [
                    "nft",
                    "add",
                    "chain inet doctor c { type filter hook input priority 0; ct state established accept; }",
                ]
            )
            has_ct = ct.ok and b.run(["cat", "/proc/sys/net/netfilter/nf_conntrack_max"]).ok
            checks.append(
                Check(
                    "connection tracking",
                    has_ct,
                    "ct state rule loaded, nf_conntrack active"
                    if has_ct
                    else (ct.stderr.strip() or "nf_conntrack sysctls missing"),
                    "the kernel needs CONFIG_NF_CONNTRACK; install the conntrack tool",
                )
            )
    except PacketlabError as exc:
        checks.append(Check("namespaces + veth", False, exc.what, exc.fix or ""))
    return checks


def run_checks(live: bool = True) -> list[Check]:
    """All checks, cheapest first; live checks only when running as root."""
    checks: list[Check] = [
        _caps(),
        _kernel(),
        _file_check(
            "BPF JIT", "/proc/sys/net/core/bpf_jit_enable", "", "echo 1 > /proc/sys/net/core/bpf_jit_enable", want="1"
        ),
        _file_check(
            "BTF (/sys/kernel/btf/vmlinux)",
            "/sys/kernel/btf/vmlinux",
            "present",
            "a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian's is)",
        ),
        _bpffs(),
        _headers(),
        _tracing(),
        _python_module("bcc", PROVISION + "; .venv must be made with --system-site-packages"),
        _python_module("pyroute2", "pip install -e . inside .venv"),
        _python_module("scapy", "pip install -e . inside .venv"),
    ]
    checks += _tools()
    if live and os.geteuid() == 0:
        checks += _live_checks()
    if os.geteuid() == 0:  # the probes load programs: they need root
        checks += _features() + _modules()
    return checks


def format_report(checks: list[Check]) -> str:
    """The doctor's report: one row per check (a failed one shows its fix below it), then the verdict."""
    rows = []
    for c in checks:
        mark = "ok" if c.ok else ("MISSING" if c.required else "warn")
        first, *more = c.detail.splitlines() or [""]
        detail = "\n".join([first] + [f"  - {m}" for m in more] + ([f"fix: {c.fix}"] if not c.ok and c.fix else []))
        rows.append((mark, c.name, detail))
    missing = [c.name for c in checks if c.required and not c.ok]
    verdict = (
        "everything the labs need is here"
        if not missing
        else f"{len(missing)} required item(s) missing: {', '.join(missing)}"
    )
    return format_table(["status", "check", "result"], rows, align=WORDS) + "\n\n" + verdict
