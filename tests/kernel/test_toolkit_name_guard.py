"""Issue 16, item 1 (root, real namespaces): the root entry points refuse namespaces that are not
a lab's — the host's own under another name (compared by inode), the CNI node's own as a pod —
and a CNI ``bridge`` that names a device which is not a bridge.

Safety of the test itself: every call that is refused would, without the check, only read the
host (a link lookup of a name that does not exist) or change a namespace of this test's own lab.
The one host-side object it makes is a second *name* for PID 1's namespace
(``ip netns attach <lab>-hostalias <this pid>``), removed at the end; nothing is written through it.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from packetlab.tools.cni import Node, spec, wiring
from packetlab.tools.cni.spec import CniError
from packetlab.tools.firewall import pinned
from packetlab.tools.lb.balancer import LoadBalancer
from packetlab.topo import netns
from packetlab.topo.lab import Lab
from packetlab.topo.names import HostNamespace, check_namespace

NO_DEV = "hvnodev0"  # no such interface anywhere: a lookup of it changes nothing


@pytest.fixture(scope="module")
def hvlab():
    lab = Lab(f"hv{os.getpid() % 100000}").start()
    try:
        yield lab
    finally:
        lab.close()


@pytest.fixture(scope="module")
def host_alias(hvlab):
    """A second name for the host's own namespace, as a careless or hostile --netns would give."""
    name = f"{hvlab.name}-hostalias"
    # this test process runs in the host's namespace (the host guard checks that namespace)
    subprocess.run(["ip", "netns", "attach", name, str(os.getpid())], check=True, capture_output=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
        assert not netns.exists(name)


def test_the_hosts_namespace_is_refused_under_any_name(hvlab, host_alias):
    with pytest.raises(HostNamespace, match="host's own"):
        check_namespace(host_alias, labs=[host_alias])  # even if a lab record claimed the name
    assert check_namespace(host_alias, allow_host=True) == host_alias  # the explicit host flag
    stray = f"{hvlab.name}-stray"  # a namespace no lab recorded
    netns.create(stray)
    try:
        with pytest.raises(HostNamespace, match="not created by a packetlab lab"):
            check_namespace(stray)
    finally:
        netns.remove(stray)
    a = hvlab.host("a")
    assert check_namespace(a.namespace) == a.namespace


def test_lb_and_firewall_refuse_the_host_alias(hvlab, host_alias, monkeypatch):
    with pytest.raises(HostNamespace):
        LoadBalancer(host_alias, NO_DEV)
    monkeypatch.setattr(pinned, "lab_namespaces", lambda: {host_alias: hvlab.name})
    with pytest.raises(HostNamespace, match="host's own"):
        pinned.check_target(pinned.Target(host_alias, NO_DEV))


def test_sysctl_refuses_global_keys_and_the_hosts_namespace(hvlab, host_alias):
    from packetlab.topo.host import Host
    from packetlab.topo.names import InvalidName

    a = hvlab.host("s")
    with pytest.raises(InvalidName):
        a.sysctl("kernel.hostname")  # (a read: without the check it would only return the host's name)
    with pytest.raises(InvalidName):
        a.sysctl("net.ipv4/../../../kernel/hostname")
    assert a.sysctl("net.ipv4.ip_forward", 1) == "1"  # a lab host's own setting: fine
    alias = Host(hvlab, "alias", host_alias)  # a Host whose namespace file is PID 1's namespace
    with pytest.raises(HostNamespace):
        alias.sysctl(f"net.ipv4.conf.{NO_DEV}.forwarding", 1)  # (no such key either: nothing to write)


def _env(node: Node, command: str, cid: str, netns_path: str, ifname: str = "eth0") -> dict[str, str]:
    return {
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": cid,
        "CNI_NETNS": netns_path,
        "CNI_IFNAME": ifname,
        "CNI_PATH": ":".join(node.bin_dirs),
        "CNI_ARGS": "",
    }


def _links(host) -> dict[str, dict]:
    return {link["ifname"]: link for link in json.loads(host.run(["ip", "-j", "addr"]).stdout)}


def test_cni_refuses_the_node_and_host_as_pod_and_a_non_bridge_bridge(hvlab):
    node = Node(hvlab, "node")
    conf = {**node.conflist["plugins"][0], "cniVersion": "1.0.0", "name": node.conflist["name"]}
    before = _links(node.host)
    # the pod namespace is the node's own
    ans = node.runtime.raw("packetlab", conf, _env(node, "ADD", "self1", f"/run/netns/{node.host.namespace}"))
    assert ans.returncode == 1 and ans.json["code"] == spec.INVALID_ENVIRONMENT, ans
    assert "node's own" in ans.json["msg"]
    # the host's: checked where the plugin opens it (an ADD would be the host's new veth)
    with pytest.raises(CniError) as err:
        wiring.open_netns(f"/proc/{os.getpid()}/ns/net")
    assert err.value.code == spec.INVALID_ENVIRONMENT and "host's own" in err.value.msg
    ans = node.runtime.raw("packetlab", conf, _env(node, "DEL", "host1", f"/proc/{os.getpid()}/ns/net", ifname=NO_DEV))
    assert ans.returncode == 1 and ans.json["code"] == spec.INVALID_ENVIRONMENT, ans
    # "bridge" naming a device that is not a bridge: lo gets no gateway address, no MTU change
    pod = hvlab.host("p")
    ans = node.runtime.raw(
        "packetlab", {**conf, "bridge": "lo"}, _env(node, "ADD", "lo1", f"/run/netns/{pod.namespace}")
    )
    assert ans.returncode == 1 and ans.json["code"] == spec.INVALID_CONFIG and "not a bridge" in ans.json["msg"], ans
    after = _links(node.host)
    assert set(after) == set(before) and after["lo"]["addr_info"] == before["lo"]["addr_info"]
    assert after["lo"]["mtu"] == before["lo"]["mtu"]
