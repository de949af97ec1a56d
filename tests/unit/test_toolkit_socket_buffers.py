"""Receive buffers past rmem_max, and the socket's own drop count (real sockets on loopback)."""

import os
import socket
from pathlib import Path

from packetlab.topo.socket_buffers import grow_receive_buffer, socket_drops


def udp_pair() -> tuple[socket.socket, socket.socket]:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx.connect(rx.getsockname())
    return rx, tx


def test_root_gets_a_buffer_past_rmem_max_and_others_get_the_cap():
    rmem_max = int(Path("/proc/sys/net/core/rmem_max").read_text())
    rx, tx = udp_pair()
    with rx, tx:
        granted = grow_receive_buffer(rx, 2 * rmem_max)
    if os.geteuid() == 0:
        assert granted >= 2 * rmem_max  # the kernel doubles the request for its bookkeeping
    else:
        assert granted <= 2 * rmem_max  # SO_RCVBUF's silent cap, not an error


def test_datagrams_a_full_buffer_refused_are_counted():
    rx, tx = udp_pair()
    with rx, tx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)  # the kernel's minimum
        for _ in range(200):
            tx.send(b"x" * 512)  # loopback delivers (or drops) before send returns
        rx.setblocking(False)
        received = 0
        while True:
            try:
                rx.recv(1024)
            except BlockingIOError:
                break
            received += 1
        assert 0 < received < 200
        assert received + socket_drops(rx) == 200
