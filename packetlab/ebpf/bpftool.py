"""bpftool from Python: list programs and maps, dump xlated/jited code, read maps as JSON.

bpftool is the kernel's own inspection tool; every function here runs it and
parses its JSON (``-j``), so what a notebook prints is exactly what you would
see typing the command. The one exception is `dump_jited`: Debian's bpftool is
built without libbfd and answers "No libbfd support", so the JIT image is then
fetched the way bpftool itself fetches it (the BPF_OBJ_GET_INFO_BY_FD syscall)
and disassembled with objdump.

Programs and maps are named by kernel ID; `packetlab.ebpf.fdinfo.prog_id(fd)` /
`map_id(fd)` find the ID of a program or map this process holds (bcc gives you
file descriptors).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from typing import Any

from packetlab.ebpf import syscall as bpfsys
from packetlab.ebpf.maps import percpu_sum
from packetlab.ebpf.syscall import (
    BPF_OBJ_GET,
    BPF_OBJ_GET_INFO_BY_FD,
    BPF_OBJ_PIN,
    BPF_PROG_GET_FD_BY_ID,
)
from packetlab.ebpf.syscall import GetIdAttr as _GetIdAttr
from packetlab.ebpf.syscall import InfoAttr as _InfoAttr
from packetlab.ebpf.syscall import ObjAttr as _ObjAttr
from packetlab.ebpf.syscall import ProgInfo as _ProgInfo
from packetlab.errors import MissingRequirement, PacketlabError


def bpf_syscall(cmd: int, attr: ctypes.Structure, what: str) -> int:
    """Call bpf(cmd, attr); raise a PacketlabError naming `what` on failure."""
    try:
        return bpfsys.bpf(cmd, attr)
    except OSError as exc:
        err = exc.errno
        raise PacketlabError(
            f"bpf() failed: {what}",
            cause=f"errno {err}: {exc.strerror}",
            fix="run as root; check the object still exists with `bpftool prog show` / `bpftool map show`",
        ) from None


def bpftool(args: Sequence[str], *, json_output: bool = True, timeout: float = 30) -> Any:
    """Run ``bpftool [-j] args`` and return parsed JSON (or text with json_output=False)."""
    exe = shutil.which("bpftool")
    if exe is None:
        raise MissingRequirement(
            "bpftool is not installed", fix="run `sudo vagrant/provision.sh` (installs the bpftool package)"
        )
    argv = [exe] + (["-j"] if json_output else []) + list(args)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        msg = proc.stderr.strip() or proc.stdout.strip()
        with contextlib.suppress(ValueError):
            msg = json.loads(proc.stdout).get("error", msg)
        raise PacketlabError(
            f"bpftool {' '.join(args)} failed",
            cause=msg[-1500:] or f"exit code {proc.returncode}",
            fix="is the ID still loaded? list them with `bpftool prog show` / `bpftool map show`",
        )
    return json.loads(proc.stdout or "null") if json_output else proc.stdout


def prog_show(prog: int | str) -> dict:
    """``bpftool prog show id N`` (or ``pinned PATH`` when given a path)."""
    return bpftool(["prog", "show", *_ref(prog)])


def prog_list() -> list[dict]:
    """Every BPF program loaded on this machine (``bpftool prog show``)."""
    return bpftool(["prog", "show"]) or []


def map_show(map_ref: int | str) -> dict:
    return bpftool(["map", "show", *_ref(map_ref)])


def map_list() -> list[dict]:
    """Every BPF map on this machine (``bpftool map show``)."""
    return bpftool(["map", "show"]) or []


def map_dump(map_ref: int | str) -> list[dict]:
    """``bpftool map dump id N -j``: entries with raw hex bytes and, when the map has BTF, 'formatted'."""
    return bpftool(["map", "dump", *_ref(map_ref)]) or []


def dump_xlated(prog: int | str, *, linum: bool = False) -> str:
    """The bytecode as the kernel holds it after the verifier's rewrites."""
    return bpftool(["prog", "dump", "xlated", *_ref(prog)] + (["linum"] if linum else []), json_output=False)


def xlated_insns(prog: int | str) -> list[str]:
    """Just the instruction lines of `dump_xlated` (``  12: (85) call ...``)."""
    return [line.strip() for line in dump_xlated(prog).splitlines() if line.strip()[:1].isdigit() and ": (" in line]


def dump_jited(prog: int | str) -> str:
    """The machine code the JIT produced, disassembled.

    Uses ``bpftool prog dump jited``; if this bpftool has no disassembler
    ("No libbfd support"), reads the JIT image with BPF_OBJ_GET_INFO_BY_FD and
    disassembles it with objdump instead (a header line says which).
    """
    try:
        return bpftool(["prog", "dump", "jited", *_ref(prog)], json_output=False)
    except PacketlabError as exc:
        if "libbfd" not in str(exc.cause):
            raise
    image = jited_image(prog)
    return (
        "(bpftool here has no disassembler: JIT image read with BPF_OBJ_GET_INFO_BY_FD, disassembled by objdump)\n"
        + disassemble(image)
    )


