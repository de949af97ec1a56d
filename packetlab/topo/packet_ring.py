"""A TPACKET_V3 receive ring on an AF_PACKET socket, in a lab namespace, with a classic BPF filter.

``recvfrom`` on a packet socket costs a system call and a copy per frame (module 05's sniffer).
With ``PACKET_RX_RING`` the kernel writes frames into memory the process has mapped, and in
TPACKET_V3 it packs them one after another into *blocks*: a block goes to userspace when it is
full or when its retire timeout expires, and userspace gives it back by writing
``TP_STATUS_KERNEL`` into its header. One ``poll()`` per block instead of one system call per
frame, and no copy but the one into the ring. What the process still pays is per frame it
*reads* — so the socket filter (classic BPF, ``SO_ATTACH_FILTER``, compiled by libpcap from a
tcpdump expression) decides in the kernel which frames reach the ring at all, and its return
value (the snap length) how many bytes of each are copied.

    with PacketRing(host.namespace, "eth0", filter="udp port 53", snaplen=256) as ring:
        for f in ring.read(timeout=0.5):
            print(f.timestamp, f.wirelen, f.data[:14].hex())
        print(ring.stats())  # PACKET_STATISTICS: packets, drops, freezes (summed over reads)

Layout of the shared memory (``<linux/if_packet.h>``), parsed by `parse_block` from bytes:

    block:  struct tpacket_block_desc { u32 version, offset_to_priv;
              struct tpacket_hdr_v1 { u32 block_status, num_pkts, offset_to_first_pkt, blk_len;
                                      u64 seq_num; struct tpacket_bd_ts ts_first_pkt, ts_last_pkt; } }
    frame:  struct tpacket3_hdr { u32 tp_next_offset, tp_sec, tp_nsec, tp_snaplen, tp_len, tp_status;
              u16 tp_mac, tp_net; u32 tp_rxhash, tp_vlan_tci; u16 tp_vlan_tpid, pad; u8 pad[8]; }

Drops are the kernel's own counters: ``PACKET_STATISTICS`` returns ``tpacket_stats_v3``
(``tp_packets`` — which *includes* the drops —, ``tp_drops``, ``tp_freeze_q_cnt``: how often
every block was full and the queue froze) and resets them on each read, so `stats()` sums them.
"""

from __future__ import annotations

import contextlib
import ctypes
import mmap
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

from packetlab.errors import InputError, MissingRequirement, PacketlabError
from packetlab.topo import netns

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_RX_RING = 5
PACKET_STATISTICS = 6
PACKET_VERSION = 10
TPACKET_V3 = 2
SO_ATTACH_FILTER = 26
TP_STATUS_KERNEL = 0
TP_STATUS_USER = 1
TP_STATUS_COPY = 1 << 1
TP_STATUS_LOSING = 1 << 2
TP_STATUS_VLAN_VALID = 1 << 4
TP_STATUS_VLAN_TPID_VALID = 1 << 6
DLT_EN10MB = 1
PAGE = mmap.PAGESIZE


def restore_vlan(frame: bytes, tci: int, tpid: int = 0x8100) -> bytes:
    """Insert an 802.1Q tag (TPID, TCI) after the two MAC addresses: the kernel strips it into
    the frame's metadata (auxdata, tpacket3_hdr), and a capture wants it back in the bytes."""
    return frame[:12] + struct.pack("!HH", tpid, tci) + frame[12:]


BLOCK_DESC = struct.Struct("=IIIIIIQIIII")  # tpacket_block_desc with tpacket_hdr_v1 (48 bytes)
FRAME_HDR = struct.Struct("=IIIIIIHHIIHH8x")  # tpacket3_hdr (48 bytes)
REQ3 = struct.Struct("=7I")  # tpacket_req3: block_size, block_nr, frame_size, frame_nr, retire_tov, priv, feature
STATS_V3 = struct.Struct("=III")  # tpacket_stats_v3: tp_packets, tp_drops, tp_freeze_q_cnt
_STATUS = 8  # offset of block_status in the block descriptor


