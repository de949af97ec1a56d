"""The toolkit on the real kernel: topologies, XDP, test runs and every cleanup path."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from pyroute2.netlink.exceptions import NetlinkError
from scapy.layers.inet import ICMP, IP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Ether

from packetlab import Lab
from packetlab.errors import LabBusy, PacketlabError, VerifierError
from packetlab.paths import REPO_ROOT
from packetlab.testing.child import PYTHON, run_py
from packetlab.testing.fixtures import lab_namespaces, wait_until_gone
from packetlab.topo import netns
from packetlab.topo.servers import startup_scale
from packetlab.topo.state import STATE_DIR, LabRecord, record_path

HERE = Path(__file__).parent
COUNTER = str(HERE / "bpf/toolkit_counter.c")


def test_ping_across_a_bridge_ipv4_and_ipv6(lab):
    h1, h2, sw = lab.host("h1"), lab.host("h2"), lab.switch("sw")
    lab.link(h1, sw, ip=["10.0.1.1/24", "fd00:1::1/64"])
    lab.link(h2, sw, ip=["10.0.1.2/24", "fd00:1::2/64"])
    assert h1.ping("10.0.1.2", check=True).ok
    assert h1.ping("fd00:1::2", check=True).ok
    assert "h1-eth0" in sw.run(["ip", "-br", "link"]).stdout
    assert sorted(lab_namespaces(lab.name)) == [f"{lab.name}-{n}" for n in ("h1", "h2", "sw")]
    assert not h1.ping("10.0.1.99", timeout=0.5).ok


def test_routes_sysctls_and_a_router(lab):
    a, r, b = lab.host("a"), lab.router("r"), lab.host("b")
    lab.link(a, r, ip="10.1.0.1/24", peer_ip="10.1.0.254/24")
    lab.link(b, r, ip="10.2.0.1/24", peer_ip="10.2.0.254/24")
    assert r.sysctl("net.ipv4.ip_forward") == "1"
    assert not a.ping("10.2.0.1", timeout=0.5).ok  # no route yet
    a.add_route("default", via="10.1.0.254")
    b.add_route("default", via="10.2.0.254")
    assert a.ping("10.2.0.1", check=True).ok
    assert "via 10.1.0.254" in a.ip("route get 10.2.0.1")


def test_command_results_and_errors(lab):
    h = lab.host("h1")
    assert h.run("echo hi").stdout == "hi\n"
    bad = h.run(["sh", "-c", "echo oops >&2; exit 3"])
    assert (bad.ok, bad.returncode) == (False, 3)
    with pytest.raises(PacketlabError, match="exit code 3"):
        bad.check()
    with pytest.raises(PacketlabError, match="timed out"):
        h.run(["sleep", "5"], timeout=0.2)
    with pytest.raises(PacketlabError, match="already has a node"):
        lab.host("h1")


def test_half_built_link_is_rolled_back(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    with pytest.raises(NetlinkError):  # EINVAL
        lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24", mtu=10)  # MTU below minimum
    assert "eth0" not in h1.run(["ip", "-br", "link"]).stdout
    assert LabRecord.load(record_path(lab.name)).links == []
    lab.link(h1, h2, name="eth0", peer_name="eth0", ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    assert h1.ping("10.0.0.2").ok


def test_background_processes_are_stopped_on_close(lab):
    h = lab.host("h1")
    proc = h.popen(["sleep", "60"])
    pid = proc.pid
    lab.close()
    assert proc.poll() is not None
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()


def test_a_second_live_lab_with_the_same_name_is_refused():
    child = run_py(
        "from packetlab import Lab; import time; l = Lab('tkf').start(); l.host('h1'); "
        "print('ready', flush=True); time.sleep(30)"
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        with pytest.raises(LabBusy, match="already running"):
            Lab("tkf").start()
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(10)
    assert wait_until_gone("tkf")


def test_xdp_attach_counts_real_traffic_and_detaches(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    xdp = h2.attach_xdp(COUNTER, "eth0", mode="native")
    assert xdp.mode == "native"
    assert "prog/xdp" in h2.run(["ip", "link", "show", "eth0"]).stdout
    assert h1.ping("10.0.0.2", count=3, interval=0.05).received == 3
    counts = xdp.table("by_class")
    assert counts[2] >= 3 and counts[1] >= 1  # echo requests (IPv4) and ARP
    h1.send(Ether(dst=h2.mac()) / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(dport=9), count=5)
    xdp.detach()
    assert "prog/xdp" not in h2.run(["ip", "link", "show", "eth0"]).stdout
    generic = h2.attach_xdp(COUNTER, "eth0", mode="generic")
    assert generic.mode == "generic"


def test_test_run_verdicts_on_scapy_packets():
    from packetlab.ebpf.loader import LoadedProgram

    prog = LoadedProgram(COUNTER)
    try:
        assert prog.test_run(Ether() / IP() / UDP(dport=9)).verdict == "XDP_DROP"
        assert prog.test_run(Ether() / IP() / UDP(dport=53)).verdict == "XDP_PASS"
        assert prog.test_run(Ether() / ARP()).verdict == "XDP_PASS"
        assert prog.test_run(Ether() / IPv6() / ICMP()).verdict == "XDP_PASS"
        truncated = bytes(Ether() / IP() / UDP(dport=9))[:30]
        assert prog.test_run(truncated).verdict == "XDP_PASS"
        run = prog.test_run(Ether() / IP() / UDP(dport=9), repeat=1000)
        assert run.repeat == 1000 and run.ns_per_run >= 0
        assert prog.table("by_class")[2] >= 1002
        with pytest.raises(PacketlabError, match="at least 14 bytes"):
            prog.test_run(b"\x00" * 10)
    finally:
        prog.close()


def test_rejected_program_gives_a_readable_verifier_error():
    from packetlab.ebpf.loader import LoadedProgram

    with pytest.raises(VerifierError) as info:
        LoadedProgram(HERE / "bpf/toolkit_fail_unchecked_read.c")
    err = info.value
    assert "invalid access to packet" in err.log  # the verifier's own words
    assert err.line_number == 13 and "HERE" in err.source_line
    text = str(err)
    assert "toolkit_fail_unchecked_read.c:13" in text and "data_end" in text
    assert err._render_traceback_()[0].count("\n") < 40


def test_compile_error_names_the_line():
    from packetlab.ebpf.loader import LoadedProgram
    from packetlab.errors import BpfCompileError

    bad = HERE / "bpf" / "_tmp_syntax_error.c"
    bad.write_text("#include <uapi/linux/bpf.h>\nint xdp_x(struct xdp_md *ctx) { return XDP_PASS }\n")
    try:
        with pytest.raises(BpfCompileError, match="_tmp_syntax_error.c:2"):
            LoadedProgram(bad)
    finally:
        bad.unlink()


CHILD_LAB = """
import sys, time
from packetlab import Lab
lab = Lab(sys.argv[1]).start()
h1, h2 = lab.host('h1'), lab.host('h2')
lab.link(h1, h2, ip='10.9.0.1/24', peer_ip='10.9.0.2/24')
h2.attach_xdp('tests/kernel/bpf/toolkit_counter.c', 'eth0')
h1.popen(['sleep', '300'])
from packetlab.ebpf.loader import attached_xdp_prog_id
print('ready', attached_xdp_prog_id(h2.namespace, 'eth0'), flush=True)
with lab:
    time.sleep(300)
