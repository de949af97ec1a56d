"""Module 07 (XDP) helpers: read the lab programs' maps, time programs with the
kernel's own run-time statistics, and draw a live chart while traffic flows.

Why these live here and not in a notebook cell: each one is a few lines of
ctypes or threading that must be right (per-CPU values summed, a polling thread
that always stops, a global kernel switch that is always switched back) and is
unit-tested in tests/test_07_xdp.py.

* `protocol_counts` / `source_counts` decode the maps of bpf/07-xdp-counter.c
  (the value layout comes from the C declaration through bcc, and is checked).
* `bpf_stats` switches on the kernel's per-program run-time accounting
  (run_cnt, run_time_ns) for one measurement window only, and `ProgStats`
  reads it from /proc/self/fdinfo.
* `XdpTrace` counts xdp:xdp_exception / xdp:xdp_redirect_err / xdp:xdp_devmap_xmit
  failures for given programs.
* `xdp_frames_flood` sends frames out of a lab veth as xdp_frames (no sk_buff)
  with BPF_PROG_TEST_RUN's live-frames mode.
* `LiveCounterChart` polls the counter's maps in a background thread and redraws
  an ipywidgets chart (a matplotlib PNG in an Image widget plus a text table).
* `set_action`, `devmap_set`/`devmap_get`, `ifindex`, `veth_stats` and
  `icmp_counters` are small lab utilities for the actions, XDP_TX and
  XDP_REDIRECT sections.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import ipaddress
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import netns
from .errors import PacketlabError
from . import bpfsys

# Index = enum category in bpf/07-xdp-counter.c (keep the two in the same order).
CATEGORIES: tuple[str, ...] = (
    "non-IP", "IPv4 TCP", "IPv4 UDP", "IPv4 ICMP", "IPv4 other",
    "IPv6 TCP", "IPv6 UDP", "IPv6 ICMPv6", "IPv6 other", "fragment", "malformed",
)


# ---- reading the counter program's maps ---------------------------------------------------
def _sum_percpu(value: Any) -> tuple[int, int]:
    """(packets, bytes) of a `struct counters` value, summed over CPUs if per-CPU."""
    if hasattr(value, "packets"):
        return int(value.packets), int(value.bytes)
    packets = bytes_ = 0
    for v in value:
        packets += int(v.packets)
        bytes_ += int(v.bytes)
    return packets, bytes_


def _check_layout(table: Any, map_name: str, fields: tuple[str, ...]) -> None:
    """The map's value struct (as bcc built it from the C source) must have `fields`."""
    leaf = getattr(table, "sLeaf", None) or table.Leaf        # per-CPU tables keep the element type in sLeaf
    have = tuple(name for name, *_ in getattr(leaf, "_fields_", ()))
    if have[:len(fields)] != fields:
        raise PacketlabError(f"map {map_name} has values {{{', '.join(have) or leaf.__name__}}}",
                             cause=f"packetlab.xdp_live expects struct {{{', '.join(fields)}}} "
                                   "(struct counters in bpf/07-xdp-counter.c)",
                             fix="keep the C struct and this module in step, or read the map yourself")


def protocol_counts(program: Any, what: str = "packets") -> dict[str, int]:
    """Packets (or bytes) per category from ``proto_stats``, summed over CPUs.

    `program` is an XdpAttachment or LoadedProgram of bpf/07-xdp-counter.c.
    """
    if what not in ("packets", "bytes"):
        raise PacketlabError(f"cannot count {what!r}", fix="use what='packets' or what='bytes'")
    table = program["proto_stats"]
    _check_layout(table, "proto_stats", ("packets", "bytes"))
    out = dict.fromkeys(CATEGORIES, 0)
    for k, v in table.items():
        idx = int(getattr(k, "value", k))
        if 0 <= idx < len(CATEGORIES):
            out[CATEGORIES[idx]] = _sum_percpu(v)[0 if what == "packets" else 1]
    return out


def source_key_address(key: Any) -> str:
    """The address in a ``struct src_key`` (family 4 or 6 + 16 address bytes)."""
    raw = bytes(key.addr)
    if key.family == 4:
        return str(ipaddress.IPv4Address(raw[:4]))
    if key.family == 6:
        return str(ipaddress.IPv6Address(raw))
    return f"family-{key.family}"


