"""Load bpf/10-netpol.c once per node, attach it to every pod's host veth, and
write compiled policy into its maps — atomically, generation by generation.

    enforcer = Enforcer(node)                # compile + load (one program, shared maps)
    enforcer.attach(node.pods.values())      # tc ingress (pod egress) + tc egress (pod ingress)
    enforcer.apply(cluster)                  # policies -> map entries -> flip generation

Why generations: a policy change rewrites many LPM entries. Writing them in
place would let a packet see a mix of old and new rules — an allowed
connection could be dropped mid-update. Instead the new state is written
under a fresh generation number, then one array write flips ``config.gen``
(each packet reads it once), then the old generation is deleted.
"""

from __future__ import annotations

import contextlib
import ctypes
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from packetlab.ebpf.loader import TC_PARENTS, LoadedProgram
from packetlab.ebpf.maps import percpu_sum, synchronize_rcu
from packetlab.errors import PacketlabError
from packetlab.tools.netpol.compiler import DIRECTIONS, MAX_RANGES, Compiled, Compiler
from packetlab.tools.netpol.model import Cluster

if TYPE_CHECKING:
    from packetlab.tools.cni.cluster import Node, Pod

PROGRAM = "bpf/10-netpol.c"
CFG_CHECK_SOURCE = 1
STAT_NAMES = {
    0: "egress allowed",
    1: "egress denied",
    2: "ingress allowed",
    3: "ingress denied",
    4: "replies",
    5: "spoofed source",
    6: "IPv6 dropped",
}
PRIORITY = 10  # tc filter priority of the policy programs


# ---- the map layouts, mirrored from bpf/10-netpol.c (checked against bcc's sizes at load) ----------
# Alike in places to the load balancer's (packetlab/tools/lb/layout.py), and kept apart on purpose: each
# mirrors its own C program, which changes alone, and a tool never imports another tool.
class Cfg(ctypes.Structure):
    _fields_ = [("gen", ctypes.c_uint32), ("flags", ctypes.c_uint32)]


class PodKey(ctypes.Structure):
    _fields_ = [("gen", ctypes.c_uint32), ("ifindex", ctypes.c_uint32)]


class PodInfoC(ctypes.Structure):
    _fields_ = [
        ("ip", ctypes.c_uint32),
        ("isolated_ingress", ctypes.c_uint8),
        ("isolated_egress", ctypes.c_uint8),
        ("pad", ctypes.c_uint16),
    ]


class RuleKey(ctypes.Structure):
    _fields_ = [
        ("prefixlen", ctypes.c_uint32),
        ("gen", ctypes.c_uint32),
        ("dir", ctypes.c_uint32),
        ("pod_ip", ctypes.c_uint32),
        ("peer_ip", ctypes.c_uint32),
    ]


