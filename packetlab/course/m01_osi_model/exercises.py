"""Checks for module 01 · the OSI model, byte by byte.

The reference values come from the real frames the lab captured (decoded by
`packetlab.proto.dissect` and confirmed with scapy) and, for fragmentation, from a
ping sent on the spot — never from a formula alone. A wrong answer is matched
against the usual mistakes (byte order, a forgotten header, a missing
inversion) so the hint can name the one that was made.
"""

from __future__ import annotations

import json
import math
import random
import struct
from collections.abc import Callable, Sequence
from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, pair_answer, passed, require, unanswered
from packetlab.course.m01_osi_model.assignments import COUNT, IPV6
from packetlab.course.m01_osi_model.helpers import observed_fragments
from packetlab.proto.dissect import dissect, fragment_plan, ipv4_header_checksum, ones_sum
from packetlab.topo.host import Host


def _int_answer(answer: Any, ex: str, hint: str) -> int:
    if isinstance(answer, bool):
        raise CheckFailed(ex, f"expected a number, got {answer!r}", hint)
    if isinstance(answer, int):
        return answer
    if isinstance(answer, str):
        text = answer.strip().lower().replace(" ", "")
        try:
            return int(text, 16) if text.startswith("0x") else int(text)
        except ValueError:
            pass
    raise CheckFailed(ex, f"expected a number (like 4660 or 0x1234), got {answer!r}", hint)


def _swap16(v: int) -> int:
    return ((v & 0xFF) << 8) | (v >> 8)


# ---- exercise 2: a field from a hex dump ---------------------------------------------------
@graded(
    "count the header bytes to the ICMP identifier in bytes(request), set answer to the number there "
    "and run this check again"
)
def check_icmp_identifier(answer: Any, frame: Any) -> bool:
    """Exercise: read the ICMP echo identifier out of the hex dump of `frame`."""
    ex = "Exercise 2 (read a field from the hex dump)"
    d = dissect(frame)
    require(
        "ICMP.id" in d,
        ex,
        "the frame given to the check is not an ICMP echo message",
        "pass the echo request captured in Part 2 (request = icmp_frames[0])",
    )
    field = d.field("ICMP.id")
    from scapy.layers.inet import ICMP
    from scapy.layers.l2 import Ether

    real = Ether(bytes(frame))[ICMP].id
    assert real == field.value, "dissect and scapy disagree — please report this"
    hint = (
        f"Ethernet is 14 bytes, IPv4 {d['IPv4.ihl'] * 4}, and the identifier follows ICMP's type, code and "
        f"checksum (4 bytes): it is the 2 bytes at offset {field.offset} (0x{field.offset:04x}), big-endian"
    )
    if unanswered(answer):
        raise CheckFailed(ex, "no answer yet: set answer to the identifier (a number, e.g. 0x1a2b)", hint)
    value = _int_answer(answer, ex, hint)
    if value == real:
        return passed(
            ex,
            f"bytes {field.offset}–{field.offset + 1} are {field.raw[:2]} {field.raw[2:]} = "
            f"0x{real:04x} = {real}; scapy agrees",
        )
    if value == _swap16(real) and real != _swap16(real):
        raise CheckFailed(
            ex,
            f"0x{value:04x} is the right two bytes in the wrong order",
            "network byte order is big-endian: the first byte is the high byte (value = b0 x 256 + b1)",
        )
    others = [f for f in d if f is not field and f.bits is None and f.value == value and isinstance(f.value, int)]
    if others:
        o = others[0]
        raise CheckFailed(ex, f"{value} is {o.name}, at offset {o.offset}", hint)
    raise CheckFailed(ex, f"{answer!r} is not the identifier in this frame", hint)


# ---- exercise 1: the MACs of an ARP reply -----------------------------------------------------
def _mac(text: Any) -> str:
    return str(text).strip().lower().replace("-", ":")


