"""TUN and TAP from Python: an interface whose other end is a file descriptor (lab 05, part 6).

``open("/dev/net/tun")`` plus the ``TUNSETIFF`` ioctl creates an interface in the calling
thread's network namespace; the kernel hands every packet routed to it to whoever reads the
descriptor, and every buffer written to the descriptor arrives as if the interface had
received it. A TUN device carries IP packets (layer 3: VPNs such as WireGuard's userspace
implementations and OpenVPN in tun mode); a TAP device carries Ethernet frames (layer 2:
virtual machines' NICs, bridged VPNs). ``IFF_NO_PI`` drops the 4-byte packet-info header.

`TunDevice` opens one in a lab host's namespace; `answer_pings` turns this process into a
tiny IP stack that answers ICMP echo requests arriving on it. The device lives as long as
the descriptor (it is not made persistent) and with the namespace.
"""

from __future__ import annotations

import fcntl
import os
import select
import struct
import time
from typing import TYPE_CHECKING

from packetlab.proto.dissect import internet_checksum, ipv4_header_checksum
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.topo.host import Host

TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN, IFF_TAP, IFF_NO_PI = 0x0001, 0x0002, 0x1000


class TunDevice:
    """A TUN (``kind="tun"``) or TAP (``kind="tap"``) interface in `host`'s namespace, read and written here."""

    def __init__(self, host: Host, name: str = "tun0", *, kind: str = "tun") -> None:
        if kind not in ("tun", "tap"):
            raise ValueError(f"kind is 'tun' or 'tap', not {kind!r}")
        self.host, self.name, self.kind = host, name, kind
        flags = (IFF_TUN if kind == "tun" else IFF_TAP) | IFF_NO_PI
        with netns.entered(host.namespace):  # the device is created in the caller's namespace
            self.fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
            try:
                fcntl.ioctl(self.fd, TUNSETIFF, struct.pack("16sH", name.encode(), flags))
            except OSError:
                os.close(self.fd)
                raise

    def read(self, timeout: float = 1.0) -> bytes | None:
        """One packet (TUN) or frame (TAP) the kernel sent to the device, or None after `timeout` s."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        return os.read(self.fd, 65536) if ready else None

    def write(self, packet: bytes) -> None:
        """Hand `packet` to the kernel as if the interface had received it."""
        os.write(self.fd, packet)

    def close(self) -> None:
        """Close the descriptor; the (non-persistent) device disappears with it."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> TunDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def echo_reply(packet: bytes) -> bytes | None:
    """The ICMP echo reply to an IPv4 echo request (addresses swapped, checksums recomputed), else None."""
    if len(packet) < 28 or packet[0] >> 4 != 4:
        return None
    ihl = (packet[0] & 0x0F) * 4
    if packet[9] != 1 or len(packet) < ihl + 8 or packet[ihl] != 8:  # ICMP, echo request
        return None
    header = bytearray(packet[:ihl])
    header[12:16], header[16:20] = packet[16:20], packet[12:16]  # swap source and destination
    header[8] = 64  # a fresh TTL
    header[10:12] = struct.pack("!H", ipv4_header_checksum(bytes(header)))
    icmp = bytearray(packet[ihl:])
    icmp[0] = 0  # echo reply; code, identifier, sequence and data stay
    icmp[2:4] = b"\0\0"
    icmp[2:4] = struct.pack("!H", internet_checksum(bytes(icmp)))
    return bytes(header + icmp)


def answer_pings(tun: TunDevice, *, count: int, timeout: float = 5.0) -> list[tuple[str, str, int]]:
    """Answer `count` echo requests arriving on `tun`; return (source, destination, sequence) of each."""
    answered: list[tuple[str, str, int]] = []
    deadline = time.monotonic() + timeout
    while len(answered) < count and time.monotonic() < deadline:
        packet = tun.read(timeout=max(0.0, deadline - time.monotonic()))
        if packet is None:
            break
        reply = echo_reply(packet)
        if reply is None:
            continue  # not for us (e.g. an IPv6 router solicitation): a real stack would handle it
        tun.write(reply)
        ihl = (packet[0] & 0x0F) * 4
        answered.append((_ip(packet[12:16]), _ip(packet[16:20]), struct.unpack("!H", packet[ihl + 6 : ihl + 8])[0]))
    return answered


def _ip(raw: bytes) -> str:
    return ".".join(str(b) for b in raw)
