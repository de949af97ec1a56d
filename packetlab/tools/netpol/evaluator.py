"""NetworkPolicy semantics in plain Python: the truth table the eBPF enforcer must match.

The rules (Kubernetes documentation, "Network Policies"):

* A pod is *isolated for ingress* if any policy in its namespace selects it and
  has ``Ingress`` in policyTypes; likewise for egress. A pod no policy selects
  (for that direction) accepts everything in that direction.
* Policies are additive allow-lists: a connection into an isolated pod is
  allowed if *any* ingress rule of *any* policy selecting it matches the source
  and the port. There are no deny rules and no order.
* A connection from A to B needs both: A's egress allows it, and B's ingress
  allows it. Replies of an allowed connection are always allowed.
* A peer with podSelector only means pods in the *policy's* namespace; with
  namespaceSelector only, all pods of matching namespaces; with both, matching
  pods in matching namespaces (one peer — ``- namespaceSelector: ... podSelector:
  ...`` — is AND; two list items are OR). ipBlock matches addresses, ``except``
  carves holes.
* A rule without ``ports`` allows every port and protocol; a port entry without
  ``port`` allows every port of its protocol; ``endPort`` makes a range; a named
  port is looked up in the *destination* pod's container ports.
* Traffic between a pod and its own node is always allowed.

Implementation choices where Kubernetes leaves room (the enforcer does the same):
ipBlock also matches pod IPs; non-TCP/UDP/SCTP traffic (ICMP) is allowed only
by rules without ``ports``; established connections survive a policy change
only while the new policy still allows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from packetlab.show.tables import format_table
from packetlab.tools.netpol.model import Cluster, NetworkPolicy, Peer, PodInfo, PolicyPort, Rule


@dataclass
class Endpoint:
    """A traffic endpoint: a pod, or a bare IP (the node, something outside)."""

    ip: str
    pod: PodInfo | None = None

    @property
    def label(self) -> str:
        return self.pod.key if self.pod else self.ip


@dataclass
class SideVerdict:
    """One direction's decision: isolated by which policies, allowed by which rule."""

    direction: str
    isolated_by: list[str] = field(default_factory=list)
    allowed_by: str | None = None
    node_traffic: bool = False

    @property
    def allowed(self) -> bool:
        return not self.isolated_by or self.allowed_by is not None or self.node_traffic

    def __str__(self) -> str:
        if self.node_traffic:
            return f"{self.direction}: node traffic, always allowed"
        if not self.isolated_by:
            return f"{self.direction}: not isolated"
        if self.allowed_by:
            return f"{self.direction}: allowed by {self.allowed_by}"
        return f"{self.direction}: isolated by {', '.join(self.isolated_by)}; no rule matches"


@dataclass
class Verdict:
    src: str
    dst: str
    port: int
    protocol: str
    egress: SideVerdict
    ingress: SideVerdict

    @property
    def allowed(self) -> bool:
        return self.egress.allowed and self.ingress.allowed

    def explain(self) -> str:
        word = "ALLOW" if self.allowed else "DENY"
        return f"{word} {self.src} -> {self.dst} {self.protocol}/{self.port}: {self.egress}; {self.ingress}"