# ---- the pure part: headers from bytes ----------------------------------------------------------
@dataclass(frozen=True)
class BlockHeader:
    version: int
    status: int
    num_pkts: int
    offset_to_first_pkt: int
    blk_len: int
    seq_num: int
    first_ts: float
    last_ts: float

    @property
    def user_owned(self) -> bool:
        return bool(self.status & TP_STATUS_USER)


class RingFrame(NamedTuple):
    """One frame from the ring: its captured bytes (at most the snap length), its length on the wire,
    the kernel's receive time, and the frame header's status bits. (A tuple, not a dataclass: it is
    made once per frame, and a frozen dataclass costs twice as much to build.)"""

    data: bytes
    wirelen: int
    timestamp: float  # tp_sec + tp_nsec: when the kernel took the frame (not when Python read it)
    status: int
    vlan_restored: bool = False

    @property
    def truncated(self) -> bool:
        return len(self.data) < self.wirelen


def parse_block_header(buf: bytes | bytearray | memoryview | mmap.mmap, offset: int = 0) -> BlockHeader:
    """The block descriptor at `offset` (times in TPACKET_V3 are seconds and nanoseconds)."""
    v, _priv, status, num, first, blen, seq, s1, ns1, s2, ns2 = BLOCK_DESC.unpack_from(buf, offset)
    return BlockHeader(v, status, num, first, blen, seq, s1 + ns1 / 1e9, s2 + ns2 / 1e9)


def parse_block(
    buf: bytes | bytearray | memoryview | mmap.mmap, offset: int = 0
) -> tuple[BlockHeader, list[RingFrame]]:
    """A user-owned block's header and frames, copied out of `buf` (the ring, or bytes in a test).

    Frames follow ``offset_to_first_pkt``; each ``tp_next_offset`` leads to the next (0 on the
    last). A frame's bytes start ``tp_mac`` bytes after its header and are ``tp_snaplen`` long;
    ``tp_len`` is its length on the wire. A VLAN tag the kernel took out of the frame is put back
    from ``tp_vlan_tci`` (as libpcap does), so the bytes are what was on the wire.
    """
    hdr = parse_block_header(buf, offset)
    frames = []
    pos = offset + hdr.offset_to_first_pkt
    unpack = FRAME_HDR.unpack_from
    for i in range(hdr.num_pkts):
        nxt, sec, nsec, snap, wire, status, mac, _net, _hash, tci, tpid, _pad = unpack(buf, pos)
        data = bytes(buf[pos + mac : pos + mac + snap])  # a copy: the block goes back to the kernel
        restored = False
        if status & TP_STATUS_VLAN_VALID:
            tpid = tpid if status & TP_STATUS_VLAN_TPID_VALID and tpid else 0x8100
            data = restore_vlan(data, tci, tpid)
            wire, restored = wire + 4, True
        frames.append(RingFrame(data, wire, sec + nsec / 1e9, status, restored))
        if nxt == 0 and i + 1 < hdr.num_pkts:
            raise PacketlabError(
                f"TPACKET_V3 block claims {hdr.num_pkts} frames but frame {i + 1} has no successor",
                cause="tp_next_offset is 0 before the last frame: the block is corrupt or not user-owned",
                fix="read only blocks whose block_status has TP_STATUS_USER",
            )
        pos += nxt
    return hdr, frames


