"""The slow path's decisions and its pools file (no root, no kernel): RFC 2131 4.3 step by step,
with a SQLite store in a temporary folder and a recording stand-in for the kernel's cache."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetlab.tools.dhcp import config as dhcp_config
from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.server import DhcpServer, NoCache
from packetlab.tools.dhcp.store import BOUND, EXPIRED, RELEASED, LeaseStore

SERVER, SMAC = "10.67.0.1", "02:67:00:00:00:01"
A, B, C = "02:00:00:00:00:0a", "02:00:00:00:00:0b", "02:00:00:00:00:0c"
DOC = {
    "server": {"id": SERVER, "offer_hold": 30},
    "pools": [
        {
            "name": "p",
            "subnet": "10.67.0.0/24",
            "range": "10.67.0.100-10.67.0.101",
            "router": SERVER,
            "dns": [SERVER],
            "lease_time": 600,
        }
    ],
}


class RecordingCache(NoCache):
    def __init__(self) -> None:
        self.entries: dict[tuple[str, int], tuple[str, int, float]] = {}

    def put(self, mac, vlan, ip, pool, expires):
        self.entries[(mac, vlan)] = (ip, pool, expires)

    def remove(self, mac, vlan):
        return self.entries.pop((mac, vlan), None) is not None


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def srv(tmp_path):
    store = LeaseStore(tmp_path / "leases.sqlite")
    s = DhcpServer(dhcp_config.parse(DOC), store, SMAC, cache=RecordingCache(), clock=Clock())
    yield s
    store.close()


def ask(srv, mac, mtype, **kw):
    return srv.handle(wire.parse_frame(wire.request_frame(mac, mtype, **kw)))


def dora(srv, mac):
    offer = ask(srv, mac, wire.DISCOVER)
    assert offer.reply == "OFFER"
    ack = ask(srv, mac, wire.REQUEST, requested=offer.ip, server_id=SERVER)
    assert ack.reply == "ACK"
    return ack.ip


def test_dora_binds_and_fills_the_cache(srv):
    ip = dora(srv, A)
    assert ip == "10.67.0.100"
    assert srv.store.get(A, 0).state == BOUND
    assert srv.cache.entries[(A, 0)] == (ip, 0, srv.clock() + 600)
    reply = wire.parse_reply(ask(srv, A, wire.DISCOVER).frame)
    assert reply.yiaddr == ip, "a bound client that asks again gets its own address"


def test_offer_alone_is_not_stored_and_another_servers_choice_frees_it(srv):
    offer = ask(srv, A, wire.DISCOVER)
    assert srv.store.get(A, 0) is None and (A, 0) not in srv.cache.entries
    assert ask(srv, A, wire.DISCOVER).ip == offer.ip, "a repeated DISCOVER gets the same offer"
    assert ask(srv, B, wire.DISCOVER, requested=offer.ip).ip != offer.ip, "an address on offer is held"
    out = ask(srv, A, wire.REQUEST, requested=offer.ip, server_id="10.67.0.2")
    assert out.frame is None
    assert ask(srv, C, wire.DISCOVER, requested=offer.ip).ip == offer.ip, "the client went elsewhere: free again"


def test_offer_expires_after_offer_hold(srv):
    offer = ask(srv, A, wire.DISCOVER)
    srv.clock.now += 31
    srv.sweep()
    assert ask(srv, A, wire.REQUEST, requested=offer.ip, server_id=SERVER).reply == "NAK"


def test_pool_exhaustion_then_reuse_of_the_longest_unused(srv):
    dora(srv, A)
    dora(srv, B)
    assert ask(srv, C, wire.DISCOVER).frame is None, "two addresses, two clients"
    ask(srv, A, wire.RELEASE, ciaddr="10.67.0.100")
    assert (A, 0) not in srv.cache.entries
    assert ask(srv, C, wire.DISCOVER).ip == "10.67.0.100"


def test_released_address_comes_back_to_its_client(srv):
    ip = dora(srv, A)
    ask(srv, A, wire.RELEASE, ciaddr=ip)
    assert srv.store.get(A, 0).state == RELEASED
    assert dora(srv, A) == ip


def test_init_reboot_and_renewal(srv):
    ip = dora(srv, A)
    assert ask(srv, A, wire.REQUEST, requested=ip).reply == "ACK"  # INIT-REBOOT
    nak = ask(srv, A, wire.REQUEST, requested="10.67.0.101")
    assert nak.reply == "NAK" and wire.parse_reply(nak.frame).yiaddr == "0.0.0.0"
    assert ask(srv, A, wire.REQUEST, requested="192.168.1.5").reply == "NAK"  # another network
    assert ask(srv, B, wire.REQUEST, requested="10.67.0.101").frame is None  # no record: silent
    srv.clock.now += 100
    renew = ask(srv, A, wire.REQUEST, ciaddr=ip, dst_ip=SERVER, dst_mac=SMAC)
    assert renew.reply == "ACK" and srv.store.get(A, 0).expires == srv.clock() + 600
    assert ask(srv, B, wire.REQUEST, ciaddr=ip).reply == "NAK"


def test_decline_quarantines_the_address(srv):
    ip = dora(srv, A)
    ask(srv, A, wire.DECLINE, requested=ip)
    assert srv.store.get(A, 0) is None and (A, 0) not in srv.cache.entries
    assert dora(srv, A) == "10.67.0.101"


def test_expiry_removes_the_cache_entry_unless_the_fast_path_renewed(srv):
    ip_a, ip_b = dora(srv, A), dora(srv, B)
    srv.clock.now += 601
    renewed = {(A, 0): srv.clock() + 300}  # A renewed in XDP; B did not come back
    gone = srv.sweep(lambda mac, vlan: renewed.get((mac, vlan)))
    assert [r.mac for r in gone] == [B]
    assert srv.store.get(B, 0).state == EXPIRED and (B, 0) not in srv.cache.entries
    assert srv.store.get(A, 0).state == BOUND and srv.store.get(A, 0).expires == srv.clock() + 300
    assert (A, 0) in srv.cache.entries and ip_a != ip_b


def test_warm_up_and_restart_keep_leases(tmp_path):
    path = tmp_path / "leases.sqlite"
    store = LeaseStore(path)
    first = DhcpServer(dhcp_config.parse(DOC), store, SMAC, cache=RecordingCache())
    ip = dora(first, A)
    store.close()
    store = LeaseStore(path)
    cache = RecordingCache()
    again = DhcpServer(dhcp_config.parse(DOC), store, SMAC, cache=cache)
    assert again.warm_up(cache) == 1 and cache.entries[(A, 0)][0] == ip
    store.close()


def test_malformed_requests_are_refused_not_crashing(srv):
    with pytest.raises(wire.MalformedDhcp):
        wire.parse_frame(wire.request_frame(A, wire.DISCOVER)[:100])
    out = srv.handle(wire.parse_frame(wire.request_frame(A, wire.INFORM, ciaddr="10.67.0.5")))
    assert out.frame is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"server": {"id": "10.67.0.300"}}, "server.id"),
        ({"pools": []}, "pools: must be a non-empty list"),
        ({"pools": [{**DOC["pools"][0], "range": "10.67.0.100-10.67.1.5"}]}, "pools[0].range: 10.67.1.5"),
        (
            {"pools": [{**DOC["pools"][0], "range": "10.67.0.1-10.67.0.5"}]},
            "pools[0].range: contains the server's own address",
        ),
        ({"pools": [{**DOC["pools"][0], "dns": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}]}, "pools[0].dns: 3 servers"),
        ({"pools": [{**DOC["pools"][0], "lease_time": 5}]}, "pools[0].lease_time"),
        ({"pools": [DOC["pools"][0], DOC["pools"][0]]}, "pools[1].name"),
        ({"rate_limit": {"per_mac": -1}}, "rate_limit.per_mac"),
        ({"colour": "blue"}, "colour: unknown key"),
    ],
)
def test_config_errors_name_file_and_field(change, message):
    with pytest.raises(dhcp_config.ConfigError) as err:
        dhcp_config.parse({**DOC, **change}, source="pools.yaml")
    assert f"pools.yaml: {message}" in str(err.value)


def test_example_pools_file_is_valid_and_broken_one_is_not():
    from packetlab.paths import REPO_ROOT

    good = dhcp_config.load(REPO_ROOT / "packetlab/tools/dhcp/examples/pools.yaml")
    assert [p.vlan for p in good.pools] == [0, 100]
    with pytest.raises(dhcp_config.ConfigError, match="broken.yaml: server.id"):
        dhcp_config.load(REPO_ROOT / "packetlab/tools/dhcp/examples/broken.yaml")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.binary(min_size=0, max_size=400),
    cut=st.integers(0, 342),
    flips=st.lists(st.tuples(st.integers(0, 341), st.integers(0, 255)), max_size=6),
)
def test_hostile_frames_never_crash_the_slow_path(srv, data, cut, flips):
    """Whatever arrives, the codec refuses it with MalformedDhcp or the server decides: nothing else."""
    for frame in (data, _mangled(wire.request_frame(A, wire.REQUEST, requested="10.67.0.100"), cut, flips)):
        try:
            msg = wire.parse_frame(frame)
        except wire.MalformedDhcp:
            continue
        srv.handle(msg)


def _mangled(frame: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(frame[: max(14, len(frame) - cut)])
    for pos, val in flips:
        if pos < len(out):
            out[pos] = val
    return bytes(out)


def test_outcome_names_what_happened_to_the_lease(srv):
    """The daemon logs these as `lease` events: grant, renew, release, decline; an OFFER changes no lease."""
    offer = ask(srv, A, wire.DISCOVER)
    assert offer.reply == "OFFER" and offer.lease is None
    ack = ask(srv, A, wire.REQUEST, requested=offer.ip, server_id=SERVER)
    assert (ack.lease, ack.expires) == ("grant", srv.clock() + 600)
    srv.clock.now += 300
    again = ask(srv, A, wire.REQUEST, ciaddr=offer.ip, dst_ip=SERVER)
    assert (again.reply, again.lease, again.expires) == ("ACK", "renew", srv.clock() + 600)
    gone = ask(srv, A, wire.RELEASE, ciaddr=offer.ip, dst_ip=SERVER)
    assert (gone.lease, gone.ip) == ("release", offer.ip)
    assert ask(srv, A, wire.DISCOVER).ip == offer.ip
    back = ask(srv, A, wire.REQUEST, requested=offer.ip, server_id=SERVER)
    assert back.lease == "grant", "a released address bound again is a new grant"
    declined = ask(srv, A, wire.DECLINE, requested=offer.ip, server_id=SERVER)
    assert declined.lease == "decline"


def test_data_rate_limit_is_optional_and_checked():
    assert dhcp_config.parse(DOC).rate_limit.data_rate == 0  # absent: off
    on = dhcp_config.parse({**DOC, "rate_limit": {"data_rate": 125_000, "data_burst": 64_000}})
    assert (on.rate_limit.data_rate, on.rate_limit.data_burst) == (125_000, 64_000)
    with pytest.raises(dhcp_config.ConfigError, match=r"rate_limit.data_burst: a bucket of 1000 bytes can never pay"):
        dhcp_config.parse({**DOC, "rate_limit": {"data_rate": 125_000, "data_burst": 1000}})
    with pytest.raises(dhcp_config.ConfigError, match=r"rate_limit.data_rate: -1 is not a whole number"):
        dhcp_config.parse({**DOC, "rate_limit": {"data_rate": -1}})
