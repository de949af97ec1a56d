"""Module 03, no kernel: the userspace connection tracker (every TCP transition it models, UDP,
ICMP, timeouts, windows) and the conntrack parser. Its expectations (`expected`, `SPECIAL_SEQUENCES`)
are also the oracle tests/kernel/test_03_connection_tracking.py holds the real kernel to."""

from __future__ import annotations

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP

from packetlab.course.m03_connection_tracking.craft import STATE_RECIPES, TcpConversation, probe, reach_state
from packetlab.course.m03_connection_tracking.kernel_table import format_entries, parse_conntrack
from packetlab.course.m03_connection_tracking.walk import compare, format_comparison
from packetlab.proto.conntrack.states import (
    DEFAULT_TIMEOUTS,
    FLAG_CLASSES,
    ORIGINAL,
    PROTO_ICMP,
    PROTO_TCP,
    PROTO_UDP,
    REPLY,
    TCP_STATES,
    TCP_TABLE,
    FlowTuple,
    after,
    before,
    flag_class,
    segment_from_packet,
    valid_flag_combination,
)
from packetlab.proto.conntrack.tracker import Tracker

C, S = "10.0.1.10", "10.0.2.10"


def conv(port: int = 40000, **kw) -> TcpConversation:
    return TcpConversation(C, S, port, 7777, **kw)


def feed(tracker: Tracker, pkts, start: float = 1000.0, step: float = 0.01):
    out = []
    for i, p in enumerate(pkts):
        out.append(tracker.feed(p, now=start + i * step))
    return out


def state_of(tracker: Tracker, c: TcpConversation, now: float = 1001.0):
    hit = tracker.lookup(FlowTuple(PROTO_TCP, C, S, c.port["client"], 7777), now)
    return hit[0] if hit else None


# ---- the table itself ------------------------------------------------------------------------


def test_table_is_complete_and_uses_only_known_states():
    assert len(TCP_TABLE) == 2 * len(FLAG_CLASSES) * len(TCP_STATES)
    assert set(TCP_TABLE.values()) <= set(TCP_STATES) | {"INVALID", "IGNORE"}
    # a few cells read straight from nf_conntrack_proto_tcp.c
    assert TCP_TABLE[(ORIGINAL, "syn", "NONE")] == "SYN_SENT"
    assert TCP_TABLE[(REPLY, "synack", "SYN_SENT")] == "SYN_RECV"
    assert TCP_TABLE[(ORIGINAL, "ack", "SYN_RECV")] == "ESTABLISHED"
    assert TCP_TABLE[(REPLY, "syn", "SYN_SENT")] == "SYN_SENT2"
    assert TCP_TABLE[(ORIGINAL, "ack", "LAST_ACK")] == "TIME_WAIT"
    assert all(TCP_TABLE[(d, "none", s)] == "INVALID" for d in (0, 1) for s in TCP_STATES)


@pytest.mark.parametrize(
    "flags,cls,valid",
    [
        ("S", "syn", True),
        ("SA", "synack", True),
        ("FA", "fin", True),
        ("A", "ack", True),
        ("R", "rst", True),
        ("RA", "rst", True),
        ("PA", "ack", True),
        ("F", "fin", False),
        ("SF", "syn", False),
        ("", "none", False),
        ("SAR", "rst", False),
        ("AU", "ack", True),
        ("SEC", "syn", True),
    ],
)
def test_flag_classes_and_valid_combinations(flags, cls, valid):
    value = int(TCP(flags=flags).flags)
    assert flag_class(value) == cls
    assert valid_flag_combination(value) is valid


def test_sequence_arithmetic_wraps():
    assert before(0xFFFFFFF0, 0x10) and after(0x10, 0xFFFFFFF0)
    assert not before(5, 5) and not after(5, 5)


# ---- every cell of the table -------------------------------------------------------------------


def _cells():
    for state in TCP_STATES:
        for direction in (ORIGINAL, REPLY):
            if state == "NONE" and direction == REPLY:
                continue  # "never reached": a first packet is the original direction by definition
            for fc in FLAG_CLASSES:
                yield state, direction, fc


