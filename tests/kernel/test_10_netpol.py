"""Module 10 on the real kernel: the NetworkPolicy eBPF programs' verdicts via
BPF_PROG_TEST_RUN, and the live enforcer on the reconstructed upstream e2e cases (probe matrix
== evaluator table)."""

from __future__ import annotations

import ctypes
import socket
import time

import pytest
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from packetlab.course.m10_kubernetes_networking.policy_cases import load_cases, reset, run_case
from packetlab.course.m10_kubernetes_networking.policy_world import PolicyWorld, flow_under_updates
from packetlab.tools.cni import Node
from packetlab.tools.netpol.compiler import Compiler
from packetlab.tools.netpol.enforcer import PROGRAM, PolicyMaps, check_layouts
from packetlab.tools.netpol.evaluator import Evaluator
from packetlab.tools.netpol.model import (
    Namespace,
    load_policies,
)
from packetlab.topo import netns
from tests.unit.test_10_netpol import DOCS_EXAMPLE, POLICY, docs_cluster  # shared with its unit twin


# ---- the eBPF programs, verdict by verdict (BPF_PROG_TEST_RUN) -------------------------------------------
@pytest.fixture(scope="module")
def programs():
    from bcc import BPF

    from packetlab.ebpf.loader import LoadedProgram

    prog = LoadedProgram(PROGRAM, function="netpol_from_pod", prog_type="sched_cls")
    to_pod = prog.bpf.load_func(b"netpol_to_pod", BPF.SCHED_CLS)
    check_layouts(prog)
    yield prog, to_pod.fd
    prog.close()


def _run(fd, pkt):
    from packetlab.ebpf.testrun import TC_VERDICTS, prog_test_run

    return prog_test_run(fd, bytes(pkt), verdicts=TC_VERDICTS).verdict


def _install_for(prog, compiled, ip, check_source=True):
    """Make pod `ip` the one on ifindex 1 (BPF_PROG_TEST_RUN runs packets on loopback)."""
    maps = PolicyMaps(prog, check_source=check_source)
    maps.gen = int(time.monotonic_ns() % 100000) * 10  # a fresh generation each time
    only = type(compiled)({ip: compiled.pods[ip]}, [s for s in compiled.sections if s.pod.ip == ip])
    maps.install(only, {ip: 1})
    return maps


def test_bpf_verdicts_match_the_evaluator(programs):
    prog, to_fd = programs
    cluster = docs_cluster(load_policies(DOCS_EXAMPLE))
    ev, compiled = Evaluator(cluster), Compiler(cluster).compile()
    cases = [
        ("10.1.0.11", "10.1.0.10", 6379),
        ("10.1.0.11", "10.1.0.10", 80),
        ("10.1.0.13", "10.1.0.10", 6379),
        ("10.1.0.14", "10.1.0.10", 6379),
        ("172.17.0.5", "10.1.0.10", 6379),
        ("172.17.1.5", "10.1.0.10", 6379),
        ("10.1.0.1", "10.1.0.10", 22),
        ("10.1.0.10", "10.0.0.7", 5978),
        ("10.1.0.10", "10.0.0.7", 5979),
        ("10.1.0.10", "10.1.0.11", 80),
    ]
    for sport, (src, dst, port) in enumerate(cases, start=40000):
        pkt = Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=port, flags="S")
        verdicts = []
        if cluster.pod_by_ip(src):
            _install_for(prog, compiled, src)
            verdicts.append(_run(prog.fd, pkt))
        if cluster.pod_by_ip(dst):
            _install_for(prog, compiled, dst)
            verdicts.append(_run(to_fd, pkt))
        prog["conntrack"].clear()
        live = all(v == "TC_ACT_OK" for v in verdicts)
        assert live == ev.allowed(src, dst, port), (src, dst, port, verdicts)


