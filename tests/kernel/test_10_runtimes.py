"""Module 10 end to end with real runtimes: podman (CNI network backend) and
containerd (``ctr run --cni``) start containers from a locally built busybox
image; our plugin wires them into a lab node; they talk to each other, to a
pod the lab wired itself, and across runtimes. The host is checked unchanged:
root-namespace links and nftables, and none of the runtimes' default paths."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from packetlab.tools.cni import Node
from packetlab.tools.cni.containers import CGROUP_ROOT, Containerd, Podman
from packetlab.topo import netns
from packetlab.topo.state import LabRecord, record_path

pytestmark = pytest.mark.slow
DEFAULT_PATHS = ["/run/containerd", "/var/lib/cni", "/var/lib/containers", "/run/containers", "/run/libpod", "/opt/cni"]


def _root_state() -> tuple[str, str, list[str]]:
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    rules = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    return links, rules, [p for p in DEFAULT_PATHS if os.path.exists(p)]


def _leases(node: Node) -> set[str]:
    d = node.workdir / "host-local" / node.conflist["name"]
    return {p.name for p in d.iterdir() if p.name[0].isdigit()} if d.exists() else set()


def test_podman_and_containerd_use_our_plugin(lab):
    missing = [t for t in ("podman", "containerd", "ctr", "runc", "conmon") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)} (vagrant/provision.sh installs them)")
    before = _root_state()
    node = Node(lab, "node", pod_cidr="10.244.7.0/24")
    pod = node.add_pod("labpod")
    httpd = ["httpd", "-f", "-p", "80", "-h", "/var/www"]

    podman = Podman(node)
    web = podman.run("web", httpd)
    assert web.ip.startswith("10.244.7.")
    out = podman.run("client", ["wget", "-qO-", f"http://{web.ip}/"], detach=False)
    assert out.returncode == 0 and "hello from a packetlab container" in out.stdout, out.stderr
    assert pod.host.ping(web.ip).ok  # lab pod -> podman container

    ctr = Containerd(node)
    web2 = ctr.run("web2", httpd)
    assert web2.ip.startswith("10.244.7.") and web2.ip != web.ip
    record = LabRecord.load(record_path(lab.name))  # what a SIGKILLed lab's guardian/`packetlab clean` would remove
    assert str(node.workdir) in record.workdirs
    assert {podman.sandbox.cgroup_parent.lstrip("/"), ctr.sandbox.cgroup_parent.lstrip("/")} <= set(record.cgroups)
    tracked = {p.argv[0] for p in record.processes}
    assert {"conmon of podman container web", "containerd shim of web2"} <= tracked, tracked
    leases_before = _leases(node)
    out = ctr.run("client2", ["wget", "-qO-", f"http://{web2.ip}/"], detach=False)
    assert out.returncode == 0 and "hello" in out.stdout, out.stderr
    assert _leases(node) == leases_before, "ctr run --rm should have called CNI DEL (lease released)"
    out = podman.exec("web", ["wget", "-qO-", f"http://{web2.ip}/"])  # podman -> containerd
    assert out.returncode == 0 and "hello" in out.stdout, out.stderr
    out = ctr.exec("web2", ["ping", "-c", "1", "-W", "2", pod.ip])  # containerd -> lab pod
    assert out.returncode == 0, out.stdout + out.stderr

    # the runtimes' network state is all in the node namespace
    veths = [ln.split()[0].split("@")[0] for ln in node.host.ip("-br link").splitlines() if ln.startswith("pl")]
    assert len(veths) == 1 + 3, veths  # plbr0 + labpod + web + web2
    ctr.remove("web2")  # kill + CNI DEL (empty CNI_NETNS)
    assert web2.ip not in _leases(node)
    podman.remove("web")
    assert web.ip not in _leases(node)
    parents = [podman.sandbox.cgroup_parent, ctr.sandbox.cgroup_parent]
    lab.close()  # everything below must hold once the lab is gone
    assert _root_state() == before, "the root namespace's links/nftables or the runtimes' default paths changed"
    leftovers = [str(h / p.lstrip("/")) for h in CGROUP_ROOT.iterdir() for p in parents if (h / p.lstrip("/")).exists()]
    assert not leftovers, f"cgroups left behind: {leftovers}"
    assert not netns.exists(f"{lab.name}-node") and not Path(node.workdir).exists()
