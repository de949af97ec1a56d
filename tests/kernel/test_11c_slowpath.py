"""The slow path and the kernel's cache together: same replies, same leases, same lifetimes.

The userspace server (`DhcpServer`) writes into the maps of the real program
(bpf/11c-dhcp-fastpath.c, loaded once), and BPF_PROG_TEST_RUN answers the very
request the server just answered: the two frames must be identical. Expiry in
the store removes the kernel's entry; a renewal made in XDP moves the store's
expiry on before the sweep would expire the lease.
"""

from __future__ import annotations

import time

import pytest

from packetlab.ebpf.loader import acquire, release
from packetlab.tools.dhcp import config as dhcp_config
from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.fastpath import FastPath
from packetlab.tools.dhcp.layout import FUNCTION, SOURCE, STATS
from packetlab.tools.dhcp.server import DhcpServer
from packetlab.tools.dhcp.store import BOUND, EXPIRED, LeaseStore

SERVER, SMAC = "10.67.0.1", "02:67:00:00:00:01"
A, B = "02:00:00:00:00:0a", "02:00:00:00:00:0b"
DOC = {
    "server": {"id": SERVER},
    "rate_limit": {"per_mac": 0, "slow_path": 0},
    "pools": [
        {
            "name": "plain",
            "subnet": "10.67.0.0/24",
            "range": "10.67.0.100-10.67.0.150",
            "router": SERVER,
            "dns": [SERVER],
            "lease_time": 600,
        },
        {"name": "tagged", "vlan": 42, "subnet": "10.67.42.0/24", "range": "10.67.42.10-10.67.42.20", "lease_time": 60},
    ],
}


class Clock:
    def __init__(self, offset: float) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


@pytest.fixture
def env(tmp_path):
    program = acquire(SOURCE, function=FUNCTION)
    fp = FastPath.from_program(program)
    for i in range(len(STATS)):
        fp.maps["stats"].update(i, 0)
    cfg = dhcp_config.parse(DOC)
    fp.set_pools(cfg, SMAC)
    store = LeaseStore(tmp_path / "leases.sqlite")
    srv = DhcpServer(cfg, store, SMAC, cache=fp, clock=Clock(0))
    yield srv, fp, program
    store.close()
    release(program)


def slow(srv, frame: bytes):
    return srv.handle(wire.parse_frame(frame))


def dora(srv, mac: str, vlan: int = 0) -> str:
    offer = slow(srv, wire.request_frame(mac, wire.DISCOVER, vlan=vlan))
    ack = slow(srv, wire.request_frame(mac, wire.REQUEST, requested=offer.ip, server_id=SERVER, vlan=vlan))
    assert ack.reply == "ACK"
    return ack.ip


@pytest.mark.parametrize("vlan", [0, 42])
def test_fast_path_reply_equals_slow_path_reply(env, vlan):
    srv, fp, program = env
    ip = dora(srv, A, vlan)
    requests = [
        wire.request_frame(A, wire.DISCOVER, xid=77, vlan=vlan),
        wire.request_frame(A, wire.DISCOVER, xid=78, broadcast=True, vlan=vlan),
        wire.request_frame(A, wire.REQUEST, xid=79, requested=ip, server_id=SERVER, vlan=vlan),
        wire.request_frame(A, wire.REQUEST, xid=80, requested=ip, vlan=vlan),
        wire.request_frame(A, wire.REQUEST, xid=81, ciaddr=ip, dst_ip=SERVER, dst_mac=SMAC, vlan=vlan),
    ]
    for frame in requests:
        res = program.test_run(frame)
        assert res.verdict == "XDP_TX"
        assert res.data == slow(srv, frame).frame, wire.parse_frame(frame).type_name


def test_store_expiry_removes_the_cache_entry(env):
    srv, fp, program = env
    dora(srv, A)
    dora(srv, B)
    assert {c.mac for c in fp.leases()} == {A, B}
    srv.clock.offset = 601  # ten minutes on: both leases are due
    gone = srv.sweep(lambda mac, vlan: e.expires if (e := fp.lookup(mac, vlan)) else None)
    assert {r.mac for r in gone} == {A, B}
    assert fp.leases() == []
    assert srv.store.get(A, 0).state == EXPIRED
    assert program.test_run(wire.request_frame(A, wire.DISCOVER)).verdict == "XDP_PASS"


def test_renewal_in_xdp_moves_the_store_on(env):
    srv, fp, program = env
    srv.clock.offset = -500  # bound 500 s ago: 100 s left in the store
    ip = dora(srv, A)
    srv.clock.offset = 0
    renew = wire.request_frame(A, wire.REQUEST, ciaddr=ip, dst_ip=SERVER, dst_mac=SMAC)
    assert program.test_run(renew).verdict == "XDP_TX"  # the subscriber renews; the daemon never sees it
    cached = fp.lookup(A, 0)
    assert cached is not None and abs(cached.expires - (time.time() + 600)) < 5
    srv.clock.offset = 200  # the store's expiry has passed, the kernel's has not
    assert srv.sweep(lambda mac, vlan: e.expires if (e := fp.lookup(mac, vlan)) else None) == []
    row = srv.store.get(A, 0)
    assert row.state == BOUND and abs(row.expires - cached.expires) < 1
    assert fp.lookup(A, 0) is not None
