"""Connection tracking two ways: the kernel's table, and a small tracker of our own.

Module 03 drives TCP, UDP and ICMP through a lab router and reads what the
kernel's conntrack made of every packet. This module gives it:

* **the kernel side** — `kernel_table()` parses ``conntrack -L`` run inside a
  lab namespace into `CtEntry` rows; `kernel_stats()`, `kernel_timeouts()`;
  `CtStateCounters` counts forwarded packets per ``ct state`` (NEW,
  ESTABLISHED, RELATED, INVALID) with nftables counters, which is how we learn
  what the kernel decided about *one* packet;
* **crafting** — `TcpConversation` builds both ends of a TCP conversation with
  consistent sequence numbers (pure scapy, no I/O, so the unit tests use it
  too); `LabWire` sends those packets from the right lab host, and
  `silence_kernel()` stops the end hosts' own TCP stacks from answering
  segments they never sent;
* **a userspace tracker** — `Tracker` follows the same 5-tuple state machine
  as ``net/netfilter/nf_conntrack_proto_{tcp,udp,icmp}.c`` from packets (for
  example captured on the router): the TCP state table (written out below as
  `TCP_TABLE`), window tracking, ASSURED/UNREPLIED, timeouts, RELATED ICMP
  errors. `compare()` puts its table next to the kernel's.

What the tracker leaves out, on purpose: IPv6, NAT sequence adjustment, SACK
blocks in window checks, helpers/expectations (FTP, SIP...), zones, and the
shortening of timeouts after repeated invalid FIN/RST. It is a teaching model
that agrees with the kernel on the traffic the lab sends, and the tests check
exactly that.
"""
from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import MissingRequirement, PacketlabError
from .host import Host

PROTO_TCP, PROTO_UDP, PROTO_ICMP = 6, 17, 1
PROTO_NAMES = {PROTO_TCP: "tcp", PROTO_UDP: "udp", PROTO_ICMP: "icmp"}
ORIGINAL, REPLY = 0, 1

# ---- the TCP state machine ---------------------------------------------------------------

#: conntrack's TCP states, in the kernel's order (enum tcp_conntrack)
TCP_STATES = ("NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT",
              "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2")
_ABBREV = {"NO": "NONE", "SS": "SYN_SENT", "SR": "SYN_RECV", "ES": "ESTABLISHED", "FW": "FIN_WAIT",
           "CW": "CLOSE_WAIT", "LA": "LAST_ACK", "TW": "TIME_WAIT", "CL": "CLOSE", "S2": "SYN_SENT2",
           "IV": "INVALID", "IG": "IGNORE"}

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
    "SYN_SENT": 120, "SYN_RECV": 60, "ESTABLISHED": 432000, "FIN_WAIT": 120, "CLOSE_WAIT": 60,
    "LAST_ACK": 30, "TIME_WAIT": 120, "CLOSE": 10, "SYN_SENT2": 120, "RETRANS": 300, "UNACK": 300,
    "udp": 30, "udp_stream": 120, "icmp": 30,
}

