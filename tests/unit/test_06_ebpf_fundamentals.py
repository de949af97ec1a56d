"""Module 06, no kernel: decoding map keys and bpftool's JSON, and pinning the process to a CPU."""

from __future__ import annotations

import os
import socket

import pytest

from packetlab.course.m06_ebpf_fundamentals import demos as ebpf
from packetlab.ebpf import bpftool
from packetlab.errors import PacketlabError

# ---- pure helpers -----------------------------------------------------------------------------


def test_ipv4_keys_decode_network_order_saddr():
    key = int.from_bytes(socket.inet_aton("10.0.0.7"), "little")  # how ip->saddr lands in a u32 key
    assert ebpf.ipv4_key(key) == "10.0.0.7"
    assert ebpf.last_octets({key: 1}) == {7}


def test_entries_to_dict_reads_formatted_raw_and_percpu_json():
    formatted = [
        {
            "key": ["0x11", "0x00", "0x00", "0x00"],
            "value": ["0x08"] + ["0x00"] * 7,
            "formatted": {"key": 17, "value": 8},
        }
    ]
    raw = [{"key": ["0x00", "0x08", "0x00", "0x00"], "value": ["0x05", "0x01", "0x00", "0x00"]}]
    percpu = [
        {
            "key": ["0x00"] * 4,
            "values": [{"cpu": 0, "value": ["0x02"] + ["0x00"] * 7}, {"cpu": 1, "value": ["0x03"] + ["0x00"] * 7}],
        }
    ]
    assert bpftool.entries_to_dict(formatted) == {17: 8}
    assert bpftool.entries_to_dict(raw) == {0x0800: 0x0105}
    assert bpftool.entries_to_dict(percpu) == {0: 5}


# ---- map types --------------------------------------------------------------------------------


def test_on_cpu_restores_affinity():
    before = os.sched_getaffinity(0)
    with ebpf.on_cpu(min(before)):
        assert os.sched_getaffinity(0) == {min(before)}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(PacketlabError), ebpf.on_cpu(10_000):
        pass


def test_exact_lru_model_behind_the_lru_exercise():
    """The model the LRU check compares with when a kernel evicts in batches (its map holds LRU_CAPACITY keys)."""
    from packetlab.course.m06_ebpf_fundamentals.exercises import LRU_CAPACITY, LRU_SEQUENCE, exact_lru

    assert exact_lru(LRU_SEQUENCE, LRU_CAPACITY) == {1, 4, 5, 6}  # 1 was used again, so 5 and 6 evict 2 and 3
    assert exact_lru(list(range(1, 9)), 4) == {5, 6, 7, 8}
    assert exact_lru([1, 1, 1], 4) == {1}
