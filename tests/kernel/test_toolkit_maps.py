"""packetlab.ebpf.maps.BpfMap on real kernel maps: typed round trips, iteration, per-CPU values, pins, layouts."""

from __future__ import annotations

import ctypes
import os
import uuid
from pathlib import Path

import pytest

from packetlab.ebpf import map_memory
from packetlab.ebpf.fdinfo import map_id
from packetlab.ebpf.maps import BpfMap, percpu_sum
from packetlab.ebpf.syscall import possible_cpus
from packetlab.errors import PacketlabError

PIN_ROOT = Path("/sys/fs/bpf/packetlab")


class Key(ctypes.Structure):
    _fields_ = [("ifindex", ctypes.c_uint32), ("vlan", ctypes.c_uint16), ("flags", ctypes.c_uint16)]


class Counters(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


def test_hash_map_round_trips_ctypes_structs_and_iterates():
    with BpfMap.create("hash", Key, Counters, 64) as m:
        assert (m.type_name, m.max_entries, m.percpu) == ("hash", 64, False)
        for i in range(5):
            m.update(Key(ifindex=i, vlan=80, flags=6), Counters(i, 100 * i))
        got = m.lookup(Key(ifindex=3, vlan=80, flags=6))
        assert isinstance(got, Counters) and (got.packets, got.bytes) == (3, 300)
        assert m.lookup(Key(ifindex=9)) is None
        keys = list(m.keys())
        assert sorted(k.ifindex for k in keys) == [0, 1, 2, 3, 4] and all(isinstance(k, Key) for k in keys)
        assert sorted((k.ifindex, v.bytes) for k, v in m.items()) == [(i, 100 * i) for i in range(5)]
        assert m.delete(Key(ifindex=0, vlan=80, flags=6)) and not m.delete(Key(ifindex=0, vlan=80, flags=6))
        assert m.clear() == 4 and list(m) == []


def test_array_map_with_struct_formats_batches_and_ranges():
    with BpfMap.create("array", "<I", "<II", 16) as m:
        assert list(m.keys()) == list(range(16))  # every index of an array exists
        m.update(2, (7, 8))
        assert m.lookup(2) == (7, 8) and m.lookup(0) == (0, 0)
        m.update_batch(list(range(4, 8)), [(i, i * i) for i in range(4, 8)])
        assert m.lookup_range(3, 5) == [(0, 0), (4, 16), (5, 25), (6, 36), (7, 49)]
        m.update_batch(b"".join(i.to_bytes(4, "little") for i in (8, 9)), bytes(range(16)))  # already packed
        assert m.lookup(9)[0] == int.from_bytes(bytes(range(8, 12)), "little")
        assert not m.delete(2)  # array elements cannot be deleted
        assert m.lookup(16) is None  # past the end: ENOENT, like a missing key
        with pytest.raises(PacketlabError, match="as many values as keys"):
            m.update_batch([1, 2], [(1, 1)])


def test_percpu_array_holds_one_value_per_possible_cpu_and_sums_them():
    with BpfMap.create("percpu_array", ctypes.c_uint32, Counters, 4) as m:
        assert m.percpu and m.ncpus == possible_cpus()
        m.update(1, Counters(1, 10))  # one value: written to every CPU
        per_cpu = m.lookup(1)
        assert len(per_cpu) == possible_cpus() and all((c.packets, c.bytes) == (1, 10) for c in per_cpu)
        total = percpu_sum(per_cpu)
        assert (total.packets, total.bytes) == (possible_cpus(), 10 * possible_cpus())
        m.update(2, [Counters(i, 0) for i in range(m.ncpus)])
        assert percpu_sum(m.lookup(2)).packets == sum(range(m.ncpus))
        assert [percpu_sum(v).packets for v in m.lookup_range(0, 3)] == [0, possible_cpus(), sum(range(m.ncpus))]
        with pytest.raises(PacketlabError, match="per-CPU"):
            m.update(3, [Counters()] * (m.ncpus + 1))


def test_percpu_values_of_odd_sizes_are_padded_to_eight_bytes():
    with BpfMap.create("percpu_array", "<I", "<I", 2) as m:
        assert m.stride == 8
        m.update(0, list(range(m.ncpus)))
        assert m.lookup(0) == list(range(m.ncpus)) and percpu_sum(m.lookup(0)) == sum(range(m.ncpus))


def test_lru_hash_evicts_instead_of_refusing():
    with BpfMap.create("lru_hash", ctypes.c_uint64, ctypes.c_uint64, 8) as m:
        for i in range(100):
            m.update(i, i * i)  # a plain hash would refuse with E2BIG once full
        items = dict(m.items())
        assert 0 < len(items) <= 8 + possible_cpus() * 4 and all(v == k * k for k, v in items.items())
        assert 99 in items  # the newest survives


def test_pin_and_open_pinned_see_the_same_map():
    pin_dir = PIN_ROOT / f"test-maps-{uuid.uuid4().hex[:8]}"
    pin_dir.mkdir(parents=True)
    path = pin_dir / "counts"
    try:
        with BpfMap.create("hash", ctypes.c_uint32, ctypes.c_uint64, 8) as m:
            m.update(1, 11)
            m.pin(path)
            with BpfMap.open_pinned(path, key=ctypes.c_uint32, value=ctypes.c_uint64) as again:
                assert again.name == "counts" and map_id(again) == map_id(m)
                assert again.lookup(1) == 11
                again.update(2, 22)
            assert m.lookup(2) == 22  # the same kernel map
        with BpfMap.open_pinned(path, key=ctypes.c_uint32, value=ctypes.c_uint64) as kept:
            assert dict(kept.items()) == {1: 11, 2: 22}  # the pin kept it alive after every fd closed
    finally:
        path.unlink(missing_ok=True)
        pin_dir.rmdir()
    with pytest.raises(FileNotFoundError):
        BpfMap.open_pinned(path)


def test_a_layout_that_does_not_match_the_kernel_is_refused_naming_both_sizes():
    with BpfMap.create("hash", ctypes.c_uint32, Counters, 8) as m:
        with pytest.raises(PacketlabError, match="disagree on its layout") as err:
            BpfMap(m.fd, "stats", ctypes.c_uint32, ctypes.c_uint64)
        text = str(err.value)
        assert "value 16 B" in text and "value 8 B" in text and "c_ulong" in text
        with pytest.raises(PacketlabError, match="key 4 B.*key 8 B"):
            BpfMap(m.fd, "stats", "<Q", Counters)
        raw = BpfMap(m.fd)  # no layout: raw bytes of the kernel's sizes
        raw.update(b"\1\0\0\0", bytes(16))
        assert raw.lookup(b"\1\0\0\0") == bytes(16)


def test_a_view_refuses_an_fd_that_is_not_a_map():
    r, w = os.pipe()
    try:
        with pytest.raises(PacketlabError, match="not a BPF map"):
            BpfMap(r)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize(
    "shape", [("hash", 40, 16, 100_000), ("hash", 8, 8, 1024), ("array", 4, 4, 32_768), ("array", 4, 48, 1024)]
)
def test_map_memory_is_the_kernels_figure_or_its_model(shape):
    """Where memlock is the real figure (6.4+), the model agrees with it to a few hundred bytes; where it
    is the old keys-and-values estimate (6.1), map_bytes answers with the model, never the estimate."""
    measured = map_memory.map_bytes(*shape)
    modelled = map_memory.modelled_bytes(*shape)
    if map_memory.memlock_is_an_estimate():
        assert measured == modelled
    else:
        assert abs(measured - modelled) <= 2048, (shape, measured, modelled)
