"""Receive buffers big enough for a lab's bursts, and the drops when they were not.

A socket asking for a large buffer with SO_RCVBUF is silently capped at
`net.core.rmem_max` (about 200 KiB on a stock kernel): a Python reader that falls
behind for a fraction of a second on a busy machine then loses packets at its own
socket, and a lab would blame the network for them. Root may go past the cap with
SO_RCVBUFFORCE; the kernel counts what a full buffer still dropped (SO_MEMINFO).
"""

from __future__ import annotations

import socket
import struct

# <asm-generic/socket.h> and <linux/sock_diag.h>; Python's socket module lacks them
SO_RCVBUFFORCE = 33
SO_MEMINFO = 55
SK_MEMINFO_DROPS = 8
SK_MEMINFO_VARS = 9


def grow_receive_buffer(sock: socket.socket, size: int) -> int:
    """Give `sock` a receive buffer of `size` bytes: past rmem_max as root
    (SO_RCVBUFFORCE), else as much as rmem_max allows. Returns the size the kernel
    granted (it doubles the request for its own bookkeeping)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
    except PermissionError:  # without CAP_NET_ADMIN: capped at net.core.rmem_max
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)


def socket_drops(sock: socket.socket) -> int:
    """Packets the kernel dropped at this socket, its receive buffer being full
    (SO_MEMINFO's SK_MEMINFO_DROPS, the `drops` column of /proc/net/udp)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 4 * SK_MEMINFO_VARS)
    return struct.unpack(f"{SK_MEMINFO_VARS}I", raw)[SK_MEMINFO_DROPS]
