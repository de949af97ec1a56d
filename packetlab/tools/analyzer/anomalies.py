"""Anomaly detectors: port scan, SYN flood, UDP flood, DNS tunnelling — each with a threshold
the user sets and an alert that carries its evidence.

They are heuristics over sliding windows, and each fails in a known way (the lesson
has the list): a scan slower than the window is invisible, a flash crowd looks like
a flood, a CDN's long hashed hostnames look like a tunnel. So every alert says what
was counted, over which window, against which threshold — a reader can judge it —
and normal lab traffic (web, DNS, SSH, ping) must raise none (tested).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

SYN, ACK, RST = 0x02, 0x10, 0x04


@dataclass
class Thresholds:
    """What counts as an attack. Defaults are for a lab, where normal traffic is a few hosts."""

    window: float = 10.0  # seconds every count below looks back over
    scan_ports: int = 20  # distinct destination ports one source probed without an answer
    syn_flood_syns: int = 200  # unanswered SYNs to one destination port (a scan spreads over ports)
    udp_flood_packets: int = 5000  # UDP packets to one destination
    dns_label_length: int = 40  # a query label longer than this is suspicious...
    dns_entropy: float = 3.5  # ...or a long label with this many bits of entropy per character
    dns_suspicious_queries: int = 10  # suspicious queries from one source to one domain


@dataclass
class Alert:
    """One detection: what, who, when, and the evidence a human needs to judge it."""

    kind: str
    source: str
    target: str
    first: float
    last: float
    evidence: dict[str, Any] = field(default_factory=dict)
    threshold: str = ""

    def summary(self) -> str:
        return f"{self.kind}: {self.source} -> {self.target} ({self.threshold})"

    def as_row(self) -> dict:
        return {
            "kind": self.kind,
            "source": self.source,
            "target": self.target,
            "first": round(self.first, 6),
            "last": round(self.last, 6),
            "threshold": self.threshold,
            "evidence": self.evidence,
        }


@dataclass
class Observation:
    """The few fields of one packet the detectors read (built by the inspector)."""

    time: float
    proto: int
    src: str
    dst: str
    sport: int = 0
    dport: int = 0
    tcp_flags: int = 0
    dns_query: str = ""
    dns_response: bool = False


def entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def registered_domain(name: str) -> str:
    """The last two labels ('t.example.com' -> 'example.com'): where a tunnel's server lives."""
    labels = [x for x in name.rstrip(".").split(".") if x]
    return ".".join(labels[-2:]) if labels else ""


def suspicious_dns_name(name: str, t: Thresholds) -> str | None:
    """Why a query name looks like data smuggled in labels (None if it does not)."""
    labels = [x for x in name.split(".") if x]
    sub = labels[:-2]
    for label in sub:
        if len(label) > t.dns_label_length:
            return f"label of {len(label)} characters"
    joined = "".join(sub)
    if len(joined) >= 24 and entropy(joined) >= t.dns_entropy:
        return f"{len(joined)} characters below the domain at {entropy(joined):.2f} bits/char"
    return None


