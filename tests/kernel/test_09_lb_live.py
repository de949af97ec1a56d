"""The load balancer live in lab namespaces: real clients (curl, sockets), real backends, both modes."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m09_milestone_l4_load_balancer.exercises import (
    check_backend_for_flow,
    check_flow_survives,
    check_weight_split,
)
from packetlab.course.m09_milestone_l4_load_balancer.helpers import survival_exercise
from packetlab.course.m09_milestone_l4_load_balancer.teach import wait_for
from packetlab.course.m09_milestone_l4_load_balancer.topology import VIP, HttpConnection, attach_decap, build, udp_ask
from packetlab.paths import REPO_ROOT
from packetlab.tools.lb import maglev
from packetlab.tools.lb.balancer import LoadBalancer
from packetlab.topo.servers import startup_scale

pytestmark = pytest.mark.slow
URL = f"http://{VIP}/"


@pytest.fixture(scope="module")
def topo(module_lab):
    """The module 09 topology with decapsulation attached and the backends' servers running."""
    t = build(module_lab)
    attach_decap(t)
    t.start_servers()
    return t


@pytest.fixture()
def lb(topo):
    for b in topo.backends:
        if b.name not in topo.servers:
            topo.start_server(b.name)
    balancer = LoadBalancer(topo.lb, ["eth0", "eth1"])
    yield balancer
    balancer.close()


def web(topo, mode="nat", weights=None, names=("b1", "b2", "b3"), **extra):
    backends = [e for e in topo.backend_entries(weights=weights) if e["name"] in names]
    return {"vips": [dict({"name": "web", "address": VIP, "port": 80, "mode": mode, "backends": backends}, **extra)]}


@pytest.mark.parametrize("mode", ["nat", "dsr"])
def test_curl_from_several_clients_reaches_backends_in_proportion_to_weights(topo, lb, mode):
    """Exact, not statistical: the table's shares are the weights', and every connection lands where
    its 5-tuple hashes (300 curls only sample the table; a ±x% tolerance on them flakes now and then)."""
    lb.apply(web(topo, mode, weights={"b1": 1, "b2": 2, "b3": 3}))
    shares = lb.table_shares("web")
    for name, w in (("b1", 1), ("b2", 2), ("b3", 3)):
        assert abs(shares[name] - w / 6) < 0.01, shares
    served = [line.split()[:2] for c in topo.clients for line in topo.curl(c, URL, count=100)]
    assert len(served) == 300, served
    for backend, client in served:
        ip, port = client.rsplit(":", 1)
        assert backend == lb.predict("web", ip, int(port)), (backend, client)
    seen = Counter(backend for backend, _ in served)
    assert set(seen) == {"b1", "b2", "b3"}, seen
    st = lb.stats().vip("web")
    assert st.counters.conns == 300
    assert {b.label: b.counters.conns for b in st.backends} == dict(seen)
    if mode == "nat":
        assert st.counters.reply_packets > 0  # replies came back through the LB
    else:
        assert st.counters.reply_packets == 0  # DSR: replies went straight to the clients
        decapped = sum(sum(x["decap_stats"][x["decap_stats"].Key(0)]) for x in topo.decaps.values())
        assert decapped >= st.counters.packets
    body = topo.curl(topo.clients[1], URL)[0]
    assert body.split()[1].startswith(topo.client_ip(1) + ":")  # the backend sees the real client


@pytest.mark.parametrize("mode", ["nat", "dsr"])
def test_a_long_lived_connection_survives_adding_and_removing_other_backends(topo, lb, mode):
    lb.apply(web(topo, mode, names=("b1", "b2")))
    with HttpConnection(topo.clients[0], VIP) as conn:
        home = conn.get()
        lb.apply(web(topo, mode))  # b3 joins
        assert conn.get() == home
        others = [n for n in ("b1", "b2", "b3") if n != home]
        lb.apply(web(topo, mode, names=(home, others[0])))  # another one leaves
        assert conn.get() == home
        assert lb.stats().events["conn_reselect"] == 0
        [c] = [c for c in lb.connections() if c.client_port == conn.source_port]
        assert c.backend == home and c.state == "established"


def test_killing_a_backend_drains_it_while_the_others_keep_serving(topo, lb):
    lb.apply(web(topo, "nat", health={"type": "http", "interval": 0.2, "timeout": 0.3, "fall": 2, "rise": 2}))
    lb.start_health_checks()
    conn = HttpConnection(topo.clients[0], VIP)
    try:
        home = conn.get()
        victim = next(n for n in ("b1", "b2", "b3") if n != home)
        topo.stop_server(victim)
        assert wait_for(lambda: not next(b for b in lb.stats().vip("web").backends if b.label == victim).up)
        assert lb.table_shares("web")[victim] == 0.0
        seen = topo.spread(URL, per_client=20)
        assert victim not in seen and sum(seen.values()) == 60, seen
        assert conn.get() == home  # an established flow elsewhere is untouched
        topo.start_server(victim)
        assert wait_for(lambda: next(b for b in lb.stats().vip("web").backends if b.label == victim).up)
        assert victim in topo.spread(URL, per_client=30)  # it is back
    finally:
        conn.close()
        lb.stop_health_checks()


@pytest.mark.parametrize("mode", ["nat", "dsr"])
def test_udp_vip(topo, lb, mode):
    lb.apply(
        {
            "vips": [
                {
                    "name": "echo",
                    "address": VIP,
                    "port": 5353,
                    "protocol": "udp",
                    "mode": mode,
                    "backends": topo.backend_entries(),
                }
            ]
        }
    )
    answers = [udp_ask(topo.clients[i % 3], VIP, 5353, source_port=33000 + i) for i in range(30)]
    assert None not in answers and set(answers) == {"b1", "b2", "b3"}
    for _ in range(3):  # the same 5-tuple, the same backend
        assert udp_ask(topo.clients[0], VIP, 5353, source_port=33000) == answers[0]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "packetlab", "lb", *args], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )


