"""Module 10's C assignments in the NetworkPolicy dataplane, bpf/10-netpol.c (two tc programs).

* 10.A1 — the policy lookup: the `policy` region (allowed_by_rules: the LPM lookup of the peer
  and the port ranges). Graded like the dataplane's own verdict test: the Kubernetes docs'
  example policy is compiled by the control plane (`packetlab.tools.netpol`), installed for
  one pod at a time, and each flow's verdicts at both hooks must agree with the evaluator.
* 10.A2 — let replies through: the `conntrack` region (ct_fresh, ct_record). A pod whose
  policy let a connection out must get the reply in even after its policy became deny-all;
  the flow's own direction must not pass because of it.

BPF_PROG_TEST_RUN runs tc programs on loopback, so the pod under test is the one on ifindex 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from packetlab.course.assignments import Assignment, CaseFailed
from packetlab.ebpf.loader import LoadedProgram
from packetlab.ebpf.testrun import TC_VERDICTS, prog_test_run

POLICY = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
DOCS_EXAMPLE = (  # the example policy of the Kubernetes NetworkPolicy documentation
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
DENY_ALL = POLICY + (
    "metadata: {name: d, namespace: default}\n"
    "spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress, Egress]}"
)
ALLOW_OUT = POLICY + (
    "metadata: {name: d, namespace: default}\n"
    "spec: {podSelector: {matchLabels: {role: db}}, policyTypes: [Ingress, Egress], egress: [{}]}"
)
DB, FRONT = "10.1.0.10", "10.1.0.11"
FLOWS = [  # (source, destination, TCP port): pods, an ipBlock with an except, the node
    ("10.1.0.11", "10.1.0.10", 6379),
    ("10.1.0.11", "10.1.0.10", 80),
    ("10.1.0.13", "10.1.0.10", 6379),
    ("10.1.0.14", "10.1.0.10", 6379),
    ("172.17.0.5", "10.1.0.10", 6379),
    ("172.17.1.5", "10.1.0.10", 6379),
    ("10.1.0.10", "10.0.0.7", 5978),
    ("10.1.0.10", "10.0.0.7", 5979),
    ("10.1.0.10", "10.1.0.11", 80),
]


def docs_cluster(policies: list[Any]) -> Any:
    """The pods and namespaces the documentation example talks about."""
    from packetlab.tools.netpol.model import Cluster, Namespace, PodInfo

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


class Dataplane:
    """bpf/10-netpol.c (or a variant) loaded with both hooks, and the policy for one pod at a time."""

    def __init__(self, source: Path) -> None:
        from bcc import BPF

        from packetlab.tools.netpol.enforcer import PolicyMaps

        self.prog = LoadedProgram(source, function="netpol_from_pod", prog_type="sched_cls")
        try:
            self.to_pod_fd = self.prog.bpf.load_func(b"netpol_to_pod", BPF.SCHED_CLS).fd
        except Exception:
            self.prog.close()
            raise
        self.maps = PolicyMaps(self.prog)

    def install(self, policy: str, pod_ip: str) -> None:
        """Compile `policy` for the docs cluster and install it for the pod `pod_ip` on ifindex 1."""
        from packetlab.tools.netpol.compiler import Compiler
        from packetlab.tools.netpol.model import load_policies

        compiled = Compiler(docs_cluster(load_policies(policy))).compile()
        only = type(compiled)({pod_ip: compiled.pods[pod_ip]}, [s for s in compiled.sections if s.pod.ip == pod_ip])
        self.maps.install(only, {pod_ip: 1})

    def from_pod(self, frame: Any) -> str:
        return prog_test_run(self.prog.fd, bytes(frame), verdicts=TC_VERDICTS).verdict

    def to_pod(self, frame: Any) -> str:
        return prog_test_run(self.to_pod_fd, bytes(frame), verdicts=TC_VERDICTS).verdict

    def close(self) -> None:
        self.prog.close()


def _syn(src: str, dst: str, dport: int, sport: int = 40000, flags: str = "S") -> Ether:
    return Ether() / IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags)


def run_policy(source: Path) -> str:
    """Each flow at the sender's egress hook and the receiver's ingress hook, vs the evaluator."""
    from packetlab.tools.netpol.evaluator import Evaluator
    from packetlab.tools.netpol.model import load_policies

    cluster = docs_cluster(load_policies(DOCS_EXAMPLE))
    ev = Evaluator(cluster)
    dp = Dataplane(source)
    try:
        for sport, (src, dst, port) in enumerate(FLOWS, start=40000):
            frame = _syn(src, dst, port, sport)
            want = ev.allowed(src, dst, port)
            got = []
            for pod, hook, run in ((src, "from-pod (egress)", dp.from_pod), (dst, "to-pod (ingress)", dp.to_pod)):
                if cluster.pod_by_ip(pod):
                    dp.install(DOCS_EXAMPLE, pod)
                    got.append(f"{hook} {run(frame)}")
            dp.prog["conntrack"].clear()
            if all(g.endswith("TC_ACT_OK") for g in got) != want:
                raise CaseFailed(
                    f"{src} -> {dst}:{port}", frame, "allowed" if want else "denied", ", ".join(got) or "no hook"
                )
    finally:
        dp.close()
    return f"{len(FLOWS)} flows, both hooks, agree with the NetworkPolicy evaluator"


def run_conntrack(source: Path) -> str:
    """db's own connection out is allowed, then db becomes deny-all: the reply passes, nothing else."""
    out = _syn(DB, FRONT, 80, 5000)
    reply = _syn(FRONT, DB, 5000, 80, flags="SA")
    dp = Dataplane(source)
    try:
        steps = [
            ("db opens a connection (egress allowed)", ALLOW_OUT, dp.from_pod, out, "TC_ACT_OK"),
            ("the reply, after db became deny-all", DENY_ALL, dp.to_pod, reply, "TC_ACT_OK"),
            ("db's own direction again, under deny-all", DENY_ALL, dp.from_pod, out, "TC_ACT_SHOT"),
            ("an unsolicited packet to db", DENY_ALL, dp.to_pod, _syn(FRONT, DB, 6379, 5001), "TC_ACT_SHOT"),
        ]
        for name, policy, run, frame, want in steps:
            dp.install(policy, DB)
            got = run(frame)
            if got != want:
                raise CaseFailed(name, frame, want, got)
    finally:
        dp.close()
    return "replies pass, the flow's own direction and strangers do not"