@graded(
    "read the reply's source and destination MAC in the ARP capture above, set answer = (src_mac, "
    "dst_mac) and run this check again"
)
def check_arp_reply_macs(answer: Any, arp_frames: Sequence[Any], asker: Host, responder: Host) -> bool:
    """Exercise: predict the Ethernet (source, destination) of the ARP reply."""
    ex = "Exercise 1 (who sends the ARP reply, to whom?)"
    replies = [dissect(f) for f in arp_frames]
    replies = [d for d in replies if d.get("ARP.op") == 2]
    require(
        bool(replies),
        ex,
        "no ARP reply was captured to compare with",
        "re-run the ARP capture cell of Part 1 (it flushes the neighbour table first)",
    )
    d = replies[0]
    real = (d["Ethernet.src"], d["Ethernet.dst"])
    names = {asker.mac(): asker.name, responder.mac(): responder.name, "ff:ff:ff:ff:ff:ff": "broadcast"}
    hint = (
        f"{asker.name} asked 'who has {d['ARP.psrc']}?'; think about who answers and whether it still "
        f"needs to broadcast. The hosts' MACs: {asker.name} {asker.mac()}, {responder.name} {responder.mac()}"
    )
    answer = pair_answer(
        answer,
        ex,
        placeholder="('<source MAC>', '<destination MAC>')",
        shape="a pair of MAC addresses (source, destination)",
        hint=hint,
    )
    src, dst = (_mac(a) for a in answer)
    if (src, dst) == real:
        return passed(
            ex,
            f"{names.get(src, src)} answers {names.get(dst, dst)} directly: {src} -> {dst} "
            "(it learned the asker's MAC from the request's sender field)",
        )
    if dst == "ff:ff:ff:ff:ff:ff":
        raise CheckFailed(
            ex,
            "the reply is not broadcast",
            "only the request is broadcast (the asker does not know the MAC yet); the request carries "
            "the asker's MAC in its sender field, so the reply goes straight back to it",
        )
    if (dst, src) == real:
        raise CheckFailed(
            ex,
            "source and destination are swapped",
            "the reply travels from the host that owns the address back to the one that asked",
        )
    wrong = [
        f"{label} {value} ({names.get(value, 'not a lab host')})"
        for label, value, want in (("source", src, real[0]), ("destination", dst, real[1]))
        if value != want
    ]
    raise CheckFailed(ex, "wrong " + " and ".join(wrong), hint)


# ---- exercise 4: how many fragments? ---------------------------------------------------------
def _mtu(host: Host, destination: str) -> tuple[str, int]:
    route = json.loads(host.run(["ip", "-j", "route", "get", destination], check=True).stdout)[0]
    link = json.loads(host.run(["ip", "-j", "link", "show", "dev", route["dev"]], check=True).stdout)[0]
    return route["dev"], int(link["mtu"])


@graded(
    "work out the fragments from the MTU, the 20-byte header and the 8-byte rule, set answer to the "
    "count and run this check again"
)
def check_fragment_count(
    answer: Any, sender: Host, receiver: Host, destination: str, size: int, receiver_dev: str = "eth0"
) -> bool:
    """Exercise: predict how many IPv4 fragments `ping -s size` becomes; checked by a real ping."""
    ex = "Exercise 4 (how many fragments?)"
    dev, mtu = _mtu(sender, destination)
    per = (mtu - 20) // 8 * 8
    hint = (
        f"the IP payload is the ICMP header (8 bytes) + {size} data bytes; over an MTU of {mtu}, each fragment "
        f"has a 20-byte IP header, and all but the last carry (MTU - 20) rounded down to a multiple of 8 "
        f"data bytes; the last carries what is left"
    )
    if unanswered(answer):
        raise CheckFailed(ex, "no answer yet: set answer to a number of fragments", hint)
    value = _int_answer(answer, ex, hint)
    frags = observed_fragments(sender, receiver, destination, size, receiver_dev)
    real = len(frags)
    plan = fragment_plan(size + 8, mtu)
    shown = ", ".join(f"{off}+{ln}{' MF' if mf else ''}" for off, ln, mf in frags)
    if value == real:
        return passed(
            ex,
            f"the kernel sent {real} fragments (offset+length: {shown})"
            + ("" if len(plan) == real else f"; fragment_plan() predicted {len(plan)}"),
        )
    mistakes = [
        (
            len(fragment_plan(size, mtu)),
            "did you leave out the 8-byte ICMP header? It is part of the IP payload that gets split",
        ),
        (
            math.ceil((size + 8) / (mtu - 20)),
            f"every fragment but the last carries a multiple of 8 bytes: {per}, not {mtu - 20} "
            f"(the offset field counts 8-byte units)",
        ),
        (len(fragment_plan(size + 28, mtu)), "the 20-byte IP header is repeated in every fragment, not split"),
        (
            len(fragment_plan(size + 8, mtu - 14)),
            "the MTU counts the IP packet only; the 14-byte Ethernet header is not part of it",
        ),
    ]
    reasons = [reason for guess, reason in mistakes if guess == value and guess != real]
    raise CheckFailed(
        ex,
        f"{size} bytes over {dev} (MTU {mtu}) did not become {value} fragments",
        " — or: ".join(reasons) if reasons else hint,
    )