"""


def _start_child(name: str, **env) -> subprocess.Popen:
    import os

    child = subprocess.Popen(
        [PYTHON, "-c", CHILD_LAB, name],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    line = child.stdout.readline().split()
    assert line[:1] == ["ready"], child.stderr.read()
    assert len(lab_namespaces(name)) == 2
    child.prog_id = int(line[1])  # type: ignore[attr-defined]  # the XDP program the child attached
    return child


def _prog_freed(prog_id: int, timeout: float = 10.0) -> bool:
    """Wait until the kernel has freed program `prog_id`. Not at once: a deleted namespace's devices
    are destroyed later by the kernel's netns cleanup work, and the program after an RCU grace
    period, which takes seconds on a busy machine (CI saw it still loaded right after the namespaces went)."""
    deadline = time.monotonic() + timeout * startup_scale()
    while time.monotonic() < deadline:
        if subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True).returncode != 0:
            return True
        time.sleep(0.1)
    return False


def _sleepers_of(name: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    record = STATE_DIR / f"{name}.json"
    pids = {p["pid"] for p in json.loads(record.read_text())["processes"]} if record.exists() else set()
    return [line for line in out.splitlines() if line.split()[0].isdigit() and int(line.split()[0]) in pids]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_cleanup_on_signal(sig):
    name = "tkh" if sig == signal.SIGINT else "tki"
    child = _start_child(name)
    child.send_signal(sig)
    child.wait(15 * startup_scale())  # the child tears its lab down first
    assert wait_until_gone(name), "namespaces left after signal"
    assert _prog_freed(child.prog_id), f"the child's XDP program {child.prog_id} outlived its lab"


def test_cleanup_after_sigkill_by_the_guardian():
    child = _start_child("tkj")
    child.kill()
    child.wait(5)
    assert wait_until_gone("tkj"), "the guardian did not remove the namespaces of a SIGKILLed lab"
    assert _prog_freed(child.prog_id), f"the child's XDP program {child.prog_id} outlived its lab"


def test_cleanup_after_sigkill_by_packetlab_clean():
    child = _start_child("tkk", PACKETLAB_GUARDIAN="0")
    record = json.loads((STATE_DIR / "tkk.json").read_text())
    sleeper = record["processes"][0]["pid"]
    child.kill()
    child.wait(5)
    time.sleep(0.2)
    assert sorted(lab_namespaces("tkk")) == ["tkk-h1", "tkk-h2"]  # nobody cleaned yet
    dry = subprocess.run(
        [PYTHON, "-m", "packetlab", "clean", "--dry-run", "--lab", "tkk"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert "would remove tkk: namespace tkk-h1" in dry.stdout
    out = subprocess.run(
        [PYTHON, "-m", "packetlab", "clean", "--lab", "tkk"], capture_output=True, text=True, cwd=REPO_ROOT
    )
    assert out.returncode == 0, out.stderr
    assert "namespace tkk-h2" in out.stdout and f"process {sleeper}" in out.stdout
    assert lab_namespaces("tkk") == [] and not Path(f"/proc/{sleeper}/cmdline").exists()
    assert not (STATE_DIR / "tkk.json").exists()


def test_clean_leaves_running_labs_and_foreign_namespaces_alone():
    netns.create("tkl-foreign")  # not recorded by any lab: must survive clean
    try:
        with Lab("tkl") as lab:
            lab.host("h1")
            out = subprocess.run(
                [PYTHON, "-m", "packetlab", "clean", "--lab", "tkl"], capture_output=True, text=True, cwd=REPO_ROOT
            )
            assert "is running" in out.stdout
            assert netns.exists("tkl-h1")
        assert netns.exists("tkl-foreign")
    finally:
        netns.remove("tkl-foreign")


def test_cleanup_when_a_notebook_kernel_restarts():
    from jupyter_client.manager import KernelManager

    wait = 60 * startup_scale()  # a kernel's start and a lab's build, far slower on an emulated CPU
    km = KernelManager(kernel_name="python3")
    km.kernel_cmd = [PYTHON, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    km.start_kernel(cwd=str(REPO_ROOT))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=wait)
        reply = kc.execute_interactive(
            "from packetlab import Lab\nlab = Lab('tkm').start()\nlab.host('h1'); lab.host('h2')", timeout=wait
        )
        assert reply["content"]["status"] == "ok"
        assert len(lab_namespaces("tkm")) == 2
        km.restart_kernel(now=False)
        assert wait_until_gone("tkm"), "namespaces survived a kernel restart"
        kc.wait_for_ready(timeout=wait)
        reply = kc.execute_interactive(
            "from packetlab import Lab\nlab = Lab('tkm').start()\nlab.host('h1')", timeout=wait
        )
        assert reply["content"]["status"] == "ok"
        km.restart_kernel(now=True)  # SIGKILL: the guardian cleans up
        assert wait_until_gone("tkm"), "namespaces survived a forced kernel restart"
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert wait_until_gone("tkm")


def test_doctor_json_reports_everything_present():
    out = subprocess.run([PYTHON, "-m", "packetlab", "doctor", "--json"], capture_output=True, text=True, cwd=REPO_ROOT)
    checks = json.loads(out.stdout)
    missing = [c for c in checks if c["required"] and not c["ok"]]
    assert out.returncode == 0 and missing == []
    assert {"XDP native mode on veth", "connection tracking", "BPF_PROG_TEST_RUN"} <= {c["name"] for c in checks}


def test_doctor_exits_nonzero_when_headers_are_missing():
    import os

    out = subprocess.run(
        [PYTHON, "-m", "packetlab", "doctor"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "BCC_KERNEL_SOURCE": "/nonexistent"},
    )
    assert out.returncode == 1
    assert "MISSING  kernel headers for bcc" in out.stdout
    assert "vagrant/provision.sh" in out.stdout


def test_per_cpu_maps_are_summed_and_pooled_programs_start_clean():
    from packetlab.ebpf.loader import acquire, release

    prog = acquire(HERE / "bpf/toolkit_maps.c")
    assert sorted(prog.map_names()) == ["never_read_from_python", "per_cpu_pairs"]
    for _ in range(3):
        prog.test_run(bytes(64))
    assert prog.table("per_cpu_pairs") == {0: {"packets": 3, "bytes": 192}}
    release(prog)  # back to the pool, every map cleared
    again = acquire(HERE / "bpf/toolkit_maps.c")
    try:
        assert again is prog
        assert again.table("per_cpu_pairs") == {0: {"packets": 0, "bytes": 0}}
        assert again.table("never_read_from_python") == {}
    finally:
        again.close()


def test_struct_keys_and_xdp_on_a_switch_port(lab):
    from packetlab.ebpf.loader import LoadedProgram

    h1, h2, sw = lab.host("h1"), lab.host("h2"), lab.switch("sw")
    lab.link(h1, sw, ip="10.0.1.1/24")
    lab.link(h2, sw, ip="10.0.1.2/24")
    port = sw.attach_xdp(COUNTER, "h2-eth0")  # frames on their way to h2
    assert h1.ping("10.0.1.2", count=2, interval=0.05).received == 2
    assert port.table("by_class")[2] >= 2
    prog = LoadedProgram(HERE / "bpf/toolkit_maps.c")
    try:
        with pytest.raises(PacketlabError, match="never_read_from_python, per_cpu_pairs"):
            prog["no_such_map"]
    finally:
        prog.close()


def test_starting_a_lab_again_in_the_same_process_replaces_it():
    first = Lab("tko").start()  # as when a notebook's first cell runs twice
    first.host("h1")
    second = Lab("tko").start()
    try:
        assert not first.running
        assert not netns.exists("tko-h1")
        second.host("h1")
        assert netns.exists("tko-h1")
    finally:
        second.close()
    assert lab_namespaces("tko") == []


def test_unknown_attach_modes_are_readable_errors(lab):
    h = lab.host("h1")
    lab.link(h, lab.host("h2"), ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    with pytest.raises(PacketlabError, match="unknown XDP mode 'turbo'"):
        h.attach_xdp(COUNTER, "eth0", mode="turbo")
    with pytest.raises(PacketlabError, match="no interface 'eth9'"):
        h.attach_xdp(COUNTER, "eth9")
    with pytest.raises(PacketlabError, match="unknown tc direction"):
        h.attach_tc(COUNTER, "eth0", direction="sideways", function="xdp_toolkit")


def test_a_filtered_capture_holds_only_matching_frames_even_under_traffic(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.0.1/24", peer_ip="10.0.0.2/24")
    noise = h2.popen(["ping", "-6", "-i", "0.002", "-c", "3000", "ff02::1%eth0"])  # frames before the filter
    try:
        for _ in range(20):
            with h1.capture("eth0", filter="icmp") as got:
                h2.ping("10.0.0.1", count=1)
            assert got and all(ICMP in f for f in got), [f.summary() for f in got if ICMP not in f]
    finally:
        noise.kill()
