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
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packetlab import safeyaml
from packetlab.errors import InputError, PacketlabError
from packetlab.paths import REPO_ROOT

PROTOCOLS = ("TCP", "UDP", "SCTP")
PROTO_NUMBERS = {"TCP": 6, "UDP": 17, "SCTP": 132, "ICMP": 1}
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # set on every namespace by the API server
OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


class PolicyError(InputError):
    """A NetworkPolicy (or Pod/Namespace) the API server would reject; `where` names the object
    and field (``NetworkPolicy web.spec.ingress[0]``)."""

    where: str = ""


class DuplicateObject(UserWarning):
    """Two documents name the same kind/namespace/name: the later one replaced the earlier (as kubectl apply)."""


def _invalid(where: str, what: str, fix: str) -> PolicyError:
    err = PolicyError(f"invalid {where}", cause=what, fix=fix)
    err.where = where
    return err


# ---- labels: the API server's syntax (k8s.io/apimachinery validation.IsQualifiedName / IsValidLabelValue)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_problem(key: Any) -> str | None:
    """Why `key` is not a valid label key (None: it is): ``[prefix/]name``, the name at most 63
    characters of letters, digits, '-', '_', '.', starting and ending alphanumeric; the prefix a DNS subdomain."""
    if not isinstance(key, str):
        return f"label key {key!r} must be a string"
    prefix, _, name = key.rpartition("/")
    if "/" in key and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return f"label key {key!r}: the prefix before '/' must be a DNS subdomain (lower case, e.g. example.com)"
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return (
            f"label key {key!r} is not a valid name: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit"
        )
    return None


def label_value_problem(value: Any) -> str | None:
    """Why `value` is not a valid label value (None: it is): empty, or like a label name."""
    if not isinstance(value, str):
        return f"label value {value!r} must be a string (quote it: '{value}')"
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return (
            f"label value {value!r} is not valid: at most 63 letters, digits, '-', '_' or '.', "
            "starting and ending with a letter or digit (or empty)"
        )
    return None


