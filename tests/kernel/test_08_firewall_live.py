"""Module 08: the firewall on real traffic between lab namespaces.

* allowed TCP connections succeed and dropped ones time out (IPv4 and IPv6);
* a rate limit holds to within ±15 % of burst + rate × time;
* 1,000 atomic rule-set swaps under traffic lose no packet that both sets allow;
* the CLI installs a pinned firewall that outlives the command, shows status
  and Prometheus metrics, refuses the host and foreign namespaces, keeps the
  running rules when a new file is invalid, and removes everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest

from packetlab.course.m08_milestone_xdp_firewall.topology import build, connection_mismatches, tcp_connect, udp_stream
from packetlab.errors import PacketlabError
from packetlab.show.prometheus import parse_samples, serve_metrics
from packetlab.tools.firewall import EXAMPLES, pinned
from packetlab.tools.firewall.compiler import compile_rules
from packetlab.tools.firewall.program import Firewall
from packetlab.tools.firewall.rulefile import parse_rules

RATE_TOLERANCE = 0.15  # the documented tolerance of the rate limiter (lesson 08)


@pytest.fixture(scope="module")
def flab(module_lab):
    return build(module_lab)


@pytest.fixture()
def fw(flab):
    firewall = Firewall.attach(flab.srv, "eth0", EXAMPLES / "dual-stack.yaml")
    yield firewall
    firewall.detach()


@pytest.mark.slow
def test_allowed_connections_succeed_and_dropped_ones_time_out(flab, fw):
    srv4, srv6 = flab.ip("srv", 4), flab.ip("srv", 6)
    cases = [
        ("admin", srv4, 22, True),
        ("admin", srv6, 22, True),
        ("guest", srv4, 22, False),
        ("guest", srv6, 22, False),
        ("guest", srv4, 80, True),
        ("guest", srv6, 443, True),
        ("guest", srv4, 8080, True),
        ("admin", srv4, 8081, False),
        ("admin", srv6, 8081, False),
    ]
    assert connection_mismatches(flab, cases, timeout=0.7) == []
    st = fw.status()
    assert st.rule("ssh-admins").packets >= 2 and st.rule("web").packets >= 3
    assert st.special["default"]["packets"] >= 3  # the dropped SYNs (and retries)
    assert fw.attachment.mode == "native"


@pytest.mark.slow
def test_rate_limit_holds_within_tolerance(flab, fw):
    fw.apply(
        "default: drop\nrules:\n  - {name: icmpv6, action: allow, proto: icmpv6}\n"
        "  - {name: udp-limit, action: rate-limit, proto: udp, dport: 6000, rate: 200/s, burst: 10}\n"
    )
    run = udp_stream(flab.admin, flab.srv, flab.ip("srv"), port=6000, pps=1000, seconds=2.0)
    expected = 10 + 200 * run.seconds
    assert abs(run.received - expected) <= RATE_TOLERANCE * expected, (run, expected)
    rule = fw.status().rule("udp-limit")
    assert rule.packets == run.sent  # every datagram met the rule
    assert rule.packets - rule.limited == run.received  # the passed ones arrived
    # a second source has its own bucket
    other = udp_stream(flab.guest, flab.srv, flab.ip("srv"), port=6000, pps=1000, seconds=0.5)
    assert abs(other.received - (10 + 200 * other.seconds)) <= RATE_TOLERANCE * (10 + 200 * other.seconds) + 5


SET_A = """\
default: drop
rules:
  - {name: filler, action: drop, proto: udp, dport: 6000-6999}
  - {name: a-allow, action: allow, src: 10.0.1.5/32, proto: udp, dport: 5100}
  - {name: icmpv6, action: allow, proto: icmpv6}
"""
SET_B = """\
default: drop
rules:
  - {name: b-allow, action: allow, src: 10.0.1.0/24, proto: udp, dport: 4000-5999}
  - {name: no-tcp, action: drop, proto: tcp}
  - {name: other-net, action: allow, src: 10.0.2.0/24}
  - {name: icmpv6, action: allow, proto: icmpv6}
