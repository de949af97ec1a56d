"""The egress path and its queueing disciplines, measured on one veth link (lab 02, part 6).

Every packet a host sends passes the root qdisc of the outgoing interface before the
driver gets it. veth starts with ``noqueue`` (no queue at all: the packet goes straight to
the peer); `set_root_qdisc` installs another one with ``tc qdisc replace`` — inside the
sender's namespace only. `bulk_transfer` measures what a qdisc lets through (one TCP
stream, both ends in this process: sockets created in the two namespaces), and
`rtt_under_load` what it does to a ping that shares the queue with that stream: the
bufferbloat experiment, a FIFO against fq_codel behind the same tbf rate limit.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.errors import CommandFailed
from packetlab.show.tables import format_table
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.topo.host import Host

PORT = 5202
_RTT = re.compile(r"time=([\d.]+) ms")
_SENT = re.compile(r"Sent (\d+) bytes (\d+) pkt \(dropped (\d+), overlimits (\d+)")
TBF_MBIT = 20
# what the lab compares: name -> `tc qdisc replace ... root` arguments
QDISCS: dict[str, list[str]] = {
    "pfifo_fast": ["pfifo_fast"],
    "fq_codel": ["fq_codel"],
    f"tbf {TBF_MBIT} Mbit/s": ["tbf", "rate", f"{TBF_MBIT}mbit", "burst", "32kbit", "latency", "50ms"],
}


def set_root_qdisc(host: Host, spec: Sequence[str], dev: str = "eth0") -> str:
    """``tc qdisc replace dev <dev> root <spec...>`` in `host`, then what ``tc qdisc show`` says."""
    host.run(["tc", "qdisc", "replace", "dev", dev, "root", *spec], check=True)
    return host.run(["tc", "qdisc", "show", "dev", dev]).stdout.strip()


@dataclass(frozen=True)
class QdiscRun:
    name: str
    available: bool  # False: this kernel lacks the qdisc (e.g. built without CONFIG_NET_SCH_FQ_CODEL)
    mbit_s: float = 0.0  # one TCP stream's goodput through it
    packets: int = 0  # tc -s: sent by the qdisc ...
    dropped: int = 0  # ... dropped (queue full)
    overlimits: int = 0  # ... held back by a shaper (tbf: no tokens yet)


def compare_qdiscs(sender: Host, receiver: Host, dst_ip: str, *, seconds: float = 0.5) -> list[QdiscRun]:
    """One TCP stream through each of `QDISCS` on `sender`'s eth0; the link gets ``noqueue`` back at the end."""
    runs = []
    try:
        for name, spec in QDISCS.items():
            try:
                set_root_qdisc(sender, spec)
            except CommandFailed as exc:
                if "unknown" not in str(exc):
                    raise
                runs.append(QdiscRun(name, False))
                continue
            rate = bulk_transfer(sender, receiver, dst_ip, seconds=seconds)
            m = _SENT.search(qdisc_stats(sender))
            packets, dropped, overlimits = (int(m.group(i)) for i in (2, 3, 4)) if m else (0, 0, 0)
            runs.append(QdiscRun(name, True, rate, packets, dropped, overlimits))
    finally:
        sender.run(["tc", "qdisc", "del", "dev", "eth0", "root"])  # back to veth's default, noqueue
    return runs


def qdisc_table(runs: Sequence[QdiscRun]) -> str:
    rows = [
        [r.name, round(r.mbit_s, 1), r.packets, r.dropped, r.overlimits]
        if r.available
        else [r.name, "not in this kernel", "", "", ""]
        for r in runs
    ]
    return format_table(["root qdisc", "Mbit/s", "packets", "dropped", "overlimits"], rows)


def qdisc_stats(host: Host, dev: str = "eth0") -> str:
    """``tc -s qdisc show``: bytes and packets sent, drops, overlimits (tbf held a packet back), backlog."""
    return host.run(["tc", "-s", "qdisc", "show", "dev", dev]).stdout.strip()


def bulk_transfer(sender: Host, receiver: Host, dst_ip: str, *, seconds: float = 1.0) -> float:
    """Send as fast as one TCP stream can for `seconds`; return the receiver's goodput in Mbit/s."""
    with netns.entered(receiver.namespace):
        server = socket.create_server((dst_ip, PORT))
    server.settimeout(5)
    received = [0]
    window = [0.0, 0.0]

    def sink() -> None:
        conn, _ = server.accept()
        with conn:
            window[0] = time.monotonic()
            while chunk := conn.recv(1 << 16):
                received[0] += len(chunk)
            window[1] = time.monotonic()

    thread = threading.Thread(target=sink, daemon=True)
    thread.start()
    try:
        with netns.entered(sender.namespace):
            client = socket.create_connection((dst_ip, PORT), timeout=5)
        block = b"\0" * (1 << 16)
        with client:
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                client.sendall(block)
        thread.join(timeout=10)
    finally:
        server.close()
    elapsed = max(window[1] - window[0], 1e-6)
    return received[0] * 8 / elapsed / 1e6


@dataclass(frozen=True)
class LoadedRtt:
    idle_ms: float  # median ping RTT with nothing else queued
    loaded_ms: float  # median ping RTT while one TCP stream fills the queue
    mbit_s: float  # the stream's goodput meanwhile


def rtt_under_load(sender: Host, receiver: Host, dst_ip: str, *, seconds: float = 2.0, pings: int = 10) -> LoadedRtt:
    """Ping `dst_ip` idle, then while a bulk TCP stream runs through the same qdisc."""
    idle = _median_rtt(sender, dst_ip, pings)
    result: list[float] = []
    stream = threading.Thread(
        target=lambda: result.append(bulk_transfer(sender, receiver, dst_ip, seconds=seconds)), daemon=True
    )
    stream.start()
    time.sleep(min(0.5, seconds / 4))  # let the stream fill the queue first
    loaded = _median_rtt(sender, dst_ip, pings)
    stream.join(timeout=seconds + 10)
    return LoadedRtt(idle, loaded, result[0] if result else 0.0)


def _median_rtt(sender: Host, dst_ip: str, count: int) -> float:
    out = sender.run(["ping", "-n", "-c", str(count), "-i", "0.05", "-W", "2", dst_ip]).stdout
    rtts = sorted(float(x) for x in _RTT.findall(out))
    return rtts[len(rtts) // 2] if rtts else float("nan")