class Detectors:
    """Feed observations in time order; read `alerts`. One alert per (kind, source, target) and
    window: it is updated (last seen, counts) while the attack goes on, not repeated."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.t = thresholds or Thresholds()
        self.alerts: list[Alert] = []
        self._open: dict[tuple[str, str, str], Alert] = {}
        # (src, dst, sport, dport) of SYNs not yet answered, with the time
        self._half_open: dict[tuple[str, str, int, int], float] = {}
        self._probes: dict[str, deque[tuple[float, str, int]]] = defaultdict(deque)
        self._syns: dict[str, deque[tuple[float, str]]] = defaultdict(deque)
        self._udp: dict[str, deque[float]] = defaultdict(deque)
        self._dns: dict[tuple[str, str], deque[tuple[float, str, str]]] = defaultdict(deque)

    def observe(self, o: Observation) -> None:
        if o.proto == 6:
            self._tcp(o)
        elif o.proto == 17:
            self._udp_packet(o)
            if o.dns_query and not o.dns_response:
                self._dns_query(o)

    def observe_all(self, observations: Any) -> list[Alert]:
        for o in observations:
            self.observe(o)
        return self.alerts

    # ---- TCP: scans and SYN floods -------------------------------------------------------------
    def _tcp(self, o: Observation) -> None:
        flags = o.tcp_flags
        if flags & SYN and not flags & ACK:
            if len(self._half_open) > 100_000:  # a flood must not grow memory without bound
                cutoff = o.time - self.t.window
                self._half_open = {k: v for k, v in self._half_open.items() if v >= cutoff}
            self._half_open[(o.src, o.dst, o.sport, o.dport)] = o.time
            self._push(self._syns[f"{o.dst}:{o.dport}"], (o.time, o.src), o.time)
            self._push(self._probes[o.src], (o.time, o.dst, o.dport), o.time)
            self._check_scan(o)
            self._check_syn_flood(o)
        elif (
            flags & ACK
            and not flags & (SYN | RST)
            and self._half_open.pop((o.src, o.dst, o.sport, o.dport), None) is not None
        ):
            # the client's ACK completes a handshake: neither a probe nor a flood SYN
            self._forget(self._probes[o.src], o.dst, o.dport)
            self._forget_syn(self._syns[f"{o.dst}:{o.dport}"], o.src)

    def _check_scan(self, o: Observation) -> None:
        probes = self._probes[o.src]
        ports = {(dst, port) for _, dst, port in probes}
        if len(ports) >= self.t.scan_ports:
            targets = sorted({dst for dst, _ in ports})
            self._raise(
                "port_scan",
                o.src,
                ",".join(targets),
                o.time,
                probes[0][0],
                {"ports": len(ports), "sample": sorted(p for _, p in ports)[:10], "window_s": self.t.window},
                f">= {self.t.scan_ports} ports without a completed handshake in {self.t.window:g} s",
            )

    def _check_syn_flood(self, o: Observation) -> None:
        target = f"{o.dst}:{o.dport}"
        syns = self._syns[target]
        if len(syns) >= self.t.syn_flood_syns:
            sources = Counter(src for _, src in syns)
            self._raise(
                "syn_flood",
                f"{len(sources)} sources" if len(sources) > 1 else next(iter(sources)),
                target,
                o.time,
                syns[0][0],
                {"unanswered_syns": len(syns), "top_sources": sources.most_common(3), "window_s": self.t.window},
                f">= {self.t.syn_flood_syns} SYNs to one port without a completed handshake in {self.t.window:g} s",
            )

    # ---- UDP floods ---------------------------------------------------------------------------
    def _udp_packet(self, o: Observation) -> None:
        q = self._udp[o.dst]
        self._push(q, o.time, o.time)
        if len(q) >= self.t.udp_flood_packets:
            self._raise(
                "udp_flood",
                o.src,
                o.dst,
                o.time,
                q[0],
                {"packets": len(q), "rate_pps": round(len(q) / max(o.time - q[0], 1e-3)), "window_s": self.t.window},
                f">= {self.t.udp_flood_packets} UDP packets to one host in {self.t.window:g} s",
            )

    # ---- DNS tunnelling -------------------------------------------------------------------------
    def _dns_query(self, o: Observation) -> None:
        why = suspicious_dns_name(o.dns_query, self.t)
        if why is None:
            return
        domain = registered_domain(o.dns_query)
        q = self._dns[(o.src, domain)]
        self._push(q, (o.time, o.dns_query, why), o.time)
        if len(q) >= self.t.dns_suspicious_queries:
            self._raise(
                "dns_tunnel",
                o.src,
                domain,
                o.time,
                q[0][0],
                {"queries": len(q), "examples": [(name, reason) for _, name, reason in list(q)[:3]]},
                f">= {self.t.dns_suspicious_queries} long or high-entropy names under one domain "
                f"in {self.t.window:g} s",
            )

    # ---- bookkeeping --------------------------------------------------------------------------
    def _push(self, q: deque, item: Any, now: float) -> None:
        q.append(item)
        while q and now - (q[0][0] if isinstance(q[0], tuple) else q[0]) > self.t.window:
            q.popleft()

    @staticmethod
    def _forget(q: deque, dst: str, port: int) -> None:
        for item in list(q):
            if item[1] == dst and item[2] == port:
                q.remove(item)
                break

    @staticmethod
    def _forget_syn(q: deque, src: str) -> None:
        for item in reversed(q):
            if item[1] == src:
                q.remove(item)
                break

    def _raise(self, kind: str, source: str, target: str, now: float, first: float, evidence: dict, why: str) -> None:
        key = (kind, source if kind in ("port_scan", "dns_tunnel") else "", target)  # a flood's sources vary
        alert = self._open.get(key)
        if alert is not None and now - alert.last <= self.t.window:
            alert.last, alert.evidence = now, evidence
            return
        alert = Alert(kind, source, target, first, now, evidence, why)
        self._open[key] = alert
        self.alerts.append(alert)
