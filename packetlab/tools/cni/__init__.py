"""Module 10: a CNI plugin that follows the spec, its IPAM, and a runtime driver.

* `plugin` — the ``packetlab`` plugin executable (ADD/DEL/CHECK/VERSION)
* `ipam` — the ``packetlab-ipam`` IPAM plugin with a lease store on disk
* `runtime` — `CniRuntime`: executes conflists the way kubelet/containerd do
* `cluster` — `Node` and `Pod`: a node namespace whose pods are wired by CNI
* `containers` — real runtimes (podman, containerd) using our plugin
* `image` — a tiny local busybox image (no registry)

Names are imported lazily: the plugin executables import only what they need,
so every CNI call starts fast.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "Node": "cluster",
    "Pod": "cluster",
    "make_conflist": "cluster",
    "CniRuntime": "runtime",
    "CniError": "spec",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
