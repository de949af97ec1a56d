"""The libbpf CO-RE path: clang + vmlinux.h + bpftool, no bcc.

bcc compiles your C every time a program loads, against kernel headers that
must match the running kernel. The CO-RE ("compile once, run everywhere") path
compiles once with clang against ``vmlinux.h`` — every kernel type, generated
from the running kernel's BTF — and libbpf (inside bpftool here) rewrites the
struct offsets recorded as CO-RE relocations to the loading kernel's layout.

    obj = core.compile_object("bpf/06-core-netns-rx.bpf.c")      # clang -target bpf
    prog = core.load(obj, lab=lab)      # bpftool prog load ... pinmaps ..., pinned under
                                        # /sys/fs/bpf/packetlab/<lab>/<name>/
    prog.attach()                       # tp_btf/fentry/fexit: a bpf_link, pinned too
    prog.table("frames_by_proto")       # bpftool map dump -j, decoded
    prog.close()                        # unpin everything (the lab also does it on close)

vmlinux.h and object files live in a cache directory (``$PACKETLAB_CACHE`` or
``~/.cache/packetlab/core``), never in the repository: they belong to one kernel.
Every pin is recorded in the lab's record before it is created, so a crashed
notebook's pins are removed by the guardian or ``packetlab clean``.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from packetlab.ebpf import bpftool as bt
from packetlab.ebpf.loader import BPF_DIR, explain_verifier_log, resolve_source
from packetlab.ebpf.syscall import BPF_RAW_TRACEPOINT_OPEN
from packetlab.ebpf.testrun import XDP_VERDICTS, TestRunResult, prog_test_run
from packetlab.errors import BpfCompileError, MissingRequirement, PacketlabError, VerifierError

if TYPE_CHECKING:
    from packetlab.topo.lab import Lab

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")
BPFFS = Path("/sys/fs/bpf")
PIN_ROOT = BPFFS / "packetlab"
TARGET_ARCH = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def cache_dir() -> Path:
    """Where vmlinux.h and compiled objects are kept (created on first use)."""
    base = os.environ.get("PACKETLAB_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "packetlab")
    path = Path(base) / "core"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _btf_digest() -> str:
    if not VMLINUX_BTF.exists():
        raise MissingRequirement(
            "this kernel exposes no BTF (/sys/kernel/btf/vmlinux is missing)",
            cause="the kernel was built without CONFIG_DEBUG_INFO_BTF",
            fix="CO-RE needs a kernel with BTF (every mainstream distro kernel since ~5.8 has it); "
            "`packetlab doctor` checks it",
        )
    return hashlib.sha256(VMLINUX_BTF.read_bytes()).hexdigest()[:16]


def vmlinux_header(*, force: bool = False) -> Path:
    """Generate (once per kernel) vmlinux.h from the running kernel's BTF with bpftool.

    ``bpftool btf dump file /sys/kernel/btf/vmlinux format c`` prints every type
    the kernel knows as C; the file is cached under a name that includes a hash
    of the BTF, so a new kernel gets a new header.
    """
    key = f"{os.uname().release}-{_btf_digest()}"
    folder = cache_dir() / key
    header = folder / "vmlinux.h"
    if header.exists() and not force:
        return header
    folder.mkdir(parents=True, exist_ok=True)
    text = bt.bpftool(["btf", "dump", "file", str(VMLINUX_BTF), "format", "c"], json_output=False, timeout=120)
    tmp = header.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, header)
    return header


@dataclass
class CoreObject:
    """A BPF object file compiled by clang for the CO-RE path."""

    source: Path
    path: Path
    compile_seconds: float  # 0.0 when reused from the cache
    clang_argv: list[str]

    @property
    def size(self) -> int:
        return self.path.stat().st_size

    @property
    def name(self) -> str:
        return self.source.name.split(".")[0]


def compile_object(source: str | os.PathLike, *, cflags: tuple[str, ...] = (), fresh: bool = False) -> CoreObject:
    """``clang -O2 -g -target bpf`` a bpf/*.bpf.c file against this kernel's vmlinux.h."""
    src = resolve_source(source)
    clang = shutil.which("clang")
    if clang is None:
        raise MissingRequirement(
            "clang is not installed", fix="run `sudo vagrant/provision.sh` (installs clang and llvm)"
        )
    header = vmlinux_header()
    digest = hashlib.sha256(src.read_bytes() + header.parent.name.encode() + repr(cflags).encode()).hexdigest()[:12]
    obj = header.parent / f"{src.name.split('.')[0]}-{digest}.o"
    argv = [
        clang,
        "-O2",
        "-g",
        "-Wall",
        "-target",
        "bpf",
        f"-D__TARGET_ARCH_{TARGET_ARCH}",
        f"-I{header.parent}",
        f"-I{BPF_DIR}",
        f"-I{src.parent}",
        *cflags,
        "-c",
        str(src),
        "-o",
        str(obj),
    ]
    if obj.exists() and not fresh:
        return CoreObject(src, obj, 0.0, argv)
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        errors = [line for line in proc.stderr.splitlines() if "error" in line]
        raise BpfCompileError(
            f"clang could not compile {src.name}",
            cause=(errors[0] if errors else proc.stderr.strip()[-300:]).replace(str(src.parent) + "/", ""),
            fix="fix the C error at the line shown; the full compiler output is below",
            detail=proc.stderr.strip()[-3000:],
        )
    return CoreObject(src, obj, seconds, argv)


_LOG_BLOCK = re.compile(r"-- BEGIN PROG LOAD LOG --\n(.*?)-- END PROG LOAD LOG --", re.S)


def _lab_pin_dir(lab: Lab | None) -> Path:
    owner = lab.name if lab is not None else f"pid{os.getpid()}"
    return PIN_ROOT / owner


def _check_bpffs() -> None:
    with open("/proc/mounts") as f:
        if not any(line.split()[1] == str(BPFFS) and line.split()[2] == "bpf" for line in f):
            raise MissingRequirement(
                "bpffs is not mounted at /sys/fs/bpf",
                cause="pinned programs and maps live in the BPF filesystem",
                fix="run `sudo vagrant/provision.sh` (it mounts it), or: mount -t bpf bpf /sys/fs/bpf",
            )


class _RawTpAttr(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_uint64),
        ("prog_fd", ctypes.c_uint32),
        ("_pad", ctypes.c_uint32),
        ("cookie", ctypes.c_uint64),
    ]


@dataclass
class CoreProgram:
    """A program loaded and pinned by bpftool: /sys/fs/bpf/packetlab/<lab>/<name>/{prog,maps/,link}."""

    name: str
    obj: CoreObject
    pin_dir: Path
    lab: Lab | None = None
    load_seconds: float = 0.0
    linked: bool = False
    pins: list[str] = field(default_factory=list)

    @property
    def prog_pin(self) -> Path:
        return self.pin_dir / "prog"

    @property
    def map_dir(self) -> Path:
        return self.pin_dir / "maps"

    @property
    def link_pin(self) -> Path:
        return self.pin_dir / "link"

    def info(self) -> dict:
        """``bpftool prog show pinned <pin> -j``."""
        return bt.prog_show(str(self.prog_pin))

    @property
    def id(self) -> int:
        return int(self.info()["id"])

    def map_names(self) -> list[str]:
        return sorted(p.name for p in self.map_dir.iterdir()) if self.map_dir.exists() else []

    def map_pin(self, name: str) -> Path:
        path = self.map_dir / name
        if not path.exists():
            raise PacketlabError(
                f"no map named {name!r} pinned for {self.name}",
                cause=f"maps pinned: {', '.join(self.map_names()) or 'none'}",
                fix="use one of those names (the map's variable name in the C file)",
            )
        return path

    def map_dump(self, name: str) -> list[dict]:
        """``bpftool map dump pinned <pin> -j`` — the raw JSON entries."""
        return bt.map_dump(str(self.map_pin(name)))

    def table(self, name: str) -> dict:
        """The map's contents as {key: value} (BTF-formatted when available)."""
        return bt.entries_to_dict(self.map_dump(name))

    def update(self, name: str, key: int, value: int, *, key_size: int = 4, value_size: int = 4) -> None:
        """``bpftool map update pinned <pin> key hex ... value hex ...`` (little-endian integers)."""
        kb = [f"{b:02x}" for b in key.to_bytes(key_size, "little")]
        vb = [f"{b:02x}" for b in value.to_bytes(value_size, "little")]
        bt.bpftool(
            ["map", "update", "pinned", str(self.map_pin(name)), "key", "hex", *kb, "value", "hex", *vb],
            json_output=False,
        )

    def attach(self) -> Path:
        """Attach a BTF-enabled tracing program (tp_btf, fentry, fexit) and pin the link.

        bpftool 7.1 cannot attach tracing programs, so this does what libbpf's
        bpf_program__attach() does: BPF_RAW_TRACEPOINT_OPEN on the program fd,
        which returns a bpf_link, pinned as <pin_dir>/link. The attachment
        lasts as long as the pin: unlinking the file detaches the program.
        """
        if self.linked:
            return self.link_pin
        self._track(self.link_pin)
        fd = bt.obj_get(str(self.prog_pin))
        try:
            link = bt.bpf_syscall(
                BPF_RAW_TRACEPOINT_OPEN,
                _RawTpAttr(name=0, prog_fd=fd),
                f"attach {self.name} (only tp_btf/fentry/fexit programs attach this way)",
            )
            try:
                bt.obj_pin(link, str(self.link_pin))
            finally:
                os.close(link)
        finally:
            os.close(fd)
        self.linked = True
        return self.link_pin

    def test_run(self, packet: bytes | Any, *, repeat: int = 1) -> TestRunResult:
        """BPF_PROG_TEST_RUN an XDP program on `packet`."""
        fd = bt.obj_get(str(self.prog_pin))
        try:
            return prog_test_run(fd, bytes(packet), repeat=repeat, verdicts=XDP_VERDICTS)
        finally:
            os.close(fd)

    def _track(self, path: Path) -> None:
        self.pins.append(str(path))
        if self.lab is not None and self.lab.running:
            self.lab.track_pin(str(path))

    def close(self) -> None:
        """Unpin the link (detaches), the maps and the program; remove the pin folders."""
        for path in [self.link_pin, self.prog_pin] + ([self.map_dir / m for m in self.map_names()]):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
        self.linked = False
        for folder in (self.map_dir, self.pin_dir, self.pin_dir.parent):
            with contextlib.suppress(OSError):  # not empty (another program's pins) or gone
                folder.rmdir()

    detach = close  # the lab calls detach() on everything it tracks

    def __enter__(self) -> CoreProgram:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CoreProgram {self.name} pinned at {self.pin_dir}{' (attached)' if self.linked else ''}>"


def load(
    obj: CoreObject | str | os.PathLike,
    *,
    lab: Lab | None = None,
    name: str | None = None,
    prog_type: str | None = None,
) -> CoreProgram:
    """``bpftool prog load OBJ <pin_dir>/prog pinmaps <pin_dir>/maps`` — load and pin.

    With a lab the pins live under /sys/fs/bpf/packetlab/<lab>/<name>/, are
    recorded in the lab's record, and are removed when the lab closes. A
    verifier rejection raises VerifierError with the verifier's own log, the
    offending line of the .bpf.c file, and a hint.
    """
    _check_bpffs()
    if not isinstance(obj, CoreObject):
        obj = compile_object(obj)
    name = name or obj.name
    if not re.fullmatch(r"[\w.-]+", name):
        raise PacketlabError(f"bad pin name {name!r}", fix="use letters, digits, '-', '_' and '.' only")
    pin_dir = _lab_pin_dir(lab) / name
    if pin_dir.exists() and any(pin_dir.iterdir()):
        raise PacketlabError(
            f"{pin_dir} is already in use",
            cause="a program with this name is already pinned for this lab",
            fix="close it first (prog.close()) or pass name='another-name'",
        )
    prog = CoreProgram(name, obj, pin_dir, lab)
    prog._track(prog.prog_pin)
    pin_dir.mkdir(parents=True, exist_ok=True)
    argv = (
        ["prog", "load", str(obj.path), str(prog.prog_pin)]
        + (["type", prog_type] if prog_type else [])
        + ["pinmaps", str(prog.map_dir)]
    )
    t0 = time.perf_counter()
    try:
        bt.bpftool(argv, json_output=False, timeout=120)
    except PacketlabError as exc:
        prog.close()
        raise _load_error(obj, str(exc.cause or "")) from None
    prog.load_seconds = time.perf_counter() - t0
    for m in prog.map_names():
        prog._track(prog.map_dir / m)
    if lab is not None:
        lab.track(prog)  # lab.close() calls prog.detach() = unpin
    return prog


def _load_error(obj: CoreObject, output: str) -> PacketlabError:
    block = _LOG_BLOCK.search(output)
    if block is None:
        lines = [line for line in output.splitlines() if line.startswith(("libbpf:", "Error:"))]
        return PacketlabError(
            f"bpftool could not load {obj.source.name}",
            cause="\n         ".join(lines[-4:]) or output[-500:],
            fix="read libbpf's messages above (a CO-RE relocation that fails names the missing field)",
        )
    log = block.group(1)
    ex = explain_verifier_log(log, obj.source.read_text())
    where = f"{obj.source.name}:{ex.line_number}" if ex.line_number else obj.source.name
    cause = f"{ex.message}\n         at {where}: {ex.source_line}" if ex.source_line else ex.message
    if ex.meaning:
        cause += f"\n         meaning: {ex.meaning}"
    return VerifierError(
        f"the verifier rejected {obj.source.name} (loaded with bpftool)",
        log=log,
        source_line=ex.source_line,
        line_number=ex.line_number,
        cause=cause,
        fix=ex.fix or "read the verifier log below from the bottom up",
        detail="verifier log (last lines):\n" + "\n".join(log.strip().splitlines()[-40:]),
    )


def bcc_headers_release() -> str | None:
    """The kernel release bcc's headers (/lib/modules/$(uname -r)/build) were made for."""
    build = Path(f"/lib/modules/{os.uname().release}/build")
    for rel in ("include/generated/utsrelease.h", "include/config/kernel.release"):
        path = build / rel
        if path.exists():
            text = path.read_text()
            m = re.search(r'"([^"]+)"', text)
            return m.group(1) if m else text.strip()
    return None
