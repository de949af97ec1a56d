"""Module 11c's C assignments: what the learner writes, and the hidden packets that grade it.

* 11c.A1 — the per-MAC token bucket: the `take-token` region of bpf/11c-dhcp-fastpath.c
  (take_token(): refill by elapsed time, cap at the burst, spend one). Bursts of requests
  are judged by the verdicts and by the program's drop counters.
* 11c.A2 — the reply's headers: the `reply-headers` region of bpf/11c-dhcp-fastpath.c
  (Ethernet, IPv4 and UDP rewritten from the request's, broadcast or unicast per RFC 2131
  4.1). Each reply is compared byte for byte with the one the slow path's codec builds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import scapy.layers.dhcp  # noqa: F401  (binds IP/UDP/BOOTP/DHCP: a failing case's frame is shown dissected)

from packetlab.course.assignments import Assignment, Case
from packetlab.ebpf.loader import LoadedProgram
from packetlab.ebpf.maps import BpfMap, percpu_sum
from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.layout import (
    MAPS,
    NS_PER_SEC,
    SOURCE,
    STATS,
    Bucket,
    Config,
    Lease,
    Pool,
    be32,
    mac_key,
)

SERVER, SERVER_MAC = "10.67.0.1", "02:67:00:00:00:01"
KNOWN, KNOWN_IP = "02:00:00:00:aa:01", "10.67.0.100"
OTHER = "02:00:00:00:aa:02"
PARAMS = wire.ReplyParams(SERVER, SERVER_MAC, "255.255.255.0", SERVER, ("10.67.0.53",), 600)


def _map(prog: LoadedProgram, name: str) -> BpfMap:
    return BpfMap(prog[name].map_fd, name, *MAPS[name])


def _stat(prog: LoadedProgram, name: str) -> int:
    return int(percpu_sum(_map(prog, "stats").lookup(STATS.index(name))))


def _discover(mac: str, xid: int = 1, **kw) -> bytes:
    return wire.request_frame(mac, wire.DISCOVER, xid=xid, **kw)


# ---- 11c.A1: the token bucket ---------------------------------------------------------------------
def _limits(mac_rate: int, mac_burst: int, slow_rate: int = 0, slow_burst: int = 0, *, sent: int = 0, mac: str = KNOWN):
    """prepare: set the rate limits, then send `sent` DISCOVERs from `mac` first (their verdicts are not graded)."""

    def prepare(prog: LoadedProgram) -> None:
        _map(prog, "config").update(0, Config(mac_rate, mac_burst, slow_rate, slow_burst, 0, 0))
        for i in range(sent):
            prog.test_run(_discover(mac, xid=100 + i))

    return prepare


def _with_bucket(mac_rate: int, mac_burst: int, *, age_s: float, tokens: float) -> Callable[[LoadedProgram], None]:
    """prepare: limits, and KNOWN's bucket last refilled `age_s` ago holding `tokens` frames."""

    def prepare(prog: LoadedProgram) -> None:
        _limits(mac_rate, mac_burst)(prog)
        last = time.monotonic_ns() - int(age_s * NS_PER_SEC)  # CLOCK_MONOTONIC: bpf_ktime_get_ns()'s clock
        _map(prog, "buckets").update(mac_key(KNOWN), Bucket(last, int(tokens * NS_PER_SEC)))

    return prepare


def _strangers(n: int) -> Callable[[LoadedProgram], None]:
    """prepare: only the slow path limited (1/s, burst 2), then one DISCOVER from each of `n` unknown MACs."""

    def prepare(prog: LoadedProgram) -> None:
        _limits(0, 0, 1, 2)(prog)
        for i in range(1, n + 1):
            prog.test_run(_discover(f"02:00:00:00:bb:{i:02x}"))

    return prepare


def _counted(**want: int) -> Callable[[LoadedProgram], tuple[str, str] | None]:
    """after: the program's counters (stats) hold these values."""

    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        got = {name: _stat(prog, name) for name in want}
        return None if got == want else (f"counters {want}", f"counters {got}")

    return after


