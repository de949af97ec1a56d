"""Module 05 on the real kernel: the HTTP forward proxy — curl through it, across three
namespaces, byte-exact."""

from __future__ import annotations

import concurrent.futures
import socket

import pytest

from packetlab.course.m05_python_network_programming import clients, web
from packetlab.topo import servers as launch

PROXY = "http://10.0.1.254:3128"
FILES = {"big.bin": web.random_blob(24 << 20, seed=1), "small.txt": b"hello through the proxy\n"}


@pytest.fixture(scope="module")
def topo(module_lab):
    """client c — router p — server s (a web site on 8000, echo on 7000); p forwards nothing, so
    the proxy on p (10.0.1.254:3128) is the only way through."""
    c, p, s = module_lab.host("c"), module_lab.router("p"), module_lab.host("s")
    module_lab.link(c, p, ip="10.0.1.1/24", peer_ip="10.0.1.254/24")
    module_lab.link(p, s, ip="10.0.2.254/24", peer_ip="10.0.2.2/24")
    c.add_route("default", via="10.0.1.254")
    s.add_route("default", via="10.0.2.254")
    # p forwards nothing from c to s: the proxy (a local process on p) is the only way through
    p.nft("table inet proxyonly {\n chain forward {\n type filter hook forward priority 0; policy drop;\n }\n}\n")
    module_lab.site = web.StaticSite(s, "10.0.2.2", 8000, FILES).start()
    module_lab.echo = launch.start(
        s, launch.python_module("packetlab.course.m05_python_network_programming.echo", "--port", 7000)
    )
    module_lab.proxy = launch.start(
        p,
        launch.python_module(
            "packetlab.course.m05_python_network_programming.proxy", "--bind", "10.0.1.254", "--port", 3128, "--verbose"
        ),
    )
    yield module_lab
    module_lab.site.close()


def test_direct_path_is_blocked(topo):
    r = web.curl(topo.nodes["c"], "http://10.0.2.2:8000/small.txt", max_time=1)
    assert not r.ok and r.exit_code == 28  # curl: operation timed out


def test_get_streams_a_large_body_byte_exact(topo):
    r = web.curl(topo.nodes["c"], "http://10.0.2.2:8000/big.bin", proxy=PROXY)
    assert r.ok and r.status == 200 and r.size == len(FILES["big.bin"])
    assert r.sha256 == topo.site.sha256("big.bin")
    assert any(
        '"GET /big.bin HTTP/1.1" 200' in line and line.startswith("10.0.2.254") for line in topo.site.log()
    )  # the origin saw the proxy, in origin-form


def test_connect_tunnel_with_curl_p_byte_exact(topo):
    r = web.curl(topo.nodes["c"], "http://10.0.2.2:8000/big.bin", proxy=PROXY, tunnel=True)
    assert r.ok and r.sha256 == topo.site.sha256("big.bin")
    assert any(line.startswith("CONNECT 10.0.2.2:8000") for line in topo.proxy.output)


def test_connect_tunnel_to_a_tcp_echo_server(topo):
    c = topo.nodes["c"]
    out = c.run(
        "printf 'raw bytes through CONNECT' | curl -sS -p -x http://10.0.1.254:3128 "
        "telnet://10.0.2.2:7000 --max-time 2",
        timeout=10,
    )
    assert "raw bytes through CONNECT" in out.stdout
    sock = clients.socket_in(c)
    with sock:
        sock.settimeout(3)
        sock.connect(("10.0.1.254", 3128))
        sock.sendall(b"CONNECT 10.0.2.2:7000 HTTP/1.1\r\nHost: 10.0.2.2:7000\r\n\r\n")
        head = sock.recv(4096)
        assert head.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"ping\n")
        assert sock.recv(100) == b"ping\n"
        sock.shutdown(socket.SHUT_WR)  # half-close passes through the tunnel...
        assert sock.recv(100) == b""  # ...the echo server closes, so do we


def test_parallel_downloads_stream_in_flat_memory(topo):
    c, p = topo.nodes["c"], topo.nodes["p"]
    fresh = launch.start(
        p,
        launch.python_module(
            "packetlab.course.m05_python_network_programming.proxy", "--bind", "10.0.1.254", "--port", 3130
        ),
    )
    before = fresh.peak_rss_mb()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda _: web.curl(c, "http://10.0.2.2:8000/big.bin", proxy="http://10.0.1.254:3130"), range(4))
        )
    assert all(r.ok and r.sha256 == topo.site.sha256("big.bin") for r in results)
    # 4 x 24 MiB went through at once; buffering even one body would add 24 MiB to the peak
    growth = fresh.peak_rss_mb() - before
    assert growth < 12, f"proxy peak RSS grew by {growth:.1f} MB"
    assert fresh.stop() == 0


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"CONNECT 10.0.2.2:7999 HTTP/1.1\r\n\r\n", b"502"),  # nothing listens there
        (b"GET /small.txt HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),  # origin-form: not for a proxy
        (b"GET https://10.0.2.2/ HTTP/1.1\r\n\r\n", b"501"),
        (b"NONSENSE\r\n\r\n", b"400"),
        (b"CONNECT 10.0.2.2 HTTP/1.1\r\n\r\n", b"400"),  # no port
    ],
)
def test_errors_get_a_status_and_a_reason(topo, request_bytes, status):
    sock = clients.socket_in(topo.nodes["c"])
    with sock:
        sock.settimeout(5)
        sock.connect(("10.0.1.254", 3128))
        sock.sendall(request_bytes)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer.split(b" ")[1] == status
    assert b"Connection: close" in answer and answer.split(b"\r\n\r\n", 1)[1].strip()


def test_proxy_stops_cleanly(topo):
    p = topo.nodes["p"]
    extra = launch.start(
        p, launch.python_module("packetlab.course.m05_python_network_programming.proxy", "--port", 3129)
    )
    assert extra.stop() == 0
    assert any(line.startswith("stopped:") for line in extra.output)