_SYSCTL_TIMEOUTS = {
    "SYN_SENT": "tcp_timeout_syn_sent", "SYN_RECV": "tcp_timeout_syn_recv",
    "ESTABLISHED": "tcp_timeout_established", "FIN_WAIT": "tcp_timeout_fin_wait",
    "CLOSE_WAIT": "tcp_timeout_close_wait", "LAST_ACK": "tcp_timeout_last_ack",
    "TIME_WAIT": "tcp_timeout_time_wait", "CLOSE": "tcp_timeout_close",
    "RETRANS": "tcp_timeout_max_retrans", "UNACK": "tcp_timeout_unacknowledged",
    "udp": "udp_timeout", "udp_stream": "udp_timeout_stream", "icmp": "icmp_timeout",
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

def _u32(x: int) -> int:
    return x & 0xFFFFFFFF


def before(a: int, b: int) -> bool:
    """a comes before b in 32-bit sequence space (the kernel's before())."""
    d = _u32(a - b)
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

    def inverted(self) -> "FlowTuple":
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
    flags: int = 0            # TCP
    seq: int = 0
    ack: int = 0
    window: int = 0
    payload_len: int = 0
    wscale: int | None = None
    sack_perm: bool = False
    has_options: bool = False
    icmp_code: int = 0
    inner: FlowTuple | None = None   # ICMP errors: the packet the error is about

    @property
    def end(self) -> int:
        """seq + len (+1 for SYN, +1 for FIN): the next sequence number after this segment."""
        return _u32(self.seq + self.payload_len + (1 if self.flags & SYN else 0) + (1 if self.flags & FIN else 0))

    def describe(self) -> str:
        t = self.tuple
        if t.proto == PROTO_TCP:
            names = "".join(n for bit, n in ((SYN, "S"), (ACK, "A"), (FIN, "F"), (RST, "R"), (PSH, "P"))
                            if self.flags & bit) or "-"
            data = f" +{self.payload_len}B" if self.payload_len else ""
            return f"{t.src}:{t.sport} > {t.dst}:{t.dport} [{names}] seq={self.seq} ack={self.ack}{data}"
        if t.proto == PROTO_ICMP:
            about = f" (about {self.inner})" if self.inner else ""
            return f"icmp {t.src} > {t.dst} type={t.dport} code={self.icmp_code}{about}"
        return str(t)


def segment_from_packet(pkt: Any, now: float | None = None) -> Segment | None:
    """Read a scapy packet (with or without Ether) into a Segment; None if not IPv4
    TCP/UDP/ICMP or truncated."""
    from scapy.layers.inet import ICMP as SICMP, IP, TCP as STCP, UDP as SUDP, IPerror, TCPerror, UDPerror, ICMPerror
    if IP not in pkt:
        return None
    ip = pkt[IP]
    ts = float(now if now is not None else getattr(pkt, "time", None) or time.time())
    if ip.len is None or ip.ihl is None or (STCP in ip and ip[STCP].dataofs is None):
        ip = IP(bytes(ip))          # built in Python: let scapy fill lengths and offsets as on the wire
    if ip.proto == PROTO_TCP and STCP in ip:
        tcp = ip[STCP]
        opts = dict((o[0], o[1]) for o in (tcp.options or []) if isinstance(o, tuple) and len(o) == 2)
        ihl = (ip.ihl or 5) * 4
        doff = (tcp.dataofs or 5) * 4
        total = ip.len if ip.len is not None else len(bytes(ip))
        return Segment(FlowTuple(PROTO_TCP, ip.src, ip.dst, tcp.sport, tcp.dport), ts, int(tcp.flags), tcp.seq, tcp.ack,
                       tcp.window, max(total - ihl - doff, 0), opts.get("WScale"), "SAckOK" in opts,
                       doff > 20)
    if ip.proto == PROTO_UDP and SUDP in ip:
        u = ip[SUDP]
        return Segment(FlowTuple(PROTO_UDP, ip.src, ip.dst, u.sport, u.dport), ts)
    if ip.proto == PROTO_ICMP and SICMP in ip:
        ic = ip[SICMP]
        if ic.type in ICMP_ERRORS and IPerror not in ic:
            ic = SICMP(bytes(ic))          # built in Python: dissect the quoted header as the kernel would
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


# ---- the tracker's connection records -------------------------------------------------------

# per-direction TCP window flags (IP_CT_TCP_FLAG_*)
_F_WSCALE, _F_SACK_PERM, _F_CLOSE_INIT, _F_LIBERAL, _F_DATA_UNACK, _F_MAXACK_SET = 1, 2, 4, 8, 16, 32


@dataclass
class _Seen:
    """What conntrack knows about one direction of a TCP connection (struct ip_ct_tcp_state)."""
    td_end: int = 0       # highest seq + len sent
    td_maxend: int = 0    # highest ack + window the receiver allowed
    td_maxwin: int = 0    # largest window seen
    td_maxack: int = 0    # highest ack sent
    td_scale: int = 0
    flags: int = 0


@dataclass
class Conn:
    """One tracked connection (the userspace twin of struct nf_conn)."""
    orig: FlowTuple
    reply: FlowTuple
    created: float
    expires: float = 0.0
    state: str | None = None       # TCP only
    seen_reply: bool = False
    assured: bool = False
    # TCP bookkeeping
    seen: list[_Seen] = field(default_factory=lambda: [_Seen(), _Seen()])
    last_index: str = "none"
    last_dir: int = ORIGINAL
    last_seq: int = 0
    last_ack: int = 0
    last_end: int = 0
    last_win: int = 0
    last_wscale: int = 0
    last_flags: int = 0
    simultaneous_open: bool = False
    challenge_ack: bool = False
    retrans: int = 0
    # UDP
    stream_ts: float = 0.0

    @property
    def proto(self) -> int:
        return self.orig.proto

    def flags(self) -> tuple[str, ...]:
        return ("ASSURED",) if self.assured else (() if self.seen_reply else ("UNREPLIED",))

    def timeout_left(self, now: float) -> int:
        return max(int(self.expires - now), 0)

    def entry(self, now: float) -> "CtEntry":
        return CtEntry(PROTO_NAMES[self.proto], self.orig, self.reply, self.state, self.timeout_left(now), self.flags())


@dataclass
class Decision:
    """What the tracker made of one packet."""
    segment: Segment
    ctinfo: str | None                 # NEW, ESTABLISHED, RELATED, INVALID (None: not tracked here)
    conn: Conn | None = None
    old_state: str | None = None
    new_state: str | None = None
    reason: str = ""

    def __str__(self) -> str:
        move = f" {self.old_state} -> {self.new_state}" if self.new_state else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.segment.describe()}: {self.ctinfo}{move}{why}"


_MAXACKWINCONST = 66000


class Tracker:
    """A userspace connection tracker: feed it packets, read its table.

    >>> t = Tracker()
    >>> for pkt in frames: t.feed(pkt)          # scapy packets, e.g. from host.capture()
    >>> print(format_entries(t.entries()))

    `timeouts` defaults to the kernel's defaults; pass ``kernel_timeouts(router)``
    to use a lab namespace's own. `loose` mirrors nf_conntrack_tcp_loose (pick
    up connections mid-stream from an ACK), `be_liberal` nf_conntrack_tcp_be_liberal
    (no out-of-window INVALID), `ignore_invalid_rst` the sysctl of the same name.
    """

    def __init__(self, timeouts: dict[str, int] | None = None, *, loose: bool = True,
                 be_liberal: bool = False, ignore_invalid_rst: bool = False, max_retrans: int = 3) -> None:
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.loose, self.be_liberal = loose, be_liberal
        self.ignore_invalid_rst, self.max_retrans = ignore_invalid_rst, max_retrans
        self._by_tuple: dict[FlowTuple, tuple[Conn, int]] = {}
        self.log: list[Decision] = []

    # ---- public API ----------------------------------------------------------------------
    def feed(self, packet: Any, now: float | None = None) -> Decision:
        """Track one packet (a scapy packet or a Segment); return what was decided."""
        seg = packet if isinstance(packet, Segment) else segment_from_packet(packet, now)
        if seg is None:
            decision = Decision(Segment(FlowTuple(0, "", "", 0, 0), now or time.time()), None,
                                reason="not IPv4 TCP/UDP/ICMP: not tracked here")
        else:
            if now is not None:
                seg.time = now
            handler = {PROTO_TCP: self._tcp, PROTO_UDP: self._udp, PROTO_ICMP: self._icmp}[seg.tuple.proto]
            decision = handler(seg)
        self.log.append(decision)
        return decision

    def feed_all(self, packets: Iterable[Any]) -> list[Decision]:
        return [self.feed(p) for p in packets]

    def connections(self, now: float | None = None) -> list[Conn]:
        """Live connections (expired ones are dropped, like the kernel's garbage collector)."""
        now = time.time() if now is None else now
        live, seen = [], set()
        for conn, _ in list(self._by_tuple.values()):
            if id(conn) in seen:
                continue
            seen.add(id(conn))
            if conn.expires <= now:
                self._remove(conn)
            else:
                live.append(conn)
        return sorted(live, key=lambda c: c.created)

    def entries(self, now: float | None = None) -> list["CtEntry"]:
        now = time.time() if now is None else now
        return [c.entry(now) for c in self.connections(now)]

    def lookup(self, t: FlowTuple, now: float | None = None) -> tuple[Conn, int] | None:
        hit = self._by_tuple.get(t)
        if hit and hit[0].expires <= (time.time() if now is None else now):
            self._remove(hit[0])
            return None
        return hit

    # ---- table maintenance ---------------------------------------------------------------
    def _insert(self, conn: Conn) -> None:
        self._by_tuple[conn.orig] = (conn, ORIGINAL)
        self._by_tuple[conn.reply] = (conn, REPLY)

    def _remove(self, conn: Conn) -> None:
        for t in (conn.orig, conn.reply):
            if t in self._by_tuple and self._by_tuple[t][0] is conn:
                del self._by_tuple[t]

    def _ctinfo(self, conn: Conn, direction: int) -> str:
        # resolve_normal_ct(): the reply direction, or anything after a reply was seen, is ESTABLISHED
        return "ESTABLISHED" if direction == REPLY or conn.seen_reply else "NEW"

    @staticmethod
    def _after_accept(conn: Conn, direction: int) -> None:
        if direction == REPLY:
            conn.seen_reply = True       # nf_conntrack_in() sets IPS_SEEN_REPLY after the protocol accepts

