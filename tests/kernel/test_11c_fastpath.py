"""bpf/11c-dhcp-fastpath.c under BPF_PROG_TEST_RUN: replies field by field, and what must stay slow.

Requests are crafted with scapy and with the tool's own codec; every reply is
parsed back with scapy and checked against RFC 2131 (table 3, section 4.1) and
RFC 2132 (the options), and compared byte for byte with the reply the slow
path's codec builds for the same request. Hostile frames (truncated, overflowing
or missing options, huge lengths, a wrong cookie, fragments, relays) must never
be answered: XDP_PASS, untouched.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1Q, Ether

from packetlab.ebpf.loader import acquire, release
from packetlab.ebpf.maps import BpfMap, percpu_sum
from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.layout import FUNCTION, MAPS, SOURCE, STATS, Config, Lease, Pool, be32, mac_key

SERVER, SERVER_MAC = "10.67.0.1", "02:67:00:00:00:01"
KNOWN, KNOWN_IP = "02:00:00:00:aa:01", "10.67.0.100"
TAGGED, TAGGED_IP = "02:00:00:00:aa:02", "10.67.1.100"
UNKNOWN = "02:00:00:00:bb:01"
PARAMS = wire.ReplyParams(SERVER, SERVER_MAC, "255.255.255.0", SERVER, ("10.67.0.53", "10.67.0.54"), 600)
PARAMS_V = wire.ReplyParams(SERVER, SERVER_MAC, "255.255.255.0", None, (), 300)


def boottime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


@pytest.fixture(scope="module")
def prog():
    p = acquire(SOURCE, function=FUNCTION)
    maps = {name: BpfMap(p[name].map_fd, name, *types) for name, types in MAPS.items()}
    for idx, params in ((0, PARAMS), (1, PARAMS_V)):
        pool = Pool(be32(params.server_id), be32(params.mask), be32(params.router))
        for i, d in enumerate(params.dns):
            pool.dns[i] = be32(d)
        pool.lease_time = params.lease_time
        pool.server_mac[:] = list(wire.mac_raw(params.server_mac))
        maps["pools"].update(idx, pool)
    p.maps = maps
    yield p
    release(p)


@pytest.fixture(autouse=True)
def fresh(prog):
    """Every test starts with two cached leases, no rate limit and zero counters."""
    for name in ("leases", "buckets", "data_buckets"):
        prog.maps[name].clear()
    for i in range(len(STATS)):  # arrays cannot lose keys: zero them
        prog.maps["stats"].update(i, 0)
    prog.maps["config"].update(0, Config(0, 0, 0, 0))
    exp = boottime_ns() + 3600 * 10**9
    prog.maps["leases"].update(mac_key(KNOWN), Lease(be32(KNOWN_IP), 0, exp))
    prog.maps["leases"].update(mac_key(TAGGED, 7), Lease(be32(TAGGED_IP), 1, exp))


def stats(prog) -> dict[str, int]:
    return {STATS[k]: percpu_sum(v) for k, v in prog.maps["stats"].items() if k < len(STATS)}


def nonzero_stats(prog) -> dict[str, int]:
    """The counters that moved: why the program passed a frame it should have answered."""
    return {name: n for name, n in stats(prog).items() if n}


def run(prog, frame: bytes):
    return prog.test_run(frame)


def answered(prog, frame: bytes):
    """Run a frame the fast path must answer; if it passes it on, the message names the counters that moved."""
    res = run(prog, frame)
    assert res.verdict == "XDP_TX", f"not answered; counters: {nonzero_stats(prog)}"
    return res


def scapy_request(mac: str, mtype: str, *, options=(), flags=0, ciaddr="0.0.0.0", dst="255.255.255.255", vlan=None):
    l2 = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
    if vlan is not None:
        l2 = l2 / Dot1Q(vlan=vlan)
    return bytes(
        l2
        / IP(src=ciaddr, dst=dst)
        / UDP(sport=68, dport=67)
        / BOOTP(chaddr=wire.mac_raw(mac), xid=0x1234ABCD, flags=flags, ciaddr=ciaddr)
        / DHCP(options=[("message-type", mtype), *options, "end"])
    )


def check_reply(
    frame: bytes, mtype: int, yiaddr: str, params: wire.ReplyParams, *, req_mac: str, xid: int = 0x1234ABCD
) -> Ether:
    """RFC 2131 table 3 and RFC 2132 options, field by field; checksums as scapy recomputes them."""
    pkt = Ether(frame)
    ip, udp, bootp = pkt[IP], pkt[UDP], pkt[BOOTP]
    assert pkt.src == params.server_mac
    assert ip.version == 4 and ip.ihl == 5 and ip.proto == 17 and ip.src == params.server_id
    assert ip.len == 20 + 8 + wire.BOOTP_LEN and udp.len == 8 + wire.BOOTP_LEN
    assert (udp.sport, udp.dport) == (67, 68)
    rebuilt = Ether(frame)
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert ip.chksum == rebuilt[IP].chksum, "IPv4 header checksum"
    assert udp.chksum == rebuilt[UDP].chksum, "UDP checksum"
    assert bootp.xid == xid, "xid echoed"
    assert bootp.op == 2 and bootp.htype == 1 and bootp.hlen == 6 and bootp.hops == 0 and bootp.secs == 0
    assert bootp.yiaddr == yiaddr and bootp.siaddr == "0.0.0.0" and bootp.giaddr == "0.0.0.0"
    assert bootp.chaddr[:6] == wire.mac_raw(req_mac) and bootp.chaddr[6:] == b"\0" * 10
    assert bootp.sname.strip(b"\0") == b"" and bootp.file.strip(b"\0") == b""
    opts = {o[0]: o[1:] for o in pkt[DHCP].options if isinstance(o, tuple)}
    assert opts["message-type"] == (mtype,)
    assert opts["server_id"] == (params.server_id,)
    assert opts["lease_time"] == (params.lease_time,)
    assert opts["subnet_mask"] == (params.mask,)
    assert opts.get("router") == ((params.router,) if params.router else None)
    assert opts.get("name_server") == (tuple(params.dns) if params.dns else None)
    return pkt


def test_discover_from_cached_mac_gets_offer(prog):
    res = answered(prog, scapy_request(KNOWN, "discover"))
    pkt = check_reply(res.data, wire.OFFER, KNOWN_IP, PARAMS, req_mac=KNOWN)
    assert pkt[BOOTP].ciaddr == "0.0.0.0"
    assert (pkt.dst, pkt[IP].dst) == (KNOWN, KNOWN_IP), "no broadcast bit: unicast to yiaddr at chaddr"
    assert stats(prog)["fast_offer"] == 1


def test_broadcast_bit_gets_broadcast_reply(prog):
    res = answered(prog, scapy_request(KNOWN, "discover", flags=0x8000))
    pkt = check_reply(res.data, wire.OFFER, KNOWN_IP, PARAMS, req_mac=KNOWN)
    assert (pkt.dst, pkt[IP].dst, pkt[BOOTP].flags) == ("ff:ff:ff:ff:ff:ff", "255.255.255.255", 0x8000)


def test_request_selecting_gets_ack_and_renews(prog):
    before = prog.maps["leases"].lookup(mac_key(KNOWN)).expires_ns
    opts = [("requested_addr", KNOWN_IP), ("server_id", SERVER)]
    res = answered(prog, scapy_request(KNOWN, "request", options=opts))
    check_reply(res.data, wire.ACK, KNOWN_IP, PARAMS, req_mac=KNOWN)
    after = prog.maps["leases"].lookup(mac_key(KNOWN)).expires_ns
    assert abs(after - (boottime_ns() + 600 * 10**9)) < 5 * 10**9 and after != before, "an ACK renews the entry"


def test_renewing_request_unicast_to_ciaddr(prog):
    frame = wire.request_frame(KNOWN, wire.REQUEST, xid=9, ciaddr=KNOWN_IP, dst_ip=SERVER, dst_mac=SERVER_MAC)
    res = answered(prog, frame)
    pkt = check_reply(res.data, wire.ACK, KNOWN_IP, PARAMS, req_mac=KNOWN, xid=9)
    assert (pkt.dst, pkt[IP].dst, pkt[BOOTP].ciaddr) == (KNOWN, KNOWN_IP, KNOWN_IP)


def test_vlan_tag_is_kept_and_selects_the_lease(prog):
    res = answered(prog, scapy_request(TAGGED, "discover", vlan=7))
    pkt = check_reply(res.data, wire.OFFER, TAGGED_IP, PARAMS_V, req_mac=TAGGED)
    assert pkt[Dot1Q].vlan == 7
    assert run(prog, scapy_request(TAGGED, "discover")).verdict == "XDP_PASS", "untagged: another subscriber"
    assert run(prog, scapy_request(KNOWN, "discover", vlan=7)).verdict == "XDP_PASS"


@pytest.mark.parametrize(
    ("mtype", "mac", "options", "ciaddr"),
    [
        (wire.DISCOVER, KNOWN, {}, "0.0.0.0"),
        (wire.DISCOVER, KNOWN, {"broadcast": True}, "0.0.0.0"),
        (wire.REQUEST, KNOWN, {"requested": KNOWN_IP, "server_id": SERVER}, "0.0.0.0"),
        (wire.REQUEST, KNOWN, {"requested": KNOWN_IP}, "0.0.0.0"),  # INIT-REBOOT
        (wire.REQUEST, KNOWN, {"dst_ip": SERVER, "dst_mac": SERVER_MAC}, KNOWN_IP),  # RENEWING
        (wire.REQUEST, KNOWN, {}, KNOWN_IP),  # REBINDING (broadcast)
        (wire.DISCOVER, TAGGED, {"vlan": 7}, "0.0.0.0"),
    ],
)
def test_reply_is_byte_for_byte_the_slow_paths(prog, mtype, mac, options, ciaddr):
    """The slow path's codec (tools/dhcp/wire.py) builds exactly the frame XDP sent."""
    frame = wire.request_frame(mac, mtype, xid=0xC0FFEE, ciaddr=ciaddr, **options)
    res = answered(prog, frame)
    req = wire.parse_frame(frame)
    params = PARAMS_V if mac == TAGGED else PARAMS
    yiaddr = TAGGED_IP if mac == TAGGED else KNOWN_IP
    expected = wire.reply_frame(req, wire.OFFER if mtype == wire.DISCOVER else wire.ACK, yiaddr, params)
    assert res.data == expected