def parse_labels(obj: Any, where: str) -> dict[str, str]:
    """A label map as the API server accepts it (keys and values checked)."""
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise _invalid(where, f"labels must be a mapping of key: value, got {obj!r}", "e.g. labels: {app: web}")
    for k, v in obj.items():
        why = label_key_problem(k) or label_value_problem(v)
        if why:
            raise _invalid(where, why, "label keys look like app or example.com/tier; values like web-1")
    return dict(obj)


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
        labels = parse_labels(obj.get("matchLabels"), where + ".matchLabels")
        exprs = obj.get("matchExpressions") or []
        if not isinstance(exprs, list):
            raise _invalid(
                where,
                "matchExpressions must be a list",
                "e.g. matchExpressions: [{key: app, operator: In, values: [web]}]",
            )
        reqs = []
        for i, expr in enumerate(exprs):
            if not isinstance(expr, Mapping) or "key" not in expr or "operator" not in expr:
                raise _invalid(
                    where,
                    f"matchExpressions[{i}] needs key and operator",
                    "e.g. {key: app, operator: In, values: [web]}",
                )
            op, raw_values = expr["operator"], expr.get("values") or []
            if not isinstance(raw_values, list):
                raise _invalid(where, f"matchExpressions[{i}].values must be a list", "e.g. values: [web, api]")
            why = label_key_problem(expr["key"]) or next(filter(None, map(label_value_problem, raw_values)), None)
            if why:
                raise _invalid(f"{where}.matchExpressions[{i}]", why, "label keys look like app; values like web-1")
            values = tuple(raw_values)
            if not isinstance(op, str) or op not in OPERATORS:
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
        return cls(tuple(sorted(labels.items())), tuple(reqs))

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
            if not isinstance(block, Mapping) or not isinstance(block.get("cidr"), str):
                raise _invalid(where, "ipBlock needs cidr: a CIDR string", "e.g. ipBlock: {cidr: 10.0.0.0/16}")
            except_list = block.get("except") or []
            if not isinstance(except_list, list):
                raise _invalid(where, "ipBlock.except must be a list of CIDRs", "e.g. except: [10.0.1.0/24]")
            try:
                cidr = ipaddress.ip_network(block["cidr"], strict=False)
            except (KeyError, ValueError, TypeError) as exc:
                raise _invalid(
                    where, f"ipBlock.cidr is missing or invalid: {exc}", "e.g. ipBlock: {cidr: 10.0.0.0/16}"
                ) from None
            excepts = []
            for e in except_list:
                try:
                    net = ipaddress.ip_network(e if isinstance(e, str) else "not a string", strict=False)
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
        if not isinstance(proto, str) or proto not in PROTOCOLS:
            raise _invalid(
                where,
                f"protocol {proto!r} is not one of {', '.join(PROTOCOLS)}",
                "NetworkPolicy covers TCP, UDP and SCTP (upper case)",
            )
        port = obj.get("port")
        end = obj.get("endPort")
        if isinstance(port, bool) or not isinstance(port, int | str | None):
            raise _invalid(where, f"port {port!r} is not a port", "a port is a whole number (80) or a port name (http)")
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
            if not isinstance(end, int) or isinstance(end, bool) or not port <= end <= 65535:
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
        name, namespace = _metadata(doc, "NetworkPolicy")
        where = f"NetworkPolicy {name}"
        if doc.get("apiVersion") != "networking.k8s.io/v1":
            raise _invalid(
                where, f"apiVersion {doc.get('apiVersion')!r}", "NetworkPolicy is apiVersion networking.k8s.io/v1"
            )
        spec = doc.get("spec")
        if not isinstance(spec, Mapping) or "podSelector" not in spec:
            raise _invalid(
                where, "spec.podSelector is required", "use podSelector: {} to select every pod of the namespace"
            )
        pod_selector = LabelSelector.parse(spec["podSelector"], where + ".spec.podSelector")
        ingress = tuple(cls._rules(spec.get("ingress"), "from", where + ".spec.ingress"))
        egress = tuple(cls._rules(spec.get("egress"), "to", where + ".spec.egress"))
        types = spec.get("policyTypes")
        if types is None or types == []:  # the API server's defaulting: absent or empty
            types = ["Ingress"] + (["Egress"] if egress else [])
        if not isinstance(types, list) or any(t not in ("Ingress", "Egress") for t in types):
            raise _invalid(
                where,
                f"policyTypes {types!r} may only contain 'Ingress' and 'Egress'",
                "note the capital letters: policyTypes: [Ingress, Egress]",
            )
        return cls(name, namespace or default_namespace, pod_selector, frozenset(types), ingress, egress)

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
            for key in (peer_key, "ports"):
                if not isinstance(item.get(key) or [], list):
                    raise _invalid(f"{where}[{i}].{key}", "must be a list", f"e.g. {key}: [...]")
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
        name, namespace = _metadata(doc, "Pod")
        where = f"Pod {name}"
        labels = parse_labels((doc.get("metadata") or {}).get("labels"), where + ".metadata.labels")
        spec = doc.get("spec") or {}
        containers = spec.get("containers") or [] if isinstance(spec, Mapping) else None
        if not isinstance(containers, list):
            raise _invalid(where + ".spec", "spec.containers must be a list", "e.g. containers: [{name: web, ...}]")
        ports = []
        for i, c in enumerate(containers):
            cports = c.get("ports") or [] if isinstance(c, Mapping) else None
            if not isinstance(cports, list):
                raise _invalid(
                    f"{where}.spec.containers[{i}]",
                    "a container is a mapping with a ports list",
                    "e.g. {name: web, ports: [{containerPort: 80}]}",
                )
            for j, p in enumerate(cports):
                ports.append(_container_port(p, f"{where}.spec.containers[{i}].ports[{j}]"))
        status = doc.get("status") or {}
        ip = status.get("podIP") if isinstance(status, Mapping) else None
        if ip is not None:
            try:
                ip = str(ipaddress.ip_address(ip if isinstance(ip, str) else "x"))
            except ValueError:
                raise _invalid(
                    where + ".status.podIP", f"{ip!r} is not an IP address", "e.g. podIP: 10.244.1.5"
                ) from None
        return cls(name, namespace or "default", labels, ports, ip)

    def as_ports_spec(self) -> list[dict[str, Any]]:
        return [{"name": p.name, "containerPort": p.port, "protocol": p.protocol} for p in self.ports]


