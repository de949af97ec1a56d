"""packetlab.topo.rtnl: pyroute2's IPRoute on its own thread works under a running event loop,
and the toolkit never patches the caller's loop (DESIGN principle 8)."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import subprocess
import threading

import pytest
from pyroute2.netlink.exceptions import NetlinkError

from packetlab.paths import REPO_ROOT
from packetlab.testing.child import PYTHON
from packetlab.topo import netns, rtnl


@pytest.fixture(scope="module")
def pair(module_lab):
    """h1 — h2 on a /30."""
    h1, h2 = module_lab.host("h1"), module_lab.host("h2")
    module_lab.link(h1, h2, ip="10.61.0.1/30", peer_ip="10.61.0.2/30")
    return module_lab


def _names(ipr) -> set[str]:
    return {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}


@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited")  # pyroute2's own, on that failure
def test_plain_pyroute2_fails_inside_a_running_loop():
    """The reason the module exists: the sync API cannot run where a loop already runs."""
    from pyroute2 import IPRoute

    async def inside() -> str:
        try:
            with IPRoute() as ipr:
                ipr.get_links()
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    assert "already running" in asyncio.run(inside())


def test_works_inside_a_running_loop(pair):
    async def inside() -> tuple:
        with rtnl.iproute(netns=pair.nodes["h1"].namespace) as ipr:
            dump = ipr.link("dump")
            polled = ipr.poll(ipr.addr, "dump", address="10.61.0.1", timeout=2)  # a method handed back in
            return dump, polled, _names(ipr)

    dump, polled, names = asyncio.run(inside())
    assert isinstance(dump, tuple) and {"lo", "eth0"} <= names
    assert polled[0].get_attr("IFA_ADDRESS") == "10.61.0.1"


def test_netlink_errors_come_back_unchanged(pair):
    with rtnl.iproute(netns=pair.nodes["h1"].namespace) as ipr, pytest.raises(NetlinkError) as err:
        ipr.link("get", index=987654)
    assert err.value.code == errno.ENODEV


def test_calls_run_on_the_netlink_thread(pair):
    seen = rtnl.run_on_netlink_thread(threading.current_thread)
    assert seen is not threading.current_thread() and seen.name == "packetlab-netlink" and seen.daemon


def test_no_netns_means_the_callers_namespace(pair):
    """Inside netns.entered() the caller's thread is in h2: iproute() acts there, not in the host."""
    h2 = pair.nodes["h2"]
    with netns.entered(h2.namespace), rtnl.iproute() as ipr:
        inside = _names(ipr)
    assert inside - rtnl.FALLBACK_TUNNELS == {"lo", "eth0"}  # those appear where a tunnel module is loaded
    root = {
        link["ifname"]
        for link in json.loads(
            subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout
        )
    }
    with rtnl.iproute() as ipr:
        assert _names(ipr) == root  # back in the caller's own namespace


def test_namespace_fd(pair):
    def thread_ns() -> int:
        return os.stat("/proc/thread-self/ns/net").st_ino

    before = rtnl.run_on_netlink_thread(thread_ns)
    fd = os.open(f"{netns.NETNS_DIR}/{pair.nodes['h2'].namespace}", os.O_RDONLY)
    try:
        with rtnl.iproute(fd) as ipr:
            addrs = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr()}
    finally:
        os.close(fd)
    assert "10.61.0.2" in addrs
    assert rtnl.run_on_netlink_thread(thread_ns) == before  # the thread went back where it was


def test_importing_packetlab_in_a_loop_patches_nothing():
    """No nest_asyncio, no re-entrant loop: run_until_complete on the running loop still refuses."""
    code = """
import asyncio, sys
async def main():
    import packetlab, packetlab.topo.lab, packetlab.course.m05_python_network_programming.netlink
    loop = asyncio.get_running_loop()
    coro = asyncio.sleep(0)
    try:
        loop.run_until_complete(coro)
        print("patched")
    except RuntimeError:
        coro.close()
        print("untouched", "nest_asyncio" in sys.modules)
asyncio.run(main())
"""
    out = subprocess.run([PYTHON, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "untouched False", out.stderr
