"""Module 10, no kernel: NetworkPolicy — parsing like the API server, the evaluator on the
documentation's examples, and compiler == evaluator (property test)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetlab.course.m10_kubernetes_networking.assignments import DOCS_EXAMPLE, POLICY, docs_cluster
from packetlab.tools.netpol.compiler import Compiler
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


# DOCS_EXAMPLE and docs_cluster are shared with module 10's C assignments (and tests/kernel/test_10_netpol.py)


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
