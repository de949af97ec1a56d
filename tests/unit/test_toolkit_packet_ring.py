"""The pure parts of the TPACKET_V3 ring (packetlab.topo.packet_ring): block and frame headers parsed from
bytes laid out as <linux/if_packet.h> lays them out, the ring geometry, and the socket filter compiled by
libpcap — run here by libpcap's own interpreter (bpf_filter) on scapy frames, no socket, no root."""

from __future__ import annotations

import ctypes
import ctypes.util
import struct

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import ARP, Dot1Q, Ether

from packetlab.errors import InputError, PacketlabError
from packetlab.tools.analyzer.capture import INSPECT_FILTER, INSPECT_SNAPLEN
from packetlab.topo.packet_ring import (
    BLOCK_DESC,
    FRAME_HDR,
    TP_STATUS_KERNEL,
    TP_STATUS_USER,
    TP_STATUS_VLAN_VALID,
    Geometry,
    compile_filter,
    parse_block,
    parse_block_header,
)


def _block(
    frames: list[tuple[bytes, int, int, int]], *, status: int = TP_STATUS_USER, vlan: int | None = None
) -> bytes:
    """A block as the kernel writes it: descriptor, then each frame's tpacket3_hdr padded to 16 bytes,
    its bytes at tp_mac; `frames` holds (captured bytes, wire length, sec, nsec)."""
    first = BLOCK_DESC.size
    body = b""
    for i, (data, wire, sec, nsec) in enumerate(frames):
        mac = FRAME_HDR.size + 2  # the kernel aligns the network header: tp_mac is not the header size
        size = (mac + len(data) + 15) & ~15
        nxt = 0 if i == len(frames) - 1 else size
        st = TP_STATUS_USER | (TP_STATUS_VLAN_VALID if vlan is not None else 0)
        hdr = FRAME_HDR.pack(nxt, sec, nsec, len(data), wire, st, mac, mac + 14, 0, vlan or 0, 0, 0)
        body += (hdr + b"\0\0" + data).ljust(size, b"\0")
    ts_last = frames[-1][2:] if frames else (0, 0)
    ts_first = frames[0][2:] if frames else (0, 0)
    desc = BLOCK_DESC.pack(3, 0, status, len(frames), first, first + len(body), 7, *ts_first, *ts_last)
    return desc + body


def test_header_sizes_match_the_kernel():
    assert BLOCK_DESC.size == 48  # struct tpacket_block_desc (with tpacket_hdr_v1), x86-64 and arm64
    assert FRAME_HDR.size == 48  # struct tpacket3_hdr


def test_block_frames_come_back_with_bytes_lengths_and_times():
    a, b = bytes(range(60)), b"\xaa" * 128
    raw = _block([(a, 60, 100, 5), (b, 1514, 100, 900_000_000)])
    hdr, frames = parse_block(raw)
    assert (hdr.version, hdr.num_pkts, hdr.seq_num, hdr.user_owned) == (3, 2, 7, True)
    assert hdr.first_ts == pytest.approx(100.000000005) and hdr.last_ts == pytest.approx(100.9)
    assert [f.data for f in frames] == [a, b]
    assert [f.wirelen for f in frames] == [60, 1514]
    assert [f.truncated for f in frames] == [False, True]
    assert frames[0].timestamp < frames[1].timestamp == pytest.approx(100.9)


def test_block_at_an_offset_and_a_kernel_owned_block():
    raw = b"\xff" * 4096 + _block([(b"x" * 20, 20, 1, 0)])
    assert parse_block(raw, 4096)[1][0].data == b"x" * 20
    assert not parse_block_header(_block([], status=TP_STATUS_KERNEL)).user_owned


def test_vlan_tag_is_put_back_from_the_frame_header():
    frame = bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP() / UDP())
    _, [f] = parse_block(_block([(frame, len(frame), 1, 0)], vlan=42))
    assert f.vlan_restored and f.wirelen == len(frame) + 4
    assert Ether(f.data)[Dot1Q].vlan == 42 and f.data[12:14] == b"\x81\x00"


