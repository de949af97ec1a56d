"""bpf/include/csum.h — the one checksum header every header-rewriting program shares.

Three layers, each checked against checksums recomputed from scratch:

1. A pure-Python RFC 1624 eqn. 3 reference, property-tested against scapy in
   tests/unit/test_toolkit_bpf_csum.py (no kernel needed).
2. The C helpers themselves, run in the kernel (tests/kernel/bpf/csum_helpers.c under
   BPF_PROG_TEST_RUN), equal the reference on arbitrary input — checksums 0 and
   0xffff, unchanged fields, UDP's "no checksum" included.
3. The real programs — bpf/07-xdp-icmp-echo.c and bpf/09-lb.c (NAT both ways,
   DSR's outer header) — on crafted packets whose rewritten checksum lands
   exactly on the edge: 0x0000 (kept for IPv4, ICMP, ICMPv6, TCP), a computed 0
   in UDP (sent as 0xffff), an all-zero ICMPv4 reply (0xffff), a received UDP 0
   (stays 0). Every rewritten checksum is compared byte-exact with scapy.

The edge inputs are found by a small search (`solve_word`): one 16-bit field is
varied until the ones'-complement sum of the bytes the checksum covers is -0.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet

from packetlab.ebpf.loader import acquire, release
from packetlab.proto.dissect import ones_sum
from packetlab.tools.lb.balancer import LoadBalancer
from tests.unit.test_toolkit_bpf_csum import PROPS, fold, rfc1624, rfc1624_udp, words  # shared with its unit twin

MINUS_ZERO = 0xFFFF  # a ones'-complement sum of -0: the checksum is ~(-0) = 0x0000


# ---- 1. the reference ----------------------------------------------------------------------------


def solve_word(covered: bytes, offset: int, target: int = MINUS_ZERO) -> int:
    """The value of the 16-bit word at `offset` that makes `covered` sum to `target`: a small search."""
    rest = ones_sum(covered[:offset] + b"\0\0" + covered[offset + 2 :])
    for w in range(0x10000):
        if fold(rest + w) == target:
            return w
    raise AssertionError(f"no 16-bit value makes the sum {target:#06x}")


# ---- 2. the C helpers in the kernel --------------------------------------------------------------
OPS = {"replace2": 0, "replace4": 1, "udp_replace2": 2, "udp_replace4": 3, "ipv4_csum": 4, "icmp_zero": 5}
HEADER = b"\x02\0\0\0\0\x01\x02\0\0\0\0\x02\x88\xb5"  # Ethernet header the harness ignores


@pytest.fixture(scope="module")
def helpers():
    prog = acquire("tests/kernel/bpf/csum_helpers.c")
    yield prog
    release(prog)


def run_op(prog, op: str, check: int, old: bytes = b"", new: bytes = b"", tail: bytes = b"", length: int = 0) -> int:
    """Run one csum.h helper in the kernel; returns the checksum it left in the frame."""
    frame = (
        HEADER
        + struct.pack("!BBH4s4s", OPS[op], 0, check, old.ljust(4, b"\0"), new.ljust(4, b"\0"))
        + struct.pack("<I", length)
        + tail
    )
    r = prog.test_run(frame)
    assert r.verdict == "XDP_PASS", f"harness refused op {op}"
    return struct.unpack_from("!H", r.data, 16)[0]


EDGE_CHECKS = [0x0000, 0xFFFF, 0x0001, 0xFFFE, 0xF7FF]


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(
    st.one_of(st.sampled_from(EDGE_CHECKS), st.integers(0, 0xFFFF)),
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.sampled_from(["replace2", "replace4", "udp_replace2", "udp_replace4"]),
)
@example(0xF7FF, b"\x08\x00", b"\x00\x00", "replace2")  # eqn. 3 lands on 0x0000
@example(0x0000, b"\x55\x55", b"\x55\x55", "replace2")  # erratum 4782's example: stays 0x0000
@example(0x0000, b"\x12\x34", b"\x56\x78", "udp_replace2")  # no UDP checksum: stays 0
@example(0xF7FF, b"\x08\x00", b"\x00\x00", "udp_replace2")  # computed 0: sent as 0xffff
@example(0xFFFF, b"\xff\xff", b"\x00\x00", "replace2")  # all terms zero: +0
def test_kernel_helpers_equal_the_reference(helpers, check, old, new, op):
    n = 1 if op.endswith("2") else 2
    ref = rfc1624_udp if op.startswith("udp") else rfc1624
    want = ref(check, words(old[: 2 * n]), words(new[: 2 * n]))
    assert run_op(helpers, op, check, old[: 2 * n], new[: 2 * n]) == want


ipv4_headers = st.builds(
    lambda tos, length, ident, flags, ttl, proto, src, dst: bytes(
        IP(tos=tos, len=length, id=ident, flags=flags, ttl=ttl, proto=proto, src=src, dst=dst)
    )[:20],
    st.integers(0, 255),
    st.integers(20, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 7),
    st.integers(0, 255),
    st.integers(0, 255),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=4).map(str),
)


@PROPS
@given(ipv4_headers, st.integers(0, 0xFFFF))
def test_kernel_ipv4_header_checksum_equals_scapy(helpers, header, garbage):
    """pl_ipv4_csum() skips the checksum field, so whatever it holds does not matter."""
    dirty = header[:10] + struct.pack("!H", garbage) + header[12:]
    assert run_op(helpers, "ipv4_csum", 0, tail=dirty) == IP(header).chksum


def test_kernel_ipv4_header_checksum_landing_on_zero(helpers):
    base = bytes(IP(src="10.31.1.11", dst="10.31.2.11", proto=6, len=60))[:20]
    ident = solve_word(base[:10] + b"\0\0" + base[12:], 4)
    header = IP(base[:4] + struct.pack("!H", ident) + base[6:])
    del header.chksum
    header = bytes(header)
    assert IP(header).chksum == 0x0000  # scapy: the sum is -0
    assert run_op(helpers, "ipv4_csum", 0xABCD, tail=header) == 0x0000


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 15, 64, 1472, 3000])  # XDP frames are linear: < 4 KiB
def test_kernel_zero_message_gets_0xffff_and_nothing_else_does(helpers, length):
    zero = bytes(length)
    assert run_op(helpers, "icmp_zero", 0x0000, tail=zero, length=length) == 0xFFFF
    assert run_op(helpers, "icmp_zero", 0x1234, tail=zero, length=length) == 0x1234  # not 0: untouched
    for pos in sorted({0, length // 2, length - 1}) if length else []:
        one = bytearray(zero)
        one[pos] = 1
        assert run_op(helpers, "icmp_zero", 0x0000, tail=bytes(one), length=length) == 0x0000, pos
    # bytes after the message (Ethernet padding) are not part of it
    assert run_op(helpers, "icmp_zero", 0x0000, tail=zero + b"\x01" * 8, length=length) == 0xFFFF
    if length:  # a truncated message: left alone
        assert run_op(helpers, "icmp_zero", 0x0000, tail=zero[:-1], length=length) == 0x0000


def test_kernel_zero_message_longer_than_the_scan_is_left_alone(helpers):
    """A length beyond PL_CSUM_MAX_SCAN (4096) is not scanned at all."""
    assert run_op(helpers, "icmp_zero", 0x0000, tail=bytes(64), length=4097) == 0x0000
    assert run_op(helpers, "icmp_zero", 0x0000, tail=bytes(64), length=64) == 0xFFFF


# ---- 3a. the real ICMP echo responder ------------------------------------------------------------
MAC_A, MAC_B = "02:00:00:00:07:01", "02:00:00:00:07:02"
V4 = {"src": "10.7.1.1", "dst": "10.7.2.2"}
V6 = {"src": "fd07:1::1", "dst": "fd07:2::2"}


@pytest.fixture(scope="module")
def echo():
    prog = acquire("bpf/07-xdp-icmp-echo.c")
    yield prog
    release(prog)


def recomputed(frame: Ether, *layers: type[Packet]) -> Ether:
    """`frame` with the checksums of `layers` deleted and rebuilt by scapy."""
    fresh = frame.copy()
    for layer in layers:
        del fresh[layer].chksum
    return Ether(bytes(fresh))


def echo_reply(echo, request: Packet) -> Ether:
    r = echo.test_run(bytes(request))
    assert r.verdict == "XDP_TX", request.summary()
    return Ether(r.data)


def assert_v4_reply_exact(reply: Ether) -> None:
    fresh = recomputed(reply, IP, ICMP)
    assert (reply[IP].chksum, reply[ICMP].chksum) == (fresh[IP].chksum, fresh[ICMP].chksum)


def test_echo_icmp_checksum_landing_on_0x0000_stays_0x0000(echo):
    """A reply whose bytes are not zero but sum to -0: eqn. 3 gives 0x0000, and so does scapy."""
    payload = b"packetlab csum"
    reply_msg = bytes(ICMP(type=0, id=0x1234, seq=0, chksum=0) / payload)
    seq = solve_word(reply_msg, 6)
    req = Ether(src=MAC_A, dst=MAC_B) / IP(**V4) / ICMP(id=0x1234, seq=seq) / payload
    reply = echo_reply(echo, req)
    assert reply[ICMP].chksum == 0x0000
    assert_v4_reply_exact(reply)
    # id 0 and seq 0, so the first 8 bytes are zero, but the payload is not: still 0x0000
    reply = echo_reply(echo, Ether(src=MAC_A, dst=MAC_B) / IP(**V4) / ICMP(id=0, seq=0) / b"\xff\xff")
    assert reply[ICMP].chksum == 0x0000
    assert_v4_reply_exact(reply)


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 56, 1472])
def test_echo_all_zero_reply_gets_0xffff(echo, length):
    """Type 0, id 0, seq 0, zero payload: eqn. 3 gives 0x0000, which does not verify; 0xffff does."""
    reply = echo_reply(echo, Ether(src=MAC_A, dst=MAC_B) / IP(**V4) / ICMP(id=0, seq=0) / bytes(length))
    assert reply[ICMP].chksum == 0xFFFF
    assert_v4_reply_exact(reply)


def test_echo_all_zero_reply_ignores_ethernet_padding(echo):
    """The frame is padded to 60 bytes with non-zero bytes; the message ends where IPv4's total length says."""
    frame = bytes(Ether(src=MAC_A, dst=MAC_B) / IP(**V4) / ICMP(id=0, seq=0)) + b"\xee" * 18
    reply = echo_reply(echo, Ether(frame))
    assert reply[ICMP].chksum == 0xFFFF
    assert_v4_reply_exact(reply)


