"""Which kernel features each course module needs, and whether this machine has them.

Every module declares its *required* features (without them its lab cannot
run) and its *optional* ones (without them the lab still runs, and shows how
this kernel behaves differently, or skips one step and says why). The
features are probed on the running kernel (`packetlab.ebpf.features`), never
inferred from the version number, so the answer is the same one the lab
itself will meet.

`packetlab doctor` prints one line per module: ready, ready with differences,
or not ready — and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from packetlab.ebpf import features as kernel_probes
from packetlab.show.tables import WORDS, format_table

BASE = ("netns_veth",)


@dataclass(frozen=True)
class ModuleNeeds:
    """The kernel features one module's lab and tests rely on."""

    slug: str
    required: tuple[str, ...]
    optional: dict[str, str] = field(default_factory=dict)  # feature -> what differs without it


MODULES: dict[str, ModuleNeeds] = {
    m.slug.split("-", 1)[0]: m
    for m in [
        ModuleNeeds("00-getting-started", BASE + ("bpf_xdp", "xdp_test_run")),
        ModuleNeeds("01-osi-model", BASE + ("bpf_xdp",)),
        ModuleNeeds("02-nat-and-routing", BASE + ("nftables", "conntrack")),
        ModuleNeeds("03-connection-tracking", BASE + ("nftables", "conntrack")),
        ModuleNeeds("04-iptables-nftables", BASE + ("nftables", "conntrack")),
        ModuleNeeds("05-python-network-programming", BASE),
        ModuleNeeds(
            "06-ebpf-fundamentals",
            BASE + ("bpf_xdp", "xdp_test_run", "ringbuf", "btf_vmlinux", "xdp_load_bytes", "xdp_tracepoints"),
            {
                "perfmon_uninit_stack": "root is refused uninitialised stack reads too, so the diary's "
                "'root would accept it' remark does not apply",
                "lru_exact_eviction": "the 4-entry LRU map evicts a batch of unused keys at once; the LRU "
                "exercise accepts the exact-LRU answer and shows what this kernel kept",
            },
        ),
        ModuleNeeds(
            "07-xdp",
            BASE + ("bpf_xdp", "xdp_test_run", "xdp_live_frames", "xdp_tracepoints"),
            {
                "xdp_features": "a redirect to a veth whose peer has no NAPI is accepted and dropped at "
                "transmit (xdp:xdp_devmap_xmit, -ENXIO), not refused up front "
                "(xdp:xdp_redirect_err, -EOPNOTSUPP); the lab shows what this kernel does"
            },
        ),
        ModuleNeeds("08-milestone-xdp-firewall", BASE + ("bpf_xdp", "xdp_test_run", "nftables", "conntrack")),
        ModuleNeeds(
            "09-milestone-l4-load-balancer",
            BASE + ("bpf_xdp", "xdp_test_run", "conntrack"),
            {
                "xdp_features": "a redirect to a peer without NAPI shows up as -ENXIO in xdp:xdp_devmap_xmit "
                "instead of -EOPNOTSUPP in xdp:xdp_redirect_err"
            },
        ),
        ModuleNeeds("10-kubernetes-networking", BASE + ("bpf_xdp", "bpf_tc", "nftables", "conntrack")),
        ModuleNeeds("11a-telemetry-sketch", BASE + ("bpf_xdp", "xdp_test_run")),
        ModuleNeeds("11b-packet-analyzer", BASE + ("bpf_xdp", "xdp_test_run", "ringbuf", "xdp_load_bytes")),
        ModuleNeeds("11c-dhcp-fastpath", BASE + ("bpf_xdp", "xdp_test_run", "xdp_load_bytes")),
    ]
}


@dataclass(frozen=True)
class Readiness:
    """One module's verdict on this machine."""

    number: str
    slug: str
    state: str  # "ready", "ready with differences", "not ready"
    reasons: tuple[str, ...] = ()  # missing required features, or the differences


def readiness(number: str) -> Readiness:
    """Is module `number` ("00", …, "11a") ready on this kernel?"""
    needs = MODULES[number]
    missing = [name for name in needs.required if not kernel_probes.has(name)]
    if missing:
        reasons = tuple(
            f"needs {kernel_probes.FEATURES[n].title} [{n}]: "
            f"{kernel_probes.probe(n).detail} (have it: {kernel_probes.FEATURES[n].since})"
            for n in missing
        )
        return Readiness(number, needs.slug, "not ready", reasons)
    differences = tuple(
        f"without [{n}] ({kernel_probes.FEATURES[n].title}): {what}"
        for n, what in needs.optional.items()
        if not kernel_probes.has(n)
    )
    return Readiness(number, needs.slug, "ready with differences" if differences else "ready", differences)


def all_modules() -> list[Readiness]:
    return [readiness(n) for n in MODULES]


def format_modules(results: list[Readiness]) -> str:
    """One row per module: its verdict, and below it each missing feature or difference."""
    rows = [(r.slug, "\n".join([r.state] + [f"- {why}" for why in r.reasons])) for r in results]
    return format_table(["module", "on this kernel"], rows, align=WORDS)


def main(argv: list[str] | None = None) -> int:
    """Print every module's verdict; exit 1 if a module is not ready (provision.sh uses this)."""
    import os
    import sys

    results = all_modules()
    print(f"kernel {os.uname().release}: what each module needs, probed on this kernel")
    print(format_modules(results))
    blocked = [r for r in results if r.state == "not ready"]
    if blocked:
        missing = sorted({n for r in blocked for n in MODULES[r.number].required if not kernel_probes.has(n)})
        print(f"\n{len(blocked)} module(s) cannot run on this kernel; missing: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
