"""Module 10: NetworkPolicy — parsing like the API server, the evaluator on the
documentation's examples, compiler == evaluator (property test), the eBPF
programs' verdicts via BPF_PROG_TEST_RUN, and the live enforcer on the
reconstructed upstream e2e cases (probe matrix == evaluator table)."""

from __future__ import annotations

import ctypes
import os
import socket
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP
from scapy.layers.inet6 import ICMPv6EchoRequest, ICMPv6ND_NS, IPv6
from scapy.layers.l2 import ARP, Ether

from packetlab import Lab
from packetlab.course.m10_kubernetes_networking.policy_cases import load_cases, reset, run_case
from packetlab.course.m10_kubernetes_networking.policy_world import PolicyWorld, flow_under_updates
from packetlab.tools.cni import Node
from packetlab.tools.netpol.compiler import Compiler
from packetlab.tools.netpol.enforcer import PROGRAM, PolicyMaps, check_layouts
from packetlab.tools.netpol.evaluator import Evaluator
from packetlab.tools.netpol.model import (
    Cluster,
    ContainerPort,
    Namespace,
    NetworkPolicy,
    PodInfo,
    PolicyError,
    load_policies,
)
from packetlab.topo import netns

root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
POLICY = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"


# ---- parsing: what the API server would reject ------------------------------------------------------
@pytest.mark.parametrize(
    "spec, complaint",
    [
        ("spec: {ingress: []}", "podSelector is required"),
        ("spec: {podSelector: {}, ingress: [{from: [{}]}]}", "must specify"),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]}",
            "cannot be combined",
        ),
        (
            "spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/24]}}]}]}",
            "strict subset",
        ),
        ("spec: {podSelector: {}, ingress: [{from: [{ipBlock: {cidr: nope}}]}]}", "cidr"),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: http, endPort: 90}]}]}", "endPort needs a numeric port"),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: 90, endPort: 80}]}]}", "endPort"),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: 80, protocol: ICMP}]}]}", "protocol"),
        ("spec: {podSelector: {}, ingress: [{ports: [{port: 70000}]}]}", "outside 1..65535"),
        ("spec: {podSelector: {}, policyTypes: [ingress]}", "policyTypes"),
        ("spec: {podSelector: {matchExpressions: [{key: a, operator: in, values: [x]}]}}", "operator"),
        ("spec: {podSelector: {matchExpressions: [{key: a, operator: In}]}}", "non-empty values"),
        ("spec: {podSelector: {matchExpressions: [{key: a, operator: Exists, values: [x]}]}}", "must not have values"),
        ("spec: {podSelector: {}, ingress: [{to: []}]}", "'from'"),
    ],
)
def test_invalid_policies_are_rejected_with_the_reason(spec, complaint):
    with pytest.raises(PolicyError) as e:
        load_policies(POLICY + "metadata: {name: p, namespace: x}\n" + spec)
    assert complaint in str(e.value)


def test_policy_types_default_like_the_api_server():
    only_ingress, both = load_policies(
        POLICY
        + "metadata: {name: a}\nspec: {podSelector: {}, ingress: [{}]}\n---\n"
        + POLICY
        + "metadata: {name: b}\nspec: {podSelector: {}, egress: [{}]}"
    )
    assert only_ingress.policy_types == {"Ingress"} and only_ingress.namespace == "default"
    assert both.policy_types == {"Ingress", "Egress"}


def test_broken_yaml_is_a_clear_error():
    with pytest.raises(PolicyError) as e:
        load_policies(POLICY + "metadata: {name: a\n  spec: [")
    assert "does not parse" in str(e.value)


# ---- the evaluator on the documentation's examples -----------------------------------------------------
DOCS_EXAMPLE = (
    POLICY
    + """metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
    - namespaceSelector: {matchLabels: {project: myproject}}
    - podSelector: {matchLabels: {role: frontend}}
    ports: [{protocol: TCP, port: 6379}]
  egress:
  - to: [{ipBlock: {cidr: 10.0.0.0/24}}]
    ports: [{protocol: TCP, port: 5978}]
"""
)


def docs_cluster(policies):
    pods = [
        PodInfo("db", "default", {"role": "db"}, ip="10.1.0.10"),
        PodInfo("frontend", "default", {"role": "frontend"}, ip="10.1.0.11"),
        PodInfo("other", "default", {"role": "other"}, ip="10.1.0.12"),
        PodInfo("app", "myproject", {"role": "anything"}, ip="10.1.0.13"),
        PodInfo("frontend", "elsewhere", {"role": "frontend"}, ip="10.1.0.14"),
    ]
    namespaces = {
        n: Namespace(n, lbl) for n, lbl in [("default", {}), ("myproject", {"project": "myproject"}), ("elsewhere", {})]
    }
    return Cluster(namespaces, pods, list(policies), node_ips=["10.1.0.1"])


