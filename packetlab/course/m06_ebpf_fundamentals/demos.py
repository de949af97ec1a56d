"""Module 06 (eBPF fundamentals): the lab's plumbing, so notebook cells stay short.

Nothing here is simulated: frames go through real programs with
BPF_PROG_TEST_RUN, datagrams cross a real veth pair, and every number comes
from a kernel map, bpftool or /proc.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.ebpf import bpftool as bt
from packetlab.ebpf.fdinfo import prog_id
from packetlab.ebpf.loader import LoadedProgram, acquire, release
from packetlab.errors import PacketlabError
from packetlab.show.tables import WORDS, format_table
from packetlab.topo import netns

if TYPE_CHECKING:
    from packetlab.ebpf.co_re import CoreProgram
    from packetlab.ebpf.tracepoints import TracepointProgram
    from packetlab.topo.host import Host
    from packetlab.topo.lab import Lab

MAP_TYPES_PROGRAM = "bpf/06-map-types.c"


# ---- the machine ------------------------------------------------------------------------
def toolchain_facts() -> str:
    """What this kernel and toolchain offer eBPF, as a table (all read live)."""
    from packetlab.ebpf.co_re import bcc_headers_release
    from packetlab.ebpf.tracepoints import kprobes_available

    jit = Path("/proc/sys/net/core/bpf_jit_enable")
    rows = [
        ["kernel", os.uname().release],
        ["kernel BTF (/sys/kernel/btf/vmlinux)", "yes" if Path("/sys/kernel/btf/vmlinux").exists() else "NO"],
        ["BPF JIT (net.core.bpf_jit_enable)", jit.read_text().strip() if jit.exists() else "?"],
        ["kprobes", "yes" if kprobes_available() else "no (tracepoints and fentry/fexit only)"],
        ["headers bcc compiles against", bcc_headers_release() or "none found"],
        ["bpftool", _first_line(["bpftool", "version"])],
        ["clang", _first_line(["clang", "--version"])],
    ]
    return format_table(["what", "this machine"], rows, align=WORDS)


def _first_line(argv: list[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    return subprocess.run(argv, capture_output=True, text=True).stdout.splitlines()[0].strip()


def netns_inode(host: Host) -> int:
    """The inode number that names a lab host's network namespace inside the kernel (ns.inum)."""
    return os.stat(f"{netns.NETNS_DIR}/{host.namespace}").st_ino


# ---- tracepoints ------------------------------------------------------------------------
def udp_burst(
    sender: Host, receiver: Host, dst_ip: str, count: int, *, port: int = 9999, timeout: float = 2.0
) -> list[bytes]:
    """Send `count` UDP datagrams from `sender` to a listener on `receiver`, from THIS process.

    Both sockets are created inside the hosts' namespaces but the calls run in
    the notebook's process, so a tracepoint filtered on our PID sees them. The
    listener makes sure no ICMP 'port unreachable' comes back. Returns the
    payloads received.
    """
    with netns.entered(receiver.namespace):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with netns.entered(sender.namespace):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    got: list[bytes] = []
    try:
        rx.bind((dst_ip, port))
        rx.settimeout(timeout)
        for i in range(count):
            tx.sendto(f"packetlab datagram {i}".encode(), (dst_ip, port))
        for _ in range(count):
            got.append(rx.recv(2048))
    except TimeoutError:
        pass
    finally:
        tx.close()
        rx.close()
    return got


def kprobe_udp_sends(sender: Host, receiver: Host, dst_ip: str, count: int, *, lab: Lab | None = None) -> int | None:
    """Count this process's ``udp_sendmsg()`` calls with a kprobe while `count` datagrams go out; None without kprobes.

    Stock kernels have kprobes and the count is `count`. A kernel built without
    them (``kprobes_available()`` is False) compiles the program but cannot
    attach it; then nothing is sent and the answer is None, so the lab can say
    so instead of failing.
    """
    from packetlab.ebpf.tracepoints import TracepointProgram, kprobes_available

    with TracepointProgram("bpf/06-kprobe-udp-send.c", lab=lab) as kp:
        if not kprobes_available():
            return None
        kp.attach_kprobe("udp_sendmsg", "count_udp_sendmsg")
        kp.set("target_tgid", 0, os.getpid())
        udp_burst(sender, receiver, dst_ip, count)
        return int(kp.table("udp_sendmsg_calls").get(0, 0))