#: the cells where the kernel's code overrides the plain table (see nf_conntrack_tcp_packet)
SPECIAL = {
    # a SYN on a closed connection (a FIN was seen, or the RST came from the same side) deletes the
    # old entry and starts a new one — from whoever sent the SYN
    ("TIME_WAIT", ORIGINAL, "syn"): ("SYN_SENT", "NEW", "client"),
    ("CLOSE", ORIGINAL, "syn"): ("SYN_SENT", "NEW", "client"),
    ("TIME_WAIT", REPLY, "syn"): ("SYN_SENT", "NEW", "server"),
    # a RST before any reply was seen deletes the entry at once
    ("SYN_SENT", ORIGINAL, "rst"): (None, "NEW", None),
    ("SYN_SENT", REPLY, "rst"): (None, "ESTABLISHED", None),
}


def expected(state: str, direction: int, fc: str):
    """(state afterwards, ctinfo of the probe, who originated the entry) per the table + SPECIAL."""
    if (state, direction, fc) in SPECIAL:
        return SPECIAL[(state, direction, fc)]
    new = TCP_TABLE[(direction, fc, state)]
    seen_reply = state not in ("NONE", "SYN_SENT")
    ctinfo = "ESTABLISHED" if direction == REPLY or seen_reply else "NEW"
    if new == "INVALID":
        return (None if state == "NONE" else state), "INVALID", (None if state == "NONE" else "client")
    if new == "IGNORE":
        return state, ctinfo, "client"
    return new, ctinfo, "client"


@pytest.mark.parametrize(
    "state,direction,fc", list(_cells()), ids=[f"{s}-{'orig' if d == 0 else 'reply'}-{f}" for s, d, f in _cells()]
)
def test_every_transition(state, direction, fc):
    tracker = Tracker()
    c = conv()
    decisions = feed(tracker, reach_state(c, state))
    assert all(d.ctinfo != "INVALID" for d in decisions), [str(d) for d in decisions]
    before_state = state_of(tracker, c)
    assert (before_state.state if before_state else "NONE") == state
    d = tracker.feed(probe(c, direction, fc), now=1000.5)
    want_state, want_ctinfo, origin = expected(state, direction, fc)
    assert d.ctinfo == want_ctinfo, str(d)
    entries = tracker.entries(now=1000.6)
    if want_state is None:
        assert entries == [], format_entries(entries)
    else:
        assert len(entries) == 1
        e = entries[0]
        assert e.state == want_state, str(d)
        assert e.orig.src == (C if origin == "client" else S)


def test_recipes_reach_their_states():
    for state in STATE_RECIPES:
        t = Tracker()
        c = conv()
        feed(t, reach_state(c, state))
        got = state_of(t, c)
        assert (got.state if got else "NONE") == state


# ---- sequences: handshake, close, out of order, RST ----------------------------------------------


def test_handshake_data_close_with_flags_and_timeouts():
    t, c = Tracker(), conv()
    steps = [
        c.syn(),
        c.synack(),
        c.ack("client"),
        c.data("client", b"x" * 100),
        c.ack("server"),
        c.fin("client"),
        c.ack("server"),
        c.fin("server"),
        c.ack("client"),
    ]
    ds = feed(t, steps, step=0.0)
    assert [d.ctinfo for d in ds] == ["NEW"] + ["ESTABLISHED"] * 8
    assert [d.new_state for d in ds] == [
        "SYN_SENT",
        "SYN_RECV",
        "ESTABLISHED",
        "ESTABLISHED",
        "ESTABLISHED",
        "FIN_WAIT",
        "CLOSE_WAIT",
        "LAST_ACK",
        "TIME_WAIT",
    ]
    conn = ds[0].conn
    assert conn.assured and conn.seen_reply
    assert conn.timeout_left(1000.0) == DEFAULT_TIMEOUTS["TIME_WAIT"]