CONTAINER_PORT_FIELDS = ("containerPort", "name", "protocol", "hostPort", "hostIP")


def _container_port(p: Any, where: str) -> ContainerPort:
    """One entry of a container's ports, checked like the API server (misspelt fields named)."""
    import difflib

    if not isinstance(p, Mapping):
        raise _invalid(where, f"a container port is a mapping, got {p!r}", "e.g. {containerPort: 80, name: http}")
    for key in p:
        if key not in CONTAINER_PORT_FIELDS:
            close = difflib.get_close_matches(str(key), CONTAINER_PORT_FIELDS, n=1, cutoff=0.6)
            close = close or [f for f in CONTAINER_PORT_FIELDS if f.lower() == str(key).lower()]
            hint = f" — did you mean {close[0]!r}?" if close else f" (known: {', '.join(CONTAINER_PORT_FIELDS)})"
            raise _invalid(where, f"unknown field {key!r}{hint}", "field names are case sensitive: containerPort")
    port = p.get("containerPort")
    if port is None:
        raise _invalid(where, "containerPort is required", "e.g. {containerPort: 80}")
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        raise _invalid(
            where, f"containerPort {port!r} must be a whole number from 1 to 65535", "e.g. containerPort: 80"
        )
    proto = p.get("protocol", "TCP")
    if proto not in PROTOCOLS:
        raise _invalid(where, f"container port protocol {proto!r}", "use TCP, UDP or SCTP")
    name = p.get("name")
    if name is not None and (
        not isinstance(name, str) or not re.match(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$", name) or len(name) > 15
    ):
        raise _invalid(
            where,
            f"port name {name!r} is not valid: at most 15 lower-case letters, digits and '-', with a letter",
            "e.g. name: http",
        )
    return ContainerPort(port, proto, name)


_OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _metadata(doc: Mapping[str, Any], kind: str) -> tuple[str, str | None]:
    """(name, namespace) of an object, checked as the API server does (DNS names, at most 253)."""
    meta = doc.get("metadata") or {}
    if not isinstance(meta, Mapping):
        raise _invalid(kind, "metadata must be a mapping", "e.g. metadata: {name: web, namespace: x}")
    name, namespace = meta.get("name"), meta.get("namespace")
    if not name:
        raise _invalid(kind, "metadata.name is missing", "every object needs metadata.name")
    for what, value, limit in (("name", name, 253), ("namespace", namespace, 63)):
        if value not in (None, "") and (
            not isinstance(value, str) or len(value) > limit or not _OBJECT_NAME.match(value)
        ):
            raise _invalid(
                f"{kind} {value}",
                f"metadata.{what} {value!r} is not a valid name",
                "lower-case letters, digits, '-' and '.'",
            )
    return name, namespace


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


class SourcedDoc(dict):
    """A document (a plain dict) that remembers where in which file it was written."""

    origin: safeyaml.Document | None = None
    prefix: tuple[Any, ...] = ()  # ("items", 3) for the fourth object of a kind: List

    def line_of(self, dotted: str) -> int | None:
        return self.origin.line_of(self.prefix + safeyaml.path_of(dotted)) if self.origin else None


def load_documents(source: str | Path | Iterable[str | Path]) -> list[dict[str, Any]]:
    """YAML documents from text, a file, or several files (kind: List is flattened).

    Every document must be a mapping with a kind; each remembers its file and lines, so the
    errors of `parse_objects` and `load_policies` name them."""
    sources = [source] if isinstance(source, (str, Path)) else list(source)
    docs: list[dict[str, Any]] = []
    for src in sources:
        text, where = src, "<yaml>"
        if isinstance(src, Path) or (isinstance(src, str) and "\n" not in src and src.endswith((".yaml", ".yml"))):
            text, where = safeyaml.read(_resolve(src), "the YAML file", "check the path"), str(src)
        try:
            loaded = [d for d in safeyaml.load_all(str(text), where) if d.data is not None]
        except safeyaml.YamlError as exc:
            raise PolicyError(
                f"the YAML does not parse ({exc.source}" + (f", line {exc.line}" if exc.line else "") + ")",
                cause=(f"{exc.field}: " if exc.field else "") + exc.message,
                fix="check indentation (spaces, not tabs) and remove !tags around the line shown",
            ) from None
        for d in loaded:
            items = d.data.get("items") if isinstance(d.data, Mapping) and d.data.get("kind") == "List" else None
            entries = list(enumerate(items or [])) if items is not None else [(None, d.data)]
            if items is not None and not isinstance(items, list):
                raise PolicyError(
                    f"{where}, line {d.line}: a kind: List needs items: [...]", fix="list the objects under items:"
                )
            for i, obj in entries:
                prefix = ("items", i) if i is not None else ()
                if not isinstance(obj, Mapping) or not isinstance(obj.get("kind"), str):
                    raise PolicyError(
                        f"{where}, line {d.line_of(prefix)}: a Kubernetes object is a mapping with a kind",
                        cause=f"got {type(obj).__name__}: {str(obj)[:60]!r}",
                        fix="each document has apiVersion, kind, metadata and spec",
                    )
                doc = SourcedDoc(obj)
                doc.origin, doc.prefix = d, prefix
                docs.append(doc)
    return docs


def _located(exc: PolicyError, doc: Mapping[str, Any]) -> PolicyError:
    """`exc` with the file and line of the field it names (when `doc` came from a file)."""
    if not isinstance(doc, SourcedDoc) or doc.origin is None:
        return exc
    meta = doc.get("metadata")
    prefix = f"{doc.get('kind')} {meta.get('name') if isinstance(meta, Mapping) else None}."
    field_path = exc.where[len(prefix) :] if exc.where.startswith(prefix) else ""
    out = PolicyError(f"{exc.what} ({doc.origin.source}, line {doc.line_of(field_path)})", cause=exc.cause, fix=exc.fix)
    out.where = exc.where
    return out


def _dedupe(objects: list[Any], kind: str) -> list[Any]:
    """The API server keeps one object per kind/namespace/name: the later replaces the earlier, with a warning."""
    out: dict[str, Any] = {}
    for obj in objects:
        key = getattr(obj, "key", None) or obj.name
        if key in out:
            warnings.warn(
                f"{kind} {key} is defined twice: the later definition replaces the earlier",
                DuplicateObject,
                stacklevel=3,
            )
            del out[key]
        out[key] = obj
    return list(out.values())


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
        try:
            if kind == "Namespace":
                name, _ = _metadata(doc, "Namespace")
                labels = parse_labels(doc["metadata"].get("labels"), f"Namespace {name}.metadata.labels")
                namespaces.append(Namespace(name, labels))
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
        except PolicyError as exc:
            raise _located(exc, doc) from None
    return _dedupe(namespaces, "Namespace"), _dedupe(pods, "Pod"), _dedupe(policies, "NetworkPolicy")


def load_policies(source: str | Path | Iterable[str | Path]) -> list[NetworkPolicy]:
    """Only the NetworkPolicy objects of some YAML (one per namespace/name: the later wins, with a warning)."""
    out = []
    for d in load_documents(source):
        if d.get("kind") == "NetworkPolicy":
            try:
                out.append(NetworkPolicy.parse(d))
            except PolicyError as exc:
                raise _located(exc, d) from None
    return _dedupe(out, "NetworkPolicy")