def test_echo_ipv4_header_checksum_landing_on_0x0000(echo):
    """TTL := 64 is the IPv4 header's change; choose the id so that the reply's header sums to -0."""
    reply_hdr = bytes(IP(src=V4["dst"], dst=V4["src"], ttl=64, len=20 + 8 + 8, chksum=0) / ICMP() / bytes(8))[:20]
    ident = solve_word(reply_hdr, 4)
    reply = echo_reply(echo, Ether(src=MAC_A, dst=MAC_B) / IP(id=ident, ttl=17, **V4) / ICMP(id=7, seq=7) / bytes(8))
    assert reply[IP].chksum == 0x0000
    assert_v4_reply_exact(reply)


def test_echo_icmpv6_checksum_landing_on_0x0000(echo):
    payload = b"v6 edge"
    msg = bytes(ICMPv6EchoReply(id=0x66, seq=0, cksum=0) / payload)
    pseudo = bytes(IPv6(**V6))[8:40] + struct.pack("!IxxxB", len(msg), 58)
    seq = solve_word(pseudo + msg, len(pseudo) + 6)
    req = Ether(src=MAC_A, dst=MAC_B) / IPv6(**V6) / ICMPv6EchoRequest(id=0x66, seq=seq) / payload
    reply = echo_reply(echo, req)
    assert reply[IPv6].payload.cksum == 0x0000
    fresh = reply.copy()
    del fresh[IPv6].payload.cksum
    assert Ether(bytes(fresh))[IPv6].payload.cksum == 0x0000


