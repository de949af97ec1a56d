"""Module 11b's C assignments: what the learner writes, and the hidden packets that grade it.

* 11b.A1 — count a packet into its flow record: the `flow-record` region of bpf/11b-flow.c
  (packets, bytes, first/last seen, TCP flags OR-ed in, the end of a flow on FIN/RST, and a
  full table counted, not crashed into). The record is checked after a few frames of a flow.
* 11b.A2 — finish the flow key: the `flow-ports` region of bpf/11b-flow.c (ports from TCP and
  UDP, type/code for ICMP and ICMPv6, the TCP flags byte; none from a later fragment or a
  truncated header).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw

from packetlab.course.assignments import Assignment, Case
from packetlab.ebpf.loader import LoadedProgram
from packetlab.tools.analyzer.records import STATS, FlowKey, FlowRecord, decode_record, tcp_flag_str

SKELETON = "bpf/11b-flow.c"
TABLE_SIZE = 4  # -DMAX_FLOWS: small, so one case can fill the table
_E = Ether(src="02:00:00:00:0b:01", dst="02:00:00:00:0b:02")
A, B = "10.11.0.1", "10.11.0.2"


def _tcp(flags: str, sport: int = 40000, dport: int = 80, payload: bytes = b"") -> Packet:
    return _E / IP(src=A, dst=B) / TCP(sport=sport, dport=dport, flags=flags) / payload


def _udp(sport: int, dport: int, src: str = A, dst: str = B) -> Packet:
    return _E / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / b"flow"


def records(prog: LoadedProgram) -> list[FlowRecord]:
    """The flow table, decoded (times stay bpf_ktime_get_ns nanoseconds)."""
    return [decode_record(bytes(k), bytes(v), to_wall=float) for k, v in prog["flows"].items()]


def counters(prog: LoadedProgram) -> dict[str, int]:
    """The program's per-CPU counters, summed: packets, bytes, flows, table_full, events, ..."""
    table = prog.table("stats")
    return {name: int(table.get(i, 0)) for i, name in enumerate(STATS)}


def _show(r: FlowRecord | None) -> str:
    if r is None:
        return "no record"
    return (
        f"packets {r.packets}, bytes {r.bytes}, flags {tcp_flag_str(r.tcp_flags) or '-'}, "
        f"ended {'yes' if r.ended else 'no'}"
    )


def _send(*frames: Packet) -> Callable[[LoadedProgram], None]:
    """A case's `prepare`: the frames of the flow that came before the graded one."""

    def prepare(prog: LoadedProgram) -> None:
        for f in frames:
            prog.test_run(f)

    return prepare


# ---- 11b.A1: the flow record ------------------------------------------------------------------------
def _expect_record(
    frames: Sequence[Packet], flags: str, ended: bool, stats: dict[str, int], records_total: int = 1
) -> Callable[[LoadedProgram], tuple[str, str] | None]:
    """A case's `after`: the record of the flow of `frames` (all of them counted), then the counters."""
    key = FlowKey(frames[0][IP].proto, frames[0][IP].src, frames[0][IP].dst, frames[0].sport, frames[0].dport)
    want = FlowRecord(key, len(frames), sum(len(f) for f in frames), 0.0, 0.0, _flag_bits(flags), ended)

    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        recs = records(prog)
        got = next((r for r in recs if r.key == key), None)
        name = f"flows[{key}]"
        if got is None or (got.packets, got.bytes, got.tcp_flags, got.ended) != (
            want.packets,
            want.bytes,
            want.tcp_flags,
            want.ended,
        ):
            return f"{name}: {_show(want)}", f"{name}: {_show(got)}"
        if not got.first or got.last < got.first:
            return f"{name}: first_ns = now of the first packet, last_ns >= first_ns", (
                f"first_ns {got.first:.0f}, last_ns {got.last:.0f}"
            )
        if len(frames) > 1 and got.last == got.first:
            return f"{name}: last_ns = now of the latest packet (later than first_ns)", "last_ns == first_ns"
        if len(frames) == 1 and got.last != got.first:
            return f"{name}: first_ns == last_ns for a flow of one packet", (
                f"first_ns {got.first:.0f}, last_ns {got.last:.0f}"
            )
        if len(recs) != records_total:
            return f"{records_total} record(s) in flows", f"{len(recs)}: " + "; ".join(str(r.key) for r in recs)
        c = counters(prog)
        wrong = {k: c[k] for k, v in stats.items() if c[k] != v}
        if wrong:
            return "counters " + _kv(stats), "counters " + _kv({k: c[k] for k in stats})
        return None

    return after


