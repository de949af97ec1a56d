"""Real DHCP clients (busybox udhcpc) against `packetlab dhcp serve` and its XDP fast path.

One gateway namespace, a subscriber bridge, two subscribers. The first DORA of a
subscriber goes to the slow path; after it, the subscriber's DISCOVER, REQUEST
and renewals are answered in XDP — also while the daemon is stopped. A released
address comes back to the same subscriber from the slow path after a restart
(the SQLite store survived it). The lab fixture checks that everything,
including the fast path's pins, is gone afterwards.
"""

from __future__ import annotations

import ipaddress

import pytest

from packetlab.course.grading import CheckFailed
from packetlab.course.m11c_dhcp_fastpath import helpers
from packetlab.course.m11c_dhcp_fastpath.exercises import check_fixed_checksum, check_map_sizing, check_path_predictions
from packetlab.course.m11c_dhcp_fastpath.topology import SERVER_IP, build
from packetlab.show.prometheus import parse_samples
from packetlab.tools.dhcp.store import BOUND, RELEASED, LeaseStore

POOL = ipaddress.IPv4Network("10.67.0.0/16")


def delta(after: dict[str, int], before: dict[str, int], key: str) -> int:
    return after.get(key, 0) - before.get(key, 0)


def test_lease_renew_release_and_restart(lab):
    t = build(lab, 2)
    t.start_server()
    s1, s2 = t.subs

    # first contact: DISCOVER and REQUEST from an unknown MAC go to the slow path
    first = t.lease_once(s1)
    ip1 = first[1]
    assert ipaddress.IPv4Address(ip1) in POOL and first[3] == SERVER_IP and first[2] == "600"
    assert f"{ip1}/16" in s1.host.addresses("eth0")
    st = t.stats()
    assert (st["pass_unknown_mac"], st["fast_offer"], st["fast_ack"]) == (2, 0, 0)
    fp = t.fast_path()
    try:
        cached = fp.lookup(s1.mac, 0)
        assert cached is not None and cached.ip == ip1, "the ACK put the lease into the kernel's cache"
    finally:
        fp.close()

    # the same subscriber again: the whole DORA is answered in XDP
    before = t.stats()
    assert t.lease_once(s1)[1] == ip1
    after = t.stats()
    assert (delta(after, before, "fast_offer"), delta(after, before, "fast_ack")) == (1, 1)

    # a long-running client: bound by the slow path, renewed (unicast) by the fast path
    bound = t.run_client(s2)
    ip2 = bound[1]
    assert ip2 != ip1
    before = t.stats()
    assert t.renew(s2)[1] == ip2
    after = t.stats()
    answered = delta(after, before, "fast_ack")
    assert answered >= 1 and delta(after, before, "dhcp") == answered, "every renewal frame answered in XDP"

    # RELEASE goes to the slow path: the store remembers the address, the cache forgets it
    t.release(s2)
    t.stop_client(s2)
    store = LeaseStore(t.store_path)
    try:
        row = store.get(s2.mac, 0)
        assert row is not None and (row.state, row.ip) == (RELEASED, ip2)
    finally:
        store.close()
    fp = t.fast_path()
    try:
        assert fp.lookup(s2.mac, 0) is None
    finally:
        fp.close()

    # the daemon stops: the pinned fast path keeps answering the cached subscriber
    t.stop_server()
    before = t.stats()
    assert t.lease_once(s1)[1] == ip1
    after = t.stats()
    assert delta(after, before, "fast_ack") == 1 and delta(after, before, "dhcp") == 2

    # restarted: s2 gets its released address back from the slow path, from the store
    t.start_server()
    assert t.server is not None and '"fast_path": "reused"' in t.server.text(5000)
    assert t.lease_once(s2)[1] == ip2
    samples = parse_samples(t.metrics())
    assert (
        samples[("packetlab_dhcp_requests_total", frozenset({("type", "REQUEST"), ("reply", "ACK"), ("path", "slow")}))]
        == 1
    )
    assert samples[("packetlab_dhcp_leases", frozenset({("pool", "subscribers"), ("state", BOUND)}))] == 2
    assert samples[("packetlab_dhcp_cache_entries", frozenset())] == 2
    t.stop_server()
    exercises_refuse_wrong_answers(t)


def exercises_refuse_wrong_answers(t):
    """The three checks of lab 11c on this lab: a wrong answer fails and says why, the right one passes."""
    steps = helpers.prediction_sequence(t)
    right = [helpers.path_of(t, s.frame) for s in steps]
    assert right == ["fast", "fast", "slow", "slow", "fast", "slow", "slow", "slow"]
    with pytest.raises(CheckFailed, match="1 of 8 wrong"):
        check_path_predictions(["slow", *right[1:]], t, steps)
    assert check_path_predictions(right, t, steps)

    original, broken = helpers.broken_reply(t)
    with pytest.raises(CheckFailed, match="UDP checksum still does not verify"):
        check_fixed_checksum(broken, original, broken)
    with pytest.raises(CheckFailed, match="bytes other than the UDP checksum"):
        check_fixed_checksum(original, original, broken)  # valid, but the lease time went back
    from scapy.layers.inet import UDP
    from scapy.layers.l2 import Ether

    redone = Ether(broken)
    del redone[UDP].chksum
    assert check_fixed_checksum(bytes(redone), original, broken)

    with pytest.raises(CheckFailed, match="E2BIG"):
        check_map_sizing({"leases": 50_000, "buckets": 100_000, "mib": 13}, 100_000)
    with pytest.raises(CheckFailed, match="evicts buckets in use"):
        check_map_sizing({"leases": 100_000, "buckets": 10_000, "mib": 10}, 100_000)
    with pytest.raises(CheckFailed, match=r"MiB.*you said 4.6"):  # 6.18: the kernel's figure; 6.1: the model
        check_map_sizing({"leases": 100_000, "buckets": 100_000, "mib": 4.6}, 100_000)  # the payload alone
    assert check_map_sizing({"leases": 100_000, "buckets": 100_000, "mib": 17.7}, 100_000)
