"""Module 10: ClusterIP Services on the module 09 load balancer (NAT mode) — YAML
parsing like the API server, EndpointSlices derived like the controller, and
pods reaching each other through the ClusterIP, with and without NetworkPolicy."""

from __future__ import annotations

import collections
import os

import pytest

from packetlab import Lab
from packetlab.course.m10_kubernetes_networking.policy_world import PolicyWorld
from packetlab.course.m10_kubernetes_networking.services import (
    EndpointSlice,
    Service,
    ServiceError,
    ServiceProxy,
    endpoint_slices,
    lb_config,
    load_services,
)
from packetlab.tools.cni import Node
from packetlab.tools.netpol.model import ContainerPort, PodInfo, load_policies
from packetlab.topo import netns

EXAMPLE = "packetlab/tools/cni/examples/web-service.yaml"
SVC = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"


@pytest.mark.parametrize(
    "spec, complaint",
    [
        ("spec: {clusterIP: 10.96.0.1, type: NodePort, ports: [{port: 80}]}", "NodePort"),
        ("spec: {clusterIP: None, ports: [{port: 80}]}", "clusterIP"),
        ("spec: {clusterIP: 10.96.0.1, ports: [{port: 80, protocol: SCTP}]}", "protocol"),
        ("spec: {clusterIP: 10.96.0.1, ports: [{port: 80, name: a}, {port: 81}]}", "needs a name"),
        ("spec: {clusterIP: 10.96.0.1, ports: []}", "no ports"),
        ("spec: {clusterIP: 10.96.0.1, ports: [{port: 0}]}", "port number"),
    ],
)
def test_invalid_services_are_rejected(spec, complaint):
    with pytest.raises(ServiceError) as e:
        load_services(SVC + spec)
    assert complaint in str(e.value)


def test_example_parses():
    services, slices = load_services(EXAMPLE)
    assert [s.key for s in services] == ["shop/web"] and slices == []
    web = services[0]
    assert web.cluster_ip == "10.96.0.10" and web.selector == {"app": "web"}
    assert [(p.port, p.target_port, p.protocol) for p in web.ports] == [(80, "http", "TCP"), (53, "dns", "UDP")]


def test_endpoint_slices_resolve_named_ports_per_pod():
    svc = Service("web", "shop", "10.96.0.10", [*load_services(EXAMPLE)[0][0].ports], {"app": "web"})
    pods = [
        PodInfo(
            "a", "shop", {"app": "web"}, [ContainerPort(80, "TCP", "http"), ContainerPort(81, "UDP", "dns")], "10.0.0.2"
        ),
        PodInfo(
            "b",
            "shop",
            {"app": "web"},
            [ContainerPort(8080, "TCP", "http"), ContainerPort(81, "UDP", "dns")],
            "10.0.0.3",
        ),
        PodInfo("c", "shop", {"app": "web"}, [ContainerPort(80, "TCP", "http")], "10.0.0.4"),  # no "dns": no endpoint
        PodInfo(
            "d",
            "other",
            {"app": "web"},
            [ContainerPort(80, "TCP", "http"), ContainerPort(81, "UDP", "dns")],
            "10.0.0.5",
        ),
        PodInfo(
            "e", "shop", {"app": "db"}, [ContainerPort(80, "TCP", "http"), ContainerPort(81, "UDP", "dns")], "10.0.0.6"
        ),
    ]
    slices = endpoint_slices([svc], pods)
    assert len(slices) == 2  # two different resolutions of "http"
    by_port = {sl.ports[0][1]: [e.address for e in sl.endpoints] for sl in slices}
    assert by_port == {80: ["10.0.0.2"], 8080: ["10.0.0.3"]}
    cfg = lb_config([svc], slices)
    http = next(v for v in cfg["vips"] if v["port"] == 80)
    assert http["mode"] == "nat" and http["address"] == "10.96.0.10" and http["protocol"] == "tcp"
    assert sorted((b["address"], b["port"]) for b in http["backends"]) == [("10.0.0.2", 80), ("10.0.0.3", 8080)]


def test_endpoint_slice_yaml_and_readiness():
    services, slices = load_services(
        SVC
        + """spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.0.2]
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: shop, name: a}
- addresses: [10.0.0.3]
  conditions: {ready: false}
"""
    )
    assert isinstance(slices[0], EndpointSlice) and slices[0].service == "shop/web"
    backends = lb_config(services, slices)["vips"][0]["backends"]
    assert backends == [{"address": "10.0.0.2", "port": 8080}]  # not-ready endpoints get no traffic
    with pytest.raises(ServiceError):
        load_services("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: x}\n")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_pods_reach_each_other_through_the_cluster_ip():
    with Lab("t10s") as lab:
        node = Node(lab, "node", pod_cidr="10.244.5.0/24")
        world = PolicyWorld(node, EXAMPLE)
        proxy = ServiceProxy(node, enforcer=world.enforcer)
        services, _ = load_services(EXAMPLE)
        proxy.apply(services, world.cluster.pods)
        assert "10.96.0.10:80/TCP" in proxy.table()
        # TCP and UDP through the ClusterIP reach every backend (Maglev spreads connections)
        for port, proto in ((80, "TCP"), (53, "UDP")):
            answers = collections.Counter(
                r.answer for r in world.probe_vip("shop/client", "10.96.0.10", port, proto, count=40) if r.ok
            )
            assert sum(answers.values()) == 40, answers
            assert set(answers) == {"shop/web-1", "shop/web-2", "shop/web-3"}, answers
        # a backend leaves the Service (its EndpointSlice entry goes): it gets no new connections
        remaining = [p for p in world.cluster.pods if p.name != "web-3"]
        proxy.apply(services, remaining)
        answers = collections.Counter(r.answer for r in world.probe_vip("shop/client", "10.96.0.10", 80, count=30))
        assert set(answers) == {"shop/web-1", "shop/web-2"}, answers
        # NetworkPolicy on the backends applies to traffic that came through the ClusterIP
        world.apply(
            load_policies("""apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: web-from-shop-clients, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
""")
        )
        ok = world.probe_vip("shop/client", "10.96.0.10", 80, count=10)
        assert all(r.ok for r in ok), [r.error for r in ok]  # replies recognised
        assert not any(r.ok for r in world.probe_vip("other/intruder", "10.96.0.10", 80, count=5, timeout=1.0))
        assert not any(r.ok for r in world.probe_vip("shop/client", "10.96.0.10", 53, "UDP", count=5, timeout=1.0))
        flows = world.enforcer.denied_flows()
        intruder = world.cluster.pod("other/intruder").ip
        assert any(f["src"] == intruder and f["direction"] == "ingress" and f["dport"] == 80 for f in flows), (
            "the denied flow is logged against the backend pod's real address and port"
        )
        status = proxy.lb.status()
        assert "mode=nat" in status and "10.96.0.10:80/tcp" in status
    assert not netns.exists("t10s-node")


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_cluster_ip_in_routed_mode():
    with Lab("t10r") as lab:
        node = Node(lab, "node", mode="routed", pod_cidr="10.244.6.0/24")
        world = PolicyWorld(node, EXAMPLE, enforce=False)
        proxy = ServiceProxy(node)
        services, _ = load_services(EXAMPLE)
        proxy.apply(services, world.cluster.pods)
        answers = collections.Counter(
            r.answer for r in world.probe_vip("other/intruder", "10.96.0.10", 80, count=30) if r.ok
        )
        assert sum(answers.values()) == 30 and len(answers) == 3, answers
