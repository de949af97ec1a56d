"""Module 06 on the real kernel: tracepoints + ring buffer, map types, bpftool, the CO-RE
path (pins recorded and removed, even after SIGKILL), and the exercise checks."""

from __future__ import annotations

import os
import signal
import time

import pytest

from packetlab import Lab
from packetlab.course.grading import CheckFailed
from packetlab.course.m06_ebpf_fundamentals import demos as ebpf
from packetlab.course.m06_ebpf_fundamentals import exercises as checks
from packetlab.ebpf import bpftool
from packetlab.ebpf import co_re as core
from packetlab.ebpf import features as kernel_probes
from packetlab.ebpf.fdinfo import map_id, prog_id
from packetlab.ebpf.loader import LoadedProgram
from packetlab.ebpf.tracepoints import (
    TracepointProgram,
    kprobes_available,
    list_tracepoints,
    tracefs,
    tracepoint_fields,
)
from packetlab.errors import BpfCompileError, PacketlabError, VerifierError
from packetlab.paths import REPO_ROOT
from packetlab.testing.child import run_py
from packetlab.topo.host import Host
from packetlab.topo.state import LabRecord, record_path


@pytest.fixture(scope="module")
def map_types():
    prog = LoadedProgram(ebpf.MAP_TYPES_PROGRAM)
    for name in ("by_proto", "per_cpu", "by_src", "lru_by_src", "hash_full"):
        prog[name]  # bcc creates table objects lazily; reset_maps() clears only those
    yield prog
    prog.close()


def _two_hosts(lab: Lab) -> tuple[Host, Host]:
    """h1 — h2 on 10.0.6.0/24 in `lab`, reachable."""
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.6.1/24", peer_ip="10.0.6.2/24")
    assert h1.ping("10.0.6.2", timeout=3).ok
    return h1, h2


# ---- pure helpers -----------------------------------------------------------------------------


def test_toolchain_facts_are_read_live():
    facts = ebpf.toolchain_facts()
    assert os.uname().release in facts and "BTF" in facts and "kprobes" in facts


# ---- tracepoints ------------------------------------------------------------------------------
def test_tracefs_and_tracepoint_metadata():
    assert (tracefs() / "events").is_dir()
    assert isinstance(kprobes_available(), bool)
    assert {"net_dev_xmit", "netif_receive_skb"} <= set(list_tracepoints("net"))
    fields = tracepoint_fields("net", "net_dev_xmit")
    assert any("len" in f for f in fields) and any("name" in f for f in fields)
    with pytest.raises(PacketlabError):
        list_tracepoints("no_such_category")


@pytest.mark.slow
def test_tracepoints_count_our_sends_and_stream_them_through_the_ring_buffer(lab):
    h1, h2 = _two_hosts(lab)
    tp = TracepointProgram("bpf/06-tp-xmit.c", lab=lab)
    assert tp.attached == ["net:net_dev_xmit", "syscalls:sys_enter_sendto"]
    assert tp.events("xmit_events", timeout=0.05) == []  # nothing yet; returns, does not block
    tp.set("target_tgid", 0, os.getpid())
    got = ebpf.udp_burst(h1, h2, "10.0.6.2", count=3)
    events = tp.events("xmit_events", expect=3, timeout=3)
    assert len(got) == 3 and tp.table("sendto_calls")[0] == 3
    size = 14 + 20 + 8 + len(got[0])
    ours = [e for e in events if e["len"] == size]
    assert len(ours) == 3 and all(e["dev"] == "eth0" and e["rc"] == 0 for e in ours)
    assert [e["ts_ns"] for e in ours] == sorted(e["ts_ns"] for e in ours)
    assert "| t (µs)" not in ebpf.events_table(ours) and "eth0" in ebpf.events_table(ours)
    tp.set("target_tgid", 0, 1)  # another PID: our sends are ignored
    ebpf.udp_burst(h1, h2, "10.0.6.2", count=2)
    assert tp.events("xmit_events", timeout=0.2) == [] and tp.table("sendto_calls")[0] == 3
    lab.close()
    assert "closed" in repr(tp)  # the lab detached it


def test_printk_lines_reach_the_trace_buffer_tagged(lab):
    """bpf_trace_printk: one line per sendto() of ours, found by the run's tag, with the arguments formatted."""
    h1, h2 = _two_hosts(lab)
    lines = ebpf.printk_sends(h1, h2, "10.0.6.2", 3, lab=lab)
    assert len(lines) == 3, lines
    assert all("bpf_trace_printk: packetlab-" in line and "sendto fd=" in line for line in lines)
    assert all(line.endswith("len=20") for line in lines)  # "packetlab datagram N" is 20 bytes
    assert len({line.split("packetlab-")[1].split()[0] for line in lines}) == 1  # one tag per run


