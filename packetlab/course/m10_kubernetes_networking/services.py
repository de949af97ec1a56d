"""Kubernetes ClusterIP Services on the module 09 XDP load balancer (NAT mode).

What kube-proxy (iptables/IPVS mode) or Cilium's eBPF service map do on every
node, done with our own load balancer: a Service's ClusterIP:port is a VIP;
its EndpointSlices list the ready pod backends; a client pod's packet to the
ClusterIP is rewritten to one backend (Maglev, sticky per connection) as it
enters the node from the pod's veth, and the backend's reply is rewritten back.

Input is real Kubernetes YAML, read with plain YAML::

    apiVersion: v1
    kind: Service
    metadata: {name: web, namespace: default}
    spec:
      clusterIP: 10.96.0.10
      selector: {app: web}
      ports: [{name: http, port: 80, targetPort: http, protocol: TCP}]

EndpointSlices (``discovery.k8s.io/v1``) can be given too; if they are not,
`endpoint_slices` derives them from the pods the way the EndpointSlice
controller does (selector match, named targetPort resolved per pod).

    proxy = ServiceProxy(node)                      # the LB on every pod veth of the node
    proxy.apply(load_services("packetlab/tools/cni/examples/web-service.yaml"), pods)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.errors import PacketlabError
from packetlab.show.tables import WORDS, format_table

if TYPE_CHECKING:
    from packetlab.tools.cni.cluster import Node, Pod
    from packetlab.tools.netpol.enforcer import Enforcer
    from packetlab.tools.netpol.model import PodInfo

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MAGLEV_TABLE = 1021  # a prime; plenty for a handful of pods per Service


class ServiceError(PacketlabError):
    """A Service or EndpointSlice that the API server would reject, or we cannot serve."""


@dataclass(frozen=True)
class ServicePort:
    port: int
    target_port: int | str
    protocol: str = "TCP"
    name: str = ""


@dataclass
class Service:
    name: str
    namespace: str
    cluster_ip: str
    ports: list[ServicePort]
    selector: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> Service:
        meta, spec = doc.get("metadata") or {}, doc.get("spec") or {}
        name = meta.get("name")
        where = f"Service {name or '<unnamed>'}"
        if doc.get("apiVersion") != "v1" or not name:
            raise ServiceError(
                f"invalid {where}",
                cause="a Service is apiVersion v1, kind Service, with metadata.name",
                fix="compare with packetlab/tools/cni/examples/web-service.yaml",
            )
        stype = spec.get("type", "ClusterIP")
        if stype != "ClusterIP":
            raise ServiceError(
                f"{where}: type {stype} is not served here",
                cause="this lab implements ClusterIP Services on one node",
                fix="use type: ClusterIP (NodePort/LoadBalancer add node ports and an external LB)",
            )
        cip = spec.get("clusterIP")
        try:
            if not isinstance(cip, str) or ipaddress.ip_address(cip).version != 4:
                raise ValueError("IPv4 only")
        except (ValueError, TypeError):
            raise ServiceError(
                f"{where}: spec.clusterIP {cip!r} is not an IPv4 address",
                cause="the API server would allocate one from the service CIDR; here you choose it",
                fix="set e.g. clusterIP: 10.96.0.10 (headless 'None' Services have no VIP)",
            ) from None
        ports = []
        for i, p in enumerate(spec.get("ports") or []):
            proto = p.get("protocol", "TCP")
            if proto not in ("TCP", "UDP"):
                raise ServiceError(
                    f"{where}: ports[{i}].protocol {proto!r}",
                    cause="the module 09 load balancer balances TCP and UDP",
                    fix="use TCP or UDP",
                )
            if not isinstance(p.get("port"), int) or not 1 <= p["port"] <= 65535:
                raise ServiceError(
                    f"{where}: ports[{i}].port {p.get('port')!r} is not a port number", fix="e.g. port: 80"
                )
            if len(spec["ports"]) > 1 and not p.get("name"):
                raise ServiceError(
                    f"{where}: ports[{i}] needs a name",
                    cause="a Service with several ports must name each (EndpointSlices match them by name)",
                    fix="add name: http (or similar)",
                )
            ports.append(ServicePort(p["port"], p.get("targetPort", p["port"]), proto, p.get("name", "")))
        if not ports:
            raise ServiceError(f"{where} has no ports", fix="add spec.ports: [{port: 80}]")
        return cls(name, meta.get("namespace") or "default", cip, ports, dict(spec.get("selector") or {}))


@dataclass
class Endpoint:
    address: str
    ready: bool = True
    pod: str | None = None


@dataclass
class EndpointSlice:
    service: str  # namespace/name of the owning Service
    ports: list[tuple[str, int, str]]  # (name, port, protocol)
    endpoints: list[Endpoint]
    name: str = ""

    @classmethod
    def parse(cls, doc: Mapping[str, Any]) -> EndpointSlice:
        meta = doc.get("metadata") or {}
        where = f"EndpointSlice {meta.get('name', '<unnamed>')}"
        svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
        if doc.get("apiVersion") != "discovery.k8s.io/v1" or not svc:
            raise ServiceError(
                f"invalid {where}",
                cause=f"an EndpointSlice is discovery.k8s.io/v1 and names its Service in the label {SERVICE_NAME_LABEL}",
                fix=f"add metadata.labels: {{{SERVICE_NAME_LABEL}: <service>}}",
            )
        if doc.get("addressType", "IPv4") != "IPv4":
            raise ServiceError(f"{where}: addressType {doc.get('addressType')}", fix="use addressType: IPv4")
        ports = [(p.get("name", ""), int(p["port"]), p.get("protocol", "TCP")) for p in doc.get("ports") or []]
        endpoints = []
        for e in doc.get("endpoints") or []:
            ready = (e.get("conditions") or {}).get("ready", True) is not False
            ref = e.get("targetRef") or {}
            for addr in e.get("addresses") or []:
                endpoints.append(
                    Endpoint(addr, ready, f"{ref.get('namespace', '')}/{ref.get('name', '')}" if ref else None)
                )
        return cls(f"{meta.get('namespace') or 'default'}/{svc}", ports, endpoints, meta.get("name", ""))


def load_services(source: str | Path | Iterable[str | Path]) -> tuple[list[Service], list[EndpointSlice]]:
    """Services and EndpointSlices from YAML text or files (other kinds are ignored)."""
    from packetlab.tools.netpol.model import load_documents

    services, slices = [], []
    for doc in load_documents(source):
        if doc.get("kind") == "Service":
            services.append(Service.parse(doc))
        elif doc.get("kind") == "EndpointSlice":
            slices.append(EndpointSlice.parse(doc))
    return services, slices


def endpoint_slices(services: Sequence[Service], pods: Sequence[PodInfo]) -> list[EndpointSlice]:
    """What the EndpointSlice controller would publish: the pods a Service selects, with
    each port's targetPort resolved on each pod (named ports may differ per pod, so pods
    with different numbers land in different slices)."""
    out = []
    for svc in services:
        if not svc.selector:
            continue  # selector-less Services get hand-written slices
        groups: dict[tuple, list[Endpoint]] = {}
        for pod in pods:
            if pod.namespace != svc.namespace or not pod.ip:
                continue
            if not all(pod.labels.get(k) == v for k, v in svc.selector.items()):
                continue
            resolved = []
            for sp in svc.ports:
                num = sp.target_port if isinstance(sp.target_port, int) else pod.named_port(sp.target_port, sp.protocol)
                if num is None:
                    break  # the pod does not offer that named port: not an endpoint
                resolved.append((sp.name, num, sp.protocol))
            else:
                groups.setdefault(tuple(resolved), []).append(Endpoint(pod.ip, True, pod.key))
        for i, (ports, eps) in enumerate(sorted(groups.items())):
            out.append(EndpointSlice(svc.key, list(ports), eps, f"{svc.name}-{i}"))
    return out


def lb_config(services: Sequence[Service], slices: Sequence[EndpointSlice]) -> dict[str, Any]:
    """The module 09 load balancer config: one NAT-mode VIP per Service port."""
    vips = []
    for svc in services:
        for sp in svc.ports:
            backends = []
            for sl in slices:
                if sl.service != svc.key:
                    continue
                port = next((p for n, p, proto in sl.ports if n == sp.name and proto == sp.protocol), None)
                if port is None:
                    continue
                backends += [{"address": e.address, "port": port} for e in sl.endpoints if e.ready]
            unique = list({(b["address"], b["port"]): b for b in backends}.values())  # each endpoint once, in order
            vips.append(
                {
                    "name": f"{svc.namespace}.{svc.name}.{sp.name or sp.port}"[:32],
                    "address": svc.cluster_ip,
                    "port": sp.port,
                    "protocol": sp.protocol.lower(),
                    "mode": "nat",
                    "table_size": MAGLEV_TABLE,
                    "health": {"type": "none"},
                    "backends": unique,
                }
            )
    return {"vips": vips}


class ServiceProxy:
    """kube-proxy for one lab node, built on packetlab.tools.lb.LoadBalancer in NAT mode.

    The load balancer's XDP program sits on the node side of every pod's veth:
    a pod's packet to a ClusterIP is translated as it enters the node, the
    backend's reply as it leaves the backend. Pods send with TX checksum
    offload off (see packetlab.tools.lb.disable_tx_checksum: XDP rewrites need full
    checksums). With an `enforcer`, NetworkPolicy is told the Services so
    that translated replies are recognised (policy applies to backend pods).
    """

    def __init__(self, node: Node, *, enforcer: Enforcer | None = None, xdp_mode: str = "native") -> None:
        from packetlab.tools.lb.balancer import LoadBalancer

        self.node, self.enforcer = node, enforcer
        pods = list(node.pods.values())
        if not pods:
            raise ServiceError("the node has no pods yet", fix="add pods first: node.add_pod('web')")
        for pod in pods:
            self._prepare(pod)
        node.host.sysctl("net.ipv4.conf.all.send_redirects", 0)  # translated packets go back out the bridge
        # redirect=False: after the rewrite the kernel forwards (a bridge port cannot take XDP_REDIRECT)
        self.lb = LoadBalancer(node.host, [p.host_veth for p in pods], xdp_mode=xdp_mode, redirect=False)
        self.services: list[Service] = []
        self.slices: list[EndpointSlice] = []

    def _prepare(self, pod: Pod) -> None:
        from packetlab.tools.lb.balancer import disable_tx_checksum

        disable_tx_checksum(pod.host, "eth0")

    def add_pod(self, pod: Pod) -> None:
        """A pod started after the proxy: put the program on its veth too."""
        self._prepare(pod)
        self.lb.attach(pod.host_veth)

    def apply(self, services: Sequence[Service], pods_or_slices: Sequence[Any]) -> dict[str, Any]:
        """Install `services`; the second argument is EndpointSlices, or pods to derive them from."""
        items = list(pods_or_slices)
        slices = items if all(isinstance(x, EndpointSlice) for x in items) else endpoint_slices(services, items)
        config = lb_config(services, slices)
        self.lb.apply(config)
        self.services, self.slices = list(services), slices
        if self.enforcer is not None:
            self.enforcer.set_services(
                [
                    (v["address"], v["port"], v["protocol"].upper(), [(b["address"], b["port"]) for b in v["backends"]])
                    for v in config["vips"]
                ]
            )
        return config

    def table(self) -> str:
        """Service -> backends, the way `kubectl get endpointslices` would show them."""
        rows = []
        for svc in self.services:
            for sp in svc.ports:
                backs = [
                    f"{e.address}:{p}"
                    for sl in self.slices
                    if sl.service == svc.key
                    for n, p, proto in sl.ports
                    if n == sp.name and proto == sp.protocol
                    for e in sl.endpoints
                    if e.ready
                ]
                rows.append(
                    (svc.key, f"{svc.cluster_ip}:{sp.port}/{sp.protocol}", ", ".join(backs) or "(no ready endpoints)")
                )
        return format_table(["service", "cluster IP:port", "backends"], rows, align=WORDS)

    def close(self) -> None:
        self.lb.close()
