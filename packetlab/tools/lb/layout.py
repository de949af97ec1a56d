"""The map layouts of bpf/09-lb.c: a ctypes twin of each C struct, and which map holds which.

The load balancer opens every map as a typed view (`packetlab.ebpf.maps.BpfMap`)
with the key and value types of `LB_MAPS`; the view compares their sizes with
the key and value sizes the kernel reports for the map and refuses a mismatch,
naming both — change a struct here and in bpf/09-lb.c together.

Some of these look like the structs in `packetlab.tools.netpol.enforcer` (addresses,
ports and flag bytes in the same C types) and `duplicates` pairs them. They stay apart on purpose:
each mirrors its own C program's ABI, which changes with that program alone, and
a tool never imports another tool.
"""

from __future__ import annotations

import ctypes


# ---- ctypes twins of the structs in bpf/09-lb.c --------------------------------------------
class VipKey(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class Vip(ctypes.Structure):
    _fields_ = [
        ("index", ctypes.c_uint32),
        ("ring_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("addr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8),
    ]


class BackendEntry(ctypes.Structure):
    _fields_ = [
        ("addr", ctypes.c_uint32),
        ("saddr", ctypes.c_uint32),
        ("port", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("ifindex", ctypes.c_uint32),
        ("dmac", ctypes.c_uint8 * 6),
        ("smac", ctypes.c_uint8 * 6),
    ]


class Flow(ctypes.Structure):
    _fields_ = [
        ("src", ctypes.c_uint32),
        ("dst", ctypes.c_uint32),
        ("sport", ctypes.c_uint16),
        ("dport", ctypes.c_uint16),
        ("proto", ctypes.c_uint8),
        ("pad", ctypes.c_uint8 * 3),
    ]


class Conn(ctypes.Structure):
    _fields_ = [
        ("created_ns", ctypes.c_uint64),
        ("last_jiffies", ctypes.c_uint64),
        ("packets", ctypes.c_uint64),
        ("reply_packets", ctypes.c_uint64),
        ("backend", ctypes.c_uint32),
        ("vip_index", ctypes.c_uint32),
        ("ifindex", ctypes.c_uint32),
        ("state", ctypes.c_uint8),
        ("tcp_flags", ctypes.c_uint8),
        ("client_mac", ctypes.c_uint8 * 6),
        ("lb_mac", ctypes.c_uint8 * 6),
        ("pad", ctypes.c_uint16),
    ]


class Counters(ctypes.Structure):
    _fields_ = [
        ("packets", ctypes.c_uint64),
        ("bytes", ctypes.c_uint64),
        ("conns", ctypes.c_uint64),
        ("reply_packets", ctypes.c_uint64),
        ("reply_bytes", ctypes.c_uint64),
    ]


class Settings(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


U32 = ctypes.c_uint32
U64 = ctypes.c_uint64

# map name -> (key type, value type) for bpf/09-lb.c
LB_MAPS: dict[str, tuple[type, type]] = {
    "vips": (VipKey, Vip),
    "vip_meta": (U32, Vip),
    "addr_filter": (U32, U32),
    "vip_addrs": (U32, U32),
    "ring": (U32, U32),
    "backends": (U32, BackendEntry),
    "conns": (Flow, Conn),
    "nat_rev": (Flow, Flow),
    "stats": (U32, Counters),
    "events": (U32, U64),
    "settings": (U32, Settings),
    "tx_ports": (U32, U32),
}


# ---- the #defines and enums of bpf/09-lb.c the control plane needs ------------------------------
MAX_RING = 65537  # LB_MAX_RING: ring entries per VIP row (the largest Maglev table)
MAX_IFINDEX = 1024  # LB_MAX_IFINDEX: size of the tx_ports devmap
VIP_F_DSR, VIP_F_STICKY, VIP_F_ACTIVE = 1, 2, 4
FILTER_VIP_DST, FILTER_BE_SRC = 1, 2
BE_F_ACTIVE, BE_F_UP, BE_F_NEXTHOP, BE_F_REDIRECT = 1, 2, 4, 8
SET_F_REDIRECT = 1
EVENTS = [  # enum lb_event: index in the events map -> name
    "pass_not_ipv4",
    "pass_not_vip",
    "pass_malformed",
    "drop_fragment",
    "drop_no_backend",
    "xmit_kernel",
    "reply_nat",
    "conn_new",
    "conn_reselect",
    "drop_encap",
]


def mac_bytes(mac: str | None) -> bytes:
    """The 6 bytes of a MAC address written "02:00:..." (zeros for None), for the dmac/smac fields."""
    return bytes.fromhex(mac.replace(":", "")) if mac else b"\0" * 6
