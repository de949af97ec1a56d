"""Module 10: a CNI plugin that follows the spec, its IPAM, and a runtime driver.

* `plugin` — the ``packetlab`` plugin executable (ADD/DEL/CHECK/VERSION)
* `ipam` — the ``packetlab-ipam`` IPAM plugin with a lease store on disk
* `runtime` — `CniRuntime`: executes conflists the way kubelet/containerd do
* `cluster` — `Node` and `Pod`: a node namespace whose pods are wired by CNI
* `containers` — real runtimes (podman, containerd) using our plugin
"""
from .cluster import Node, Pod, make_conflist
from .runtime import CniRuntime
from .spec import CniError

__all__ = ["Node", "Pod", "make_conflist", "CniRuntime", "CniError"]
