"""Malformed input for every XDP parser in bpf/ (module 07).

A corpus of odd frames — truncated headers at every length, IPv4 options, VLAN
and QinQ tags, IPv6 extension headers (in and beyond the parser's limit),
fragments, bad length fields — is fed through BPF_PROG_TEST_RUN to

* every XDP program in bpf/ (bcc sources and libbpf ``*.bpf.c`` alike, except the
  ones that fail the verifier on purpose): none may make the test run fail or
  return XDP_ABORTED, on the corpus, on every truncation of it, or on seeded
  random byte flips;
* module 07's own programs, with the exact verdict (and, for the counter, the
  exact category; for the echo responder, the exact reply) asserted per frame.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_NOP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import ARP, Dot1AD, Dot1Q, Ether

from packetlab.course.m07_xdp.counters import protocol_counts
from packetlab.ebpf.loader import BPF_DIR, acquire, release

MAC_A, MAC_B = "02:00:00:00:07:01", "02:00:00:00:07:02"
ETH = Ether(src=MAC_A, dst=MAC_B)
V4 = dict(src="10.7.1.1", dst="10.7.2.2")
V6 = dict(src="fd07:1::1", dst="fd07:2::2")
PAD = b"\x00" * 8


def _patch(raw: bytes, offset: int, value: bytes) -> bytes:
    return raw[:offset] + value + raw[offset + len(value) :]


def corpus() -> list[tuple[str, bytes, str, str]]:
    """(name, frame, category 07-xdp-counter must count, verdict 07-xdp-icmp-echo must return)."""
    udp4 = bytes(ETH / IP(**V4) / UDP(sport=1, dport=9) / PAD)
    tcp4 = bytes(ETH / IP(**V4) / TCP(sport=1, dport=80) / PAD)
    echo4 = bytes(ETH / IP(**V4) / ICMP(id=1, seq=1) / PAD)
    echo6 = bytes(ETH / IPv6(**V6) / ICMPv6EchoRequest(id=1, seq=1) / PAD)
    opts = [IPOption_RR(routers=["10.7.0.1"]), IPOption_NOP()]  # 8 bytes: ihl 7
    max_opts = [IPOption_RR(routers=[f"10.7.0.{i}" for i in range(9)]), IPOption_NOP()]  # 40 bytes: ihl 15
    c: list[tuple[str, bytes, str, str]] = [
        # --- well-formed references
        ("ipv4-udp", udp4, "IPv4 UDP", "XDP_PASS"),
        ("ipv4-tcp", tcp4, "IPv4 TCP", "XDP_PASS"),
        ("ipv4-echo-request", echo4, "IPv4 ICMP", "XDP_TX"),
        ("ipv4-echo-reply", bytes(ETH / IP(**V4) / ICMP(type=0) / PAD), "IPv4 ICMP", "XDP_PASS"),
        ("ipv4-gre", bytes(ETH / IP(proto=47, **V4) / PAD), "IPv4 other", "XDP_PASS"),
        ("ipv6-echo-request", echo6, "IPv6 ICMPv6", "XDP_TX"),
        ("ipv6-udp", bytes(ETH / IPv6(**V6) / UDP(dport=9) / PAD), "IPv6 UDP", "XDP_PASS"),
        ("ipv6-tcp", bytes(ETH / IPv6(**V6) / TCP(dport=80) / PAD), "IPv6 TCP", "XDP_PASS"),
        (
            "arp",
            bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.7.1.1", pdst="10.7.1.2")),
            "non-IP",
            "XDP_PASS",
        ),
        ("lldp-ethertype", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x88CC) / (b"\x02" * 46)), "non-IP", "XDP_PASS"),
        ("all-zero-60", bytes(60), "non-IP", "XDP_PASS"),
        ("all-ff-60", b"\xff" * 60, "non-IP", "XDP_PASS"),
        ("ipv4-udp-1514", bytes(ETH / IP(**V4) / UDP(dport=9) / (b"x" * 1472)), "IPv4 UDP", "XDP_PASS"),
        # --- VLAN tags
        ("vlan-udp", bytes(ETH / Dot1Q(vlan=7) / IP(**V4) / UDP(dport=9) / PAD), "IPv4 UDP", "XDP_PASS"),
        (
            "qinq-udp",
            bytes(ETH / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IP(**V4) / UDP(dport=9) / PAD),
            "IPv4 UDP",
            "XDP_PASS",
        ),
        # id 0, seq 0, zero payload: the reply's ICMP bytes are all zero, the one case where the
        # incremental update must write 0xffff rather than 0x0000 (see bpf/include/csum.h)
        ("vlan-echo-request", bytes(ETH / Dot1Q(vlan=7) / IP(**V4) / ICMP() / PAD), "IPv4 ICMP", "XDP_TX"),
        (
            "qinq-echo6-request",
            bytes(ETH / Dot1AD(vlan=100) / Dot1Q(vlan=7) / IPv6(**V6) / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_TX",
        ),
        (
            "triple-vlan",
            bytes(ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3) / IP(**V4) / UDP() / PAD),
            "malformed",
            "XDP_PASS",
        ),
        ("vlan-tag-truncated", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x8100)) + b"\x00\x07", "malformed", "XDP_PASS"),
        ("vlan-ethertype-only", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x8100)), "malformed", "XDP_PASS"),
        ("vlan-arp", bytes(ETH / Dot1Q(vlan=7) / ARP()), "non-IP", "XDP_PASS"),
        # --- IPv4 header oddities
        ("ipv4-ethertype-only", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x0800)), "malformed", "XDP_PASS"),
        ("ipv4-header-cut-10", udp4[:24], "malformed", "XDP_PASS"),
        ("ipv4-ihl-4", _patch(udp4, 14, b"\x44"), "malformed", "XDP_PASS"),
        ("ipv4-ihl-0", _patch(udp4, 14, b"\x40"), "malformed", "XDP_PASS"),
        ("ipv4-ihl-15-short", _patch(udp4, 14, b"\x4f"), "malformed", "XDP_PASS"),
        ("ipv4-version-6", _patch(udp4, 14, b"\x65"), "malformed", "XDP_PASS"),
        ("ipv4-options-udp", bytes(ETH / IP(options=opts, **V4) / UDP(dport=9) / PAD), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-options-tcp", bytes(ETH / IP(options=opts, **V4) / TCP(dport=80) / PAD), "IPv4 TCP", "XDP_PASS"),
        ("ipv4-options-echo", bytes(ETH / IP(options=opts, **V4) / ICMP() / PAD), "IPv4 ICMP", "XDP_PASS"),
        ("ipv4-max-options-tcp", bytes(ETH / IP(options=max_opts, **V4) / TCP() / PAD), "IPv4 TCP", "XDP_PASS"),
        ("ipv4-options-udp-cut", bytes(ETH / IP(options=opts, **V4) / UDP())[: 14 + 28 + 4], "malformed", "XDP_PASS"),
        ("ipv4-total-length-too-big", _patch(udp4, 16, b"\x03\xe8"), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-total-length-too-small", _patch(udp4, 16, b"\x00\x0a"), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-later-fragment", bytes(ETH / IP(frag=100, proto=17, **V4) / (b"\xff" * 3)), "fragment", "XDP_PASS"),
        ("ipv4-first-fragment-udp", bytes(ETH / IP(flags="MF", **V4) / UDP(dport=9) / PAD), "IPv4 UDP", "XDP_PASS"),
        ("ipv4-fragmented-echo", bytes(ETH / IP(flags="MF", **V4) / ICMP() / PAD), "IPv4 ICMP", "XDP_PASS"),
        (
            "ipv4-echo-to-broadcast",
            bytes(ETH / IP(src="10.7.1.1", dst="255.255.255.255") / ICMP()),
            "IPv4 ICMP",
            "XDP_PASS",
        ),
        ("ipv4-echo-to-multicast", bytes(ETH / IP(src="10.7.1.1", dst="224.0.0.1") / ICMP()), "IPv4 ICMP", "XDP_PASS"),
        (
            "ipv4-echo-broadcast-mac",
            bytes(Ether(src=MAC_A, dst="ff:ff:ff:ff:ff:ff") / IP(**V4) / ICMP()),
            "IPv4 ICMP",
            "XDP_PASS",
        ),
        ("ipv4-echo-code-1", bytes(ETH / IP(**V4) / ICMP(code=1) / PAD), "IPv4 ICMP", "XDP_PASS"),
        # --- L4 oddities
        ("tcp-doff-0", _patch(tcp4, 14 + 20 + 12, b"\x00"), "malformed", "XDP_PASS"),
        ("tcp-doff-4", _patch(tcp4, 14 + 20 + 12, b"\x40"), "malformed", "XDP_PASS"),
        ("tcp-doff-15-short", _patch(tcp4, 14 + 20 + 12, b"\xf0"), "malformed", "XDP_PASS"),
        ("tcp-cut-10", tcp4[: 14 + 20 + 10], "malformed", "XDP_PASS"),
        ("udp-cut-4", udp4[: 14 + 20 + 4], "malformed", "XDP_PASS"),
        ("icmp-cut-2", echo4[: 14 + 20 + 2], "malformed", "XDP_PASS"),
        ("ipv4-no-l4-bytes", udp4[:34], "malformed", "XDP_PASS"),
        # --- IPv6 header and extension headers
        ("ipv6-ethertype-only", bytes(Ether(src=MAC_A, dst=MAC_B, type=0x86DD)), "malformed", "XDP_PASS"),
        ("ipv6-header-cut-20", echo6[:34], "malformed", "XDP_PASS"),
        ("ipv6-version-4", _patch(echo6, 14, b"\x40"), "malformed", "XDP_PASS"),
        ("ipv6-hbh-udp", bytes(ETH / IPv6(**V6) / IPv6ExtHdrHopByHop() / UDP(dport=9) / PAD), "IPv6 UDP", "XDP_PASS"),
        (
            "ipv6-routing-tcp",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrRouting() / TCP(dport=80) / PAD),
            "IPv6 TCP",
            "XDP_PASS",
        ),
        (
            "ipv6-dstopt-echo",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrDestOpt() / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "ipv6-hbh-echo",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrHopByHop() / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "ipv6-4-ext-udp",
            bytes(
                ETH
                / IPv6(**V6)
                / IPv6ExtHdrHopByHop()
                / IPv6ExtHdrDestOpt()
                / IPv6ExtHdrRouting()
                / IPv6ExtHdrDestOpt()
                / UDP(dport=9)
                / PAD
            ),
            "IPv6 UDP",
            "XDP_PASS",
        ),
        (
            "ipv6-5-ext-udp",
            bytes(
                ETH
                / IPv6(**V6)
                / IPv6ExtHdrHopByHop()
                / IPv6ExtHdrDestOpt()
                / IPv6ExtHdrRouting()
                / IPv6ExtHdrDestOpt()
                / IPv6ExtHdrDestOpt()
                / UDP(dport=9)
                / PAD
            ),
            "IPv6 other",
            "XDP_PASS",
        ),
        (
            "ipv6-frag-first-udp",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrFragment(m=1) / UDP(dport=9) / PAD),
            "IPv6 UDP",
            "XDP_PASS",
        ),
        (
            "ipv6-frag-later",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrFragment(offset=100, nh=17) / (b"\xff" * 3)),
            "fragment",
            "XDP_PASS",
        ),
        (
            "ipv6-fragmented-echo",
            bytes(ETH / IPv6(**V6) / IPv6ExtHdrFragment(m=1) / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "ipv6-hbh-len-overflow",
            _patch(bytes(ETH / IPv6(**V6) / IPv6ExtHdrHopByHop() / UDP() / PAD), 55, b"\xff"),
            "malformed",
            "XDP_PASS",
        ),
        ("ipv6-hbh-cut-1", bytes(ETH / IPv6(nh=0, **V6)) + b"\x11", "malformed", "XDP_PASS"),
        ("ipv6-frag-cut-4", bytes(ETH / IPv6(nh=44, **V6)) + b"\x11\x00\x00\x00", "malformed", "XDP_PASS"),
        ("ipv6-udp-cut-4", bytes(ETH / IPv6(**V6) / UDP())[: 14 + 40 + 4], "malformed", "XDP_PASS"),
        ("ipv6-tcp-cut-12", bytes(ETH / IPv6(**V6) / TCP())[: 14 + 40 + 12], "malformed", "XDP_PASS"),
        ("ipv6-icmp6-cut-4", echo6[: 14 + 40 + 4], "malformed", "XDP_PASS"),
        (
            "ipv6-echo-to-multicast",
            bytes(ETH / IPv6(src="fd07:1::1", dst="ff02::1") / ICMPv6EchoRequest()),
            "IPv6 ICMPv6",
            "XDP_PASS",
        ),
        (
            "vlan-ipv6-2-ext-udp",
            bytes(ETH / Dot1Q(vlan=7) / IPv6(**V6) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() / UDP(dport=9) / PAD),
            "IPv6 UDP",
            "XDP_PASS",
        ),
    ]
    return c


CORPUS = corpus()


def test_corpus_is_sane():
    frames = dict((name, frame) for name, frame, *_ in CORPUS)
    assert frames["ipv4-options-udp"][14] == 0x47 and frames["ipv4-max-options-tcp"][14] == 0x4F  # ihl 7, 15
    names = [name for name, *_ in CORPUS]
    assert len(names) == len(set(names))
    assert all(len(frame) >= 14 for _, frame, *_ in CORPUS)


# ---- every XDP program in bpf/ -----------------------------------------------------------------
_BCC_ENTRY = re.compile(r"^\s*int\s+(\w+)\s*\(\s*struct\s+xdp_md\s*\*", re.M)
_CORE_ENTRY = re.compile(r'SEC\("xdp[^"]*"\)\s*\n?\s*int\s+(\w+)', re.M)


def xdp_programs() -> list[tuple[str, str, str]]:
    """(file, function, kind) for every XDP entry point in bpf/*.c, except *fail* programs,
    which are rejected by the verifier on purpose."""
    out = []
    for path in sorted(BPF_DIR.glob("*.c")):
        if "fail" in path.name:
            continue
        text = path.read_text()
        if path.name.endswith(".bpf.c"):
            out += [(path.name, fn, "core") for fn in _CORE_ENTRY.findall(text)]
        else:
            out += [(path.name, fn, "bcc") for fn in _BCC_ENTRY.findall(text)]
    return out


def truncations(frames: list[bytes]) -> list[bytes]:
    """Every prefix (>= 14 bytes) of every frame: each header cut at every byte."""
    seen, out = set(), []
    for frame in frames:
        for n in range(14, len(frame) + 1):
            cut = frame[:n]
            if cut not in seen:
                seen.add(cut)
                out.append(cut)
    return out


def flips(frames: list[bytes], count: int, seed: int) -> list[bytes]:
    """Seeded random corruptions: 1-4 random bytes of a corpus frame overwritten."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        frame = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            frame[rng.randrange(len(frame))] = rng.randrange(256)
        out.append(bytes(frame))
    return out


SHORT = [f for _, f, *_ in CORPUS if len(f) <= 200]
FUZZ = truncations(SHORT) + flips(SHORT, 600, seed=7)


@pytest.fixture(scope="module")
def core_lab():
    from packetlab import Lab

    with Lab("t07m") as lab:
        yield lab


@pytest.mark.parametrize("source,function,kind", xdp_programs(), ids=lambda v: str(v))
def test_no_parser_aborts_or_fails_on_malformed_input(source, function, kind, request):
    if kind == "core":
        from packetlab.ebpf import co_re as core

        lab = request.getfixturevalue("core_lab")
        prog = core.load(core.compile_object(BPF_DIR / source), lab=lab, name=f"m-{function}"[:40])
        done = prog.close
    else:
        prog = acquire(BPF_DIR / source, function=function)
        done = lambda: release(prog)  # noqa: E731
    try:
        bad = []
        for name, frame, *_ in CORPUS:
            result = prog.test_run(frame)  # raises if the kernel refuses the run
            if result.verdict == "XDP_ABORTED":
                bad.append(name)
        assert not bad, f"{source}:{function} returned XDP_ABORTED for {bad}"
        for frame in FUZZ:
            result = prog.test_run(frame)
            assert result.verdict != "XDP_ABORTED", f"{source}:{function} aborted on {frame.hex()}"
    finally:
        done()


def test_the_sweep_covers_the_known_parsers():
    found = {(s, f) for s, f, _ in xdp_programs()}
    for must in [
        ("00-xdp-pass.c", "xdp_pass"),
        ("07-xdp-counter.c", "xdp_counter"),
        ("07-xdp-icmp-echo.c", "xdp_icmp_echo"),
        ("07-xdp-redirect.c", "xdp_redirect_wire"),
    ]:
        assert must in found
    assert not any("fail" in s for s, _ in found)


# ---- module 07's programs: exact verdicts -----------------------------------------------------------
@pytest.fixture(scope="module")
def counter():
    prog = acquire("bpf/07-xdp-counter.c")
    yield prog
    release(prog)


@pytest.fixture(scope="module")
def echo():
    prog = acquire("bpf/07-xdp-icmp-echo.c")
    yield prog
    release(prog)


@pytest.mark.parametrize("name,frame,category,_echo", CORPUS, ids=[c[0] for c in CORPUS])
def test_counter_category(counter, name, frame, category, _echo):
    before = protocol_counts(counter)
    bytes_before = protocol_counts(counter, "bytes")
    assert counter.test_run(frame).verdict == "XDP_PASS"
    after = protocol_counts(counter)
    moved = {k: after[k] - before[k] for k in after if after[k] != before[k]}
    assert moved == {category: 1}, f"{name}: counted as {moved}, expected {category}"
    assert protocol_counts(counter, "bytes")[category] - bytes_before[category] == len(frame)


@pytest.mark.parametrize("name,frame,_category,verdict", CORPUS, ids=[c[0] for c in CORPUS])
def test_echo_verdict(echo, name, frame, _category, verdict):
    result = echo.test_run(frame)
    assert result.verdict == verdict, name
    if verdict == "XDP_PASS":
        assert result.data == frame, f"{name}: a passed frame must be untouched"
    else:
        assert_is_reply(frame, result.data)


def assert_is_reply(request: bytes, reply: bytes) -> None:
    """The reply is the request with MACs and addresses swapped, TTL 64, type -> reply,
    and checksums that scapy, recomputing from scratch, agrees with."""
    req, rep = Ether(request), Ether(reply)
    assert len(reply) == len(request)
    assert (rep.src, rep.dst) == (req.dst, req.src)
    if IP in req:
        assert (rep[IP].src, rep[IP].dst, rep[IP].ttl) == (req[IP].dst, req[IP].src, 64)
        assert rep[ICMP].type == 0 and (rep[ICMP].id, rep[ICMP].seq) == (req[ICMP].id, req[ICMP].seq)
        fresh = rep.copy()
        del fresh[IP].chksum, fresh[ICMP].chksum
        fresh = Ether(bytes(fresh))
        assert (rep[IP].chksum, rep[ICMP].chksum) == (fresh[IP].chksum, fresh[ICMP].chksum)
    else:
        assert (rep[IPv6].src, rep[IPv6].dst, rep[IPv6].hlim) == (req[IPv6].dst, req[IPv6].src, 64)
        icmp = rep[IPv6].payload
        assert icmp.type == 129
        fresh = rep.copy()
        del fresh[IPv6].payload.cksum
        assert icmp.cksum == Ether(bytes(fresh))[IPv6].payload.cksum
    if Dot1Q in req:
        assert rep[Dot1Q].vlan == req[Dot1Q].vlan


def test_echo_counts_replies_per_family(echo):
    from packetlab.course.m07_xdp.counters import percpu_total

    before = percpu_total(echo, "replies", 0), percpu_total(echo, "replies", 1)
    for _name, frame, _c, _verdict in CORPUS:
        echo.test_run(frame)
    v4 = sum(1 for n, f, c, v in CORPUS if v == "XDP_TX" and c == "IPv4 ICMP")
    v6 = sum(1 for n, f, c, v in CORPUS if v == "XDP_TX" and c == "IPv6 ICMPv6")
    after = percpu_total(echo, "replies", 0), percpu_total(echo, "replies", 1)
    assert (after[0] - before[0], after[1] - before[1]) == (v4, v6)


def test_all_zero_reply_gets_0xffff(echo):
    """RFC 1624 eqn. 3 alone would write 0x0000 here, which a receiver summing the
    all-zero reply (0 + 0 = +0, not -0) rejects; 0xffff verifies."""
    req = bytes(ETH / IP(**V4) / ICMP(id=0, seq=0))
    out = echo.test_run(req)
    assert out.verdict == "XDP_TX"
    assert out.data[36:38] == b"\xff\xff"


@pytest.mark.parametrize(
    "source,verdict",
    [
        ("bpf/07-xdp-drop.c", "XDP_DROP"),
        ("bpf/07-xdp-tx.c", "XDP_TX"),
        ("bpf/07-xdp-actions.c", "XDP_PASS"),
        ("bpf/07-xdp-redirect.c", "XDP_PASS"),
        ("bpf/00-xdp-pass.c", "XDP_PASS"),
    ],
)
def test_simple_programs_give_one_verdict_to_everything(source, verdict):
    """The floor, the generator, the actions program with no action set and the wire with an
    empty devmap give every frame, however broken, the same verdict, untouched."""
    prog = acquire(source)
    try:
        for name, frame, *_ in CORPUS:
            result = prog.test_run(frame)
            assert result.verdict == verdict, f"{source} on {name}"
            assert result.data == frame
    finally:
        release(prog)


def test_counter_parser_limits_match_parse_h():
    """The corpus's 'beyond the limit' cases are built on parse.h's constants."""
    header = (Path(BPF_DIR) / "include" / "parse.h").read_text()
    assert re.search(r"#define PL_MAX_VLAN 2\b", header)
    assert re.search(r"#define PL_MAX_IPV6_EXT 4\b", header)