# --8<-- [start:udp]
    # ---- UDP -----------------------------------------------------------------------------
    def _udp(self, seg: Segment) -> Decision:
        now = seg.time
        hit = self.lookup(seg.tuple, now)
        if hit is None:
            conn = Conn(seg.tuple, seg.tuple.inverted(), now, stream_ts=now + 2)
            self._insert(conn)
            direction = ORIGINAL
        else:
            conn, direction = hit
        ctinfo = self._ctinfo(conn, direction)
        if conn.seen_reply:
            # traffic both ways: after two seconds it counts as a stream (longer timeout, ASSURED)
            if now > conn.stream_ts:
                conn.expires = now + self.timeouts["udp_stream"]
                conn.assured = True
            else:
                conn.expires = now + self.timeouts["udp"]
        else:
            conn.expires = now + self.timeouts["udp"]
        self._after_accept(conn, direction)
        return Decision(seg, ctinfo, conn)

# --8<-- [end:udp]
    # ---- ICMP ----------------------------------------------------------------------------
    def _icmp(self, seg: Segment) -> Decision:
        now = seg.time
        icmp_type = seg.tuple.dport
        if icmp_type in ICMP_ERRORS:
            if seg.inner is None:
                return Decision(seg, "INVALID", reason="ICMP error without a readable inner header")
            hit = self.lookup(seg.inner, now) or self.lookup(seg.inner.inverted(), now)
            if hit is None:
                return Decision(seg, "INVALID", reason="ICMP error about a connection we do not track")
            return Decision(seg, "RELATED", hit[0], reason=f"error about {hit[0].orig}")
        if icmp_type not in ICMP_REPLY_TYPE:
            return Decision(seg, "INVALID", reason=f"ICMP type {icmp_type} is neither a query nor an error")
        hit = self.lookup(seg.tuple, now)
        if hit is None:
            if icmp_type not in ICMP_REQUESTS:
                return Decision(seg, "INVALID", reason="an ICMP answer with no request seen")
            conn = Conn(seg.tuple, seg.tuple.inverted(), now)
            self._insert(conn)
            direction = ORIGINAL
        else:
            conn, direction = hit
        ctinfo = self._ctinfo(conn, direction)
        conn.expires = now + self.timeouts["icmp"]
        self._after_accept(conn, direction)
        return Decision(seg, ctinfo, conn)

    # ---- TCP -----------------------------------------------------------------------------
    def _tcp(self, seg: Segment) -> Decision:
        if not valid_flag_combination(seg.flags):
            return Decision(seg, "INVALID", reason="invalid TCP flag combination")
        for _attempt in range(2):          # a reopened connection is looked up again (NF_REPEAT)
            hit = self.lookup(seg.tuple, seg.time)
            fresh = hit is None
            if fresh:
                conn = self._tcp_new(seg)
                if conn is None:
                    why = ("cannot start a connection" if self.loose or flag_class(seg.flags) == "syn"
                           else "not a SYN and nf_conntrack_tcp_loose=0")
                    return Decision(seg, "INVALID", reason=f"{flag_class(seg.flags).upper()} {why}")
                direction = ORIGINAL
            else:
                conn, direction = hit
            ctinfo = self._ctinfo(conn, direction)
            old = conn.state
            verdict, reason = self._tcp_packet(conn, direction, seg)
            if verdict == "repeat":
                self._remove(conn)
                continue
            if verdict == "invalid":
                return Decision(seg, "INVALID", None if fresh else conn, old, None, reason)
            if fresh and conn.state is not None:
                self._insert(conn)
            if verdict == "killed":
                self._remove(conn)
            else:
                self._after_accept(conn, direction)
            return Decision(seg, ctinfo, conn, old, conn.state, reason)
        raise AssertionError("unreachable: a reopened connection is new on the second pass")

    def _tcp_new(self, seg: Segment) -> Conn | None:
        """tcp_new(): may this segment create an entry? Initialise the sender's window if so."""
        new_state = TCP_TABLE[(ORIGINAL, flag_class(seg.flags), "NONE")]
        if new_state in ("INVALID", "IGNORE"):
            return None
        conn = Conn(seg.tuple, seg.tuple.inverted(), seg.time, state="NONE")
        s = conn.seen[ORIGINAL]
        if new_state == "SYN_SENT":
            s.td_end = seg.end
            s.td_maxwin = seg.window or 1
            s.td_maxend = s.td_end
            self._options(seg, s)
        elif not self.loose:
            return None
        else:   # picked up mid-stream: the history is lost, trust the packet and be liberal
            s.td_end = seg.end
            s.td_maxwin = seg.window or 1
            s.td_maxend = _u32(s.td_end + s.td_maxwin)
            conn.seen[ORIGINAL].flags = conn.seen[REPLY].flags = _F_SACK_PERM | _F_LIBERAL
        conn.last_index = "none"
        return conn

    @staticmethod
    def _options(seg: Segment, s: _Seen) -> None:
        """tcp_options(): window scale and SACK-permitted from a SYN's options."""
        if not seg.has_options:
            return
        s.td_scale = 0
        s.flags &= _F_LIBERAL
        if seg.sack_perm:
            s.flags |= _F_SACK_PERM
        if seg.wscale is not None:
            s.td_scale = min(seg.wscale, 14)
            s.flags |= _F_WSCALE

    def _init_sender(self, conn: Conn, direction: int, seg: Segment) -> None:
        sender, receiver = conn.seen[direction], conn.seen[1 - direction]
        sender.td_end = sender.td_maxend = seg.end
        sender.td_maxwin = seg.window or 1
        self._options(seg, sender)
        if direction == REPLY and not (sender.flags & _F_WSCALE and receiver.flags & _F_WSCALE):
            sender.td_scale = receiver.td_scale = 0    # RFC 7323: scaling only if both sides offer it

    def _tcp_packet(self, conn: Conn, direction: int, seg: Segment) -> tuple[str, str]:
        """nf_conntrack_tcp_packet(): returns (verdict, reason); verdict is accept,
        invalid, killed or repeat; conn.state and the timeout are updated on accept."""
        index = flag_class(seg.flags)
        old = conn.state or "NONE"
        new = TCP_TABLE[(direction, index, old)]
        skip_window = False
        reason = ""

        if new == "SYN_SENT" and old in ("TIME_WAIT", "CLOSE"):
            closing = (conn.seen[0].flags | conn.seen[1].flags) & _F_CLOSE_INIT
            if closing or (conn.last_dir == direction and conn.last_index == "rst"):
                return "repeat", "SYN reopens a closed connection: old entry deleted"
            new = "IGNORE"
        if new == "IGNORE":
            if (index == "synack" and conn.last_index == "syn" and conn.last_dir != direction
                    and seg.ack == conn.last_end):
                # this SYN/ACK answers a SYN we ignored: the ends are in sync, we were not
                old, new = "SYN_SENT", "SYN_RECV"
                s = conn.seen[conn.last_dir]
                s.td_end = s.td_maxend = conn.last_end
                s.td_maxwin = conn.last_win or 1
                s.td_scale = conn.last_wscale
                s.flags = conn.last_flags
                conn.seen[direction] = _Seen(flags=conn.seen[direction].flags & _F_LIBERAL)
                reason = "re-synced on a SYN/ACK to an ignored SYN"
            else:
                conn.last_index, conn.last_dir = index, direction
                conn.last_seq, conn.last_end, conn.last_win = seg.seq, seg.end, seg.window
                if index == "syn" and direction == ORIGINAL:
                    conn.last_flags = conn.last_wscale = 0
                    if seg.wscale is not None:
                        conn.last_flags |= _F_WSCALE
                        conn.last_wscale = min(seg.wscale, 14)
                    if seg.sack_perm:
                        conn.last_flags |= _F_SACK_PERM
                    conn.challenge_ack = old == "LAST_ACK"
                if old == "SYN_SENT" and index == "ack" and direction == REPLY:
                    conn.last_ack = seg.ack
                return "accept", f"{index.upper()} ignored in {old} (conntrack may be out of sync)"
        elif new == "INVALID":
            return "invalid", f"{index.upper()} from the {'reply' if direction else 'original'} side is not allowed in {old}"
        elif new == "TIME_WAIT":
            if (old == "LAST_ACK" and index == "ack" and conn.last_dir != direction
                    and conn.last_index == "syn" and conn.challenge_ack):
                conn.challenge_ack = False
                return "accept", "challenge ACK ignored"
        elif new == "SYN_SENT2":
            conn.simultaneous_open = True
        elif new == "SYN_RECV":
            if direction == REPLY and index == "ack" and conn.simultaneous_open:
                new = "ESTABLISHED"
        elif new == "CLOSE" and index == "rst":
            new, skip_window, reason, bad = self._rst(conn, direction, seg, old, new)
            if bad:
                return "invalid", reason

        if not skip_window:
            verdict, why = self._in_window(conn, direction, index, seg)
            if verdict == "ignore":
                return "accept", why
            if verdict == "invalid":
                return "invalid", why

        conn.last_index, conn.last_dir = index, direction
        conn.state = new
        if old != new and new == "FIN_WAIT":
            conn.seen[direction].flags |= _F_CLOSE_INIT
        t = self.timeouts
        unack = (conn.seen[0].flags | conn.seen[1].flags) & _F_DATA_UNACK
        if conn.retrans >= self.max_retrans and t[new] > t["RETRANS"]:
            timeout = t["RETRANS"]
        elif index == "rst":
            timeout = t["CLOSE"]
        elif unack and t[new] > t["UNACK"]:
            timeout = t["UNACK"]
        elif conn.last_win == 0 and t[new] > t["RETRANS"]:
            timeout = t["RETRANS"]
        else:
            timeout = t[new]
        if not conn.seen_reply:
            if seg.flags & RST:
                return "killed", "RST before any reply: entry deleted"
            if index == "syn" and old == "SYN_SENT":
                return "accept", reason or "retransmitted SYN (timeout not renewed)"
            if new == "ESTABLISHED" and timeout > t["UNACK"]:
                timeout = t["UNACK"]
                reason = reason or "picked up mid-stream"
        elif not conn.assured and old in ("SYN_RECV", "ESTABLISHED") and new == "ESTABLISHED":
            conn.assured = True
        conn.expires = seg.time + timeout
        return "accept", reason

    def _rst(self, conn: Conn, direction: int, seg: Segment, old: str, new: str) -> tuple[str, bool, str, bool]:
        """The RST rules: returns (new state, skip the window check, reason, invalid)."""
        if old in ("FIN_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "CLOSE_WAIT"):
            return new, True, "", False          # closing anyway: no sequence checks
        other = conn.seen[1 - direction]
        established = old == "ESTABLISHED" and conn.assured
        reason = ""
        if other.flags & _F_MAXACK_SET and conn.last_index != "syn":
            if seg.seq == 0 and not established:
                return new, False, "", False
            if before(seg.seq, other.td_maxack) and not self.ignore_invalid_rst:
                return old, False, "RST with a sequence number the peer has already acknowledged", True
            if not established or seg.seq == other.td_maxack:
                return new, False, "", False
            if conn.last_index == "ack" and conn.last_dir == direction and seg.seq == conn.last_end:
                return new, False, "", False
            # in the window but not exactly where expected: keep the state, the peer
            # answers with a challenge ACK (RFC 5961) and a genuine RST follows
            new, reason = old, "RST not at the exact expected sequence number: state kept (RFC 5961)"
        if (((conn.seen_reply and conn.last_index == "syn") or (not conn.assured and conn.last_index == "ack"))
                and seg.ack == conn.last_end):
            return new, True, "RST answering a segment we let through", False
        if (old == "SYN_SENT" and conn.last_index == "ack" and conn.last_dir == REPLY
                and seg.seq == conn.last_ack):
            return new, True, "RST answering a challenge ACK", False
        return new, False, reason, False

    def _in_window(self, conn: Conn, direction: int, index: str, seg: Segment) -> tuple[str, str]:
        """tcp_in_window(): accept, ignore or invalid, and update both directions' windows."""
        sender, receiver = conn.seen[direction], conn.seen[1 - direction]
        seq, ack, win_raw = seg.seq, seg.ack, seg.window
        win, end = win_raw, seg.end
        liberal = self.be_liberal or bool(sender.flags & _F_LIBERAL)

        def problem(verdict: str, why: str) -> tuple[str, str]:
            return ("accept", "") if liberal else (verdict, why)

        if sender.td_maxwin == 0:
            if seg.flags & SYN:
                self._init_sender(conn, direction, seg)
                if not seg.flags & ACK:
                    return "accept", ""     # simultaneous open
            else:
                sender.td_end = end
                swin = _u32(win << sender.td_scale)
                sender.td_maxwin = swin or 1
                sender.td_maxend = _u32(end + sender.td_maxwin)
                if receiver.td_maxwin == 0:
                    receiver.td_end = receiver.td_maxend = ack
                elif ack == _u32(receiver.td_end + 1):
                    receiver.td_end = _u32(receiver.td_end + 1)
        elif (seg.flags & SYN and after(end, sender.td_end)
              and conn.state in ("SYN_SENT", "SYN_RECV")):
            self._init_sender(conn, direction, seg)     # re-initialised SYN (RFC 793)
            if direction == REPLY and not seg.flags & ACK:
                return "accept", ""

        if not seg.flags & ACK:
            ack = receiver.td_end
        elif seg.flags & RST and ack == 0:
            ack = receiver.td_end
        if seg.flags & RST and seq == 0 and conn.state == "SYN_SENT":
            seq = end = sender.td_end

        maxackwin = max(sender.td_maxwin, _MAXACKWINCONST)
        if not before(seq, _u32(sender.td_maxend + 1)):
            overshot = _u32(end - sender.td_maxend + 1)
            ack_ok = after(ack, _u32(receiver.td_end - maxackwin - 1))
            in_recv_win = receiver.td_maxwin and after(end, _u32(sender.td_end - receiver.td_maxwin - 1))
            if in_recv_win and ack_ok and overshot <= receiver.td_maxwin and before(ack, _u32(receiver.td_end + 1)):
                sender.td_end = end               # a TCP sending a little more than allowed
                sender.flags |= _F_DATA_UNACK
                return problem("ignore", f"{overshot} bytes more than the receiver's window")
            return problem("invalid", f"SEQ {seq} is over the upper bound {_u32(sender.td_maxend + 1)} "
                                      "(beyond the receiver's window)")
        if not before(ack, _u32(receiver.td_end + 1)):
            return problem("invalid", f"ACK {ack} is over the upper bound {_u32(receiver.td_end + 1)} "
                                      "(acknowledges data not sent yet)")
        if receiver.td_maxwin and not after(end, _u32(sender.td_end - receiver.td_maxwin - 1)):
            return problem("ignore", "SEQ under the lower bound (old data retransmitted)")
        if not after(ack, _u32(receiver.td_end - maxackwin - 1)):
            return problem("ignore", "ACK under the lower bound (a very late ACK)")

        if not seg.flags & SYN:
            win = _u32(win << sender.td_scale)
        swin = win
        if sender.td_maxwin < swin:
            sender.td_maxwin = swin
        if after(end, sender.td_end):
            sender.td_end = end
            sender.flags |= _F_DATA_UNACK
        if seg.flags & ACK:
            if not sender.flags & _F_MAXACK_SET:
                sender.td_maxack = ack
                sender.flags |= _F_MAXACK_SET
            elif after(ack, sender.td_maxack):
                sender.td_maxack = ack
        if receiver.td_maxwin != 0 and after(end, sender.td_maxend):
            receiver.td_maxwin = _u32(receiver.td_maxwin + end - sender.td_maxend)
        if after(_u32(ack + win), _u32(receiver.td_maxend - 1)):
            receiver.td_maxend = _u32(ack + win + (1 if win == 0 else 0))
        if ack == receiver.td_end:
            receiver.flags &= ~_F_DATA_UNACK
        if index == "ack":
            if (conn.last_dir == direction and conn.last_seq == seq and conn.last_ack == ack
                    and conn.last_end == end and conn.last_win == win_raw):
                conn.retrans += 1
            else:
                conn.last_dir, conn.last_seq, conn.last_ack = direction, seq, ack
                conn.last_end, conn.last_win, conn.retrans = end, win_raw, 0
        return "accept", ""


# ---- crafting TCP conversations --------------------------------------------------------------

class TcpConversation:
    """Both ends of one TCP conversation, as scapy IP/TCP packets with consistent numbers.

    Nothing is sent: each method returns the packet and advances the sender's
    sequence number, so the same conversation drives the kernel (through
    `LabWire`) and the unit tests of `Tracker`.

    >>> conv = TcpConversation("10.0.1.10", "10.0.2.10", 40000, 7777)
    >>> conv.syn(); conv.synack(); conv.ack("client")
    """

    def __init__(self, client_ip: str, server_ip: str, client_port: int, server_port: int, *,
                 client_isn: int = 1000, server_isn: int = 5000, window: int = 64240) -> None:
        self.ip = {"client": client_ip, "server": server_ip}
        self.port = {"client": client_port, "server": server_port}
        self.next_seq = {"client": client_isn, "server": server_isn}
        self.acked = {"client": 0, "server": 0}      # what each side has received up to
        self.window = window

    @staticmethod
    def _peer(side: str) -> str:
        if side not in ("client", "server"):
            raise PacketlabError(f"side must be 'client' or 'server', not {side!r}")
        return "server" if side == "client" else "client"

    def segment(self, side: str, flags: str, payload: bytes = b"", *, seq: int | None = None,
                ack: int | None = None, window: int | None = None, advance: bool = True) -> Any:
        """Any segment from `side` ('client' or 'server') with scapy flag letters ('S', 'SA', 'FA', 'R', 'PA')."""
        from scapy.layers.inet import IP, TCP as STCP
        from scapy.packet import Raw
        peer = self._peer(side)
        seq_no = self.next_seq[side] if seq is None else seq
        ack_no = (self.acked[side] if ack is None else ack) if "A" in flags else 0
        pkt = IP(src=self.ip[side], dst=self.ip[peer], ttl=64) / STCP(
            sport=self.port[side], dport=self.port[peer], flags=flags, seq=_u32(seq_no), ack=_u32(ack_no),
            window=self.window if window is None else window)
        if payload:
            pkt = pkt / Raw(payload)
        if advance and seq is None:
            used = len(payload) + ("S" in flags) + ("F" in flags)
            self.next_seq[side] = _u32(seq_no + used)
            self.acked[peer] = self.next_seq[side]        # the peer will acknowledge up to here
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
        return self.segment(side, "PA", b"forged", seq=_u32(self.next_seq[side] + offset), advance=False)


#: how to bring a fresh connection into each TCP state: (side, scapy flags) steps
STATE_RECIPES: dict[str, tuple[tuple[str, str], ...]] = {
    "NONE": (),
    "SYN_SENT": (("client", "S"),),
    "SYN_RECV": (("client", "S"), ("server", "SA")),
    "ESTABLISHED": (("client", "S"), ("server", "SA"), ("client", "A")),
    "FIN_WAIT": (("client", "S"), ("server", "SA"), ("client", "A"), ("client", "FA")),
    "CLOSE_WAIT": (("client", "S"), ("server", "SA"), ("client", "A"), ("client", "FA"), ("server", "A")),
    "LAST_ACK": (("client", "S"), ("server", "SA"), ("client", "A"), ("client", "FA"), ("server", "A"),
                 ("server", "FA")),
    "TIME_WAIT": (("client", "S"), ("server", "SA"), ("client", "A"), ("client", "FA"), ("server", "A"),
                  ("server", "FA"), ("client", "A")),
    "CLOSE": (("client", "S"), ("server", "SA"), ("client", "A"), ("client", "R")),
    "SYN_SENT2": (("client", "S"), ("server", "S")),
}

#: the scapy flags of a probe segment for each flag class
PROBE_FLAGS = {"syn": "S", "synack": "SA", "fin": "FA", "ack": "A", "rst": "R", "none": ""}


def reach_state(conv: "TcpConversation", state: str) -> list[Any]:
    """The packets that take a fresh connection of `conv` into TCP `state`."""
    return [conv.segment(side, flags, advance="R" not in flags) for side, flags in STATE_RECIPES[state]]


def probe(conv: "TcpConversation", direction: int, flag_class: str) -> Any:
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
    rules = "".join(f"    {proto} {end} {port} drop\n" for port in ports for proto in ("tcp", "udp")
                    for end in ("sport", "dport"))
    host.run(["nft", "delete", "table", "inet", table])
    host.nft(f"table inet {table} {{\n  chain input {{\n    type filter hook input priority -400; policy accept;\n"
             f"{rules}  }}\n}}\n")


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
                raise PacketlabError(f"no lab host on this wire owns source address {src}",
                                     fix="build the packet with a client or server address of this lab")
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

    def __enter__(self) -> "LabWire":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- the kernel's table ----------------------------------------------------------------------

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


_KV = re.compile(r"^(\w+)=(.*)$")


def parse_conntrack(text: str) -> list[CtEntry]:
    """Parse ``conntrack -L`` output (or /proc/net/nf_conntrack) into CtEntry rows."""
    entries = []
    for line in text.splitlines():
        tokens = line.split()
        if len(tokens) < 4 or "=" not in line:
            continue
        if tokens[0] in ("ipv4", "ipv6"):         # /proc/net/nf_conntrack format
            tokens = tokens[2:]
        proto, protonum = tokens[0], int(tokens[1])
        timeout = int(tokens[2])
        rest = tokens[3:]
        state = None
        if rest and "=" not in rest[0] and not rest[0].startswith("["):
            state, rest = rest[0], rest[1:]
        tuples: list[dict[str, str]] = []
        flags: list[str] = []
        extra: dict[str, str] = {}
        for tok in rest:
            if tok.startswith("[") and tok.endswith("]"):
                flags.append(tok[1:-1])
                continue
            m = _KV.match(tok)
            if not m:
                continue
            key, value = m.groups()
            if key == "src":
                tuples.append({})
            if key in ("src", "dst", "sport", "dport", "type", "code", "id") and tuples:
                tuples[-1][key] = value
            else:
                extra[key] = value
        if len(tuples) != 2:
            continue

        def ft(d: dict[str, str]) -> FlowTuple:
            if protonum == PROTO_ICMP:
                return FlowTuple(PROTO_ICMP, d["src"], d["dst"], int(d.get("id", 0)), int(d.get("type", 0)))
            return FlowTuple(protonum, d["src"], d["dst"], int(d.get("sport", 0)), int(d.get("dport", 0)))

        wanted = [f for f in flags if f in ("ASSURED", "UNREPLIED")]
        entries.append(CtEntry(proto, ft(tuples[0]), ft(tuples[1]), state, timeout, tuple(wanted),
                               int(extra.get("mark", 0)), int(extra.get("zone", 0))))
    return entries


def _conntrack(host: Host, *args: str) -> str:
    try:
        result = host.run(["conntrack", *args])
    except FileNotFoundError:   # pragma: no cover - nsenter reports it instead, below
        result = None
    if result is None or (result.returncode == 127) or "No such file" in (result.stderr or ""):
        raise MissingRequirement("the conntrack tool is not installed",
                                 cause="reading the kernel's connection table uses conntrack-tools",
                                 fix="apt-get install conntrack (vagrant/provision.sh installs it)")
    if not result.ok and "0 flow entries" not in result.stderr:
        raise PacketlabError(f"conntrack {' '.join(args)} failed in {host.name}",
                             cause=(result.stderr or result.stdout).strip(),
                             fix="is connection tracking active in that namespace (an nft rule using ct, or NAT)?")
    return result.stdout


def kernel_table(host: Host, proto: str | None = None) -> list[CtEntry]:
    """The kernel's conntrack table of `host`'s namespace (``conntrack -L``), oldest first
    is not guaranteed: sort as you need."""
    return parse_conntrack(_conntrack(host, "-L", *(["-p", proto] if proto else [])))


def kernel_entry(host: Host, orig: FlowTuple) -> CtEntry | None:
    """The kernel's entry whose original tuple is `orig` (or None)."""
    for e in kernel_table(host, PROTO_NAMES.get(orig.proto)):
        if e.orig == orig:
            return e
    return None


def flush(host: Host) -> None:
    """Empty `host`'s conntrack table (``conntrack -F``, that namespace only)."""
    _conntrack(host, "-F")


def kernel_stats(host: Host) -> dict[str, int]:
    """``conntrack -S``: the namespace's per-CPU counters, summed (found, invalid, insert,
    insert_failed, drop, early_drop, error, ...)."""
    totals: dict[str, int] = {}
    for line in _conntrack(host, "-S").splitlines():
        for key, value in re.findall(r"(\w+)=(\d+)", line):
            if key != "cpu":
                totals[key] = totals.get(key, 0) + int(value)
    return totals


def kernel_count(host: Host) -> int:
    """How many entries `host`'s namespace holds (net.netfilter.nf_conntrack_count)."""
    return int(host.sysctl("net.netfilter.nf_conntrack_count"))


def kernel_timeouts(host: Host) -> dict[str, int]:
    """The namespace's conntrack timeouts (per-namespace sysctls), keyed like DEFAULT_TIMEOUTS."""
    out = dict(DEFAULT_TIMEOUTS)
    for key, name in _SYSCTL_TIMEOUTS.items():
        try:
            out[key] = int(host.sysctl(f"net.netfilter.nf_conntrack_{name}"))
        except OSError:
            pass
    return out


def format_entries(entries: Sequence[CtEntry]) -> str:
    """A text table of conntrack entries."""
    from .bench import format_table
    rows = [(e.proto, _short(e.orig), _short(e.reply), e.state or "-", e.timeout, e.status) for e in entries]
    return format_table(["proto", "original direction", "reply direction", "state", "timeout s", "flags"], rows) \
        if rows else "(no entries)"


def _short(t: FlowTuple) -> str:
    if t.proto == PROTO_ICMP:
        return f"{t.src} > {t.dst} type {t.dport} id {t.sport}"
    return f"{t.src}:{t.sport} > {t.dst}:{t.dport}"


# ---- per-packet verdicts from nftables counters ---------------------------------------------

CT_STATES = ("NEW", "ESTABLISHED", "RELATED", "INVALID", "UNTRACKED")


class CtStateCounters:
    """Count forwarded packets per ``ct state`` in a router, to see how the kernel
    classified each packet (conntrack -L shows connections, not packets).

    The chain runs at forward priority -10, before any filter chain, and only counts.
    """

    TABLE = "plctstate"

    def __init__(self, router: Host, hook: str = "forward") -> None:
        self.router = router
        rules = "".join(f'    ct state {s.lower()} counter comment "{s}"\n' for s in CT_STATES)
        router.nft(f"table inet {self.TABLE} {{\n  chain count {{\n    type filter hook {hook} priority -10; "
                   f"policy accept;\n{rules}  }}\n}}\n")
        self._last = self.read()

    def read(self) -> dict[str, int]:
        from .netfilter import rule_counters
        counts = rule_counters(self.router, "inet", self.TABLE, "count")
        return {s: counts.get(s, 0) for s in CT_STATES}

    def delta(self) -> dict[str, int]:
        """Packets per state since the last call (or since creation)."""
        now = self.read()
        d = {s: now[s] - self._last[s] for s in CT_STATES}
        self._last = now
        return {s: n for s, n in d.items() if n}

    def last(self, *, settle: bool = True) -> str:
        """The states of the packets since the last call, e.g. 'NEW' or 'ESTABLISHED x2'
        (after waiting for the counters to settle, see `settle()`)."""
        return format_tally(self.settle() if settle else self.delta())

    def settle(self, *, quiet: float = 0.04, timeout: float = 2.0) -> dict[str, int]:
        """Wait until the counters have moved and then stayed still for `quiet` seconds
        (answers from the end hosts' kernels included), and return the delta since the
        last call. Polling instead of a fixed sleep keeps a loaded machine from cutting
        a step short; with no traffic at all it gives up after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        previous, changed_at = self.read(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(quiet / 2)
            current = self.read()
            if current != previous:
                previous, changed_at = current, time.monotonic()
            elif current != self._last and time.monotonic() - changed_at >= quiet:
                break
        d = {s: previous[s] - self._last[s] for s in CT_STATES}
        self._last = previous
        return {s: n for s, n in d.items() if n}


def format_tally(tally: dict[str, int]) -> str:
    """{"NEW": 1, "ESTABLISHED": 2} -> 'NEW, ESTABLISHED x2' (in CT_STATES order)."""
    ordered = [s for s in CT_STATES if tally.get(s)]
    return ", ".join(s if tally[s] == 1 else f"{s} x{tally[s]}" for s in ordered) or "(none)"


# ---- comparing the two tables ----------------------------------------------------------------

@dataclass
class Comparison:
    """One connection as the kernel and the tracker see it."""
    key: FlowTuple
    kernel: CtEntry | None
    tracker: CtEntry | None

    @property
    def agree(self) -> bool:
        k, t = self.kernel, self.tracker
        return bool(k and t and k.state == t.state and set(k.flags) == set(t.flags))


def compare(kernel: Sequence[CtEntry], tracker: Sequence[CtEntry]) -> list[Comparison]:
    """Pair entries by original tuple; entries only one side has are listed too."""
    k = {e.key: e for e in kernel}
    t = {e.key: e for e in tracker}
    keys = sorted(set(k) | set(t), key=lambda x: (x.proto, x.src, x.sport, x.dst, x.dport))
    return [Comparison(key, k.get(key), t.get(key)) for key in keys]


def format_comparison(rows: Sequence[Comparison]) -> str:
    from .bench import format_table

    def side(e: CtEntry | None) -> str:
        return "(absent)" if e is None else f"{e.state or '-'} {e.status} {e.timeout}s"

    table = [(_short(r.key), side(r.kernel), side(r.tracker), "yes" if r.agree else "NO") for r in rows]
    return format_table(["connection (original direction)", "kernel", "our tracker", "agree"], table)


# ---- a step-by-step walk for the lab -----------------------------------------------------------

@dataclass
class Step:
    """One crafted packet and what the kernel and the tracker made of it."""
    label: str
    packet: str
    kernel_ctinfo: str
    kernel: CtEntry | None
    tracker_ctinfo: str | None = None
    tracker: CtEntry | None = None
    reason: str = ""


class Walkthrough:
    """Send crafted packets through a router one at a time and record, after each,
    the kernel's verdict (from `CtStateCounters`), its table entry, and — if a
    `Tracker` is given — what the userspace tracker made of the same traffic.

    The tracker is fed what the router's interfaces actually received during
    the step (captured on `devices`), so answers from the end hosts' kernels
    (an echo reply, an ICMP error) are tracked too, exactly as the router saw them.
    """

    def __init__(self, router: Host, wire: LabWire, counters: CtStateCounters,
                 tracker: Tracker | None = None, *, devices: Sequence[str] = ("eth0", "eth1")) -> None:
        self.router, self.wire, self.counters, self.tracker = router, wire, counters, tracker
        self.devices = tuple(devices)
        self._macs = {dev: router.mac(dev) for dev in self.devices}
        self.steps: list[Step] = []

    def _send_captured(self, pkt: Any) -> tuple[list[Any], dict[str, int]]:
        with contextlib.ExitStack() as stack:
            caps = [stack.enter_context(self.router.capture(dev, filter=f"ether dst {mac} and ip", settle=0.02))
                    for dev, mac in self._macs.items()]
            self.wire.send(pkt)
            verdicts = self.counters.settle()      # the capture runs until the router has gone quiet
        return sorted((f for cap in caps for f in cap), key=lambda f: float(f.time)), verdicts

    def send(self, label: str, pkt: Any) -> Step:
        """Send `pkt`, then read the kernel's verdict and entry (and the tracker's)."""
        seg = segment_from_packet(pkt)
        self.counters.delta()
        if self.tracker is not None:
            frames, verdicts = self._send_captured(pkt)
        else:
            self.wire.send(pkt)
            verdicts = self.counters.settle()
        step = Step(label, seg.describe() if seg else pkt.summary(), format_tally(verdicts), None)
        key = seg.inner if seg and seg.inner else seg.tuple if seg else None
        if key is not None:
            step.kernel = kernel_entry(self.router, key) or kernel_entry(self.router, key.inverted())
        if self.tracker is not None:
            decisions = [self.tracker.feed(f) for f in frames]
            tally: dict[str, int] = {}
            for d in decisions:
                if d.ctinfo:
                    tally[d.ctinfo] = tally.get(d.ctinfo, 0) + 1
            step.tracker_ctinfo = format_tally(tally)
            step.reason = "; ".join(d.reason for d in decisions if d.reason)
            hit = self.tracker.lookup(key) or self.tracker.lookup(key.inverted()) if key is not None else None
            step.tracker = hit[0].entry(time.time()) if hit else None
        self.steps.append(step)
        return step

    def table(self) -> str:
        """The steps as a text table: kernel columns, then the tracker's."""
        from .bench import format_table
        rows = []
        for s in self.steps:
            k, t = s.kernel, s.tracker
            row = [s.label, s.packet, s.kernel_ctinfo, (k.state or "-") if k else "(none)",
                   k.timeout if k else "-", k.status if k else "-"]
            if self.tracker is not None:
                row += [s.tracker_ctinfo or "-", ((t.state or "-") + " " + t.status) if t else "(none)"]
            rows.append(row)
        headers = ["step", "packet", "kernel: packet", "kernel: entry", "timeout", "flags"]
        if self.tracker is not None:
            headers += ["tracker: packet", "tracker: entry"]
        return format_table(headers, rows)

    def agree(self) -> bool:
        """Did the tracker classify every packet and leave every entry as the kernel did?"""
        return not self.disagreements()

    def disagreements(self) -> list[str]:
        """The steps where the tracker and the kernel differ (empty when they agree)."""
        return [f"{s.label}: kernel {s.kernel_ctinfo} {s.kernel}, tracker {s.tracker_ctinfo} {s.tracker}"
                for s in self.steps if not _same_step(s)]


def _same_step(s: Step) -> bool:
    k, t = s.kernel, s.tracker
    entries = (k is None) == (t is None) and (k is None or (k.state == t.state and set(k.flags) == set(t.flags)))
    return s.kernel_ctinfo == s.tracker_ctinfo and entries
