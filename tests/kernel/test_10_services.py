"""Module 10 on the real kernel: ClusterIP Services on the module 09 load balancer — pods
reaching each other through the ClusterIP (NAT and routed mode), with and without NetworkPolicy."""

from __future__ import annotations

import collections

import pytest

from packetlab.course.m10_kubernetes_networking.policy_world import PolicyWorld
from packetlab.course.m10_kubernetes_networking.services import (
    ServiceProxy,
    load_services,
)
from packetlab.tools.cni import Node
from packetlab.tools.netpol.model import load_policies
from tests.unit.test_10_services import EXAMPLE  # shared with its unit twin


@pytest.mark.slow
def test_pods_reach_each_other_through_the_cluster_ip(lab):
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


@pytest.mark.slow
def test_cluster_ip_in_routed_mode(lab):
    node = Node(lab, "node", mode="routed", pod_cidr="10.244.6.0/24")
    world = PolicyWorld(node, EXAMPLE, enforce=False)
    proxy = ServiceProxy(node)
    services, _ = load_services(EXAMPLE)
    proxy.apply(services, world.cluster.pods)
    answers = collections.Counter(
        r.answer for r in world.probe_vip("other/intruder", "10.96.0.10", 80, count=30) if r.ok
    )
    assert sum(answers.values()) == 30 and len(answers) == 3, answers
