"""Module 07 (XDP) on the real kernel: actions, native vs generic, the counter and its
live chart, the XDP_TX echo responder, the devmap wire, run-time statistics, the
exercises' checks and a smoke run of ``python -m packetlab.bench xdp``.

Nothing here asserts on speed. Malformed-input verdicts are in test_07_malformed.py."""

from __future__ import annotations

import re
import threading

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether

from packetlab.course.grading import CheckFailed
from packetlab.course.m07_xdp import exercises as ex
from packetlab.course.m07_xdp.chart import LiveCounterChart
from packetlab.course.m07_xdp.counters import percpu_array, percpu_total, protocol_counts, source_counts
from packetlab.course.m07_xdp.host_counters import ECHO_COUNTERS, counter_delta, icmp_counters
from packetlab.course.m07_xdp.redirect import devmap_set, ifindex
from packetlab.course.m07_xdp.trace import XDP_ACTIONS, XdpTrace, set_action
from packetlab.ebpf import features as kernel_probes
from packetlab.ebpf.live_frames import assert_in_namespace, xdp_frames_flood
from packetlab.ebpf.loader import acquire, release
from packetlab.ebpf.stats import ProgStats, bpf_stats
from packetlab.topo import netns
from packetlab.topo.traffic import flood


def ethtool_stats(host, dev="eth0") -> dict[str, int]:
    out = host.run(["ethtool", "-S", dev], check=True).stdout
    return {k.strip(): int(v) for k, v in re.findall(r"^\s*(\w+):\s*(\d+)$", out, re.M)}


def ping_fresh(src, dst_ip, **kw):
    """Ping after flushing the neighbour cache, so ARP's retry timers from an earlier
    failed attempt cannot blur the result."""
    src.run(["ip", "neigh", "flush", "dev", "eth0"])
    return src.ping(dst_ip, **{"count": 2, "timeout": 1, "interval": 0.2, **kw})


# ---- pure logic ------------------------------------------------------------------------------


def test_bpf_stats_window_uses_an_fd_and_says_so():
    """Inside the window the kernel times our runs. (Whether runs *outside* it are timed
    depends on whether anyone else on the machine has stats on, so that is not asserted.)"""
    prog = acquire("bpf/07-xdp-drop.c")
    frame = bytes(Ether() / IP() / UDP())
    try:
        messages: list[str] = []
        start = ProgStats.read(prog.fd)
        with bpf_stats(announce=messages.append) as method:
            assert method == "fd"
            prog.test_run(frame, repeat=500)
        inside = ProgStats.read(prog.fd).since(start)
        assert inside.runs == 500 and inside.run_time_ns > 0
        assert "ON for this measurement only" in messages[0] and "untouched" in messages[0]
        assert "released" in messages[1]
    finally:
        release(prog)


def test_prog_stats_rejects_a_non_program_fd(tmp_path):
    with open(tmp_path / "f", "w") as f, pytest.raises(Exception, match="not a BPF program"):
        ProgStats.read(f.fileno())


# ---- exercise checks (pure or test-run based) -----------------------------------------------------