class PortRange(ctypes.Structure):
    _fields_ = [("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8), ("lo", ctypes.c_uint16), ("hi", ctypes.c_uint16)]


class PortSetC(ctypes.Structure):
    _fields_ = [("any", ctypes.c_uint8), ("n", ctypes.c_uint8), ("pad", ctypes.c_uint16), ("r", PortRange * MAX_RANGES)]


class FlowKey(ctypes.Structure):
    _fields_ = [
        ("src", ctypes.c_uint32),
        ("dst", ctypes.c_uint32),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("side", ctypes.c_uint8),
        ("pad", ctypes.c_uint16),
    ]


class SvcKey(ctypes.Structure):
    _fields_ = [("vip", ctypes.c_uint32), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("pad", ctypes.c_uint8)]


class SvcBackend(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint32), ("port", ctypes.c_uint16), ("pad", ctypes.c_uint16)]


MAX_SVC_BACKENDS = 16


class SvcVal(ctypes.Structure):
    _fields_ = [("n", ctypes.c_uint32), ("b", SvcBackend * MAX_SVC_BACKENDS)]


LAYOUTS = {
    "config": (None, Cfg),
    "pods": (PodKey, PodInfoC),
    "rules": (RuleKey, PortSetC),
    "conntrack": (FlowKey, None),
    "denied": (FlowKey, None),
    "services": (SvcKey, SvcVal),
}


def check_layouts(program: LoadedProgram) -> None:
    """One struct layout per map, shared by C and Python: refuse to run if they disagree."""
    for name, (key, leaf) in LAYOUTS.items():
        table = program[name]
        for what, mine, theirs in (("key", key, table.Key), ("value", leaf, table.Leaf)):
            if mine is not None and ctypes.sizeof(mine) != ctypes.sizeof(theirs):
                raise PacketlabError(
                    f"map {name}: the Python {what} layout does not match bpf/10-netpol.c",
                    cause=f"{mine.__name__} is {ctypes.sizeof(mine)} bytes, the map's {what} is "
                    f"{ctypes.sizeof(theirs)} bytes",
                    fix="keep the ctypes structs in packetlab/tools/netpol/enforcer.py in step with the C structs",
                )


def ip_be(ip: str) -> int:
    """An IPv4 address as the u32 the kernel stores (network byte order in memory)."""
    return struct.unpack("=I", socket.inet_aton(ip))[0]


def ip_str(value: int) -> str:
    return socket.inet_ntoa(struct.pack("=I", value))


def port_be(port: int) -> int:
    return socket.htons(port)


def portset_value(ps: Any) -> PortSetC:
    value = PortSetC()
    value.any = 1 if ps.any else 0
    ranges = sorted(ps.ranges)
    value.n = len(ranges)
    for i, (proto, lo, hi) in enumerate(ranges):
        value.r[i] = PortRange(proto, 0, lo, hi)
    return value


class PolicyMaps:
    """The policy state in the program's maps, replaced one whole generation at a time."""

    def __init__(self, program: LoadedProgram, *, check_source: bool = True) -> None:
        self.program = program
        self.flags = CFG_CHECK_SOURCE if check_source else 0
        self.gen = 0
        self._written: list[tuple[str, Any]] = []  # (map, key) of the live generation
        self.program["config"][ctypes.c_int(0)] = Cfg(0, self.flags)

    def install(self, compiled: Compiled, ifindex_of: Mapping[str, int]) -> int:
        """Write `compiled` as a new generation (pods keyed by their host veth's ifindex,
        `ifindex_of[pod IP]`), flip config.gen to it, and delete the previous one once no
        program run can still be reading it (an RCU grace period)."""
        gen = self.gen + 1
        pods_map, rules_map = self.program["pods"], self.program["rules"]
        written: list[tuple[str, Any]] = []
        try:
            for ip, (ingress, egress) in compiled.pods.items():
                pod_key = PodKey(gen, ifindex_of[ip])
                pods_map[pod_key] = PodInfoC(ip_be(ip), int(ingress), int(egress), 0)
                written.append(("pods", pod_key))
            for section in compiled.sections:
                for net, ps in section.entries.items():
                    rule_key = RuleKey(
                        96 + net.prefixlen,
                        gen,
                        DIRECTIONS[section.direction],
                        ip_be(section.pod.address),
                        ip_be(str(net.network_address)),
                    )
                    rules_map[rule_key] = portset_value(ps)
                    written.append(("rules", rule_key))
        except BaseException:
            self._delete(written)  # the live generation is untouched
            raise
        self.program["config"][ctypes.c_int(0)] = Cfg(gen, self.flags)  # the atomic switch
        old, self._written, self.gen = self._written, written, gen
        # A packet that read the old generation a moment ago may still be looking up its
        # rules: deleting them under it would deny an allowed flow. Wait until every
        # program run that began before the switch has returned.
        synchronize_rcu()
        self._delete(old)
        return gen

    def _delete(self, entries: list[tuple[str, Any]]) -> None:
        for name, key in entries:
            with contextlib.suppress(KeyError):
                del self.program[name][key]


class Enforcer:
    """The eBPF NetworkPolicy enforcer of one node."""

    def __init__(self, node: Node, *, check_source: bool = True) -> None:
        from bcc import BPF

        self.node = node
        self.program = LoadedProgram(PROGRAM, function="netpol_from_pod", prog_type="sched_cls")
        try:
            self._to_pod = self.program.bpf.load_func(b"netpol_to_pod", BPF.SCHED_CLS)
            check_layouts(self.program)
        except BaseException:
            self.program.close()
            raise
        self.maps = PolicyMaps(self.program, check_source=check_source)
        self.attached: dict[str, tuple[str, int]] = {}  # pod key -> (host veth, ifindex)
        self.compiled: Compiled | None = None
        self.cluster: Cluster | None = None
        self.active = True
        node.lab.track(self)

    # ---- attaching ----------------------------------------------------------------------------------
    def attach(self, pods: Mapping[str, Pod] | Iterable[Pod]) -> None:
        """Put both programs on each pod's host veth (in the node namespace).

        `pods` maps the policy name of each pod ("namespace/name", as in the Cluster)
        to the lab pod; a plain list of pods uses "namespace/name" of the lab pods."""
        from pyroute2.netlink.exceptions import NetlinkError

        from packetlab.topo.rtnl import iproute

        items = pods.items() if isinstance(pods, Mapping) else [(f"{p.namespace}/{p.name}", p) for p in pods]
        with iproute(netns=self.node.host.namespace, flags=0) as ipr:
            for key, pod in items:
                if key in self.attached:
                    continue
                dev = pod.host_veth
                found = ipr.link_lookup(ifname=dev)
                if not found:
                    raise PacketlabError(
                        f"pod {key} has no host veth {dev} on node {self.node.name}",
                        cause="the pod was deleted (CNI DEL) or wired by another plugin",
                        fix="attach only pods of this node that are running",
                    )
                idx = found[0]
                try:
                    with contextlib.suppress(NetlinkError):
                        ipr.tc("add", "clsact", idx)
                    for direction, fd, name in (
                        ("ingress", self.program.fd, "netpol_from_pod"),
                        ("egress", self._to_pod.fd, "netpol_to_pod"),
                    ):
                        ipr.tc(
                            "add-filter",
                            "bpf",
                            idx,
                            ":1",
                            fd=fd,
                            name=name,
                            parent=TC_PARENTS[direction],
                            classid=1,
                            direct_action=True,
                            prio=PRIORITY,
                        )
                except NetlinkError as exc:
                    raise PacketlabError(
                        f"cannot attach the policy programs to {dev}",
                        cause=f"netlink error {exc.code}",
                        fix=f"is another tc filter using priority {PRIORITY} on that device?",
                    ) from exc
                self.attached[key] = (dev, idx)

    # ---- policy updates -------------------------------------------------------------------------------
    def apply(self, cluster: Cluster) -> Compiled:
        """Compile `cluster`'s policies for the attached pods and switch to them atomically."""
        if not self.active:
            raise PacketlabError("the enforcer was detached", fix="create a new Enforcer(node)")
        targets = [p for p in cluster.pods if p.key in self.attached and p.ip]
        compiled = Compiler(cluster).compile(targets)
        self.maps.install(compiled, {p.address: self.attached[p.key][1] for p in targets})
        self.compiled, self.cluster = compiled, cluster
        return compiled

    @property
    def gen(self) -> int:
        return self.maps.gen

    def set_services(self, services: Iterable[tuple[str, int, str, Sequence[tuple[str, int]]]]) -> None:
        """Tell the datapath which ClusterIP:port/protocol front which backend pods, so
        replies translated back to the ClusterIP by the load balancer are recognised.
        `services`: (cluster IP, port, "TCP"/"UDP", [(backend IP, backend port), ...])."""
        table = self.program["services"]
        wanted = {}
        for vip, port, proto, backends in services:
            backends = list(backends)
            if len(backends) > MAX_SVC_BACKENDS:
                raise PacketlabError(
                    f"service {vip}:{port} has {len(backends)} backends",
                    cause=f"the policy datapath remembers at most {MAX_SVC_BACKENDS} per service",
                    fix="raise MAX_SVC_BACKENDS in bpf/10-netpol.c and enforcer.py together",
                )
            value = SvcVal(len(backends))
            for i, (addr, bport) in enumerate(backends):
                value.b[i] = SvcBackend(ip_be(addr), port_be(bport), 0)
            wanted[(vip, port, proto)] = value
        for (vip, port, proto), value in wanted.items():
            table[SvcKey(ip_be(vip), port_be(port), {"TCP": 6, "UDP": 17, "SCTP": 132}[proto.upper()], 0)] = value
        for key in list(table.keys()):
            if (ip_str(key.vip), socket.ntohs(key.port), {6: "TCP", 17: "UDP", 132: "SCTP"}.get(key.proto)) not in {
                (v, p, pr.upper()) for v, p, pr in wanted
            }:
                with contextlib.suppress(KeyError):
                    del table[key]

    # ---- observing ------------------------------------------------------------------------------------
    def stats(self) -> dict[str, dict[str, int]]:
        """{pod key: {"egress allowed": n, ...}} summed over CPUs."""
        by_ifindex = {idx: key for key, (_, idx) in self.attached.items()}
        out: dict[str, dict[str, int]] = {}
        for k, v in self.program["stats"].items():
            pod = by_ifindex.get(k.ifindex, f"ifindex {k.ifindex}")
            total = int(percpu_sum(v))
            out.setdefault(pod, {})[STAT_NAMES.get(k.what, str(k.what))] = total
        return out

    def denied_flows(self) -> list[dict[str, Any]]:
        """The flows dropped by policy (an LRU table: the most recent 4096)."""
        names = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP"}
        out = []
        for k, v in self.program["denied"].items():
            out.append(
                {
                    "src": ip_str(k.src),
                    "dst": ip_str(k.dst),
                    "proto": names.get(k.proto, str(k.proto)),
                    "sport": socket.ntohs(k.sport),
                    "dport": socket.ntohs(k.dport),
                    "direction": "ingress" if k.side == 0 else "egress",
                    "packets": int(v.value),
                }
            )
        return sorted(out, key=lambda f: (f["src"], f["dst"], f["dport"]))

    def connections(self) -> list[dict[str, Any]]:
        """Connection-tracking entries (who opened what, seen by which side)."""
        names = {6: "TCP", 17: "UDP", 132: "SCTP", 1: "ICMP"}
        return [
            {
                "src": ip_str(k.src),
                "dst": ip_str(k.dst),
                "sport": socket.ntohs(k.sport),
                "dport": socket.ntohs(k.dport),
                "proto": names.get(k.proto, str(k.proto)),
                "approved_at": "egress" if k.side == 1 else "ingress",
                "packets": int(v.packets),
            }
            for k, v in self.program["conntrack"].items()
        ]

    def map_entry_count(self) -> dict[str, int]:
        return {name: len(list(self.program[name].keys())) for name in ("pods", "rules", "conntrack")}

    # ---- cleanup ----------------------------------------------------------------------------------------
    def detach(self) -> None:
        """Remove the filters (and the clsact qdiscs we added) and unload. Idempotent."""
        if not self.active:
            return
        self.active = False
        from packetlab.topo.rtnl import iproute

        try:
            with iproute(netns=self.node.host.namespace, flags=0) as ipr:
                for _dev, idx in self.attached.values():
                    with contextlib.suppress(Exception):
                        ipr.tc("del", "clsact", idx)
        except Exception:
            pass  # the node namespace is already gone: nothing is attached any more
        self.attached.clear()
        self.program.close()

    def __repr__(self) -> str:
        return f"<Enforcer on {self.node.name}: {len(self.attached)} pods, generation {self.gen}>"
