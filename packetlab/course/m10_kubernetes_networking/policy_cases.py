"""Run the reconstructed upstream e2e cases (examples/e2e-cases.yaml) on a PolicyWorld.

A case is a list of steps; each step changes policies and/or labels, then the
whole reachability matrix is probed live and compared with the evaluator, and
the evaluator is spot-checked against what the upstream test states.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from packetlab.course.m10_kubernetes_networking.policy_world import Comparison, PolicyWorld
from packetlab.paths import REPO_ROOT
from packetlab.tools.netpol.model import Namespace, NetworkPolicy

CASES_FILE = REPO_ROOT / "packetlab" / "tools" / "netpol" / "examples" / "e2e-cases.yaml"


@dataclass
class Step:
    policies: list[dict[str, Any]] | None = None
    label_pod: dict[str, Any] | None = None
    label_namespace: dict[str, Any] | None = None
    expect: list[tuple[str, str, int, str, bool]] = field(default_factory=list)


@dataclass
class Case:
    name: str
    upstream: str
    probes: list[tuple[int, str]]
    steps: list[Step]


def load_cases(path: str | Path = CASES_FILE) -> list[Case]:
    data = yaml.safe_load(Path(path).read_text())
    cases = []
    for item in data:
        steps = [
            Step(
                s.get("policies"), s.get("label_pod"), s.get("label_namespace"), [tuple(e) for e in s.get("expect", [])]
            )
            for s in item["steps"]
        ]
        cases.append(Case(item["name"], item.get("upstream", ""), [tuple(p) for p in item["probes"]], steps))
    return cases


def render(obj: Any, values: Mapping[str, str]) -> Any:
    """Replace {{ip:ns/pod}} and {{podcidr}} placeholders with this lab's values."""
    if isinstance(obj, str):
        return re.sub(r"\{\{([^}]+)\}\}", lambda m: values[m.group(1).strip()], obj)
    if isinstance(obj, list):
        return [render(x, values) for x in obj]
    if isinstance(obj, dict):
        return {k: render(v, values) for k, v in obj.items()}
    return obj


@dataclass
class StepOutcome:
    case: str
    step: int
    comparison: Comparison
    spot_failures: list[str]

    @property
    def ok(self) -> bool:
        return self.comparison.ok and not self.spot_failures


def run_case(world: PolicyWorld, case: Case, *, pod_cidr: str, timeout: float = 1.0) -> Iterator[StepOutcome]:
    """Apply each step of `case` on `world`; yield the comparison after each."""
    values = {f"ip:{p.key}": p.ip for p in world.cluster.pods if p.ip}
    values["podcidr"] = pod_cidr
    for i, step in enumerate(case.steps):
        if step.label_pod:
            world.cluster.pod(step.label_pod["pod"]).labels = dict(step.label_pod["labels"])
        if step.label_namespace:
            name = step.label_namespace["namespace"]
            world.cluster.namespaces[name] = Namespace(name, dict(step.label_namespace["labels"]))
        if step.policies is not None:
            world.apply([NetworkPolicy.parse(render(p, values)) for p in step.policies])
        elif step.label_pod or step.label_namespace:
            world.apply(world.cluster.policies)  # labels changed: recompile
        ev = world.evaluator
        spot = []
        for src, dst, port, proto, allowed in step.expect:
            got = ev.allowed(src, dst, port, proto)
            if got != allowed:
                spot.append(
                    f"upstream says {src} -> {dst} {proto}/{port} is {'allowed' if allowed else 'denied'}, "
                    f"evaluator: {ev.verdict(src, dst, port, proto).explain()}"
                )
        yield StepOutcome(case.name, i, world.compare(case.probes, timeout=timeout), spot)


def reset(world: PolicyWorld, labels: Mapping[str, dict[str, str]], namespaces: Mapping[str, Namespace]) -> None:
    """Restore the original labels and drop every policy (between cases)."""
    for pod in world.cluster.pods:
        pod.labels = dict(labels[pod.key])
    world.cluster.namespaces.clear()
    world.cluster.namespaces.update(
        {k: Namespace(v.name, {k2: v2 for k2, v2 in v.labels.items()}) for k, v in namespaces.items()}
    )
    world.apply([])