@pytest.mark.parametrize(
    ("why", "frame", "counter"),
    [
        ("unknown MAC", wire.request_frame(UNKNOWN, wire.DISCOVER), "pass_unknown_mac"),
        ("RELEASE", wire.request_frame(KNOWN, wire.RELEASE, ciaddr=KNOWN_IP), "pass_type"),
        ("DECLINE", wire.request_frame(KNOWN, wire.DECLINE, requested=KNOWN_IP), "pass_type"),
        ("INFORM", wire.request_frame(KNOWN, wire.INFORM, ciaddr=KNOWN_IP), "pass_type"),
        (
            "REQUEST for another server's offer",
            wire.request_frame(KNOWN, wire.REQUEST, requested=KNOWN_IP, server_id="10.67.0.2"),
            "pass_other_addr",
        ),
        (
            "REQUEST for another address",
            wire.request_frame(KNOWN, wire.REQUEST, requested="10.67.0.9"),
            "pass_other_addr",
        ),
        ("REQUEST without address", wire.request_frame(KNOWN, wire.REQUEST), "pass_other_addr"),
        (
            "unicast to someone else",
            wire.request_frame(KNOWN, wire.DISCOVER, dst_ip="10.67.0.2", dst_mac=SERVER_MAC),
            "pass_other_addr",
        ),
    ],
)
def test_slow_path_cases_pass_untouched(prog, why, frame, counter):
    res = run(prog, frame)
    assert (res.verdict, res.data) == ("XDP_PASS", frame), why
    assert stats(prog)[counter] == 1, why


