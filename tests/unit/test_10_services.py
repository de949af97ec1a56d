"""Module 10, no kernel: ClusterIP Services — YAML parsing like the API server and EndpointSlices
derived like the controller."""

from __future__ import annotations

import pytest

from packetlab.course.m10_kubernetes_networking.services import (
    EndpointSlice,
    Service,
    ServiceError,
    endpoint_slices,
    lb_config,
    load_services,
)
from packetlab.tools.netpol.model import ContainerPort, PodInfo

EXAMPLE = "packetlab/tools/cni/examples/web-service.yaml"


SVC = "apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"


@pytest.mark.parametrize(
    "spec, complaint",
    [
        ("spec: {clusterIP: 10.96.0.1, type: NodePort, ports: [{port: 80}]}", "NodePort"),
        ("spec: {clusterIP: None, ports: [{port: 80}]}", "clusterIP"),
        ("spec: {clusterIP: 10.96.0.1, ports: [{port: 80, protocol: SCTP}]}", "protocol"),
        ("spec: {clusterIP: 10.96.0.1, ports: [{port: 80, name: a}, {port: 81}]}", "needs a name"),
        ("spec: {clusterIP: 10.96.0.1, ports: []}", "no ports"),
        ("spec: {clusterIP: 10.96.0.1, ports: [{port: 0}]}", "port number"),
    ],
)
def test_invalid_services_are_rejected(spec, complaint):
    with pytest.raises(ServiceError) as e:
        load_services(SVC + spec)
    assert complaint in str(e.value)


def test_example_parses():
    services, slices = load_services(EXAMPLE)
    assert [s.key for s in services] == ["shop/web"] and slices == []
    web = services[0]
    assert web.cluster_ip == "10.96.0.10" and web.selector == {"app": "web"}
    assert [(p.port, p.target_port, p.protocol) for p in web.ports] == [(80, "http", "TCP"), (53, "dns", "UDP")]


def test_endpoint_slices_resolve_named_ports_per_pod():
    svc = Service("web", "shop", "10.96.0.10", [*load_services(EXAMPLE)[0][0].ports], {"app": "web"})
    pods = [
        PodInfo(
            "a", "shop", {"app": "web"}, [ContainerPort(80, "TCP", "http"), ContainerPort(81, "UDP", "dns")], "10.0.0.2"
        ),
        PodInfo(
            "b",
            "shop",
            {"app": "web"},
            [ContainerPort(8080, "TCP", "http"), ContainerPort(81, "UDP", "dns")],
            "10.0.0.3",
        ),
        PodInfo("c", "shop", {"app": "web"}, [ContainerPort(80, "TCP", "http")], "10.0.0.4"),  # no "dns": no endpoint
        PodInfo(
            "d",
            "other",
            {"app": "web"},
            [ContainerPort(80, "TCP", "http"), ContainerPort(81, "UDP", "dns")],
            "10.0.0.5",
        ),
        PodInfo(
            "e", "shop", {"app": "db"}, [ContainerPort(80, "TCP", "http"), ContainerPort(81, "UDP", "dns")], "10.0.0.6"
        ),
    ]
    slices = endpoint_slices([svc], pods)
    assert len(slices) == 2  # two different resolutions of "http"
    by_port = {sl.ports[0][1]: [e.address for e in sl.endpoints] for sl in slices}
    assert by_port == {80: ["10.0.0.2"], 8080: ["10.0.0.3"]}
    cfg = lb_config([svc], slices)
    http = next(v for v in cfg["vips"] if v["port"] == 80)
    assert http["mode"] == "nat" and http["address"] == "10.96.0.10" and http["protocol"] == "tcp"
    assert sorted((b["address"], b["port"]) for b in http["backends"]) == [("10.0.0.2", 80), ("10.0.0.3", 8080)]


def test_endpoint_slice_yaml_and_readiness():
    services, slices = load_services(
        SVC
        + """spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-abc, namespace: shop, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- addresses: [10.0.0.2]
  conditions: {ready: true}
  targetRef: {kind: Pod, namespace: shop, name: a}
- addresses: [10.0.0.3]
  conditions: {ready: false}
"""
    )
    assert isinstance(slices[0], EndpointSlice) and slices[0].service == "shop/web"
    backends = lb_config(services, slices)["vips"][0]["backends"]
    assert backends == [{"address": "10.0.0.2", "port": 8080}]  # not-ready endpoints get no traffic
    with pytest.raises(ServiceError):
        load_services("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: x}\n")
