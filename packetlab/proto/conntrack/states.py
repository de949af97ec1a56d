"""The data conntrack works on: tuples, segments, the TCP state table, timeouts.

Pure definitions, no I/O — shared by the userspace `Tracker`, the kernel-table
reader and the crafting helpers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

PROTO_TCP, PROTO_UDP, PROTO_ICMP = 6, 17, 1
PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp"}
ORIGINAL, REPLY = 0, 1

# ---- the TCP state machine ---------------------------------------------------------------

#: conntrack's TCP states, in the kernel's order (enum tcp_conntrack)
TCP_STATES = (
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
)
_ABBREV = {
    "NO": "NONE",
    "SS": "SYN_SENT",
    "SR": "SYN_RECV",
    "ES": "ESTABLISHED",
    "FW": "FIN_WAIT",
    "CW": "CLOSE_WAIT",
    "LA": "LAST_ACK",
    "TW": "TIME_WAIT",
    "CL": "CLOSE",
    "S2": "SYN_SENT2",
    "IV": "INVALID",
    "IG": "IGNORE",
}

#: segment classes, as the kernel sorts a TCP header (RST wins, then SYN, FIN, ACK)
FLAG_CLASSES = ("syn", "synack", "fin", "ack", "rst", "none")

# --8<-- [start:tcp-table]
# The transition table: for a segment of class <flags> seen in direction <dir>
# while the connection is in <column state>, the new state. IV = invalid (the
# packet is marked INVALID, the state does not change), IG = ignored (accepted,
# state unchanged: conntrack may be out of sync, the end hosts will tell).
# Same content as tcp_conntracks[2][6][] in nf_conntrack_proto_tcp.c.
_TCP_TABLE_TEXT = """
#          flags    NO  SS  SR  ES  FW  CW  LA  TW  CL  S2
original   syn      SS  SS  IG  IG  IG  IG  IG  SS  SS  S2
original   synack   IV  IV  SR  IV  IV  IV  IV  IV  IV  SR
original   fin      IV  IV  FW  FW  LA  LA  LA  TW  CL  IV
original   ack      ES  IV  ES  ES  CW  CW  TW  TW  CL  IV
original   rst      IV  CL  CL  CL  CL  CL  CL  CL  CL  CL
original   none     IV  IV  IV  IV  IV  IV  IV  IV  IV  IV
reply      syn      IV  S2  IV  IV  IV  IV  IV  SS  IV  S2
reply      synack   IV  SR  IG  IG  IG  IG  IG  IG  IG  SR
reply      fin      IV  IV  FW  FW  LA  LA  LA  TW  CL  IV
reply      ack      IV  IG  SR  ES  CW  CW  TW  TW  CL  IG
reply      rst      IV  CL  CL  CL  CL  CL  CL  CL  CL  CL
reply      none     IV  IV  IV  IV  IV  IV  IV  IV  IV  IV
"""
# --8<-- [end:tcp-table]


def _parse_table(text: str) -> dict[tuple[int, str, str], str]:
    table = {}
    header: list[str] = []
    for line in text.strip().splitlines():
        cells = line.split()
        if line.startswith("#"):
            header = [_ABBREV[c] for c in cells[2:]]
            continue
        direction = ORIGINAL if cells[0] == "original" else REPLY
        for state, new in zip(header, cells[2:]):
            table[(direction, cells[1], state)] = _ABBREV[new]
    return table


#: (direction, flag class, old state) -> new state, "INVALID" or "IGNORE"
TCP_TABLE: dict[tuple[int, str, str], str] = _parse_table(_TCP_TABLE_TEXT)

#: default timeouts in seconds (the kernel's, see kernel_timeouts() for a namespace's own)
DEFAULT_TIMEOUTS: dict[str, int] = {
    "SYN_SENT": 120,
    "SYN_RECV": 60,
    "ESTABLISHED": 432000,
    "FIN_WAIT": 120,
    "CLOSE_WAIT": 60,
    "LAST_ACK": 30,
    "TIME_WAIT": 120,
    "CLOSE": 10,
    "SYN_SENT2": 120,
    "RETRANS": 300,
    "UNACK": 300,
    "udp": 30,
    "udp_stream": 120,
    "icmp": 30,
}

# TCP header flag bits
FIN, SYN, RST, PSH, ACK, URG, ECE, CWR = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80
# the flag combinations conntrack accepts (PSH, ECE and CWR are always allowed on top)
_VALID_FLAGS = {SYN, SYN | URG, SYN | ACK, RST, RST | ACK, FIN | ACK, FIN | ACK | URG, ACK, ACK | URG}


def flag_class(flags: int) -> str:
    """Which row of the TCP table a segment uses (the kernel's get_conntrack_index)."""
    if flags & RST:
        return "rst"
    if flags & SYN:
        return "synack" if flags & ACK else "syn"
    if flags & FIN:
        return "fin"
    if flags & ACK:
        return "ack"
    return "none"


def valid_flag_combination(flags: int) -> bool:
    """False for combinations no TCP sends (SYN+FIN, a FIN without ACK, no flags...)."""
    return (flags & ~(ECE | CWR | PSH) & 0xFF) in _VALID_FLAGS


# ---- sequence-number arithmetic (32-bit, wrapping) ------------------------------------------


def u32(x: int) -> int:
    return x & 0xFFFFFFFF


def before(a: int, b: int) -> bool:
    """a comes before b in 32-bit sequence space (the kernel's before())."""
    d = u32(a - b)
    return d >= 0x80000000


def after(a: int, b: int) -> bool:
    return before(b, a)


# ---- packets as the tracker sees them ------------------------------------------------------


@dataclass(frozen=True)
class FlowTuple:
    """One direction of a connection. For ICMP, `sport` is the ICMP id and
    `dport` the ICMP type (8 echo request, 0 echo reply, ...), as the kernel keys them."""

    proto: int
    src: str
    dst: str
    sport: int
    dport: int

    def inverted(self) -> FlowTuple:
        if self.proto == PROTO_ICMP:
            return FlowTuple(PROTO_ICMP, self.dst, self.src, self.sport, ICMP_REPLY_TYPE.get(self.dport, self.dport))
        return FlowTuple(self.proto, self.dst, self.src, self.dport, self.sport)

    def __str__(self) -> str:
        name = PROTO_NAMES.get(self.proto, str(self.proto))
        if self.proto == PROTO_ICMP:
            return f"{name} {self.src} > {self.dst} type={self.dport} id={self.sport}"
        return f"{name} {self.src}:{self.sport} > {self.dst}:{self.dport}"


#: ICMP query types that may start a "connection", and the type of their answer
ICMP_REPLY_TYPE = {8: 0, 13: 14, 15: 16, 17: 18, 0: 8, 14: 13, 16: 15, 18: 17}
ICMP_REQUESTS = {8, 13, 15, 17}
ICMP_ERRORS = {3, 4, 5, 11, 12}


@dataclass
class Segment:
    """The fields of one IPv4 packet that connection tracking looks at."""

    tuple: FlowTuple
    time: float
    flags: int = 0  # TCP
    seq: int = 0
    ack: int = 0
    window: int = 0
    payload_len: int = 0
    wscale: int | None = None
    sack_perm: bool = False
    has_options: bool = False
    icmp_code: int = 0
    inner: FlowTuple | None = None  # ICMP errors: the packet the error is about

    @property
    def end(self) -> int:
        """seq + len (+1 for SYN, +1 for FIN): the next sequence number after this segment."""
        return u32(self.seq + self.payload_len + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0))

    def describe(self) -> str:
        t = self.tuple
        if t.proto == PROTO_TCP:
            names = (
                "".join(
                    n for bit, n in ((SYN, "S"), (ACK, "A"), (FIN, "F"), (RST, "R"), (PSH, "P")) if self.flags & bit
                )
                or "-"
            )
            data = f" +{self.payload_len}B" if self.payload_len else ""
            return f"{t.src}:{t.sport} > {t.dst}:{t.dport} [{names}] seq={self.seq} ack={self.ack}{data}"
        if t.proto == PROTO_ICMP:
            about = f" (about {self.inner})" if self.inner else ""
            return f"icmp {t.src} > {t.dst} type={t.dport} code={self.icmp_code}{about}"
        return str(t)


