"""Module 05, no kernel: the HTTP forward proxy's request rewriting and classification."""

from __future__ import annotations

import pytest

from packetlab.course.m05_python_network_programming import proxy
from packetlab.course.m05_python_network_programming.proxy import BadRequest

# ---- the pure parts -------------------------------------------------------------------


def test_origin_request_rewrites_target_and_drops_hop_by_hop_headers():
    req = proxy.parse_head(
        b"GET http://10.0.2.2:8000/a/b?x=1 HTTP/1.1\r\nHost: 10.0.2.2:8000\r\n"
        b"Proxy-Connection: Keep-Alive\r\nConnection: X-Secret\r\nX-Secret: 1\r\n"
        b"Proxy-Authorization: Basic eA==\r\nAccept: */*\r\n\r\n"
    )
    host, port, head = proxy.origin_request(req)
    assert (host, port) == ("10.0.2.2", 8000)
    lines = head.decode().split("\r\n")
    assert lines[0] == "GET /a/b?x=1 HTTP/1.1"
    assert "Accept: */*" in lines and "Host: 10.0.2.2:8000" in lines and "Connection: close" in lines
    assert not any(h.split(":")[0] in ("Proxy-Connection", "X-Secret", "Proxy-Authorization") for h in lines)
    assert head.endswith(b"\r\n\r\n")


def test_origin_request_adds_host_and_default_port():
    host, port, head = proxy.origin_request(proxy.parse_head(b"GET http://example.test HTTP/1.0\r\n\r\n"))
    assert (host, port) == ("example.test", 80) and b"GET / HTTP/1.0\r\n" in head and b"Host: example.test" in head


def test_response_head_gets_connection_close():
    out = proxy.rewrite_response_head(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\nKeep-Alive: timeout=5\r\n\r\n"
    )
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nVia: 1.1 packetlab-proxy\r\nConnection: close\r\n\r\n"


def test_bad_requests_are_classified():
    with pytest.raises(BadRequest) as e:
        proxy.parse_head(b"GET / HTTP/2\r\n\r\n")
    assert e.value.status == 400
    with pytest.raises(BadRequest):
        proxy.parse_head(b"GET http://x/ HTTP/1.1\r\nno colon here\r\n\r\n")
    assert proxy.split_authority("[fd00::2]:443") == ("fd00::2", 443)