def _kept(at_least: float) -> Callable[[LoadedProgram], tuple[str, str] | None]:
    """after: KNOWN's bucket holds between `at_least` and 1 frame (what was refilled is stored, nothing spent)."""

    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        b = _map(prog, "buckets").lookup(mac_key(KNOWN))
        got = b.tokens / NS_PER_SEC if b is not None else None
        if got is not None and at_least <= got < 1:
            return None
        held = "no bucket" if got is None else f"{got:.3f} frames"
        return (f"buckets[{KNOWN}] holding {at_least:g} to 1 frame (tokens x 1e9)", f"buckets[{KNOWN}] holding {held}")

    return after


def _then(verdicts: list[str], mac: str = KNOWN) -> Callable[[LoadedProgram], tuple[str, str] | None]:
    """after: the next DISCOVERs from `mac`, sent at once, get these verdicts."""

    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        got = [prog.test_run(_discover(mac, xid=200 + i)).verdict for i in range(len(verdicts))]
        return None if got == verdicts else (f"the next frames: {verdicts}", f"the next frames: {got}")

    return after


def _bucket_cases() -> list[Case]:
    """Rates of 1 frame/s: a burst sent at once never earns a token back while it is being graded."""
    frame = _discover(KNOWN)
    return [
        Case(
            "rate 0: no limit (10 frames before this one)",
            frame,
            verdict="XDP_PASS",
            prepare=_limits(0, 0, sent=10),
            after=_counted(dhcp=11, drop_mac_rate=0),
        ),
        Case(
            "first frame from a MAC (1/s, burst 3)",
            frame,
            verdict="XDP_PASS",
            prepare=_limits(1, 3),
            after=_then(["XDP_PASS", "XDP_PASS", "XDP_DROP"]),
        ),
        Case(
            "5th frame of a burst of 5 at once (1/s, burst 3)",
            frame,
            verdict="XDP_DROP",
            prepare=_limits(1, 3, sent=4),
            after=_counted(dhcp=5, drop_mac_rate=2),
        ),
        Case(
            "burst 0 counts as 1: the 2nd frame at once (1/s)",
            frame,
            verdict="XDP_DROP",
            prepare=_limits(1, 0, sent=1),
            after=_counted(dhcp=2, drop_mac_rate=1),
        ),
        Case(
            "another MAC, after KNOWN emptied its bucket (1/s, burst 2)",
            _discover(OTHER),
            verdict="XDP_PASS",
            prepare=_limits(1, 2, sent=3),
            after=_counted(dhcp=4, drop_mac_rate=1),
        ),
        Case(
            "half a token, refilled 0.3 s ago (1/s, burst 3): not enough yet, and the 0.8 are kept",
            frame,
            verdict="XDP_DROP",
            prepare=_with_bucket(1, 3, age_s=0.3, tokens=0.5),
            after=_kept(0.8),
        ),
        Case(
            "empty bucket, last refilled 2.5 s ago (1/s, burst 3): 2 tokens earned",
            frame,
            verdict="XDP_PASS",
            prepare=_with_bucket(1, 3, age_s=2.5, tokens=0),
            after=_then(["XDP_PASS", "XDP_DROP"]),
        ),
        Case(
            "idle for an hour (1/s, burst 2): the refill stops at the burst",
            frame,
            verdict="XDP_PASS",
            prepare=_with_bucket(1, 2, age_s=3600, tokens=0),
            after=_then(["XDP_PASS", "XDP_DROP"]),
        ),
        Case(
            "burst 0 counts as 1, idle for a minute (1/s): one frame, not zero",
            frame,
            verdict="XDP_PASS",
            prepare=_with_bucket(1, 0, age_s=60, tokens=0),
            after=_then(["XDP_DROP"]),
        ),
        Case(
            "3rd unknown MAC at once: the shared slow-path bucket (1/s, burst 2)",
            _discover("02:00:00:00:bb:03"),
            verdict="XDP_DROP",
            prepare=_strangers(2),
            after=_counted(dhcp=3, pass_unknown_mac=3, drop_mac_rate=0, drop_slow_rate=1),
        ),
    ]