class Evaluator:
    """Answers "may src reach dst on port/protocol?" for one cluster state."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    def endpoint(self, who: str | PodInfo | Endpoint) -> Endpoint:
        if isinstance(who, Endpoint):
            return who
        if isinstance(who, PodInfo):
            return Endpoint(who.ip or "", who)
        pod = self.cluster.pod_by_ip(who) if who[:1].isdigit() else None
        if pod is None and not who[:1].isdigit():
            pod = self.cluster.pod(who)
        return Endpoint(pod.ip or "", pod) if pod else Endpoint(who)

    # ---- the two halves ------------------------------------------------------------------------------
    def policies_for(self, pod: PodInfo, direction: str) -> list[NetworkPolicy]:
        return [p for p in self.cluster.policies if direction in p.policy_types and p.selects(pod)]

    def peer_matches(self, peer: Peer, policy: NetworkPolicy, other: Endpoint) -> bool:
        if peer.ip_block is not None:
            return bool(other.ip) and peer.ip_block.contains(other.ip)
        pod = other.pod
        if pod is None:
            return False  # selectors only ever match pods
        if peer.namespace_selector is not None:
            if not peer.namespace_selector.matches(self.cluster.namespace(pod.namespace).labels):
                return False
        elif pod.namespace != policy.namespace:
            return False
        return peer.pod_selector is None or peer.pod_selector.matches(pod.labels)

    @staticmethod
    def port_matches(ports: Sequence[PolicyPort], dst: Endpoint, port: int, protocol: str) -> bool:
        if not ports:
            return True  # no ports: every port, every protocol
        for pp in ports:
            if pp.protocol != protocol:
                continue
            if pp.port is None:
                return True
            if isinstance(pp.port, str):
                if dst.pod is not None and dst.pod.named_port(pp.port, protocol) == port:
                    return True
                continue
            if pp.port == port or (pp.end_port is not None and pp.port <= port <= pp.end_port):
                return True
        return False

    def rule_matches(
        self, rule: Rule, policy: NetworkPolicy, peer_end: Endpoint, dst: Endpoint, port: int, protocol: str
    ) -> bool:
        if rule.peers and not any(self.peer_matches(p, policy, peer_end) for p in rule.peers):
            return False
        return self.port_matches(rule.ports, dst, port, protocol)

    def side(
        self, direction: str, subject: Endpoint, peer_end: Endpoint, dst: Endpoint, port: int, protocol: str
    ) -> SideVerdict:
        verdict = SideVerdict(direction)
        if subject.pod is None:
            return verdict  # not a pod: no policy applies to it
        if peer_end.ip and peer_end.ip in self.cluster.node_ips:
            verdict.node_traffic = True
            return verdict
        for policy in self.policies_for(subject.pod, "Ingress" if direction == "ingress" else "Egress"):
            verdict.isolated_by.append(policy.key)
            rules = policy.ingress if direction == "ingress" else policy.egress
            for i, rule in enumerate(rules):
                if verdict.allowed_by is None and self.rule_matches(rule, policy, peer_end, dst, port, protocol):
                    verdict.allowed_by = f"{policy.key} {direction}[{i}]"
        return verdict

    # ---- public -----------------------------------------------------------------------------------------
    def verdict(
        self, src: str | PodInfo | Endpoint, dst: str | PodInfo | Endpoint, port: int, protocol: str = "TCP"
    ) -> Verdict:
        s, d = self.endpoint(src), self.endpoint(dst)
        egress = self.side("egress", s, d, d, port, protocol)
        ingress = self.side("ingress", d, s, d, port, protocol)
        return Verdict(s.label, d.label, port, protocol, egress, ingress)

    def allowed(
        self, src: str | PodInfo | Endpoint, dst: str | PodInfo | Endpoint, port: int, protocol: str = "TCP"
    ) -> bool:
        return self.verdict(src, dst, port, protocol).allowed

    def matrix(
        self, probes: Iterable[tuple[int, str]], pods: Sequence[PodInfo] | None = None, include_self: bool = False
    ) -> dict[tuple[str, str, int, str], bool]:
        """{(src key, dst key, port, protocol): allowed} for every pod pair and probe."""
        pods = list(pods if pods is not None else self.cluster.pods)
        out = {}
        for port, protocol in probes:
            for s in pods:
                for d in pods:
                    if s is d and not include_self:
                        continue
                    out[(s.key, d.key, port, protocol)] = self.allowed(s, d, port, protocol)
        return out


def format_matrix(
    matrix: dict[tuple[str, str, int, str], bool],
    port: int,
    protocol: str = "TCP",
    other: dict[tuple[str, str, int, str], bool] | None = None,
) -> str:
    """The upstream e2e "reachability" table: rows = from, columns = to; '.' allowed, 'X' denied.
    With `other` (e.g. the live probes), cells that differ are shown as '!'."""
    keys = [k for k in matrix if k[2] == port and k[3] == protocol]
    pods = sorted({k[0] for k in keys} | {k[1] for k in keys})
    rows = []
    for s in pods:
        cells = [s]
        for d in pods:
            k = (s, d, port, protocol)
            if k not in matrix:
                cell = "-"
            elif other is not None and other.get(k) != matrix[k]:
                cell = "!"
            else:
                cell = "." if matrix[k] else "X"
            cells.append(cell)
        rows.append(cells)
    return format_table([f"{protocol}/{port}", *pods], rows)
