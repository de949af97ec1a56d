"""Compile NetworkPolicy into the enforcer's map entries (bpf/10-netpol.c).

The datapath knows no labels: like every real implementation (Calico's
ipsets, Cilium's identities), selectors are resolved *here*, in the control
plane, into addresses. For every pod and direction in which it is isolated the
compiler produces longest-prefix-match entries::

    (direction, pod IP, peer prefix)  ->  port set

and the program looks up (direction, pod IP, peer address) in an LPM trie.
Because LPM returns only the *longest* matching prefix, each entry must
already hold the union of every rule that covers that prefix — so the
compiler collects all boundary prefixes (ipBlock cidrs, their excepts, every
pod /32, the node's addresses) and computes that union per prefix. A hole
punched by ``except`` is simply a longer prefix whose union lacks that rule.

A port set is either "anything" (a rule without ports) or up to MAX_RANGES
(protocol, first port, last port) ranges; named ports are resolved against the
destination pod (for ingress, the selected pod; for egress, each peer pod).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from packetlab.errors import PacketlabError
from packetlab.show.tables import WORDS, format_table
from packetlab.tools.netpol.model import PROTO_NUMBERS, Cluster, NetworkPolicy, Peer, PodInfo, Rule

MAX_RANGES = 16  # struct portset in bpf/10-netpol.c
DIR_INGRESS, DIR_EGRESS = 0, 1
DIRECTIONS = {"ingress": DIR_INGRESS, "egress": DIR_EGRESS}
ALL_V4 = ipaddress.IPv4Network("0.0.0.0/0")

Net = ipaddress.IPv4Network
Region = tuple[Net, tuple[Net, ...]] | set[str]  # an ipBlock (cidr, excepts), or the pod IPs selectors match


@dataclass(frozen=True)
class PortSet:
    """What an LPM entry allows: anything, or (protocol number, lo, hi) ranges."""

    any: bool = False
    ranges: frozenset[tuple[int, int, int]] = frozenset()

    def union(self, other: PortSet) -> PortSet:
        if self.any or other.any:
            return PortSet(any=True)
        return PortSet(False, self.ranges | other.ranges)

    def normalized(self) -> PortSet:
        """Merge overlapping/adjacent ranges per protocol (fewer slots in the map value)."""
        if self.any:
            return self
        merged: list[tuple[int, int, int]] = []
        for proto, lo, hi in sorted(self.ranges):
            if merged and merged[-1][0] == proto and lo <= merged[-1][2] + 1:
                merged[-1] = (proto, merged[-1][1], max(hi, merged[-1][2]))
            else:
                merged.append((proto, lo, hi))
        return PortSet(False, frozenset(merged))

    def allows(self, proto: int, port: int) -> bool:
        return self.any or any(p == proto and lo <= port <= hi for p, lo, hi in self.ranges)

    @property
    def empty(self) -> bool:
        return not self.any and not self.ranges

    def __str__(self) -> str:
        if self.any:
            return "any"
        if not self.ranges:
            return "deny"
        names = {v: k for k, v in PROTO_NUMBERS.items()}
        return ", ".join(
            f"{names.get(p, p)}/{lo}" + (f"-{hi}" if hi != lo else "") for p, lo, hi in sorted(self.ranges)
        )


ANY = PortSet(any=True)
NOTHING = PortSet()


@dataclass
class Section:
    """All entries for one (pod, direction) in which the pod is isolated."""

    pod: PodInfo
    direction: str
    entries: dict[Net, PortSet] = field(default_factory=dict)


@dataclass
class Compiled:
    """The whole desired datapath state (before it is written to the maps)."""

    pods: dict[str, tuple[bool, bool]]  # pod IP -> (ingress isolated, egress isolated)
    sections: list[Section]

    def entry_count(self) -> int:
        return sum(len(s.entries) for s in self.sections)

    def lookup(self, direction: str, pod_ip: str, peer_ip: str) -> PortSet | None:
        """What the LPM trie would return (a Python model of the kernel lookup, for tests)."""
        addr = ipaddress.ip_address(peer_ip)
        for s in self.sections:
            if s.direction == direction and s.pod.ip == pod_ip:
                best = [(n.prefixlen, ps) for n, ps in s.entries.items() if addr in n]
                return max(best, key=lambda t: t[0])[1] if best else None
        return None

    def allows(self, src_ip: str, dst_ip: str, port: int, proto: int) -> bool:
        """What the two programs decide for the first packet of src -> dst (tests use this
        to prove compile + lookup == the evaluator, without a kernel)."""
        for ip, direction, peer in ((src_ip, "egress", dst_ip), (dst_ip, "ingress", src_ip)):
            iso = self.pods.get(ip)
            if iso and iso[0 if direction == "ingress" else 1]:
                ps = self.lookup(direction, ip, peer)
                if ps is None or not ps.allows(proto, port):
                    return False
        return True

    def table(self) -> str:
        """A text dump in the shape of the map (for the notebook)."""
        rows = [
            (s.pod.ip, s.direction, net, ps)
            for s in self.sections
            for net, ps in sorted(s.entries.items(), key=lambda kv: (kv[0].prefixlen, kv[0]))
        ]
        return format_table(["pod", "dir", "peer prefix", "allows"], rows, align=WORDS)


class Compiler:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    # ---- what a rule contributes to one prefix ------------------------------------------------------
    def _rule_ports(self, rule: Rule, dst: PodInfo | None) -> PortSet:
        """Ports of `rule` toward destination `dst` (None: a non-pod address)."""
        if not rule.ports:
            return ANY
        ranges = set()
        for pp in rule.ports:
            proto = PROTO_NUMBERS[pp.protocol]
            if pp.port is None:
                ranges.add((proto, 0, 65535))
            elif isinstance(pp.port, str):
                num = dst.named_port(pp.port, pp.protocol) if dst is not None else None
                if num is not None:
                    ranges.add((proto, num, num))
            else:
                ranges.add((proto, pp.port, pp.end_port or pp.port))
        return PortSet(False, frozenset(ranges))

    def _peer_region(self, peer: Peer, policy: NetworkPolicy) -> Region:
        """An ipBlock region (cidr, excepts), or the set of pod IPs the selectors match."""
        if peer.ip_block is not None:
            cidr = peer.ip_block.cidr
            if not isinstance(cidr, Net):
                return set()  # the datapath here is IPv4-only
            return cidr, tuple(e for e in peer.ip_block.excepts if isinstance(e, Net))  # (all are: same version)
        from packetlab.tools.netpol.evaluator import Endpoint, Evaluator

        ev = Evaluator(self.cluster)
        return {p.ip for p in self.cluster.pods if p.ip and ev.peer_matches(peer, policy, Endpoint(p.ip, p))}

    @staticmethod
    def _covers(region: Region, prefix: Net) -> bool:
        if isinstance(region, set):
            return prefix.prefixlen == 32 and str(prefix.network_address) in region
        cidr, excepts = region
        return prefix.subnet_of(cidr) and not any(prefix.subnet_of(e) for e in excepts)

    # ---- one (pod, direction) section ---------------------------------------------------------------
    def section(self, pod: PodInfo, direction: str, policies: Sequence[NetworkPolicy]) -> Section:
        pods_by_ip = {p.ip: p for p in self.cluster.pods if p.ip}
        contributions: list[tuple[Region, Rule, PodInfo | None]] = []  # (region, rule, fixed dst or None)
        boundaries: set[Net] = {Net(f"{ip}/32") for ip in pods_by_ip if ":" not in ip}
        for policy in policies:
            for rule in policy.ingress if direction == "ingress" else policy.egress:
                regions: list[Region] = (
                    [self._peer_region(p, policy) for p in rule.peers] if rule.peers else [(ALL_V4, ())]
                )
                for region in regions:
                    contributions.append((region, rule, pod if direction == "ingress" else None))
                    if not isinstance(region, set):
                        boundaries.add(region[0])
                        boundaries.update(region[1])
        for ip in self.cluster.node_ips:
            if ":" not in ip:
                boundaries.add(Net(f"{ip}/32"))
        values: dict[Net, PortSet] = {}
        for prefix in boundaries:
            value = NOTHING
            dst_here = pods_by_ip.get(str(prefix.network_address)) if prefix.prefixlen == 32 else None
            for region, rule, fixed_dst in contributions:
                if self._covers(region, prefix):
                    value = value.union(self._rule_ports(rule, fixed_dst if direction == "ingress" else dst_here))
            if prefix.prefixlen == 32 and str(prefix.network_address) in self.cluster.node_ips:
                value = ANY  # the node's own traffic is always allowed
            values[prefix] = value.normalized()
        return Section(pod, direction, self._prune(values))

    @staticmethod
    def _prune(values: dict[Net, PortSet]) -> dict[Net, PortSet]:
        """Drop entries that say the same as their closest enclosing entry (or deny with none)."""
        kept: dict[Net, PortSet] = {}
        for prefix in sorted(values, key=lambda n: n.prefixlen):
            parents = [n for n in kept if prefix != n and prefix.subnet_of(n)]
            parent_value = kept[max(parents, key=lambda n: n.prefixlen)] if parents else NOTHING
            if values[prefix] != parent_value:
                kept[prefix] = values[prefix]
        for ps in kept.values():
            if not ps.any and len(ps.ranges) > MAX_RANGES:
                raise PacketlabError(
                    f"a policy entry needs {len(ps.ranges)} port ranges",
                    cause=f"the map value holds at most {MAX_RANGES} (struct portset in bpf/10-netpol.c)",
                    fix="use endPort ranges instead of many single ports",
                )
        return kept

    def compile(self, pods: Sequence[PodInfo] | None = None) -> Compiled:
        """Entries for `pods` (default: every pod with an IP) under the cluster's policies."""
        targets = [p for p in (pods if pods is not None else self.cluster.pods) if p.ip]
        isolation: dict[str, tuple[bool, bool]] = {}
        sections = []
        for pod in targets:
            flags = []
            for direction in ("ingress", "egress"):
                pols = [
                    p
                    for p in self.cluster.policies
                    if ("Ingress" if direction == "ingress" else "Egress") in p.policy_types and p.selects(pod)
                ]
                flags.append(bool(pols))
                if pols:
                    sections.append(self.section(pod, direction, pols))
            isolation[pod.address] = (flags[0], flags[1])
        return Compiled(isolation, sections)
