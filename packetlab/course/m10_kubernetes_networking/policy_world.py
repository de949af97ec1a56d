"""A policy lab on one node: pods from YAML, wired by CNI, answering probes,
policed by the eBPF enforcer, and the evaluator's truth table to compare with.

    world = PolicyWorld(node, "packetlab/tools/netpol/examples/cluster.yaml")
    world.apply(load_policies("packetlab/tools/netpol/examples/default-deny.yaml"))
    cmp = world.compare([(80, "TCP"), (80, "UDP")])
    print(cmp.table()); assert cmp.ok
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from packetlab.tools.netpol.enforcer import Enforcer
from packetlab.tools.netpol.evaluator import Evaluator, format_matrix
from packetlab.tools.netpol.model import Cluster, Namespace, NetworkPolicy, PodInfo, load_documents, parse_objects
from packetlab.tools.netpol.probe import ProbeResult, probe_all, probe_matrix
from packetlab.topo import servers as launch

if TYPE_CHECKING:
    from packetlab.tools.cni.cluster import Node

Key = tuple[str, str, int, str]


def host_name(pod: PodInfo, lab_name: str) -> str:
    """The lab host (namespace) name of a pod: namespace-name ('x-a'), shortened to fit
    the 15 characters of ``<lab>-<host>`` ('sh-client'), else a hash."""
    import hashlib

    room = 15 - len(lab_name) - 1
    for candidate in (f"{pod.namespace}-{pod.name}", f"{pod.namespace[:2]}-{pod.name}"):
        if len(candidate) <= room:
            return candidate
    return "p" + hashlib.sha256(pod.key.encode()).hexdigest()[: max(4, room - 1)]


@dataclass
class Comparison:
    """Evaluator's expectation vs live probes over the same matrix."""

    expected: dict[Key, bool]
    live: dict[Key, bool]
    answers: dict[Key, str]

    @property
    def mismatches(self) -> list[Key]:
        return [k for k in self.expected if self.expected[k] != self.live.get(k)]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def table(self) -> str:
        """Upstream-style reachability tables per port; '!' marks a live result that differs."""
        probes = sorted({(k[2], k[3]) for k in self.expected})
        parts = []
        for port, proto in probes:
            parts.append(format_matrix(self.expected, port, proto, other=self.live))
        return "\n\n".join(parts)

    def describe_mismatches(self) -> str:
        return "\n".join(
            f"{s} -> {d} {proto}/{port}: expected {'allow' if self.expected[(s, d, port, proto)] else 'deny'}, "
            f"live {'allow' if self.live.get((s, d, port, proto)) else 'deny'}"
            for s, d, port, proto in self.mismatches
        )


