"""Checks for module 10 (kubernetes-networking). Each one verifies on the live lab:
the plugin really wired the pod; the policy really admits and blocks what the
requirement says, measured with probes between the pod namespaces.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m10_kubernetes_networking.assignments import CONNTRACK, POLICY_LOOKUP
from packetlab.course.m10_kubernetes_networking.helpers import egress_requirement, web_requirement
from packetlab.errors import PacketlabError

if TYPE_CHECKING:
    from packetlab.course.m10_kubernetes_networking.policy_world import PolicyWorld
    from packetlab.course.m10_kubernetes_networking.services import ServiceProxy
    from packetlab.tools.cni.cluster import Node
    from packetlab.topo.host import Host


CNI_HINTS = {
    4: "a runtime always sets CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME and CNI_PATH",
    3: "CNI_NETNS is the path of the pod's namespace file: /run/netns/<namespace name>",
    103: "CNI_PATH lists directories (colon-separated) where the plugin *and its IPAM plugin* live: "
    "node.bin_dirs has both",
    6: "stdin must be the network configuration as JSON",
}


# ---- exercise 1: be the runtime -------------------------------------------------------------------
@graded("write the CNI_* environment for ADD yourself as env and run this check again")
def check_cni_invocation(env: Mapping[str, str] | None, node: Node, pod: Host) -> dict[str, Any]:
    """Run ADD with the learner's environment, verify the pod got its address, then DEL."""
    ex = "Exercise 1 (call the CNI plugin like a runtime)"
    require(not unanswered(env), ex, "no environment given yet", "fill in the dict of CNI_* variables")
    if not isinstance(env, Mapping):
        raise CheckFailed(ex, f"expected a dict of environment variables, got {type(env).__name__}")
    require(
        env.get("CNI_COMMAND") == "ADD",
        ex,
        f"CNI_COMMAND is {env.get('CNI_COMMAND')!r}",
        "this exercise asks for an ADD",
    )
    conf = {
        **{k: v for k, v in node.conflist["plugins"][0].items()},
        "cniVersion": node.conflist["cniVersion"],
        "name": node.conflist["name"],
    }
    answer = node.runtime.raw("packetlab", json.dumps(conf), {k: str(v) for k, v in env.items()})
    if answer.returncode != 0:
        try:
            err = answer.json
        except ValueError:
            err = {"code": "?", "msg": answer.stdout.strip() or answer.stderr.strip()}
        raise CheckFailed(
            ex,
            f"the plugin answered error {err.get('code')}: {err.get('msg')}",
            CNI_HINTS.get(err.get("code"), "read the message: the plugin says what is missing"),
        )
    result = answer.json
    try:
        ip = result["ips"][0]["address"]
        require(
            pod.addresses("eth0") == [ip] if env.get("CNI_IFNAME") == "eth0" else ip in pod.addresses(),
            ex,
            f"the result says {ip}, but the pod's interface does not carry it",
            f"did CNI_NETNS point at {pod.name}'s namespace (/run/netns/{pod.namespace})?",
        )
        reach = node.host.ping(ip.split("/")[0], count=2)
        require(reach.ok, ex, f"the node cannot ping {ip}", "is the pod's veth attached to the bridge?")
    finally:
        node.runtime.raw("packetlab", json.dumps(conf), {**{k: str(v) for k, v in env.items()}, "CNI_COMMAND": "DEL"})
    passed(ex, f"ADD gave {pod.name} {ip} ({len(result['interfaces'])} interfaces in the result); DEL removed it again")
    return result


# ---- exercises 2 and 3: write a policy, verified with live probes ---------------------------------------
def _apply_yaml(ex: str, world: PolicyWorld, text: Any) -> list:
    from packetlab.tools.netpol.model import PolicyError, load_policies

    require(
        not unanswered(text) and isinstance(text, str) and text.strip(),
        ex,
        "no policy YAML given yet",
        "write a NetworkPolicy (apiVersion networking.k8s.io/v1) as a YAML string",
    )
    try:
        policies = load_policies(text)
    except PolicyError as exc:
        raise CheckFailed(ex, f"the API server would reject it: {exc.what} — {exc.cause}", exc.fix) from None
    except PacketlabError as exc:
        raise CheckFailed(ex, str(exc.what), exc.fix) from None
    require(
        bool(policies), ex, "the YAML holds no NetworkPolicy", "kind: NetworkPolicy, apiVersion: networking.k8s.io/v1"
    )
    world.apply(policies)
    return policies