def source_counts(program: Any, what: str = "packets") -> dict[str, int]:
    """Packets (or bytes) per source address from ``src_stats``, largest first."""
    table = program["src_stats"]
    _check_layout(table, "src_stats", ("packets", "bytes"))
    pairs = [(source_key_address(k), _sum_percpu(v)[0 if what == "packets" else 1]) for k, v in table.items()]
    return dict(sorted(pairs, key=lambda kv: (-kv[1], kv[0])))


def clear_maps(program: Any) -> None:
    """Empty every map the program declares (zero for arrays).

    Pooled programs are reset when released, but only the maps Python has
    touched; this clears all of them, e.g. before handing a program back.
    """
    inner = getattr(program, "program", program)
    for name in inner.map_names():
        with contextlib.suppress(Exception):
            inner[name].clear()


def percpu_array(program: Any, map_name: str) -> list[int]:
    """Every slot of a per-CPU u64 array, each summed over CPUs."""
    table = program[map_name]
    out = []
    for _k, v in sorted(table.items(), key=lambda kv: int(getattr(kv[0], "value", kv[0]))):
        try:
            out.append(sum(int(getattr(x, "value", x)) for x in v))
        except TypeError:
            out.append(int(getattr(v, "value", v)))
    return out


def percpu_total(program: Any, map_name: str, index: int) -> int:
    """One slot of a per-CPU u64 array (e.g. ``replies``, ``redirected``), summed over CPUs."""
    value = program[map_name][ctypes.c_int(index)]
    try:
        return sum(int(getattr(v, "value", v)) for v in value)
    except TypeError:                   # not per-CPU: a single value
        return int(getattr(value, "value", value))


# ---- the kernel's run-time statistics -----------------------------------------------------
_BPF_STATS_RUN_TIME = 0         # enum bpf_stats_type
SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"


class _EnableStatsAttr(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32)]


def _enable_stats_fd() -> int:
    """BPF_ENABLE_STATS: stats stay on while the returned fd is open (-1 if unsupported)."""
    try:
        return bpfsys.bpf(bpfsys.BPF_ENABLE_STATS, _EnableStatsAttr(_BPF_STATS_RUN_TIME))
    except OSError as exc:
        if exc.errno in (errno.EINVAL, errno.E2BIG, errno.EOPNOTSUPP):
            return -1
        raise PacketlabError("cannot switch on BPF run-time statistics",
                             cause=f"bpf(BPF_ENABLE_STATS) failed: {exc.strerror}",
                             fix="run as root (CAP_SYS_ADMIN); `packetlab doctor` checks capabilities") from None


