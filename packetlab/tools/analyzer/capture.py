"""The inspection tier's live source: an AF_PACKET TPACKET_V3 ring (`packetlab.topo.packet_ring`)
with a socket filter that lets through only what the inspector uses.

The inspector labels a conversation from its first payloads, tracks TCP handshakes and
teardowns, and counts SYNs, UDP packets and DNS names for its detectors. A classic BPF
filter is stateless: it cannot count payloads per flow (that is the XDP tier's per-flow state),
but it can refuse what no detector reads — pure TCP ACKs (no payload, no SYN/FIN/RST), ARP
and other non-IP frames — and its return value cuts every frame it accepts to `INSPECT_SNAPLEN`
bytes, enough for an HTTP request's headers, a DNS message or a TLS ClientHello with its SNI.
Bulk TCP data still reaches the ring, cut short: a user filter (``--filter "tcp port 8443"``)
narrows it further.
"""

from __future__ import annotations

import threading
from collections import deque

from packetlab.errors import PacketlabError
from packetlab.topo.packet_ring import Geometry, PacketRing, RingFrame

INSPECT_FILTER = (
    "udp or icmp or icmp6 or (ip[6:2] & 0x3fff != 0)"  # every UDP/ICMP packet, every IPv4 fragment
    " or (tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)"  # handshakes, teardowns, scan probes
    " or (ip and tcp and ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2) > 0)"  # TCP with payload
    " or (ip6 and tcp)"  # libpcap reads tcp[] of IPv4 only: all IPv6 TCP goes through
)
INSPECT_SNAPLEN = 1024
# 8 blocks of 1 MiB: about 7 500 frames of INSPECT_SNAPLEN (+ 48-byte headers) absorbed while Python
# is busy — some 0.3 s at the inspector's rate; a block is handed over full or after 10 ms.
INSPECT_GEOMETRY = Geometry(block_size=1 << 20, block_nr=8, frame_size=2048, retire_ms=10)


def open_ring(
    namespace: str,
    dev: str,
    *,
    filter: str | None = None,  # noqa: A002 (tcpdump's word)
    snaplen: int = INSPECT_SNAPLEN,
    geometry: Geometry | None = None,
) -> PacketRing:
    """The inspector's ring on `dev` in `namespace`: `filter` (a tcpdump expression) or the default."""
    return PacketRing(
        namespace, dev, filter=filter or INSPECT_FILTER, snaplen=snaplen, geometry=geometry or INSPECT_GEOMETRY
    )


class RingReader:
    """Empties a `PacketRing` on its own thread into a bounded backlog that `take()` hands out.

    Why a thread: TPACKET_V3 hands a block over when it is full *or when its retire timeout expires*,
    however few frames it holds. Under sparse traffic every 10 ms can cost a whole block, so a ring of
    8 blocks nobody reads for 80 ms freezes and drops, with megabytes still free (the lab showed it: 17 of
    64 frames dropped while the notebook waited for curl). The thread gives blocks back as soon as they
    come. When the backlog holds `backlog` frames it stops reading, so the ring fills and the kernel's
    ``tp_drops`` counts what is lost: there is no second, userspace drop counter to add up.
    """

    def __init__(self, ring: PacketRing, *, backlog: int = 20_000) -> None:
        self.ring, self.limit = ring, backlog
        self._frames: deque[RingFrame] = deque()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ring-reader({ring.namespace}:{ring.dev})", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            if len(self._frames) >= self.limit:
                self._stop.wait(0.005)  # back-pressure: the ring fills, the kernel counts
                continue
            try:
                for block in self.ring.blocks(0.05):
                    self._frames.extend(block)
                    self._ready.set()
                    if len(self._frames) >= self.limit or self._stop.is_set():
                        break
            except (PacketlabError, OSError, ValueError):
                if self.ring.closed:  # closed under us (the owner did not stop() first): nothing left to read
                    return
                raise

    def take(self, timeout: float = 0.0) -> list[RingFrame]:
        """The frames read so far, oldest first; waits up to `timeout` s when there are none yet."""
        if not self._frames and timeout > 0:
            self._ready.wait(timeout)
        self._ready.clear()
        return [self._frames.popleft() for _ in range(len(self._frames))]

    def __len__(self) -> int:
        return len(self._frames)

    def stop(self) -> None:
        """Stop the thread and move what is left in the ring to the backlog (the ring stays open)."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        if not self.ring.closed:
            self._frames.extend(self.ring.read())