def test_unreplied_assured_and_unack_timeout():
    t, c = Tracker(), conv()
    d = t.feed(c.syn(), now=1000)
    assert d.conn.flags() == ("UNREPLIED",) and d.conn.timeout_left(1000) == 120
    d = t.feed(c.synack(), now=1000)
    assert d.conn.flags() == () and d.conn.timeout_left(1000) == 60
    d = t.feed(c.ack("client"), now=1000)
    assert d.conn.flags() == ("ASSURED",) and d.conn.timeout_left(1000) == 432000
    d = t.feed(c.data("client"), now=1000)  # data not yet acknowledged: UNACK timeout
    assert d.conn.timeout_left(1000) == DEFAULT_TIMEOUTS["UNACK"]
    d = t.feed(c.ack("server"), now=1000)
    assert d.conn.timeout_left(1000) == 432000


def test_out_of_window_segment_is_invalid_and_changes_nothing():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client")])
    d = t.feed(c.out_of_window("client"), now=1001)
    assert d.ctinfo == "INVALID" and "upper bound" in d.reason
    assert state_of(t, c).state == "ESTABLISHED"
    assert Tracker(be_liberal=True).feed(c.syn(), now=1).ctinfo == "NEW"


def test_be_liberal_accepts_out_of_window():
    t, c = Tracker(be_liberal=True), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client")])
    assert t.feed(c.out_of_window("client"), now=1001).ctinfo == "ESTABLISHED"


def test_ack_for_unacknowledged_data_is_invalid():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client")])
    bogus = c.segment("server", "A", ack=c.next_seq["client"] + 5000, advance=False)
    d = t.feed(bogus, now=1001)
    assert d.ctinfo == "INVALID" and "ACK" in d.reason


def test_out_of_order_ack_before_synack_is_invalid():
    t, c = Tracker(), conv()
    t.feed(c.syn(), now=1000)
    synack = c.synack()  # built but "delayed"
    early_ack = c.ack("client")  # arrives first
    d = t.feed(early_ack, now=1000.1)
    assert d.ctinfo == "INVALID" and state_of(t, c).state == "SYN_SENT"
    assert t.feed(synack, now=1000.2).new_state == "SYN_RECV"
    assert t.feed(early_ack, now=1000.3).new_state == "ESTABLISHED"


def test_retransmitted_synack_and_syn_are_tolerated():
    t, c = Tracker(), conv()
    syn = c.syn()
    t.feed(syn, now=1000)
    first = t.lookup(syn and FlowTuple(PROTO_TCP, C, S, 40000, 7777), 1000)[0].expires
    t.feed(syn, now=1010)  # retransmitted SYN: timeout NOT renewed
    assert t.lookup(FlowTuple(PROTO_TCP, C, S, 40000, 7777), 1010)[0].expires == first
    synack = c.synack()
    t.feed(synack, now=1011)
    d = t.feed(synack, now=1012)  # retransmitted SYN/ACK in SYN_RECV: ignored
    assert d.ctinfo == "ESTABLISHED" and d.new_state == "SYN_RECV" and "ignored" in d.reason


def test_data_reordered_within_the_window_is_accepted():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client")])
    first, second = c.data("client", b"a" * 100), c.data("client", b"b" * 100)
    assert t.feed(second, now=1001).ctinfo == "ESTABLISHED"
    assert t.feed(first, now=1001.1).ctinfo == "ESTABLISHED"


def test_rst_before_reply_deletes_the_entry():
    t, c = Tracker(), conv()
    t.feed(c.syn(), now=1000)
    d = t.feed(c.segment("server", "RA", seq=0, ack=c.next_seq["client"], advance=False), now=1000.1)
    assert d.ctinfo == "ESTABLISHED" and "deleted" in d.reason
    assert t.entries(now=1000.2) == []


def test_rst_in_established_closes_with_close_timeout():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client")])
    d = t.feed(c.rst("server"), now=1001)
    assert d.new_state == "CLOSE" and d.conn.timeout_left(1001) == DEFAULT_TIMEOUTS["CLOSE"]
    assert t.entries(now=1001 + 11) == []  # and it expires


def test_rst_with_inexact_sequence_keeps_the_state():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client")])
    off = c.segment("server", "R", seq=c.next_seq["server"] + 100, advance=False)
    d = t.feed(off, now=1001)
    assert d.ctinfo == "ESTABLISHED" and d.new_state == "ESTABLISHED" and "RFC 5961" in d.reason


