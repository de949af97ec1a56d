"""Line-rate traffic between lab hosts: trafgen (netsniff-ng) floods, counted on both ends.

Benchmarks across the course (rule scaling, XDP vs nftables, the firewall)
need a sender that can saturate a receiver on veth. Python cannot: scapy sends
thousands of packets per second, trafgen millions (PF_PACKET TX ring). Each
flood reports what the sender put on the wire and what the receiving
interface saw, so a benchmark can say which side limited a figure.
"""

from __future__ import annotations

import ipaddress
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


# trafgen 0.6.8 gives up when the kernel answers a TX-ring flush with EAGAIN: the socket's send
# buffer is full of frames the receiver has not taken yet (a busy receiver, both ends on few CPUs).
# That is back-pressure, not a fault; the flood goes on with a fresh trafgen for the time left.
_BACKPRESSURE = "Flushing TX_RING failed: Resource temporarily unavailable"
_MAX_RESTARTS = 20


def _send_for(sender: Host, dev: str, conf_path: Path, *, seconds: float, cpus: int) -> None:
    """Run trafgen on `dev` in `sender` for `seconds`, restarting it after back-pressure exits."""
    deadline = time.monotonic() + seconds
    for _ in range(_MAX_RESTARTS + 1):
        left = deadline - time.monotonic()
        if left < 0.05:
            return
        result = sender.run(
            ["env", "-C", str(conf_path.parent), "timeout", "-s", "INT", f"{left:.3f}", "trafgen"]
            + ["--dev", dev, "--conf", str(conf_path), "--cpus", str(cpus), "--no-sock-mem", "--qdisc-path"],
            timeout=left + 15,
        )
        if result.returncode in (0, 124, 130) or "packets outgoing" in result.stdout:
            return
        if _BACKPRESSURE not in result.stderr:
            raise PacketlabError(
                "trafgen failed",
                cause=(result.stderr or result.stdout).strip()[-400:],
                fix="is netsniff-ng installed (packetlab doctor)? does the device exist?",
            )
    raise PacketlabError(
        "trafgen kept stopping on a full send buffer",
        cause=f"{_MAX_RESTARTS} restarts in {seconds:g} s: the receiver is not taking frames from {dev}",
        fix="check that the receiving end is up and its XDP program returns quickly; try a shorter flood",
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
    # one private directory for the packet description and trafgen's scratch file (.tmp_mmap.*,
    # created in its working directory; a read-only or network filesystem refuses that shared
    # mmap: "Cannot setup shared variable!", seen with the tree on 9p in a 6.1 VM); removed
    # afterwards even when trafgen dies without cleaning up
    with tempfile.TemporaryDirectory(prefix="packetlab-trafgen-") as workdir:
        conf_path = Path(workdir) / "flood.trafgen"
        conf_path.write_text(conf)
        before_tx = link_counters(sender, dev)
        before_rx = link_counters(receiver, rx_dev)
        start = time.monotonic()
        _send_for(sender, dev, conf_path, seconds=seconds, cpus=cpus)
        elapsed = time.monotonic() - start
        after_tx = link_counters(sender, dev)
        after_rx = _settled_rx(receiver, rx_dev)
    return FloodResult(
        seconds=min(elapsed, seconds) if elapsed > 0 else seconds,
        sent=after_tx.tx_packets - before_tx.tx_packets,
        received=after_rx.rx_packets - before_rx.rx_packets,
        receiver_dropped=after_rx.rx_dropped - before_rx.rx_dropped,
        frame_size=frame_size,
    )
