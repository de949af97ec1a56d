"""Module 05 on the real kernel: the checks that talk to servers in a lab (line handler,
CONNECT request, veth) — right answers pass, typical wrong answers fail with a useful reason."""

from __future__ import annotations

import asyncio

import pytest
from pyroute2 import IPRoute

from packetlab.course.grading import CheckFailed
from packetlab.course.m05_python_network_programming import exercises as ex
from packetlab.course.m05_python_network_programming.helpers import veth_ready
from packetlab.topo import servers as launch


@pytest.fixture(scope="module")
def topo(module_lab):
    """client c — proxy p — server s (echo on 7000, the proxy on 3128), and two spare hosts x, y."""
    c, p, s = module_lab.host("c"), module_lab.host("p"), module_lab.host("s")
    module_lab.link(c, p, ip="10.0.1.1/24", peer_ip="10.0.1.254/24")
    module_lab.link(p, s, ip="10.0.2.254/24", peer_ip="10.0.2.2/24")
    module_lab.x, module_lab.y = module_lab.host("x"), module_lab.host("y")
    launch.start(s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--port", 7000))
    launch.start(
        p,
        launch.python_module(
            "packetlab.course.m05_python_network_programming.proxy", "--bind", "10.0.1.254", "--port", 3128
        ),
    )
    return module_lab


# ---- 2: asyncio line handler ---------------------------------------------------------------
async def upper(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def no_newline(reader, writer):
    while line := await reader.readline():
        writer.write(line.strip().upper())
        await writer.drain()
    writer.close()


async def never_closes(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    await asyncio.sleep(3600)


async def one_line_only(reader, writer):
    writer.write((await reader.readline()).upper())
    await writer.drain()
    writer.close()


async def lowercase(reader, writer):
    while line := await reader.readline():
        writer.write(line)
        await writer.drain()
    writer.close()


def not_async(reader, writer):
    pass


def test_line_handler_reference_passes(topo):
    assert ex.check_line_handler(upper, topo.nodes["s"], topo.nodes["p"], "10.0.2.2", clients=20)


@pytest.mark.parametrize(
    "handler, reason",
    [
        (not_async, "not a coroutine"),
        (no_newline, "no complete reply line"),
        (never_closes, "did not close the connection"),
        (one_line_only, "closed the connection after 1 replies of 3"),
        (lowercase, "expected"),
    ],
)
def test_line_handler_wrong_answers(topo, handler, reason):
    with pytest.raises(CheckFailed, match=reason):
        ex.check_line_handler(handler, topo.nodes["s"], topo.nodes["p"], "10.0.2.2", clients=5)


# ---- 3: CONNECT by hand -----------------------------------------------------------------
def test_connect_request_reference_passes(topo):
    assert ex.check_connect_request(
        b"CONNECT 10.0.2.2:7000 HTTP/1.1\r\nHost: 10.0.2.2:7000\r\n\r\n",
        topo.nodes["c"],
        "10.0.1.254",
        3128,
        "10.0.2.2:7000",
    )


@pytest.mark.parametrize(
    "request_bytes, reason",
    [
        (b"CONNECT 10.0.2.2:7000 HTTP/1.1\r\n", "did not answer"),  # no blank line
        (b"CONNECT 10.0.2.2:7001 HTTP/1.1\r\n\r\n", "502 Bad Gateway"),
        (b"CONNECT http://10.0.2.2:7000/ HTTP/1.1\r\n\r\n", "400 Bad Request"),
        ("CONNECT 10.0.2.2:7000 HTTP/1.1\r\n\r\n", "not bytes"),
        (None, "no request"),
    ],
)
def test_connect_request_wrong_answers(topo, request_bytes, reason):
    with pytest.raises(CheckFailed, match=reason):
        ex.check_connect_request(request_bytes, topo.nodes["c"], "10.0.1.254", 3128, "10.0.2.2:7000")


# ---- 4: veth with pyroute2 -----------------------------------------------------------------
def test_veth_check_fails_then_passes(topo):
    x, y = topo.x, topo.y
    args = (x, "pyx0", y, "pyy0", "10.77.0.1/30", "10.77.0.2/30")
    assert not veth_ready(x, "pyx0", y, "pyy0")
    with pytest.raises(CheckFailed, match="no interface pyx0"):
        ex.check_veth(*args)
    with IPRoute(netns=x.namespace) as ipr:  # peer left in x: the classic slip
        ipr.link("add", ifname="pyx0", kind="veth", peer={"ifname": "pyy0"})
    with pytest.raises(CheckFailed, match="still in"):
        ex.check_veth(*args)
    with IPRoute(netns=x.namespace) as ipr:
        ipr.link("set", index=ipr.link_lookup(ifname="pyy0")[0], net_ns_fd=y.namespace)
    with pytest.raises(CheckFailed, match="no IPv4 address"):
        ex.check_veth(*args)
    for host, ifname, ip in ((x, "pyx0", "10.77.0.1"), (y, "pyy0", "10.77.0.2")):
        with IPRoute(netns=host.namespace) as ipr:
            idx = ipr.link_lookup(ifname=ifname)[0]
            ipr.addr("add", index=idx, address=ip, prefixlen=30)
    with pytest.raises(CheckFailed, match="is down"):
        ex.check_veth(*args)
    for host, ifname in ((x, "pyx0"), (y, "pyy0")):
        with IPRoute(netns=host.namespace) as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=ifname)[0], state="up")
    assert veth_ready(x, "pyx0", y, "pyy0")
    assert ex.check_veth(*args)
