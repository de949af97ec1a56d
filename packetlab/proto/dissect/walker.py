"""The walker: the rows of one frame so far, and where each header's bytes go next.

Each layer is a function ``(walker, offset, end, ...)`` in its own module
(`ethernet`, `ipv4`, `ipv6`, `icmp`, `icmpv6`, `transport`). It adds its rows,
then hands the rest of the frame on: by EtherType (`Walker.ethertype`) or by
IP protocol number (`Walker.upper`). The walker knows the decoders only
through the two tables it is given, so no layer imports the layers above it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

from packetlab.proto.dissect.fields import Field
from packetlab.proto.dissect.names import IP_PROTO


class EtherTypeDecoder(Protocol):
    def __call__(self, w: Walker, off: int, end: int) -> None: ...


class ProtocolDecoder(Protocol):
    def __call__(
        self, w: Walker, off: int, end: int, *, pseudo: bytes | None, quoted: bool, first_fragment: bool
    ) -> None: ...


class Walker:
    """Emits rows for one frame; tracks which scapy layer occurrence each row belongs to."""

    def __init__(
        self,
        frame: bytes,
        ethertypes: Mapping[int, EtherTypeDecoder],
        protocols: Mapping[int, ProtocolDecoder],
    ) -> None:
        self.frame = frame
        self.rows: list[Field] = []
        self._seen: dict[str, int] = {}
        self._ethertypes, self._protocols = ethertypes, protocols

    # -- what comes next ---------------------------------------------------------------------
    def ethertype(self, etype: int, off: int, end: int) -> None:
        """Decode what an Ethernet header (or VLAN tag) says follows at `off`."""
        decoder = self._ethertypes.get(etype)
        if decoder is None:
            self.payload("Payload", off, end, note=f"EtherType 0x{etype:04x} is not decoded here")
        else:
            decoder(self, off, end)

    def upper(
        self,
        proto: int,
        off: int,
        end: int,
        *,
        pseudo: bytes | None,
        quoted: bool = False,
        first_fragment: bool = False,
    ) -> None:
        """Decode the protocol an IP header names. `pseudo` is the checksum pseudo-header (None:
        the checksum cannot be verified here); `quoted` for the datagram inside an ICMP error."""
        decoder = self._protocols.get(proto)
        if decoder is not None:
            decoder(self, off, end, pseudo=pseudo, quoted=quoted, first_fragment=first_fragment)
        elif proto == 59:
            self.payload("Payload", off, end, note="no next header")
        else:
            self.payload("Payload", off, end, note=f"protocol {proto} ({IP_PROTO.get(proto, 'not decoded here')})")

    # -- rows --------------------------------------------------------------------------------
    def begin(self, scapy_layer: str | None) -> int:
        """Start a layer that scapy also decodes; returns its occurrence index."""
        if scapy_layer is None:
            return 0
        n = self._seen.get(scapy_layer, -1) + 1
        self._seen[scapy_layer] = n
        return n

    def add(
        self,
        name: str,
        offset: int,
        length: int,
        value: Any,
        *,
        bits: tuple[int, int] | None = None,
        note: str = "",
        scapy: tuple[str, str, int] | None = None,
    ) -> Field:
        row = Field(offset, length, name, self.frame[offset : offset + length].hex(), value, bits, note, scapy)
        self.rows.append(row)
        return row

    def truncated(self, layer: str, offset: int, end: int, need: int) -> None:
        have = max(0, end - offset)
        self.add(
            f"{layer}.truncated",
            offset,
            have,
            self.frame[offset:end],
            note=f"frame ends: the {layer} header needs {need} bytes here, only {have} left",
        )

    def payload(self, layer: str, offset: int, end: int, note: str = "") -> None:
        if end > offset:
            data = self.frame[offset:end]
            self.add(f"{layer}.data", offset, end - offset, data, note=note or f"{end - offset} bytes")

    def padding(self, off: int, end: int) -> None:
        if end > off:
            self.add(
                "Ethernet.padding",
                off,
                end - off,
                self.frame[off:end],
                note="bytes after the packet (Ethernet pads frames to 60 bytes)",
            )

    def options(
        self,
        layer: str,
        off: int,
        end: int,
        describe: Callable[[int], tuple[str, str]],
        read: Callable[[int, bytes], tuple[Any, str]],
        padding: str,
    ) -> None:
        """IPv4's and TCP's options, which share one encoding: kind 0 ends the list (`padding` follows),
        kind 1 is a one-byte no-op, and every other kind has a length byte that counts itself and the
        kind. `describe(kind)` gives the option's name and a description; `read(kind, data)` its value
        and what to add to the note."""
        f = self.frame
        pos = off
        while pos < end:
            kind = f[pos]
            if kind == 0:
                self.add(f"{layer}.opt.EOL", pos, 1, None, note="end of options")
                if end > pos + 1:
                    self.add(f"{layer}.opt.padding", pos + 1, end - pos - 1, f[pos + 1 : end], note=padding)
                return
            if kind == 1:
                self.add(f"{layer}.opt.NOP", pos, 1, None, note="no operation (alignment)")
                pos += 1
                continue
            name, desc = describe(kind)
            if pos + 2 > end or f[pos + 1] < 2 or pos + f[pos + 1] > end:
                self.add(f"{layer}.opt.malformed", pos, end - pos, f[pos:end], note=desc + ": bad length")
                return
            length = f[pos + 1]
            value, more = read(kind, f[pos + 2 : pos + length])
            self.add(f"{layer}.opt.{name}", pos, length, value, note=f"{desc}, length {length}{more}")
            pos += length