def obj_get(path: str) -> int:
    """Open a pinned program, map or link (BPF_OBJ_GET); returns a new fd the caller closes."""
    raw = ctypes.create_string_buffer(os.fsencode(path))
    return bpf_syscall(BPF_OBJ_GET, _ObjAttr(pathname=ctypes.addressof(raw)), f"open pinned object {path}")


def obj_pin(fd: int, path: str) -> None:
    """Pin the object behind `fd` at `path` in bpffs (BPF_OBJ_PIN)."""
    raw = ctypes.create_string_buffer(os.fsencode(path))
    bpf_syscall(BPF_OBJ_PIN, _ObjAttr(pathname=ctypes.addressof(raw), bpf_fd=fd), f"pin at {path}")


def prog_fd(prog: int | str) -> int:
    """A new fd for program `prog` (an ID, or a pinned path)."""
    if isinstance(prog, str):
        return obj_get(prog)
    return bpf_syscall(BPF_PROG_GET_FD_BY_ID, _GetIdAttr(id=prog), f"open program id {prog}")


def jited_image(prog: int | str) -> bytes:
    """The raw JIT-compiled machine code of a program (what ``bpftool prog dump jited`` disassembles)."""
    fd = prog_fd(prog)
    try:
        info = _ProgInfo()
        bpf_syscall(
            BPF_OBJ_GET_INFO_BY_FD,
            _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info)),
            "read program info",
        )
        if info.jited_prog_len == 0:
            raise PacketlabError(
                f"program {prog} has no JIT image",
                cause="the BPF JIT is off (net.core.bpf_jit_enable = 0) or the kernel hides it",
                fix="check `sysctl net.core.bpf_jit_enable` (1 = on)",
            )
        buf = ctypes.create_string_buffer(info.jited_prog_len)
        info2 = _ProgInfo(jited_prog_len=info.jited_prog_len, jited_prog_insns=ctypes.addressof(buf))
        bpf_syscall(
            BPF_OBJ_GET_INFO_BY_FD,
            _InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info2), info=ctypes.addressof(info2)),
            "read the JIT image",
        )
        return buf.raw[: info2.jited_prog_len]
    finally:
        os.close(fd)


def disassemble(image: bytes) -> str:
    """Disassemble raw machine code of this machine's architecture with objdump."""
    arch = {"x86_64": "i386:x86-64", "aarch64": "aarch64"}.get(os.uname().machine)
    objdump = shutil.which("objdump") or shutil.which("llvm-objdump")
    if arch is None or objdump is None:
        return f"({len(image)} bytes of machine code; objdump not available to disassemble them)"
    with tempfile.NamedTemporaryFile(suffix=".bin") as tmp:
        tmp.write(image)
        tmp.flush()
        out = subprocess.run(
            [objdump, "-D", "-b", "binary", f"-m{arch}", tmp.name], capture_output=True, text=True, timeout=30
        ).stdout
    lines = out.splitlines()
    start = next((i for i, line in enumerate(lines) if line.endswith(">:")), -1)
    return "\n".join(lines[start + 1 :]).strip("\n") if start >= 0 else out


def _ref(obj: int | str) -> list[str]:
    if isinstance(obj, int):
        return ["id", str(obj)]
    if str(obj).startswith("/"):
        return ["pinned", str(obj)]
    return ["name", str(obj)]


def entries_to_dict(entries: list[dict]) -> dict:
    """Turn ``bpftool map dump -j`` output into {key: value}.

    Uses the BTF-formatted values when the map has BTF; otherwise decodes the
    little-endian hex byte lists as unsigned integers. Per-CPU values (a list
    of {cpu, value}) are summed.
    """
    out = {}
    for e in entries:
        if "formatted" in e:
            k, v = e["formatted"]["key"], e["formatted"].get("value", e["formatted"].get("values"))
        else:
            k, v = _hex_int(e["key"]), e.get("value", e.get("values"))
            v = _hex_int(v) if isinstance(v, list) and v and isinstance(v[0], str) else v
        if isinstance(v, list) and v and isinstance(v[0], dict) and "cpu" in v[0]:
            v = percpu_sum([_hex_int(c["value"]) if isinstance(c["value"], list) else c["value"] for c in v])
        out[k if not isinstance(k, (list, dict)) else json.dumps(k)] = v
    return out


def _hex_int(byte_list: list[str]) -> int:
    return int.from_bytes(bytes(int(b, 16) for b in byte_list), "little")