@dataclass(frozen=True)
class Geometry:
    """The ring's shape (``struct tpacket_req3``): `block_nr` blocks of `block_size` bytes; a block
    goes to userspace when full or after `retire_ms` ms. `frame_size` only bounds the largest frame
    slot the kernel accepts (V3 packs frames of any size); `frame_nr` follows from the rest."""

    block_size: int = 1 << 20
    block_nr: int = 8
    frame_size: int = 2048
    retire_ms: int = 10

    def __post_init__(self) -> None:
        if self.block_size % PAGE or self.block_size <= 0:
            raise InputError(f"block_size {self.block_size} is not a multiple of the page size ({PAGE})")
        if self.frame_size % 16 or not 0 < self.frame_size <= self.block_size:
            raise InputError(f"frame_size {self.frame_size}: a multiple of 16, at most block_size")
        if self.block_nr < 1:
            raise InputError(f"block_nr {self.block_nr}: at least one block")

    @property
    def frame_nr(self) -> int:
        return self.block_size // self.frame_size * self.block_nr

    @property
    def size(self) -> int:
        return self.block_size * self.block_nr

    def req3(self) -> bytes:
        return REQ3.pack(self.block_size, self.block_nr, self.frame_size, self.frame_nr, self.retire_ms, 0, 0)


# ---- the socket filter --------------------------------------------------------------------------
def compile_filter(expression: str, snaplen: int = 65535) -> list[tuple[int, int, int, int]]:
    """A tcpdump expression compiled by libpcap for Ethernet into classic BPF (what ``tcpdump -dd``
    prints): (code, jt, jf, k) per instruction. An accepting ``ret`` returns `snaplen`, and the
    kernel keeps that many bytes of the frame — the filter is also the snap length."""
    try:
        from scapy.libs.winpcapy import (
            bpf_program,
            pcap_close,
            pcap_compile,
            pcap_freecode,
            pcap_geterr,
            pcap_open_dead,
        )
    except (ImportError, OSError) as exc:
        raise MissingRequirement(
            "libpcap is not available to compile the filter",
            cause=str(exc),
            fix="install libpcap (apt-get install libpcap0.8), as provision.sh does",
        ) from None
    pcap = pcap_open_dead(DLT_EN10MB, snaplen)
    prog = bpf_program()
    try:
        if pcap_compile(pcap, ctypes.byref(prog), expression.encode(), 1, -1) == -1:
            raise InputError(
                f"invalid capture filter {expression!r}",
                cause=pcap_geterr(pcap).decode(errors="replace"),
                fix="use tcpdump filter syntax, e.g. 'udp port 53', 'tcp and not port 22'",
            )
        insns = [(i.code, i.jt, i.jf, i.k) for i in prog.bf_insns[: prog.bf_len]]
        pcap_freecode(ctypes.byref(prog))
        return insns
    finally:
        pcap_close(pcap)


def attach_filter(sock: socket.socket, insns: list[tuple[int, int, int, int]]) -> None:
    """Attach classic BPF instructions to `sock` (``SO_ATTACH_FILTER`` with a ``struct sock_fprog``)."""
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in insns)
    buf = ctypes.create_string_buffer(raw, len(raw))
    fprog = struct.pack("HL", len(insns), ctypes.addressof(buf))  # the kernel copies it during the call
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, fprog)