def _payload_offset(frame: bytes) -> int:
    return 14 + 20 + 8


def _with_payload(frame: bytes, payload: bytes, *, fix_lengths: bool = True) -> bytes:
    """Replace the UDP payload of an untagged request; lengths follow unless told otherwise."""
    head = bytearray(frame[: _payload_offset(frame)])
    if fix_lengths:
        head[16:18] = (20 + 8 + len(payload)).to_bytes(2, "big")
        head[38:40] = (8 + len(payload)).to_bytes(2, "big")
        head[40:42] = b"\0\0"  # UDP checksum 0: not checked
    return bytes(head) + payload


def hostile_frames() -> list[tuple[str, bytes]]:
    good = wire.request_frame(KNOWN, wire.DISCOVER)
    payload = good[_payload_offset(good) :]
    opts_at = wire.FIXED.size
    cases = [
        ("no end option", _with_payload(good, payload[:opts_at] + bytes([53, 1, 1]))),
        ("option runs past the end", _with_payload(good, payload[:opts_at] + bytes([53, 1, 1, 12, 200, 0x41]))),
        ("huge option length", _with_payload(good, payload[:opts_at] + bytes([53, 1, 1, 61, 255]) + b"\0" * 40)),
        ("message type of length 2", _with_payload(good, payload[:opts_at] + bytes([53, 2, 1, 1, 255]))),
        ("two message types", _with_payload(good, payload[:opts_at] + bytes([53, 1, 1, 53, 1, 3, 255]))),
        ("no message type", _with_payload(good, payload[:opts_at] + bytes([12, 1, 0x41, 255]))),
        ("option overload", _with_payload(good, payload[:opts_at] + bytes([53, 1, 1, 52, 1, 3, 255]))),
        ("only pads", _with_payload(good, payload[:opts_at] + b"\0" * 60)),
        ("wrong cookie", _with_payload(good, payload[: opts_at - 4] + b"\x63\x82\x53\x64" + payload[opts_at:])),
        ("truncated before the cookie", _with_payload(good, payload[:200])),
        ("UDP length larger than the frame", _with_payload(good, payload, fix_lengths=False)[:-20]),
        ("relayed (giaddr set)", _with_payload(good, payload[:24] + bytes([10, 0, 0, 1]) + payload[28:])),
        ("chaddr is not the sender", _with_payload(good, payload[:28] + wire.mac_raw(UNKNOWN) + payload[34:])),
        ("BOOTREPLY", _with_payload(good, b"\x02" + payload[1:])),
        ("hlen 16", _with_payload(good, payload[:2] + b"\x10" + payload[3:])),
    ]
    frag = bytearray(good)
    frag[20:22] = b"\x20\x00"  # MF set: first fragment
    cases.append(("first fragment", bytes(frag)))
    frag[20:22] = b"\x00\x10"  # a later fragment
    cases.append(("later fragment", bytes(frag)))
    opt = bytearray(good)
    cases.append(("IP options", bytes(opt[:14]) + b"\x46" + bytes(opt[15:34]) + b"\x01\x01\x01\x00" + bytes(opt[34:])))
    qinq = good[:12] + bytes.fromhex("8100000781000008") + good[12:]
    cases.append(("QinQ", qinq))
    for n in (14, 30, 42, 100, 250, 282):
        cases.append((f"cut at {n} bytes", good[:n]))
    return cases


