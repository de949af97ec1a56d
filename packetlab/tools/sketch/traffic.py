"""Reproducible workloads for the sketch: Zipf-distributed flows, a spike of small flows, a pcap.

No trace can be downloaded here, so the workloads are generated (seeded:
the same arguments give the same stream) and `from_pcap` reads any capture
(e.g. a CAIDA trace of your own) into the same shape. A workload is a list
of flows and their packet counts; `runs` interleaves them into (flow, count)
runs — the unit BPF_PROG_TEST_RUN's ``repeat`` feeds to the program — and
`frame` builds the bytes of one packet of a flow.
"""

from __future__ import annotations

import ipaddress
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from packetlab.errors import PacketlabError
from packetlab.tools.sketch.layout import Flow

PCAP_DIR = Path(__file__).resolve().parent / "pcaps"  # real protocol captures shipped with the tool
ETH_HEADER = bytes.fromhex("020000000b02020000000b01") + b"\x08\x00"
ETH6_HEADER = bytes.fromhex("020000000b02020000000b01") + b"\x86\xdd"


@dataclass
class Workload:
    """Flows and how many packets each sends; `name` says how it was made."""

    name: str
    flows: list[Flow]
    counts: np.ndarray

    @property
    def packets(self) -> int:
        return int(self.counts.sum())

    def truth(self) -> dict[Flow, int]:
        return {f: int(c) for f, c in zip(self.flows, self.counts, strict=True)}

    def heavy_hitters(self, phi: float) -> set[Flow]:
        """Flows with at least phi of all packets."""
        threshold = phi * self.packets
        return {f for f, c in zip(self.flows, self.counts, strict=True) if c >= threshold}

    def runs(self, rounds: int = 4, seed: int = 0) -> Iterator[tuple[Flow, int]]:
        """Every packet, as (flow, count) runs: each flow's packets split over `rounds` shuffled rounds."""
        rng = np.random.default_rng(seed)
        for r in range(rounds):
            share = self.counts // rounds + ((self.counts % rounds) if r == rounds - 1 else 0)
            for i in rng.permutation(len(self.flows)):
                if share[i]:
                    yield self.flows[i], int(share[i])


def flow_number(i: int, *, proto: int = 17, base: str = "10.11.0.0", dst: str = "10.11.255.254") -> Flow:
    """The i-th synthetic flow: sources count up from `base`, ports vary, all to one destination."""
    src = ipaddress.IPv4Address(int(ipaddress.IPv4Address(base)) + 1 + i // 64)
    return Flow(4, proto, str(src), dst, 1024 + (i * 7919) % 60000, 53 if i % 3 == 0 else 443)


def zipf(flows: int, packets: int, skew: float, *, seed: int = 1) -> Workload:
    """`packets` packets over `flows` flows, flow rank r getting a share proportional to 1 / r**skew."""
    if flows < 1 or packets < flows:
        raise PacketlabError(f"zipf: {flows} flows and {packets} packets", fix="give every flow a packet at least")
    ranks = np.arange(1, flows + 1, dtype=np.float64)
    weights = ranks**-skew
    rng = np.random.default_rng(seed)
    extra = rng.multinomial(packets - flows, weights / weights.sum())
    counts = (extra + 1).astype(np.int64)  # every flow sends at least one packet
    order = rng.permutation(flows)  # which synthetic flow gets which rank
    return Workload(f"zipf s={skew:g}, {flows} flows", [flow_number(int(i)) for i in order], counts)


def spike(base: Workload, small_flows: int, *, packets_each: int = 1) -> Workload:
    """`base` plus a sudden burst of many small flows (a scan, a SYN flood of new 5-tuples)."""
    extra = [flow_number(len(base.flows) + i, proto=6, base="10.12.0.0") for i in range(small_flows)]
    counts = np.concatenate([base.counts, np.full(small_flows, packets_each, dtype=np.int64)])
    return Workload(f"{base.name} + spike of {small_flows} flows", base.flows + extra, counts)


def frame(flow: Flow, size: int = 64) -> bytes:
    """One Ethernet frame of `flow` (IPv4 or IPv6; UDP, TCP or a bare L4 protocol), padded to `size`."""
    if flow.proto == 6:
        l4 = struct.pack("!HHIIBBHHH", flow.sport, flow.dport, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    elif flow.proto == 17:
        l4 = struct.pack("!HHHH", flow.sport, flow.dport, 8, 0)
    else:
        l4 = b"\x08\x00\x00\x00\x00\x00\x00\x00"
    src, dst = ipaddress.ip_address(flow.src).packed, ipaddress.ip_address(flow.dst).packed
    if flow.family == 4:
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(l4), 0, 0, 64, flow.proto, 0, src, dst)
        data = ETH_HEADER + ip + l4
    else:
        ip = struct.pack("!IHBB16s16s", 6 << 28, len(l4), flow.proto, 64, src, dst)
        data = ETH6_HEADER + ip + l4
    return data.ljust(size, b"\0")


def flow_of_packet(pkt) -> Flow | None:  # noqa: ANN001 (a scapy packet)
    """The 5-tuple the XDP program would count a scapy packet under (None: not IP)."""
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.inet6 import IPv6

    if IP in pkt:
        ip, fam, proto = pkt[IP], 4, pkt[IP].proto
        later_fragment = bool(ip.frag)
    elif IPv6 in pkt:
        ip, fam, proto = pkt[IPv6], 6, pkt[IPv6].nh
        later_fragment = False
    else:
        return None
    sport = dport = 0
    if not later_fragment:
        for layer in (TCP, UDP):
            if layer in pkt:
                sport, dport, proto = pkt[layer].sport, pkt[layer].dport, 6 if layer is TCP else 17
    return Flow(fam, proto, ip.src, ip.dst, sport, dport)


def from_pcap(path: str | Path, *, limit: int | None = None) -> Workload:
    """A workload from a capture: each packet's 5-tuple counted (non-IP packets are skipped)."""
    import scapy.layers.inet  # noqa: F401  (Ether, IP, IPv6 known before the reader picks its link layer)
    import scapy.layers.inet6  # noqa: F401
    from scapy.utils import PcapReader

    if not Path(path).is_file():
        raise PacketlabError(f"no capture at {path}", fix="give the path of a .pcap or .pcapng file")
    counts: Counter[Flow] = Counter()
    with PcapReader(str(path)) as reader:
        for n, pkt in enumerate(reader):
            if limit is not None and n >= limit:
                break
            flow = flow_of_packet(pkt)
            if flow is not None:
                counts[flow] += 1
    if not counts:
        raise PacketlabError(f"{path}: no IPv4/IPv6 packets", fix="capture on an interface that carries IP traffic")
    flows = sorted(counts, key=lambda f: (-counts[f], f))
    return Workload(f"pcap {Path(path).name}", flows, np.array([counts[f] for f in flows], dtype=np.int64))