class PolicyWorld:
    """Pods + probe server + enforcer + evaluator on one lab node."""

    def __init__(
        self,
        node: Node,
        objects: str | Path | Iterable[str | Path] | None = None,
        *,
        namespaces: Sequence[Namespace] = (),
        pods: Sequence[PodInfo] = (),
        tcp_ports: Sequence[int] = (80, 81),
        udp_ports: Sequence[int] = (80, 81),
        echo_ports: Sequence[int] = (),
        enforce: bool = True,
    ) -> None:
        self.node = node
        ns_list, pod_list = list(namespaces), list(pods)
        if objects is not None:
            docs = [d for d in load_documents(objects) if d.get("kind") in ("Namespace", "Pod", "NetworkPolicy")]
            n, p, _ = parse_objects(docs)
            ns_list += n
            pod_list += p
        self.pods: list[PodInfo] = []
        for info in pod_list:
            pod = node.add_pod(
                host_name(info, node.lab.name), namespace=info.namespace, labels=info.labels, ports=info.as_ports_spec()
            )
            self.pods.append(PodInfo(info.name, info.namespace, dict(info.labels), list(info.ports), pod.ip))
        self.lab_pods = {info.key: node.pods[host_name(info, node.lab.name)] for info in self.pods}
        node_ips = [a.split("/")[0] for a in node.host.addresses()]
        self.cluster = Cluster({n.name: n for n in ns_list}, self.pods, [], node_ips)
        self.tcp_ports, self.udp_ports, self.echo_ports = list(tcp_ports), list(udp_ports), list(echo_ports)
        self.server = self._start_server()
        self.enforcer: Enforcer | None = None
        if enforce:
            self.enforcer = Enforcer(node)
            self.enforcer.attach(self.lab_pods)
            self.enforcer.apply(self.cluster)

    def _start_server(self) -> launch.Server:
        argv = launch.python_module(
            "packetlab.tools.netpol.probe",
            "serve",
            "--tcp",
            ",".join(map(str, self.tcp_ports)),
            "--udp",
            ",".join(map(str, self.udp_ports)),
            "--echo",
            ",".join(map(str, self.echo_ports)),
        )
        for key, pod in self.lab_pods.items():
            argv += ["--pod", f"{key}={pod.netns}"]
        return launch.start(self.node.host, argv, timeout=20)

    # ---- policy ---------------------------------------------------------------------------------------
    @property
    def policies(self) -> list[NetworkPolicy]:
        return self.cluster.policies

    def apply(self, policies: Sequence[NetworkPolicy]) -> None:
        """Replace the policy set (the evaluator and the enforcer both follow)."""
        self.cluster = self.cluster.with_policies(policies)
        if self.enforcer is not None:
            self.enforcer.apply(self.cluster)

    def relabel(self, *, pod: str | None = None, namespace: str | None = None, labels: dict[str, str]) -> None:
        """Change a pod's or namespace's labels (as `kubectl label` would); policy follows."""
        if pod is not None:
            self.cluster.pod(pod).labels = dict(labels)
        if namespace is not None:
            self.cluster.namespaces[namespace] = Namespace(namespace, dict(labels))
        if self.enforcer is not None:
            self.enforcer.apply(self.cluster)

    @property
    def evaluator(self) -> Evaluator:
        return Evaluator(self.cluster)

    # ---- probing --------------------------------------------------------------------------------------
    def compare(
        self,
        probes: Sequence[tuple[int, str]] = ((80, "TCP"),),
        *,
        pods: Sequence[str] | None = None,
        timeout: float = 1.5,
    ) -> Comparison:
        """Probe every pod pair on every (port, protocol); compare with the evaluator."""
        chosen = [p for p in self.cluster.pods if pods is None or p.key in pods]
        expected = self.evaluator.matrix(probes, chosen)
        labels = {f"{s}>{d}:{port}/{proto}": (s, d, port, proto) for s, d, port, proto in expected}
        by_key = {p.key: p for p in self.cluster.pods}
        plan = [
            (label, self.lab_pods[s].host.namespace, by_key[d].address, port, proto)
            for label, (s, d, port, proto) in labels.items()
        ]
        results = probe_matrix(plan, {label: expected[k] for label, k in labels.items()}, timeout=timeout)
        live = {k: results[label].ok for label, k in labels.items()}
        answers = {k: results[label].answer for label, k in labels.items()}
        return Comparison(expected, live, answers)

    def probe_vip(
        self, src: str, address: str, port: int, protocol: str = "TCP", *, count: int = 1, timeout: float = 1.5
    ) -> list[ProbeResult]:
        """`count` probes from pod `src` to address:port (e.g. a Service's ClusterIP); each
        answer names the pod that served it."""
        ns = self.lab_pods[self.cluster.pod(src).key].host.namespace
        plan = [(f"{i}", ns, address, port, protocol) for i in range(count)]
        results = probe_all(plan, timeout=timeout)
        return [results[f"{i}"] for i in range(count)]


def flow_under_updates(
    world: PolicyWorld,
    src: str,
    dst: str,
    policy_sets: Sequence[Sequence[NetworkPolicy]],
    *,
    updates: int = 40,
    port: int = 80,
    protocol: str = "UDP",
) -> dict[str, object]:
    """Keep a request/response flow from pod `src` to pod `dst`:`port` running while the
    policy set is replaced `updates` times (cycling through `policy_sets`, each of which
    should allow the flow). UDP: one socket, a datagram and its answer per round trip;
    TCP: one connection to a probe-server echo port, kept open throughout. Returns round
    trips done, errors seen and packets the enforcer denied on that flow — both zero
    when updates are atomic."""
    import socket
    import threading

    from packetlab.topo import netns

    server = world.cluster.pod(dst)
    tcp = protocol.upper() == "TCP"
    with netns.entered(world.lab_pods[world.cluster.pod(src).key].host.namespace):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM if tcp else socket.SOCK_DGRAM)
    sock.settimeout(2)
    sock.connect((server.ip, port))
    client_ip, sport = sock.getsockname()
    name = "TCP" if tcp else "UDP"

    def denied_packets() -> int:
        # The whole 5-tuple, and packets counted before vs after: the enforcer's table
        # still holds earlier labs' denied probes, and one of them may share this
        # ephemeral source port by chance.
        flows = world.enforcer.denied_flows() if world.enforcer else []
        return sum(
            int(f["packets"])
            for f in flows
            if (f["src"], f["dst"], f["sport"], f["dport"], f["proto"]) == (client_ip, server.ip, sport, port, name)
        )

    denied_before = denied_packets()
    stop, errors, done = threading.Event(), [], [0]

    def traffic() -> None:
        while not stop.is_set():
            try:
                sock.send(b"ping\n")
                answer = sock.recv(64)
                if tcp and answer != b"ping\n":
                    errors.append(f"echo mismatch: {answer!r}")
                done[0] += 1
            except OSError as exc:
                errors.append(f"after {done[0]} round trips: {exc}")
                return
            time.sleep(0.002)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    try:
        for i in range(updates):
            world.apply(policy_sets[i % len(policy_sets)])
        time.sleep(0.1)
    finally:
        stop.set()
        thread.join(5)
        sock.close()
    denied = denied_packets() - denied_before
    return {"updates": updates, "round_trips": done[0], "errors": errors, "denied_packets": denied}
