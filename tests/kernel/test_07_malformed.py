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

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.inet6 import (
    IPv6,
)
from scapy.layers.l2 import Dot1Q, Ether

from packetlab.course.m07_xdp.counters import protocol_counts
from packetlab.ebpf.loader import BPF_DIR, acquire, release
from tests.unit.test_07_malformed import (  # shared with its unit twin
    CORPUS,
    ETH,
    V4,
    xdp_programs,
)

# ---- every XDP program in bpf/ -----------------------------------------------------------------


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


@pytest.mark.parametrize("source,function,kind", xdp_programs(), ids=lambda v: str(v))
def test_no_parser_aborts_or_fails_on_malformed_input(source, function, kind, request):
    if kind == "core":
        from packetlab.ebpf import co_re as core

        lab = request.getfixturevalue("module_lab")  # CO-RE programs pin per lab
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
