"""Kubernetes objects for policy: Namespace, Pod and ``networking.k8s.io/v1``
NetworkPolicy, read from the same YAML you would ``kubectl apply``.

The YAML files stand in for the API server: a `Cluster` is the set of
namespaces (with labels), pods (with labels, container ports and the IP our CNI
plugin gave them) and policies. Parsing validates what the API server would
reject (an empty peer, an ipBlock mixed with selectors, ``endPort`` on a named
port, an ``except`` outside its ``cidr`` ...) so a broken policy fails here with
the same complaint instead of silently meaning something else.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from packetlab.errors import PacketlabError
from packetlab.paths import REPO_ROOT

PROTOCOLS = ("TCP", "UDP", "SCTP")
PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class PolicyError(PacketlabError):
    """A NetworkPolicy (or Pod/Namespace) the API server would reject."""


def _invalid(where: str, what: str, fix: str) -> PolicyError:
    return PolicyError(f"invalid {where}", cause=what, fix=fix)


# ---- selectors ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.operator == "In":
            return self.key in labels and labels[self.key] in self.values
        if self.operator == "NotIn":
            return self.key not in labels or labels[self.key] not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels  # DoesNotExist

    def __str__(self) -> str:
        if self.operator in ("Exists", "DoesNotExist"):
            return self.key if self.operator == "Exists" else f"!{self.key}"
        return f"{self.key} {self.operator.lower()} ({','.join(self.values)})"


@dataclass(frozen=True)
class LabelSelector:
    """metav1.LabelSelector: matchLabels AND matchExpressions; empty selects everything."""

    match_labels: tuple[tuple[str, str], ...] = ()
    match_expressions: tuple[Requirement, ...] = ()

    @classmethod
    def parse(cls, obj: Any, where: str) -> LabelSelector:
        if obj is None:
            obj = {}
        if not isinstance(obj, Mapping):
            raise _invalid(
                where,
                f"a label selector must be a mapping, got {obj!r}",
                "write e.g. {matchLabels: {app: web}} or {} for 'all'",
            )
        unknown = set(obj) - {"matchLabels", "matchExpressions"}
        if unknown:
            raise _invalid(
                where, f"unknown selector field(s) {sorted(unknown)}", "use matchLabels and/or matchExpressions"
            )
        labels = obj.get("matchLabels") or {}
        if not isinstance(labels, Mapping):
            raise _invalid(where, "matchLabels must be a mapping of label: value", "e.g. matchLabels: {app: web}")
        reqs = []
        for i, expr in enumerate(obj.get("matchExpressions") or []):
            if not isinstance(expr, Mapping) or "key" not in expr or "operator" not in expr:
                raise _invalid(
                    where,
                    f"matchExpressions[{i}] needs key and operator",
                    "e.g. {key: app, operator: In, values: [web]}",
                )
            op, values = expr["operator"], tuple(str(v) for v in (expr.get("values") or []))
            if op not in OPERATORS:
                raise _invalid(
                    where,
                    f"matchExpressions[{i}].operator {op!r} is not one of {', '.join(OPERATORS)}",
                    "operators are case sensitive: In, NotIn, Exists, DoesNotExist",
                )
            if op in ("In", "NotIn") and not values:
                raise _invalid(
                    where, f"matchExpressions[{i}]: operator {op} needs a non-empty values list", "add values: [...]"
                )
            if op in ("Exists", "DoesNotExist") and values:
                raise _invalid(where, f"matchExpressions[{i}]: operator {op} must not have values", "remove values")
            reqs.append(Requirement(str(expr["key"]), op, values))
        return cls(tuple(sorted((str(k), str(v)) for k, v in labels.items())), tuple(reqs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in self.match_labels) and all(
            r.matches(labels) for r in self.match_expressions
        )

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def __str__(self) -> str:
        parts = [f"{k}={v}" for k, v in self.match_labels] + [str(r) for r in self.match_expressions]
        return ",".join(parts) if parts else "<all>"


# ---- policy pieces ------------------------------------------------------------------------------
@dataclass(frozen=True)
class IPBlock:
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    excepts: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    def contains(self, ip: str) -> bool:
        addr = ipaddress.ip_address(ip)
        return addr.version == self.cidr.version and addr in self.cidr and not any(addr in e for e in self.excepts)

    def __str__(self) -> str:
        return str(self.cidr) + (f" except {', '.join(map(str, self.excepts))}" if self.excepts else "")


@dataclass(frozen=True)
class Peer:
    """One entry of from/to: selectors (pods, namespaces, or both) or an ipBlock."""

    pod_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    ip_block: IPBlock | None = None

    @classmethod
    def parse(cls, obj: Any, where: str) -> Peer:
        if not isinstance(obj, Mapping) or not obj:
            raise _invalid(
                where,
                "a peer must specify podSelector, namespaceSelector and/or ipBlock",
                "an empty peer ({}) is rejected by the API server; to allow everyone omit 'from'/'to' instead",
            )
        unknown = set(obj) - {"podSelector", "namespaceSelector", "ipBlock"}
        if unknown:
            raise _invalid(
                where, f"unknown peer field(s) {sorted(unknown)}", "use podSelector, namespaceSelector or ipBlock"
            )
        if "ipBlock" in obj:
            if len(obj) > 1:
                raise _invalid(
                    where,
                    "ipBlock cannot be combined with podSelector/namespaceSelector in one peer",
                    "make them two separate peers (two list items)",
                )
            block = obj["ipBlock"] or {}
            try:
                cidr = ipaddress.ip_network(block["cidr"], strict=False)
            except (KeyError, ValueError, TypeError) as exc:
                raise _invalid(
                    where, f"ipBlock.cidr is missing or invalid: {exc}", "e.g. ipBlock: {cidr: 10.0.0.0/16}"
                ) from None
            excepts = []
            for e in block.get("except") or []:
                try:
                    net = ipaddress.ip_network(e, strict=False)
                except ValueError as exc:
                    raise _invalid(where, f"ipBlock.except {e!r}: {exc}", "write CIDRs like 10.0.1.0/24") from None
                inside = net.network_address in cidr and net.broadcast_address in cidr  # (False across versions)
                if not inside or net == cidr:
                    raise _invalid(
                        where,
                        f"ipBlock.except {net} must be a strict subset of cidr {cidr}",
                        "each except range lies inside the cidr (and is smaller)",
                    )
                excepts.append(net)
            return cls(ip_block=IPBlock(cidr, tuple(excepts)))
        ps = LabelSelector.parse(obj["podSelector"], where + ".podSelector") if "podSelector" in obj else None
        ns = (
            LabelSelector.parse(obj["namespaceSelector"], where + ".namespaceSelector")
            if "namespaceSelector" in obj
            else None
        )
        return cls(pod_selector=ps, namespace_selector=ns)

    def __str__(self) -> str:
        if self.ip_block:
            return f"ipBlock {self.ip_block}"
        parts = []
        if self.namespace_selector is not None:
            parts.append(f"namespaces[{self.namespace_selector}]")
        if self.pod_selector is not None:
            parts.append(f"pods[{self.pod_selector}]")
        return " & ".join(parts)


@dataclass(frozen=True)
class PolicyPort:
    protocol: str = "TCP"
    port: int | str | None = None
    end_port: int | None = None

    @classmethod
    def parse(cls, obj: Any, where: str) -> PolicyPort:
        if not isinstance(obj, Mapping):
            raise _invalid(where, f"a port entry must be a mapping, got {obj!r}", "e.g. {protocol: TCP, port: 80}")
        proto = obj.get("protocol", "TCP")
        if proto not in PROTOCOLS:
            raise _invalid(
                where,
                f"protocol {proto!r} is not one of {', '.join(PROTOCOLS)}",
                "NetworkPolicy covers TCP, UDP and SCTP (upper case)",
            )
        port = obj.get("port")
        end = obj.get("endPort")
        if isinstance(port, bool):
            port = None
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        if isinstance(port, int) and not 1 <= port <= 65535:
            raise _invalid(where, f"port {port} is outside 1..65535", "use a valid port number or a port name")
        if isinstance(port, str) and not port:
            raise _invalid(where, "port name is empty", "use the name of a container port, e.g. port: http")
        if end is not None:
            if not isinstance(port, int):
                raise _invalid(
                    where,
                    "endPort needs a numeric port",
                    "a range is port: 8000, endPort: 8080 (named ports cannot have ranges)",
                )
            if not isinstance(end, int) or not port <= end <= 65535:
                raise _invalid(
                    where,
                    f"endPort {end!r} must be a number with port <= endPort <= 65535",
                    "e.g. port: 32000, endPort: 32768",
                )
        return cls(proto, port, end)

    def __str__(self) -> str:
        if self.port is None:
            return f"{self.protocol}/*"
        return f"{self.protocol}/{self.port}" + (f"-{self.end_port}" if self.end_port else "")


@dataclass(frozen=True)
class Rule:
    """One ingress or egress rule: peers (empty: everyone) x ports (empty: everything)."""

    peers: tuple[Peer, ...] = ()
    ports: tuple[PolicyPort, ...] = ()

    def __str__(self) -> str:
        peers = " | ".join(map(str, self.peers)) if self.peers else "anyone"
        ports = ", ".join(map(str, self.ports)) if self.ports else "all ports"
        return f"{peers} on {ports}"


@dataclass(frozen=True)
class NetworkPolicy:
    name: str
    namespace: str
    pod_selector: LabelSelector
    policy_types: frozenset[str]
    ingress: tuple[Rule, ...] = ()
    egress: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, doc: Mapping[str, Any], default_namespace: str = "default") -> NetworkPolicy:
        meta = doc.get("metadata") or {}
        name = meta.get("name")
        where = f"NetworkPolicy {name or '<unnamed>'}"
        if doc.get("apiVersion") != "networking.k8s.io/v1":
            raise _invalid(
                where, f"apiVersion {doc.get('apiVersion')!r}", "NetworkPolicy is apiVersion networking.k8s.io/v1"
            )
        if not name:
            raise _invalid(where, "metadata.name is missing", "every object needs metadata.name")
        spec = doc.get("spec")
        if not isinstance(spec, Mapping) or "podSelector" not in spec:
            raise _invalid(
                where, "spec.podSelector is required", "use podSelector: {} to select every pod of the namespace"
            )
        pod_selector = LabelSelector.parse(spec["podSelector"], where + ".spec.podSelector")
        ingress = tuple(cls._rules(spec.get("ingress"), "from", where + ".spec.ingress"))
        egress = tuple(cls._rules(spec.get("egress"), "to", where + ".spec.egress"))
        types = spec.get("policyTypes")
        if types is None:  # the API server's defaulting
            types = ["Ingress"] + (["Egress"] if egress else [])
        if not isinstance(types, list) or any(t not in ("Ingress", "Egress") for t in types):
            raise _invalid(
                where,
                f"policyTypes {types!r} may only contain 'Ingress' and 'Egress'",
                "note the capital letters: policyTypes: [Ingress, Egress]",
            )
        return cls(name, meta.get("namespace") or default_namespace, pod_selector, frozenset(types), ingress, egress)

    @staticmethod
    def _rules(items: Any, peer_key: str, where: str) -> Iterable[Rule]:
        if items is None:
            return []
        if not isinstance(items, list):
            raise _invalid(where, "must be a list of rules", f"e.g. - {peer_key}: [...]\n    ports: [...]")
        out = []
        for i, item in enumerate(items):
            item = item or {}
            if not isinstance(item, Mapping) or set(item) - {peer_key, "ports"}:
                raise _invalid(
                    f"{where}[{i}]",
                    f"a rule has only '{peer_key}' and 'ports'",
                    "ingress rules use 'from', egress rules use 'to'",
                )
            peers = tuple(
                Peer.parse(p, f"{where}[{i}].{peer_key}[{j}]") for j, p in enumerate(item.get(peer_key) or [])
            )
            ports = tuple(
                PolicyPort.parse(p, f"{where}[{i}].ports[{j}]") for j, p in enumerate(item.get("ports") or [])
            )
            out.append(Rule(peers, ports))
        return out

    def selects(self, pod: PodInfo) -> bool:
        return pod.namespace == self.namespace and self.pod_selector.matches(pod.labels)


# ---- namespaces and pods ----------------------------------------------------------------------------
@dataclass
class Namespace:
    name: str
    labels: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = {**self.labels, NAMESPACE_NAME_LABEL: self.name}  # as the API server does


@dataclass
class ContainerPort:
    port: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass
class PodInfo:
    """A pod as policy sees it: identity, labels, named ports and IP."""

    name: str
    namespace: str
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[ContainerPort] = field(default_factory=list)
    ip: str | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def address(self) -> str:
        """The pod's IP, for code that only handles pods that have one (the compiler skips the others)."""
        if self.ip is None:
            raise ValueError(f"pod {self.key} has no IP yet")
        return self.ip

    def named_port(self, name: str, protocol: str) -> int | None:
        for p in self.ports:
            if p.name == name and p.protocol == protocol:
                return p.port
        return None

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> PodInfo:
        meta = doc.get("metadata") or {}
        if not meta.get("name"):
            raise _invalid("Pod", "metadata.name is missing", "every object needs metadata.name")
        ports = []
        for c in (doc.get("spec") or {}).get("containers") or []:
            for p in c.get("ports") or []:
                proto = p.get("protocol", "TCP")
                if proto not in PROTOCOLS:
                    raise _invalid(f"Pod {meta['name']}", f"container port protocol {proto!r}", "use TCP, UDP or SCTP")
                ports.append(ContainerPort(int(p["containerPort"]), proto, p.get("name")))
        ip = (doc.get("status") or {}).get("podIP")
        return cls(meta["name"], meta.get("namespace") or "default", dict(meta.get("labels") or {}), ports, ip)

    def as_ports_spec(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "containerPort": p.port, "protocol": p.protocol} for p in self.ports]


