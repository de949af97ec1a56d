"""Operating `packetlab dhcp serve`: its probes, its JSON log, and what a killed daemon leaves behind.

- /healthz and /readyz on the metrics port: ready once started; 503 naming the cause when the
  fast path is detached underneath the daemon (as `ip link set dev eth0 xdp off` does), and
  `packetlab dhcp status` says the same.
- The log is one JSON object a line; a real client's grant, renew and release are each an
  event with its fields.
- A daemon SIGKILLed in a lab whose owner dies too leaves pins in bpffs; `packetlab clean`
  (guardian off) and the lab's guardian both remove them with the namespaces. A fast path on the
  host's own interface, or in a namespace that still exists, is never collected.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from packetlab.course.m11c_dhcp_fastpath.topology import METRICS_PORT, SERVER_IP, build
from packetlab.paths import REPO_ROOT
from packetlab.tools.dhcp import fastpath, wire
from packetlab.tools.dhcp.daemon import STATE_DIR
from packetlab.topo import netns

PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")


def probe(t, path: str) -> tuple[int, dict]:
    res = t.gw.run(["curl", "-s", "-w", "\n%{http_code}", f"http://{SERVER_IP}:{METRICS_PORT}{path}"], check=True)
    body, code = res.stdout.rsplit("\n", 1)
    return int(code), json.loads(body)


def status(t) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-m", "packetlab", "dhcp", "status", "--netns", t.gw.namespace, "--dev", "eth0"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )


def log_events(server) -> list[dict]:
    """Every JSON line the daemon printed (its stdout and stderr, as the lab's Server keeps them)."""
    return [json.loads(ln) for ln in list(server.output) if ln.startswith("{")]


def test_probes_and_json_log(lab):
    t = build(lab, 1)
    srv = t.start_server()
    (s1,) = t.subs

    code, health = probe(t, "/healthz")
    assert code == 200 and health["alive"] is True
    code, ready = probe(t, "/readyz")
    assert code == 200 and ready["ready"] is True and ready["not_ready"] == [], ready
    assert ready["warmed"] == 0 and ready["prog_id"] == ready["attached_prog_id"]
    out = status(t)
    assert out.returncode == 0 and "readiness: ready" in out.stdout, out.stdout + out.stderr

    # a real client: grant (slow path), renew (unicast REQUEST: the fast path answers, the
    # daemon logs it when its sweep writes the new expiry to the store), release
    bound = t.run_client(s1)
    t.renew(s1)
    t.release(s1)
    t.stop_client(s1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(e.get("action") == "release" for e in log_events(srv)):
        time.sleep(0.1)
    events = log_events(srv)
    assert all({"ts", "level", "event", "netns", "dev"} <= e.keys() for e in events)
    start = next(e for e in events if e["event"] == "start")
    assert start["fast_path"] == "installed" and start["warmed"] == 0 and start["level"] == "info"
    leases = [e for e in events if e["event"] == "lease"]
    grant = next(e for e in leases if e["action"] == "grant")
    assert (grant["mac"], grant["ip"], grant["vlan"], grant["pool"], grant["path"]) == (
        s1.mac,
        bound[1],
        0,
        "subscribers",
        "slow",
    )
    assert grant["expires"] > time.time() + 500
    release = next(e for e in leases if e["action"] == "release")
    assert (release["mac"], release["ip"]) == (s1.mac, bound[1])
    requests = [e for e in events if e["event"] == "request"]
    assert {(e["request"], e.get("reply")) for e in requests} >= {("DISCOVER", "OFFER"), ("REQUEST", "ACK")}

    # the fast path is detached underneath the daemon: still alive, no longer ready
    t.gw.run(["ip", "link", "set", "dev", "eth0", "xdp", "off"], check=True)
    code, ready = probe(t, "/readyz")
    assert code == 503 and ready["ready"] is False
    assert any(w.startswith("fast_path: no XDP program") and "detached" in w for w in ready["not_ready"]), ready
    assert probe(t, "/healthz")[0] == 200
    out = status(t)
    assert "readiness: NOT READY: fast_path: no XDP program" in out.stdout, out.stdout + out.stderr

    # a frame the slow path cannot parse (wrong magic cookie) is a warning event with its reason
    from scapy.layers.l2 import Ether

    frame = bytearray(wire.request_frame(s1.mac, wire.DISCOVER, xid=0xBAD))
    frame[278:282] = b"\x00\x00\x00\x00"  # Ethernet 14 + IPv4 20 + UDP 8 + BOOTP 236: the cookie
    s1.host.send(Ether(bytes(frame)))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not any(e["event"] == "malformed" for e in log_events(srv)):
        time.sleep(0.1)
    bad = next(e for e in log_events(srv) if e["event"] == "malformed")
    assert bad["level"] == "warning" and "cookie" in bad["why"] and bad["bytes"] == len(frame), bad
    t.stop_server()
    srv._drain.join(5)
    assert log_events(srv)[-1]["event"] == "stop"


CHILD = """
import sys, time, json
from packetlab import Lab
from packetlab.course.m11c_dhcp_fastpath.topology import build
from packetlab.tools.dhcp import fastpath, wire
from packetlab.tools.dhcp.daemon import state_file
lab = Lab(sys.argv[1]).start()
t = build(lab, 1)
t.start_server()
state = json.loads(state_file(t.gw.namespace, 'eth0').read_text())
print('ready', state['pid'], fastpath.pin_dir(t.gw.namespace, 'eth0'), flush=True)
with lab:
    time.sleep(300)
"""


def _child(name: str, **env: str) -> tuple[subprocess.Popen, int, str]:
    child = subprocess.Popen(
        [PYTHON, "-c", CHILD, name],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    line = child.stdout.readline().split() if child.stdout else []
    if line[:1] != ["ready"]:
        child.kill()
        pytest.fail(f"the lab child did not start: {child.stderr.read() if child.stderr else ''}")
    return child, int(line[1]), line[2]


def _namespaces(name: str) -> list[str]:
    return [ns for ns in os.listdir(netns.NETNS_DIR) if ns.startswith(f"{name}-")]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed daemon whose parent died waits for init to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _kill_both(child: subprocess.Popen, daemon_pid: int) -> None:
    os.kill(daemon_pid, signal.SIGKILL)  # the daemon first, by its PID: it cannot unpin anything
    child.kill()
    child.wait(10)


@pytest.mark.parametrize("how", ["packetlab clean", "guardian"])
def test_a_killed_daemon_and_lab_leave_no_pins(how):
    name = "dkc" if how == "packetlab clean" else "dkg"
    child, daemon_pid, pins = _child(name, **({"PACKETLAB_GUARDIAN": "0"} if how == "packetlab clean" else {}))
    try:
        assert os.path.isdir(pins) and sorted(os.listdir(pins)) == sorted(["prog", *fastpath.L.MAPS])
        _kill_both(child, daemon_pid)
        if how == "packetlab clean":
            time.sleep(0.2)
            assert sorted(_namespaces(name)) == [f"{name}-gw", f"{name}-s1", f"{name}-sw"]  # nobody cleaned yet
            assert os.path.isdir(pins)
            out = subprocess.run(
                [PYTHON, "-m", "packetlab", "clean", "--lab", name], capture_output=True, text=True, cwd=REPO_ROOT
            )
            assert out.returncode == 0, out.stderr
            assert f"dhcp: unpinned {pins}" in out.stdout, out.stdout
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (_namespaces(name) or os.path.exists(pins)):
            time.sleep(0.1)
        assert _namespaces(name) == [], "namespaces left"
        assert not os.path.exists(pins), f"pins left in {pins}"
        assert not (STATE_DIR / f"{name}-gw-eth0.json").exists(), "the dead daemon's state file was left"
        assert not _running(daemon_pid)
    finally:
        if child.poll() is None:
            child.kill()
        subprocess.run([PYTHON, "-m", "packetlab", "clean", "--lab", name], capture_output=True, cwd=REPO_ROOT)


def test_pins_of_a_real_gateway_are_never_collected():
    """A fast path on the host's own interface (`host-<dev>`), or in a namespace that exists and is
    no lab's, stays until `packetlab dhcp remove`: gc (what `packetlab clean` runs) leaves it."""
    host_dir = fastpath.PIN_ROOT / "host-pl11cq0"
    netns.create("pl11cq-gw")
    ns_dir = fastpath.PIN_ROOT / "pl11cq-gw-eth0"
    gone_dir = fastpath.PIN_ROOT / "pl11cqgone-gw-eth0"
    try:
        for d in (host_dir, ns_dir, gone_dir):
            d.mkdir(parents=True, exist_ok=True)
        done = fastpath.gc()
        assert host_dir.is_dir() and ns_dir.is_dir()
        assert not gone_dir.exists() and any(str(gone_dir) in item for item in done)
        removed = fastpath.remove(None, "pl11cq0")
        assert removed == [f"unpinned {host_dir}"] and not host_dir.exists()
    finally:
        for d in (host_dir, ns_dir, gone_dir):
            if d.is_dir():
                d.rmdir()
        netns.remove("pl11cq-gw")


def test_data_rate_limit_with_real_traffic(lab):
    """A subscriber with a lease floods its gateway with pings of 1014-byte frames; a 20 kB bucket
    refilled at 10 kB/s lets about 20 through and the XDP program drops the rest. Counters, not
    timing: every echo request that was answered passed the bucket, every one that was not was
    dropped and counted with its bytes; DHCP keeps working for the same subscriber."""
    t = build(lab, 1)
    t.config["rate_limit"].update(data_rate=10_000, data_burst=20_000)
    t.start_server()
    (s1,) = t.subs
    t.lease_once(s1)
    before = t.stats()
    res = s1.host.run(["ping", "-f", "-c", "200", "-s", "972", "-W", "1", SERVER_IP])
    sent = int(res.stdout.split(" packets transmitted")[0].rsplit("\n", 1)[-1])
    got = int(res.stdout.split(" received")[0].rsplit(" ", 1)[-1])
    after = t.stats()
    dropped = after["drop_data_rate"] - before["drop_data_rate"]
    assert sent == 200 and 0 < got < 100, res.stdout
    assert dropped >= sent - got, (dropped, sent, got)
    assert after["drop_data_bytes"] - before["drop_data_bytes"] >= (sent - got) * 1014
    assert after["data"] - before["data"] >= sent
    # the limited subscriber's DHCP still goes through, answered in XDP
    assert t.lease_once(s1)[0] == "bound"
    assert t.stats()["fast_ack"] - after["fast_ack"] == 1
    t.stop_server()