TOKEN_BUCKET = Assignment(
    key="11c.A1",
    title="per-MAC token bucket",
    starter="bpf/11c-assign-token-bucket.c",
    solution="bpf/solutions/11c-assign-token-bucket.c",
    skeleton=SOURCE,
    region="take-token",
    function="xdp_dhcp_fastpath",
    cases=_bucket_cases,
    reset=("config", "buckets", "stats"),
    try_it="write take_token() in bpf/11c-assign-token-bucket.c, delete its TODO markers, then run the check again",
    hint="rate 0 -> 1; cap = (burst ? burst : 1) * NS_PER_SEC; no bucket -> store {now, cap - NS_PER_SEC}, 1; "
    "tokens = min(b->tokens + elapsed * rate, cap); last_ns = now; below NS_PER_SEC -> keep them, 0; "
    "else take NS_PER_SEC, 1",
)


# ---- 11c.A2: the reply's headers ------------------------------------------------------------------
def _cache_lease(prog: LoadedProgram) -> None:
    """prepare: KNOWN holds KNOWN_IP (untagged and on VLAN 7) from pool 0, no rate limits."""
    pool = Pool(be32(PARAMS.server_id), be32(PARAMS.mask), be32(PARAMS.router))
    for i, d in enumerate(PARAMS.dns):
        pool.dns[i] = be32(d)
    pool.lease_time = PARAMS.lease_time
    pool.server_mac[:] = list(wire.mac_raw(PARAMS.server_mac))
    _map(prog, "pools").update(0, pool)
    _map(prog, "config").update(0, Config(0, 0, 0, 0, 0, 0))
    expires = time.clock_gettime_ns(time.CLOCK_BOOTTIME) + 3600 * NS_PER_SEC
    for vlan in (0, 7):
        _map(prog, "leases").update(mac_key(KNOWN, vlan), Lease(be32(KNOWN_IP), 0, expires))


def _reply_case(name: str, request: bytes, mtype: int) -> Case:
    expected = wire.reply_frame(wire.parse_frame(request), mtype, KNOWN_IP, PARAMS)
    return Case(name, request, verdict="XDP_TX", output=expected, prepare=_cache_lease)


def _reply_cases() -> list[Case]:
    return [
        _reply_case("DISCOVER: OFFER unicast to yiaddr at chaddr", _discover(KNOWN, xid=0x11C1), wire.OFFER),
        _reply_case(
            "DISCOVER with the BROADCAST bit: OFFER to 255.255.255.255",
            _discover(KNOWN, xid=0x11C2, broadcast=True),
            wire.OFFER,
        ),
        _reply_case(
            "REQUEST (SELECTING): ACK unicast to yiaddr",
            wire.request_frame(KNOWN, wire.REQUEST, xid=0x11C3, requested=KNOWN_IP, server_id=SERVER),
            wire.ACK,
        ),
        _reply_case(
            "renewal (ciaddr set, BROADCAST bit too): ACK unicast to ciaddr",
            wire.request_frame(
                KNOWN,
                wire.REQUEST,
                xid=0x11C4,
                ciaddr=KNOWN_IP,
                broadcast=True,
                dst_ip=SERVER,
                dst_mac=SERVER_MAC,
            ),
            wire.ACK,
        ),
        _reply_case(
            "DISCOVER tagged VLAN 7: the reply keeps the tag", _discover(KNOWN, xid=0x11C5, vlan=7), wire.OFFER
        ),
    ]


REPLY_HEADERS = Assignment(
    key="11c.A2",
    title="the reply's Ethernet/IPv4/UDP headers",
    starter="bpf/11c-assign-reply-headers.c",
    solution="bpf/solutions/11c-assign-reply-headers.c",
    skeleton=SOURCE,
    region="reply-headers",
    function="xdp_dhcp_fastpath",
    cases=_reply_cases,
    reset=("config", "leases", "buckets", "stats"),
    try_it="write reply_headers() in bpf/11c-assign-reply-headers.c, delete its TODO markers, then run the check again",
    hint="daddr/h_dest: ciaddr at chaddr, else broadcast if flags & bpf_htons(0x8000), else yiaddr at chaddr; "
    "h_source = pool->server_mac; saddr = pool->server_id; tot_len = bpf_htons(20 + 8 + DH_BOOTP_LEN), set "
    "every field before ip->check = pl_ipv4_csum(ip); UDP 67 -> 68, len = bpf_htons(8 + DH_BOOTP_LEN)",
)

ASSIGNMENTS = (TOKEN_BUCKET, REPLY_HEADERS)
