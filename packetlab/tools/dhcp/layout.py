"""The map layouts of bpf/11c-dhcp-fastpath.c: a ctypes twin of each C struct, and which map holds which.

`packetlab.ebpf.maps.BpfMap` compares these sizes with the kernel's and refuses a
mismatch, so a struct changed on one side only fails loudly. Addresses are kept
as the C program keeps them, in network byte order (`be32` / `from_be32`).
"""

from __future__ import annotations

import ctypes
import ipaddress
import socket
import struct

SOURCE = "bpf/11c-dhcp-fastpath.c"
FUNCTION = "xdp_dhcp_fastpath"
MAX_DNS = 2
MAX_POOLS = 64  # entries of the pools array
MAX_LEASES = 65536  # entries of the leases hash (see the lesson's sizing exercise)
NS_PER_SEC = 1_000_000_000


class MacKey(ctypes.Structure):
    _fields_ = [("mac", ctypes.c_uint8 * 6), ("vlan", ctypes.c_uint16)]


class Lease(ctypes.Structure):
    _fields_ = [("addr", ctypes.c_uint32), ("pool", ctypes.c_uint32), ("expires_ns", ctypes.c_uint64)]


class Pool(ctypes.Structure):
    _fields_ = [
        ("server_id", ctypes.c_uint32),
        ("mask", ctypes.c_uint32),
        ("router", ctypes.c_uint32),
        ("dns", ctypes.c_uint32 * MAX_DNS),
        ("lease_time", ctypes.c_uint32),
        ("server_mac", ctypes.c_uint8 * 6),
        ("pad", ctypes.c_uint16),
    ]


class Bucket(ctypes.Structure):
    _fields_ = [("last_ns", ctypes.c_uint64), ("tokens", ctypes.c_uint64)]


class Config(ctypes.Structure):
    _fields_ = [
        ("mac_rate", ctypes.c_uint32),
        ("mac_burst", ctypes.c_uint32),
        ("slow_rate", ctypes.c_uint32),
        ("slow_burst", ctypes.c_uint32),
        ("data_rate", ctypes.c_uint32),
        ("data_burst", ctypes.c_uint32),
    ]


U32, U64 = ctypes.c_uint32, ctypes.c_uint64

# map name -> (key type, value type); scratch is the program's own working memory
MAPS: dict[str, tuple[type, type]] = {
    "leases": (MacKey, Lease),
    "pools": (U32, Pool),
    "config": (U32, Config),
    "buckets": (MacKey, Bucket),
    "data_buckets": (MacKey, Bucket),
    "stats": (U32, U64),
}

STATS = [  # enum dh_stat: index in the stats map -> name
    "dhcp",
    "fast_offer",
    "fast_ack",
    "pass_unknown_mac",
    "pass_expired",
    "pass_type",
    "pass_other_addr",
    "pass_relay",
    "pass_malformed",
    "pass_unsupported",
    "drop_mac_rate",
    "drop_slow_rate",
    "pass_resize",
    "data",  # non-DHCP frames looked at by the data rate limit (only while it is on), and their bytes
    "data_bytes",
    "drop_data_rate",  # ... dropped for it, and their bytes
    "drop_data_bytes",
]


def be32(addr: str | ipaddress.IPv4Address | None) -> int:
    """An IPv4 address as the u32 whose memory holds it in network order (0 for None)."""
    if addr is None:
        return 0
    return int(struct.unpack("=I", socket.inet_aton(str(addr)))[0])


def from_be32(value: int) -> str:
    return socket.inet_ntoa(struct.pack("=I", value))


def mac_key(mac: str, vlan: int = 0) -> MacKey:
    key = MacKey()
    key.mac[:] = list(bytes.fromhex(mac.replace(":", "")))
    key.vlan = vlan
    return key


def key_mac(key: MacKey) -> tuple[str, int]:
    return ":".join(f"{b:02x}" for b in key.mac), int(key.vlan)
