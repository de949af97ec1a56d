"""Module 05: TUN and TAP devices in a lab namespace, driven from this process."""

from __future__ import annotations

import threading

from packetlab.course.m05_python_network_programming.tuntap import TunDevice, answer_pings


def test_a_tun_device_answered_by_python_and_a_tap_device_gets_frames(lab):
    c = lab.host("c")
    with TunDevice(c, "tun0") as tun:
        c.run(["ip", "addr", "add", "10.5.99.1/24", "dev", "tun0"], check=True)
        c.run(["ip", "link", "set", "tun0", "up"], check=True)
        answered: list = []
        responder = threading.Thread(target=lambda: answered.extend(answer_pings(tun, count=3)))
        responder.start()
        ping = c.ping("10.5.99.2", count=3, interval=0.1, timeout=3)
        responder.join(timeout=10)
        assert ping.received == 3 and [a[2] for a in answered] == [1, 2, 3]
        assert all(a[:2] == ("10.5.99.1", "10.5.99.2") for a in answered)
    assert c.run(["ip", "link", "show", "tun0"]).returncode != 0  # gone with its descriptor
    with TunDevice(c, "tap0", kind="tap") as tap:
        c.run(["ip", "addr", "add", "10.5.98.1/24", "dev", "tap0"], check=True)
        c.run(["ip", "link", "set", "tap0", "up"], check=True)
        c.popen(["ping", "-c", "1", "-W", "1", "10.5.98.2"])
        frames = [f for f in (tap.read(1.0) for _ in range(10)) if f]
        arp = [f for f in frames if f[12:14] == b"\x08\x06"]  # a TAP carries Ethernet: the ARP request comes first
        assert arp and arp[0][:6] == b"\xff" * 6 and arp[0][38:42] == bytes([10, 5, 98, 2])
