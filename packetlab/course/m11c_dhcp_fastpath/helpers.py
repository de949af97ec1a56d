"""What the module 11c notebook shows and its exercises use: request sequences, verdicts, a broken reply.

Every request here is a frame built with `packetlab.tools.dhcp.wire` and handed to
the gateway's *real* fast path (the pinned program) with BPF_PROG_TEST_RUN — the
same program that answers the subscribers on the wire.
"""

from __future__ import annotations

import ctypes
import struct
from dataclasses import dataclass

from packetlab.course.m11c_dhcp_fastpath.topology import SERVER_IP, DhcpLab
from packetlab.ebpf.fdinfo import fdinfo
from packetlab.ebpf.maps import BpfMap
from packetlab.ebpf.testrun import prog_test_run
from packetlab.show.tables import format_table
from packetlab.tools.dhcp import wire
from packetlab.tools.dhcp.layout import Bucket, Lease, MacKey

STRANGER = "02:00:00:00:5e:01"


@dataclass
class Step:
    label: str
    frame: bytes


def path_of(topo: DhcpLab, frame: bytes) -> str:
    """'fast' if the gateway's XDP program answers `frame` itself (XDP_TX), else 'slow'."""
    fp = topo.fast_path()
    try:
        return "fast" if prog_test_run(fp.prog_fd, frame).verdict == "XDP_TX" else "slow"
    finally:
        fp.close()


def prediction_sequence(topo: DhcpLab) -> list[Step]:
    """Exercise 1's requests, from subscriber s1 (which holds a bound lease) and a stranger."""
    s1 = topo.subs[0]
    mac, ip = s1.mac, leased_ip(topo, 0)
    gw_mac = topo.gw.mac("eth0")
    other = wire_next(ip)
    return [
        Step("s1: DISCOVER", wire.request_frame(mac, wire.DISCOVER, xid=1)),
        Step(
            f"s1: REQUEST {ip} from us (SELECTING)",
            wire.request_frame(mac, wire.REQUEST, xid=1, requested=ip, server_id=SERVER_IP),
        ),
        Step(
            f"s1: REQUEST {other} (INIT-REBOOT, another address)",
            wire.request_frame(mac, wire.REQUEST, xid=2, requested=other),
        ),
        Step(
            f"s1: REQUEST {ip} from server 10.67.0.2",
            wire.request_frame(mac, wire.REQUEST, xid=3, requested=ip, server_id="10.67.0.2"),
        ),
        Step(
            f"s1: renewal of {ip}, unicast to us",
            wire.request_frame(mac, wire.REQUEST, xid=4, ciaddr=ip, dst_ip=SERVER_IP, dst_mac=gw_mac),
        ),
        Step("s1: DISCOVER tagged VLAN 7", wire.request_frame(mac, wire.DISCOVER, xid=5, vlan=7)),
        Step(
            f"s1: RELEASE {ip}",
            wire.request_frame(mac, wire.RELEASE, xid=6, ciaddr=ip, dst_ip=SERVER_IP, dst_mac=gw_mac),
        ),
        Step(f"{STRANGER}: DISCOVER", wire.request_frame(STRANGER, wire.DISCOVER, xid=7)),
    ]


def wire_next(ip: str) -> str:
    import ipaddress

    return str(ipaddress.IPv4Address(ip) + 50)


def leased_ip(topo: DhcpLab, index: int) -> str:
    """The address subscriber `index` holds (from its client's last 'bound' or 'renew' event)."""
    sub = topo.subs[index]
    events = [e for e in sub.events() if e[0] in ("bound", "renew")]
    if not events:
        raise ValueError(f"{sub.host.name} has no lease yet: run topo.lease_once(topo.subs[{index}]) first")
    return events[-1][1]


def verdict_table(topo: DhcpLab, steps: list[Step]) -> str:
    rows = [(s.label, path_of(topo, s.frame)) for s in steps]
    return format_table(["request", "path"], rows)


# ---- exercise 2: a reply whose checksum is wrong ---------------------------------------------
LEASE_OPTION_OFFSET = 14 + 20 + 8 + 240 + 3 + 6 + 2  # option 51's value in the fast path's layout


def broken_reply(topo: DhcpLab, new_lease_time: int = 300) -> tuple[bytes, bytes]:
    """(original, broken): the fast path's ACK for s1, then the same frame with its lease time
    changed to `new_lease_time` and the UDP checksum left as it was."""
    ip = leased_ip(topo, 0)
    request = wire.request_frame(topo.subs[0].mac, wire.REQUEST, xid=0x11C, requested=ip, server_id=SERVER_IP)
    fp = topo.fast_path()
    try:
        original = prog_test_run(fp.prog_fd, request).data
    finally:
        fp.close()
    broken = bytearray(original)
    assert broken[LEASE_OPTION_OFFSET - 2] == 51, "the fast path's option layout changed"
    broken[LEASE_OPTION_OFFSET : LEASE_OPTION_OFFSET + 4] = struct.pack("!I", new_lease_time)
    return original, bytes(broken)


def checksums(frame: bytes) -> dict[str, bool]:
    """Whether the IPv4 header and UDP checksums of `frame` verify (scapy recomputes both)."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    pkt = Ether(frame)
    again = Ether(frame)
    del again[IP].chksum, again[UDP].chksum
    again = Ether(bytes(again))
    return {"ipv4": pkt[IP].chksum == again[IP].chksum, "udp": pkt[UDP].chksum == again[UDP].chksum}


# ---- exercise 3: what maps of a given size cost ----------------------------------------------
def kernel_map_bytes(leases: int, buckets: int) -> int:
    """The memory the kernel charges (fdinfo memlock) for the leases hash and the buckets LRU
    hash at these sizes: created for real, measured, closed."""
    total = 0
    for kind, value, entries in (("hash", Lease, leases), ("lru_hash", Bucket, buckets)):
        m = BpfMap.create(kind, MacKey, value, entries)
        try:
            total += int(fdinfo(m.fd)["memlock"])
        finally:
            m.close()
    return total


def modelled_map_bytes(leases: int, buckets: int) -> int:
    """The two maps' memory by the lesson's model: per entry about 48 bytes of hash-element header plus
    key and value, and 8 bytes per hash bucket (max_entries rounded up to a power of two)."""
    per_entry = 48 + ctypes.sizeof(MacKey)
    return sum(
        n * (per_entry + ctypes.sizeof(value)) + 8 * (1 << max(n - 1, 0).bit_length())
        for value, n in ((Lease, leases), (Bucket, buckets))
    )


def entry_sizes() -> dict[str, int]:
    return {
        "key (struct mac_key)": ctypes.sizeof(MacKey),
        "lease": ctypes.sizeof(Lease),
        "bucket": ctypes.sizeof(Bucket),
    }