def test_rst_with_already_acknowledged_sequence_is_invalid():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client"), c.data("server", b"y" * 50), c.ack("client")])
    old = c.segment("server", "R", seq=c.next_seq["server"] - 40, advance=False)
    d = t.feed(old, now=1001)
    assert d.ctinfo == "INVALID" and "acknowledged" in d.reason
    assert Tracker(ignore_invalid_rst=True).ignore_invalid_rst


def test_rst_after_fin_skips_sequence_checks():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client"), c.fin("client")])
    d = t.feed(c.segment("server", "R", seq=12345, advance=False), now=1001)
    assert d.new_state == "CLOSE"


def test_syn_reopens_time_wait_as_a_new_connection():
    t, c = Tracker(), conv()
    feed(t, reach_state(c, "TIME_WAIT"))
    fresh = TcpConversation(C, S, 40000, 7777, client_isn=900000)
    d = t.feed(fresh.syn(), now=1001)
    assert d.ctinfo == "NEW" and d.new_state == "SYN_SENT" and d.old_state == "NONE"
    assert len(t.entries(now=1001)) == 1


def test_simultaneous_open():
    t, c = Tracker(), conv()
    # both ends send a SYN, then each answers the other's SYN with a SYN/ACK (same ISNs)
    ds = feed(
        t,
        [
            c.syn(),
            c.segment("server", "S"),
            c.segment("client", "SA", seq=1000, ack=5001),
            c.segment("server", "SA", seq=5000, ack=1001),
            c.ack("client"),
        ],
    )
    assert [d.new_state for d in ds[:2]] == ["SYN_SENT", "SYN_SENT2"]
    assert ds[-1].new_state == "ESTABLISHED"


def test_loose_pickup_and_strict_mode():
    c = conv()
    ack = c.segment("client", "A", ack=777)
    d = Tracker().feed(ack, now=1)
    assert d.ctinfo == "NEW" and d.new_state == "ESTABLISHED"
    assert d.conn.flags() == ("UNREPLIED",) and d.conn.timeout_left(1) == DEFAULT_TIMEOUTS["UNACK"]
    assert Tracker(loose=False).feed(ack, now=1).ctinfo == "INVALID"


def test_invalid_flags_never_create_entries():
    t = Tracker()
    for flags in ("F", "SF", "", "SAR"):
        assert t.feed(IP(src=C, dst=S) / TCP(sport=1, dport=2, flags=flags), now=1).ctinfo == "INVALID"
    assert t.entries(now=1) == []


def test_window_scaling_is_applied_after_the_handshake():
    from scapy.layers.inet import TCP as STCP

    t = Tracker()
    syn = IP(src=C, dst=S) / STCP(sport=5, dport=6, flags="S", seq=100, window=64240, options=[("WScale", 7)])
    synack = IP(src=S, dst=C) / STCP(
        sport=6, dport=5, flags="SA", seq=900, ack=101, window=65160, options=[("WScale", 7)]
    )
    ack = IP(src=C, dst=S) / STCP(sport=5, dport=6, flags="A", seq=101, ack=901, window=502)
    feed(t, [syn, synack, ack])
    # 500 bytes * 128 = the scaled window lets the server send 60,000 bytes ahead
    far = IP(src=S, dst=C) / STCP(sport=6, dport=5, flags="PA", seq=901 + 60000, ack=101, window=509) / (b"z" * 10)
    assert t.feed(far, now=1001).ctinfo == "ESTABLISHED"
    conn = t.connections(now=1001)[0]
    assert conn.seen[0].td_scale == 7 and conn.seen[1].td_scale == 7


def test_retransmissions_shorten_the_timeout():
    t, c = Tracker(), conv()
    feed(t, [c.syn(), c.synack(), c.ack("client"), c.data("client", b"q" * 10)])
    again = c.segment("client", "PA", b"q" * 10, seq=c.next_seq["client"] - 10, advance=False)
    for i in range(4):
        d = t.feed(again, now=1002 + i)
    assert d.conn.retrans >= 3 and d.conn.timeout_left(1005) == DEFAULT_TIMEOUTS["RETRANS"]