def test_kprobe_counts_our_udp_sends_where_the_kernel_has_kprobes(lab):
    """Stock kernels count the sends with a kprobe; a kernel without kprobes says so (None, a clear error)."""
    h1, h2 = _two_hosts(lab)
    counted = ebpf.kprobe_udp_sends(h1, h2, "10.0.6.2", 4, lab=lab)
    if kprobes_available():
        assert counted == 4
    else:
        assert counted is None
        with TracepointProgram("bpf/06-kprobe-udp-send.c") as kp, pytest.raises(PacketlabError) as info:
            kp.attach_kprobe("udp_sendmsg", "count_udp_sendmsg")
        assert "no kprobes" in str(info.value) and "stock" in str(info.value)


def test_tracepoint_program_errors_are_readable(tmp_path):
    bad = tmp_path / "06-broken-syntax.c"
    bad.write_text("TRACEPOINT_PROBE(net, net_dev_xmit) { return oops; }\n")
    with pytest.raises(BpfCompileError) as info:
        TracepointProgram(bad)
    assert "oops" in str(info.value)
    unsafe = tmp_path / "06-null-deref-tp.c"
    unsafe.write_text(
        "BPF_HASH(seen, u32, u64, 4);\nTRACEPOINT_PROBE(net, net_dev_xmit)\n{\n"
        "    u32 k = args->len;\n    u64 *v = seen.lookup(&k);\n    *v += 1;\n    return 0;\n}\n"
    )
    with pytest.raises(VerifierError) as verr:
        TracepointProgram(unsafe)
    assert "map_value_or_null" in verr.value.log and verr.value.line_number == 6
    assert "tracepoint__net__net_dev_xmit" in verr.value.what
    missing = tmp_path / "06-missing-tp.c"
    missing.write_text("TRACEPOINT_PROBE(net, no_such_tracepoint) { return 0; }\n")
    with pytest.raises(PacketlabError):
        TracepointProgram(missing)


# ---- map types --------------------------------------------------------------------------------
def test_array_counts_per_protocol(map_types):
    map_types.reset_maps()
    ebpf.feed(map_types, [ebpf.ipv4_frame("10.0.0.1", proto=p) for p in ("udp", "tcp", "tcp", "icmp")])
    assert {k: v for k, v in map_types.table("by_proto").items() if v} == {17: 1, 6: 2, 1: 1}


def test_per_cpu_array_keeps_one_value_per_cpu(map_types):
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("needs two CPUs")
    before, src_before = ebpf.per_cpu_values(map_types), map_types.table("by_src")
    ebpf.feed(map_types, [ebpf.arp_frame()] * 2, cpu=cpus[0])
    ebpf.feed(map_types, [ebpf.arp_frame()] * 5, cpu=cpus[1])
    delta = [a - b for a, b in zip(ebpf.per_cpu_values(map_types), before)]
    assert delta[cpus[0]] == 2 and delta[cpus[1]] == 5 and sum(delta) == 7
    assert map_types.table("by_src") == src_before  # ARP is not IPv4: only per_cpu saw it


def test_full_hash_refuses_and_full_lru_evicts(map_types):
    map_types.reset_maps()
    ebpf.feed_sources(map_types, range(1, 9))
    assert ebpf.last_octets(map_types.table("by_src")) == {1, 2, 3, 4}
    assert map_types.table("hash_full")[0] == 4
    assert ebpf.last_octets(map_types.table("lru_by_src")) == {5, 6, 7, 8}


def test_a_lookup_keeps_a_key_alive_in_the_lru():
    got = ebpf.lru_vs_hash([1, 2, 3, 4, 1, 5])
    assert got["hash"] == {1, 2, 3, 4} and got["hash_full"] == 1
    assert {1, 5} <= got["lru"] <= {1, 3, 4, 5}  # 1 was used again: it outlives 2, the least recently used
    if kernel_probes.has("lru_exact_eviction"):  # else this kernel evicts a batch (3 and 4 too)
        assert got["lru"] == {1, 3, 4, 5}


