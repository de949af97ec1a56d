"""The userspace tier: decode frames, reassemble fragments, track connections, name the
application by content, map MACs to IPs, count usage over time and feed the anomaly detectors.

It reuses the course's own parts: module 05's decoder (`packetlab.proto.decode`) reads
the bytes, module 03's connection tracker (`packetlab.proto.conntrack`) follows every
IPv4 TCP, UDP and ICMP connection. Python handles some 10^4-10^5 packets per second,
so this tier looks at what the kernel tier samples or a capture filter lets through,
or reads a pcap at its own pace (`feed_pcap`).
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from packetlab.errors import InputError
from packetlab.proto.conntrack.states import FlowTuple, Segment
from packetlab.proto.conntrack.tracker import Tracker
from packetlab.proto.decode import TCP, UDP, IPv4, decode
from packetlab.tools.analyzer.anomalies import Alert, Detectors, Observation, Thresholds
from packetlab.tools.analyzer.apps import AppInfo, detect
from packetlab.tools.analyzer.reassembly import Reassembler
from packetlab.tools.analyzer.records import FlowKey, FlowRecord

INSPECT_PAYLOADS = 4  # TCP payloads per flow handed to the detectors (the banner or request is early)
DLT_EN10MB = 1


@dataclass
class Transaction:
    """One application message seen: an HTTP request, a DNS answer, a TLS ClientHello..."""

    time: float
    key: FlowKey
    info: AppInfo


def conversation(key: FlowKey) -> tuple:
    """Both directions of a flow share one conversation (and one application label)."""
    a, b = (key.src, key.sport), (key.dst, key.dport)
    return (key.proto, *sorted((a, b)))


class Inspector:
    """Feed frames (bytes and a time); read flows, transactions, hosts, usage and alerts."""

    def __init__(self, thresholds: Thresholds | None = None, *, usage_bucket: float = 1.0) -> None:
        self.flows: dict[FlowKey, FlowRecord] = {}
        self.apps: dict[tuple, AppInfo] = {}
        self.transactions: list[Transaction] = []
        self.hosts: dict[str, str] = {}  # IP -> MAC (the source MAC it was last seen with)
        self.usage: Counter[tuple[float, str]] = Counter()  # (bucket start, app or protocol) -> bytes
        self.usage_bucket = usage_bucket
        self.reassembler = Reassembler()
        self.tracker = Tracker()
        self.detectors = Detectors(thresholds)
        self.packets = 0
        self.not_ip = 0
        self._payloads: Counter[FlowKey] = Counter()

    # ---- input ---------------------------------------------------------------------------------
    def feed(self, frame: bytes, now: float) -> None:
        self.packets += 1
        whole = self.reassembler.feed(frame, now)
        if whole is None:
            return  # a fragment, kept until its datagram is complete
        d = decode(whole)
        if d.ip is None:
            self.not_ip += 1
            return
        proto = d.ip.proto if isinstance(d.ip, IPv4) else d.ip.next_header
        sport = dport = flags = 0
        if isinstance(d.l4, TCP | UDP):
            sport, dport = d.l4.sport, d.l4.dport
        if isinstance(d.l4, TCP):
            flags = d.l4.flags & 0xFF
        elif proto in (1, 58) and len(d.payload) >= 2:
            dport = d.payload[0] << 8 | d.payload[1]  # as the kernel tier keys ICMP: type << 8 | code
        key = FlowKey(proto, d.ip.src, d.ip.dst, sport, dport)
        if d.eth is not None:
            self.hosts[d.ip.src] = d.eth.src
        rec = self.flows.get(key)
        if rec is None:
            rec = self.flows[key] = FlowRecord(key, 0, 0, now, now)
        rec.packets += 1
        rec.bytes += len(whole)
        rec.last = now
        rec.tcp_flags |= flags
        rec.ended = rec.ended or bool(flags & 0x05)
        info = self._detect(key, proto, d.payload, now)
        label = self._label(key)
        self.usage[(now - now % self.usage_bucket, label)] += len(whole)
        if isinstance(d.ip, IPv4):
            self._track(d, key, flags, now)
        self.detectors.observe(
            Observation(
                now,
                proto,
                key.src,
                key.dst,
                sport,
                dport,
                flags,
                dns_query=str(info.fields.get("query", "")) if info and info.app == "dns" else "",
                dns_response=bool(info and info.fields.get("qr") == "response"),
            )
        )

    def feed_pcap(self, path: str | os.PathLike) -> Inspector:
        for data, ts in read_pcap(path):
            self.feed(data, ts)
        return self

    # ---- the pieces ---------------------------------------------------------------------------
    def _detect(self, key: FlowKey, proto: int, payload: bytes, now: float) -> AppInfo | None:
        if not payload:
            return None
        if proto == 6:
            self._payloads[key] += 1
            if self._payloads[key] > INSPECT_PAYLOADS:
                return None
        info = detect(payload, proto)
        if info is None:
            return None
        self.transactions.append(Transaction(now, key, info))
        self.apps.setdefault(conversation(key), info)
        return info

    def _label(self, key: FlowKey) -> str:
        info = self.apps.get(conversation(key))
        return info.app if info else key.proto_name

    def _track(self, d, key: FlowKey, flags: int, now: float) -> None:
        if key.proto == 6 and isinstance(d.l4, TCP):
            t = d.l4
            opts = dict(o for o in t.options if isinstance(o, tuple) and len(o) == 2)
            seg = Segment(
                FlowTuple(6, key.src, key.dst, key.sport, key.dport),
                now,
                t.flags & 0xFF,
                t.seq,
                t.ack,
                t.window,
                len(d.payload),
                opts.get("WScale"),
                "SAckOK" in opts,
                t.data_offset > 5,
            )
        elif key.proto == 17:
            seg = Segment(FlowTuple(17, key.src, key.dst, key.sport, key.dport), now)
        elif key.proto == 1 and len(d.payload) >= 8 and d.payload[0] in (0, 8):
            ident = struct.unpack_from("!H", d.payload, 4)[0]
            seg = Segment(FlowTuple(1, key.src, key.dst, ident, d.payload[0]), now)
        else:
            return
        self.tracker.feed(seg)

    # ---- output --------------------------------------------------------------------------------
    def records(self) -> list[FlowRecord]:
        """Every flow, labelled with its conversation's application and tracker state."""
        states = {}
        for conn in self.tracker.connections(now=max((r.last for r in self.flows.values()), default=0) + 1):
            for t in (conn.orig, conn.reply):
                states[(t.src, t.dst, t.sport, t.dport)] = conn.state or ("assured" if conn.assured else "")
        out = []
        for rec in self.flows.values():
            rec.app = self._label(rec.key) if conversation(rec.key) in self.apps else ""
            rec.state = states.get((rec.key.src, rec.key.dst, rec.key.sport, rec.key.dport), rec.state)
            out.append(rec)
        return sorted(out, key=lambda r: (r.first, str(r.key)))

    @property
    def alerts(self) -> list[Alert]:
        return self.detectors.alerts

    def usage_by_label(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for (_bucket, label), n in self.usage.items():
            total[label] += n
        return dict(total.most_common())


def read_pcap(path: str | os.PathLike) -> Iterator[tuple[bytes, float]]:
    """(frame, time) from a pcap or pcapng file of Ethernet frames."""
    from scapy.utils import RawPcapReader

    if not os.path.exists(path):
        raise InputError(f"no such capture file: {path}", fix="record one with tcpdump -w FILE, or check the path")
    try:
        reader = RawPcapReader(str(path))
    except Exception as exc:  # scapy raises Scapy_Exception for anything that is not pcap/pcapng
        raise InputError(f"{path} is not a pcap file", cause=str(exc), fix="write it with tcpdump -w") from None
    with reader:
        linktype = getattr(reader, "linktype", DLT_EN10MB)
        if linktype != DLT_EN10MB:
            raise InputError(
                f"{path} holds link type {linktype}, not Ethernet",
                cause="the analyzer decodes Ethernet frames (link type 1)",
                fix="capture on an interface (tcpdump -i eth0), not on 'any' (Linux cooked capture)",
            )
        for data, meta in reader:
            yield data, _pcap_time(meta)


def _pcap_time(meta) -> float:
    if hasattr(meta, "sec"):
        return meta.sec + meta.usec / 1e6
    tshigh, tslow, tsresol = getattr(meta, "tshigh", 0), getattr(meta, "tslow", 0), getattr(meta, "tsresol", 1000000)
    return ((tshigh << 32) | tslow) / tsresol


def inspect_frames(frames: Iterable[tuple[bytes, float]], thresholds: Thresholds | None = None) -> Inspector:
    ins = Inspector(thresholds)
    for data, ts in frames:
        ins.feed(data, ts)
    return ins