def test_check_parser_frame():
    good = (
        Ether(src="02:00:00:00:07:01", dst="02:00:00:00:07:02")
        / Dot1Q(vlan=7)
        / IPv6(src="fd07::1", dst="fd07::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / UDP(dport=53)
    )
    assert ex.check_parser_frame(good)
    no_tag = Ether() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP()
    five = (
        Ether()
        / Dot1Q()
        / IPv6()
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrDestOpt()
        / UDP()
    )
    cut = bytes(good)[:-4]  # the UDP header cut in half
    for frame, why in [(no_tag, "802.1Q"), (five, "IPv6 other"), (cut, "no UDP header"), (None, "no frame")]:
        with pytest.raises(CheckFailed, match=why):
            ex.check_parser_frame(frame)


def _rfc1624(old: int) -> int:
    s = (~old & 0xFFFF) + (~0x0800 & 0xFFFF)
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def test_check_reply_checksum():
    assert ex.check_reply_checksum(_rfc1624)
    with pytest.raises(CheckFailed, match="end-around carry"):
        ex.check_reply_checksum(lambda old: (old + 0x0800) & 0xFFFF)
    with pytest.raises(CheckFailed, match="does not verify"):
        ex.check_reply_checksum(lambda old: old)
    with pytest.raises(CheckFailed, match="not a function"):
        ex.check_reply_checksum(42)


# ---- live: h1 -- r -- h2, h3 -- r -----------------------------------------------------------------
@pytest.fixture(scope="module")
def routed(module_lab):
    """h1, h2, h3 each behind router r (IPv4 and IPv6), all reachable."""
    h1, h2, h3 = module_lab.host("h1"), module_lab.host("h2"), module_lab.host("h3")
    r = module_lab.router("r")
    module_lab.link(h1, r, ip=["10.7.1.1/24", "fd07:1::1/64"], peer_ip=["10.7.1.254/24", "fd07:1::fe/64"])
    module_lab.link(h2, r, ip=["10.7.2.2/24", "fd07:2::2/64"], peer_ip=["10.7.2.254/24", "fd07:2::fe/64"])
    module_lab.link(h3, r, ip=["10.7.3.3/24", "fd07:3::3/64"], peer_ip=["10.7.3.254/24", "fd07:3::fe/64"])
    for h, n in ((h1, 1), (h2, 2), (h3, 3)):
        h.add_route("default", via=f"10.7.{n}.254")
        h.add_route("default", via=f"fd07:{n}::fe")
    assert h1.ping("10.7.2.2", check=True).ok and h3.ping("fd07:2::2", check=True).ok
    return module_lab


def test_actions_pass_drop_aborted(routed):
    h1, h2 = routed.nodes["h1"], routed.nodes["h2"]
    with XdpTrace() as trace, h2.attach_xdp("bpf/07-xdp-actions.c") as att:
        results = {}
        for action in ("XDP_PASS", "XDP_DROP", "XDP_ABORTED"):
            set_action(att, action)
            before = ethtool_stats(h2)["rx_queue_0_xdp_drops"]
            results[action] = (
                h1.ping("10.7.2.2", count=2, timeout=1, interval=0.1).received,
                ethtool_stats(h2)["rx_queue_0_xdp_drops"] - before,
            )
        events = trace.events(att)
        verdicts = {XDP_ACTIONS[k]: n for k, n in enumerate(percpu_array(att, "verdicts"))}
    assert results["XDP_PASS"] == (2, 0)
    assert results["XDP_DROP"][0] == 0 and results["XDP_DROP"][1] >= 2
    assert results["XDP_ABORTED"][0] == 0 and results["XDP_ABORTED"][1] >= 2
    assert events.get(("exception", "XDP_ABORTED"), 0) >= 2  # ABORTED is traced ...
    assert ("exception", "XDP_DROP") not in events  # ... DROP is not
    assert verdicts["XDP_PASS"] >= 2 and verdicts["XDP_DROP"] >= 2 and verdicts["XDP_ABORTED"] >= 2


def test_native_and_generic_on_veth(routed):
    h1, h2 = routed.nodes["h1"], routed.nodes["h2"]
    for mode, driver_sees in (("native", True), ("generic", False)):
        with h2.attach_xdp("bpf/07-xdp-counter.c", mode=mode) as att:
            assert att.mode == mode
            assert ("xdpgeneric" if mode == "generic" else " xdp ") in h2.run(["ip", "link", "show", "eth0"]).stdout
            before = ethtool_stats(h2)["rx_queue_0_xdp_packets"]
            counted = protocol_counts(att)["IPv4 ICMP"]
            assert h1.ping("10.7.2.2", count=3, interval=0.1).received == 3
            assert protocol_counts(att)["IPv4 ICMP"] - counted >= 3  # the program runs either way
            moved = ethtool_stats(h2)["rx_queue_0_xdp_packets"] - before
            assert (moved >= 3) == driver_sees, f"{mode}: veth's own XDP counter moved by {moved}"


def test_counter_live_chart_while_traffic_flows(routed):
    h1, h2, h3, r = (routed.nodes[n] for n in ("h1", "h2", "h3", "r"))
    with h2.attach_xdp("bpf/07-xdp-counter.c") as att:
        chart = LiveCounterChart(att, interval=0.2)
        _ = chart.widget  # build the widgets, as a notebook would
        chart.start()
        assert chart.running
        assert h3.ping("fd07:2::2", count=5, interval=0.1).received == 5
        result = flood(h1, h2, src_ip="10.7.1.1", dst_ip="10.7.2.2", dst_mac=r.mac("eth0"), seconds=1)
        summary = chart.stop()
    assert not chart.running and summary.error is None
    assert summary.samples >= 3
    assert chart.moved()
    assert summary.protocol_delta["IPv4 UDP"] >= 0.9 * result.received
    assert summary.protocol_delta["IPv6 ICMPv6"] >= 5
    assert summary.source_delta["10.7.1.1"] == summary.protocol_delta["IPv4 UDP"]
    assert summary.source_delta["fd07:3::3"] >= 5
    assert bytes(chart._image.value).startswith(b"\x89PNG") and "stopped" in chart._status.value
    assert "IPv4 UDP" in summary.table()


def test_chart_stops_by_itself_when_the_program_goes_away(routed):
    h2 = routed.nodes["h2"]
    att = h2.attach_xdp("bpf/07-xdp-counter.c", fresh=True)
    chart = LiveCounterChart(att, interval=0.05, max_seconds=30).start()
    att.detach()  # fresh=True: the program is unloaded, its maps vanish
    chart._thread.join(5)
    assert not chart.running and chart.error and chart.error.startswith("stopped")
    chart.stop()  # idempotent, no exception


def test_chart_has_a_time_limit(routed):
    h2 = routed.nodes["h2"]
    with h2.attach_xdp("bpf/07-xdp-counter.c") as att:
        chart = LiveCounterChart(att, interval=0.05, max_seconds=0.3).start()
        chart._thread.join(5)
        assert not chart.running and "max_seconds" in chart.error
        chart.stop()


def test_icmp_echo_responder_bypasses_the_kernel(routed):
    h1, h2, r = routed.nodes["h1"], routed.nodes["h2"], routed.nodes["r"]
    with h2.attach_xdp("bpf/07-xdp-icmp-echo.c") as echo:
        # r's end of the link has no XDP program: the XDP_TX'd replies are dropped
        tx_errors = ethtool_stats(h2)["rx_queue_0_xdp_tx_errors"]
        assert h1.ping("10.7.2.2", count=2, timeout=1, interval=0.1).received == 0
        assert ethtool_stats(h2)["rx_queue_0_xdp_tx_errors"] - tx_errors >= 2
        with r.attach_xdp("bpf/00-xdp-pass.c", dev="eth1"):
            kernel_before = icmp_counters(h2)
            replies_before = percpu_total(echo, "replies", 0), percpu_total(echo, "replies", 1)
            v4 = h1.ping("10.7.2.2", count=5, interval=0.1)
            v6 = h1.ping("fd07:2::2", count=5, interval=0.1)
            delta = counter_delta(kernel_before, icmp_counters(h2))
            replies = (
                percpu_total(echo, "replies", 0) - replies_before[0],
                percpu_total(echo, "replies", 1) - replies_before[1],
            )
    assert v4.received == 5 and v6.received == 5
    assert replies == (5, 5)
    assert delta == {k: 0 for k in ECHO_COUNTERS}, delta  # the kernel answered nothing
    # without the program, the kernel answers and its counters move
    before = icmp_counters(h2)
    assert h1.ping("10.7.2.2", count=3, interval=0.1).received == 3
    after = counter_delta(before, icmp_counters(h2))
    assert after["IcmpInEchos"] == 3 and after["IcmpOutEchoReps"] == 3


def test_xdp_tx_on_veth_is_not_rescued_by_gro(routed):
    """veth_xdp_flush() wakes the peer only if the peer has an XDP program: GRO gives the
    peer a NAPI ring (enough for XDP_REDIRECT) but nobody polls it for XDP_TX frames."""
    h1, h2, r = routed.nodes["h1"], routed.nodes["h2"], routed.nodes["r"]
    with h2.attach_xdp("bpf/07-xdp-icmp-echo.c"):
        r.run(["ethtool", "-K", "eth1", "gro", "on"], check=True)
        try:
            assert h1.ping("10.7.2.2", count=2, timeout=1, interval=0.1).received == 0
        finally:
            r.run(["ethtool", "-K", "eth1", "gro", "off"], check=True)


# ---- live: the devmap wire a -- w -- b ------------------------------------------------------------
@pytest.fixture
def wire(lab):
    """a — w — b, w with the redirect program on both ports (devmaps empty): a fresh one per test."""
    a, w, b = lab.host("a"), lab.host("w"), lab.host("b")
    lab.link(a, w, ip="10.7.9.1/24")
    lab.link(b, w, ip="10.7.9.2/24")
    w0 = w.attach_xdp("bpf/07-xdp-redirect.c", dev="eth0")
    w1 = w.attach_xdp("bpf/07-xdp-redirect.c", dev="eth1")
    return lab, a, w, b, w0, w1


def test_wire_needs_devmap_entries_and_peer_napi(wire):
    lab, a, w, b, w0, w1 = wire
    kw = dict(a=a, b=b, a_ip="10.7.9.1", b_ip="10.7.9.2")
    assert ping_fresh(a, "10.7.9.2").received == 0  # empty devmap: XDP_PASS into w, which has no address
    with pytest.raises(CheckFailed, match="no entry"):
        ex.check_devmap(w0, w1, **kw)
    devmap_set(w0, "eth0", "eth1")
    with pytest.raises(CheckFailed, match="way back"):
        ex.check_devmap(w0, w1, **kw)
    devmap_set(w1, "eth1", "eth0")
    with XdpTrace() as trace:
        assert ex.check_devmap(w0, w1, **kw)  # redirects are taken ...
        assert ping_fresh(a, "10.7.9.2").received == 0  # ... but veth cannot deliver them
        errors = trace.events(w0, w1)
    # where the refusal shows up is the kernel's business: up front since 6.3 (the target lacks NDO_XMIT in its
    # xdp_features), at devmap flush before (Debian 12's 6.1: the veth driver says -ENXIO)
    expected = (
        ("redirect error", "-EOPNOTSUPP (Operation not supported)")
        if kernel_probes.has("xdp_features")
        else ("devmap xmit error", "-ENXIO (No such device or address)")
    )
    assert errors.get(expected, 0) >= 1, errors
    with a.attach_xdp("bpf/00-xdp-pass.c"), b.attach_xdp("bpf/00-xdp-pass.c"):
        assert ping_fresh(a, "10.7.9.2").received == 2  # peers with XDP: NAPI, delivered
    for h in (a, b):
        h.run(["ethtool", "-K", "eth0", "gro", "on"], check=True)
    assert ping_fresh(a, "10.7.9.2").received == 2  # GRO also gives the peer NAPI
    assert w.sysctl("net.ipv4.ip_forward") == "0" and not w.addresses()


def test_wire_in_generic_mode_needs_nothing_from_the_peers(wire):
    lab, a, w, b, w0, w1 = wire
    w0.detach(), w1.detach()
    g0 = w.attach_xdp("bpf/07-xdp-redirect.c", dev="eth0", mode="generic")
    g1 = w.attach_xdp("bpf/07-xdp-redirect.c", dev="eth1", mode="generic")
    devmap_set(g0, "eth0", "eth1")
    devmap_set(g1, "eth1", "eth0")
    assert ping_fresh(a, "10.7.9.2").received == 2


def test_check_devmap_rejects_a_wrong_target(wire):
    lab, a, w, b, w0, w1 = wire
    devmap_set(w0, "eth0", "eth0")  # back where it came from: not a wire
    devmap_set(w1, "eth1", "eth0")
    with pytest.raises(CheckFailed, match="egress"):
        ex.check_devmap(w0, w1, a=a, b=b, a_ip="10.7.9.1", b_ip="10.7.9.2")


def test_devmap_set_resolves_names_in_the_lab_namespace(wire):
    lab, a, w, b, w0, w1 = wire
    assert devmap_set(w0, "eth0", "eth1") == (ifindex(w, "eth0"), ifindex(w, "eth1"))
    with pytest.raises(Exception, match="no interface"):
        devmap_set(w0, "eth0", "nope0")


# ---- live frames and the benchmark ----------------------------------------------------------------
def test_xdp_frames_flood_reaches_only_the_lab_peer(lab):
    h1, h2 = lab.host("h1"), lab.host("h2")
    lab.link(h1, h2, ip="10.7.8.1/24", peer_ip="10.7.8.2/24")
    frame = bytes(Ether(src=h1.mac(), dst=h2.mac()) / IP(src="10.7.8.1", dst="10.7.8.2") / UDP(dport=9))
    with h2.attach_xdp("bpf/07-xdp-counter.c") as counter:
        res = xdp_frames_flood(h1, "eth0", frame, 5000)
        assert protocol_counts(counter)["IPv4 UDP"] == 5000 and res.pps > 0
        assert source_counts(counter)["10.7.8.1"] == 5000  # (plus IPv6 link-local chatter)
    with pytest.raises(Exception, match="no interface"):
        xdp_frames_flood(h1, "eth7", frame, 10)


def test_namespace_guard(lab):
    h = lab.host("h")
    with netns.entered(h.namespace):
        assert_in_namespace(h.namespace)
    with pytest.raises(Exception, match="not in namespace"):
        assert_in_namespace(h.namespace)  # this thread is back in the root namespace


def test_bench_smoke():
    from packetlab.bench import xdp as bench

    lines: list[str] = []
    result = bench.run(repeat=2000, rounds=1, seconds=0.3, out=lines.append, lab_name="t07d")
    assert [row[0] for row in result["testrun"]][0] == "07-xdp-drop (floor)"
    assert all(len(row) == 5 and row[3] > 0 for row in result["testrun"])
    assert result["testrun"][0][4] == 1.0
    verdicts = {row[0] + row[1]: row[2] for row in result["testrun"]}
    assert verdicts["07-xdp-icmp-echoICMP echo req (single runs)"] == "XDP_TX"
    assert len(result["live"]) == 2 * len(bench.LIVE_SETUPS)
    assert all(len(row) == 9 for row in result["live"])
    assert {row[0] for row in result["live"]} == {"trafgen", "xdp_frames"}
    text = "\n".join(lines)
    assert "x XDP_DROP" in text and "x XDP native" in text and "veth" in text
    assert not netns.exists("t07d-h1")


def test_no_thread_leaks():
    assert not [t for t in threading.enumerate() if t.name == "xdp-live-chart" and t.is_alive()]