def test_bpf_replies_spoofing_ipv6_and_arp(programs):
    prog, to_fd = programs
    deny_all = load_policies(
        POLICY + "metadata: {name: d, namespace: default}\n"
        "spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress, Egress]}"
    )
    cluster = docs_cluster(deny_all)
    compiled = Compiler(cluster).compile()
    db, front = "10.1.0.10", "10.1.0.11"
    prog["conntrack"].clear()
    # the frontend (not isolated) opens a connection to ... itself being allowed out; its reply
    # path is what matters: make db the isolated one and show a reply to db's *own* flow passes
    _install_for(prog, compiled, db)
    out = Ether() / IP(src=db, dst=front) / TCP(sport=5000, dport=80, flags="S")
    assert _run(prog.fd, out) == "TC_ACT_SHOT"  # db may not open connections
    reply = Ether() / IP(src=front, dst=db) / TCP(sport=80, dport=5000, flags="SA")
    assert _run(to_fd, reply) == "TC_ACT_SHOT"  # nor receive unsolicited packets
    # the same flow approved at db's egress (as if policy had allowed it): the reply passes
    allow_out = load_policies(
        POLICY + "metadata: {name: d, namespace: default}\n"
        "spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress, Egress], egress: [{}]}"
    )
    _install_for(prog, Compiler(docs_cluster(allow_out)).compile(), db)
    assert _run(prog.fd, out) == "TC_ACT_OK"
    _install_for(prog, compiled, db)  # back to deny-all: the reply still passes
    assert _run(to_fd, reply) == "TC_ACT_OK"
    assert _run(prog.fd, out) == "TC_ACT_SHOT"  # ... but the flow's own direction does not
    # spoofing: a packet from db's veth with another source address
    spoofed = Ether() / IP(src="10.1.0.99", dst=front) / TCP(sport=1, dport=80)
    assert _run(prog.fd, spoofed) == "TC_ACT_SHOT"
    _install_for(prog, compiled, db, check_source=False)
    assert _run(prog.fd, spoofed) == "TC_ACT_SHOT"  # still denied: db may not send at all
    # non-IPv4: ARP passes, IPv6 is dropped for an isolated pod except neighbour discovery
    assert _run(prog.fd, Ether() / ARP(psrc=db, pdst=front)) == "TC_ACT_OK"
    assert _run(prog.fd, Ether(type=0x86DD) / IPv6(src="fe80::1", dst="fe80::2") / ICMPv6EchoRequest()) == "TC_ACT_SHOT"
    assert (
        _run(prog.fd, Ether(type=0x86DD) / IPv6(src="fe80::1", dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt="fe80::2"))
        == "TC_ACT_OK"
    )
    assert _run(prog.fd, Ether() / IP(src=db, dst=front) / ICMP()) == "TC_ACT_SHOT"
    stats = {
        (k.ifindex, k.what): sum(v) if isinstance(v, list) else v
        for k, v in ((k, [int(x) for x in v]) for k, v in prog["stats"].items())
    }
    assert stats.get((1, 1), 0) >= 2 and stats.get((1, 5), 0) >= 1 and stats.get((1, 6), 0) >= 1


def test_generation_switch_is_complete(programs):
    """After install, only the new generation's entries exist (old ones are deleted)."""
    prog, _ = programs
    for name in ("pods", "rules"):
        prog[name].clear()
    cluster = docs_cluster(load_policies(DOCS_EXAMPLE))
    compiled = Compiler(cluster).compile()
    maps = PolicyMaps(prog)
    ifindexes = {p.ip: 100 + i for i, p in enumerate(cluster.pods)}
    g1 = maps.install(compiled, ifindexes)
    n1 = len(list(prog["rules"].keys()))
    g2 = maps.install(compiled, ifindexes)
    assert g2 == g1 + 1 and len(list(prog["rules"].keys())) == n1 == compiled.entry_count()
    assert {k.gen for k in prog["rules"]} == {g2} and {k.gen for k in prog["pods"]} == {g2}  # a table iterates its keys
    assert prog["config"][ctypes.c_int(0)].gen == g2


# ---- live: the upstream e2e cases on real namespaces ------------------------------------------------------
CASES = load_cases()