def _diff(world: PolicyWorld, want, probes) -> list[str]:
    cmp = world.compare(probes, timeout=1.0)
    wrong = []
    for (s, d, port, proto), live in sorted(cmp.live.items()):
        should = want(world.cluster.pod(s), world.cluster.pod(d), port, proto)
        if live != should:
            wrong.append(
                f"{s} -> {d} {proto}/{port}: required {'allow' if should else 'deny'}, "
                f"live {'allow' if live else 'deny'}"
            )
    return wrong


@graded("write the web NetworkPolicy YAML yourself as web_policy and run this check again")
def check_web_policy(text: Any, world: PolicyWorld) -> None:
    ex = "Exercise 2 (protect the web pods)"
    _apply_yaml(ex, world, text)
    wrong = _diff(world, web_requirement, [(80, "TCP"), (81, "UDP"), (81, "TCP")])
    world.apply([])
    if wrong:
        hint = (
            "web must be isolated for ingress (a policy selecting app=web) and the only rule must match "
            "pods app=client *in shop* on TCP 80 (the named port http works too)"
        )
        raise CheckFailed(
            ex,
            f"{len(wrong)} probe(s) differ from the requirement: "
            + "; ".join(wrong[:4])
            + (" ..." if len(wrong) > 4 else ""),
            hint,
        )
    passed(ex, "live probes match the requirement for every pod pair on TCP 80, TCP 81 and UDP 81")


@graded("write the egress NetworkPolicy YAML yourself as egress_policy and run this check again")
def check_egress_via_service(
    text: Any, world: PolicyWorld, proxy: ServiceProxy, cluster_ip: str = "10.96.0.10"
) -> None:
    ex = "Exercise 3 (egress through a Service)"
    _apply_yaml(ex, world, text)
    try:
        vip = world.probe_vip("other/intruder", cluster_ip, 80, count=6, timeout=1.5)
        vip_udp = world.probe_vip("other/intruder", cluster_ip, 53, "UDP", count=2, timeout=1.0)
        wrong = _diff(world, egress_requirement, [(80, "TCP"), (81, "UDP")])
    finally:
        world.apply([])
    if not all(r.ok for r in vip):
        uses_block = "ipBlock" in text and cluster_ip in text
        raise CheckFailed(
            ex,
            f"other/intruder -> {cluster_ip}:80 failed {sum(not r.ok for r in vip)} of 6 times",
            "policy sees the packet *after* the Service translation: allow the backend pods "
            "(a selector for app=web in shop), not the ClusterIP"
            if uses_block
            else "the Service's backends are shop's app=web pods on port 80: allow egress to them",
        )
    require(
        not any(r.ok for r in vip_udp),
        ex,
        f"other/intruder reached {cluster_ip}:53/UDP",
        "only TCP 80 may leave the 'other' namespace",
    )
    if wrong:
        raise CheckFailed(
            ex,
            f"{len(wrong)} probe(s) differ from the requirement: " + "; ".join(wrong[:4]),
            "isolate every pod of 'other' for egress (podSelector: {}) and allow only TCP 80 "
            "to app=web pods in the shop namespace (namespaceSelector AND podSelector in one peer)",
        )
    backends = sorted({r.answer for r in vip})
    passed(ex, f"the Service answers from {', '.join(backends)}; everything else from 'other' is blocked")


# ---- C assignments in the NetworkPolicy dataplane (graded by packetlab.course.assignments) -------------
@graded(POLICY_LOOKUP.try_it)
def check_policy_lookup(source: str | None) -> bool:
    """Assignment 10.A1: allowed_by_rules() in bpf/10-netpol.c, against the NetworkPolicy evaluator."""
    return check(POLICY_LOOKUP, source)


@graded(CONNTRACK.try_it)
def check_policy_conntrack(source: str | None) -> bool:
    """Assignment 10.A2: ct_fresh() and ct_record() in bpf/10-netpol.c: replies of allowed connections pass."""
    return check(CONNTRACK, source)
