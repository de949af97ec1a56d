"""BPF_PROG_TEST_RUN with live frames: push real frames through XDP from user space."""

from __future__ import annotations

import ctypes
import os
import time
from dataclasses import dataclass
from typing import Any

from packetlab.ebpf import syscall as bpfsys
from packetlab.ebpf.fdinfo import program_fd
from packetlab.errors import PacketlabError
from packetlab.topo import netns


def assert_in_namespace(name: str) -> None:
    """Refuse to go on unless this thread really is in lab namespace `name`.

    Used right before a kernel call that resolves interface indexes in the
    caller's namespace (devmap updates, live-frames test runs): in the wrong
    namespace the same index names a host interface.
    """
    here = os.stat("/proc/thread-self/ns/net").st_ino
    if here != netns.inode(name):
        raise PacketlabError(
            f"this thread is not in namespace {name}",
            cause="entering the lab namespace did not take effect",
            fix="report this as a packetlab bug; nothing was sent",
        )


# ---- frames without an sk_buff: BPF_PROG_TEST_RUN live frames ---------------------------------
_BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1


class _XdpMd(ctypes.Structure):
    """struct xdp_md, the XDP context given to BPF_PROG_TEST_RUN (ctx_in)."""

    _fields_ = [
        ("data", ctypes.c_uint32),
        ("data_end", ctypes.c_uint32),
        ("data_meta", ctypes.c_uint32),
        ("ingress_ifindex", ctypes.c_uint32),
        ("rx_queue_index", ctypes.c_uint32),
        ("egress_ifindex", ctypes.c_uint32),
    ]


@dataclass(frozen=True)
class LiveFramesResult:
    frames: int
    seconds: float

    @property
    def pps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def xdp_frames_flood(host: Any, dev: str, frame: bytes, count: int, *, program: Any = None) -> LiveFramesResult:
    """Transmit `count` copies of `frame` out of `host`'s `dev` as xdp_frames.

    Runs an XDP_TX program (bpf/07-xdp-tx.c unless `program` is given) with
    BPF_PROG_TEST_RUN's live-frames mode, `dev` posing as the ingress device:
    the kernel turns each XDP_TX into a transmit on `dev` through the driver's
    XDP path (ndo_xdp_xmit), which is how frames reach a veth peer without an
    sk_buff — like frames from a NIC's receive ring. On veth the peer must have
    NAPI enabled (an XDP program attached, or GRO on), or the frames are dropped.

    Safety: the interface index is resolved, checked and used *inside* the lab
    namespace, in the same thread, so the frames can only leave through a lab
    interface.
    """
    import socket

    from packetlab.ebpf import features as kernel_probes
    from packetlab.ebpf.loader import acquire, release

    kernel_probes.require("xdp_live_frames")
    if not 14 <= len(frame) <= 3000:
        raise PacketlabError(f"frame of {len(frame)} bytes", fix="use 14..3000 bytes")
    prog = program or acquire("bpf/07-xdp-tx.c")
    try:
        inbuf = ctypes.create_string_buffer(bytes(frame), len(frame))
        with netns.entered(host.namespace):
            assert_in_namespace(host.namespace)
            try:
                idx = socket.if_nametoindex(dev)
            except OSError:
                raise PacketlabError(
                    f"no interface {dev!r} in {host.namespace}", fix=f"list them with {host.name}.ip('link')"
                ) from None
            if socket.if_indextoname(idx) != dev:  # belt and braces: same namespace, same device
                raise PacketlabError("interface index changed under us", fix="retry")
            ctx = _XdpMd(0, len(frame), 0, idx, 0, 0)
            attr = bpfsys.TestRunAttr(
                prog_fd=program_fd(prog),
                data_size_in=len(frame),
                data_in=ctypes.addressof(inbuf),
                repeat=count,
                ctx_size_in=ctypes.sizeof(ctx),
                ctx_in=ctypes.addressof(ctx),
                flags=_BPF_F_TEST_XDP_LIVE_FRAMES,
            )
            t0 = time.monotonic()
            try:
                bpfsys.bpf(bpfsys.BPF_PROG_TEST_RUN, attr)
            except OSError as exc:
                raise PacketlabError(
                    "BPF_PROG_TEST_RUN (live frames) failed",
                    cause=exc.strerror,
                    fix="live frames need Linux 5.18+ and an XDP program returning XDP_TX or XDP_REDIRECT",
                ) from None
            elapsed = time.monotonic() - t0
        return LiveFramesResult(count, elapsed)
    finally:
        if program is None:
            release(prog)