def segment_from_packet(pkt: Any, now: float | None = None) -> Segment | None:
    """Read a scapy packet (with or without Ether) into a Segment; None if not IPv4
    TCP/UDP/ICMP or truncated."""
    from scapy.layers.inet import ICMP as SICMP
    from scapy.layers.inet import IP, ICMPerror, IPerror, TCPerror, UDPerror
    from scapy.layers.inet import TCP as STCP
    from scapy.layers.inet import UDP as SUDP

    if IP not in pkt:
        return None
    ip = pkt[IP]
    ts = float(now if now is not None else getattr(pkt, "time", None) or time.time())
    if ip.len is None or ip.ihl is None or (STCP in ip and ip[STCP].dataofs is None):
        ip = IP(bytes(ip))  # built in Python: let scapy fill lengths and offsets as on the wire
    if ip.proto == PROTO_TCP and STCP in ip:
        tcp = ip[STCP]
        opts = dict((o[0], o[1]) for o in (tcp.options or []) if isinstance(o, tuple) and len(o) == 2)
        ihl = (ip.ihl or 5) * 4
        doff = (tcp.dataofs or 5) * 4
        total = ip.len if ip.len is not None else len(bytes(ip))
        return Segment(
            FlowTuple(PROTO_TCP, ip.src, ip.dst, tcp.sport, tcp.dport),
            ts,
            int(tcp.flags),
            tcp.seq,
            tcp.ack,
            tcp.window,
            max(total - ihl - doff, 0),
            opts.get("WScale"),
            "SAckOK" in opts,
            doff > 20,
        )
    if ip.proto == PROTO_UDP and SUDP in ip:
        u = ip[SUDP]
        return Segment(FlowTuple(PROTO_UDP, ip.src, ip.dst, u.sport, u.dport), ts)
    if ip.proto == PROTO_ICMP and SICMP in ip:
        ic = ip[SICMP]
        if ic.type in ICMP_ERRORS and IPerror not in ic:
            ic = SICMP(bytes(ic))  # built in Python: dissect the quoted header as the kernel would
        inner = None
        if ic.type in ICMP_ERRORS and IPerror in ic:
            e = ic[IPerror]
            if TCPerror in e:
                inner = FlowTuple(PROTO_TCP, e.src, e.dst, e[TCPerror].sport, e[TCPerror].dport)
            elif UDPerror in e:
                inner = FlowTuple(PROTO_UDP, e.src, e.dst, e[UDPerror].sport, e[UDPerror].dport)
            elif ICMPerror in e:
                inner = FlowTuple(PROTO_ICMP, e.src, e.dst, e[ICMPerror].id or 0, e[ICMPerror].type)
        ident = ic.id if ic.type in ICMP_REPLY_TYPE else 0
        return Segment(FlowTuple(PROTO_ICMP, ip.src, ip.dst, ident or 0, ic.type), ts, icmp_code=ic.code, inner=inner)
    return None


# ---- a row of a conntrack table -------------------------------------------------------------


@dataclass(frozen=True)
class CtEntry:
    """One row of a conntrack table (the kernel's, or the tracker's in the same shape)."""

    proto: str
    orig: FlowTuple
    reply: FlowTuple
    state: str | None
    timeout: int
    flags: tuple[str, ...] = ()
    mark: int = 0
    zone: int = 0

    @property
    def key(self) -> FlowTuple:
        return self.orig

    @property
    def status(self) -> str:
        return " ".join(self.flags) or "-"


def short_tuple(t: FlowTuple) -> str:
    """One direction of a connection, short: 10.0.1.10:41000 > 10.0.2.10:7777."""
    if t.proto == PROTO_ICMP:
        return f"{t.src} > {t.dst} type {t.dport} id {t.sport}"
    return f"{t.src}:{t.sport} > {t.dst}:{t.dport}"
