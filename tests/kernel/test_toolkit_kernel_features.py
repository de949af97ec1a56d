"""Kernel feature probes (packetlab.ebpf.features), the per-module declarations
(packetlab.module_readiness) and the doctor's per-module verdicts, on the real kernel."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from packetlab import module_readiness as mr
from packetlab.doctor import format_report, run_checks
from packetlab.ebpf import features as kp
from packetlab.ebpf import syscall as bpfsys
from packetlab.errors import MissingRequirement
from packetlab.paths import REPO_ROOT, lab_notebooks

# What every supported kernel (Debian 12's 6.1, Ubuntu 24.04's 6.8, mainline) has: a probe that says
# otherwise here is a broken probe, not a missing feature. Not here: xdp_features (6.3+) and
# perfmon_uninit_stack (6.3+, and 6.1 only from a later stable update) and lru_exact_eviction (the 2025
# LRU fix), which supported kernels may lack.
ON_EVERY_SUPPORTED_KERNEL = {
    "netns_veth",
    "nftables",
    "conntrack",
    "bpf_xdp",
    "bpf_tc",
    "xdp_test_run",
    "ringbuf",
    "btf_vmlinux",
    "xdp_load_bytes",
    "xdp_live_frames",
    "xdp_tracepoints",
}
MAY_DIFFER = {"xdp_features", "perfmon_uninit_stack", "lru_exact_eviction"}


def test_every_feature_has_a_probe_and_says_which_kernels_have_it():
    assert set(kp.FEATURES) == ON_EVERY_SUPPORTED_KERNEL | MAY_DIFFER
    for name, feature in kp.FEATURES.items():
        assert feature.title and feature.since and feature.missing, name


@pytest.mark.parametrize("name", sorted(ON_EVERY_SUPPORTED_KERNEL))
def test_probe_finds_what_every_supported_kernel_has(name):
    result = kp.probe(name)
    assert result.name == name and result.ok, result.detail


def test_probes_are_cached_and_refresh_forgets_them():
    first = kp.probe("bpf_xdp")
    assert kp.probe("bpf_xdp") is first
    kp.refresh()
    assert kp.probe("bpf_xdp") is not first and kp.probe("bpf_xdp") == first


def test_unknown_feature_names_the_known_ones():
    with pytest.raises(KeyError, match="xdp_live_frames"):
        kp.probe("xdp_teleport")


def test_require_and_missing_message_name_the_feature_and_the_kernels():
    kp.require("bpf_xdp")  # present: no error
    message = kp.missing_message("xdp_features")
    assert "[xdp_features]" in message and "6.3" in message and kp.probe("xdp_features").detail in message


def test_require_raises_a_teaching_error_for_a_missing_feature():
    """A miss recorded by hand (this kernel has the feature): the error names it, why, and who has it."""
    kp._cache["xdp_live_frames"] = kp.Probe("xdp_live_frames", False, "refused here on purpose")
    try:
        with pytest.raises(MissingRequirement) as info:
            kp.require("xdp_live_frames")
        assert "Linux 5.18+" in str(info.value) and "refused here on purpose" in str(info.value)
    finally:
        kp.refresh()


def test_probe_programs_are_real_bytecode():
    """The hand-assembled probes are what the kernel runs: the XDP one returns the verdict it says."""
    fd = bpfsys.prog_load(bpfsys.BPF_PROG_TYPE_XDP, kp._ret(kp.XDP_DROP))
    try:
        from packetlab.ebpf.testrun import prog_test_run

        assert prog_test_run(fd, bytes(64)).verdict == "XDP_DROP"
    finally:
        import os

        os.close(fd)


# ---- per-module declarations ------------------------------------------------------------------------
def test_every_module_with_a_lab_declares_its_features():
    labs = [p.stem for p in lab_notebooks()]
    assert [m.slug for m in mr.MODULES.values()] == labs
    for needs in mr.MODULES.values():
        assert set(needs.required) | set(needs.optional) <= set(kp.FEATURES), needs.slug
        assert not set(needs.required) & set(needs.optional)


def test_every_module_is_ready_on_this_kernel():
    verdicts = mr.all_modules()
    assert [r.number for r in verdicts] == [p.stem.split("-", 1)[0] for p in lab_notebooks()]
    assert all(r.state in ("ready", "ready with differences") for r in verdicts), mr.format_modules(verdicts)
    differences = [r for r in verdicts if r.state == "ready with differences"]
    assert bool(differences) == (
        not all(kp.has(n) for n in MAY_DIFFER)
    )  # the optional ones a supported kernel may lack


def test_a_missing_required_feature_makes_its_modules_not_ready():
    kp._cache["ringbuf"] = kp.Probe("ringbuf", False, "refused here on purpose")
    try:
        r = mr.readiness("06")
        assert r.state == "not ready" and "[ringbuf]" in r.reasons[0] and "refused here on purpose" in r.reasons[0]
        assert mr.readiness("07").state != "not ready"
    finally:
        kp.refresh()


def test_doctor_prints_one_verdict_per_module():
    table = format_report(run_checks(live=False))
    for needs in mr.MODULES.values():
        assert re.search(rf"module {needs.slug}\s+(ready|ready with differences|not ready)", table), needs.slug
    assert "feature: xdp_live_frames" in table
    assert "kernel version" not in table  # no more version guessing


def test_doctor_json_carries_the_module_verdicts():
    out = subprocess.run(
        [sys.executable, "-m", "packetlab", "doctor", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    modules = {c["name"]: c for c in json.loads(out.stdout) if c["name"].startswith("module ")}
    assert len(modules) == len(lab_notebooks()) and all(c["ok"] and c["required"] for c in modules.values())
    assert modules["module 07-xdp"]["detail"].startswith("ready")


def test_probes_work_inside_a_running_event_loop():
    """As in a notebook: pyroute2 must not be driven on the caller's loop (DESIGN principle 8)."""
    import asyncio

    async def inside() -> bool:
        kp.refresh()
        return kp.probe("xdp_features").name == "xdp_features"

    assert asyncio.run(inside())