POLICY_LOOKUP = Assignment(
    key="10.A1",
    title="the NetworkPolicy lookup",
    starter="bpf/10-assign-policy.c",
    solution="bpf/solutions/10-assign-policy.c",
    skeleton="bpf/10-netpol.c",
    region="policy",
    runner=run_policy,
    prog_type="sched_cls",
    try_it="write allowed_by_rules() in bpf/10-assign-policy.c, delete its TODO marker, then run the check again",
    hint="struct rule_key k = {.prefixlen = 128, .gen = gen, .dir = dir, .pod_ip = pod_ip, .peer_ip = peer}; "
    "rules.lookup(&k); then any, has_port, and the first n port ranges",
)

CONNTRACK = Assignment(
    key="10.A2",
    title="replies of allowed connections",
    starter="bpf/10-assign-conntrack.c",
    solution="bpf/solutions/10-assign-conntrack.c",
    skeleton="bpf/10-netpol.c",
    region="conntrack",
    runner=run_conntrack,
    prog_type="sched_cls",
    try_it="write ct_fresh() and ct_record() in bpf/10-assign-conntrack.c, delete its TODO marker, then run the "
    "check again",
    hint="ct_record: struct flow_key k = {.src = p->src, ..., .side = side}; update or insert; ct_fresh: look "
    "up, compare bpf_ktime_get_ns() - last_seen_ns with CT_TIMEOUT_NS",
)

ASSIGNMENTS = (POLICY_LOOKUP, CONNTRACK)
