"""Module 11b: the kernel's flow structs decode in pure Python (records.py mirrors bpf/11b-flow.c)."""

from __future__ import annotations

import re

from packetlab.paths import REPO_ROOT
from packetlab.tools.analyzer.records import (
    EVENT_HEAD,
    EVENT_SIZE,
    KEY,
    STATS,
    VALUE,
    FlowKey,
    decode_event,
    decode_key,
    encode_key,
    tcp_flag_str,
)

C_SOURCE = (REPO_ROOT / "bpf" / "11b-flow.c").read_text()


def test_key_round_trips_for_both_families():
    for key in (FlowKey(6, "10.0.0.1", "10.0.0.2", 1234, 80), FlowKey(17, "fd00::1", "fd00::2", 5353, 53)):
        raw = encode_key(key)
        assert len(raw) == KEY.size == 40
        assert decode_key(raw) == key
    assert str(FlowKey(17, "fd00::1", "fd00::2", 1, 2)) == "udp [fd00::1]:1 > [fd00::2]:2"


def test_event_layout_and_decoding():
    assert EVENT_SIZE == 232  # sizeof(struct flow_event) on x86-64 and arm64
    key = FlowKey(6, "10.0.0.1", "10.0.0.2", 1, 2)
    raw = EVENT_HEAD.pack(3, 4, 60, 1, 0) + encode_key(key) + VALUE.pack(5, 300, 10, 20, 0x12, 0) + b"abcd" + bytes(124)
    ev = decode_event(raw, to_wall=lambda ns: ns / 10)
    assert (ev.type, ev.wirelen, ev.cpu, ev.data) == ("sample", 60, 1, b"abcd")
    assert (ev.record.key, ev.record.packets, ev.record.bytes, ev.record.first, ev.record.last) == (key, 5, 300, 1, 2)
    assert tcp_flag_str(ev.record.tcp_flags) == "SA"


def test_stat_names_follow_the_c_enum():
    enum = re.search(r"enum stat \{(.*?)\};", C_SOURCE, re.S)
    assert enum is not None
    names = re.findall(r"STAT_(\w+)", enum.group(1))
    assert tuple(n.lower() for n in names if n != "NUM_STATS") == STATS
