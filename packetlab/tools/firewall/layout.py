"""Map layouts shared with bpf/08-xdp-firewall.c — one definition per struct.

Every struct here mirrors a C struct of the program. `MAPS` gives each map's
key and value layout; the maps are opened as typed views with them
(`packetlab.ebpf.maps.BpfMap`), which compare these sizes with the key/value
sizes the kernel reports and refuse a mismatch, naming both sides (a changed C
struct then fails loudly instead of corrupting rules).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

SOURCE = "bpf/08-xdp-firewall.c"
FUNCTION = "xdp_firewall"

FW_SUMMARY = 4  # summary words per class
WORDS_PER_SUMMARY = 64
MAX_RULE_BITS = FW_SUMMARY * WORDS_PER_SUMMARY * 64  # 16,384 entries per rule set
FW_PORT_NONE = 65536
FW_PORTS = 65537
FW_L4_SIZE = 512
FW_SPECIAL = 8

ACTION_CODES = {"allow": 0, "drop": 1, "rate-limit": 2}
FRAGMENT_CODES = {"l3": 0, "pass": 1, "drop": 2}
SPECIAL_COUNTERS = {0: "default", 1: "not-ip", 2: "malformed", 3: "fragment", 4: "unconfigured"}

ACTIVE = struct.Struct("<II")  # struct fw_active
SLOTCFG = struct.Struct("<BBBBI")  # struct fw_slotcfg
LPM_KEY = struct.Struct("<I20s")  # struct fw_lpm_key
CLASS = struct.Struct(f"<{FW_SUMMARY}Q{FW_SUMMARY}I")  # struct fw_class
RULE = struct.Struct("<B3xIIIQQ")  # struct fw_rule
COUNTER = struct.Struct("<QQQ")  # struct fw_counter
RL_KEY = struct.Struct("<II16s")  # struct fw_rl_key
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")

# map name -> (key layout, value layout) that the C side must agree with
MAPS: dict[str, tuple[struct.Struct, struct.Struct]] = {
    "fw_active": (U32, ACTIVE),
    "fw_slot": (U32, SLOTCFG),
    "fw_addr": (LPM_KEY, U32),
    "fw_port": (U32, U32),
    "fw_l4": (U32, U32),
    "fw_class": (U32, CLASS),
    "fw_pool": (U32, U64),
    "fw_rule": (U32, RULE),
    "fw_stats": (U32, COUNTER),
    "fw_ratelimit": (RL_KEY, U64),
}
MAP_NAMES = tuple(MAPS)


@dataclass(frozen=True)
class Capacity:
    """Per-slot sizes the program was compiled with (its -D flags)."""

    rules: int = 1024
    classes: int = 8192
    pool_words: int = 16384
    prefixes: int = 8192  # both slots together
    rl_entries: int = 16384

    def cflags(self) -> list[str]:
        return [
            f"-DFW_MAX_RULES={self.rules}",
            f"-DFW_MAX_CLASSES={self.classes}",
            f"-DFW_POOL_WORDS={self.pool_words}",
            f"-DFW_MAX_PREFIXES={self.prefixes}",
            f"-DFW_RL_ENTRIES={self.rl_entries}",
        ]

    @property
    def counters(self) -> int:
        return FW_SPECIAL + 2 * self.rules

    @classmethod
    def for_compiled(cls, compiled, *, headroom: int = 2) -> Capacity:
        """A capacity that fits `compiled` with room to grow (powers of two, so
        similar rule sets share one compiled program)."""
        base = cls()
        return cls(
            rules=min(_pow2(max(base.rules, compiled.n_entries * headroom)), MAX_RULE_BITS),
            classes=_pow2(max(base.classes, compiled.n_classes * headroom)),
            pool_words=_pow2(max(base.pool_words, compiled.n_pool_words * headroom)),
            prefixes=_pow2(max(base.prefixes, compiled.n_prefixes * 2 * headroom)),
            rl_entries=base.rl_entries,
        )

    @classmethod
    def from_maps(cls, maps: dict) -> Capacity:
        return cls(
            rules=maps["fw_rule"].info.max_entries // 2,
            classes=maps["fw_class"].info.max_entries // 2,
            pool_words=maps["fw_pool"].info.max_entries // 2,
            prefixes=maps["fw_addr"].info.max_entries,
            rl_entries=maps["fw_ratelimit"].info.max_entries,
        )

    def shortfall(self, compiled) -> list[str]:
        """What of `compiled` does not fit (empty list: it fits)."""
        out = []
        for what, need, have in (
            ("rules (expanded)", compiled.n_entries, self.rules),
            ("classes", compiled.n_classes, self.classes),
            ("bitmap words", compiled.n_pool_words, self.pool_words),
            ("prefixes", compiled.n_prefixes, self.prefixes // 2),
        ):
            if need > have:
                out.append(f"{what}: needs {need:,}, the loaded program holds {have:,}")
        return out


def _pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


def lpm_key(slot: int, dim: int, network) -> tuple[int, bytes]:
    """The fw_addr key (prefix length, data) for a rule prefix in `slot` (dim 0 = src, 1 = dst)."""
    is_v6 = network.version == 6
    tag = (slot << 2) | (dim << 1) | int(is_v6)
    data = bytes([tag]) + network.network_address.packed
    return 8 + network.prefixlen, data.ljust(20, b"\0")


def unpack_lpm_key(key: tuple[int, bytes]) -> tuple[int, int, int, int, bytes]:
    """(slot, dim, version, prefixlen, address bytes) of an fw_addr key."""
    plen, data = key
    tag = data[0]
    v6 = tag & 1
    addr = data[1:17] if v6 else data[1:5]
    return tag >> 2, (tag >> 1) & 1, 6 if v6 else 4, plen - 8, addr
