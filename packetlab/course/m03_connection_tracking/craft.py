"""Crafting TCP conversations and sending them through a lab router.

`TcpConversation` builds both ends of a conversation with consistent sequence
numbers (pure scapy, no I/O, so unit tests use it too); `LabWire` sends those
packets from the right lab host; `silence_kernel()` keeps the end hosts' own
stacks from answering segments they never sent.
"""

from __future__ import annotations

import time
from typing import Any

from packetlab.errors import PacketlabError
from packetlab.proto.conntrack.states import ORIGINAL, u32
from packetlab.topo.host import Host

# ---- crafting TCP conversations --------------------------------------------------------------


class TcpConversation:
    """Both ends of one TCP conversation, as scapy IP/TCP packets with consistent numbers.

    Nothing is sent: each method returns the packet and advances the sender's
    sequence number, so the same conversation drives the kernel (through
    `LabWire`) and the unit tests of `Tracker`.

    >>> conv = TcpConversation("10.0.1.10", "10.0.2.10", 40000, 7777)
    >>> conv.syn(); conv.synack(); conv.ack("client")
    """

    def __init__(
        self,
        client_ip: str,
        server_ip: str,
        client_port: int,
        server_port: int,
        *,
        client_isn: int = 1000,
        server_isn: int = 5000,
        window: int = 64240,
    ) -> None:
        self.ip = {"client": client_ip, "server": server_ip}
        self.port = {"client": client_port, "server": server_port}
        self.next_seq = {"client": client_isn, "server": server_isn}
        self.acked = {"client": 0, "server": 0}  # what each side has received up to
        self.window = window

    @staticmethod
    def _peer(side: str) -> str:
        if side not in ("client", "server"):
            raise PacketlabError(f"side must be 'client' or 'server', not {side!r}")
        return "server" if side == "client" else "client"

    def segment(
        self,
        side: str,
        flags: str,
        payload: bytes = b"",
        *,
        seq: int | None = None,
        ack: int | None = None,
        window: int | None = None,
        advance: bool = True,
    ) -> Any:
        """Any segment from `side` ('client' or 'server') with scapy flag letters ('S', 'SA', 'FA', 'R', 'PA')."""
        from scapy.layers.inet import IP
        from scapy.layers.inet import TCP as STCP
        from scapy.packet import Raw

        peer = self._peer(side)
        seq_no = self.next_seq[side] if seq is None else seq
        ack_no = (self.acked[side] if ack is None else ack) if "A" in flags else 0
        pkt = IP(src=self.ip[side], dst=self.ip[peer], ttl=64) / STCP(
            sport=self.port[side],
            dport=self.port[peer],
            flags=flags,
            seq=u32(seq_no),
            ack=u32(ack_no),
            window=self.window if window is None else window,
        )
        if payload:
            pkt = pkt / Raw(payload)
        if advance and seq is None:
            used = len(payload) + ("S" in flags) + ("F" in flags)
            self.next_seq[side] = u32(seq_no + used)
            self.acked[peer] = self.next_seq[side]  # the peer will acknowledge up to here
        pkt.time = time.time()
        return pkt

    def syn(self) -> Any:
        return self.segment("client", "S")

    def synack(self) -> Any:
        return self.segment("server", "SA")

    def ack(self, side: str = "client") -> Any:
        return self.segment(side, "A")

    def data(self, side: str, payload: bytes = b"hello") -> Any:
        return self.segment(side, "PA", payload)

    def fin(self, side: str) -> Any:
        return self.segment(side, "FA")

    def rst(self, side: str) -> Any:
        return self.segment(side, "R", advance=False)

    def out_of_window(self, side: str, offset: int = 1 << 30) -> Any:
        """A data segment far beyond the receiver's window (what a blind attacker might send)."""
        return self.segment(side, "PA", b"forged", seq=u32(self.next_seq[side] + offset), advance=False)


