"""Issue 16, item 1 (no root): every root entry point takes names as names.

A namespace or interface name reaches paths (/run/netns/<ns>, the firewall's and the load
balancer's pin folders and records, /proc/sys/<key>): a '/' or a leading dot would walk out
of them. `packetlab.topo.names` is the one check, and each entry point calls it before it
touches anything — shown here without root, on names and on a firewall folder in tmp_path.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from packetlab.errors import EXIT_USAGE, NameTooLong, PacketlabError, UsageError
from packetlab.paths import REPO_ROOT
from packetlab.tools.cni.plugin import NetConf
from packetlab.tools.cni.spec import INVALID_CONFIG, INVALID_ENVIRONMENT, CniError, Environment
from packetlab.tools.firewall.pinned import Target
from packetlab.tools.lb.balancer import LoadBalancer
from packetlab.tools.lb.instance import instance_name
from packetlab.topo.names import (
    InvalidName,
    check_name,
    check_namespace,
    check_netns_name,
    check_sysctl_key,
    is_host_netns,
)

NOT_NAMES = ["", ".", "..", ".hidden", "a/b", "eth0/../../root", "../../proc/1/ns/net", "a b", "a\nb", "-x", None, 3]


@pytest.mark.parametrize("bad", NOT_NAMES)
def test_interface_and_namespace_names_are_names(bad):
    with pytest.raises(InvalidName):
        check_name(bad)
    with pytest.raises(InvalidName):
        check_netns_name(bad)
    assert isinstance(InvalidName("x"), UsageError)  # a command exits 2 for it


def test_lengths():
    assert check_name("a" * 15) == "a" * 15
    with pytest.raises(NameTooLong):
        check_name("a" * 16)  # IFNAMSIZ
    assert check_netns_name("cni-" + "0" * 36)  # a runtime's pod namespace name
    with pytest.raises(InvalidName):
        check_netns_name("n" * 65)


@pytest.mark.parametrize(
    "key", ["kernel.hostname", "vm.swappiness", "net", "net.ipv4/../../kernel/x", "net..ipv4", "net.ipv4.", "net/ipv4"]
)
def test_sysctl_keys_are_network_keys(key):
    with pytest.raises(InvalidName):
        check_sysctl_key(key)


def test_sysctl_key_ok():
    assert check_sysctl_key("net.ipv4.conf.all.forwarding") == "net.ipv4.conf.all.forwarding"


def test_host_namespace_identity_fails_closed():
    assert is_host_netns(None)  # a namespace that cannot be identified counts as the host's


def test_namespace_check_refuses_names_before_the_filesystem():
    with pytest.raises(InvalidName):
        check_namespace("../../proc/1/ns/net", allow_host=True)  # even with the host flag: not a name
    with pytest.raises(PacketlabError, match="no network namespace"):
        check_namespace(f"hv-none-{uuid.uuid4().hex[:6]}")


def test_firewall_target_and_lb_instance_names():
    with pytest.raises(InvalidName):
        Target("hvns", "eth0/../../../../root/.ssh")
    with pytest.raises(InvalidName):
        Target("../..", "eth0")
    with pytest.raises(InvalidName):
        instance_name("hvns", "../x")
    with pytest.raises(InvalidName):
        instance_name("a/b", "eth0")
    with pytest.raises(InvalidName):  # refused before pyroute2 turns the name into a path
        LoadBalancer("../../proc/1/ns/net", "eth0")


def test_cni_names():
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_PATH": "/a", "CNI_NETNS": "/n"}
    for bad in ("eth 0", ".x", "a/b"):
        with pytest.raises(CniError) as e:
            Environment.from_environ({**env, "CNI_IFNAME": bad})
        assert e.value.code == INVALID_ENVIRONMENT
    conf = {"cniVersion": "1.0.0", "name": "n", "ipam": {"type": "host-local"}}
    for bad in ("br/0", "..", "br 0", 7):
        with pytest.raises(CniError) as e:
            NetConf({**conf, "bridge": bad})
        assert e.value.code == INVALID_CONFIG and "not a valid interface name" in e.value.msg


def test_firewall_remove_deletes_only_its_own_pins(tmp_path):
    """`--dev` with '..' once made `remove` delete every file of the directory it resolved to."""
    bpffs, state = tmp_path / "bpffs", tmp_path / "state"
    ns = f"hv-none-{uuid.uuid4().hex[:6]}"
    (bpffs / "packetlab" / "firewall" / f"{ns}-eth0").mkdir(parents=True)  # an installed firewall's folder
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep").write_text("not the firewall's")
    env = {**os.environ, "PACKETLAB_BPFFS": str(bpffs), "PACKETLAB_FIREWALL_STATE": str(state)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "packetlab.tools.firewall.cli",
            "remove",
            "--netns",
            ns,
            "--dev",
            "eth0/../../../../victim",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_USAGE and "invalid interface name" in proc.stderr, proc.stderr
    assert (victim / "keep").exists()
    # and an honest remove leaves files it did not pin
    own = bpffs / "packetlab" / "firewall" / f"{ns}-eth1"
    own.mkdir()
    (own / "prog").write_text("")
    (own / "notes").write_text("someone else's")
    proc = subprocess.run(
        [sys.executable, "-m", "packetlab.tools.firewall.cli", "remove", "--netns", ns, "--dev", "eth1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (own / "prog").exists() and (own / "notes").exists() and "left" in proc.stdout