def test_a_block_claiming_more_frames_than_it_chains_is_refused():
    raw = bytearray(_block([(b"y" * 20, 20, 1, 0)]))
    struct.pack_into("=I", raw, 12, 2)  # num_pkts = 2, but the only frame's tp_next_offset is 0
    with pytest.raises(PacketlabError, match="no successor"):
        parse_block(bytes(raw))


def test_geometry():
    g = Geometry(block_size=1 << 20, block_nr=8, frame_size=2048, retire_ms=10)
    assert (g.frame_nr, g.size) == (4096, 8 << 20)
    assert struct.unpack("=7I", g.req3()) == (1 << 20, 8, 2048, 4096, 10, 0, 0)
    for bad in (dict(block_size=1000), dict(frame_size=100), dict(block_nr=0), dict(frame_size=1 << 21)):
        with pytest.raises(InputError):
            Geometry(**bad)  # type: ignore[arg-type]


def _bpf_filter():
    lib = ctypes.CDLL(ctypes.util.find_library("pcap") or "libpcap.so.0.8")
    fn = lib.bpf_filter
    fn.restype = ctypes.c_uint
    return fn


def run_filter(insns: list[tuple[int, int, int, int]], frame: bytes) -> int:
    """libpcap's own classic BPF interpreter: what the kernel's filter returns (bytes to keep, 0 = drop)."""
    raw = b"".join(struct.pack("=HBBI", *i) for i in insns)
    return _bpf_filter()(raw, frame, len(frame), len(frame))


def test_compiled_filter_accepts_what_it_names_and_returns_the_snaplen():
    insns = compile_filter("udp port 53", snaplen=200)
    dns = bytes(Ether() / IP(dst="10.0.0.1") / UDP(sport=4000, dport=53) / (b"q" * 300))
    assert run_filter(insns, dns) == 200  # accepted, cut to 200 bytes
    assert run_filter(insns, bytes(Ether() / IP() / UDP(sport=4000, dport=54))) == 0
    assert run_filter(compile_filter(""), bytes(Ether() / ARP())) == 65535  # empty: everything, whole


def test_a_bad_expression_is_refused_with_the_reason():
    with pytest.raises(InputError, match="invalid capture filter") as err:
        compile_filter("udp prot 53")
    assert "syntax error" in str(err.value)


def test_the_inspectors_default_filter():
    insns = compile_filter(INSPECT_FILTER, INSPECT_SNAPLEN)
    eth = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    ip, ip6 = IP(src="10.0.0.1", dst="10.0.0.2"), IPv6(src="fd00::1", dst="fd00::2")
    kept = {
        "syn": eth / ip / TCP(flags="S"),
        "fin": eth / ip / TCP(flags="FA"),
        "rst": eth / ip / TCP(flags="R"),
        "tcp payload": eth / ip / TCP(flags="PA") / b"GET / HTTP/1.1\r\n\r\n",
        "tcp payload, IP options": eth / IP(dst="10.0.0.2", options=b"\x01" * 4) / TCP(flags="A") / b"x",
        "udp": eth / ip / UDP(dport=53) / b"q",
        "icmp": eth / ip / ICMP(),
        "later fragment": eth / IP(dst="10.0.0.2", proto=6, frag=10) / (b"z" * 40),
        "ipv6 tcp ack": eth / ip6 / TCP(flags="A"),
        "ipv6 udp": eth / ip6 / UDP(),
    }
    dropped = {
        "pure ack": eth / ip / TCP(flags="A"),
        "pure ack with options": eth / ip / TCP(flags="A", options=[("Timestamp", (1, 2))]),
        "arp": eth / ARP(),
    }
    assert {k for k, f in kept.items() if run_filter(insns, bytes(f)) != INSPECT_SNAPLEN} == set()
    assert {k for k, f in dropped.items() if run_filter(insns, bytes(f)) != 0} == set()
