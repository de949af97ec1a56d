"""Module 10 check helpers: the reference answers pass, wrong answers raise
CheckFailed with a reason that points at the mistake — all on a live lab."""

from __future__ import annotations

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m10_kubernetes_networking.exercises import (
    check_cni_invocation,
    check_egress_via_service,
    check_web_policy,
)
from packetlab.course.m10_kubernetes_networking.policy_world import PolicyWorld
from packetlab.course.m10_kubernetes_networking.services import ServiceProxy, load_services
from packetlab.tools.cni import Node

pytestmark = pytest.mark.slow
APP = "packetlab/tools/cni/examples/web-service.yaml"
HEAD = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"

WEB_OK = (
    HEAD
    + """metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: http}]}]
"""
)
WEB_TOO_OPEN = (
    HEAD
    + """metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{namespaceSelector: {}, podSelector: {matchLabels: {app: client}}}], ports: [{port: 80}]}]
"""
)
WEB_NO_PORTS = (
    HEAD
    + """metadata: {name: web, namespace: shop}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}]}]
"""
)
EGRESS_OK = (
    HEAD
    + """metadata: {name: out, namespace: other}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{namespaceSelector: {matchLabels: {team: shop}}, podSelector: {matchLabels: {app: web}}}],
            ports: [{port: 80}]}]
"""
)
EGRESS_TO_CLUSTER_IP = (
    HEAD
    + """metadata: {name: out, namespace: other}
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress: [{to: [{ipBlock: {cidr: 10.96.0.10/32}}], ports: [{port: 80}]}]
"""
)


@pytest.fixture(scope="module")
def shop(module_lab):
    """A node with the shop app's pods, its policies enforced and its Services proxied."""
    node = Node(module_lab, "node", pod_cidr="10.244.8.0/24")
    world = PolicyWorld(node, APP)
    proxy = ServiceProxy(node, enforcer=world.enforcer)
    proxy.apply(load_services(APP)[0], world.cluster.pods)
    return module_lab, node, world, proxy


def test_cni_invocation_check(shop):
    lab, node, _, _ = shop
    pod = lab.host("ex1")
    env = {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "t10-ex1",
        "CNI_NETNS": f"/run/netns/{pod.namespace}",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": ":".join(node.bin_dirs),
    }
    result = check_cni_invocation(env, node, pod)
    assert result["ips"] and "eth0" not in pod.ip("-br link")  # DEL ran
    with pytest.raises(CheckFailed) as e:
        check_cni_invocation({k: v for k, v in env.items() if k != "CNI_PATH"}, node, pod)
    assert "error 4" in str(e.value) and "CNI_PATH" in str(e.value)
    with pytest.raises(CheckFailed) as e:
        check_cni_invocation({**env, "CNI_PATH": str(node.bin_dir)}, node, pod)  # host-local is not there
    assert "103" in str(e.value) and "host-local" in str(e.value)
    with pytest.raises(CheckFailed):
        check_cni_invocation(None, node, pod)


def test_web_policy_check(shop):
    _, _, world, _ = shop
    check_web_policy(WEB_OK, world)
    with pytest.raises(CheckFailed) as e:
        check_web_policy(WEB_TOO_OPEN, world)
    assert "other/intruder -> shop/web-1 TCP/80: required deny, live allow" in str(e.value)
    with pytest.raises(CheckFailed) as e:
        check_web_policy(WEB_NO_PORTS, world)
    assert "TCP/81" in str(e.value) or "UDP/81" in str(e.value)
    with pytest.raises(CheckFailed) as e:
        check_web_policy(HEAD + "metadata: {name: x}\nspec: {ingress: []}", world)
    assert "reject" in str(e.value) and "podSelector" in str(e.value)
    assert world.policies == []  # a check leaves no policy behind


def test_egress_via_service_check(shop):
    _, _, world, proxy = shop
    check_egress_via_service(EGRESS_OK, world, proxy)
    with pytest.raises(CheckFailed) as e:
        check_egress_via_service(EGRESS_TO_CLUSTER_IP, world, proxy)
    assert "after* the Service translation" in str(e.value) and "not the ClusterIP" in str(e.value)
    with pytest.raises(CheckFailed):
        check_egress_via_service(WEB_OK, world, proxy)  # does not isolate 'other' at all
