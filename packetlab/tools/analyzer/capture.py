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

from packetlab.topo.packet_ring import Geometry, PacketRing

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