# ---- bpftool ----------------------------------------------------------------------------------
def test_bpftool_sees_our_program_maps_and_code(map_types):
    pid = prog_id(map_types.fd)
    info = bpftool.prog_show(pid)
    assert info["type"] == "xdp" and info["name"] == "xdp_map_types" and len(info["map_ids"]) == 5
    assert pid in {p["id"] for p in bpftool.prog_list()}
    names = {m["name"] for m in bpftool.map_list() if m["id"] in info["map_ids"]}
    assert names == {"by_proto", "per_cpu", "by_src", "lru_by_src", "hash_full"}
    insns = bpftool.xlated_insns(pid)
    assert len(insns) > 20 and insns[0].startswith("0:")
    # 7 map calls in C; the verifier inlines the 2 array lookups, and the per-CPU array one too since Linux 6.10
    # (so 5 calls remain on 6.1 and 6.8, 4 on 6.18); the hash and LRU calls always stay calls
    calls = [i for i in insns if "(85) call" in i]
    assert ebpf.count_xlated_calls(pid) == len(calls) in (4, 5)
    assert all("map_" in c for c in calls), calls  # every remaining call is one of the map helpers
    jited = bpftool.dump_jited(pid)
    assert len(jited.splitlines()) > 20
    image = bpftool.jited_image(pid)
    assert len(image) == info["bytes_jited"]
    table = ebpf.pipeline(map_types)
    assert "xlated" in table and str(info["bytes_jited"]) in table
    assert "xdp_map_types" in ebpf.our_programs([pid]) and "lru_hash" in ebpf.our_maps(info["map_ids"])


def test_bpftool_map_dump_matches_the_bcc_view(map_types):
    map_types.reset_maps()
    ebpf.feed(map_types, [ebpf.ipv4_frame("10.0.0.1", proto="tcp")] * 3)
    entries = bpftool.map_dump(map_id(map_types["by_proto"].map_fd))
    assert bpftool.entries_to_dict(entries)[6] == 3
    with pytest.raises(PacketlabError):
        bpftool.map_dump(2**31 - 1)  # no such map: a readable error


# ---- the CO-RE path ---------------------------------------------------------------------------
def test_vmlinux_header_is_generated_once_per_kernel():
    header = core.vmlinux_header()
    assert header.exists() and str(core.cache_dir()) in str(header)
    assert "struct sk_buff {" in header.read_text()
    mtime = header.stat().st_mtime_ns
    assert core.vmlinux_header() == header and header.stat().st_mtime_ns == mtime
    assert not str(header).startswith(str(REPO_ROOT))  # never in the repo


def test_compile_object_caches_and_reports_clang_errors(tmp_path):
    fresh = core.compile_object("bpf/06-core-netns-rx.bpf.c", fresh=True)
    assert fresh.compile_seconds > 0 and fresh.size > 0 and "-target" in fresh.clang_argv
    again = core.compile_object("bpf/06-core-netns-rx.bpf.c")
    assert again.compile_seconds == 0.0 and again.path == fresh.path
    bad = tmp_path / "06-bad.bpf.c"
    bad.write_text('#include "vmlinux.h"\nint f(void) { return undefined_thing; }\n')
    with pytest.raises(BpfCompileError) as info:
        core.compile_object(bad)
    assert "undefined_thing" in str(info.value)


@pytest.mark.slow
def test_core_program_is_pinned_attached_and_counts_one_namespace(lab):
    h1, h2 = _two_hosts(lab)
    prog = core.load("bpf/06-core-netns-rx.bpf.c", lab=lab)
    pin_dir = core.PIN_ROOT / lab.name / "06-core-netns-rx"
    assert prog.pin_dir == pin_dir and prog.prog_pin.exists()
    assert prog.map_names() == ["frames_by_proto", "layout", "target_netns"]
    record = LabRecord.load(LabRecord(lab.name, 0, None).path)
    assert set(record.pins) == {str(pin_dir / "prog")} | {str(pin_dir / "maps" / m) for m in prog.map_names()}
    assert prog.info()["type"] == "tracing"
    with pytest.raises(PacketlabError):
        core.load("bpf/06-core-netns-rx.bpf.c", lab=lab)  # same pin folder in use
    prog.update("target_netns", 0, ebpf.netns_inode(h2))
    prog.attach()
    assert str(prog.link_pin) in LabRecord.load(record.path).pins
    links = [link for link in bpftool.bpftool(["link", "show"]) if link.get("prog_id") == prog.id]
    assert len(links) == 1
    assert h1.ping("10.0.6.2", count=3, interval=0.05).received == 3
    assert prog.table("frames_by_proto")[0x0800] == 3
    layout = prog.table("layout")
    assert set(layout) == {0, 1, 2} and all(v > 0 or k == 0 for k, v in layout.items())
    h2.ping("10.0.6.1", count=2, interval=0.05)  # h2's requests are received by h1: not counted
    assert prog.table("frames_by_proto")[0x0800] == 5  # ... but the 2 replies to h2 are
    bcc = TracepointProgram("bpf/06-tp-netns-rx.c", lab=lab)
    bcc.set("target_netns", 0, ebpf.netns_inode(h2))
    h1.ping("10.0.6.2", count=2, interval=0.05)
    table, facts = ebpf.compare_paths(bcc, prog)
    assert facts["core_ipv4"] == 7 and "offset of net_device.nd_net" in table
    if facts["bcc_layout"] == facts["core_layout"]:
        assert facts["bcc_ipv4"] == 2
    lab.close()
    assert not (core.PIN_ROOT / lab.name).exists()  # lab.close() unpinned everything
    assert not any(link.get("prog_id") == prog.id for link in bpftool.bpftool(["link", "show"]) or [])