#: how to bring a fresh connection into each TCP state: (side, scapy flags) steps. The close
#: sequence goes one step further each state: the client closes, the server ACKs, then closes.
_HANDSHAKE = (("client", "S"), ("server", "SA"), ("client", "A"))
_CLOSING = (("client", "FA"), ("server", "A"), ("server", "FA"), ("client", "A"))
STATE_RECIPES: dict[str, tuple[tuple[str, str], ...]] = {
    "NONE": (),
    "SYN_SENT": _HANDSHAKE[:1],
    "SYN_RECV": _HANDSHAKE[:2],
    "ESTABLISHED": _HANDSHAKE,
    "FIN_WAIT": _HANDSHAKE + _CLOSING[:1],
    "CLOSE_WAIT": _HANDSHAKE + _CLOSING[:2],
    "LAST_ACK": _HANDSHAKE + _CLOSING[:3],
    "TIME_WAIT": _HANDSHAKE + _CLOSING,
    "CLOSE": _HANDSHAKE + (("client", "R"),),
    "SYN_SENT2": (("client", "S"), ("server", "S")),
}

#: the scapy flags of a probe segment for each flag class
PROBE_FLAGS = {"syn": "S", "synack": "SA", "fin": "FA", "ack": "A", "rst": "R", "none": ""}


def reach_state(conv: TcpConversation, state: str) -> list[Any]:
    """The packets that take a fresh connection of `conv` into TCP `state`."""
    return [conv.segment(side, flags, advance="R" not in flags) for side, flags in STATE_RECIPES[state]]


def probe(conv: TcpConversation, direction: int, flag_class: str) -> Any:
    """One in-window segment of `flag_class` from the original (client) or reply (server) side."""
    flags = PROBE_FLAGS[flag_class]
    return conv.segment("client" if direction == ORIGINAL else "server", flags, advance=False)


def silence_kernel(host: Host, *ports: int, table: str = "plquiet") -> None:
    """Stop `host`'s own stack from answering crafted TCP/UDP segments for `ports`.

    Crafted segments reach a real kernel, which would answer a SYN/ACK it did
    not expect with a RST (or a datagram to a closed port with an ICMP error)
    and spoil the experiment; dropping them at input — in that host's
    namespace only — keeps the end hosts silent.
    """
    rules = "".join(
        f"    {proto} {end} {port} drop\n" for port in ports for proto in ("tcp", "udp") for end in ("sport", "dport")
    )
    host.run(["nft", "delete", "table", "inet", table])
    host.nft(
        f"table inet {table} {{\n  chain input {{\n    type filter hook input priority -400; policy accept;\n"
        f"{rules}  }}\n}}\n"
    )


class LabWire:
    """Send crafted IP packets from whichever lab host owns the source address,
    as Ethernet frames addressed to the router on that side.

    One layer-2 socket per host is kept open until `close()` (or the end of a
    ``with`` block), so sending hundreds of segments stays fast.
    """

    def __init__(self, router: Host, *sides: tuple[Host, str, str]) -> None:
        """`sides`: (host, host's device, router's device facing it) for each end host."""
        self.router = router
        self._by_ip: dict[str, tuple[Host, str, str, str]] = {}
        self._sockets: dict[tuple[str, str], Any] = {}
        for host, dev, router_dev in sides:
            for addr in host.addresses(dev):
                ip = addr.split("/")[0]
                self._by_ip[ip] = (host, dev, host.mac(dev), router.mac(router_dev))

    def send(self, *pkts: Any, gap: float = 0.0) -> Any:
        """Send each packet from its source host; returns the last one."""
        from scapy.layers.inet import IP
        from scapy.layers.l2 import Ether

        for pkt in pkts:
            src = pkt[IP].src
            if src not in self._by_ip:
                raise PacketlabError(
                    f"no lab host on this wire owns source address {src}",
                    fix="build the packet with a client or server address of this lab",
                )
            host, dev, mac, router_mac = self._by_ip[src]
            key = (host.namespace, dev)
            if key not in self._sockets:
                self._sockets[key] = host.l2socket(dev)
            self._sockets[key].send(Ether(src=mac, dst=router_mac) / pkt)
            if gap:
                time.sleep(gap)
        return pkts[-1] if pkts else None

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        self._sockets.clear()

    def __enter__(self) -> LabWire:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