@PROPS
@given(
    st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(1, 255), st.integers(0, 0xFFFF), st.binary(max_size=64)
)
@example(0, 0, 64, 0, b"")
def test_echo_reply_checksums_equal_scapy_for_any_request(echo, ident, seq, ttl, ip_id, payload):
    req = Ether(src=MAC_A, dst=MAC_B) / IP(id=ip_id, ttl=ttl, **V4) / ICMP(id=ident, seq=seq) / payload
    assert_v4_reply_exact(echo_reply(echo, req))


# ---- 3b. the real load balancer: NAT both ways, DSR's outer header -------------------------------
CLIENT, CLIENT_MAC = "10.31.1.11", "02:00:00:00:31:0b"
LB_TO_BACKENDS = "10.32.0.254"
NAT_VIP, DSR_VIP = "10.31.100.1", "10.31.100.2"
BACKEND = "10.32.0.11"
DSR_LEN = 20 + 20 + 5  # inner IPv4 + TCP + b"hello"


def dsr_backend() -> str:
    """A backend address for which DSR's outer IPv4 header sums to -0 (checksum 0x0000): a small search
    (the backends' network is a /16, so the address alone reaches every sum)."""
    for third in range(1, 255):
        for last in range(1, 254):
            addr = f"10.32.{third}.{last}"
            outer = bytes(IP(len=DSR_LEN + 20, id=0, flags=0, ttl=64, proto=4, src=LB_TO_BACKENDS, dst=addr, chksum=0))[
                :20
            ]
            if ones_sum(outer) == MINUS_ZERO:
                return addr
    raise AssertionError("no backend address lands DSR's outer checksum on 0x0000")


