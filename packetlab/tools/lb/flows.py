"""The connection tracker's state machine — the Python twin of lb_next_state() in bpf/09-lb.c.

The load balancer only needs to know three things about a flow: which backend
it uses, whether it is still alive, and whether a SYN on a known 5-tuple is a
*new* connection (the client reused a port after the old connection closed) —
in which case it is balanced afresh instead of following the old entry. It
tracks TCP flags, not sequence numbers: far less than the kernel's conntrack,
and all the load balancer needs.

In DSR mode the LB sees only the client's side of a connection (replies go
straight from the backend to the client); in NAT mode it sees both.
"""

from __future__ import annotations

import functools
import gzip
import ipaddress
import socket
import time
from dataclasses import dataclass

from packetlab.tools.lb.layout import Conn, Flow

NONE, SYN_SENT, ESTABLISHED, FIN_WAIT, CLOSED, UDP = range(6)
STATE_NAMES = {
    NONE: "none",
    SYN_SENT: "syn_sent",
    ESTABLISHED: "established",
    FIN_WAIT: "fin_wait",
    CLOSED: "closed",
    UDP: "udp",
}
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
_FLAG_LETTERS = {"F": FIN, "S": SYN, "R": RST, "P": PSH, "A": ACK}


def flags_from(text: str | int) -> int:
    """TCP flags from scapy-style letters ("S", "SA", "FA", "R") or an int."""
    if isinstance(text, int):
        return text
    out = 0
    for ch in text.upper():
        out |= _FLAG_LETTERS.get(ch, 0)
    return out


def next_state(state: int, proto: int | str, flags: int | str, from_client: bool) -> int:
    """The state after one packet (bpf/09-lb.c: lb_next_state, rule for rule)."""
    if proto not in (6, "tcp"):
        return UDP
    f = flags_from(flags)
    if f & RST:
        return CLOSED
    if f & FIN:
        return CLOSED if state == CLOSED else FIN_WAIT
    if f & SYN and not f & ACK:
        return SYN_SENT if from_client else state
    if f & SYN:  # SYN-ACK from the backend
        return SYN_SENT if state == NONE else state
    if state == NONE or (state == SYN_SENT and from_client):
        return ESTABLISHED
    return state


def starts_new_connection(state: int, flags: int | str) -> bool:
    """A client SYN on a closed/closing entry is a new connection: balance it again."""
    f = flags_from(flags)
    return bool(f & SYN) and not f & ACK and state in (FIN_WAIT, CLOSED)


def replay(packets: list[tuple[str | int, bool]], proto: int | str = "tcp") -> list[int]:
    """States after each (flags, from_client) packet of one flow, starting from a new entry."""
    state, out = NONE, []
    for flags, from_client in packets:
        if starts_new_connection(state, flags):
            state = NONE
        state = next_state(state, proto, flags, from_client)
        out.append(state)
    return out


@dataclass
class Connection:
    """One entry of the XDP connection table, decoded."""

    client: str
    client_port: int
    vip: str
    vip_port: int
    protocol: str
    backend: str
    state: str
    age_s: float
    idle_s: float
    packets: int
    reply_packets: int
    tcp_flags: int

    @property
    def flow(self) -> str:
        return f"{self.protocol} {self.client}:{self.client_port} -> {self.vip}:{self.vip_port}"


def decode_connection(key: Flow, conn: Conn, backend: str, now_ns: int, now_jiffies: int) -> Connection:
    """One `conns` map entry (key and value as bpf/09-lb.c writes them) as a `Connection`."""
    return Connection(
        client=ip_from_be(key.src),
        client_port=port_from_be(key.sport),
        vip=ip_from_be(key.dst),
        vip_port=port_from_be(key.dport),
        protocol={6: "tcp", 17: "udp"}.get(key.proto, str(key.proto)),
        backend=backend,
        state=STATE_NAMES.get(conn.state, str(conn.state)),
        age_s=max(0, now_ns - conn.created_ns) / 1e9,
        idle_s=idle_seconds(conn.last_jiffies, now_jiffies),
        packets=conn.packets,
        reply_packets=conn.reply_packets,
        tcp_flags=conn.tcp_flags,
    )


def jiffies_now() -> int:
    """The kernel's jiffies counter (the clock of bpf_jiffies64()), from /proc/timer_list."""
    with open("/proc/timer_list") as f:
        for line in f:
            if line.startswith("jiffies:"):
                return int(line.split()[1])
    raise OSError("no 'jiffies:' line in /proc/timer_list")


@functools.lru_cache(maxsize=1)
def hz() -> int:
    """Jiffies per second (CONFIG_HZ), from /proc/config.gz or measured against CLOCK_MONOTONIC."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            for line in f:
                if line.startswith("CONFIG_HZ="):
                    return int(line.split("=")[1])
    except OSError:
        pass
    t0, j0 = time.monotonic(), jiffies_now()
    time.sleep(0.2)
    rate = (jiffies_now() - j0) / (time.monotonic() - t0)
    return min((100, 250, 300, 1000), key=lambda h: abs(h - rate))


def idle_seconds(last_jiffies: int, now_jiffies: int | None = None) -> float:
    now = jiffies_now() if now_jiffies is None else now_jiffies
    return max(0, now - last_jiffies) / hz()


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC_COARSE in ns — the clock of bpf_ktime_get_coarse_ns(), which the
    data path uses because it costs a few ns instead of ~25 (one tick of resolution)."""
    return time.clock_gettime_ns(getattr(time, "CLOCK_MONOTONIC_COARSE", 6))  # 6 on Linux


def ip_from_be(value: int) -> str:
    return str(ipaddress.IPv4Address(value.to_bytes(4, "little")))


def port_from_be(value: int) -> int:
    return socket.ntohs(value)


def flags_text(flags: int) -> str:
    return "".join(ch for ch, bit in _FLAG_LETTERS.items() if flags & bit) or "-"
