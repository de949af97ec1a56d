"""Module 05, TUN: the echo reply a userspace IP stack writes back (pure bytes, no device)."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, UDP

from packetlab.course.m05_python_network_programming.tuntap import echo_reply


def test_echo_reply_swaps_addresses_and_fixes_both_checksums():
    request = IP(src="10.5.99.1", dst="10.5.99.2", ttl=7) / ICMP(type=8, id=0x1234, seq=5) / b"payload!"
    reply = IP(echo_reply(bytes(request)))
    assert (reply.src, reply.dst, reply.ttl) == ("10.5.99.2", "10.5.99.1", 64)
    assert (reply[ICMP].type, reply[ICMP].id, reply[ICMP].seq, bytes(reply[ICMP].payload)) == (
        0,
        0x1234,
        5,
        b"payload!",
    )
    rebuilt = IP(bytes(reply))
    del rebuilt.chksum, rebuilt[ICMP].chksum  # let scapy compute them: they must equal what we wrote
    assert IP(bytes(rebuilt)).chksum == reply.chksum and IP(bytes(rebuilt))[ICMP].chksum == reply[ICMP].chksum


def test_echo_reply_ignores_what_is_not_an_ipv4_echo_request():
    assert echo_reply(bytes(IP(dst="10.5.99.2") / ICMP(type=0))) is None  # a reply
    assert echo_reply(bytes(IP(dst="10.5.99.2") / UDP(dport=53))) is None
    assert echo_reply(b"\x60" + bytes(47)) is None  # IPv6
    assert echo_reply(b"\x45\x00") is None  # truncated