@pytest.mark.parametrize(("why", "frame"), hostile_frames(), ids=[w for w, _ in hostile_frames()])
def test_hostile_frames_are_never_answered(prog, why, frame):
    res = run(prog, frame)
    assert (res.verdict, res.data) == ("XDP_PASS", frame), why


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    options=st.binary(max_size=120),
    cut=st.integers(min_value=0, max_value=400),
    flip=st.lists(st.tuples(st.integers(0, 341), st.integers(0, 255)), max_size=4),
)
def test_random_options_and_corruption_never_crash_or_lie(prog, options, cut, flip):
    """Any options, any truncation, any flipped bytes: XDP_PASS untouched, or a reply that is
    exactly the slow path's for the request as the kernel saw it."""
    good = wire.request_frame(KNOWN, wire.DISCOVER)
    payload = bytearray(good[_payload_offset(good) : _payload_offset(good) + wire.FIXED.size] + options)
    frame = bytearray(_with_payload(good, bytes(payload)))
    for pos, val in flip:
        if pos < len(frame):
            frame[pos] = val
    frame = frame[: max(14, len(frame) - cut)] if cut < 200 else frame
    res = run(prog, bytes(frame))
    assert res.verdict in ("XDP_PASS", "XDP_TX")
    if res.verdict == "XDP_PASS":
        assert res.data == bytes(frame)
        return
    req = wire.parse_frame(bytes(frame))  # the slow path must accept what XDP answered
    mtype = wire.OFFER if req.type == wire.DISCOVER else wire.ACK
    assert res.data == wire.reply_frame(req, mtype, KNOWN_IP, PARAMS)


def test_expired_entry_is_not_answered(prog):
    prog.maps["leases"].update(mac_key(KNOWN), Lease(be32(KNOWN_IP), 0, boottime_ns() - 1))
    assert run(prog, wire.request_frame(KNOWN, wire.DISCOVER)).verdict == "XDP_PASS"
    assert stats(prog)["pass_expired"] == 1
    prog.maps["leases"].delete(mac_key(KNOWN))
    assert run(prog, wire.request_frame(KNOWN, wire.DISCOVER)).verdict == "XDP_PASS"


