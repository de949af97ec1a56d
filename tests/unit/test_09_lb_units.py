"""Module 09 pure logic: Maglev properties, the flow hash, the connection tracker, config validation."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetlab.tools.lb import maglev
from packetlab.tools.lb.config import ConfigError, LBConfig, is_prime, load, make_vip, next_prime
from packetlab.tools.lb.flows import (
    CLOSED,
    ESTABLISHED,
    FIN_WAIT,
    NONE,
    SYN_SENT,
    UDP,
    next_state,
    replay,
    starts_new_connection,
)

M = 65537


def names(n: int) -> list[str]:
    return [f"10.9.2.{10 + i}:80" for i in range(n)]


@pytest.mark.parametrize("weights", [[1, 1, 1], [1, 2, 3], [5, 1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 10], [3, 0, 1]])
def test_maglev_balance_is_within_one_percent_of_the_weights(weights):
    table = maglev.build_table(names(len(weights)), weights, M)
    assert maglev.EMPTY not in table
    total = sum(weights)
    for share, w in zip(maglev.shares(table, len(weights)), weights):
        assert abs(share - w / total) <= 0.01 * (w / total) + 1e-12, (share, w / total)


@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_removing_one_of_n_backends_moves_about_one_nth_of_the_table(n):
    before = maglev.named(maglev.build_table(names(n), size=M), names(n))
    worst = 0.0
    for gone in range(n):
        rest = names(n)[:gone] + names(n)[gone + 1 :]
        after = maglev.named(maglev.build_table(rest, size=M), rest)
        moved = maglev.disruption(before, after)
        assert moved >= (1 / n) * 0.99  # the removed backend's slots must move...
        worst = max(worst, moved)
    assert worst <= 1.1 / n  # ...and hardly anything else does (Maglev's promise)


def test_adding_a_backend_moves_about_one_nth_and_modulo_hashing_moves_most():
    n = 6
    before = maglev.named(maglev.build_table(names(n), size=M), names(n))
    after = maglev.named(maglev.build_table(names(n + 1), size=M), names(n + 1))
    assert maglev.disruption(before, after) <= 1.1 / (n + 1)
    flows = [(f"10.9.1.{random.Random(i).randint(1, 250)}", 1024 + i) for i in range(5000)]
    mod_moved = sum(
        maglev.flow_hash(a, "10.9.100.1", p, 80) % n != maglev.flow_hash(a, "10.9.100.1", p, 80) % (n + 1)
        for a, p in flows
    ) / len(flows)
    assert mod_moved > 0.8  # hash % N: almost everything moves


def test_table_depends_only_on_backend_names_not_order():
    a = maglev.named(maglev.build_table(["x", "y", "z"], size=251), ["x", "y", "z"])
    b = maglev.named(maglev.build_table(["z", "x", "y"], [1, 1, 1], 251), ["z", "x", "y"])
    assert sum(p != q for p, q in zip(a, b)) / 251 < 0.05


def test_maglev_edge_cases():
    assert maglev.build_table([], size=7) == [maglev.EMPTY] * 7
    assert set(maglev.build_table(["a", "b"], [0, 0], 7)) == {maglev.EMPTY}
    assert set(maglev.build_table(["a", "b"], [0, 4], 7)) == {1}
    with pytest.raises(ValueError):
        maglev.build_table(["a"], size=100)
    off, skip = maglev.permutation("a", 13)
    assert 0 <= off < 13 and 1 <= skip < 13


def test_flow_hash_is_the_documented_function():
    # fixed vectors: the XDP program computes the same (checked against the kernel in test_09_lb_bpf.py)
    h = maglev.flow_hash("10.9.1.11", "10.9.100.1", 40000, 80, "tcp")
    assert h == maglev.flow_hash(int.from_bytes(bytes([10, 9, 1, 11]), "big"), "10.9.100.1", 40000, 80, 6)
    assert 0 <= h < 2**32
    assert h != maglev.flow_hash("10.9.1.11", "10.9.100.1", 40001, 80, "tcp")
    assert h != maglev.flow_hash("10.9.1.11", "10.9.100.1", 40000, 80, "udp")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=2, max_size=6))
def test_weighted_shares_are_proportional(weights):
    table = maglev.build_table(names(len(weights)), weights, 4099)
    total = sum(weights)
    for share, w in zip(maglev.shares(table, len(weights)), weights):
        assert abs(share - w / total) < 0.01


def test_connection_tracker_transitions():
    assert replay([("S", True), ("SA", False), ("A", True)]) == [SYN_SENT, SYN_SENT, ESTABLISHED]
    assert replay([("A", True)]) == [ESTABLISHED]  # picked up mid-stream
    assert replay([("S", True), ("S", True)]) == [SYN_SENT, SYN_SENT]  # a retransmitted SYN
    assert replay([("S", True), ("A", True), ("FA", True), ("A", False), ("FA", False)])[-1] == FIN_WAIT
    assert replay([("S", True), ("R", False)]) == [SYN_SENT, CLOSED]
    assert replay([("S", True), ("A", True), ("R", True), ("S", True)]) == [SYN_SENT, ESTABLISHED, CLOSED, SYN_SENT]
    assert replay([("", True), ("", False)], proto="udp") == [UDP, UDP]
    assert next_state(CLOSED, "tcp", "FA", True) == CLOSED
    assert next_state(ESTABLISHED, "tcp", "S", False) == ESTABLISHED  # a SYN from the server changes nothing
    assert next_state(NONE, "tcp", "SA", False) == SYN_SENT
    assert starts_new_connection(FIN_WAIT, "S") and starts_new_connection(CLOSED, 0x02)
    assert not starts_new_connection(ESTABLISHED, "S") and not starts_new_connection(CLOSED, "SA")


def test_primes():
    assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]
    assert is_prime(65537) and not is_prime(65536) and next_prime(65530) == 65537


GOOD = {
    "vips": [
        {
            "name": "web",
            "address": "10.9.100.1",
            "port": 80,
            "table_size": 251,
            "backends": [{"address": "10.9.2.11", "weight": 2}, "10.9.2.12:8080"],
        }
    ]
}


def test_a_good_config_round_trips():
    cfg = load(GOOD)
    assert cfg.vip("web").backends[1].port == 8080 and cfg.vip("10.9.100.1:80/tcp").mode == "nat"
    assert load(cfg.to_yaml()) == cfg and load(cfg.to_dict()) == cfg
    assert load("packetlab/tools/lb/examples/web-nat.yaml").vip("web").health.type == "http"
    assert load("packetlab/tools/lb/examples/two-vips.yaml").vip("echo").protocol == "udp"
    assert load({"vips": [{"address": "10.9.100.1", "port": 53, "protocol": "udp"}]}).vips[0].health.type == "none"
    assert cfg.with_backends("web", []).vip("web").backends == ()
    assert make_vip("10.96.0.10", 80, ["10.244.1.2:8080"]).backends[0].port == 8080


@pytest.mark.parametrize(
    "change, message",
    [
        ({"address": "10.9.100.256"}, "not an IPv4 address"),
        ({"address": "fd00::1"}, "IPv6 VIPs are not supported"),
        ({"address": "224.0.0.1"}, "cannot be a VIP"),
        ({"port": 0}, "not a port number"),
        ({"protocol": "sctp"}, "not one of tcp, udp"),
        ({"mode": "tunnel"}, "not one of nat, dsr"),
        ({"table_size": 250}, "the next prime is 251"),
        ({"table_size": 70001}, "no larger than 65537"),
        ({"table_size": 7}, "too small"),
        ({"sticky": "yes"}, "true or false"),
        ({"health": {"type": "icmp"}}, "not one of tcp, http, none"),
        ({"health": {"interval": 0}}, "seconds"),
        ({"health": {"fall": 0}}, "integer from 1"),
        ({"colour": "blue"}, "unknown field"),
        ({"mode": "dsr"}, "DSR cannot do"),
        ({"backends": [{"address": "10.9.2.11", "weight": 1001}]}, "from 0 to 1000"),
        ({"backends": [{"address": "10.9.100.1"}]}, "cannot be the VIP itself"),
        ({"backends": [{"port": 80}]}, "address: required"),
        ({"backends": ["10.9.2.11", "10.9.2.11:80"]}, "listed twice"),
        ({"backends": "10.9.2.11"}, "must be a list"),
        ({"protocol": "udp", "health": {"type": "tcp"}}, "cannot be probed"),
    ],
)
def test_config_errors_name_the_field(change, message):
    vip = dict(GOOD["vips"][0], **change)
    with pytest.raises(ConfigError) as err:
        load({"vips": [vip]})
    assert message in str(err.value) and "vips[0]" in str(err.value) and "nothing was applied" in str(err.value)


def test_every_problem_is_reported_at_once_and_top_level_checks():
    with pytest.raises(ConfigError) as err:
        load("packetlab/tools/lb/examples/broken.yaml")
    assert len(err.value.problems) >= 6
    with pytest.raises(ConfigError, match="top level"):
        load("- just a list\n- of things\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load("vips: [unclosed\n")
    two = {"vips": [GOOD["vips"][0], dict(GOOD["vips"][0])]}
    with pytest.raises(ConfigError, match="already defined"):
        load(two)
    many = {"vips": [{"address": f"10.9.100.{i}", "port": 80} for i in range(1, 18)]}
    with pytest.raises(ConfigError, match="at most 16"):
        load(many)
    assert load(None) == LBConfig()


# ---- encode: what the maps hold for a config (pure, no kernel) ---------------------------------------
def test_plan_keeps_what_stays_and_reuses_the_oldest_freed_slot():
    from packetlab.tools.lb.config import MAX_BACKENDS
    from packetlab.tools.lb.encode import plan_slots

    web = make_vip("10.9.100.1", 80, ["10.9.2.11:80", "10.9.2.12:80"], name="web")
    rows, slots, retired = plan_slots(LBConfig((web,)), {}, {}, [])
    assert rows == {web.key: 0} and slots == {"10.9.2.11:80": 0, "10.9.2.12:80": 1} and retired == []
    # b2 leaves, b3 arrives: b1 keeps slot 0, b2's slot is retired (its flows' counters stay), b3 gets a fresh one
    web2 = make_vip("10.9.100.1", 80, ["10.9.2.11:80", "10.9.2.13:80"], name="web")
    rows2, slots2, retired2 = plan_slots(LBConfig((web2,)), rows, slots, retired)
    assert rows2 == rows and slots2 == {"10.9.2.11:80": 0, "10.9.2.13:80": 2} and retired2 == [1]
    # with no fresh slot left, the one freed longest ago is reused
    full = dict(slots2, **{f"10.9.3.{i}:80": i for i in range(3, MAX_BACKENDS)})
    back = make_vip("10.9.100.1", 80, [*full, "10.9.2.12:80"], name="web")
    _, slots3, retired3 = plan_slots(LBConfig((back,)), rows2, full, retired2)
    assert slots3["10.9.2.12:80"] == 1 and retired3 == []


def test_backend_entries_and_the_address_filter():
    from packetlab.tools.lb import layout
    from packetlab.tools.lb.encode import addr_bucket, backend_entry, be16, be32, filter_marks, vip_meta
    from packetlab.tools.lb.nexthop import NextHop

    hop = NextHop("10.9.2.11", "eth1", 3, "10.9.2.1", None, "02:00:00:00:00:0b", "02:00:00:00:00:01")
    e = backend_entry("10.9.2.11:8080", up=True, hop=hop, redirect=True)
    assert e.flags == layout.BE_F_ACTIVE | layout.BE_F_UP | layout.BE_F_NEXTHOP | layout.BE_F_REDIRECT
    assert (e.addr, e.port, e.ifindex, bytes(e.dmac)) == (
        be32("10.9.2.11"),
        be16(8080),
        3,
        bytes.fromhex("02000000000b"),
    )
    unresolved = replace(hop, mac=None)
    down = backend_entry("10.9.2.11:80", up=False, hop=unresolved, redirect=True)
    assert down.flags == layout.BE_F_ACTIVE  # down, and no MAC: not in the ring, and the kernel would forward
    nat = make_vip("10.9.100.1", 80, ["10.9.2.11:80"], mode="nat")
    dsr = make_vip("10.9.100.2", 80, ["10.9.2.12:80"], mode="dsr", sticky=False)
    marks = filter_marks(LBConfig((nat, dsr)))
    assert (
        marks[addr_bucket("10.9.100.1")] & layout.FILTER_VIP_DST
        and marks[addr_bucket("10.9.2.11")] & layout.FILTER_BE_SRC
    )
    assert not marks[addr_bucket("10.9.2.12")] & layout.FILTER_BE_SRC  # DSR replies never pass the LB
    assert vip_meta(dsr, 5).flags == layout.VIP_F_DSR | layout.VIP_F_ACTIVE and vip_meta(dsr, 5).index == 5
