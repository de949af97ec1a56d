"""Internet checksums (RFC 1071): compute them, and say whether a header's checksum is right."""

from __future__ import annotations

import struct


def ones_sum(data: bytes) -> int:
    """The ones'-complement sum of `data` as 16-bit big-endian words, carries folded in (odd length: zero-padded)."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def internet_checksum(data: bytes) -> int:
    """RFC 1071: the ones'-complement of the ones'-complement sum of 16-bit big-endian words.

    Over data whose checksum field holds the right value, the result is 0.
    """
    return ~ones_sum(data) & 0xFFFF


def ipv4_header_checksum(header: bytes) -> int:
    """The checksum an IPv4 header should carry (its own checksum field is ignored)."""
    header = bytes(header)
    return internet_checksum(header[:10] + b"\x00\x00" + header[12:])


def pseudo_v4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The IPv4 pseudo-header that TCP, UDP checksums cover: addresses, protocol, length."""
    return src + dst + struct.pack("!BBH", 0, proto, length)


def pseudo_v6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """The IPv6 pseudo-header (RFC 8200 8.1): addresses, upper-layer length, next header."""
    return src + dst + struct.pack("!I3xB", length, proto)


def checksum_note(
    stored: int, data: bytes, field_at: int, pseudo: bytes = b"", *, udp: bool = False, zero_means_none: bool = False
) -> str:
    """Verify a checksum and say so; recognise one left for the NIC (checksum offload)."""
    if zero_means_none and stored == 0:
        return "0: no checksum (allowed for UDP over IPv4)"
    zeroed = data[:field_at] + b"\x00\x00" + data[field_at + 2 :]
    expected = internet_checksum(pseudo + zeroed)
    if udp and expected == 0:
        expected = 0xFFFF  # UDP transmits a computed 0 as 0xFFFF (0 means "none")
    if stored == expected:
        return "✔ checksum correct"
    if pseudo and stored == ones_sum(pseudo):
        # CHECKSUM_PARTIAL: the stack wrote the pseudo-header sum and left the rest to the NIC
        return "offloaded: only the pseudo-header sum (the NIC would finish it; veth never does)"
    return f"✘ wrong checksum: should be 0x{expected:04x}"