# ---- the ring -----------------------------------------------------------------------------------
class PacketRing:
    """A TPACKET_V3 ring on `dev` in `namespace`, fed only what `filter` accepts, `snaplen` bytes each.

    The socket is opened with protocol 0, so it receives nothing until the filter and the ring are in
    place and it is bound: no unfiltered frame is ever queued. Frames in both directions arrive
    (received and sent by the namespace). Use ``with``: `close()` unmaps the ring and closes the socket,
    also when an exception leaves the block.
    """

    def __init__(
        self,
        namespace: str,
        dev: str,
        *,
        filter: str | None = None,  # noqa: A002 (tcpdump's word)
        snaplen: int = 65535,
        geometry: Geometry | None = None,
    ) -> None:
        self.namespace, self.dev, self.filter, self.snaplen = namespace, dev, filter, snaplen
        self.geometry = geometry or Geometry()
        self.sock: socket.socket | None = None
        self.ring: mmap.mmap | None = None
        self._block = 0
        self._totals = {"packets": 0, "drops": 0, "freeze_q": 0}
        self.read_frames = 0
        self.read_blocks = 0
        insns = compile_filter(filter or "", snaplen)  # refused input before anything is opened
        try:
            self._open(insns)
        except BaseException:
            self.close()
            raise

    def _open(self, insns: list[tuple[int, int, int, int]]) -> None:
        with netns.entered(self.namespace):
            try:
                self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            except PermissionError as exc:
                raise PacketlabError(
                    "cannot open an AF_PACKET socket",
                    cause=str(exc),
                    fix="packet sockets need CAP_NET_RAW: run as root",
                ) from None
        sock = self.sock
        attach_filter(sock, insns)
        try:
            sock.setsockopt(SOL_PACKET, PACKET_VERSION, TPACKET_V3)
            sock.setsockopt(SOL_PACKET, PACKET_RX_RING, self.geometry.req3())
        except OSError as exc:
            raise MissingRequirement(
                "the kernel refused a TPACKET_V3 receive ring",
                cause=f"{exc} (geometry {self.geometry})",
                fix="TPACKET_V3 needs Linux 3.2+; keep block_size a page multiple and the ring within memory limits",
            ) from None
        self.ring = mmap.mmap(sock.fileno(), self.geometry.size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            sock.bind((self.dev, ETH_P_ALL))
        except OSError as exc:
            raise PacketlabError(
                f"cannot bind a packet socket to {self.dev} in {self.namespace}",
                cause=str(exc),
                fix=f"check the interface exists there: ip -n {self.namespace} -br link",
            ) from None

    # ---- reading -------------------------------------------------------------------------------
    def blocks(self, timeout: float = 0.0) -> Iterator[list[RingFrame]]:
        """Yield the frames of each block userspace owns, giving each block back after it is read;
        wait up to `timeout` s for the first one."""
        ring, g = self._mapped(), self.geometry
        off = self._block * g.block_size
        if not struct.unpack_from("=I", ring, off + _STATUS)[0] & TP_STATUS_USER and timeout > 0:
            select.select([self.fileno()], [], [], timeout)  # readable when the current block is user-owned
        while True:
            off = self._block * g.block_size
            if not struct.unpack_from("=I", ring, off + _STATUS)[0] & TP_STATUS_USER:
                return
            _hdr, frames = parse_block(ring, off)
            struct.pack_into("=I", ring, off + _STATUS, TP_STATUS_KERNEL)  # give it back
            self._block = (self._block + 1) % g.block_nr
            self.read_blocks += 1
            self.read_frames += len(frames)
            yield frames

    def read(self, timeout: float = 0.0) -> list[RingFrame]:
        """Every frame in the blocks userspace owns now (waiting up to `timeout` s for one)."""
        return [f for block in self.blocks(timeout) for f in block]

    def stats(self) -> dict[str, int]:
        """The kernel's counters since the ring was opened: ``packets`` (accepted by the filter,
        dropped ones included), ``drops`` (no room in the ring), ``freeze_q`` (times every block was full)."""
        if self.sock is not None:
            got = STATS_V3.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, STATS_V3.size))
            for k, v in zip(("packets", "drops", "freeze_q"), got, strict=True):
                self._totals[k] += v
        return dict(self._totals)

    def _mapped(self) -> mmap.mmap:
        if self.ring is None or self.sock is None:
            raise PacketlabError("the packet ring is closed", fix="open a new PacketRing")
        return self.ring

    @property
    def closed(self) -> bool:
        return self.sock is None

    def fileno(self) -> int:
        return -1 if self.sock is None else self.sock.fileno()

    def close(self) -> None:
        """Unmap the ring and close the socket (twice is harmless)."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.stats()  # keep the last counts readable after close
        if self.ring is not None:
            self.ring.close()
            self.ring = None
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def __enter__(self) -> PacketRing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()