def _read_sysctl(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def _write_sysctl(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@contextlib.contextmanager
def bpf_stats(*, method: str = "auto", announce: Callable[[str], Any] | None = print,
              sysctl_path: str = SYSCTL) -> Iterator[str]:
    """Turn on per-program run-time accounting (run_cnt, run_time_ns) for this block only.

    The accounting is global to the kernel and costs a little on every program
    run, which is why it is off by default. ``method="fd"`` (the default when
    the kernel has it, 5.8+) uses BPF_ENABLE_STATS: the kernel keeps stats on
    while our file descriptor is open, so they switch off when the block ends
    *or the process dies*, and the ``kernel.bpf_stats_enabled`` sysctl is never
    written. ``method="sysctl"`` writes 1 to the sysctl and restores the
    previous value in a ``finally``. Either way the block says what it did.
    Yields the method used.
    """
    say = announce or (lambda _msg: None)
    if method not in ("auto", "fd", "sysctl"):
        raise PacketlabError(f"unknown method {method!r}", fix="use 'auto', 'fd' or 'sysctl'")
    fd = _enable_stats_fd() if method in ("auto", "fd") else -1
    if fd < 0 and method == "fd":
        raise PacketlabError("this kernel has no BPF_ENABLE_STATS", cause="it needs Linux 5.8 or newer",
                             fix="use method='sysctl'")
    if fd >= 0:
        sysctl_now = _read_sysctl(sysctl_path) if os.path.exists(sysctl_path) else "?"
        say(f"bpf stats: run-time accounting ON for this measurement only (BPF_ENABLE_STATS fd; "
            f"sysctl kernel.bpf_stats_enabled untouched, still {sysctl_now})")
        try:
            yield "fd"
        finally:
            os.close(fd)
            say("bpf stats: fd closed, run-time accounting released")
        return
    previous = _read_sysctl(sysctl_path)
    _write_sysctl(sysctl_path, "1")
    say(f"bpf stats: kernel.bpf_stats_enabled set to 1 for this measurement (was {previous})")
    try:
        yield "sysctl"
    finally:
        _write_sysctl(sysctl_path, previous)
        say(f"bpf stats: kernel.bpf_stats_enabled restored to {previous}")


@dataclass(frozen=True)
class ProgStats:
    """One reading of a program's run counters (from /proc/self/fdinfo/<prog fd>)."""
    t: float
    run_cnt: int
    run_time_ns: int

    @classmethod
    def read(cls, prog_fd: int) -> "ProgStats":
        fields = {}
        with open(f"/proc/self/fdinfo/{prog_fd}") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
        if "run_cnt" not in fields:
            raise PacketlabError(f"fd {prog_fd} is not a BPF program with run statistics",
                                 cause="its /proc/self/fdinfo entry has no run_cnt line",
                                 fix="pass the program's fd (attachment.program.fd)")
        return cls(time.monotonic(), int(fields["run_cnt"]), int(fields["run_time_ns"]))

    def since(self, earlier: "ProgStats") -> "RunRate":
        return RunRate(self.t - earlier.t, self.run_cnt - earlier.run_cnt,
                       self.run_time_ns - earlier.run_time_ns)


@dataclass(frozen=True)
class RunRate:
    """Program runs and run time between two `ProgStats` readings."""
    seconds: float
    runs: int
    run_time_ns: int

    @property
    def pps(self) -> float:
        return self.runs / self.seconds if self.seconds > 0 else 0.0

    @property
    def ns_per_run(self) -> float | None:
        return self.run_time_ns / self.runs if self.runs else None


def program_fd(program: Any) -> int:
    """The fd of an XdpAttachment, TcAttachment or LoadedProgram."""
    inner = getattr(program, "program", program)
    return inner.fd


def prog_id(program: Any) -> int:
    """The kernel's id for a loaded program (what `bpftool prog` and tracepoints show)."""
    return _fdinfo_prog_id(program_fd(program))


def _fdinfo_prog_id(fd: int) -> int:
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            if line.startswith("prog_id:"):
                return int(line.split(":")[1])
    raise PacketlabError("no prog_id in fdinfo", cause=f"fd {fd} is not a BPF program")


# ---- tracing XDP failures -----------------------------------------------------------------
EVENT_KINDS = {1: "exception", 2: "redirect error", 3: "devmap xmit error"}
XDP_ACTIONS = {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"}
XDP_ACTIONS_BY_NAME = {v: k for k, v in XDP_ACTIONS.items()}


def set_action(attachment: Any, action: str | int | None) -> None:
    """Tell bpf/07-xdp-actions.c which verdict to return (None: remove the entry -> XDP_PASS)."""
    table = attachment["action"]
    if action is None:
        with contextlib.suppress(KeyError):
            del table[ctypes.c_uint(0)]
        return
    value = action if isinstance(action, int) else XDP_ACTIONS_BY_NAME.get(str(action).upper())
    if value is None or value not in XDP_ACTIONS:
        raise PacketlabError(f"{action!r} is not an XDP action",
                             fix="use XDP_ABORTED, XDP_DROP, XDP_PASS or XDP_TX (or 0..3)")
    table[ctypes.c_uint(0)] = ctypes.c_uint(value)


def _errno_text(code: int) -> str:
    name = "EOPNOTSUPP" if code == errno.EOPNOTSUPP else errno.errorcode.get(code, str(code))
    return f"-{name} ({os.strerror(code)})"


class XdpTrace:
    """Count xdp:xdp_exception, xdp:xdp_redirect_err and xdp:xdp_devmap_xmit failures
    (bpf/07-xdp-trace.c).

    A redirect the target cannot take is reported in one of two places,
    depending on the kernel: refused up front in xdp_redirect_err (-EOPNOTSUPP,
    Linux 6.3+, where devmaps check the target's XDP features), or queued and
    dropped at flush in xdp_devmap_xmit (-ENXIO on Debian 12's 6.1). Listening
    on both shows whichever this kernel does.

    The tracepoints see every XDP program on the machine; `events()` keeps only
    the programs you name (devmap transmit errors name no program: those are
    kept by the ingress interface of the attachments you name), so other labs
    running at the same time do not leak in. Use as a context manager: the
    tracepoint programs are detached on exit.
    """

    SOURCE = "07-xdp-trace.c"

    def __init__(self) -> None:
        from .bpf import BPF_DIR, _import_bcc, capture_stderr
        bcc = _import_bcc()
        with capture_stderr() as err:
            try:
                self.bpf = bcc.BPF(src_file=str(BPF_DIR / self.SOURCE).encode(), cflags=[f"-I{BPF_DIR}"])
            except Exception as exc:
                failure: Exception | None = exc
            else:
                failure = None
        if failure is not None:
            raise PacketlabError(f"cannot load {self.SOURCE}", cause=(err[0].strip() or str(failure))[-800:],
                                 fix="`packetlab doctor` checks tracefs, headers and capabilities")

    def events(self, *programs: Any) -> dict[tuple[str, str], int]:
        """{(kind, detail): count} for events of `programs` (attachments or loaded programs)."""
        ids = {prog_id(p) for p in programs}
        ingress = {_attachment_ifindex(p) for p in programs} - {None}
        out: dict[tuple[str, str], int] = {}
        for k, v in self.bpf[b"xdp_events"].items():
            if programs and k.who not in (ingress if k.kind == 3 else ids):
                continue
            kind = EVENT_KINDS.get(k.kind, str(k.kind))
            detail = XDP_ACTIONS.get(k.code, str(k.code)) if k.kind == 1 else _errno_text(k.code)
            out[(kind, detail)] = out.get((kind, detail), 0) + int(v.value)
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.bpf.cleanup()

    def __enter__(self) -> "XdpTrace":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _attachment_ifindex(program: Any) -> int | None:
    """The ifindex (in its own namespace) of the interface an attachment is on; None for a bare program."""
    namespace, dev = getattr(program, "namespace", None), getattr(program, "dev", None)
    if namespace is None or dev is None:
        return None
    from .rtnl import iproute
    with iproute(netns=namespace) as ipr:
        found = ipr.link_lookup(ifname=dev)
    return found[0] if found else None


def assert_in_namespace(name: str) -> None:
    """Refuse to go on unless this thread really is in lab namespace `name`.

    Used right before a kernel call that resolves interface indexes in the
    caller's namespace (devmap updates, live-frames test runs): in the wrong
    namespace the same index names a host interface.
    """
    here = os.stat("/proc/thread-self/ns/net").st_ino
    if here != netns.inode(name):
        raise PacketlabError(f"this thread is not in namespace {name}",
                             cause="entering the lab namespace did not take effect",
                             fix="report this as a packetlab bug; nothing was sent")


# ---- frames without an sk_buff: BPF_PROG_TEST_RUN live frames ---------------------------------
_BPF_F_TEST_XDP_LIVE_FRAMES = 1 << 1


class _XdpMd(ctypes.Structure):
    """struct xdp_md, the XDP context given to BPF_PROG_TEST_RUN (ctx_in)."""
    _fields_ = [("data", ctypes.c_uint32), ("data_end", ctypes.c_uint32), ("data_meta", ctypes.c_uint32),
                ("ingress_ifindex", ctypes.c_uint32), ("rx_queue_index", ctypes.c_uint32),
                ("egress_ifindex", ctypes.c_uint32)]


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
    from . import kernel_probes
    from .bpf import acquire, release
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
                raise PacketlabError(f"no interface {dev!r} in {host.namespace}",
                                     fix=f"list them with {host.name}.ip('link')") from None
            if socket.if_indextoname(idx) != dev:     # belt and braces: same namespace, same device
                raise PacketlabError("interface index changed under us", fix="retry")
            ctx = _XdpMd(0, len(frame), 0, idx, 0, 0)
            attr = bpfsys.TestRunAttr(prog_fd=program_fd(prog), data_size_in=len(frame), data_in=ctypes.addressof(inbuf),
                             repeat=count, ctx_size_in=ctypes.sizeof(ctx), ctx_in=ctypes.addressof(ctx),
                             flags=_BPF_F_TEST_XDP_LIVE_FRAMES)
            t0 = time.monotonic()
            try:
                bpfsys.bpf(bpfsys.BPF_PROG_TEST_RUN, attr)
            except OSError as exc:
                raise PacketlabError("BPF_PROG_TEST_RUN (live frames) failed", cause=exc.strerror,
                                     fix="live frames need Linux 5.18+ and an XDP program returning XDP_TX "
                                         "or XDP_REDIRECT") from None
            elapsed = time.monotonic() - t0
        return LiveFramesResult(count, elapsed)
    finally:
        if program is None:
            release(prog)


# ---- small lab utilities ---------------------------------------------------------------
def ifindex(host: Any, dev: str) -> int:
    """Interface index of `dev` inside `host`'s namespace."""
    from .rtnl import iproute
    with iproute(netns=host.namespace) as ipr:
        found = ipr.link_lookup(ifname=dev)
    if not found:
        raise PacketlabError(f"no interface {dev!r} in {host.namespace}",
                             fix=f"list them with {host.name}.ip('link')")
    return found[0]


def devmap_set(attachment: Any, from_dev: str, to_dev: str, *, map_name: str = "tx_port") -> tuple[int, int]:
    """``tx_port[ifindex(from_dev)] = ifindex(to_dev)`` in the attachment's namespace.

    A devmap stores interfaces by index, and the kernel resolves the index in
    the namespace of the process that writes the entry, so the update is made
    from inside the lab namespace (never from the root namespace, where the
    same number names a different interface).
    """
    ns = attachment.namespace
    from .rtnl import iproute
    with iproute(netns=ns) as ipr:
        src, dst = ipr.link_lookup(ifname=from_dev), ipr.link_lookup(ifname=to_dev)
    if not src or not dst:
        missing = from_dev if not src else to_dev
        raise PacketlabError(f"no interface {missing!r} in {ns}", fix=f"list them with: ip -n {ns} link")
    with netns.entered(ns):
        assert_in_namespace(ns)
        try:
            attachment[map_name][ctypes.c_int(src[0])] = ctypes.c_int(dst[0])
        except Exception as exc:   # bcc raises a bare Exception
            raise PacketlabError(f"cannot store {to_dev} in {map_name}[{from_dev}]", cause=str(exc),
                                 fix="keys must be below the devmap's max_entries; the target must exist") from None
    return src[0], dst[0]


def devmap_get(attachment: Any, from_dev: str, *, map_name: str = "tx_port") -> str | None:
    """The egress interface stored for `from_dev` in the devmap (None if no entry)."""
    import socket
    ns = attachment.namespace
    with netns.entered(ns):
        try:
            key = socket.if_nametoindex(from_dev)
        except OSError:
            raise PacketlabError(f"no interface {from_dev!r} in {ns}", fix=f"list them with: ip -n {ns} link") from None
        try:
            value = attachment[map_name][ctypes.c_int(key)]
        except KeyError:
            return None
        idx = int(getattr(value, "value", value))
        try:
            return socket.if_indextoname(idx) if idx else None
        except OSError:
            return f"ifindex {idx} (no such interface here)"


def veth_stats(host: Any, dev: str = "eth0") -> dict[str, int]:
    """`ethtool -S dev` inside the host's namespace as {name: value}.

    veth keeps its own XDP counters per queue (rx_queue_0_xdp_packets, _xdp_drops,
    _xdp_tx, _xdp_tx_errors, _xdp_redirect ...): they count what the *driver's*
    XDP hook did, so they move in native mode only.
    """
    import re
    out = host.run(["ethtool", "-S", dev], check=True).stdout
    return {k: int(v) for k, v in re.findall(r"^\s*(\w+):\s*(\d+)\s*$", out, re.M)}


def icmp_counters(host: Any) -> dict[str, int]:
    """The kernel's ICMP and ICMPv6 echo counters in `host`'s namespace.

    Read from /proc/net/snmp and /proc/net/snmp6 inside the namespace (each
    namespace has its own MIB): InEchos/OutEchoReps move when the *kernel*
    answers a ping, and stay put when an XDP program answers it instead.
    """
    out: dict[str, int] = {}
    snmp = host.run(["cat", "/proc/net/snmp"], check=True).stdout.splitlines()
    rows = [line.split() for line in snmp if line.startswith("Icmp:")]
    if len(rows) >= 2:
        out.update({f"Icmp{k}": int(v) for k, v in zip(rows[0][1:], rows[1][1:])})
    for line in host.run(["cat", "/proc/net/snmp6"], check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0].startswith("Icmp6"):
            out[parts[0]] = int(parts[1])
    return out


ECHO_COUNTERS = ("IcmpInEchos", "IcmpOutEchoReps", "Icmp6InEchos", "Icmp6OutEchoReplies")


def counter_delta(before: dict[str, int], after: dict[str, int], keys: tuple[str, ...] = ECHO_COUNTERS) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in keys}


# ---- the live chart ------------------------------------------------------------------------
@dataclass
class Sample:
    """One poll of the counter maps."""
    t: float
    protocols: dict[str, int]
    sources: dict[str, int]
    stats: ProgStats | None = None


@dataclass
class ChartSummary:
    """What the chart saw between start() and stop()."""
    samples: int
    seconds: float
    protocol_delta: dict[str, int] = field(default_factory=dict)
    source_delta: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def total(self) -> int:
        return sum(self.protocol_delta.values())

    def table(self) -> str:
        from .bench import format_table
        rows = [(name, n, n / self.seconds if self.seconds else 0.0)
                for name, n in self.protocol_delta.items() if n]
        rows += [(f"from {src}", n, n / self.seconds if self.seconds else 0.0)
                 for src, n in self.source_delta.items() if n]
        return format_table(["counted while the chart ran", "packets", "packets/s"], rows)


class LiveCounterChart:
    """A live ipywidgets chart of bpf/07-xdp-counter.c's maps while traffic flows.

    A daemon thread polls the maps every `interval` seconds and redraws: packets
    per second by protocol (lines over the last `window` seconds) and the top
    sources (bars). It stops on `stop()`, after `max_seconds` (so a forgotten
    chart never polls forever), or when the program's maps go away. Widget
    updates from a thread are safe in ipykernel (messages go through its IOPub
    thread), and nothing blocks the cell that started it — which is what lets
    the next cell run the traffic while the chart redraws.
    """

    def __init__(self, program: Any, *, interval: float = 0.5, window: float = 20.0, top: int = 5,
                 max_seconds: float = 300.0, title: str = "XDP counter") -> None:
        self.program, self.interval, self.window, self.top = program, interval, window, top
        self.max_seconds, self.title = max_seconds, title
        self.samples: list[Sample] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd = program_fd(program)
        self._prog_id = _fdinfo_prog_id(self._fd)
        self._widget = None
        self._image = self._html = self._status = None

    # widgets are built lazily so the class is usable (and testable) without a notebook
    @property
    def widget(self) -> Any:
        if self._widget is None:
            import ipywidgets as w
            self._status = w.HTML(f"<b>{self.title}</b>: not started")
            self._image = w.Image(format="png", layout=w.Layout(max_width="760px"))
            self._html = w.HTML("")
            self._widget = w.VBox([self._status, self._image, self._html])
        return self._widget

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)

    def start(self) -> "LiveCounterChart":
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self.samples.clear()
        self.error = None
        self._poll()
        self._thread = threading.Thread(target=self._run, name="xdp-live-chart", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> ChartSummary:
        """Stop polling (waits for the thread), take a last sample, return what moved."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, 4 * self.interval))
        if self.error is None:
            with contextlib.suppress(Exception):
                self._poll()
        self._render(final=True)
        return self.summary()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def summary(self) -> ChartSummary:
        if len(self.samples) < 2:
            return ChartSummary(len(self.samples), 0.0, error=self.error)
        first, last = self.samples[0], self.samples[-1]
        return ChartSummary(
            samples=len(self.samples), seconds=last.t - first.t,
            protocol_delta={k: last.protocols.get(k, 0) - first.protocols.get(k, 0) for k in last.protocols},
            source_delta={k: v - first.sources.get(k, 0) for k, v in last.sources.items()},
            error=self.error)

    def moved(self) -> bool:
        """True if any counter increased while the chart ran."""
        return self.summary().total > 0

    def __enter__(self) -> "LiveCounterChart":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- internals ---------------------------------------------------------------------
    def _poll(self) -> None:
        if getattr(self.program, "attached", True) is False:
            raise PacketlabError("the program was detached")
        try:
            stats = ProgStats.read(self._fd)
            alive = _fdinfo_prog_id(self._fd) == self._prog_id
        except (OSError, PacketlabError):
            stats, alive = None, False
        if not alive:
            raise PacketlabError("the program was unloaded")
        self.samples.append(Sample(time.monotonic(), protocol_counts(self.program),
                                   source_counts(self.program), stats))

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            if time.monotonic() - started > self.max_seconds:
                self.error = f"stopped after max_seconds={self.max_seconds:g}"
                break
            try:
                self._poll()
                self._render()
            except Exception as exc:   # maps gone (program detached) or widget trouble: stop quietly
                self.error = f"stopped: {type(exc).__name__}: {exc}"
                break

    def _rates(self) -> tuple[list[float], dict[str, list[float]]]:
        """Per-protocol packets/s between consecutive samples inside the window."""
        now = self.samples[-1].t
        recent = [s for s in self.samples if now - s.t <= self.window]
        times, series = [], {c: [] for c in CATEGORIES}
        for a, b in zip(recent, recent[1:]):
            dt = b.t - a.t
            if dt <= 0:
                continue
            times.append(b.t - now)
            for c in CATEGORIES:
                series[c].append((b.protocols[c] - a.protocols[c]) / dt)
        return times, series

    def _render(self, final: bool = False) -> None:
        if self._widget is None or not self.samples:
            return
        from matplotlib.figure import Figure
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        times, series = self._rates()
        last = self.samples[-1]
        fig = Figure(figsize=(8, 2.8), dpi=72)
        FigureCanvasAgg(fig)
        ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        for c, ys in series.items():
            if any(ys):
                ax1.plot(times, ys, label=c)
        ax1.set_xlabel("seconds ago"), ax1.set_ylabel("packets/s"), ax1.set_title("by protocol")
        if any(any(ys) for ys in series.values()):
            ax1.legend(fontsize=7, loc="upper left")
        top = list(last.sources.items())[: self.top]
        ax2.barh([s for s, _ in top][::-1], [n for _, n in top][::-1], color="tab:blue")
        ax2.set_title("top sources (packets)"), ax2.tick_params(labelsize=7)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        self._image.value = buf.getvalue()
        rate = ""
        if len(self.samples) >= 2 and last.stats and self.samples[-2].stats:
            r = last.stats.since(self.samples[-2].stats)
            if r.runs:
                rate = f" — bpf_stats: {r.pps:,.0f} runs/s, {r.ns_per_run:,.0f} ns/run"
        state = "stopped" if final else f"polling every {self.interval:g} s"
        self._status.value = (f"<b>{self.title}</b>: {state}, {len(self.samples)} samples, "
                              f"{sum(last.protocols.values()):,} packets counted{rate}"
                              + (f" <i>({self.error})</i>" if self.error else ""))
        rows = "".join(f"<tr><td>{c}</td><td style='text-align:right'>{n:,}</td></tr>"
                       for c, n in last.protocols.items() if n)
        self._html.value = f"<table><tr><th>protocol</th><th>packets</th></tr>{rows}</table>"
