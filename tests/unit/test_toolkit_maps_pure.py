"""packetlab.ebpf.maps and .fdinfo without a kernel map: per-CPU sums, layouts, type names, ids of non-BPF fds."""

from __future__ import annotations

import ctypes
import os
import struct

import pytest

from packetlab.ebpf.fdinfo import describe_fd, fdinfo, map_id, prog_id
from packetlab.ebpf.maps import _codec, map_type_name, map_type_number, percpu_sum
from packetlab.errors import PacketlabError


class Counters(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


def test_percpu_sum_adds_ints_ctypes_scalars_and_bcc_arrays():
    assert percpu_sum([1, 2, 3]) == 6
    assert percpu_sum([ctypes.c_uint64(4), ctypes.c_uint64(5)]) == 9
    assert percpu_sum((ctypes.c_uint64 * 3)(1, 2, 3)) == 6  # what bcc's PerCpuArray returns for a u64 leaf
    assert percpu_sum([]) == 0


def test_percpu_sum_adds_structs_field_by_field_keeping_their_type():
    per_cpu = (Counters * 2)(Counters(1, 100), Counters(2, 200))  # bcc: a ctypes array of the leaf struct
    total = percpu_sum(per_cpu)
    assert isinstance(total, Counters) and (total.packets, total.bytes) == (3, 300)
    assert (percpu_sum([Counters(5, 6)]).packets, percpu_sum([Counters(5, 6)]).bytes) == (5, 6)


def test_percpu_sum_adds_dicts_and_tuples_item_by_item():
    assert percpu_sum([{"packets": 1, "bytes": 5}, {"packets": 2, "bytes": 7}]) == {"packets": 3, "bytes": 12}
    assert percpu_sum([(1, 2, 3), (10, 20, 30)]) == (11, 22, 33)  # struct-format values


def test_percpu_sum_passes_one_value_through():
    assert percpu_sum(4) == 4
    one = Counters(1, 2)
    assert percpu_sum(one) is one
    assert percpu_sum({"packets": 1}) == {"packets": 1}
    assert percpu_sum((1, 2)) == (1, 2)  # a tuple is one struct-format value, not a per-CPU list


def test_percpu_sum_refuses_what_does_not_add_up():
    with pytest.raises(PacketlabError, match="cannot add up per-CPU values of type str"):
        percpu_sum(["a", "b"])


def test_map_type_names_follow_the_kernel_enum():
    assert map_type_name(1) == "hash" and map_type_name(6) == "percpu_array" and map_type_name(11) == "lpm_trie"
    assert map_type_name(10) == "lru_percpu_hash" and map_type_name(27) == "ringbuf"
    assert map_type_name(999) == "type 999"
    assert map_type_number("lru_hash") == 9 and map_type_number(2) == 2
    with pytest.raises(PacketlabError, match="unknown map type 'hashmap'"):
        map_type_number("hashmap")


def test_codecs_round_trip_ctypes_struct_formats_and_raw_bytes():
    scalar = _codec(ctypes.c_uint32, 4)
    assert scalar.size == 4 and scalar.encode(7) == b"\x07\0\0\0" and scalar.decode(b"\x07\0\0\0") == 7
    assert scalar.encode(ctypes.c_uint32(7)) == b"\x07\0\0\0" and scalar.encode(b"\x07\0\0\0") == b"\x07\0\0\0"
    st = _codec(Counters, 16)
    back = st.decode(st.encode(Counters(3, 4)))
    assert isinstance(back, Counters) and (back.packets, back.bytes) == (3, 4)
    fmt = _codec(struct.Struct("<II"), 8)
    assert fmt.decode(fmt.encode((1, 2))) == (1, 2)
    single = _codec("<Q", 8)
    assert single.decode(single.encode(9)) == 9  # a one-field format is its item, not a 1-tuple
    raw = _codec(None, 3)
    assert raw.size == 3 and raw.decode(raw.encode(b"abc")) == b"abc"
    assert _codec(6, 0).size == 6


def test_codecs_refuse_wrong_sizes_and_non_bytes_for_raw_views():
    with pytest.raises(PacketlabError, match="2 bytes given where the map needs 4"):
        _codec(ctypes.c_uint32, 4).encode(b"ab")
    with pytest.raises(PacketlabError, match="takes raw bytes"):
        _codec(None, 4).encode(5)
    with pytest.raises(PacketlabError, match="cannot describe a map key or value"):
        _codec(3.5, 4)


def test_ids_of_fds_that_are_not_bpf_objects_are_refused_naming_what_they_are():
    r, w = os.pipe()
    try:
        assert "run_cnt" not in fdinfo(r) and describe_fd(r).startswith("pipe:")
        with pytest.raises(PacketlabError, match=f"file descriptor {r} is not a BPF program") as err:
            prog_id(r)
        assert "pipe:" in str(err.value)
        with pytest.raises(PacketlabError, match="not a BPF map"):
            map_id(r)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(PacketlabError, match=f"file descriptor {r} is not open"):
        prog_id(r)