def _flag_bits(flags: str) -> int:
    return int(TCP(flags=flags).flags) if flags else 0


def _kv(d: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in d.items())


def _table_full(prog: LoadedProgram) -> tuple[str, str] | None:
    c = counters(prog)
    recs = records(prog)
    want = {"flows": TABLE_SIZE, "table_full": 1}
    if len(recs) != TABLE_SIZE or any(c[k] != v for k, v in want.items()):
        return (
            f"{TABLE_SIZE} records (the new flow not recorded), counters {_kv(want)}",
            f"{len(recs)} records, counters " + _kv({k: c[k] for k in want}),
        )
    return None


def _record_cases() -> list[Case]:
    syn, ack = _tcp("S"), _tcp("A")
    data, fin, rst = _tcp("PA", payload=b"GET / HTTP/1.1\r\n\r\n"), _tcp("FA"), _tcp("R")
    udp, back = _udp(53000, 53), _udp(53, 53000, src=B, dst=A)
    full = [_udp(1000 + i, 9) for i in range(TABLE_SIZE)]
    return [
        Case("the first packet of a flow (TCP SYN)", syn, after=_expect_record([syn], "S", False, {"flows": 1})),
        Case(
            "the third segment of a flow (after SYN and ACK)",
            data,
            prepare=_send(syn, ack),
            after=_expect_record([syn, ack, data], "SPA", False, {"flows": 1, "events": 1}),
        ),
        Case(
            "FIN ends the flow",
            fin,
            prepare=_send(syn),
            after=_expect_record([syn, fin], "SFA", True, {"flows": 1, "events": 2}),
        ),
        Case(
            "a second FIN after the end (no second FLOW_END)",
            fin,
            prepare=_send(syn, fin),
            after=_expect_record([syn, fin, fin], "SFA", True, {"flows": 1, "events": 2}),
        ),
        Case(
            "a flow of one RST (starts and ends at once)",
            rst,
            after=_expect_record([rst], "R", True, {"flows": 1, "events": 2}),
        ),
        Case(
            "the reply direction (B->A is a flow of its own)",
            back,
            prepare=_send(udp, udp),
            after=_expect_record([back], "", False, {"flows": 2, "events": 2}, records_total=2),
        ),
        Case(
            f"a new flow when the table is full ({TABLE_SIZE} flows)",
            _udp(2000, 9),
            verdict="XDP_PASS",
            prepare=_send(*full),
            after=_table_full,
        ),
    ]


FLOW_RECORD = Assignment(
    key="11b.A1",
    title="the flow record",
    starter="bpf/11b-assign-flow-record.c",
    solution="bpf/solutions/11b-assign-flow-record.c",
    skeleton=SKELETON,
    region="flow-record",
    cases=_record_cases,
    cflags=(f"-DMAX_FLOWS={TABLE_SIZE}",),
    try_it="write the flow-record update in bpf/11b-assign-flow-record.c, delete its TODO markers, then run the "
    "check again",
    hint="val = flows.lookup(&key); found: __sync_fetch_and_add packets and bytes, last_ns = now, tcp_flags |= flags, "
    "first FIN/RST: ended = 1 and emit EV_FLOW_END; not found: a struct flow_value init, flows.update(&key, &init) "
    "== 0 ? count STAT_FLOWS + emit EV_FLOW_START (+ EV_FLOW_END if ended) : count STAT_TABLE_FULL",
)