def test_documentation_example_semantics():
    ev = Evaluator(docs_cluster(load_policies(DOCS_EXAMPLE)))
    assert ev.allowed("default/frontend", "default/db", 6379)
    assert not ev.allowed("default/frontend", "default/db", 80)  # only the listed port
    assert ev.allowed("myproject/app", "default/db", 6379)  # namespaceSelector
    assert not ev.allowed("elsewhere/frontend", "default/db", 6379)  # podSelector: own namespace only
    assert not ev.allowed("default/other", "default/db", 6379)
    assert ev.allowed("172.17.0.5", "default/db", 6379)  # ipBlock
    assert not ev.allowed("172.17.1.5", "default/db", 6379)  # ... except
    assert ev.allowed("default/db", "10.0.0.7", 5978) and not ev.allowed("default/db", "10.0.0.7", 5979)
    assert not ev.allowed("default/db", "default/frontend", 80)  # egress isolated
    assert ev.allowed("10.1.0.1", "default/db", 22)  # the node: always
    v = ev.verdict("default/other", "default/db", 6379)
    assert "isolated by default/test-network-policy" in v.explain() and v.explain().startswith("DENY")
    assert (
        "allowed by default/test-network-policy ingress[0]"
        in ev.verdict("default/frontend", "default/db", 6379).explain()
    )


def test_and_versus_or_peers():
    and_peer = load_policies(
        POLICY
        + """metadata: {name: and, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {project: myproject}}, podSelector: {matchLabels: {role: frontend}}}]}]
"""
    )
    or_peer = load_policies(
        POLICY
        + """metadata: {name: or, namespace: default}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{namespaceSelector: {matchLabels: {project: myproject}}}, {podSelector: {matchLabels: {role: frontend}}}]}]
"""
    )
    ev_and, ev_or = Evaluator(docs_cluster(and_peer)), Evaluator(docs_cluster(or_peer))
    assert not ev_and.allowed("myproject/app", "default/db", 80)  # namespace matches, pod does not
    assert not ev_and.allowed("default/frontend", "default/db", 80)  # pod matches, namespace does not
    assert ev_or.allowed("myproject/app", "default/db", 80) and ev_or.allowed("default/frontend", "default/db", 80)


def test_named_ports_resolve_on_the_destination():
    pods = [
        PodInfo("web", "x", {"app": "web"}, [ContainerPort(8080, "TCP", "http")], "10.2.0.2"),
        PodInfo("web2", "x", {"app": "web"}, [ContainerPort(9090, "TCP", "http")], "10.2.0.3"),
        PodInfo("client", "x", {"app": "client"}, [], "10.2.0.4"),
    ]
    pol = load_policies(
        POLICY
        + """metadata: {name: http, namespace: x}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{ports: [{port: http}]}]
---
"""
        + POLICY
        + """metadata: {name: client-out, namespace: x}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress: [{ports: [{port: http}]}]
"""
    )
    cluster = Cluster({"x": Namespace("x")}, pods, pol)
    ev, comp = Evaluator(cluster), Compiler(cluster).compile()
    for dst, port, want in [
        ("10.2.0.2", 8080, True),
        ("10.2.0.2", 9090, False),
        ("10.2.0.3", 9090, True),
        ("10.2.0.3", 8080, False),
    ]:
        assert ev.allowed("x/client", dst, port) is want
        assert comp.allows("10.2.0.4", dst, port, 6) is want


# ---- compiler == evaluator, on random clusters and policies --------------------------------------------
LABELS = st.dictionaries(st.sampled_from(["app", "tier"]), st.sampled_from(["a", "b"]), max_size=2)
SELECTOR = st.one_of(
    st.just({}),
    st.builds(lambda d: {"matchLabels": d}, LABELS),
    st.builds(
        lambda k, op, v: {"matchExpressions": [{"key": k, "operator": op, "values": v}]},
        st.sampled_from(["app", "tier"]),
        st.sampled_from(["In", "NotIn"]),
        st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2, unique=True),
    ),
)
NS_SELECTOR = st.one_of(
    st.just({}), st.builds(lambda v: {"matchLabels": {"team": v}}, st.sampled_from(["red", "blue"]))
)
CIDRS = st.sampled_from(["10.3.0.0/24", "10.3.0.0/25", "10.3.0.128/25", "10.3.0.5/32", "0.0.0.0/0", "192.168.0.0/16"])