def test_per_mac_token_bucket_and_slow_path_budget(prog):
    prog.maps["config"].update(0, Config(1, 3, 1, 2))
    frame = wire.request_frame(KNOWN, wire.DISCOVER)
    verdicts = [run(prog, frame).verdict for _ in range(5)]
    assert verdicts == ["XDP_TX"] * 3 + ["XDP_DROP"] * 2, "burst 3, then about 1 per second"
    s = stats(prog)
    assert (s["fast_offer"], s["drop_mac_rate"]) == (3, 2)
    # the slow-path budget: two unknown MACs, then the shared bucket is empty
    v = [run(prog, wire.request_frame(f"02:00:00:00:cc:{i:02x}", wire.DISCOVER)).verdict for i in range(4)]
    assert v == ["XDP_PASS", "XDP_PASS", "XDP_DROP", "XDP_DROP"]
    assert stats(prog)["drop_slow_rate"] == 2


def test_not_dhcp_is_not_counted(prog):
    eth = Ether(src=KNOWN, dst=SERVER_MAC)
    frame = bytes(eth / IP(src="10.67.0.100", dst=SERVER) / UDP(sport=1234, dport=67) / (b"x" * 30))
    assert run(prog, frame).verdict == "XDP_PASS"
    frame = bytes(eth / IP(src="10.67.0.100", dst=SERVER) / UDP(sport=67, dport=68) / (b"x" * 30))
    assert run(prog, frame).verdict == "XDP_PASS"
    assert stats(prog)["dhcp"] == 0


def data_frame(mac: str, size: int, vlan: int | None = None) -> bytes:
    """A subscriber's UDP frame of exactly `size` bytes (not DHCP)."""
    l2 = Ether(src=mac, dst=SERVER_MAC) if vlan is None else Ether(src=mac, dst=SERVER_MAC) / Dot1Q(vlan=vlan)
    head = l2 / IP(src=KNOWN_IP, dst="192.0.2.1") / UDP(sport=5000, dport=5001)
    return bytes(head / (b"d" * (size - len(head))))


def test_data_rate_limit_off_by_default_counts_nothing(prog):
    for _ in range(50):
        assert run(prog, data_frame(KNOWN, 1000)).verdict == "XDP_PASS"
    s = stats(prog)
    assert (s["data"], s["drop_data_rate"]) == (0, 0)
    assert prog.maps["data_buckets"].lookup(mac_key(KNOWN)) is None


def test_data_rate_limit_per_subscriber(prog):
    """A bucket of 5000 bytes refilled at 100 bytes/s: five 1000-byte frames pass at once, the rest
    of a back-to-back burst is dropped (the refill in the ms the burst takes is a few bytes),
    per MAC and per VLAN; DHCP and ARP never pay, and the counters add up frame by frame."""
    prog.maps["config"].update(0, Config(0, 0, 0, 0, 100, 5000))
    frame = data_frame(KNOWN, 1000)
    verdicts = [run(prog, frame).verdict for _ in range(8)]
    assert verdicts == ["XDP_PASS"] * 5 + ["XDP_DROP"] * 3
    # another subscriber, and the same MAC on another VLAN, have buckets of their own
    assert run(prog, data_frame(UNKNOWN, 1000)).verdict == "XDP_PASS"
    assert run(prog, data_frame(KNOWN, 1000, vlan=7)).verdict == "XDP_PASS"
    # the bucket is empty for small frames too (64 bytes would take 0.64 s to refill)
    assert run(prog, data_frame(KNOWN, 64)).verdict == "XDP_DROP"
    # DHCP is not data: the fast path still answers the limited subscriber
    assert run(prog, wire.request_frame(KNOWN, wire.DISCOVER)).verdict == "XDP_TX"
    arp = bytes(Ether(src=KNOWN, dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\0" * 28))
    assert run(prog, arp).verdict == "XDP_PASS"
    s = stats(prog)
    assert (s["data"], s["drop_data_rate"]) == (11, 4)
    assert (s["data_bytes"], s["drop_data_bytes"]) == (10 * 1000 + 64, 3 * 1000 + 64)
    assert (s["dhcp"], s["fast_offer"]) == (1, 1)


def test_data_bucket_refills_at_its_rate(prog):
    prog.maps["config"].update(0, Config(0, 0, 0, 0, 10_000, 2000))
    frame = data_frame(KNOWN, 1000)
    assert [run(prog, frame).verdict for _ in range(3)] == ["XDP_PASS", "XDP_PASS", "XDP_DROP"]
    time.sleep(0.3)  # 10 kB/s x 0.3 s = 3000 bytes, capped at the 2000-byte burst
    assert [run(prog, frame).verdict for _ in range(3)] == ["XDP_PASS", "XDP_PASS", "XDP_DROP"]
