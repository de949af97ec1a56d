"""Module 05 on the real kernel: echo servers (threads, selectors/epoll, asyncio, UDP), clients,
many-client load — in a lab."""

from __future__ import annotations

import asyncio
import time

import pytest

from packetlab.course.m05_python_network_programming import clients, echo, load
from packetlab.course.m05_python_network_programming.inprocess import AsyncioServerThread
from packetlab.errors import PacketlabError
from packetlab.show.tables import format_table
from packetlab.topo import servers as launch

SERVER = "10.0.1.2"


@pytest.fixture(scope="module")
def pair(module_lab):
    """client c — server s."""
    c, s = module_lab.host("c"), module_lab.host("s")
    module_lab.link(c, s, ip="10.0.1.1/24", peer_ip=f"{SERVER}/24")
    return module_lab


@pytest.mark.parametrize("mode", echo.MODES)
def test_tcp_echo_modes_echo_exactly_and_stop_cleanly(pair, mode):
    c, s = pair.nodes["c"], pair.nodes["s"]
    port = 7000 + echo.MODES.index(mode)
    srv = launch.start(
        s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--mode", mode, "--port", port)
    )
    assert f"ready tcp {mode}" in srv.ready_line
    listening = s.run(["ss", "-Htln", f"sport = :{port}"]).stdout
    assert f":{port}" in listening  # it listens in s, not in the host
    big = bytes(range(256)) * 4096  # 1 MiB: many recv()/send() rounds
    ex = clients.tcp_exchange(c, SERVER, port, big, timeout=10)
    assert ex.echoed and ex.local[0] == "10.0.1.1"
    result = load.measure(c, SERVER, port, clients=20, requests=10, server=srv)
    assert (result.clients, result.requests, result.errors) == (20, 200, 0)
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    idle = [clients.socket_in(c) for _ in range(5)]
    for sock in idle:
        sock.connect((SERVER, port))
    want = 6 if mode == "threads" else 1  # a thread per connection, or one for all
    deadline = time.monotonic() + 5
    while srv.threads() != want and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.threads() == want
    for sock in idle:
        sock.close()
    assert format_table(["mode", *load.LoadResult.HEADERS], [result.row(mode)]).count("\n") == 2
    assert srv.stop() == 0  # SIGTERM -> clean exit, status 0


def test_udp_echo_and_port_unreachable(pair):
    c, s = pair.nodes["c"], pair.nodes["s"]
    srv = launch.start(
        s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--udp", "--port", 7100)
    )
    ex = clients.udp_exchange(c, SERVER, 7100, b"one datagram")
    assert ex.received == b"one datagram"
    assert srv.stop() == 0
    with pytest.raises(PacketlabError, match="port unreachable"):
        clients.udp_exchange(c, SERVER, 7100, b"nobody home", timeout=2)


def test_connection_refused_and_port_in_use_are_explained(pair):
    c, s = pair.nodes["c"], pair.nodes["s"]
    with pytest.raises(PacketlabError, match="refused"):
        clients.tcp_exchange(c, SERVER, 7199, b"x")
    first = launch.start(
        s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--port", 7200)
    )
    with pytest.raises(PacketlabError, match="Address already in use"):
        launch.start(s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--port", 7200))
    first.stop()
    with pytest.raises(PacketlabError, match="did not report ready"):
        launch.start(s, ["sleep", "30"], timeout=0.5)


def test_nonblocking_demo(pair):
    c, s = pair.nodes["c"], pair.nodes["s"]
    srv = launch.start(s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--port", 7300))
    rows = clients.nonblocking_demo(c, SERVER, 7300)
    srv.stop()
    assert "TimeoutError" in rows[0][1]
    assert "BlockingIOError" in rows[1][1] and "EAGAIN" in rows[1][1]
    assert "b'ping'" in rows[2][1] and rows[2][0].startswith("EpollSelector")


def test_inprocess_asyncio_server_lives_in_the_namespace_and_stops(pair):
    c, s = pair.nodes["c"], pair.nodes["s"]

    async def shout(reader, writer):
        while line := await reader.readline():
            writer.write(line.upper())
            await writer.drain()
        writer.close()

    with AsyncioServerThread(s, shout, 7400) as srv:
        assert clients.tcp_exchange(c, SERVER, 7400, b"abc\n").received == b"ABC\n"
        assert ":7400" in s.run(["ss", "-Htln"]).stdout
        # a client that never closes must not keep the thread alive
        idle = clients.socket_in(c)
        idle.connect((SERVER, 7400))
    assert not srv._thread.is_alive()
    idle.close()


def test_load_run_counts_errors_against_a_closed_port(pair):
    c = pair.nodes["c"]
    with pytest.raises(PacketlabError, match="no request succeeded"):
        load.measure(c, SERVER, 7999, clients=2, requests=1)
    assert asyncio.iscoroutinefunction(load.run)