DSR_BACKEND = dsr_backend()
CONFIG = {
    "vips": [
        {
            "name": "web",
            "address": NAT_VIP,
            "port": 80,
            "mode": "nat",
            "table_size": 53,
            "backends": [{"name": "b1", "address": BACKEND, "port": 8080}],
        },
        {
            "name": "dns",
            "address": NAT_VIP,
            "port": 53,
            "protocol": "udp",
            "mode": "nat",
            "table_size": 53,
            "backends": [{"name": "b1", "address": BACKEND, "port": 5353}],
        },
        {
            "name": "dsr",
            "address": DSR_VIP,
            "port": 80,
            "mode": "dsr",
            "table_size": 53,
            "backends": [{"name": "b1", "address": DSR_BACKEND}],
        },
    ]
}


@pytest.fixture(scope="module")
def balancer(module_lab):
    """lb between client cl (eth0) and backends that exist only as neighbour entries (eth1); the
    balancer loaded with CONFIG, every backend up."""
    lb, cl, bk = module_lab.host("lb"), module_lab.host("cl"), module_lab.host("bk")
    module_lab.link(lb, cl, ip="10.31.1.254/24", peer_ip=f"{CLIENT}/24")
    module_lab.link(lb, bk, ip=f"{LB_TO_BACKENDS}/16", peer_ip="10.32.0.99/16")
    for i, addr in enumerate((BACKEND, DSR_BACKEND)):  # backends that exist only as neighbour entries
        lb.run(
            ["ip", "neigh", "add", addr, "lladdr", f"02:00:00:00:32:{i:02x}", "dev", "eth1", "nud", "permanent"],
            check=True,
        )
    b = LoadBalancer(lb, ["eth0", "eth1"])
    b.apply(CONFIG)
    for vip in ("web", "dns", "dsr"):
        b.mark(vip, "b1", True)
    yield {dev: lb.mac(dev) for dev in ("eth0", "eth1")}, b  # MACs read once: frames are built often


