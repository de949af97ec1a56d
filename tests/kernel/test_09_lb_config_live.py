"""Issue 16, item 5 (root): what a load balancer config may not mean, refused on a live LB.

A VIP on the load balancer's own address would capture the LB host's own traffic, and a backend
that is a local address is no destination: both are refused before anything is written, in words
(the route error once printed ip's raw JSON dict).
"""

from __future__ import annotations

import os

import pytest

from packetlab.tools.lb.balancer import LoadBalancer
from packetlab.tools.lb.config import ConfigError
from packetlab.topo.lab import Lab


@pytest.fixture(scope="module")
def lbhost():
    lab = Lab(f"hv{os.getpid() % 10000}l").start()
    try:
        a, b = lab.host("lb"), lab.host("be")
        lab.link(a, b, ip="10.66.0.1/24", peer_ip="10.66.0.2/24")
        yield a
    finally:
        lab.close()


def _cfg(vip: str, backend: str) -> dict:
    return {"vips": [{"name": "web", "address": vip, "port": 80, "backends": [{"address": backend}]}]}


def test_vip_on_the_lbs_own_address_and_a_local_backend_are_refused(lbhost):
    with LoadBalancer(lbhost, "eth0", xdp_mode="generic") as lb:
        with pytest.raises(ConfigError) as err:
            lb.apply(_cfg("10.66.0.1", "10.66.0.2"))
        assert "is the load balancer's own address (on eth0)" in str(err.value)
        with pytest.raises(ConfigError) as err:
            lb.apply(_cfg("10.66.100.1", "10.66.0.1"))
        text = str(err.value)
        assert "an address of the load balancer's own namespace" in text and "{" not in text, text
        assert lb.config.vips == ()  # nothing was applied
        lb.apply(_cfg("10.66.100.1", "10.66.0.2"))  # a VIP of its own, a backend elsewhere: fine
        assert [v.address for v in lb.config.vips] == ["10.66.100.1"]