@dataclass
class Cluster:
    """What the API server would know: namespaces, pods (with IPs), policies, node IPs."""

    namespaces: dict[str, Namespace] = field(default_factory=dict)
    pods: list[PodInfo] = field(default_factory=list)
    policies: list[NetworkPolicy] = field(default_factory=list)
    node_ips: list[str] = field(default_factory=list)  # traffic from/to the node is always allowed

    def namespace(self, name: str) -> Namespace:
        return self.namespaces.get(name) or Namespace(name)

    def pod(self, key: str) -> PodInfo:
        for p in self.pods:
            if p.key == key or (p.name == key and "/" not in key):
                return p
        raise PacketlabError(f"no pod {key!r} in the cluster", fix="pods are named namespace/name, e.g. 'x/a'")

    def pod_by_ip(self, ip: str) -> PodInfo | None:
        return next((p for p in self.pods if p.ip == ip), None)

    def with_policies(self, policies: Sequence[NetworkPolicy]) -> Cluster:
        return Cluster(self.namespaces, self.pods, list(policies), self.node_ips)


def load_documents(source: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """YAML documents from text, a file, or several files (kind: List is flattened)."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    docs: list[dict[str, Any]] = []
    for src in sources:
        text = src
        if isinstance(src, Path) or (isinstance(src, str) and "\n" not in src and src.endswith((".yaml", ".yml"))):
            try:
                text = _resolve(src).read_text()
            except OSError as exc:
                raise PacketlabError(f"cannot read {src}", cause=str(exc), fix="check the path") from None
        try:
            loaded = [d for d in yaml.safe_load_all(text) if d]
        except yaml.YAMLError as exc:
            raise PolicyError(
                "the YAML does not parse",
                cause=str(exc).splitlines()[0] if str(exc) else "syntax error",
                fix="check indentation (spaces, not tabs) around the line shown",
            ) from None
        for d in loaded:
            if d.get("kind") == "List":
                docs.extend(d.get("items") or [])
            else:
                docs.append(d)
    return docs


def _resolve(path: str | Path) -> Path:
    p = Path(path)
    if p.exists():
        return p
    return REPO_ROOT / p if (REPO_ROOT / p).exists() else p


def parse_objects(docs: Iterable[Mapping[str, Any]]) -> tuple[list[Namespace], list[PodInfo], list[NetworkPolicy]]:
    """Split documents into namespaces, pods and policies (other kinds are an error)."""
    namespaces, pods, policies = [], [], []
    for doc in docs:
        kind = doc.get("kind")
        if kind == "Namespace":
            meta = doc.get("metadata") or {}
            namespaces.append(Namespace(meta["name"], dict(meta.get("labels") or {})))
        elif kind == "Pod":
            pods.append(PodInfo.parse(doc))
        elif kind == "NetworkPolicy":
            policies.append(NetworkPolicy.parse(doc))
        else:
            raise PolicyError(
                f"unsupported kind {kind!r}",
                cause="the policy lab reads Namespace, Pod and NetworkPolicy",
                fix="Services are read by packetlab.course.m10_kubernetes_networking.services",
            )
    return namespaces, pods, policies


def load_policies(source: str | Path | Iterable[str | Path]) -> list[NetworkPolicy]:
    """Only the NetworkPolicy objects of some YAML."""
    return [NetworkPolicy.parse(d) for d in load_documents(source) if d.get("kind") == "NetworkPolicy"]
