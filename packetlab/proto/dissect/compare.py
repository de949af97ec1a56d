"""Cross-check a dissection with scapy's, field by field."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from packetlab.proto.dissect.walk import dissect

if TYPE_CHECKING:
    from packetlab.proto.dissect.fields import Field


@dataclass(frozen=True)
class Comparison:
    """One decoded field next to scapy's value for it."""

    field: Field
    scapy_value: Any
    same: bool


def compare_with_scapy(frame: bytes | Any) -> list[Comparison]:
    """Decode `frame` here and with scapy; pair every field that both know.

    Values are compared after normalising representations (scapy's flag
    objects → int, address strings → ipaddress objects, MACs → lower case).
    """
    from scapy.layers.inet6 import IPv6  # noqa: F401 (registers every layer used below)
    from scapy.layers.l2 import Ether

    data = bytes(frame)
    pkt = Ether(data)
    out = []
    for row in dissect(data):
        if row.scapy is None:
            continue
        layer_name, field_name, occurrence = row.scapy
        layer = _scapy_layer(pkt, layer_name, occurrence)
        if layer is None:
            out.append(Comparison(row, "(scapy has no such layer)", False))
            continue
        value = layer.getfieldval(field_name)
        out.append(Comparison(row, value, _norm(row.value) == _norm(value)))
    return out


def _scapy_layer(pkt: Any, name: str, occurrence: int) -> Any:
    count = -1
    layer = pkt
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if layer.__class__.__name__ == name:
            count += 1
            if count == occurrence:
                return layer
        layer = layer.payload
    return None


def _norm(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if type(value).__name__ == "FlagValue":
        return int(value)
    if isinstance(value, str):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            return value.lower()
    return value