"""


@pytest.mark.slow
def test_a_thousand_atomic_swaps_under_traffic_lose_nothing(flab, fw):
    """Both sets allow the stream, through different rules, classes and slots: a
    packet that saw half of A and half of B would hit the default drop."""
    a, b = compile_rules(parse_rules(SET_A)), compile_rules(parse_rules(SET_B))
    fw.apply(a)
    gen0 = fw.active_slot()[1]
    default0 = fw.status().special["default"]["packets"]

    def swaps():
        for i in range(1000):
            fw.apply(b if i % 2 == 0 else a)

    run = udp_stream(flab.admin, flab.srv, flab.ip("srv"), port=5100, pps=2000, during=swaps)
    assert fw.active_slot()[1] == gen0 + 1000
    assert run.sent > 1000 and run.lost == 0, run.losses()
    assert fw.status().special["default"]["packets"] == default0


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "packetlab", "firewall", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_cli_apply_status_metrics_remove(flab, tmp_path):
    ns, target = flab.admin.namespace, pinned.Target(flab.admin.namespace, "eth0")
    # the host and namespaces outside a lab are refused
    r = _cli("apply", str(EXAMPLES / "basic.yaml"), "--dev", "eth0")
    assert r.returncode == 2 and "refusing to attach the firewall to the host" in r.stderr
    assert not target.pin_dir.exists()
    # a bad file is rejected before anything is touched
    r = _cli("apply", str(EXAMPLES / "broken.yaml"), "--netns", ns, "--dev", "eth0")
    assert r.returncode == 1 and "broken.yaml:10" in r.stderr and not target.pin_dir.exists()
    rules = tmp_path / "admin.yaml"
    rules.write_text(
        "default: drop\nrules:\n  - {name: web, action: allow, proto: tcp, dport: 80}\n"
        "  - {name: replies, action: allow, proto: tcp, tcp_flags: ack}\n"
    )
    try:
        r = _cli("apply", str(rules), "--netns", ns, "--dev", "eth0")
        assert r.returncode == 0, r.stderr
        assert "installed the firewall" in r.stdout and target.pin_dir.is_dir()
        # the command has exited; the program is still attached and filtering
        assert pinned.attached_prog_id(target) is not None
        assert not flab.guest.ping(flab.ip("admin"), count=1, timeout=1).ok
        assert tcp_connect(flab.admin, flab.ip("srv"), 80)  # replies carry ACK: allowed
        # an invalid new file leaves the running rules as they were
        r = _cli("apply", str(EXAMPLES / "broken.yaml"), "--netns", ns, "--dev", "eth0")
        assert r.returncode == 1
        r = _cli("status", "--netns", ns, "--dev", "eth0", "--json")
        status = json.loads(r.stdout)[0]
        assert status["generation"] == 1 and [x["name"] for x in status["rules"]] == ["web", "replies"]
        assert status["attached"] and status["special"]["default"]["packets"] >= 1
        assert status["rules"][1]["packets"] >= 1
        # swap in new rules: ping now allowed
        rules.write_text(
            "default: drop\nrules:\n  - {name: ping, action: allow, proto: icmp}\n"
            "  - {name: replies, action: allow, proto: tcp, tcp_flags: ack}\n"
        )
        r = _cli("apply", str(rules), "--netns", ns, "--dev", "eth0")
        assert r.returncode == 0 and "swapped new rules" in r.stdout, r.stderr
        assert flab.guest.ping(flab.ip("admin"), count=1, timeout=1).ok
        r = _cli("status")
        assert r.returncode == 0 and "generation 2" in r.stdout and "ping" in r.stdout
        r = _cli("metrics", "--netns", ns, "--dev", "eth0")
        samples = parse_samples(r.stdout)
        key = (
            "packetlab_firewall_rule_packets_total",
            frozenset({("netns", ns), ("dev", "eth0"), ("rule", "ping"), ("action", "allow")}),
        )
        assert samples[key] >= 1
        assert samples[("packetlab_firewall_generation", frozenset({("netns", ns), ("dev", "eth0")}))] == 2
        textfile = tmp_path / "fw.prom"
        r = _cli("metrics", "--textfile", str(textfile))
        assert r.returncode == 0 and "packetlab_firewall_rules" in textfile.read_text()
    finally:
        r = _cli("remove", "--netns", ns, "--dev", "eth0")
    assert r.returncode == 0 and "detached" in r.stdout, r.stderr
    assert pinned.attached_prog_id(target) is None
    assert not target.pin_dir.exists() and not target.state_file.exists()
    assert _cli("remove", "--netns", ns, "--dev", "eth0").returncode == 3  # nothing installed: the system says no


def test_foreign_namespace_is_refused(flab, monkeypatch):
    monkeypatch.setattr(pinned, "lab_namespaces", lambda: {})
    with pytest.raises(PacketlabError) as err:
        pinned.check_target(pinned.Target(flab.admin.namespace, "eth0"))
    assert "not created by a packetlab lab" in str(err.value) and "--allow-host" in str(err.value)
    pinned.check_target(pinned.Target(flab.admin.namespace, "eth0"), allow_host=True)  # explicitly allowed


def test_cli_refuses_to_replace_someone_elses_program(flab):
    att = flab.client.attach_xdp("bpf/08-xdp-drop.c", dev="eth0")
    try:
        r = _cli("apply", str(EXAMPLES / "basic.yaml"), "--netns", flab.client.namespace, "--dev", "eth0")
        assert r.returncode == 3 and "already has another XDP program" in r.stderr
        assert not pinned.Target(flab.client.namespace, "eth0").pin_dir.exists()
    finally:
        att.detach()


def test_status_exits_1_when_the_firewall_was_detached(flab):
    """A check that finds a problem exits 1: here someone took the program off the interface."""
    ns = flab.guest.namespace
    assert _cli("apply", str(EXAMPLES / "blocklist.yaml"), "--netns", ns, "--dev", "eth0").returncode == 0
    try:
        flab.guest.run(["ip", "link", "set", "eth0", "xdp", "off"], check=True)
        r = _cli("status", "--netns", ns, "--dev", "eth0")
        assert r.returncode == 1 and "not attached" in r.stdout, (r.stdout, r.stderr)
    finally:
        assert _cli("remove", "--netns", ns, "--dev", "eth0").returncode == 0


def test_pins_of_a_vanished_namespace_are_collected(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.0.9.1/24", peer_ip="10.0.9.2/24")
    r = _cli("apply", str(EXAMPLES / "blocklist.yaml"), "--netns", h2.namespace, "--dev", "eth0")
    assert r.returncode == 0, r.stderr
    target = pinned.Target(h2.namespace, "eth0")
    assert target.pin_dir.is_dir()
    lab.close()  # the namespace vanishes under the CLI's pins
    r = _cli("status")
    assert "namespace gone" in r.stdout
    assert not target.pin_dir.exists() and not target.state_file.exists()


def test_metrics_endpoint_serves_prometheus_text(flab, fw):
    fw.apply(EXAMPLES / "basic.yaml")
    tcp_connect(flab.guest, flab.ip("srv"), 80)
    server = serve_metrics(lambda: fw.metrics(netns=flab.srv.namespace, dev="eth0"), "127.0.0.1", 0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            samples = parse_samples(resp.read().decode())
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
    finally:
        server.shutdown()
        server.server_close()
    web = (
        "packetlab_firewall_rule_packets_total",
        frozenset({("netns", flab.srv.namespace), ("dev", "eth0"), ("rule", "web"), ("action", "allow")}),
    )
    assert samples[web] >= 1


def test_firewall_lab_cleanup_detaches(flab):
    fw = Firewall.attach(flab.srv, "eth0", EXAMPLES / "basic.yaml")
    assert "xdp" in flab.srv.run(["ip", "link", "show", "eth0"]).stdout
    prog_id = pinned.attached_prog_id(pinned.Target(flab.srv.namespace, "eth0"))
    assert prog_id is not None
    fw.detach()
    assert "xdp" not in flab.srv.run(["ip", "link", "show", "eth0"]).stdout
    # the Python API pins nothing (only the CLI does), and its program is unloaded with the detach
    assert not pinned.Target(flab.srv.namespace, "eth0").pin_dir.exists()
    shown = subprocess.run(["bpftool", "prog", "show", "id", str(prog_id)], capture_output=True, text=True)
    assert shown.returncode != 0, f"program {prog_id} is still loaded after detach: {shown.stdout}"
