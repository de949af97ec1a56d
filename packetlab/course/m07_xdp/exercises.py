"""Graded exercises of module 07 (XDP).

Each check verifies against the real kernel where that makes sense: the frame
exercise runs your frame through bpf/07-xdp-counter.c with BPF_PROG_TEST_RUN,
the checksum exercise compares your function with the bytes the XDP echo
responder produced, and the devmap exercise reads the live devmap and watches
its redirect counter move under real traffic.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m07_xdp.assignments import ARP_REPLY, PROTO_PERCPU
from packetlab.course.m07_xdp.helpers import ACTION_SCENARIOS, classify, echo_requests, normalise_action, ones_sum
from packetlab.errors import PacketlabError

_ACTION_REFERENCE = {
    "not_mine": "XDP_PASS",
    "blocked": "XDP_DROP",
    "bug": "XDP_ABORTED",
    "pong": "XDP_TX",
    "elsewhere": "XDP_REDIRECT",
}
_ACTION_HINTS = {
    "not_mine": "a program that does not understand a frame hands it on unchanged: which action continues into the stack?",
    "blocked": "XDP_ABORTED also frees the frame, but it means 'my program failed' and fires a tracepoint; "
    "a policy decision is not a failure",
    "bug": "XDP_DROP is silent by design; of the actions a program returns on purpose, only one is always "
    "reported by the xdp:xdp_exception tracepoint",
    "pong": "XDP_REDIRECT needs a target (a devmap entry, an ifindex); the action that bounces a frame out of "
    "its own ingress interface needs none",
    "elsewhere": "XDP_TX can only send back out of the interface the frame arrived on",
}


@graded("match each scenario to its XDP action yourself, set answer and run this check again")
def check_actions(answer: Any) -> bool:
    """Exercise 1: map each scenario in ACTION_SCENARIOS to the XDP action it needs."""
    ex = "07.1 XDP actions"
    require(
        not unanswered(answer),
        ex,
        "no answer yet",
        "set answer = {'not_mine': 'XDP_...', 'blocked': ..., 'bug': ..., 'pong': ..., 'elsewhere': ...}",
    )
    require(
        isinstance(answer, dict),
        ex,
        f"the answer is a {type(answer).__name__}, not a dict",
        "map each scenario name to an action, e.g. {'not_mine': 'XDP_PASS', ...}",
    )
    missing = [k for k in ACTION_SCENARIOS if k not in answer]
    require(not missing, ex, f"no action for: {', '.join(missing)}", "answer every scenario (show_action_scenarios())")
    for key, want in _ACTION_REFERENCE.items():
        got = normalise_action(answer[key])
        require(
            got is not None,
            ex,
            f"{key}: {answer[key]!r} is not an XDP action",
            "use XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX or XDP_REDIRECT",
        )
        require(got == want, ex, f"{key}: {got} is not the right action for this scenario", _ACTION_HINTS[key])
    return passed(ex, "five actions, five jobs")


# ---- exercise 2: a frame for the parser ---------------------------------------------------------
_EXT_HEADERS = (
    "IPv6ExtHdrHopByHop",
    "IPv6ExtHdrDestOpt",
    "IPv6ExtHdrRouting",
    "IPv6ExtHdrFragment",
    "IPv6ExtHdrSegmentRouting",
)


def _layer_names(pkt: Any) -> list[str]:
    names = []
    layer = pkt
    while layer is not None and layer.__class__.__name__ not in ("NoPayload",):
        names.append(layer.__class__.__name__)
        layer = layer.payload if hasattr(layer, "payload") else None
    return names


@graded("build the tagged IPv6 frame with extension headers yourself with scapy, set answer and run this check again")
def check_parser_frame(frame: Any) -> bool:
    """Exercise 2: a frame that 07-xdp-counter counts as 'IPv6 UDP' although its UDP header
    sits behind an 802.1Q tag and at least two IPv6 extension headers."""
    ex = "07.2 a frame for the parser"
    require(
        not unanswered(frame),
        ex,
        "no frame yet",
        "build one with scapy: Ether()/Dot1Q(vlan=..)/IPv6(...)/IPv6ExtHdrHopByHop()/.../UDP(...)",
    )
    from scapy.layers.l2 import Ether

    try:
        raw = bytes(frame)
    except Exception as exc:
        raise CheckFailed(ex, f"the frame cannot be turned into bytes: {exc}", "build it from scapy layers") from None
    require(len(raw) >= 14, ex, f"the frame has {len(raw)} bytes", "start with an Ether() layer")
    names = _layer_names(Ether(raw))
    require(
        "Dot1Q" in names,
        ex,
        f"no 802.1Q tag in the frame (layers: {' / '.join(names)})",
        "put Dot1Q(vlan=7) between Ether() and IPv6()",
    )
    require("IPv6" in names, ex, f"no IPv6 header (layers: {' / '.join(names)})", "the tag must carry IPv6()")
    ext = [n for n in names if n in _EXT_HEADERS]
    require(
        len(ext) >= 2,
        ex,
        f"{len(ext)} IPv6 extension header(s) — the task asks for at least two",
        "chain e.g. IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt() between IPv6() and UDP()",
    )
    require("UDP" in names, ex, f"no UDP header at the end (layers: {' / '.join(names)})", "end with UDP(dport=...)")
    category = classify(raw)
    hints = {
        "malformed": "the program found a header cut short: did you slice the bytes, or set a length field "
        "(plen, hdr ext len) by hand? Let scapy compute lengths.",
        "IPv6 other": "the parser gave up before reaching UDP: it follows at most 4 extension headers "
        "(PL_MAX_IPV6_EXT in bpf/include/parse.h) — use 2 to 4",
        "fragment": "a Fragment header with a non-zero offset means 'no UDP header in here'; use offset 0",
        "non-IP": "the EtherType chain is wrong: Ether -> 0x8100 (Dot1Q) -> 0x86dd (IPv6)",
    }
    require(
        category == "IPv6 UDP",
        ex,
        f"07-xdp-counter counted your frame as {category!r}",
        hints.get(category, "check the layer order: Ether / Dot1Q / IPv6 / ext headers / UDP"),
    )
    return passed(ex, f"tag + {len(ext)} extension headers ({', '.join(ext)}) and the counter still found UDP")


@graded(
    "write reply_checksum with the incremental update (RFC 1624), set answer = reply_checksum and run this check again"
)
def check_reply_checksum(fn: Callable[[int], int] | None) -> bool:
    """Exercise 3: `fn(request_checksum) -> reply_checksum` for ICMPv4 echo (type 8 -> 0),
    updated incrementally (RFC 1624) — checked on 200 requests and against the XDP responder."""
    ex = "07.3 incremental checksum"
    require(
        not unanswered(fn), ex, "no function yet", "define def reply_checksum(old): ... and set answer = reply_checksum"
    )
    if not callable(fn):
        raise CheckFailed(
            ex,
            f"the answer is a {type(fn).__name__}, not a function",
            "set answer = reply_checksum (the function itself, not a call)",
        )
    from packetlab.ebpf.loader import acquire, release

    prog = acquire("bpf/07-xdp-icmp-echo.c")
    try:
        for raw in echo_requests():
            old = int.from_bytes(raw[36:38], "big")
            try:
                new = fn(old)
            except Exception as exc:
                raise CheckFailed(
                    ex,
                    f"your function raised {type(exc).__name__}: {exc} for 0x{old:04x}",
                    "it receives an int (0..0xffff) and returns an int",
                ) from None
            require(
                isinstance(new, int) and 0 <= new <= 0xFFFF,
                ex,
                f"for 0x{old:04x} it returned {new!r}, not a 16-bit int",
                "mask with & 0xffff",
            )
            reply_icmp = bytearray(raw[34:])
            reply_icmp[0] = 0
            reply_icmp[2:4] = new.to_bytes(2, "big")
            verifies = ones_sum(bytes(reply_icmp)) == 0xFFFF
            xdp = prog.test_run(raw)
            xdp_csum = int.from_bytes(xdp.data[36:38], "big")
            if not verifies:
                naive = (old + 0x0800) & 0xFFFF
                hint = (
                    "the type byte is the high byte of the first 16-bit word: m = 0x0800 -> m' = 0x0000, "
                    "so HC' = ~(~HC + ~m + m') in ones'-complement arithmetic"
                )
                if new == naive:
                    hint = (
                        "adding 0x0800 and masking loses the carry out of bit 15: in ones'-complement "
                        "arithmetic the carry is added back in (end-around carry)"
                    )
                raise CheckFailed(
                    ex,
                    f"request checksum 0x{old:04x}: your reply checksum 0x{new:04x} does not "
                    f"verify (the XDP responder wrote 0x{xdp_csum:04x})",
                    hint,
                )
            require(
                xdp.verdict == "XDP_TX",
                ex,
                f"the XDP responder returned {xdp.verdict}",
                "was bpf/07-xdp-icmp-echo.c edited?",
            )
    finally:
        from packetlab.course.m07_xdp.counters import clear_maps

        clear_maps(prog)
        release(prog)
    return passed(ex, "200 replies verify, carries included, and match what the XDP program writes")


# ---- exercise 4: fill the devmap --------------------------------------------------------------------
def _devmap_entry(attachment: Any, key: int) -> int | None:
    try:
        value = attachment["tx_port"][ctypes.c_int(key)]
    except KeyError:
        return None
    v = int(getattr(value, "value", value))
    return v or None


@graded(
    "restart the kernel, run up to this exercise and fill w0's and w1's devmaps yourself "
    "(xl.devmap_set) in the answer cell before this check"
)
def check_devmap(w0: Any, w1: Any, *, a: Any, b: Any, a_ip: str, b_ip: str) -> bool:
    """Exercise 4: the wire's devmaps send eth0 -> eth1 (w0) and eth1 -> eth0 (w1), and
    real traffic from a and from b takes the redirect in both directions."""
    ex = "07.4 fill the devmap"
    from packetlab.course.m07_xdp.counters import percpu_total

    host = w0.namespace
    require(
        w1.namespace == host,
        ex,
        "w0 and w1 are attached in different namespaces",
        "both belong to the wire host's eth0 and eth1",
    )
    idx0, idx1 = _ifindex_in(host, w0.dev), _ifindex_in(host, w1.dev)
    got0, got1 = _devmap_entry(w0, idx0), _devmap_entry(w1, idx1)
    require(
        got0 is not None,
        ex,
        f"w0's tx_port has no entry for {w0.dev} (ifindex {idx0})",
        f"frames arriving on {w0.dev} look up their own ingress ifindex: devmap_set(w0, '{w0.dev}', '{w1.dev}')",
    )
    require(
        got0 == idx1,
        ex,
        f"w0's tx_port[{idx0}] = {got0}, but {w1.dev} is ifindex {idx1}",
        "the value is the *egress* interface index, resolved inside the wire's namespace",
    )
    require(
        got1 is not None,
        ex,
        f"w1's tx_port has no entry for {w1.dev} (ifindex {idx1})",
        f"the way back needs its own entry: devmap_set(w1, '{w1.dev}', '{w0.dev}')",
    )
    require(
        got1 == idx0,
        ex,
        f"w1's tx_port[{idx1}] = {got1}, but {w0.dev} is ifindex {idx0}",
        "the value is the *egress* interface index",
    )
    before = percpu_total(w0, "redirected", idx0), percpu_total(w1, "redirected", idx1)
    after = before
    for _ in range(3):  # each round: fresh ARP, so the first frame goes out at once (not on a retry timer)
        for src, dst_ip in ((a, b_ip), (b, a_ip)):
            src.run(["ip", "neigh", "flush", "all"])
            src.ping(dst_ip, count=2, timeout=1, interval=0.1)
        after = percpu_total(w0, "redirected", idx0), percpu_total(w1, "redirected", idx1)
        if after[0] > before[0] and after[1] > before[1]:
            break
    require(
        after[0] > before[0],
        ex,
        "traffic from a arrived but w0 did not redirect it",
        "is w0 attached to the interface facing a? (w0.dev)",
    )
    require(
        after[1] > before[1],
        ex,
        "traffic from b arrived but w1 did not redirect it",
        "is w1 attached to the interface facing b? (w1.dev)",
    )
    return passed(ex, f"{after[0] - before[0]} + {after[1] - before[1]} frames redirected through the devmap")


def _ifindex_in(namespace: str, dev: str) -> int:
    from packetlab.topo.rtnl import iproute

    with iproute(netns=namespace) as ipr:
        found = ipr.link_lookup(ifname=dev)
    if not found:
        raise PacketlabError(f"no interface {dev!r} in {namespace}")
    return found[0]


# ---- C assignments: the learner writes the eBPF (graded by packetlab.course.assignments) --------------
@graded(PROTO_PERCPU.try_it)
def check_proto_percpu(source: str | None) -> bool:
    """Assignment 07.A1: proto_stats as a per-CPU array and count_proto(), spliced into 07-xdp-counter."""
    return check(PROTO_PERCPU, source)


@graded(ARP_REPLY.try_it)
def check_arp_reply(source: str | None) -> bool:
    """Assignment 07.A2: the in-place ARP reply and XDP_TX, spliced into 07-xdp-arp-reply."""
    return check(ARP_REPLY, source)