# ---- UDP and ICMP ------------------------------------------------------------------------------


def test_udp_stream_becomes_assured_after_two_seconds():
    t = Tracker()
    out = IP(src=C, dst=S) / UDP(sport=5353, dport=53)
    back = IP(src=S, dst=C) / UDP(sport=53, dport=5353)
    d1 = t.feed(out, now=100)
    assert d1.ctinfo == "NEW" and d1.conn.flags() == ("UNREPLIED",) and d1.conn.timeout_left(100) == 30
    d2 = t.feed(back, now=100.5)
    assert d2.ctinfo == "ESTABLISHED" and d2.conn.flags() == () and d2.conn.timeout_left(100.5) == 30
    d3 = t.feed(out, now=101)
    assert d3.conn.flags() == () and d3.conn.timeout_left(101) == 30  # replied, but not yet a stream
    d4 = t.feed(out, now=102.5)
    assert d4.conn.flags() == ("ASSURED",) and d4.conn.timeout_left(102.5) == 120
    assert t.entries(now=102.5 + 121) == []


def test_icmp_echo_and_errors():
    t = Tracker()
    req = IP(src=C, dst=S) / ICMP(type=8, id=42, seq=1)
    rep = IP(src=S, dst=C) / ICMP(type=0, id=42, seq=1)
    assert t.feed(req, now=1).ctinfo == "NEW"
    assert t.feed(rep, now=1).ctinfo == "ESTABLISHED"
    assert t.feed(IP(src=S, dst=C) / ICMP(type=0, id=43), now=1).ctinfo == "INVALID"  # an answer to nothing
    udp = IP(src=C, dst=S) / UDP(sport=4000, dport=9)
    t.feed(udp, now=2)
    err = IP(src=S, dst=C) / ICMP(type=3, code=3) / IP(bytes(udp)[:28])
    d = t.feed(err, now=2)
    assert d.ctinfo == "RELATED" and d.conn.orig.dport == 9
    stray = IP(src=S, dst=C) / ICMP(type=3, code=3) / IP(bytes(IP(src=C, dst=S) / UDP(sport=1, dport=2))[:28])
    assert t.feed(stray, now=2).ctinfo == "INVALID"
    assert t.feed(IP(src=C, dst=S) / ICMP(type=9), now=2).ctinfo == "INVALID"  # router advertisement
    e = [x for x in t.entries(now=3) if x.proto == "icmp"][0]
    assert e.orig == FlowTuple(PROTO_ICMP, C, S, 42, 8) and e.reply == FlowTuple(PROTO_ICMP, S, C, 42, 0)


def test_untracked_protocols_are_reported_not_tracked():
    from scapy.layers.inet6 import IPv6

    d = Tracker().feed(IPv6(src="fd00::1", dst="fd00::2") / UDP(), now=1)
    assert d.ctinfo is None and "not tracked" in d.reason


def test_segment_reads_ether_frames_and_payload_length():
    from scapy.layers.l2 import Ether

    frame = Ether() / IP(src=C, dst=S) / TCP(sport=1, dport=2, flags="PA", seq=10) / (b"d" * 7)
    seg = segment_from_packet(Ether(bytes(frame)))  # padded, dissected from the wire form
    assert seg.payload_len == 7 and seg.end == 17 and seg.tuple == FlowTuple(PROTO_TCP, C, S, 1, 2)


# ---- the kernel table parser -----------------------------------------------------------------