def printk_sends(
    sender: Host, receiver: Host, dst_ip: str, count: int, *, lab: Lab | None = None, timeout: float = 3.0
) -> list[str]:
    """Send `count` datagrams while `bpf/06-printk.c` prints one trace line per sendto(); return our lines.

    Each run writes a fresh random tag into the program, and only lines carrying it
    are returned: the trace buffer is shared by every program on the machine.
    """
    from packetlab.ebpf.tracepoints import TracepointProgram, trace_buffer_lines

    marker = secrets.randbelow(2**31)
    with TracepointProgram("bpf/06-printk.c", lab=lab) as prog:
        prog.set("tag", 0, marker)
        prog.set("target_tgid", 0, os.getpid())
        udp_burst(sender, receiver, dst_ip, count)
        deadline = time.monotonic() + timeout
        while True:
            lines = trace_buffer_lines(f"packetlab-{marker} ")
            if len(lines) >= count or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)


def events_table(events: list[dict], *, since_ns: int | None = None) -> str:
    """Ring-buffer xmit events as a table; time relative to the first event (µs)."""
    if not events:
        return "(no events)"
    t0 = since_ns if since_ns is not None else events[0]["ts_ns"]
    rows = [
        [n, round((e["ts_ns"] - t0) / 1000, 1), e["dev"], e["len"], e["rc"], e["cpu"]] for n, e in enumerate(events, 1)
    ]
    return format_table(["#", "t (µs)", "dev", "len", "rc", "cpu"], rows)


# ---- map types --------------------------------------------------------------------------
@contextlib.contextmanager
def on_cpu(cpu: int) -> Iterator[None]:
    """Run the block on one CPU only (BPF_PROG_TEST_RUN runs the program on the caller's CPU)."""
    before = os.sched_getaffinity(0)
    if cpu not in before:
        raise PacketlabError(
            f"CPU {cpu} is not available to this process",
            cause=f"allowed CPUs: {sorted(before)}",
            fix="pick one of those",
        )
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def ipv4_frame(src: str, dst: str = "10.0.6.2", proto: str = "udp") -> bytes:
    """An Ethernet/IPv4 frame with a UDP, TCP or ICMP header (scapy), as bytes."""
    from scapy.layers.inet import ICMP, IP, TCP, UDP
    from scapy.layers.l2 import Ether

    l4 = {"udp": UDP(sport=40000, dport=9999), "tcp": TCP(sport=40000, dport=80), "icmp": ICMP()}[proto]
    return bytes(Ether(src="02:00:00:00:06:01", dst="02:00:00:00:06:02") / IP(src=src, dst=dst) / l4)


def arp_frame() -> bytes:
    """An ARP request frame: not IPv4, so of 06-map-types.c's maps only per_cpu counts it."""
    from scapy.layers.l2 import ARP, Ether

    return bytes(
        Ether(src="02:00:00:00:06:01", dst="ff:ff:ff:ff:ff:ff")
        / ARP(hwsrc="02:00:00:00:06:01", psrc="10.0.6.1", pdst="10.0.6.2")
    )


def ipv4_key(key: int) -> str:
    """A u32 map key holding ip->saddr (network byte order read as a host integer) as a dotted address."""
    return socket.inet_ntoa(struct.pack("<I", key))


def last_octets(table: dict) -> set[int]:
    """{1, 2, 3} for a map keyed by 10.0.0.1, 10.0.0.2, 10.0.0.3."""
    return {int(ipv4_key(k).rsplit(".", 1)[1]) for k in table}


def feed(prog: LoadedProgram, frames: Iterable[bytes], *, cpu: int = 0) -> list[str]:
    """Run each frame through `prog` on one CPU; return the verdicts."""
    with on_cpu(cpu):
        return [prog.test_run(frame).verdict for frame in frames]


def feed_sources(prog: LoadedProgram, sequence: Iterable[int], *, cpu: int = 0) -> None:
    """One UDP frame from 10.0.0.<n> for each n in `sequence`, in order, on one CPU."""
    feed(prog, (ipv4_frame(f"10.0.0.{n}") for n in sequence), cpu=cpu)


def lru_vs_hash(sequence: Iterable[int]) -> dict[str, Any]:
    """Feed sources 10.0.0.<n> into a fresh copy of 06-map-types.c; what did each map keep?

    Returns {"hash": {octets}, "lru": {octets}, "hash_full": refused inserts}.
    """
    prog = acquire(MAP_TYPES_PROGRAM)
    try:
        prog.reset_maps()
        feed_sources(prog, list(sequence))
        return {
            "hash": last_octets(prog.table("by_src")),
            "lru": last_octets(prog.table("lru_by_src")),
            "hash_full": prog.table("hash_full")[0],
        }
    finally:
        release(prog)


def per_cpu_values(prog: LoadedProgram, map_name: str = "per_cpu", key: int = 0) -> list[int]:
    """The raw per-CPU slots of one key (bcc returns one value per possible CPU)."""
    table = prog[map_name]
    return [int(v) for v in table[table.Key(key)]]


