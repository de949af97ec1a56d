"""A userspace connection tracker: the 5-tuple state machine of nf_conntrack,
fed with packets (for example captured on a router).

It follows ``net/netfilter/nf_conntrack_proto_{tcp,udp,icmp}.c``: the TCP
state table (`TCP_TABLE`), window tracking, the RST rules, pickup,
ASSURED/UNREPLIED, timeouts, and ICMP errors RELATED to the flow they quote.

What it leaves out, on purpose: IPv6, NAT sequence adjustment, SACK blocks in
window checks, helpers/expectations (FTP, SIP...), zones, and the shortening of
timeouts after repeated invalid FIN/RST. It is a teaching model that agrees
with the kernel on the traffic the lab sends — the tests check exactly that,
cell by cell of the state table.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from packetlab.proto.conntrack.states import (
    ACK,
    DEFAULT_TIMEOUTS,
    ICMP_ERRORS,
    ICMP_REPLY_TYPE,
    ICMP_REQUESTS,
    ORIGINAL,
    PROTO_ICMP,
    PROTO_NAMES,
    PROTO_TCP,
    PROTO_UDP,
    REPLY,
    RST,
    SYN,
    TCP_TABLE,
    CtEntry,
    FlowTuple,
    Segment,
    after,
    before,
    flag_class,
    segment_from_packet,
    u32,
    valid_flag_combination,
)

# ---- the tracker's connection records -------------------------------------------------------

# per-direction TCP window flags (IP_CT_TCP_FLAG_*)
_F_WSCALE, _F_SACK_PERM, _F_CLOSE_INIT, _F_LIBERAL, _F_DATA_UNACK, _F_MAXACK_SET = 1, 2, 4, 8, 16, 32


@dataclass
class _Seen:
    """What conntrack knows about one direction of a TCP connection (struct ip_ct_tcp_state)."""

    td_end: int = 0  # highest seq + len sent
    td_maxend: int = 0  # highest ack + window the receiver allowed
    td_maxwin: int = 0  # largest window seen
    td_maxack: int = 0  # highest ack sent
    td_scale: int = 0
    flags: int = 0


@dataclass
class Conn:
    """One tracked connection (the userspace twin of struct nf_conn)."""

    orig: FlowTuple
    reply: FlowTuple
    created: float
    expires: float = 0.0
    state: str | None = None  # TCP only
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

    def entry(self, now: float) -> CtEntry:
        return CtEntry(PROTO_NAMES[self.proto], self.orig, self.reply, self.state, self.timeout_left(now), self.flags())


@dataclass
class Decision:
    """What the tracker made of one packet."""

    segment: Segment
    ctinfo: str | None  # NEW, ESTABLISHED, RELATED, INVALID (None: not tracked here)
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

    def __init__(
        self,
        timeouts: dict[str, int] | None = None,
        *,
        loose: bool = True,
        be_liberal: bool = False,
        ignore_invalid_rst: bool = False,
        max_retrans: int = 3,
    ) -> None:
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
            decision = Decision(
                Segment(FlowTuple(0, "", "", 0, 0), now or time.time()),
                None,
                reason="not IPv4 TCP/UDP/ICMP: not tracked here",
            )
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

    def entries(self, now: float | None = None) -> list[CtEntry]:
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
            conn.seen_reply = True  # nf_conntrack_in() sets IPS_SEEN_REPLY after the protocol accepts

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
        for _attempt in range(2):  # a reopened connection is looked up again (NF_REPEAT)
            hit = self.lookup(seg.tuple, seg.time)
            fresh = hit is None
            if hit is None:
                conn = self._tcp_new(seg)
                if conn is None:
                    why = (
                        "cannot start a connection"
                        if self.loose or flag_class(seg.flags) == "syn"
                        else "not a SYN and nf_conntrack_tcp_loose=0"
                    )
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
        else:  # picked up mid-stream: the history is lost, trust the packet and be liberal
            s.td_end = seg.end
            s.td_maxwin = seg.window or 1
            s.td_maxend = u32(s.td_end + s.td_maxwin)
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
            sender.td_scale = receiver.td_scale = 0  # RFC 7323: scaling only if both sides offer it

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
            if (
                index == "synack"
                and conn.last_index == "syn"
                and conn.last_dir != direction
                and seg.ack == conn.last_end
            ):
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
            return (
                "invalid",
                f"{index.upper()} from the {'reply' if direction else 'original'} side is not allowed in {old}",
            )
        elif new == "TIME_WAIT":
            if (
                old == "LAST_ACK"
                and index == "ack"
                and conn.last_dir != direction
                and conn.last_index == "syn"
                and conn.challenge_ack
            ):
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
            return new, True, "", False  # closing anyway: no sequence checks
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
        if (
            (conn.seen_reply and conn.last_index == "syn") or (not conn.assured and conn.last_index == "ack")
        ) and seg.ack == conn.last_end:
            return new, True, "RST answering a segment we let through", False
        if old == "SYN_SENT" and conn.last_index == "ack" and conn.last_dir == REPLY and seg.seq == conn.last_ack:
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
                    return "accept", ""  # simultaneous open
            else:
                sender.td_end = end
                swin = u32(win << sender.td_scale)
                sender.td_maxwin = swin or 1
                sender.td_maxend = u32(end + sender.td_maxwin)
                if receiver.td_maxwin == 0:
                    receiver.td_end = receiver.td_maxend = ack
                elif ack == u32(receiver.td_end + 1):
                    receiver.td_end = u32(receiver.td_end + 1)
        elif seg.flags & SYN and after(end, sender.td_end) and conn.state in ("SYN_SENT", "SYN_RECV"):
            self._init_sender(conn, direction, seg)  # re-initialised SYN (RFC 793)
            if direction == REPLY and not seg.flags & ACK:
                return "accept", ""

        if not seg.flags & ACK or seg.flags & RST and ack == 0:
            ack = receiver.td_end
        if seg.flags & RST and seq == 0 and conn.state == "SYN_SENT":
            seq = end = sender.td_end

        maxackwin = max(sender.td_maxwin, _MAXACKWINCONST)
        if not before(seq, u32(sender.td_maxend + 1)):
            overshot = u32(end - sender.td_maxend + 1)
            ack_ok = after(ack, u32(receiver.td_end - maxackwin - 1))
            in_recv_win = receiver.td_maxwin and after(end, u32(sender.td_end - receiver.td_maxwin - 1))
            if in_recv_win and ack_ok and overshot <= receiver.td_maxwin and before(ack, u32(receiver.td_end + 1)):
                sender.td_end = end  # a TCP sending a little more than allowed
                sender.flags |= _F_DATA_UNACK
                return problem("ignore", f"{overshot} bytes more than the receiver's window")
            return problem(
                "invalid",
                f"SEQ {seq} is over the upper bound {u32(sender.td_maxend + 1)} (beyond the receiver's window)",
            )
        if not before(ack, u32(receiver.td_end + 1)):
            return problem(
                "invalid",
                f"ACK {ack} is over the upper bound {u32(receiver.td_end + 1)} (acknowledges data not sent yet)",
            )
        if receiver.td_maxwin and not after(end, u32(sender.td_end - receiver.td_maxwin - 1)):
            return problem("ignore", "SEQ under the lower bound (old data retransmitted)")
        if not after(ack, u32(receiver.td_end - maxackwin - 1)):
            return problem("ignore", "ACK under the lower bound (a very late ACK)")

        if not seg.flags & SYN:
            win = u32(win << sender.td_scale)
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
            receiver.td_maxwin = u32(receiver.td_maxwin + end - sender.td_maxend)
        if after(u32(ack + win), u32(receiver.td_maxend - 1)):
            receiver.td_maxend = u32(ack + win + (1 if win == 0 else 0))
        if ack == receiver.td_end:
            receiver.flags &= ~_F_DATA_UNACK
        if index == "ack":
            if (
                conn.last_dir == direction
                and conn.last_seq == seq
                and conn.last_ack == ack
                and conn.last_end == end
                and conn.last_win == win_raw
            ):
                conn.retrans += 1
            else:
                conn.last_dir, conn.last_seq, conn.last_ack = direction, seq, ack
                conn.last_end, conn.last_win, conn.retrans = end, win_raw, 0
        return "accept", ""