def test_track_pin_refuses_paths_outside_the_labs_folder(lab):
    with pytest.raises(PacketlabError):
        lab.track_pin("/sys/fs/bpf/somebody-else/prog")
    with pytest.raises(PacketlabError):
        lab.track_pin(f"/sys/fs/bpf/packetlab/{lab.name}/../other/prog")
    lab.track_pin(f"/sys/fs/bpf/packetlab/{lab.name}/x/prog")
    assert LabRecord.load(record_path(lab.name)).pins == [f"/sys/fs/bpf/packetlab/{lab.name}/x/prog"]


def test_attach_refuses_a_program_that_is_not_a_tracing_program():
    prog = core.load("bpf/06-fixed-stack-too-large.bpf.c", name="t06-xdp-attach")
    try:
        assert prog.test_run(ebpf.ipv4_frame("10.0.0.1")).verdict == "XDP_PASS"
        with pytest.raises(PacketlabError):
            prog.attach()
    finally:
        prog.close()
    assert not prog.pin_dir.exists()


@pytest.mark.slow
def test_pins_of_a_killed_lab_are_removed_by_its_guardian():
    child = run_py(
        "from packetlab import Lab\nfrom packetlab.ebpf import co_re as core\n"
        "lab = Lab('t06k').start()\n"
        "p = core.load('bpf/06-core-netns-rx.bpf.c', lab=lab)\n"
        "p.attach()\n"
        "print('ready', flush=True)\n"
        "import time; time.sleep(60)\n"
    )
    try:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()
        pin_dir = core.PIN_ROOT / "t06k" / "06-core-netns-rx"
        assert (pin_dir / "link").exists()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        deadline = time.monotonic() + 15
        while (pin_dir / "prog").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not (pin_dir / "prog").exists() and not (pin_dir / "link").exists()
        assert not (pin_dir / "maps" / "layout").exists()
    finally:
        if child.poll() is None:
            child.kill()
        for folder in (
            core.PIN_ROOT / "t06k" / "06-core-netns-rx" / "maps",
            core.PIN_ROOT / "t06k" / "06-core-netns-rx",
            core.PIN_ROOT / "t06k",
        ):
            if folder.exists():
                folder.rmdir()  # teardown unlinks pins, not their (now empty) folders


# ---- exercise checks --------------------------------------------------------------------------
def test_check_verifier_reading():
    assert checks.check_verifier_reading({"entry": "null-map-value", "verifier_line": 37, "bug_line": 33})
    for wrong in (
        None,
        {"entry": "packet-bounds", "verifier_line": 37, "bug_line": 33},
        {"entry": "null-map-value", "verifier_line": 33, "bug_line": 33},
        {"entry": "null-map-value", "verifier_line": 37, "bug_line": 37},
        {"entry": "null-map-value", "verifier_line": 37, "bug_line": 31},
        {"entry": "nonsense", "verifier_line": 37, "bug_line": 33},
        "null-map-value",
    ):
        with pytest.raises(CheckFailed):
            checks.check_verifier_reading(wrong)


def test_check_lru_prediction():
    assert checks.check_lru_prediction({"hash": {1, 2, 3, 4}, "lru": {1, 4, 5, 6}})
    for wrong in (
        None,
        {"hash": {1, 2, 3, 4}, "lru": {3, 4, 5, 6}},
        {"hash": {1, 4, 5, 6}, "lru": {1, 4, 5, 6}},
        [1, 2],
    ):
        with pytest.raises(CheckFailed):
            checks.check_lru_prediction(wrong)


def test_check_xlated_calls(map_types):
    pid = prog_id(map_types.fd)
    calls = ebpf.count_xlated_calls(pid)  # 4 or 5, depending on what this kernel inlines
    assert checks.check_xlated_calls(calls, pid)
    for wrong in (None, 7, str(calls)):
        with pytest.raises(CheckFailed):
            checks.check_xlated_calls(wrong, pid)


def test_check_core_count(lab):
    h1, h2 = _two_hosts(lab)
    prog = core.load("bpf/06-core-netns-rx.bpf.c", lab=lab)
    prog.update("target_netns", 0, ebpf.netns_inode(h2))
    prog.attach()
    with pytest.raises(CheckFailed):
        checks.check_core_count(0, prog)  # nothing counted yet
    h1.ping("10.0.6.2", count=2, interval=0.05)
    assert checks.check_core_count(2, prog)
    for wrong in (None, 3, 2.0):
        with pytest.raises(CheckFailed):
            checks.check_core_count(wrong, prog)
