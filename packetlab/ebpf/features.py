"""What this kernel can do, found out by trying it — never guessed from the version number.

Each probe does the smallest real thing that needs the feature: loads a
three-instruction program, creates a map, runs a test run, looks up a netlink
family, or builds a veth pair inside a throw-away network namespace
(``unshare --net``, so the host's namespace is never touched). Results are
cached for the life of the process; `refresh()` forgets them.

    from packetlab import kernel_probes as kp
    kp.has("xdp_live_frames")            # True / False
    kp.probe("xdp_features")             # Probe(name, ok, detail)
    kp.require("ringbuf")                # raises MissingRequirement naming the feature and a kernel that has it

`FEATURES` says, for every probe, what it means for the labs and which
kernels have it; `packetlab.module_readiness` maps course modules to them.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import struct
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from packetlab.ebpf import syscall as bpfsys
from packetlab.errors import MissingRequirement


@dataclass(frozen=True)
class Feature:
    """A kernel capability the course relies on."""

    name: str
    title: str  # one line: what it is
    since: str  # which kernels have it (the supported ones and the first release)
    missing: str  # what a learner sees without it


@dataclass(frozen=True)
class Probe:
    """The outcome of trying one feature on this machine."""

    name: str
    ok: bool
    detail: str  # what was tried and what the kernel answered


FEATURES: dict[str, Feature] = {
    f.name: f
    for f in [
        Feature(
            "netns_veth", "network namespaces and veth pairs", "every supported kernel", "no lab topology can be built"
        ),
        Feature(
            "nftables",
            "nftables (CONFIG_NF_TABLES) in a namespace",
            "every supported kernel",
            "the firewall and NAT labs cannot load rules",
        ),
        Feature(
            "conntrack",
            "connection tracking (CONFIG_NF_CONNTRACK) in a namespace",
            "every supported kernel",
            "stateful rules and NAT do not work",
        ),
        Feature(
            "bpf_xdp",
            "loading XDP programs (CAP_BPF or root)",
            "every supported kernel",
            "no XDP program can be loaded",
        ),
        Feature(
            "bpf_tc",
            "loading tc (sched_cls) programs",
            "every supported kernel",
            "the module 10 policy enforcer cannot be loaded",
        ),
        Feature(
            "xdp_test_run",
            "BPF_PROG_TEST_RUN for XDP programs",
            "Linux 4.12+; every supported kernel",
            "programs cannot be run on crafted packets",
        ),
        Feature(
            "ringbuf",
            "BPF ring buffer maps",
            "Linux 5.8+; every supported kernel",
            "programs cannot stream events to user space",
        ),
        Feature(
            "btf_vmlinux",
            "kernel BTF (/sys/kernel/btf/vmlinux) for CO-RE and tp_btf",
            "Debian 12, Ubuntu 24.04, mainline",
            "the CO-RE (clang + bpftool) programs cannot be built or loaded",
        ),
        Feature(
            "xdp_load_bytes",
            "the bpf_xdp_load_bytes() helper",
            "Linux 5.18+ (6.1, 6.8, 6.18)",
            "the bad-helper diary fix cannot load",
        ),
        Feature(
            "xdp_live_frames",
            "BPF_PROG_TEST_RUN live-frames mode (frames sent without an sk_buff)",
            "Linux 5.18+ (6.1, 6.8, 6.18)",
            "the xdp_frames flood and its benchmark rows cannot run",
        ),
        Feature(
            "xdp_features",
            "per-device XDP features (netdev netlink family); devmap redirects check the "
            "target's NDO_XMIT feature up front",
            "Linux 6.3+ (Ubuntu 24.04's 6.8, 6.18; not Debian 12's 6.1)",
            "a redirect to a veth whose peer has no NAPI is accepted and dropped later "
            "(xdp:xdp_devmap_xmit, -ENXIO) instead of refused (xdp:xdp_redirect_err, -EOPNOTSUPP)",
        ),
        Feature(
            "perfmon_uninit_stack",
            "a CAP_PERFMON loader may hand uninitialised stack to a helper",
            "Linux 6.3+ and later Debian 12 6.1 updates (6.1.0-57 has it, 6.1.0-50 does not)",
            "root loaders are refused uninitialised stack reads like everyone else",
        ),
        Feature(
            "lru_exact_eviction",
            "a full, small LRU hash evicts one key per new key (not a batch)",
            "Linux 6.16+ and stable kernels with the 2025 LRU free-target fix (6.18; not Debian 12's 6.1)",
            "a CPU that finds no free element evicts a batch of unused keys at once, so a small LRU map "
            "keeps fewer keys than an exact LRU would",
        ),
        Feature(
            "xdp_tracepoints",
            "the xdp:* tracepoints (xdp_exception, xdp_redirect_err, xdp_devmap_xmit)",
            "every supported kernel (tracefs mounted)",
            "XDP failures cannot be traced",
        ),
    ]
}


# ---- BPF bytecode for the probes (8 bytes per instruction) ----------------------------------
def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _ret(value: int) -> bytes:
    """r0 = value; exit"""
    return _insn(0xB7, dst=0, imm=value) + _insn(0x95)


def _ld_map_fd(dst: int, fd: int) -> bytes:
    """dst = map (BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD): two instruction slots."""
    return _insn(0x18, dst=dst, src=1, imm=fd) + _insn(0)


def _stack_ptr(dst: int, off: int) -> bytes:
    """dst = r10 + off"""
    return _insn(0xBF, dst=dst, src=10) + _insn(0x07, dst=dst, imm=off)


XDP_DROP, XDP_PASS = 1, 2
_HELPER_MAP_LOOKUP, _HELPER_XDP_LOAD_BYTES = 1, 189


def _load(prog_type: int, insns: bytes) -> tuple[int | None, str]:
    """(fd, "") if the kernel accepts `insns`, else (None, the verifier's last words or errno)."""
    log = ctypes.create_string_buffer(64 * 1024)
    try:
        return bpfsys.prog_load(prog_type, insns, log=log, name="packetlab_probe"), ""
    except OSError as exc:
        words = [
            line
            for line in log.value.decode(errors="replace").splitlines()
            if line and not line[0].isdigit() and not line.startswith(("processed", ";"))
        ]
        return None, (words[-1] if words else f"{errno.errorcode.get(exc.errno or 0, exc.errno)}: {exc.strerror}")


def _loads(prog_type: int, insns: bytes, what: str) -> Probe:
    fd, why = _load(prog_type, insns)
    if fd is None:
        return Probe("", False, f"{what}: refused ({why})")
    os.close(fd)
    return Probe("", True, f"{what}: loaded")


def _in_fresh_netns(script: str) -> tuple[bool, str]:
    """Run `script` with sh in a new, empty network namespace that dies with it."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False, "unshare (util-linux) is not installed"
    proc = subprocess.run([unshare, "--net", "--", "sh", "-ec", script], capture_output=True, text=True, timeout=30)
    return proc.returncode == 0, (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[
        -1
    ] if proc.returncode else proc.stdout.strip()


# ---- the probes --------------------------------------------------------------------------------
def _probe_netns_veth() -> Probe:
    ok, out = _in_fresh_netns("ip link add pl0 type veth peer name pl1 && ip link set pl0 up && echo veth ok")
    return Probe("", ok, "veth pair created in a fresh namespace" if ok else f"ip link add ... type veth: {out}")


def _probe_nftables() -> Probe:
    ok, out = _in_fresh_netns("nft add table inet packetlab_probe && echo ok")
    return Probe("", ok, "nft table created in a fresh namespace" if ok else f"nft: {out}")


def _probe_conntrack() -> Probe:
    ok, out = _in_fresh_netns(
        "nft add table inet p && "
        "nft add chain inet p c '{ type filter hook input priority 0; }' && "
        "nft add rule inet p c ct state established accept && "
        "cat /proc/sys/net/netfilter/nf_conntrack_max"
    )
    return Probe("", ok, f"ct state rule loaded, nf_conntrack_max = {out}" if ok else f"ct rule: {out}")


def _probe_bpf_xdp() -> Probe:
    return _loads(bpfsys.BPF_PROG_TYPE_XDP, _ret(XDP_PASS), "XDP program returning XDP_PASS")


def _probe_bpf_tc() -> Probe:
    return _loads(bpfsys.BPF_PROG_TYPE_SCHED_CLS, _ret(0), "sched_cls program returning TC_ACT_OK")


def _test_run(flags: int) -> Probe:
    fd, why = _load(bpfsys.BPF_PROG_TYPE_XDP, _ret(XDP_DROP))
    if fd is None:
        return Probe("", False, f"cannot load an XDP program ({why})")
    frame = ctypes.create_string_buffer(bytes(64), 64)
    attr = bpfsys.TestRunAttr(prog_fd=fd, data_size_in=64, data_in=ctypes.addressof(frame), repeat=1, flags=flags)
    try:
        bpfsys.bpf(bpfsys.BPF_PROG_TEST_RUN, attr)
    except OSError as exc:
        return Probe(
            "",
            False,
            f"BPF_PROG_TEST_RUN(flags={flags:#x}) refused: "
            f"{errno.errorcode.get(exc.errno or 0, exc.errno)} ({exc.strerror})",
        )
    finally:
        os.close(fd)
    if flags & BPF_F_TEST_XDP_LIVE_FRAMES:  # live runs report no verdict: the frames are gone
        return Probe("", True, f"BPF_PROG_TEST_RUN(flags={flags:#x}) ran (frames dropped by the program)")
    return Probe("", attr.retval == XDP_DROP, f"BPF_PROG_TEST_RUN(flags={flags:#x}) ran, verdict {attr.retval}")


BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1


def _probe_xdp_test_run() -> Probe:
    return _test_run(0)


def _probe_xdp_live_frames() -> Probe:
    """A live-frames run of a program that drops everything: nothing is ever sent anywhere."""
    return _test_run(BPF_F_TEST_XDP_LIVE_FRAMES)


def _probe_ringbuf() -> Probe:
    try:
        fd = bpfsys.map_create(bpfsys.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096)
    except OSError as exc:
        return Probe("", False, f"BPF_MAP_CREATE(RINGBUF) refused: {exc.strerror}")
    os.close(fd)
    return Probe("", True, "ring buffer map created")


def _probe_lru_exact_eviction() -> Probe:
    """Fill a 4-entry LRU hash from one CPU, add a fifth key: an exact LRU still holds 4 keys."""
    key, value = ctypes.c_uint32(), ctypes.c_uint64(1)
    here = os.sched_getaffinity(0)
    try:
        fd = bpfsys.map_create(bpfsys.BPF_MAP_TYPE_LRU_HASH, 4, 8, 4)
    except OSError as exc:
        return Probe("", False, f"BPF_MAP_CREATE(LRU_HASH) refused: {exc.strerror}")
    try:
        os.sched_setaffinity(0, {min(here)})  # free elements are kept per CPU: stay on one
        for n in range(1, 6):
            key.value = n
            attr = bpfsys.ElemAttr(map_fd=fd, key=ctypes.addressof(key), value=ctypes.addressof(value))
            bpfsys.bpf(bpfsys.BPF_MAP_UPDATE_ELEM, attr)
        kept = sorted(int.from_bytes(k, "little") for k in bpfsys.map_keys(fd, 4))
    finally:
        os.sched_setaffinity(0, here)
        os.close(fd)
    return Probe("", len(kept) == 4, f"keys 1..5 into a 4-entry LRU hash on one CPU: it kept {kept}")


def _probe_btf_vmlinux() -> Probe:
    path = Path("/sys/kernel/btf/vmlinux")
    try:
        magic = path.read_bytes()[:2]
    except OSError as exc:
        return Probe("", False, f"{path}: {exc.strerror} (a kernel built without CONFIG_DEBUG_INFO_BTF)")
    ok = magic == b"\x9f\xeb"
    return Probe("", ok, f"{path} present" if ok else f"{path} is not BTF (magic {magic.hex()})")


def _probe_xdp_load_bytes() -> Probe:
    insns = (
        _insn(0xB7, dst=2, imm=0)  # r2 = 0 (offset); r1 is still the context
        + _stack_ptr(3, -8)
        + _insn(0xB7, dst=4, imm=4)  # r3 = fp-8 (buffer), r4 = 4 (length)
        + _insn(0x85, imm=_HELPER_XDP_LOAD_BYTES)
        + _ret(XDP_PASS)
    )
    return _loads(bpfsys.BPF_PROG_TYPE_XDP, insns, "XDP program calling bpf_xdp_load_bytes()")


def _probe_perfmon_uninit_stack() -> Probe:
    """Root hands an uninitialised 4-byte stack key to bpf_map_lookup_elem()."""
    if os.geteuid() != 0:
        return Probe("", False, "not root: cannot tell what a CAP_PERFMON loader may do")
    try:
        map_fd = bpfsys.map_create(bpfsys.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    except OSError as exc:
        return Probe("", False, f"BPF_MAP_CREATE(ARRAY) refused: {exc.strerror}")
    try:
        insns = _ld_map_fd(1, map_fd) + _stack_ptr(2, -8) + _insn(0x85, imm=_HELPER_MAP_LOOKUP) + _ret(XDP_PASS)
        return _loads(bpfsys.BPF_PROG_TYPE_XDP, insns, "lookup with an uninitialised stack key, as root")
    finally:
        os.close(map_fd)


def _netdev_family() -> str | None:
    """None if the 'netdev' generic netlink family exists, else why not (pyroute2, on its own thread)."""
    from pyroute2.netlink import genlmsg
    from pyroute2.netlink.exceptions import NetlinkError
    from pyroute2.netlink.generic import GenericNetlinkSocket

    sock = GenericNetlinkSocket()
    try:
        sock.bind("netdev", genlmsg)
    except NetlinkError as exc:
        return str(exc.args[-1])
    finally:
        sock.close()
    return None


def _probe_xdp_features() -> Probe:
    from packetlab.topo.rtnl import run_on_netlink_thread  # pyroute2 must not run on the caller's event loop

    why = run_on_netlink_thread(_netdev_family)
    if why is not None:
        return Probe("", False, f"no 'netdev' generic netlink family ({why})")
    return Probe("", True, "the 'netdev' generic netlink family reports XDP features per device")


def _probe_xdp_tracepoints() -> Probe:
    from packetlab.ebpf.tracepoints import tracefs

    try:
        root = tracefs() / "events" / "xdp"
    except MissingRequirement as exc:
        return Probe("", False, exc.what)
    want = ("xdp_exception", "xdp_redirect_err", "xdp_devmap_xmit")
    missing = [t for t in want if not (root / t / "format").exists()]
    return Probe("", not missing, f"missing: {', '.join(missing)}" if missing else f"{', '.join(want)} present")


_PROBES: dict[str, Callable[[], Probe]] = {
    "netns_veth": _probe_netns_veth,
    "nftables": _probe_nftables,
    "conntrack": _probe_conntrack,
    "bpf_xdp": _probe_bpf_xdp,
    "bpf_tc": _probe_bpf_tc,
    "xdp_test_run": _probe_xdp_test_run,
    "ringbuf": _probe_ringbuf,
    "btf_vmlinux": _probe_btf_vmlinux,
    "xdp_load_bytes": _probe_xdp_load_bytes,
    "xdp_live_frames": _probe_xdp_live_frames,
    "xdp_features": _probe_xdp_features,
    "perfmon_uninit_stack": _probe_perfmon_uninit_stack,
    "lru_exact_eviction": _probe_lru_exact_eviction,
    "xdp_tracepoints": _probe_xdp_tracepoints,
}
assert _PROBES.keys() == FEATURES.keys()

_cache: dict[str, Probe] = {}


def probe(name: str) -> Probe:
    """Try feature `name` on this kernel (once per process) and say what happened."""
    if name not in _PROBES:
        raise KeyError(f"unknown kernel feature {name!r}; known: {', '.join(FEATURES)}")
    if name not in _cache:
        try:
            result = _PROBES[name]()
        except (OSError, subprocess.SubprocessError) as exc:
            result = Probe(name, False, f"probe failed: {exc}")
        _cache[name] = Probe(name, result.ok, result.detail)
    return _cache[name]


def has(name: str) -> bool:
    """True if this kernel has feature `name` (see FEATURES)."""
    return probe(name).ok


def probe_all() -> dict[str, Probe]:
    return {name: probe(name) for name in FEATURES}


def refresh() -> None:
    """Forget the cached results (after loading a module or changing capabilities)."""
    _cache.clear()


def missing_message(name: str) -> str:
    """One sentence naming the feature, what its absence means, and the kernels that have it."""
    f, p = FEATURES[name], probe(name)
    return (
        f"this kernel ({os.uname().release}) lacks {f.title} [{name}]: {p.detail}. "
        f"Without it {f.missing}. Kernels that have it: {f.since}."
    )


def require(name: str) -> None:
    """Raise MissingRequirement (naming the feature and a kernel that has it) unless present."""
    if not has(name):
        f = FEATURES[name]
        raise MissingRequirement(
            f"this kernel lacks {f.title}",
            cause=missing_message(name),
            fix=f"use a kernel that has it ({f.since}); `packetlab doctor` lists what each module needs",
        )
