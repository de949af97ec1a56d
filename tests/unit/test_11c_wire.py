"""The DHCP codec of packetlab dhcp (no root, no kernel): requests and replies round-trip,
addressing follows RFC 2131 4.1, and malformed messages are refused with a reason."""

from __future__ import annotations

import pytest
from scapy.layers.dhcp import BOOTP, DHCP
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from packetlab.tools.dhcp import wire

MAC = "02:00:00:00:aa:01"
PARAMS = wire.ReplyParams("10.67.0.1", "02:67:00:00:00:01", "255.255.255.0", "10.67.0.1", ("10.67.0.53",), 600)


def test_request_round_trip_and_scapy_agrees():
    frame = wire.request_frame(MAC, wire.REQUEST, xid=7, requested="10.67.0.100", server_id="10.67.0.1", vlan=5)
    msg = wire.parse_frame(frame)
    assert (msg.type, msg.xid, msg.chaddr, msg.requested, msg.server_id, msg.vlan) == (
        wire.REQUEST,
        7,
        MAC,
        "10.67.0.100",
        "10.67.0.1",
        5,
    )
    pkt = Ether(frame)
    assert pkt[BOOTP].xid == 7 and ("message-type", 3) in pkt[DHCP].options


def test_reply_checksums_verify_and_options_in_order():
    req = wire.parse_frame(wire.request_frame(MAC, wire.DISCOVER, xid=3))
    frame = wire.reply_frame(req, wire.OFFER, "10.67.0.100", PARAMS)
    pkt = Ether(frame)
    rebuilt = Ether(frame)
    del rebuilt[IP].chksum, rebuilt[UDP].chksum
    rebuilt = Ether(bytes(rebuilt))
    assert (pkt[IP].chksum, pkt[UDP].chksum) == (rebuilt[IP].chksum, rebuilt[UDP].chksum)
    assert [o[0] for o in pkt[DHCP].options if isinstance(o, tuple)] == [
        "message-type",
        "server_id",
        "lease_time",
        "subnet_mask",
        "router",
        "name_server",
    ]
    assert len(bytes(pkt[BOOTP])) == wire.BOOTP_LEN
    assert (pkt.dst, pkt[IP].dst) == (MAC, "10.67.0.100")


@pytest.mark.parametrize(
    ("mtype", "ciaddr", "broadcast", "expected"),
    [
        (wire.OFFER, "0.0.0.0", False, ("10.67.0.100", MAC)),
        (wire.OFFER, "0.0.0.0", True, ("255.255.255.255", "ff:ff:ff:ff:ff:ff")),
        (wire.ACK, "10.67.0.100", True, ("10.67.0.100", MAC)),
        (wire.NAK, "0.0.0.0", False, ("255.255.255.255", "ff:ff:ff:ff:ff:ff")),
    ],
)
def test_reply_destination_rfc2131_4_1(mtype, ciaddr, broadcast, expected):
    req = wire.parse_frame(wire.request_frame(MAC, wire.REQUEST, ciaddr=ciaddr, broadcast=broadcast))
    assert wire.reply_destination(req, mtype, "10.67.0.100") == expected


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        (bytes([53, 1, 1]), "without option 255"),
        (bytes([53, 1, 1, 12, 40, 1]), "runs past"),
        (bytes([12, 1, 65, 255]), "message type"),
    ],
)
def test_malformed_options_are_refused(options, reason):
    good = wire.request_frame(MAC, wire.DISCOVER)
    payload = good[42 : 42 + wire.FIXED.size] + options
    with pytest.raises(wire.MalformedDhcp, match=reason):
        wire.parse_payload(payload)


def test_wrong_cookie_is_refused():
    good = wire.request_frame(MAC, wire.DISCOVER)
    payload = bytearray(good[42:])
    payload[236:240] = b"\0\0\0\0"
    with pytest.raises(wire.MalformedDhcp, match="cookie"):
        wire.parse_payload(bytes(payload))