def _ipblock(cidr, excepts):
    import ipaddress

    net = ipaddress.ip_network(cidr)
    inside = [e for e in excepts if ipaddress.ip_network(e).subnet_of(net) and ipaddress.ip_network(e) != net]
    return {"ipBlock": {"cidr": cidr, **({"except": inside} if inside else {})}}


IPBLOCK = st.builds(_ipblock, CIDRS, st.sampled_from([[], ["10.3.0.5/32"], ["10.3.0.0/26", "10.3.0.200/32"]]))
PEER = st.one_of(
    st.builds(lambda s: {"podSelector": s}, SELECTOR),
    st.builds(lambda s: {"namespaceSelector": s}, NS_SELECTOR),
    st.builds(lambda p, n: {"podSelector": p, "namespaceSelector": n}, SELECTOR, NS_SELECTOR),
    IPBLOCK,
)
PORT = st.sampled_from(
    [
        {"port": 80},
        {"port": 81, "protocol": "UDP"},
        {"port": "http"},
        {"port": "dns", "protocol": "UDP"},
        {"port": 80, "endPort": 81},
        {"protocol": "UDP"},
        {"protocol": "SCTP", "port": 80},
    ]
)
RULE = st.builds(
    lambda peers, ports: {
        **({"peers": peers} if peers is not None else {}),
        **({"ports": ports} if ports is not None else {}),
    },
    st.one_of(st.none(), st.lists(PEER, max_size=2)),
    st.one_of(st.none(), st.lists(PORT, max_size=2)),
)


def _policy_doc(i, ns, selector, types, ingress, egress):
    spec = {"podSelector": selector, "policyTypes": types}
    if ingress is not None:
        spec["ingress"] = [
            {**({"from": r["peers"]} if "peers" in r else {}), **({"ports": r["ports"]} if "ports" in r else {})}
            for r in ingress
        ]
    if egress is not None:
        spec["egress"] = [
            {**({"to": r["peers"]} if "peers" in r else {}), **({"ports": r["ports"]} if "ports" in r else {})}
            for r in egress
        ]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"p{i}", "namespace": ns},
        "spec": spec,
    }


POLICY_DOC = st.builds(
    _policy_doc,
    st.integers(0, 99),
    st.sampled_from(["red", "blue"]),
    SELECTOR,
    st.sampled_from([["Ingress"], ["Egress"], ["Ingress", "Egress"]]),
    st.one_of(st.none(), st.lists(RULE, max_size=2)),
    st.one_of(st.none(), st.lists(RULE, max_size=2)),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LABELS, min_size=4, max_size=4), st.lists(POLICY_DOC, max_size=3))
def test_compiled_lookup_equals_evaluator(pod_labels, docs):
    ports = [
        [ContainerPort(80, "TCP", "http"), ContainerPort(53, "UDP", "dns")],
        [ContainerPort(81, "TCP", "http")],
        [],
        [ContainerPort(81, "UDP", "dns")],
    ]
    pods = [
        PodInfo(f"p{i}", ["red", "blue"][i % 2], pod_labels[i], ports[i], f"10.3.0.{[5, 6, 130, 200][i]}")
        for i in range(4)
    ]
    policies = [NetworkPolicy.parse({**d, "metadata": {**d["metadata"], "name": f"p{j}"}}) for j, d in enumerate(docs)]
    cluster = Cluster(
        {"red": Namespace("red", {"team": "red"}), "blue": Namespace("blue", {"team": "blue"})},
        pods,
        policies,
        node_ips=["10.3.0.1"],
    )
    ev, comp = Evaluator(cluster), Compiler(cluster).compile()
    endpoints = [p.ip for p in pods] + ["10.3.0.1", "10.3.0.77", "192.168.4.4"]
    for src in endpoints:
        for dst in endpoints:
            if src == dst:
                continue
            for port, proto, num in [
                (80, "TCP", 6),
                (81, "TCP", 6),
                (53, "UDP", 17),
                (81, "UDP", 17),
                (80, "SCTP", 132),
            ]:
                assert comp.allows(src, dst, port, num) == ev.allowed(src, dst, port, proto), ev.verdict(
                    src, dst, port, proto
                ).explain()


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


@root
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


@root
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


@root
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
def world():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    lab = Lab("t10p").start()
    try:
        node = Node(lab, "node", pod_cidr="10.244.3.0/24")
        w = PolicyWorld(node, "packetlab/tools/netpol/examples/e2e-cluster.yaml", echo_ports=[7000])
        labels = {p.key: dict(p.labels) for p in w.cluster.pods}
        namespaces = {k: Namespace(v.name, dict(v.labels)) for k, v in w.cluster.namespaces.items()}
        yield w, labels, namespaces
    finally:
        lab.close()
    assert not netns.exists("t10p-node") and not netns.exists("t10p-x-a")


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