# ---- exercise 3: the IPv4 header checksum ------------------------------------------------------
def _sample_headers(frames: Sequence[Any] = (), seed: int = 1) -> list[tuple[str, bytes, int]]:
    """(description, header with the checksum zeroed, correct checksum) to test a function on."""
    from scapy.layers.inet import IP, IPOption_Router_Alert, IPOption_RR

    out = []
    for f in frames:
        d = dissect(f)
        if "IPv4.chksum" not in d:
            continue
        start = d.field("IPv4.version").offset
        header = bytes(d.frame[start : start + d["IPv4.ihl"] * 4])
        out.append(
            (
                f"the captured packet {d['IPv4.src']} -> {d['IPv4.dst']}",
                header[:10] + b"\0\0" + header[12:],
                d["IPv4.chksum"],
            )
        )
    rng = random.Random(seed)
    for n in range(6):
        pkt = IP(
            src=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
            dst=f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}",
            id=rng.randrange(65536),
            ttl=rng.randrange(1, 256),
            tos=rng.randrange(256),
            options=[IPOption_RR(routers=["192.0.2.1", "192.0.2.2"]), IPOption_Router_Alert()] if n % 2 else [],
        )
        raw = bytes(pkt)
        header = raw[: (raw[0] & 0xF) * 4]
        out.append(
            (
                ("a header with options" if n % 2 else "a 20-byte header") + f" (scapy, {pkt.src} -> {pkt.dst})",
                header[:10] + b"\0\0" + header[12:],
                IP(raw).chksum,
            )
        )
    big = bytes.fromhex("4500ffff ffff 0000 ff11 0000 ffffffff ffffffff".replace(" ", ""))
    out.append(("a header full of 0xff bytes (many carries)", big, ipv4_header_checksum(big)))
    return out


def _diagnose_checksum(got: Any, header: bytes, want: int) -> str:
    if not isinstance(got, int) or isinstance(got, bool):
        return f"the function returned {got!r}; it should return an int between 0 and 0xffff"
    words = struct.unpack(f"!{len(header) // 2}H", header)
    total = sum(words)
    if got == ones_sum(header):
        return "that is the sum itself: the checksum is its ones'-complement (invert it: ~total & 0xffff)"
    if got > 0xFFFF:
        return "the result is wider than 16 bits: fold the carries back in (total = (total & 0xffff) + (total >> 16))"
    if got == ~total & 0xFFFF and total > 0xFFFF:
        return "the carries were dropped, not added back: ones'-complement addition wraps them around"
    little = sum(struct.unpack(f"<{len(header) // 2}H", header))
    while little >> 16:
        little = (little & 0xFFFF) + (little >> 16)
    if got == ~little & 0xFFFF or got == _swap16(want):
        return "the 16-bit words were read little-endian: in network order the first byte is the high byte"
    short = header[:20]
    s = ones_sum(short)
    if len(header) > 20 and got == ~s & 0xFFFF:
        return "only the first 20 bytes were summed: the header is IHL x 4 bytes long, options included"
    return f"expected 0x{want:04x}, got 0x{got:04x}"


@graded("write the body of my_checksum (sum 16-bit words, fold the carries, invert), run its cell and this check again")
def check_ipv4_checksum(func: Callable[[bytes], int], frames: Sequence[Any] = ()) -> bool:
    """Exercise: `func(header)` returns the IPv4 header checksum (its checksum field is zero).

    Tested on the captured frames' headers (checksums written by the kernel) and
    on headers built by scapy, with and without options.
    """
    ex = "Exercise 3 (the IPv4 header checksum by hand)"
    hint = (
        "add the header as 16-bit big-endian words, fold every carry above 16 bits back into the low "
        "16 bits, and return the ones'-complement (~sum & 0xffff)"
    )
    require(callable(func), ex, f"expected a function header -> int, got {func!r}", hint)
    samples = _sample_headers(frames)
    for description, header, want in samples:
        try:
            got = func(header)
        except Exception as exc:  # the learner's code: report, don't crash
            raise CheckFailed(
                ex, f"the function raised {type(exc).__name__}: {exc} on {description} ({len(header)} bytes)", hint
            ) from None
        if got is None:
            raise CheckFailed(ex, "the function returns None: it is not written yet", hint)
        if got != want:
            raise CheckFailed(ex, f"wrong on {description}: {_diagnose_checksum(got, header, want)}", hint)
    kernel = sum(1 for d, _, _ in samples if d.startswith("the captured"))
    return passed(
        ex,
        f"right on {len(samples)} headers ({kernel} written by the kernel, "
        f"{len(samples) - kernel} by scapy, with and without options)",
    )


# ---- C assignments: the learner writes the eBPF (graded by packetlab.course.assignments) --------------
@graded(IPV6.try_it)
def check_counter_ipv6(source: str | None) -> bool:
    """Assignment 01.A1: the IPv6 branch of classify() in bpf/01-xdp-proto-counter.c."""
    return check(IPV6, source)


@graded(COUNT.try_it)
def check_counter_count(source: str | None) -> bool:
    """Assignment 01.A2: the per-CPU counter update of bpf/01-xdp-proto-counter.c."""
    return check(COUNT, source)
