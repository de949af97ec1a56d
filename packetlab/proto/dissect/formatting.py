"""Text for people: a hex dump, the table of fields, the comparison with scapy."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from packetlab.show.tables import WORDS, format_table

if TYPE_CHECKING:
    from packetlab.proto.dissect.compare import Comparison
    from packetlab.proto.dissect.fields import Field


def hexdump(frame: bytes | Any, *, width: int = 16, start: int = 0, end: int | None = None) -> str:
    """Offsets, hex and printable ASCII, like ``tcpdump -XX`` / ``xxd``."""
    data = bytes(frame)
    end = len(data) if end is None else min(end, len(data))
    lines = []
    for row in range(start - start % width, end, width):
        chunk = data[row : row + width]
        cells = [(f"{b:02x}" if start <= row + i < end else "  ") for i, b in enumerate(chunk)]
        halves = " ".join(cells[:8]) + "  " + " ".join(cells[8:])
        text = "".join(chr(b) if 32 <= b < 127 and start <= row + i < end else "." for i, b in enumerate(chunk))
        lines.append(f"{row:04x}  {halves:<{3 * width + 1}} {text}")
    return "\n".join(lines)


def format_fields(rows: Sequence[Field], *, max_hex: int = 8, notes: bool = True) -> str:
    """A text table of dissected fields: offset, length, name, bytes (or bits), value, note."""
    table = [("offset", "len", "field", "bytes / bits", "value", "meaning" if notes else "")]
    for f in rows:
        raw = f.bitmask() if f.bits is not None else " ".join(f.raw[i : i + 2] for i in range(0, len(f.raw), 2))
        if f.bits is None and f.length > max_hex:
            raw = " ".join(f.raw[i : i + 2] for i in range(0, 2 * max_hex, 2)) + " …"
        value = f.value
        if isinstance(value, (bytes, bytearray)):
            value = (value[:max_hex].hex() + ("…" if len(value) > max_hex else "")) if value else "''"
        elif (
            isinstance(value, int)
            and not isinstance(value, bool)
            and f.name.endswith(("chksum", "cksum", ".type", ".id"))
            and f.length >= 2
        ):
            value = f"0x{value:0{2 * min(f.length, 4)}x} ({value})"
        table.append((str(f.offset), str(f.length), f.name, raw, str(value), f.note if notes else ""))
    return format_table(table[0], table[1:], align=">><")


def format_comparison(comparisons: Sequence[Comparison]) -> str:
    """A text table: each field's value from `dissect` next to scapy's, and whether they agree."""
    table = [("field", "dissect", "scapy", "same")]
    for c in comparisons:
        table.append((c.field.name, _short(c.field.value), _short(c.scapy_value), "✔" if c.same else "✘"))
    return format_table(table[0], table[1:], align=WORDS)


def _short(value: Any, limit: int = 24) -> str:
    text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
