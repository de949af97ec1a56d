"""The rows a dissection is made of: `Field` (one header field) and `Dissection` (one frame's rows)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from packetlab.proto.dissect.formatting import format_fields


@dataclass(frozen=True)
class Field:
    """One header field: where it is in the frame, its bytes, and what they mean.

    Iterating a Field yields ``(offset, length, name, raw, value)``, so a
    dissection unpacks like a list of 5-tuples. Fields narrower than a byte
    (IPv4's version and IHL, TCP's flags) share their bytes with neighbours;
    `bits` says which bits of those bytes are theirs.
    """

    offset: int  # first byte, counted from the start of the frame
    length: int  # number of bytes the field touches
    name: str  # "<layer>.<field>", e.g. "IPv4.ttl"
    raw: str  # those bytes in hex, e.g. "40"
    value: Any  # decoded: 64, "10.0.1.1", "66:b5:07:b8:49:85", ...
    bits: tuple[int, int] | None = None  # (first bit, width) inside the bytes, for sub-byte fields
    note: str = ""  # what the value means: "ICMP", "✔ checksum correct", ...
    scapy: tuple[str, str, int] | None = None  # (scapy layer, field, occurrence) for cross-checks

    def __iter__(self) -> Iterator[Any]:
        return iter((self.offset, self.length, self.name, self.raw, self.value))

    @property
    def layer(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def bytes(self) -> bytes:
        return bytes.fromhex(self.raw)

    def bitmask(self) -> str:
        """The field's bits in their bytes, others dotted: ``0100 ....`` for IPv4's version."""
        if self.bits is None:
            return self.raw
        start, width = self.bits
        word = "".join(f"{b:08b}" for b in self.bytes)
        shown = "".join(c if start <= i < start + width else "." for i, c in enumerate(word))
        return " ".join(shown[i : i + 4] for i in range(0, len(shown), 4))


class Dissection(list):
    """The rows of one frame, in order; index by position or by field name."""

    def __init__(self, rows: Iterable[Field], frame: bytes) -> None:
        super().__init__(rows)
        self.frame = frame

    def field(self, name: str, occurrence: int = 0) -> Field:
        """The `occurrence`-th row called `name` (KeyError lists the names that exist)."""
        found = [f for f in self if f.name == name]
        if len(found) <= occurrence:
            raise KeyError(f"no field {name!r} in this frame; fields: {', '.join(dict.fromkeys(f.name for f in self))}")
        return found[occurrence]

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self.field(name).value
        except KeyError:
            return default

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.field(key).value
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return any(f.name == key for f in self)
        return super().__contains__(key)

    @property
    def layers(self) -> list[str]:
        """Layer names in order, e.g. ['Ethernet', 'IPv4', 'ICMP', 'Payload']."""
        return list(dict.fromkeys(f.layer for f in self))

    def checksums(self) -> list[Field]:
        """The checksum rows (their notes say whether each one is correct)."""
        return [f for f in self if f.name.endswith((".chksum", ".cksum"))]

    def __str__(self) -> str:
        return format_fields(self)