L4 = {"tcp": (TCP, 6, 20, {"flags": "PA", "seq": 1000, "ack": 1}), "udp": (UDP, 17, 8, {})}
VPORT = {"tcp": 80, "udp": 53}
BPORT = {"tcp": 8080, "udp": 5353}
_sports = iter(range(41000, 42000))


def l4_covered(src: str, dst: str, seg: Packet, proto: int) -> bytes:
    """Pseudo-header + L4 bytes with the checksum field zeroed: what the TCP/UDP checksum covers."""
    raw = bytes(seg)
    off = 16 if proto == 6 else 6
    pseudo = bytes(IP(src=src, dst=dst))[12:20] + struct.pack("!xBH", proto, len(raw))
    return pseudo + raw[:off] + b"\0\0" + raw[off + 2 :]


def land_payload(src: str, dst: str, proto: str, sport: int, dport: int, target: int = MINUS_ZERO) -> bytes:
    """A payload whose first word makes the segment src:sport -> dst:dport sum to `target`."""
    cls, number, hlen, kw = L4[proto]
    seg = cls(sport=sport, dport=dport, chksum=0, **kw) / b"\0\0csum"
    w = solve_word(l4_covered(src, dst, seg, number), 12 + hlen, target)
    return struct.pack("!H", w) + b"csum"


def l4_exact(frame: Ether, proto: str) -> None:
    """The frame's IPv4 and L4 checksums are byte for byte what scapy computes (UDP 0 = none: left as is)."""
    cls = L4[proto][0]
    layers = (IP,) if cls is UDP and frame[UDP].chksum == 0 else (IP, cls)
    fresh = recomputed(frame, *layers)
    assert frame[IP].chksum == fresh[IP].chksum
    assert frame[cls].chksum == fresh[cls].chksum


def client_frame(
    macs: dict[str, str], proto: str, sport: int, payload: bytes, chksum: int | None = None, **ip
) -> Ether:
    cls, _, _, kw = L4[proto]
    return Ether(
        bytes(
            Ether(src=CLIENT_MAC, dst=macs["eth0"])
            / IP(src=CLIENT, dst=NAT_VIP, **ip)
            / cls(sport=sport, dport=VPORT[proto], chksum=chksum, **kw)
            / payload
        )
    )


def backend_frame(macs: dict[str, str], proto: str, cport: int, payload: bytes, chksum: int | None = None) -> Ether:
    cls, _, _, kw = L4[proto]
    return Ether(
        bytes(
            Ether(src="02:00:00:00:32:00", dst=macs["eth1"])
            / IP(src=BACKEND, dst=CLIENT)
            / cls(sport=BPORT[proto], dport=cport, chksum=chksum, **kw)
            / payload
        )
    )


@pytest.mark.parametrize("proto,want", [("tcp", 0x0000), ("udp", 0xFFFF)])
def test_nat_forward_l4_checksum_landing_on_zero(balancer, proto, want):
    """The rewritten segment sums to -0: TCP keeps 0x0000, UDP sends its computed 0 as 0xffff."""
    macs, b = balancer
    sport = next(_sports)
    payload = land_payload(CLIENT, BACKEND, proto, sport, BPORT[proto])
    out = Ether(b.test_run(client_frame(macs, proto, sport, payload)).data)
    assert (out[IP].dst, out[L4[proto][0]].dport) == (BACKEND, BPORT[proto])
    assert out[L4[proto][0]].chksum == want
    l4_exact(out, proto)