KERNEL_TEXT = """\
tcp      6 431999 ESTABLISHED src=10.0.1.10 dst=10.0.2.10 sport=41000 dport=7777 src=10.0.2.10 dst=10.0.1.10 sport=7777 dport=41000 [ASSURED] mark=0 use=1
tcp      6 119 SYN_SENT src=10.0.1.10 dst=10.0.2.10 sport=41001 dport=7777 [UNREPLIED] src=10.0.2.10 dst=10.0.1.10 sport=7777 dport=41001 mark=0 use=1
udp      17 29 src=10.0.1.10 dst=10.0.2.10 sport=5999 dport=9 [UNREPLIED] src=10.0.2.10 dst=10.0.1.10 sport=9 dport=5999 mark=0 use=1
icmp     1 29 src=10.0.1.10 dst=10.0.2.10 type=8 code=0 id=77 src=10.0.2.10 dst=10.0.1.10 type=0 code=0 id=77 mark=0 use=1
ipv4     2 udp      17 119 src=10.0.1.10 dst=10.0.2.10 sport=5353 dport=5353 src=10.0.2.10 dst=10.0.1.10 sport=5353 dport=5353 [ASSURED] mark=0 zone=0 use=2
"""


def test_parse_conntrack_both_formats():
    entries = parse_conntrack(KERNEL_TEXT + "conntrack v1.4.7 (conntrack-tools): 4 flow entries have been shown.\n")
    assert len(entries) == 5
    est, syn, udp, icmp, proc = entries
    assert est.state == "ESTABLISHED" and est.flags == ("ASSURED",) and est.timeout == 431999
    assert syn.flags == ("UNREPLIED",) and syn.reply == FlowTuple(PROTO_TCP, S, C, 7777, 41001)
    assert udp.state is None and udp.orig == FlowTuple(PROTO_UDP, C, S, 5999, 9)
    assert icmp.orig == FlowTuple(PROTO_ICMP, C, S, 77, 8) and icmp.reply.dport == 0
    assert proc.proto == "udp" and proc.flags == ("ASSURED",)
    assert "ESTABLISHED" in format_entries(entries)


def test_compare_pairs_entries_and_marks_disagreement():
    a = parse_conntrack(KERNEL_TEXT)
    b = list(a[:3])
    rows = compare(a, b)
    assert sum(r.agree for r in rows) == 3 and len(rows) == 5
    assert "(absent)" in format_comparison(rows)


# ---- the kernel's special paths, offline and live ------------------------------------------------


def _resync(c: TcpConversation):
    """Established; the client restarts with a new SYN (ignored), the server answers it (re-sync)."""
    base = reach_state(c, "ESTABLISHED")
    new_syn = c.segment("client", "S", seq=800000, advance=False)
    synack = c.segment("server", "SA", seq=900000, ack=800001, advance=False)
    ack = c.segment("client", "A", seq=800001, ack=900001, advance=False)
    return base + [new_syn, synack, ack], ["ESTABLISHED", "SYN_RECV", "ESTABLISHED"]  # the SYN is ignored


def _challenge_ack(c: TcpConversation):
    """LAST_ACK; a new SYN from the client is ignored and the server's challenge ACK must not
    be taken for the last ACK."""
    base = reach_state(c, "LAST_ACK")
    syn = c.segment("client", "S", seq=c.next_seq["client"] + 100000, advance=False)
    challenge = c.segment("server", "A", advance=False)
    return base + [syn, challenge], ["LAST_ACK", "LAST_ACK"]


def _rst_after_challenge(c: TcpConversation):
    """SYN_SENT; the server answers the SYN with a bare ACK (a challenge for a half-open
    connection), the client resets at exactly that ACK's number."""
    syn = c.syn()
    challenge = c.segment("server", "A", seq=5000, ack=12345, advance=False)
    rst = c.segment("client", "R", seq=12345, advance=False)
    return [syn, challenge, rst], ["SYN_SENT", "CLOSE"]


SPECIAL_SEQUENCES = {"resync": _resync, "challenge-ack": _challenge_ack, "rst-after-challenge": _rst_after_challenge}


@pytest.mark.parametrize("name", list(SPECIAL_SEQUENCES))
def test_special_paths_offline(name):
    t, c = Tracker(), conv()
    packets, final_states = SPECIAL_SEQUENCES[name](c)
    ds = feed(t, packets)
    assert all(d.ctinfo != "INVALID" for d in ds), [str(d) for d in ds]
    tail = [d.new_state or d.old_state for d in ds[-len(final_states) :]]
    assert tail == final_states, [str(d) for d in ds]
