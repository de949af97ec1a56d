"""Module 10: the CNI plugin, driven exactly as a runtime drives it (env + stdin),
against real node and pod namespaces — every error path included — with the
reference `bridge` plugin as the oracle for the result format."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys

import pytest

from packetlab.paths import REPO_ROOT
from packetlab.tools.cni import CniRuntime, Node, make_conflist, spec
from packetlab.tools.cni import ipam as own_ipam
from packetlab.tools.cni.install import install, reference_dir
from packetlab.tools.cni.spec import CniError, Environment
from packetlab.tools.cni.wiring import host_veth_name
from packetlab.topo import netns
from packetlab.topo import servers as launch


# ---- pure spec handling ------------------------------------------------------------------------
def test_environment_errors_use_spec_codes():
    with pytest.raises(CniError) as e:
        Environment.from_environ({})
    assert e.value.code == spec.INVALID_ENVIRONMENT and "CNI_COMMAND" in e.value.msg
    with pytest.raises(CniError) as e:
        Environment.from_environ({"CNI_COMMAND": "ADDD"})
    assert e.value.code == spec.INVALID_ENVIRONMENT
    with pytest.raises(CniError) as e:
        Environment.from_environ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"})
    assert e.value.code == spec.INVALID_ENVIRONMENT and "CNI_NETNS" in e.value.msg
    env = Environment.from_environ(
        {
            "CNI_COMMAND": "DEL",
            "CNI_CONTAINERID": "c",
            "CNI_IFNAME": "eth0",
            "CNI_PATH": "/a::/b",
            "CNI_NETNS": "",
            "CNI_ARGS": "K8S_POD_NAME=web;X=1",
        }
    )
    assert env.path == ["/a", "/b"] and env.netns == "" and env.args == {"K8S_POD_NAME": "web", "X": "1"}
    with pytest.raises(CniError):
        Environment.from_environ(
            {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_IFNAME": "x" * 16, "CNI_PATH": "/a", "CNI_NETNS": "/n"}
        )


def test_config_decoding_and_versions():
    with pytest.raises(CniError) as e:
        spec.parse_config(b"{not json")
    assert e.value.code == spec.DECODING_FAILURE
    with pytest.raises(CniError) as e:
        spec.parse_config(b"[1, 2]")
    assert e.value.code == spec.DECODING_FAILURE
    with pytest.raises(CniError) as e:
        spec.check_version({"cniVersion": "9.9.9"})
    assert e.value.code == spec.INCOMPATIBLE_VERSION and "9.9.9" in e.value.msg
    with pytest.raises(CniError) as e:
        spec.check_version({})
    assert e.value.code == spec.INVALID_CONFIG
    result = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": "10.0.0.2/24", "interface": 0}],
    }
    old = spec.convert_result(result, "0.4.0")
    assert old["cniVersion"] == "0.4.0" and old["ips"][0]["version"] == "4"
    assert "version" not in spec.convert_result(old, "1.0.0")["ips"][0]
    assert spec.validate_result(result) == []
    assert spec.validate_result(
        {"cniVersion": "1.0.0", "interfaces": [], "ips": [{"address": "10.0.0.2", "interface": 3}]}
    )


def test_error_object_shape():
    err = CniError(7, "bad", "details here").to_dict("1.0.0")
    assert err == {"cniVersion": "1.0.0", "code": 7, "msg": "bad", "details": "details here"}


# ---- own IPAM: a lease store that survives restarts --------------------------------------------
def _ipam_conf(tmp_path, subnet="10.77.0.0/29", **extra):
    return {
        "cniVersion": "1.0.0",
        "name": "t10net",
        "ipam": {"type": "packetlab-ipam", "subnet": subnet, "dataDir": str(tmp_path), **extra},
    }


def _run_ipam(conf, command, cid, ifname="eth0"):
    env = {
        **os.environ,
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_IFNAME": ifname,
        "CNI_PATH": "/nonexistent",
        "CNI_NETNS": "/run/netns/whatever",
        "PYTHONPATH": str(REPO_ROOT),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "packetlab.tools.cni.ipam"],
        input=json.dumps(conf).encode(),
        env=env,
        capture_output=True,
        timeout=30,
    )
    return proc.returncode, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def test_own_ipam_leases_survive_restarts_and_release(tmp_path):
    conf = _ipam_conf(tmp_path)
    rc, a = _run_ipam(conf, "ADD", "pod-a")  # every call is a new process: a "restart"
    assert rc == 0 and a["ips"][0] == {"address": "10.77.0.2/29", "gateway": "10.77.0.1"}
    rc, b = _run_ipam(conf, "ADD", "pod-b")
    assert b["ips"][0]["address"] == "10.77.0.3/29"
    rc, again = _run_ipam(conf, "ADD", "pod-a")  # same container + ifname: same lease
    assert again["ips"][0]["address"] == "10.77.0.2/29"
    leases = own_ipam.LeaseStore(tmp_path, "t10net").leases()
    assert {v["id"] for v in leases.values()} == {"pod-a", "pod-b"}
    assert _run_ipam(conf, "CHECK", "pod-a")[0] == 0
    assert _run_ipam(conf, "DEL", "pod-a") == (0, None)
    assert _run_ipam(conf, "DEL", "pod-a") == (0, None)  # DEL is idempotent
    rc, err = _run_ipam(conf, "CHECK", "pod-a")
    assert rc == 1 and err["code"] == spec.CHECK_FAILED
    rc, c = _run_ipam(conf, "ADD", "pod-c")  # round robin: not the just-freed .2
    assert c["ips"][0]["address"] == "10.77.0.4/29"


def test_own_ipam_exhaustion_and_bad_config(tmp_path):
    conf = _ipam_conf(tmp_path, subnet="10.77.1.0/29")  # .2 .. .6 usable (.1 is the gateway)
    got = [_run_ipam(conf, "ADD", f"p{i}")[1]["ips"][0]["address"] for i in range(5)]
    assert len(set(got)) == 5
    rc, err = _run_ipam(conf, "ADD", "p-too-many")
    assert rc == 1 and err["code"] == spec.IPAM_EXHAUSTED and "no free address" in err["msg"]
    rc, err = _run_ipam(_ipam_conf(tmp_path, subnet="10.77.1.0/28"), "ADD", "x")  # store belongs to /29
    assert rc == 1 and err["code"] == spec.INVALID_CONFIG
    rc, err = _run_ipam(_ipam_conf(tmp_path / "y", subnet="300.1.1.0/24"), "ADD", "x")
    assert rc == 1 and err["code"] == spec.INVALID_CONFIG
    rc, err = _run_ipam(_ipam_conf(tmp_path / "z", subnet="10.1.0.0/24", rangeStart="10.2.0.1"), "ADD", "x")
    assert rc == 1 and "outside subnet" in err["msg"]


def test_own_ipam_concurrent_adds_get_distinct_addresses(tmp_path):
    conf = _ipam_conf(tmp_path, subnet="10.77.2.0/26")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _run_ipam(conf, "ADD", f"c{i}"), range(16)))
    addresses = [r[1]["ips"][0]["address"] for r in results]
    assert all(r[0] == 0 for r in results) and len(set(addresses)) == 16


# ---- the plugin on real namespaces --------------------------------------------------------------
def _env(node: Node, command: str, cid: str, netns_path: str, **over):
    env = {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns_path,
        "CNI_IFNAME": "eth0",
        "CNI_PATH": ":".join(node.bin_dirs),
        "CNI_ARGS": "",
    }
    env.update(over)
    return env


def _plugin_conf(node: Node, **over):
    conf = {k: v for k, v in node.conflist["plugins"][0].items()}
    conf.update({"cniVersion": "1.0.0", "name": node.conflist["name"]})
    conf.update(over)
    return conf


def _links(host) -> set[str]:
    return {link["ifname"] for link in json.loads(host.run(["ip", "-j", "link"]).stdout)}


def test_version_command(lab):
    node = Node(lab, "node")
    ans = node.runtime.raw("packetlab", {"cniVersion": "1.0.0"}, {"CNI_COMMAND": "VERSION"})
    assert ans.returncode == 0
    assert ans.json == {"cniVersion": "1.0.0", "supportedVersions": ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]}


def test_bridge_mode_add_check_del_and_oracle(lab):
    """ADD gives a spec-shaped result (same shape as the reference bridge plugin's), the pods
    talk to each other and to the gateway, CHECK passes, DEL is idempotent."""
    node = Node(lab, "node", pod_cidr="10.244.1.0/24")
    a, b = node.add_pod("a"), node.add_pod("b")
    assert spec.validate_result(a.result) == []
    assert [i["name"] for i in a.result["interfaces"]] == ["plbr0", a.host_veth, "eth0"]
    assert a.result["ips"][0]["interface"] == 2 and a.result["interfaces"][2]["sandbox"] == a.netns
    assert a.result["ips"][0]["gateway"] == "10.244.1.1"
    assert a.host.ping(b.ip).ok and a.host.ping("10.244.1.1").ok
    assert a.host.mac("eth0") == a.result["interfaces"][2]["mac"]
    # oracle: the reference bridge plugin on another pod gives a result of the same shape
    ref_pod = lab.host("ref")
    ref_conf = {
        "cniVersion": "1.0.0",
        "name": "refnet",
        "type": "bridge",
        "bridge": "refbr0",
        "isGateway": True,
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": "10.245.0.0/24"}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(node.workdir / "ref"),
        },
    }
    ref = CniRuntime(node.host.namespace, ref_conf, bin_dirs=node.bin_dirs, cache_dir=node.workdir / "refcache").add(
        "ref1", f"/run/netns/{ref_pod.namespace}"
    )
    assert set(a.result) - {"dns"} == set(ref) - {"dns"}
    assert [set(i) for i in a.result["interfaces"]] == [set(i) for i in ref["interfaces"]]
    assert [set(i) for i in a.result["ips"]] == [set(i) for i in ref["ips"]]
    assert [i["interface"] for i in a.result["ips"]] == [i["interface"] for i in ref["ips"]]
    node.check_pod(a)
    node.delete_pod(b)
    assert b.host_veth not in _links(node.host) and "eth0" not in _links(b.host)
    node.runtime.delete(b.container_id, b.netns)  # again: still fine
    node.runtime.delete(b.container_id, "")  # empty CNI_NETNS (spec 1.0): fine
    assert not list((node.workdir / "host-local" / "podnet").glob(b.ip)), "host-local lease not released"
    assert a.host.ping("10.244.1.1").ok  # the other pod is untouched


def test_dual_stack_in_bridge_mode(lab, tmp_path):
    conf = make_conflist("podnet", pod_cidr="10.244.9.0/24", data_dir=tmp_path)
    conf["plugins"][0]["ipam"]["ranges"] = [[{"subnet": "10.244.9.0/24"}], [{"subnet": "fd00:244:9::/64"}]]
    conf["plugins"][0]["ipam"]["routes"] = [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]
    node = Node(lab, "node", conflist=conf)
    a, b = node.add_pod("a"), node.add_pod("b")
    v6 = [i for i in b.result["ips"] if ":" in i["address"]]
    assert len(b.result["ips"]) == 2 and v6[0]["gateway"] == "fd00:244:9::1"
    assert "default via fd00:244:9::1 dev eth0" in a.host.ip("-6 route")
    assert a.host.ping(v6[0]["address"].split("/")[0]).ok and a.host.ping(b.ip).ok
    node.check_pod(a)


def test_routed_mode_proxy_arp(lab):
    node = Node(lab, "node", mode="routed", ipam="packetlab-ipam", pod_cidr="10.244.2.0/24")
    a, b = node.add_pod("a"), node.add_pod("b")
    assert a.result["ips"][0]["address"].endswith("/32") and a.result["ips"][0]["gateway"] == "169.254.1.1"
    assert [i["name"] for i in a.result["interfaces"]] == [a.host_veth, "eth0"]
    assert "default via 169.254.1.1 dev eth0" in a.host.ip("route")
    assert f"{a.ip} dev {a.host_veth}" in node.host.ip("route")
    assert node.host.sysctl(f"net.ipv4.conf.{a.host_veth}.proxy_arp") == "1"
    assert a.host.ping(b.ip, count=2).ok
    neigh = a.host.ip("neigh show 169.254.1.1")
    assert node.host.mac(a.host_veth) in neigh, "the node's veth should answer ARP for the gateway (proxy ARP)"
    node.check_pod(a)
    node.delete_pod(a)
    assert a.ip not in node.host.ip("route")
    assert a.ip not in own_ipam.LeaseStore(node.workdir / "packetlab-ipam", "podnet").leases()


def test_error_paths_leave_nothing_behind(lab):
    """Every error: a spec error object on stdout, a non-zero exit, and no half-wired pod."""
    node = Node(lab, "node")
    pod = lab.host("p")
    netns_path = f"/run/netns/{pod.namespace}"
    rt = node.runtime
    before = {"node": _links(node.host), "pod": _links(pod)}

    def expect(code, stdin, **env_over):
        ans = rt.raw("packetlab", stdin, _env(node, "ADD", "err1", netns_path, **env_over))
        assert ans.returncode != 0, ans
        err = ans.json
        assert err["code"] == code, err
        assert err["msg"] and err["cniVersion"] in spec.SUPPORTED_VERSIONS
        assert _links(node.host) - {"plbr0"} == before["node"] - {"plbr0"}, "a veth was left on the node"
        assert _links(pod) == before["pod"], "something was left in the pod"
        return err

    conf = _plugin_conf(node)
    expect(spec.INVALID_ENVIRONMENT, conf, CNI_COMMAND=None)
    expect(spec.INVALID_ENVIRONMENT, conf, CNI_CONTAINERID="")
    expect(spec.INVALID_ENVIRONMENT, conf, CNI_NETNS="")
    expect(spec.INVALID_ENVIRONMENT, conf, CNI_PATH="")
    expect(spec.DECODING_FAILURE, '{"cniVersion": ')
    expect(spec.INCOMPATIBLE_VERSION, {**conf, "cniVersion": "2.0.0"})
    expect(spec.INVALID_CONFIG, {k: v for k, v in conf.items() if k != "cniVersion"})
    expect(spec.INVALID_CONFIG, {k: v for k, v in conf.items() if k != "ipam"})
    expect(spec.INVALID_CONFIG, {**conf, "mode": "overlay"})
    expect(spec.UNSUPPORTED_FIELD, {**conf, "ipMasq": True})
    expect(spec.UNKNOWN_CONTAINER, conf, CNI_NETNS=f"/run/netns/{lab.name}-does-not-exist")
    assert not netns.exists(f"{lab.name}-does-not-exist"), "the plugin must never create a namespace"
    err = expect(spec.PLUGIN_NOT_FOUND, {**conf, "ipam": {**conf["ipam"], "type": "no-such-ipam"}})
    assert "no-such-ipam" in err["msg"]
    # IPAM failure: host-local with a range that has no free address
    full = {
        **conf,
        "ipam": {
            "type": "host-local",
            "dataDir": str(node.workdir / "full"),
            "ranges": [[{"subnet": "10.99.0.0/30", "rangeStart": "10.99.0.2", "rangeEnd": "10.99.0.2"}]],
        },
    }
    assert rt.raw("packetlab", full, _env(node, "ADD", "filler", netns_path)).returncode == 0
    rt.raw("packetlab", full, _env(node, "DEL", "filler", netns_path))
    lab.host("p2")
    assert rt.raw("packetlab", full, _env(node, "ADD", "filler", f"/run/netns/{lab.name}-p2")).returncode == 0
    before["node"] = _links(node.host)  # the filler pod's veth is legitimately there
    err = expect(999, full)  # host-local's own code and message are passed through
    assert "no IP addresses available" in err["msg"] or "range" in err["msg"]
    # the interface name is taken in the pod: rollback also returns the address to IPAM
    own = {
        **conf,
        "ipam": {"type": "packetlab-ipam", "subnet": "10.98.0.0/29", "dataDir": str(node.workdir / "own")},
    }
    pod.run(["ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth0x"], check=True)
    before["pod"] = _links(pod)
    err = expect(spec.SETUP_FAILED, own)
    assert "already has an interface" in err["msg"]
    assert own_ipam.LeaseStore(node.workdir / "own", "podnet").leases() == {}, "lease not rolled back"


def test_failure_after_the_veth_exists_is_rolled_back(lab):
    """A route the kernel refuses (its gateway is not on-link) fails ADD *after* the veth
    pair and the lease exist: both must be gone when the error is printed."""
    node = Node(lab, "node")
    pod = lab.host("p")
    conf = {
        **_plugin_conf(node),
        "ipam": {
            "type": "packetlab-ipam",
            "subnet": "10.97.0.0/24",
            "dataDir": str(node.workdir / "own"),
            "routes": [{"dst": "192.168.0.0/16", "gw": "172.31.0.1"}],
        },
    }
    before = _links(node.host) - {"plbr0"}
    ans = node.runtime.raw("packetlab", conf, _env(node, "ADD", "late-fail", f"/run/netns/{pod.namespace}"))
    assert ans.returncode == 1 and ans.json["code"] == spec.SETUP_FAILED, ans
    assert "configuring eth0 in the pod failed" in ans.json["msg"]
    assert _links(node.host) - {"plbr0"} == before and "eth0" not in _links(pod)
    assert own_ipam.LeaseStore(node.workdir / "own", "podnet").leases() == {}


def test_refuses_to_act_outside_a_node_namespace(lab):
    """The plugin acts on its current namespace as the node: outside a named lab node
    namespace it refuses before touching anything. Exercised in a throwaway unnamed
    namespace (unshare), never in the host's own."""
    from packetlab.tools.cni import wiring

    node = Node(lab, "node")
    pod = lab.host("p")
    env = {**os.environ, **_env(node, "ADD", "root1", f"/run/netns/{pod.namespace}")}
    proc = subprocess.run(
        ["unshare", "--net", "--", str(node.bin_dir / "packetlab")],
        input=json.dumps(_plugin_conf(node)).encode(),
        env=env,
        capture_output=True,
        timeout=30,
    )
    err = json.loads(proc.stdout)
    assert proc.returncode == 1 and err["code"] == spec.INVALID_CONFIG and "refusing" in err["msg"], err
    assert "eth0" not in _links(pod)
    with netns.entered(node.host.namespace):
        assert wiring.node_namespace_check() is None  # a lab node: allowed
    assert wiring.node_namespace_check() is not None  # this (test) process's own namespace: refused


def test_check_detects_drift_and_needs_prev_result(lab):
    node = Node(lab, "node")
    a = node.add_pod("a")
    conf = _plugin_conf(node)
    ans = node.runtime.raw("packetlab", conf, _env(node, "CHECK", a.container_id, a.netns))
    assert ans.returncode == 1 and ans.json["code"] == spec.INVALID_CONFIG and "prevResult" in ans.json["msg"]
    ans = node.runtime.raw(
        "packetlab",
        {**conf, "cniVersion": "0.3.1", "prevResult": a.result},
        _env(node, "CHECK", a.container_id, a.netns),
    )
    assert ans.returncode == 1 and ans.json["code"] == spec.INCOMPATIBLE_VERSION
    node.check_pod(a)
    a.host.run(["ip", "addr", "flush", "dev", "eth0"], check=True)  # drift: the address is gone
    with pytest.raises(CniError) as e:
        node.check_pod(a)
    assert e.value.code == spec.CHECK_FAILED and a.ip in e.value.msg


def test_cni_path_is_searched_in_order(lab, tmp_path):
    """The plugin and its IPAM are found in any CNI_PATH entry, not only the first."""
    empty = tmp_path / "empty"
    empty.mkdir()
    mine = tmp_path / "mine"
    install(mine)
    node = Node(lab, "node")
    pod = lab.host("p")
    path = f"{empty}:{mine}:/nonexistent:{reference_dir()}"
    ans = node.runtime.raw(
        "packetlab", _plugin_conf(node), _env(node, "ADD", "path1", f"/run/netns/{pod.namespace}", CNI_PATH=path)
    )
    assert ans.returncode == 0, ans
    ans = node.runtime.raw(
        "packetlab", _plugin_conf(node), _env(node, "DEL", "path1", f"/run/netns/{pod.namespace}", CNI_PATH=path)
    )
    assert ans.returncode == 0 and ans.stdout.strip() == ""


def test_chained_with_tuning_bandwidth_and_portmap(lab):
    """A conflist like a real node's: our plugin, then the reference meta plugins, with
    prevResult passed down the chain and runtime capabilities (portMappings, bandwidth)."""
    chain = [
        {"type": "tuning", "sysctl": {"net.ipv4.conf.eth0.accept_redirects": "0"}},
        {"type": "bandwidth", "capabilities": {"bandwidth": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ]
    node = Node(lab, "node", chain=chain)
    web = node.add_pod(
        "web",
        capability_args={
            "bandwidth": {
                "ingressRate": 8_000_000,
                "ingressBurst": 1_000_000,
                "egressRate": 8_000_000,
                "egressBurst": 1_000_000,
            },
            "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}],
        },
    )
    assert [c[1] for c in node.runtime.calls if c[0] == "ADD"] == ["packetlab", "tuning", "bandwidth", "portmap"]
    assert web.host.sysctl("net.ipv4.conf.eth0.accept_redirects") == "0"  # tuning
    assert "tbf" in node.host.run(["tc", "qdisc", "show", "dev", web.host_veth]).stdout  # bandwidth
    server = launch.start(web.host, launch.python_module("http.server", 80, "--bind", "0.0.0.0"), ready="Serving HTTP")
    res = node.host.run(  # portmap DNAT
        ["curl", "-s", "-m", "2", "-o", "/dev/null", "-w", "%{http_code}", "http://10.244.1.1:8080/"]
    )
    assert res.stdout == "200", f"node:8080 -> pod:80 through portmap failed: {res.stdout!r}"
    server.stop()
    # CHECK through the chain (portmap 1.1.1 has an upstream CHECK bug for IPv4-only pods,
    # containernetworking/plugins#819, so CHECK is exercised on the first three)
    partial = CniRuntime(
        node.host.namespace,
        {**node.conflist, "plugins": node.conflist["plugins"][:3]},
        bin_dirs=node.bin_dirs,
        cache_dir=node.workdir / "cache",
    )
    partial.check(web.container_id, web.netns)
    node.delete_pod(web)
    assert [c[1] for c in node.runtime.calls if c[0] == "DEL"] == ["portmap", "bandwidth", "tuning", "packetlab"]
    assert "CNI-DN" not in node.host.run("iptables-save -t nat").stdout
    assert web.host_veth not in _links(node.host)


def test_make_conflist_shapes(tmp_path):
    conf = make_conflist("n", pod_cidr="10.1.0.0/24", mode="routed", ipam="packetlab-ipam", data_dir=tmp_path)
    assert conf["plugins"][0]["mode"] == "routed" and "bridge" not in conf["plugins"][0]
    assert conf["plugins"][0]["ipam"]["type"] == "packetlab-ipam"
    assert host_veth_name("abc", "eth0") == host_veth_name("abc", "eth0") != host_veth_name("abc", "eth1")
    assert len(host_veth_name("x" * 64, "eth0")) <= 15
