"""Pure logic of the toolkit: names, addresses, ping parsing, verifier logs, records."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from packetlab.ebpf.loader import explain_verifier_log, find_entry_function, to_python
from packetlab.errors import NameTooLong, PacketlabError
from packetlab.topo.host import interface_addresses, parse_ping
from packetlab.topo.names import check_name, namespace_name, port_name
from packetlab.topo.state import LabRecord, ProcessRecord, is_alive, process_start_time


def test_names_are_prefixed_and_length_checked():
    assert namespace_name("osi", "h1") == "osi-h1"
    assert port_name("h1", "eth0") == "h1-eth0"
    assert check_name("a" * 15) == "a" * 15
    with pytest.raises(NameTooLong, match="15 characters"):
        check_name("a" * 16)
    with pytest.raises(PacketlabError, match="invalid"):
        check_name("bad name")
    with pytest.raises(PacketlabError):
        check_name("-dash")


def test_interface_addresses_require_prefix_length():
    parsed = interface_addresses(["10.0.1.1/24", "fd00::1/64"])
    assert [str(a) for a in parsed] == ["10.0.1.1/24", "fd00::1/64"]
    assert interface_addresses(None) == []
    with pytest.raises(PacketlabError, match="no prefix length"):
        interface_addresses("10.0.1.1")
    with pytest.raises(PacketlabError, match="not an address"):
        interface_addresses("10.0.1.300/24")


PING_OK = """PING 10.0.1.2 (10.0.1.2) 56(84) bytes of data.
64 bytes from 10.0.1.2: icmp_seq=1 ttl=64 time=0.219 ms

--- 10.0.1.2 ping statistics ---
3 packets transmitted, 2 received, 33.3333% packet loss, time 2003ms
rtt min/avg/max/mdev = 0.100/0.150/0.200/0.050 ms
"""


def test_parse_ping():
    r = parse_ping("10.0.1.2", PING_OK)
    assert (r.sent, r.received, r.rtt_avg_ms, r.ok) == (3, 2, 0.15, True)
    assert abs(r.loss - 1 / 3) < 1e-9
    dead = parse_ping("10.0.1.9", "1 packets transmitted, 0 received, 100% packet loss, time 0ms")
    assert (dead.ok, dead.rtt_avg_ms, dead.loss) == (False, None, 1.0)


SOURCE = """#include <uapi/linux/bpf.h>
BPF_ARRAY(cnt, u64, 4);
int xdp_prog(struct xdp_md *ctx) {
  void *data = (void*)(long)ctx->data; void *end = (void*)(long)ctx->data_end;
  struct ethhdr *eth = data;
  u32 k = eth->h_proto & 3;
  return XDP_PASS;
}
"""
LOG = """0: R1=ctx() R10=fp0
; void *data = (void*)(long)ctx->data; void *end = (void*)(long)ctx->data_end; @ main.c:16
0: (61) r1 = *(u32 *)(r1 +0)          ; R1=pkt(r=0)
; u32 k = eth->h_proto & 3; @ main.c:18
1: (71) r1 = *(u8 *)(r1 +12)
invalid access to packet, off=12 size=1, R1(id=0,off=12,r=0)
R1 offset is outside of the packet
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def test_verifier_log_is_mapped_to_the_source_line_with_a_hint():
    ex = explain_verifier_log(LOG, SOURCE)
    assert ex.line_number == 6
    assert ex.source_line == "u32 k = eth->h_proto & 3;"
    assert ex.message.startswith("invalid access to packet")
    assert "data_end" in ex.fix


def test_verifier_line_found_by_offset_when_bcc_rewrote_it():
    log = LOG.replace("; u32 k = eth->h_proto & 3; @ main.c:18", "; u32 k = REWRITTEN(eth); @ main.c:18")
    ex = explain_verifier_log(log, SOURCE)
    assert ex.line_number == 6  # offset learned from the unchanged line 4 (main.c:16)