@pytest.mark.parametrize("proto,want", [("tcp", 0x0000), ("udp", 0xFFFF)])
def test_nat_reply_l4_checksum_landing_on_zero(balancer, proto, want):
    macs, b = balancer
    sport = next(_sports)
    b.test_run(client_frame(macs, proto, sport, b"hi"))  # the flow, so a reply is known
    payload = land_payload(NAT_VIP, CLIENT, proto, VPORT[proto], sport)
    back = Ether(b.test_run(backend_frame(macs, proto, sport, payload)).data)
    assert (back[IP].src, back[L4[proto][0]].sport) == (NAT_VIP, VPORT[proto])
    assert back[L4[proto][0]].chksum == want
    l4_exact(back, proto)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_nat_input_whose_checksum_is_on_the_edge(balancer, proto):
    """The client's own segment sums to -0 (TCP carries 0x0000, UDP 0xffff): the rewrite still matches scapy."""
    macs, b = balancer
    sport = next(_sports)
    payload = land_payload(CLIENT, NAT_VIP, proto, sport, VPORT[proto])
    frame = client_frame(macs, proto, sport, payload)
    assert frame[L4[proto][0]].chksum == (0x0000 if proto == "tcp" else 0xFFFF)
    l4_exact(Ether(b.test_run(frame).data), proto)


def test_nat_udp_without_a_checksum_stays_without_one(balancer):
    """UDP checksum 0 means "none" (RFC 768): both ways it stays 0, not 0xffff and not a computed value."""
    macs, b = balancer
    sport = next(_sports)
    out = Ether(b.test_run(client_frame(macs, "udp", sport, b"query", chksum=0)).data)
    assert (out[IP].dst, out[UDP].dport, out[UDP].chksum) == (BACKEND, 5353, 0)
    back = Ether(b.test_run(backend_frame(macs, "udp", sport, b"answer", chksum=0)).data)
    assert (back[IP].src, back[UDP].sport, back[UDP].chksum) == (NAT_VIP, 53, 0)
    l4_exact(out, "udp")
    l4_exact(back, "udp")


def test_nat_ipv4_header_checksum_landing_on_0x0000(balancer):
    macs, b = balancer
    sport = next(_sports)
    template = client_frame(macs, "tcp", sport, b"hi")
    rewritten = bytes(template[IP])[:20]
    rewritten = rewritten[:10] + b"\0\0" + rewritten[12:16] + bytes(IP(dst=BACKEND))[16:20]
    ident = solve_word(rewritten, 4)
    out = Ether(b.test_run(client_frame(macs, "tcp", sport, b"hi", id=ident)).data)
    assert out[IP].dst == BACKEND and out[IP].chksum == 0x0000
    l4_exact(out, "tcp")


def test_dsr_outer_header_checksum_landing_on_0x0000(balancer):
    """DSR computes the outer header's checksum from scratch (pl_ipv4_csum): -0 gives 0x0000, as scapy says."""
    macs, b = balancer
    inner = (
        Ether(src=CLIENT_MAC, dst=macs["eth0"])
        / IP(src=CLIENT, dst=DSR_VIP)
        / TCP(sport=next(_sports), dport=80, flags="S")
        / b"hello"
    )
    assert len(inner[IP]) == DSR_LEN
    out = Ether(b.test_run(inner).data)
    assert (out[IP].proto, out[IP].dst) == (4, DSR_BACKEND)
    assert out[IP].chksum == 0x0000 == recomputed(out, IP)[IP].chksum


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.sampled_from(["tcp", "udp"]), st.binary(max_size=48), st.integers(0, 0xFFFF), st.integers(1, 255))
def test_nat_rewrites_equal_scapy_for_any_segment(balancer, proto, payload, ident, ttl):
    macs, b = balancer
    sport = next(_sports)
    out = Ether(b.test_run(client_frame(macs, proto, sport, payload, id=ident, ttl=ttl)).data)
    l4_exact(out, proto)
    back = Ether(b.test_run(backend_frame(macs, proto, sport, payload)).data)
    assert back[IP].src == NAT_VIP
    l4_exact(back, proto)