@pytest.fixture(scope="module")
def world(module_lab):
    """The reconstructed upstream e2e cluster on one node, with echo servers on port 7000."""
    node = Node(module_lab, "node", pod_cidr="10.244.3.0/24")
    w = PolicyWorld(node, "packetlab/tools/netpol/examples/e2e-cluster.yaml", echo_ports=[7000])
    labels = {p.key: dict(p.labels) for p in w.cluster.pods}
    namespaces = {k: Namespace(v.name, dict(v.labels)) for k, v in w.cluster.namespaces.items()}
    return w, labels, namespaces


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_upstream_case_live_matches_evaluator(world, case):
    w, labels, namespaces = world
    reset(w, labels, namespaces)
    for outcome in run_case(w, case, pod_cidr="10.244.3.0/24"):
        assert not outcome.spot_failures, "\n".join(outcome.spot_failures)
        assert outcome.comparison.ok, (
            f"{case.name} step {outcome.step}: live probes differ from the evaluator\n"
            + outcome.comparison.describe_mismatches()
            + "\n"
            + outcome.comparison.table()
        )


@pytest.mark.slow
def test_policy_updates_keep_allowed_established_traffic(world):
    """A TCP and a UDP flow stay up while the policy set is replaced 40 times by sets that
    all still allow them — no datagram lost, no packet of theirs denied."""
    w, labels, namespaces = world
    reset(w, labels, namespaces)
    server = w.cluster.pod("x/a")
    allow_y = load_policies(
        POLICY
        + """metadata: {name: from-y, namespace: x}
spec:
  podSelector: {matchLabels: {pod: a}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}}]}]
"""
    )
    allow_ya_ports = load_policies(
        POLICY
        + """metadata: {name: from-y-a, namespace: x}
spec:
  podSelector: {}
  ingress: [{from: [{namespaceSelector: {matchLabels: {ns: y}}, podSelector: {matchLabels: {pod: a}}}],
             ports: [{port: 7000}, {port: 80, protocol: UDP}]}]
---
"""
        + POLICY
        + """metadata: {name: y-a-out, namespace: y}
spec:
  podSelector: {matchLabels: {pod: a}}
  policyTypes: [Egress]
  egress: [{to: [{podSelector: {}, namespaceSelector: {}}]}]
"""
    )
    for port, proto in ((7000, "TCP"), (80, "UDP")):
        w.apply(allow_y)
        result = flow_under_updates(w, "y/a", "x/a", [allow_y, allow_ya_ports], updates=40, port=port, protocol=proto)
        assert result["errors"] == [] and result["denied_packets"] == 0, (proto, result)
        assert result["round_trips"] >= 5, (proto, result)  # the flow really ran during the updates
    client_ns = w.lab_pods["y/a"].host.namespace
    # and a flow the new policy no longer allows is cut at once (no stale allow)
    w.apply(
        load_policies(POLICY + "metadata: {name: deny, namespace: x}\nspec: {podSelector: {}, policyTypes: [Ingress]}")
    )
    with netns.entered(client_ns):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(1)
    probe.sendto(b"x", (server.ip, 80))
    with pytest.raises(socket.timeout):
        probe.recv(64)
    probe.close()


@pytest.mark.slow
def test_enforcer_observability(world):
    w, labels, namespaces = world
    reset(w, labels, namespaces)
    w.apply(
        load_policies(
            POLICY
            + "metadata: {name: deny, namespace: x}\nspec: {podSelector: {matchLabels: {pod: b}}, policyTypes: [Ingress]}"
        )
    )
    cmp = w.compare([(81, "TCP")], pods=["y/c", "x/b"], timeout=1.0)
    assert cmp.ok and cmp.expected[("y/c", "x/b", 81, "TCP")] is False
    flows = w.enforcer.denied_flows()
    assert any(f["src"] == w.cluster.pod("y/c").ip and f["dport"] == 81 and f["direction"] == "ingress" for f in flows)
    assert w.enforcer.stats()["x/b"]["ingress denied"] >= 1
    assert cmp.answers[("x/b", "y/c", 81, "TCP")] == "y/c"  # the answer names the pod that served it
    assert "peer prefix" in w.enforcer.compiled.table()