# ---- the pipeline, seen with bpftool -----------------------------------------------------
def pipeline(prog: LoadedProgram) -> str:
    """Source → bytecode → xlated → JIT for one loaded bcc program, measured live."""
    pid = prog_id(prog)
    info = bt.prog_show(pid)
    src_lines = [
        line for line in prog.source.splitlines() if line.strip() and not line.strip().startswith(("/*", "*", "//"))
    ]
    bytecode = prog.bpf.dump_func(prog.function.encode())
    calls = lambda insns: sum(1 for i in insns if "(85) call" in i)  # noqa: E731
    xlated = bt.xlated_insns(pid)
    bytecode_calls = sum(1 for i in range(0, len(bytecode), 8) if bytecode[i] == 0x85)
    rows = [
        ["C source (non-comment lines)", len(src_lines), "", prog.path.name],
        [
            "bytecode from clang (8-byte slots)",
            len(bytecode) // 8,
            bytecode_calls,
            "what bcc handed to bpf(BPF_PROG_LOAD)",
        ],
        [
            "xlated: after the verifier (slots)",
            info["bytes_xlated"] // 8,
            calls(xlated),
            f"bpftool prog dump xlated id {pid}",
        ],
        ["jited: x86-64 machine code (bytes)", info["bytes_jited"], "", f"bpftool prog dump jited id {pid}"],
    ]
    return format_table(["stage", "size", "helper calls", "see it with"], rows, align=WORDS)


def our_programs(ids: Iterable[int]) -> str:
    """`bpftool prog show` filtered to the given IDs, as a table."""
    wanted = set(ids)
    rows = [
        [
            p["id"],
            p["type"],
            p.get("name", ""),
            p.get("bytes_xlated", 0),
            p.get("bytes_jited", 0),
            ",".join(str(m) for m in p.get("map_ids", [])),
        ]
        for p in bt.prog_list()
        if p["id"] in wanted
    ]
    return format_table(["id", "type", "name", "xlated B", "jited B", "map ids"], rows)


def our_maps(ids: Iterable[int]) -> str:
    """`bpftool map show` filtered to the given IDs, as a table."""
    wanted = set(ids)
    rows = [
        [m["id"], m["type"], m.get("name", ""), m.get("bytes_key"), m.get("bytes_value"), m.get("max_entries")]
        for m in bt.map_list()
        if m["id"] in wanted
    ]
    return format_table(["id", "type", "name", "key B", "value B", "max entries"], rows)


def count_xlated_calls(prog_id: int) -> int:
    """How many helper calls remain in the xlated code (the reference for an exercise)."""
    return sum(1 for insn in bt.xlated_insns(prog_id) if re.search(r"\(85\) call", insn))


# ---- bcc vs CO-RE ----------------------------------------------------------------------
LAYOUT_FIELDS = ["sk_buff.dev", "net_device.nd_net", "ns_common.inum"]


def compare_paths(bcc_prog: TracepointProgram, core_prog: CoreProgram) -> tuple[str, dict]:
    """Same counter, two toolchains: offsets each one used and what each counted.

    Returns (table text, facts dict with 'bcc_layout', 'core_layout', 'bcc_ipv4', 'core_ipv4').
    """
    from packetlab.ebpf.co_re import bcc_headers_release

    bcc_layout = bcc_prog.table("layout")
    core_layout = core_prog.table("layout")
    bcc_counts = bcc_prog.table("frames_by_proto")
    core_counts = core_prog.table("frames_by_proto")
    facts = {
        "bcc_layout": [bcc_layout.get(i, 0) for i in range(3)],
        "core_layout": [core_layout.get(i, 0) for i in range(3)],
        "bcc_ipv4": bcc_counts.get(0x0800, 0),
        "core_ipv4": core_counts.get(0x0800, 0),
    }
    rows: list[list[object]] = [
        ["compiled against", f"headers {bcc_headers_release()}", f"BTF of {os.uname().release} (vmlinux.h)"],
        [
            "compile (+ load) time, s",
            round(bcc_prog.load_seconds, 3),
            f"{core_prog.obj.compile_seconds:.3f} + {core_prog.load_seconds:.3f}",
        ],
        ["needed at run time", "clang/LLVM (bcc) + kernel headers", "BTF + a loader (bpftool/libbpf)"],
    ]
    for name, b, c in zip(LAYOUT_FIELDS, facts["bcc_layout"], facts["core_layout"]):
        rows.append([f"offset of {name}", b, c])
    rows.append(["IPv4 frames counted", facts["bcc_ipv4"], facts["core_ipv4"]])
    return format_table(["", "bcc (06-tp-netns-rx.c)", "CO-RE (06-core-netns-rx.bpf.c)"], rows, align=WORDS), facts