HELPER_SIZE_LOG_6_1 = """\
; struct flow_event *ev = events.ringbuf_reserve(sizeof(struct flow_event));
10: (85) call bpf_ringbuf_reserve#131  ; R0_w=ringbuf_mem_or_null(id=15,ref_obj_id=15,off=0,imm=0)
; if (n > 0 && n <= SAMPLE_BYTES && bpf_xdp_load_bytes(ctx, 0, ev->data, n) == 0)
816: (85) call bpf_xdp_load_bytes#189
invalid access to memory, mem_size=232 off=104 size=0
R3 min value is outside of the allowed memory range
processed 301 insns (limit 1000000) max_states_per_insn 1 total_states 21 peak_states 21 mark_read 15
"""


def test_a_helper_length_that_may_be_zero_is_named_not_a_null_pointer():
    # Debian 12's 6.1 on bpf/11b-flow.c before its length was bounded in asm: the log's
    # register states say "_or_null", but the error is the helper's length
    ex = explain_verifier_log(HELPER_SIZE_LOG_6_1, "")
    assert ex.message.startswith("invalid access to memory")
    assert "length or offset" in ex.meaning and "NULL" not in ex.meaning


def test_find_entry_function():
    assert find_entry_function(SOURCE, "xdp", None) == "xdp_prog"
    with pytest.raises(PacketlabError, match="cannot tell"):
        find_entry_function(
            SOURCE + "\nint other(struct xdp_md *ctx) { return 2; }\n", "xdp", type("P", (), {"name": "x.c"})()
        )


def test_to_python_converts_ctypes():
    import ctypes

    class Pair(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint64)]

    assert to_python(ctypes.c_uint64(7)) == 7
    assert to_python(Pair(1, 2)) == {"a": 1, "b": 2}
    assert to_python([ctypes.c_uint64(1), ctypes.c_uint64(2)]) == [1, 2]  # a list stays a list (sums: percpu_sum)
    assert to_python((ctypes.c_ubyte * 4)(1, 2, 3, 4)) == b"\x01\x02\x03\x04"


def test_lab_record_round_trip(tmp_path, monkeypatch):
    monkeypatch.setattr("packetlab.topo.state.STATE_DIR", tmp_path)
    rec = LabRecord(
        "tkr",
        os.getpid(),
        process_start_time(os.getpid()),
        namespaces=["tkr-h1"],
        processes=[ProcessRecord(1, None, "tkr-h1", ["x"])],
    )
    rec.save()
    loaded = LabRecord.load(rec.path)
    assert loaded == rec and loaded.owner_alive()
    assert not is_alive(os.getpid(), 1)  # same pid, different start time: a recycled pid
    rec.delete()
    assert not rec.path.exists()


# a lab whose owner is a zombie (exited, not yet reaped) counts as gone: its guardian cleans up at once
def test_a_zombie_owner_is_not_alive():
    child = subprocess.Popen(["true"])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "Z" not in Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1][:3]:
        time.sleep(0.01)
    try:
        assert not is_alive(child.pid, process_start_time(child.pid))
    finally:
        child.wait()
    assert is_alive(os.getpid(), process_start_time(os.getpid()))


def test_the_error_line_chooses_the_hint_not_register_states_above_it():
    """6.1's rejection of 11c before its fix: map_value_or_null shows in the states, the error is a range."""
    log = """546: (85) call bpf_map_lookup_elem#1          ; R0=map_value_or_null(id=69,off=0,ks=4,vs=536,imm=0)
548: (7b) *(u64 *)(r10 -96) = r0      ; R0=map_value_or_null(id=69,off=0,ks=4,vs=536,imm=0)
562: (79) r4 = *(u64 *)(r10 -104)     ; R4_w=scalar() R10=fp0
563: (85) call bpf_xdp_load_bytes#189
R4 min value is negative, either use unsigned or 'var &= const'
processed 60416 insns (limit 1000000) max_states_per_insn 15 total_states 1606 peak_states 275 mark_read 61
"""
    ex = explain_verifier_log(log, SOURCE)
    assert ex.message.startswith("R4 min value is negative")
    assert "no proven range" in ex.meaning and "NULL" not in ex.meaning
