"""A packet sniffer on an AF_PACKET raw socket, in a lab host's namespace.

``socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))`` is what tcpdump and scapy sit
on: the kernel hands the socket a copy of every frame that crosses the bound
interface, in both directions, starting at the Ethernet header. Two details the
naive version gets wrong, both handled here:

* **VLAN tags are not in the bytes you receive.** On receive the kernel moves
  an 802.1Q tag out of the frame into skb metadata (``skb_vlan_untag``) before
  packet sockets see it. With ``PACKET_AUXDATA`` the tag arrives as ancillary
  data (``struct tpacket_auxdata``) and is put back, as tcpdump and scapy do.
* **The socket buffer is finite.** Frames that arrive while nobody reads are
  dropped by the kernel and counted; ``PACKET_STATISTICS`` reports them, so a
  capture says how many it lost instead of silently missing them.

    with Sniffer(h2, "eth0") as cap:
        h1.ping("10.0.1.2")
    for f in cap.frames: print(f.direction, decode(f.data).summary())
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.errors import PacketlabError
from packetlab.topo import netns
from packetlab.topo.packet_ring import (  # the kernel's AF_PACKET constants, defined once
    ETH_P_ALL,
    PACKET_STATISTICS,
    SOL_PACKET,
    TP_STATUS_VLAN_TPID_VALID,
    TP_STATUS_VLAN_VALID,
    restore_vlan,
)
from packetlab.topo.socket_buffers import grow_receive_buffer

if TYPE_CHECKING:
    from packetlab.topo.host import Host

PACKET_AUXDATA = 8
_AUXDATA = struct.Struct("=IIIHHHH")  # struct tpacket_auxdata
PKTTYPES = {0: "host", 1: "broadcast", 2: "multicast", 3: "otherhost", 4: "outgoing"}


@dataclass(frozen=True)
class Captured:
    """One frame as the raw socket delivered it (VLAN tag restored)."""

    data: bytes
    ifname: str
    pkttype: str  # host / broadcast / multicast / otherhost / outgoing
    timestamp: float  # time.time() when userspace read it (not the kernel's stamp)
    vlan_restored: bool  # the tag came from auxdata and was put back into `data`
    original_length: int  # length on the wire (tp_len); > len(data) if we truncated

    @property
    def direction(self) -> str:
        return "out" if self.pkttype == "outgoing" else "in"


def open_raw_socket(host: Host, dev: str = "eth0", *, rcvbuf: int = 4 << 20, auxdata: bool = True) -> socket.socket:
    """An AF_PACKET/SOCK_RAW socket bound to `dev`, created inside `host`'s namespace.

    `auxdata=False` leaves PACKET_AUXDATA off — then received VLAN tags are lost
    (try it: the lab shows the difference)."""
    with netns.entered(host.namespace):
        try:
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        except PermissionError as exc:
            raise PacketlabError(
                "cannot open an AF_PACKET socket",
                cause=str(exc),
                fix="raw sockets need CAP_NET_RAW: run the lab as root",
            ) from None
        try:
            grow_receive_buffer(sock, rcvbuf)
            sock.setsockopt(SOL_PACKET, PACKET_AUXDATA, int(auxdata))
            sock.bind((dev, ETH_P_ALL))
        except OSError as exc:
            sock.close()
            raise PacketlabError(
                f"cannot bind a raw socket to {dev} in {host.name}",
                cause=str(exc),
                fix=f"check the interface exists there: {host.name}.ip('-br link')",
            ) from None
    return sock


# --8<-- [start:receive]
def receive(sock: socket.socket, bufsize: int = 65536 + 4) -> Captured:
    """Read one frame with recvmsg and restore its VLAN tag from the auxdata, if any."""
    data, ancdata, _flags, addr = sock.recvmsg(bufsize, socket.CMSG_SPACE(_AUXDATA.size))
    restored, wire_len = False, len(data)
    for level, ctype, cdata in ancdata:
        if level == SOL_PACKET and ctype == PACKET_AUXDATA and len(cdata) >= _AUXDATA.size:
            status, tp_len, _snap, _mac, _net, tci, tpid = _AUXDATA.unpack_from(cdata)
            wire_len = tp_len
            if status & TP_STATUS_VLAN_VALID:  # a tag of 0 is valid too: the flag says so
                tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
                data, restored = restore_vlan(data, tci, tpid), True
                wire_len += 4
    return Captured(data, addr[0], PKTTYPES.get(addr[2], str(addr[2])), time.time(), restored, wire_len)


# --8<-- [end:receive]


class Sniffer:
    """Capture frames on `dev` of `host` in a background thread while a block runs.

    The socket is bound before the block starts, so no frame sent inside the
    block is missed; the thread polls every 50 ms and stops when the block ends.
    ``stats`` holds the kernel's own counters (frames seen, frames dropped).
    """

    def __init__(
        self, host: Host, dev: str = "eth0", *, limit: int | None = None, outgoing: bool = True, auxdata: bool = True
    ) -> None:
        self.host, self.dev, self.limit, self.outgoing, self.auxdata = host, dev, limit, outgoing, auxdata
        self.frames: list[Captured] = []
        self.stats: dict[str, int] = {}
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def start(self) -> Sniffer:
        self._sock = open_raw_socket(self.host, self.dev, auxdata=self.auxdata)
        self._sock.settimeout(0.05)
        self._thread = threading.Thread(target=self._run, name=f"sniffer-{self.host.name}-{self.dev}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        assert self._sock is not None
        try:
            while not self._stop.is_set():
                try:
                    frame = receive(self._sock)
                except TimeoutError:
                    continue
                if frame.pkttype == "outgoing" and not self.outgoing:
                    continue
                self.frames.append(frame)
                if self.limit is not None and len(self.frames) >= self.limit:
                    return
        except OSError as exc:  # the socket was closed under us: stop quietly
            if not self._stop.is_set():
                self._error = exc

    def wait(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until at least `count` frames were captured (True) or `timeout` passed."""
        deadline = time.monotonic() + timeout
        while len(self.frames) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return len(self.frames) >= count

    def stop(self, settle: float = 0.05) -> list[Captured]:
        """Stop the thread, read the kernel's counters, close the socket."""
        if self._sock is None:
            return self.frames
        time.sleep(settle)  # frames still in flight on the veth
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        packets, drops = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self.stats = {"kernel_packets": packets, "kernel_drops": drops, "captured": len(self.frames)}
        self._sock.close()
        self._sock = None
        if self._error is not None:
            raise PacketlabError(
                "the sniffer stopped early", cause=str(self._error), fix="was the interface deleted while capturing?"
            )
        return self.frames

    def __enter__(self) -> Sniffer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