# ---- 11b.A2: the ports of the flow key --------------------------------------------------------------
def _expect_key(key: FlowKey, flags: str = "") -> Callable[[LoadedProgram], tuple[str, str] | None]:
    """A case's `after`: exactly one record, under `key`, with the TCP flags `flags`."""

    def after(prog: LoadedProgram) -> tuple[str, str] | None:
        recs = records(prog)
        want = f"one record: {key}, flags {flags or '-'}"
        if len(recs) == 1 and recs[0].key == key and recs[0].tcp_flags == _flag_bits(flags):
            return None
        got = "; ".join(f"{r.key}, flags {tcp_flag_str(r.tcp_flags) or '-'}" for r in recs) or "no record"
        return want, f"{len(recs)} record(s): {got}"

    return after


def _ports_cases() -> list[Case]:
    v6a, v6b = "fd11::1", "fd11::2"
    frag = _E / IP(src=A, dst=B, proto=17, frag=185) / Raw(bytes(UDP(sport=7, dport=7)) + b"x" * 32)
    cut = _E / IP(src=A, dst=B, proto=6) / Raw(bytes(TCP(sport=40000, dport=80, flags="S"))[:10])
    cases = [
        ("IPv4 TCP SYN", _tcp("S"), FlowKey(6, A, B, 40000, 80), "S"),
        ("IPv4 UDP DNS query", _udp(53000, 53), FlowKey(17, A, B, 53000, 53), ""),
        (
            "IPv6 TCP SYN-ACK",
            _E / IPv6(src=v6b, dst=v6a) / TCP(sport=443, dport=41000, flags="SA"),
            FlowKey(6, v6b, v6a, 443, 41000),
            "SA",
        ),
        ("ICMP echo request", _E / IP(src=A, dst=B) / ICMP(type=8), FlowKey(1, A, B, 0, 8 << 8), ""),
        (
            "ICMP port unreachable (type 3, code 3)",
            _E / IP(src=B, dst=A) / ICMP(type=3, code=3) / IP(src=A, dst=B) / UDP(sport=5, dport=9),
            FlowKey(1, B, A, 0, 3 << 8 | 3),
            "",
        ),
        (
            "ICMPv6 echo request",
            _E / IPv6(src=v6a, dst=v6b) / ICMPv6EchoRequest(),
            FlowKey(58, v6a, v6b, 0, 128 << 8),
            "",
        ),
        ("a later IPv4 fragment (offset 1480: no UDP header)", frag, FlowKey(17, A, B, 0, 0), ""),
        ("a TCP header cut short (10 of 20 bytes)", cut, FlowKey(6, A, B, 0, 0), ""),
    ]
    return [Case(name, frame, verdict="XDP_PASS", after=_expect_key(key, fl)) for name, frame, key, fl in cases]


FLOW_PORTS = Assignment(
    key="11b.A2",
    title="the ports of the flow key",
    starter="bpf/11b-assign-flow-ports.c",
    solution="bpf/solutions/11b-assign-flow-ports.c",
    skeleton=SKELETON,
    region="flow-ports",
    cases=_ports_cases,
    try_it="write the port extraction in bpf/11b-assign-flow-ports.c, delete its TODO markers, then run the check "
    "again",
    hint="if (later_fragment) {} else if (proto == IPPROTO_TCP) { parse_tcphdr(&c, &th) == 0: key.sport = "
    "bpf_ntohs(th->source), key.dport = bpf_ntohs(th->dest), flags = ((u8 *)th)[13] } else if UDP {...} else if "
    "ICMP or ICMPv6 { parse_icmphdr(&c, &ih) >= 0: key.dport = type << 8 | code }",
)

ASSIGNMENTS = (FLOW_RECORD, FLOW_PORTS)
