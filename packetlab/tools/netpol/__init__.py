"""Module 10: Kubernetes NetworkPolicy — model, evaluator, compiler and eBPF enforcer.

* `model` — Namespace / Pod / NetworkPolicy from real YAML, validated like the API server
* `evaluator` — the semantics in plain Python: the truth table
* `compiler` — selectors resolved to addresses, LPM entries per pod and direction
* `enforcer` — bpf/10-netpol.c on every pod's host veth (tc), atomic generation switch
* `probe` — live TCP/UDP probes between pod namespaces
* `world` — all of it together on one lab node
"""

from packetlab.tools.netpol.evaluator import Evaluator, format_matrix
from packetlab.tools.netpol.model import (
    Cluster,
    Namespace,
    NetworkPolicy,
    PodInfo,
    load_documents,
    load_policies,
    parse_objects,
)

__all__ = [
    "Evaluator",
    "format_matrix",
    "Cluster",
    "Namespace",
    "NetworkPolicy",
    "PodInfo",
    "load_documents",
    "load_policies",
    "parse_objects",
]
