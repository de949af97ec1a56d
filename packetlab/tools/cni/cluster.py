"""A Kubernetes node in a lab: one namespace for the node, one per pod, wired by
our CNI plugin through `CniRuntime` — the way kubelet's runtime would do it.

    lab = Lab("k8s").start()
    node = Node(lab, "node", pod_cidr="10.244.1.0/24")          # bridge mode, host-local IPAM
    web = node.add_pod("web", labels={"app": "web"})
    client = node.add_pod("client")
    client.host.ping(web.ip, check=True)

The node's working files (plugin wrappers, host-local's leases, the runtime's
result cache) live in a temporary directory removed with the lab.
"""

from __future__ import annotations

import contextlib
import ipaddress
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.errors import PacketlabError
from packetlab.tools.cni import install
from packetlab.tools.cni.runtime import CniRuntime
from packetlab.tools.cni.spec import CniError
from packetlab.topo.netns import NETNS_DIR

if TYPE_CHECKING:
    from packetlab.topo.host import Host
    from packetlab.topo.lab import Lab

IPAM_TYPES = ("host-local", "packetlab-ipam")


def make_conflist(
    name: str,
    *,
    pod_cidr: str,
    mode: str = "bridge",
    ipam: str = "host-local",
    data_dir: str | Path,
    bridge: str = "plbr0",
    chain: Sequence[Mapping[str, Any]] = (),
    mtu: int = 1500,
) -> dict[str, Any]:
    """A conflist with our plugin first, then `chain` (tuning, bandwidth, portmap ...)."""
    net = ipaddress.ip_network(pod_cidr)
    if ipam == "host-local":
        ipam_conf: dict[str, Any] = {
            "type": "host-local",
            "ranges": [[{"subnet": str(net)}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(Path(data_dir) / "host-local"),
        }
    elif ipam == "packetlab-ipam":
        ipam_conf = {
            "type": "packetlab-ipam",
            "subnet": str(net),
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(Path(data_dir) / "packetlab-ipam"),
        }
    else:
        raise PacketlabError(f"unknown IPAM {ipam!r}", fix=f"use one of {', '.join(IPAM_TYPES)}")
    first = {"type": "packetlab", "mode": mode, "mtu": mtu, "ipam": ipam_conf}
    if mode == "bridge":
        first["bridge"] = bridge
    return {"cniVersion": "1.0.0", "name": name, "plugins": [first, *[dict(p) for p in chain]]}


@dataclass
class Pod:
    """A pod: its namespace (a lab host), its address, labels and declared ports."""

    name: str
    namespace: str
    host: Host
    container_id: str
    ip: str
    result: dict[str, Any]
    labels: dict[str, str] = field(default_factory=dict)
    ports: list[dict[str, Any]] = field(default_factory=list)  # container ports: name, containerPort, protocol

    @property
    def netns(self) -> str:
        return f"{NETNS_DIR}/{self.host.namespace}"

    @property
    def host_veth(self) -> str:
        from packetlab.tools.cni.wiring import host_veth_name

        return host_veth_name(self.container_id, "eth0")

    def __repr__(self) -> str:
        return f"<Pod {self.namespace}/{self.name} {self.ip}>"


class Node:
    """A lab node namespace whose pods get their network from a CNI conflist."""

    def __init__(
        self,
        lab: Lab,
        name: str = "node",
        *,
        pod_cidr: str = "10.244.1.0/24",
        mode: str = "bridge",
        ipam: str = "host-local",
        chain: Sequence[Mapping[str, Any]] = (),
        conflist: Mapping[str, Any] | None = None,
        network: str = "podnet",
    ) -> None:
        self.lab = lab
        self.host = lab.host(name)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"packetlab-{lab.name}-{name}-"))
        lab.track_workdir(self.workdir)  # a lab that dies is cleaned of it too (guardian, `packetlab clean`)
        lab.track(self)  # removed (with its leases and cache) when the lab closes
        self.attached = True
        self.bin_dir = self.workdir / "bin"
        install.install(self.bin_dir)
        self.bin_dirs = [str(self.bin_dir), install.reference_dir()]
        self.pod_cidr = pod_cidr
        self.mode = mode
        self.conflist = (
            dict(conflist)
            if conflist
            else make_conflist(network, pod_cidr=pod_cidr, mode=mode, ipam=ipam, data_dir=self.workdir, chain=chain)
        )
        self.runtime = CniRuntime(
            self.host.namespace, self.conflist, bin_dirs=self.bin_dirs, cache_dir=self.workdir / "cache"
        )
        self.pods: dict[str, Pod] = {}

    @property
    def name(self) -> str:
        return self.host.name

    def add_pod(
        self,
        name: str,
        *,
        namespace: str = "default",
        labels: Mapping[str, str] | None = None,
        ports: Sequence[Mapping[str, Any]] = (),
        capability_args: Mapping[str, Any] | None = None,
    ) -> Pod:
        """Create the pod's namespace and have the CNI chain wire it (ADD)."""
        host = self.lab.host(name)
        container_id = f"{self.lab.name}-{name}"
        netns = f"{NETNS_DIR}/{host.namespace}"
        try:
            result = self.runtime.add(
                container_id,
                netns,
                "eth0",
                capability_args=capability_args,
                args={
                    "IgnoreUnknown": "1",
                    "K8S_POD_NAMESPACE": namespace,
                    "K8S_POD_NAME": name,
                    "K8S_POD_INFRA_CONTAINER_ID": container_id,
                },
            )
        except CniError as exc:
            raise PacketlabError(
                f"CNI ADD for pod {namespace}/{name} failed",
                cause=str(exc),
                fix="read the plugin's message; runtime.calls lists every plugin call",
            ) from exc
        ip = next(i["address"].split("/")[0] for i in result["ips"] if ":" not in i["address"])
        pod = Pod(name, namespace, host, container_id, ip, result, dict(labels or {}), [dict(p) for p in ports])
        self.pods[name] = pod
        return pod

    def delete_pod(self, pod: Pod | str) -> None:
        """CNI DEL for the pod (its namespace stays until the lab closes)."""
        pod = self.pods.pop(pod) if isinstance(pod, str) else self.pods.pop(pod.name)
        self.runtime.delete(pod.container_id, pod.netns, "eth0")

    def check_pod(self, pod: Pod) -> None:
        self.runtime.check(pod.container_id, pod.netns, "eth0")

    def gateway(self) -> str | None:
        """The pods' gateway on the node (bridge mode), from the first pod's result."""
        for pod in self.pods.values():
            for ip in pod.result["ips"]:
                if ip.get("gateway"):
                    return ip["gateway"]
        return None

    def detach(self) -> None:
        """Lab cleanup hook: forget the working directory (namespaces go with the lab)."""
        if not self.attached:
            return
        self.attached = False
        with contextlib.suppress(OSError):
            shutil.rmtree(self.workdir)

    def __repr__(self) -> str:
        return f"<Node {self.name} {self.mode} {self.pod_cidr}: {len(self.pods)} pods>"
