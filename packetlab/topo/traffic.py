"""Line-rate traffic between lab hosts: trafgen (netsniff-ng) floods, counted on both ends.

Benchmarks across the course (rule scaling, XDP vs nftables, the firewall)
need a sender that can saturate a receiver on veth. Python cannot: scapy sends
thousands of packets per second, trafgen millions (PF_PACKET TX ring). Each
flood reports what the sender put on the wire and what the receiving
interface saw, so a benchmark can say which side limited a figure.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from packetlab.errors import PacketlabError
from packetlab.topo.host import Host
from packetlab.topo.rtnl import iproute


@dataclass
class LinkCounters:
    """Interface counters (from the kernel's rtnl_link_stats64)."""

    rx_packets: int
    rx_dropped: int
    tx_packets: int
    tx_dropped: int


def link_counters(host: Host, dev: str = "eth0") -> LinkCounters:
    with iproute(netns=host.namespace) as ipr:
        link = ipr.get_links(ifname=dev)[0]
    stats = link.get_attr("IFLA_STATS64")
    return LinkCounters(stats["rx_packets"], stats["rx_dropped"], stats["tx_packets"], stats["tx_dropped"])


def _settled_rx(host: Host, dev: str, *, quiet: float = 0.05, limit: float = 2.0) -> LinkCounters:
    """The receiver's counters once it has taken in what was sent: no change for `quiet` seconds.

    When trafgen exits, frames can still wait in the receiving veth's queue for its NAPI poll
    (longer on a busy machine); a count read at once misses them, and so would a lab that ends
    its measurement epoch at once (their packets land in the next one)."""
    deadline = time.monotonic() + limit
    last = link_counters(host, dev)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = link_counters(host, dev)
        if (now.rx_packets, now.rx_dropped) == (last.rx_packets, last.rx_dropped):
            return now
        last = now
    return last


@dataclass
class FloodResult:
    """One timed flood: packets sent by trafgen and received by the peer interface."""

    seconds: float
    sent: int
    received: int
    receiver_dropped: int
    frame_size: int

    @property
    def sent_pps(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def received_pps(self) -> float:
        return self.received / self.seconds if self.seconds else 0.0

    @property
    def limited_by(self) -> str:
        """'receiver' if the receiving side dropped or fell >5% behind, else 'sender'."""
        if self.receiver_dropped > 0.05 * max(self.sent, 1) or self.received < 0.95 * self.sent:
            return "receiver"
        return "sender"


def trafgen_config(
    dst_mac: str,
    src_ip: str,
    dst_ip: str,
    *,
    dst_port: int = 9,
    flows: int = 64,
    frame_size: int = 64,
    src_mac: str | None = None,
) -> str:
    """A trafgen packet description: UDP/IPv4 with `flows` different source ports."""
    ipaddress.IPv4Address(src_ip), ipaddress.IPv4Address(dst_ip)
    if not 60 <= frame_size <= 1514:
        raise PacketlabError(f"frame size {frame_size} out of range", fix="use 60..1514 bytes (no FCS)")
    payload = frame_size - 14 - 20 - 8
    sa = f"sa={src_mac}, " if src_mac else ""
    return (
        f"{{ eth({sa}da={dst_mac}), ipv4(sa={src_ip}, da={dst_ip}, ttl=64), "
        f"udp(sp=dinc(10000, {10000 + max(flows, 1) - 1}), dp={dst_port}), fill(0x00, {payload}) }}\n"
    )


def flood(
    sender: Host,
    receiver: Host,
    *,
    src_ip: str,
    dst_ip: str,
    dev: str = "eth0",
    rx_dev: str = "eth0",
    seconds: float = 2.0,
    frame_size: int = 64,
    flows: int = 64,
    dst_port: int = 9,
    dst_mac: str | None = None,
    cpus: int = 1,
) -> FloodResult:
    """Blast UDP from `sender` to `receiver` for `seconds` with trafgen; count both ends.

    `dst_mac` defaults to the receiver's `rx_dev` MAC (a direct veth link); pass
    the next hop's MAC when a router sits in between.
    """
    dst_mac = dst_mac or receiver.mac(rx_dev)
    conf = trafgen_config(dst_mac, src_ip, dst_ip, dst_port=dst_port, flows=flows, frame_size=frame_size)
    with tempfile.NamedTemporaryFile("w", suffix=".trafgen", delete=False) as f:
        f.write(conf)
    try:
        before_tx = link_counters(sender, dev)
        before_rx = link_counters(receiver, rx_dev)
        start = time.monotonic()
        result = sender.run(
            [
                # trafgen mmaps a scratch file (.tmp_mmap.*) in its working directory: run it in the
                # temp dir, not the caller's (a read-only or network filesystem refuses the shared
                # mmap: "Cannot setup shared variable!", seen with the tree on 9p in a 6.1 VM)
                "env",
                "-C",
                os.path.dirname(f.name),
                "timeout",
                "-s",
                "INT",
                str(seconds),
                "trafgen",
                "--dev",
                dev,
                "--conf",
                f.name,
                "--cpus",
                str(cpus),
                "--no-sock-mem",
                "-q",
            ],
            timeout=seconds + 15,
        )
        elapsed = time.monotonic() - start
        if result.returncode not in (0, 124, 130) and "packets outgoing" not in result.stdout:
            raise PacketlabError(
                "trafgen failed",
                cause=(result.stderr or result.stdout).strip()[-400:],
                fix="is netsniff-ng installed (packetlab doctor)? does the device exist?",
            )
        after_tx = link_counters(sender, dev)
        after_rx = _settled_rx(receiver, rx_dev)
    finally:
        Path(f.name).unlink(missing_ok=True)
    return FloodResult(
        seconds=min(elapsed, seconds) if elapsed > 0 else seconds,
        sent=after_tx.tx_packets - before_tx.tx_packets,
        received=after_rx.rx_packets - before_rx.rx_packets,
        receiver_dropped=after_rx.rx_dropped - before_rx.rx_dropped,
        frame_size=frame_size,
    )
