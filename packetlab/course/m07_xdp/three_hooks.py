"""One UDP flow seen by three hooks on h2: XDP, tc clsact ingress and a socket filter (lab 07).

`bpf/07-three-hooks.c` holds the three programs; each counts the lab's flow (UDP to
`LAB_PORT`) and everything else, and drops the flow when its `drop` map says so. Dropping
at one hook shows the order on the receive path: what XDP drops, tc never sees; what tc
drops, no socket sees; a socket filter drops only for its own socket. Everything it
attaches is detached, and the socket closed, before `compare_hooks` returns.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.ebpf.loader import LoadedProgram
from packetlab.show.tables import format_table
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.topo.host import Host

PROGRAM = "bpf/07-three-hooks.c"
LAB_PORT = 7007  # as in the C file
SO_ATTACH_BPF = 50  # <asm-generic/socket.h>; Python's socket module does not name it
HOOKS = ("xdp", "tc", "socket")


@dataclass(frozen=True)
class HookRun:
    """What each hook counted for one round of `sent` datagrams (and `pings` pings besides)."""

    drop_at: str | None
    sent: int
    xdp: int
    tc: int
    socket: int
    received: int  # what the application's recv() got
    xdp_other: int  # frames of other traffic (pings, ARP) at XDP ...
    tc_other: int  # ... and at tc; the socket filter never sees them


def compare_hooks(sender: Host, receiver: Host, dst_ip: str, *, count: int = 20, pings: int = 2) -> list[HookRun]:
    """Send `count` datagrams (and `pings` pings) per round; drop nowhere, then at each hook in turn."""
    xdp = receiver.attach_xdp(PROGRAM, dev="eth0", function="xdp_hook", fresh=True)
    tc = receiver.attach_tc(PROGRAM, dev="eth0", function="tc_hook", fresh=True)
    sock_prog = LoadedProgram(PROGRAM, function="socket_hook", prog_type="socket_filter")
    with netns.entered(receiver.namespace):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with netns.entered(sender.namespace):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    programs = {"xdp": xdp.program, "tc": tc.program, "socket": sock_prog}
    try:
        rx.bind((dst_ip, LAB_PORT))
        rx.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack("i", sock_prog.fd))
        rx.setblocking(False)
        runs = []
        for drop_at in (None, *HOOKS):
            for name, prog in programs.items():
                prog.reset_maps()
                prog["drop"][prog["drop"].Key(0)] = prog["drop"].Leaf(1 if name == drop_at else 0)
            if pings:
                sender.ping(dst_ip, count=pings, interval=0.05, timeout=1)
            for i in range(count):
                tx.sendto(f"three hooks {i}".encode(), (dst_ip, LAB_PORT))
            received = _drain(rx, count)
            seen = {name: prog.table("seen") for name, prog in programs.items()}
            runs.append(
                HookRun(
                    drop_at,
                    count,
                    xdp=int(seen["xdp"].get(0, 0)),
                    tc=int(seen["tc"].get(0, 0)),
                    socket=int(seen["socket"].get(0, 0)),
                    received=received,
                    xdp_other=int(seen["xdp"].get(1, 0)),
                    tc_other=int(seen["tc"].get(1, 0)),
                )
            )
        return runs
    finally:
        tx.close()
        rx.close()
        sock_prog.close()
        tc.detach()
        xdp.detach()


def _drain(rx: socket.socket, expect: int, timeout: float = 0.3) -> int:
    """Datagrams the socket received, waiting up to `timeout` s for `expect` of them."""
    got, deadline = 0, time.monotonic() + timeout
    while got < expect and time.monotonic() < deadline:
        try:
            rx.recv(2048)
            got += 1
        except BlockingIOError:
            time.sleep(0.01)
    return got


def hooks_table(runs: list[HookRun]) -> str:
    rows = [[r.drop_at or "nowhere", r.sent, r.xdp, r.tc, r.socket, r.received, r.xdp_other, r.tc_other] for r in runs]
    return format_table(
        ["dropped at", "sent", "XDP saw", "tc saw", "socket filter saw", "recv() got", "XDP: other", "tc: other"],
        rows,
    )