def test_cli_apply_status_remove(topo):
    ns = topo.lb.namespace
    target = ["--netns", ns, "--dev", "eth0", "--dev", "eth1"]
    bad = cli("apply", "packetlab/tools/lb/examples/broken.yaml", *target)
    assert bad.returncode == 1 and "nothing was applied" in bad.stderr  # the input was refused
    assert "no load balancers installed" in cli("list").stdout or ns not in cli("list").stdout
    assert cli("apply", "packetlab/tools/lb/examples/web-nat.yaml").returncode == 2  # no target: a usage error
    try:
        r = cli("apply", "packetlab/tools/lb/examples/web-nat.yaml", *target)
        assert r.returncode == 0, r.stderr
        assert f"pinned at /sys/fs/bpf/packetlab/lb/{ns}-eth0" in r.stdout
        seen = topo.spread(URL, per_client=20)
        assert set(seen) == {"b1", "b2", "b3"}
        st = cli("status", "--netns", ns, "--dev", "eth0", "--conns")
        assert st.returncode == 0 and "connection table: 60 flows" in st.stdout and "b3" in st.stdout
        prom = cli("status", "--netns", ns, "--dev", "eth0", "--prometheus").stdout
        line = next(ln for ln in prom.splitlines() if ln.startswith("packetlab_lb_vip_connections_total"))
        assert line.endswith(" 60")
        assert "# TYPE packetlab_lb_backend_up gauge" in prom
        # health checks from the command line: one round, and the loop with its metrics endpoint
        topo.stop_server("b2")
        h = cli("health", "--netns", ns, "--dev", "eth0", "--once")
        assert h.returncode == 0 and "b2 (10.9.2.12:80) is DOWN" in h.stdout
        assert "DOWN" in cli("status", "--netns", ns, "--dev", "eth0").stdout
        topo.start_server("b2")
        loop = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "packetlab",
                "lb",
                "health",
                "--netns",
                ns,
                "--dev",
                "eth0",
                "--interval",
                "0.2",
                "--metrics-port",
                "9109",
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:

            def b2_up():
                r = topo.lb.run(["curl", "-s", "-m", "1", "http://127.0.0.1:9109/metrics"])
                return 'packetlab_lb_backend_up{vip="web",backend="b2",address="10.9.2.12",port="80"} 1' in r.stdout

            # the loop is a new Python process (imports, BPF map opens): it starts slowly on an emulated CPU
            assert wait_for(b2_up, timeout=15 * startup_scale())
        finally:
            loop.terminate()
            loop.wait(10 * startup_scale())
        # re-apply with a changed weight: updated in place
        r = cli("apply", "packetlab/tools/lb/examples/web-dsr.yaml", *target)
        assert r.returncode == 0 and r.stdout.startswith("updated")
        assert set(topo.spread(URL, per_client=10)) <= {"b1", "b2", "b3"}
    finally:
        r = cli("remove", "--netns", ns, "--dev", "eth0")
    assert r.returncode == 0 and "unpinned" in r.stdout
    out = topo.lb.run(["ip", "-d", "link", "show", "eth0"]).stdout
    assert "prog/xdp" not in out
    assert cli("status", "--netns", ns, "--dev", "eth0").returncode == 3  # nothing installed: the system says no


# ---- the exercise checks: the right answer passes, wrong ones raise CheckFailed --------------------


def test_check_weight_split(topo, lb):
    lb.apply(web(topo, weights={"b1": 2, "b2": 1, "b3": 1}))
    assert check_weight_split({"b1": 0.5, "b2": 0.25, "b3": 0.25}, lb)
    for wrong, why in (
        ({"b1": 1 / 3, "b2": 1 / 3, "b3": 1 / 3}, "owns 0.500"),
        (None, "no answer"),
        ({"b1": 50, "b2": 25, "b3": 25}, "more than 1"),
        ({"b1": 0.5}, "no share given"),
    ):
        with pytest.raises(CheckFailed, match=why):
            check_weight_split(wrong, lb)


def test_check_backend_for_flow(topo, lb):
    lb.apply(web(topo))
    lb.flush_connections()
    slot = maglev.flow_hash(topo.client_ip(0), VIP, 41234, 80, "tcp") % 65537
    right = lb.table("web")[slot]
    assert check_backend_for_flow(right, lb, topo, source_port=41234)
    wrong = next(n for n in ("b1", "b2", "b3") if n != right)
    with pytest.raises(CheckFailed, match=f"answered by {right}"):
        check_backend_for_flow(wrong, lb, topo, source_port=41234)
    with pytest.raises(CheckFailed, match="not one of"):
        check_backend_for_flow("b9", lb, topo)


def test_check_flow_survives(topo, lb):
    ex = survival_exercise(lb, topo)
    assert ex.home != ex.moves_to and ex.home in str(ex)
    import copy

    good = copy.deepcopy(ex.config)
    good["vips"][0]["backends"].append(ex.new_backend)
    good["vips"][0]["sticky"] = True
    assert check_flow_survives(good, ex)
    ex.connection.close()
    ex = survival_exercise(lb, topo)
    with pytest.raises(CheckFailed, match="did not join"):
        check_flow_survives(copy.deepcopy(ex.config), ex)
    naive = copy.deepcopy(ex.config)
    naive["vips"][0]["backends"].append(ex.new_backend)  # the change, but no connection table
    with pytest.raises(CheckFailed, match="sticky"):
        check_flow_survives(naive, ex)
    ex.connection.close()
