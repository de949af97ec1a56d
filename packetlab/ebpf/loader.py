"""Compile, load and attach the C programs in bpf/ with bcc — with readable errors.

Why a wrapper around bcc: bcc prints the verifier log to stderr and raises a
bare "Permission denied"; here the log is captured, the rejected instruction is
mapped back to the line of *your* source file, and a hint says what the
verifier wants. bcc's own cleanup also never detaches XDP, so attachments here
are objects whose exit always detaches.

Compiling with bcc costs about a second (clang parses the kernel headers), so
compiled programs are pooled per process: an attachment that ends returns its
program to the pool with its maps cleared, and the next attachment of the same
unchanged source reuses it. Pass ``fresh=True`` to force a new compile.

Size (about 700 lines, over the ~600 the architecture page asks for): the compile
pool, the verifier-error mapping and the XDP/tc attachments share the pool's
lock and bcc's lifetime rules; they stay together until the pool gets a module
of its own.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import re
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packetlab.ebpf.maps import percpu_sum
from packetlab.ebpf.testrun import TC_VERDICTS, XDP_VERDICTS, TestRunResult, prog_test_run
from packetlab.ebpf.verifier_log import has_verifier_log, recover_verifier_log
from packetlab.errors import BpfCompileError, MissingRequirement, PacketlabError, VerifierError
from packetlab.paths import REPO_ROOT

BPF_DIR = REPO_ROOT / "bpf"

PROG_TYPES = {"xdp": "XDP", "sched_cls": "SCHED_CLS", "tc": "SCHED_CLS", "socket_filter": "SOCKET_FILTER"}
XDP_MODES = {"auto": 0, "generic": 2, "skb": 2, "native": 4, "drv": 4}
TC_PARENTS = {"ingress": "ffff:fff2", "egress": "ffff:fff3"}  # clsact hooks

# (pattern in the verifier log, what it means, how to fix it): the course's verifier phrasebook.
VERIFIER_HINTS: list[tuple[str, str, str]] = [
    (
        r"invalid access to packet|outside of the packet",
        "the program reads packet bytes it has not proven to exist",
        "compare with data_end before the read: if ((void *)(hdr + 1) > data_end) return XDP_PASS;",
    ),
    (
        r"back-edge|infinite loop|loop is not bounded|BPF program is too large|jumps is too complex|"
        r"Argument list too long",
        "the verifier cannot prove that a loop ends",
        "give the loop a constant upper bound (for (int i = 0; i < MAX; i++)) or use bpf_loop()",
    ),
    (
        r"min value is negative|min value is outside|unbounded memory access|max value is outside|R\d+ unbounded|"
        r"invalid access to memory.* size=0",
        "a length or offset has no proven range where it is used (a helper's size, an index)",
        "bound it right before the use (if (n < 1 || n > MAX) return ...; or n &= MASK); if it is bounded "
        "in C already, the compiler kept an unbounded copy on the stack (older kernels drop the range of "
        "a value stored while unbounded): re-check it after the last helper call, or mask it in asm",
    ),
    (
        r"map_value_or_null|_or_null",
        "a map lookup may return NULL and the pointer is used without a check",
        "test the pointer first: v = map.lookup(&key); if (!v) return XDP_PASS;",
    ),
    (
        r"invalid access to map value|value_size=",
        "an index or offset may fall outside the map value",
        "bounds-check the index against the value size (if (i >= N) return ...;) before using it",
    ),
    (
        r"invalid (indirect )?read from stack|!read_ok|uninit",
        "the program reads a stack variable (or register) that was never written",
        "initialise the variable (struct key k = {}; or __builtin_memset) before use",
    ),
    (
        r"unknown func|cannot call|program of this type cannot use helper|helper call is not allowed",
        "the program calls a helper that this program type may not use",
        "use a helper allowed for the hook (see `bpftool feature probe`), or move the work to another program type",
    ),
    (
        r"misaligned",
        "a load or store is not aligned to its size",
        "read multi-byte fields through properly aligned structs, or copy with __builtin_memcpy",
    ),
    (
        r"combined stack size|stack size|invalid write to stack|stack limit",
        "the program needs more than the 512-byte BPF stack",
        "keep large buffers in a per-CPU array map instead of on the stack",
    ),
    (
        r"R0 !read_ok|R0 is not a known value|At program exit the register R0",
        "the program can exit without a valid return value",
        "make every path return a verdict (XDP_PASS, XDP_DROP, ...)",
    ),
    (
        r"Permission denied|EPERM|operation not permitted",
        "the kernel refused the program",
        "run as root (sudo) inside the lab VM; `packetlab doctor` checks capabilities",
    ),
]


def _import_bcc():
    try:
        import bcc  # noqa: F401  (python3-bpfcc lives in the distro Python)

        return bcc
    except ImportError as exc:
        raise MissingRequirement(
            "bcc (python3-bpfcc) cannot be imported",
            cause=str(exc),
            fix="run `sudo vagrant/provision.sh` (it installs python3-bpfcc and makes .venv "
            "with --system-site-packages), then use .venv/bin/python",
        ) from exc


def resolve_source(source: str | os.PathLike) -> Path:
    """Find a program: as given, then relative to the repository, then in bpf/."""
    path = Path(source)
    for candidate in (path, REPO_ROOT / path, BPF_DIR / path):
        if candidate.is_file():
            return candidate.resolve()
    raise PacketlabError(
        f"BPF program {str(source)!r} not found",
        cause=f"looked in {Path.cwd()}, {REPO_ROOT} and {BPF_DIR}",
        fix="pass a path such as 'bpf/01-xdp-proto-counter.c'",
    )


_stderr_lock = threading.Lock()


@contextlib.contextmanager
def capture_stderr() -> Iterator[list[str]]:
    """Capture what C libraries (libbcc, clang) write to file descriptor 2."""
    out: list[str] = []
    with _stderr_lock, tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


_LOG_SOURCE = re.compile(r"^; (?P<text>.*?)(?: @ (?P<file>[\w.+-]+):(?P<line>\d+))?$")


@dataclass
class VerifierExplanation:
    """The verifier's complaint, located in the original source."""

    message: str
    line_number: int | None
    source_line: str | None
    meaning: str | None
    fix: str | None


_BCC_MAP_FD = re.compile(r"\(void \*\)bpf_pseudo_fd\(\d+, -?\d+\),\s*")


def _rewritten_line(text: str, stripped: list[str]) -> int | None:
    """The 1-based number of the source line bcc rewrote into `text`, or None if none is clearly it.

    bcc turns ``flow_events.ringbuf_output(&ev, ...)`` into ``bpf_ringbuf_output((void
    *)bpf_pseudo_fd(1, -1), &ev, ...)``: without the map's pseudo fd the rest (arguments,
    comments) still reads like the original, so the most similar line wins if it wins clearly.
    """
    import difflib

    wanted = _BCC_MAP_FD.sub("", text)
    scores = sorted(
        ((difflib.SequenceMatcher(None, wanted, line).ratio(), n) for n, line in enumerate(stripped, 1) if line),
        reverse=True,
    )
    if not scores or scores[0][0] < 0.6 or (len(scores) > 1 and scores[1][0] > scores[0][0] - 0.1):
        return None
    return scores[0][1]


def explain_verifier_log(log: str, source: str) -> VerifierExplanation:
    """Find the rejected instruction's source line and a plain-language hint.

    bcc rewrites the source (map.lookup() becomes bpf_map_lookup_elem(...)) and
    prepends its own lines, so log line numbers are in bcc's file. Lines that
    survive the rewrite unchanged give the offset back to the original file.
    """
    src_lines = source.splitlines()
    stripped = [s.strip() for s in src_lines]
    offsets: collections.Counter[int] = collections.Counter()
    last_text, last_line = None, None
    message = ""
    for raw in log.splitlines():
        m = _LOG_SOURCE.match(raw)
        if m:
            last_text = m.group("text").strip()
            last_line = int(m.group("line")) if m.group("line") else None
            if last_line is not None and last_text in stripped:
                offsets[last_line - (stripped.index(last_text) + 1)] += 1
        elif (
            (
                raw
                and not re.match(
                    r"^\d+: |^processed |^verification time|^stack depth|^bpf: |^func#|^\s|^from \d+ to", raw
                )
                and not raw.startswith(("R", "last_idx", "regs=", "parent", "mark_precise"))
            )
            or re.match(r"^R\d+ ", raw)
            or "invalid" in raw
        ):
            message = raw
    for raw in log.splitlines():  # prefer the most specific error line
        if re.search(
            r"invalid|unknown func|not allowed|back-edge|infinite loop|misaligned|too large|"
            r"!read_ok|combined stack|cannot|unbounded|exceeds",
            raw,
        ):
            message = raw.strip()
    line_number = source_line = None
    if last_text is not None:
        if last_text in stripped:
            line_number = stripped.index(last_text) + 1
        elif last_line is not None and offsets:
            guess = last_line - offsets.most_common(1)[0][0]
            if 1 <= guess <= len(src_lines):
                line_number = guess
        else:  # no "@ file:line" in the log (Linux 6.1 prints none): a rewritten line is found by its likeness
            line_number = _rewritten_line(last_text, stripped)
        if line_number is not None:
            source_line = src_lines[line_number - 1].strip()
        else:
            source_line = last_text
    helper = re.search(r"(?:helper|unknown func) (\w+)#\d+", message)
    if line_number is None and helper:  # no line info logged: find the call to the named helper
        calls = [
            n
            for n, s in enumerate(src_lines, 1)
            if re.search(rf"\b{helper.group(1)}\s*\(", s) and not s.lstrip().startswith(("/*", "*", "//"))
        ]
        if calls:
            line_number, source_line = calls[0], src_lines[calls[0] - 1].strip()
    meaning = fix = None
    # the error line decides; the whole log (its register states name map_value_or_null,
    # pkt and the like on every line) only when no hint matches the error itself
    for text in (message, log):
        hit = next(((what, how) for pattern, what, how in VERIFIER_HINTS if re.search(pattern, text)), None)
        if hit:
            meaning, fix = hit
            break
    return VerifierExplanation(message or "(no message)", line_number, source_line, meaning, fix)


class LoadedProgram:
    """A bcc-compiled program loaded into the kernel, with its maps."""

    def __init__(
        self,
        source: str | os.PathLike,
        *,
        function: str | None = None,
        prog_type: str = "xdp",
        cflags: Sequence[str] = (),
    ) -> None:
        bcc = _import_bcc()
        self.path = resolve_source(source)
        self.source = self.path.read_text()
        self.prog_type = prog_type
        self.function = function or find_entry_function(self.source, prog_type, self.path)
        self.cflags = tuple(cflags)
        include = [f"-I{BPF_DIR}", f"-I{self.path.parent}"]  # so "include/parse.h" resolves
        self.key = _pool_key(self.path, self.function, prog_type, self.cflags)
        compile_exc: Exception | None
        with capture_stderr() as err:
            try:
                self.bpf = bcc.BPF(src_file=str(self.path).encode(), cflags=include + list(self.cflags))
            except Exception as exc:  # bcc raises bare Exception
                compile_exc = exc
            else:
                compile_exc = None
        if compile_exc is not None:
            raise _compile_error(self.path, err[0]) from compile_exc
        kind = getattr(bcc.BPF, PROG_TYPES.get(prog_type, prog_type.upper()))
        load_exc: Exception | None
        with capture_stderr() as err:
            try:
                self.fn = self.bpf.load_func(self.function.encode(), kind)
            except Exception as exc:
                load_exc = exc
            else:
                load_exc = None
        if load_exc is not None:
            log = err[0]
            if not has_verifier_log(log):  # e.g. E2BIG: bcc printed its guess, not the kernel's log
                with capture_stderr():
                    log = recover_verifier_log(self.bpf, self.function, kind) or log
            self.bpf.cleanup()
            raise _verifier_error(self.path, self.function, log, self.source) from load_exc
        self.fd: int = self.fn.fd

    @property
    def name(self) -> str:
        return self.function

    def __getitem__(self, map_name: str) -> Any:
        """The bcc table for `map_name` (dict-like: items(), [key], clear())."""
        try:
            return self.bpf[map_name.encode() if isinstance(map_name, str) else map_name]
        except KeyError:
            names = ", ".join(self.map_names()) or "none"
            raise PacketlabError(
                f"no map named {map_name!r} in {self.path.name}",
                cause=f"maps in this program: {names}",
                fix="use one of those names",
            ) from None

    def map_names(self) -> list[str]:
        """Names of every map in the compiled program (BPF_TABLE and BPF_* macros alike)."""
        import bcc

        lib = bcc.lib
        lib.bpf_num_tables.restype, lib.bpf_num_tables.argtypes = ctypes.c_size_t, [ctypes.c_void_p]
        lib.bpf_table_name.restype, lib.bpf_table_name.argtypes = ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_size_t]
        module = self.bpf.module
        return [lib.bpf_table_name(module, i).decode() for i in range(lib.bpf_num_tables(module))]

    def table(self, map_name: str) -> dict:
        """The map's contents as plain Python values (per-CPU values summed)."""
        return table_to_dict(self[map_name])

    def test_run(self, packet: bytes | Any, *, repeat: int = 1) -> TestRunResult:
        """Run the program on `packet` (bytes or a scapy packet) via BPF_PROG_TEST_RUN."""
        data = bytes(packet)
        verdicts = XDP_VERDICTS if self.prog_type == "xdp" else TC_VERDICTS
        return prog_test_run(self.fd, data, repeat=repeat, verdicts=verdicts)

    def reset_maps(self) -> None:
        """Clear every map, so a pooled program starts like a fresh one.

        bcc creates its Python table objects lazily, so the names come from the
        compiled module itself, not from the tables Python happened to touch.
        """
        if self.bpf.module is None:  # bcc's own atexit cleanup already freed it: nothing to clear
            return
        for name in self.map_names():
            with contextlib.suppress(Exception):
                self[name].clear()

    def close(self) -> None:
        """Unload: close the program and map fds (detach attachments first)."""
        with contextlib.suppress(Exception):
            self.bpf.cleanup()


def find_entry_function(source: str, prog_type: str, path: Path) -> str:
    """The one function in `source` whose signature matches the program type."""
    ctx = {
        "xdp": r"struct\s+xdp_md",
        "sched_cls": r"struct\s+__sk_buff",
        "tc": r"struct\s+__sk_buff",
        "socket_filter": r"struct\s+__sk_buff",
    }.get(prog_type, r"\w+")
    found = re.findall(rf"^\s*int\s+(\w+)\s*\(\s*{ctx}\s*\*", source, re.M)
    if len(found) == 1:
        return found[0]
    raise PacketlabError(
        f"cannot tell which function in {path.name} is the {prog_type} program",
        cause=f"found {len(found)} candidates: {', '.join(found) or 'none'}",
        fix="pass function='name' explicitly",
    )


def _compile_error(path: Path, stderr: str) -> PacketlabError:
    if re.search(r"kconfig\.h|Unable to find kernel headers|chdir\(|linux/\S+\.h' file not found", stderr):
        return MissingRequirement(
            f"cannot compile {path.name}: kernel headers are missing",
            cause="bcc compiles against /lib/modules/$(uname -r)/build, which is absent or incomplete",
            fix="run `sudo vagrant/provision.sh` (it installs or links the headers), then `packetlab doctor`",
            detail=stderr.strip()[-1500:],
        )
    errors = [line for line in stderr.splitlines() if "error:" in line]
    first = errors[0] if errors else stderr.strip().splitlines()[-1:] or ["(no output)"]
    first = first if isinstance(first, str) else first[0]
    first = re.sub(r"^/virtual/main\.c|^[^:]*main\.c", path.name, first)
    return BpfCompileError(
        f"clang could not compile {path.name}",
        cause=first,
        fix="fix the C error at the line shown; the full compiler output is below",
        detail=stderr.strip()[-3000:],
    )


def _verifier_error(path: Path, function: str, log: str, source: str) -> VerifierError:
    ex = explain_verifier_log(log, source)
    where = f"{path.name}:{ex.line_number}" if ex.line_number else path.name
    cause = f"{ex.message}\n         at {where}: {ex.source_line}" if ex.source_line else ex.message
    if ex.meaning:
        cause += f"\n         meaning: {ex.meaning}"
    tail = "\n".join(log.strip().splitlines()[-40:])
    return VerifierError(
        f"the verifier rejected {function}() in {path.name}",
        log=log,
        source_line=ex.source_line,
        line_number=ex.line_number,
        cause=cause,
        fix=ex.fix or "read the verifier log below from the bottom up",
        detail="verifier log (last lines):\n" + tail,
    )


def table_to_dict(table: Any) -> dict:
    """Convert a bcc table to {python key: python value}; zero array slots are kept.

    Per-CPU maps hold one value per CPU; they are summed (field by field for structs),
    which is what a counter means. Read ``table[key]`` yourself for the per-CPU list.
    """
    import bcc.table as bt

    per_cpu = isinstance(table, (bt.PerCpuArray, bt.PerCpuHash))
    return {hashable(to_python(k)): to_python(percpu_sum(v) if per_cpu else v) for k, v in table.items()}


def hashable(key: Any) -> Any:
    """Struct keys become tuples of their field values (dicts cannot be dict keys)."""
    if isinstance(key, dict):
        return tuple(hashable(v) for v in key.values())
    if isinstance(key, list):
        return tuple(hashable(v) for v in key)
    return key


def to_python(value: Any) -> Any:
    """ctypes scalar/struct/array → int, dict, list (per-CPU values: sum them first with `percpu_sum`)."""
    if isinstance(value, list):
        return [to_python(v) for v in value]
    if isinstance(value, ctypes.Structure | ctypes.Union):
        return {name: to_python(getattr(value, name)) for name, *_ in value._fields_}
    if isinstance(value, ctypes.Array):
        items = [to_python(v) for v in value]
        return (
            bytes(items)
            if value._type_ in (ctypes.c_ubyte, ctypes.c_char) and all(isinstance(i, int) for i in items)
            else items
        )
    if hasattr(value, "value"):
        return value.value
    return value


# ---- the compile pool -------------------------------------------------------------------
_pool: dict[tuple, list[LoadedProgram]] = collections.defaultdict(list)
_pool_lock = threading.Lock()


def _pool_key(path: Path, function: str, prog_type: str, cflags: tuple) -> tuple:
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size, function, prog_type, cflags)


def acquire(
    source: str | os.PathLike,
    *,
    function: str | None = None,
    prog_type: str = "xdp",
    cflags: Sequence[str] = (),
    fresh: bool = False,
) -> LoadedProgram:
    """A loaded program for `source`: an idle pooled one, or a new compile."""
    path = resolve_source(source)
    function = function or find_entry_function(path.read_text(), prog_type, path)
    if not fresh:
        key = _pool_key(path, function, prog_type, tuple(cflags))
        with _pool_lock:
            if _pool[key]:
                return _pool[key].pop()
    return LoadedProgram(path, function=function, prog_type=prog_type, cflags=cflags)


def release(prog: LoadedProgram) -> None:
    """Return a program to the pool with its maps cleared (or unload it if it changed)."""
    if prog.bpf.module is None:
        return  # at interpreter exit bcc's atexit may have unloaded it first (a lab closed by atexit)
    prog.reset_maps()
    try:
        key = _pool_key(prog.path, prog.function, prog.prog_type, prog.cflags)
    except FileNotFoundError:
        prog.close()
        return
    if key != prog.key:
        prog.close()
        return
    with _pool_lock:
        _pool[key].append(prog)


def drain_pool() -> None:
    """Unload every pooled program (used on lab exit of the last lab and in tests)."""
    with _pool_lock:
        progs = [p for lst in _pool.values() for p in lst]
        _pool.clear()
    for p in progs:
        p.close()


def check_xdp_mode(mode: str) -> None:
    if mode not in XDP_MODES:
        raise PacketlabError(f"unknown XDP mode {mode!r}", fix=f"use one of: {', '.join(XDP_MODES)}")


def check_tc_direction(direction: str) -> None:
    if direction not in TC_PARENTS:
        raise PacketlabError(f"unknown tc direction {direction!r}", fix="use 'ingress' or 'egress'")


class _Attachment:
    """What XDP and tc attachments share: map access, test runs, ``with``, and giving
    the program back (to the pool, or unloaded) exactly once when detached."""

    program: LoadedProgram
    attached: bool
    _pooled: bool

    def __getitem__(self, map_name: str) -> Any:
        return self.program[map_name]

    def table(self, map_name: str) -> dict:
        return self.program.table(map_name)

    def test_run(self, packet: bytes | Any, *, repeat: int = 1) -> TestRunResult:
        return self.program.test_run(packet, repeat=repeat)

    def detach(self) -> None:
        """Detach (idempotent; a vanished namespace or device counts as detached)."""
        if not self.attached:
            return
        self.attached = False
        try:
            self._unhook()
        except (OSError, PacketlabError):
            pass  # namespace or device already gone: nothing left attached
        finally:
            release(self.program) if self._pooled else self.program.close()

    def _unhook(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.detach()


class XdpAttachment(_Attachment):
    """An XDP program attached to one interface in one lab namespace.

    Leaving it (``with``, ``detach()``, or the lab's cleanup) always detaches the
    program from the interface; map contents are readable until then.
    """

    def __init__(self, program: LoadedProgram, namespace: str, dev: str, mode: str, pooled: bool = True) -> None:
        check_xdp_mode(mode)
        self.program, self.namespace, self.dev = program, namespace, dev
        self.requested_mode = mode
        self._pooled = pooled
        self._flags = XDP_MODES[mode]
        self.mode = set_xdp_fd(namespace, dev, program.fd, self._flags, program)
        self.attached = True

    def _unhook(self) -> None:
        set_xdp_fd(self.namespace, self.dev, -1, self._flags, None)

    def __repr__(self) -> str:
        state = f"{self.mode}" if self.attached else "detached"
        return f"<XDP {self.program.function} on {self.namespace}:{self.dev} ({state})>"


def set_xdp_fd(
    namespace: str | None, dev: str, fd: int, flags: int, program: LoadedProgram | None = None
) -> str | None:
    """Attach program `fd` (or detach with -1) on `dev` inside `namespace` (None: the caller's) with
    XDP `flags` (see XDP_MODES); return the mode the kernel reports. Public for tools that attach one
    program to several interfaces (the module 09 load balancer)."""
    from pyroute2.netlink.exceptions import NetlinkError

    from packetlab.topo.rtnl import iproute

    with iproute(netns=namespace) as ipr:
        idx = _ifindex(ipr, namespace, dev)
        try:
            ipr.link("set", index=idx, xdp={"attrs": [("IFLA_XDP_FD", fd), ("IFLA_XDP_FLAGS", flags)]})
        except NetlinkError as exc:
            if fd < 0:
                raise OSError(exc.code, str(exc)) from exc
            raise PacketlabError(
                f"cannot attach {program.function if program else 'XDP'} to {namespace or 'the host'}:{dev}",
                cause=f"netlink error {exc.code}: {os.strerror(exc.code)}",
                fix="native mode needs a driver with XDP support (veth has it); try mode='generic', "
                "and make sure the MTU is at most 3520 for native XDP on veth",
            ) from exc
        if fd < 0:
            return None
        info = ipr.get_links(idx)[0].get_attr("IFLA_XDP") or {}
        attached = dict(info.get("attrs", [])).get("IFLA_XDP_ATTACHED")
        if attached is None:
            return None
        return {"xdp": "native", "xdpgeneric": "generic", "xdpoffload": "offload"}.get(attached, attached)


def attached_xdp_prog_id(namespace: str | None, dev: str) -> int | None:
    """The kernel id of the XDP program on `dev` in `namespace` (None: the host's namespace).

    None when no program is attached, or the interface or namespace is gone: tools
    compare it with their own program's id (`packetlab.ebpf.fdinfo.prog_id`) before
    detaching, so they never remove a program someone else attached."""
    from packetlab.topo.rtnl import iproute

    try:  # flags=0: never create a missing named namespace (pyroute2's default would)
        with iproute(netns=namespace, **({"flags": 0} if namespace else {})) as ipr:
            idx = ipr.link_lookup(ifname=dev)
            if not idx:
                return None
            xdp = ipr.get_links(idx[0])[0].get_attr("IFLA_XDP") or {}
    except (OSError, PacketlabError):
        return None
    return dict(xdp.get("attrs", [])).get("IFLA_XDP_PROG_ID") or None


class TcAttachment(_Attachment):
    """A tc (clsact, direct-action) program on one interface's ingress or egress hook.

    Detaching removes our filter, and the clsact qdisc too if we were the ones who added it.
    """

    def __init__(
        self, program: LoadedProgram, namespace: str, dev: str, direction: str, priority: int = 1, pooled: bool = True
    ) -> None:
        check_tc_direction(direction)
        from pyroute2.netlink.exceptions import NetlinkError

        from packetlab.topo.rtnl import iproute

        self.program, self.namespace, self.dev, self.direction = program, namespace, dev, direction
        self.priority, self._pooled = priority, pooled
        with iproute(netns=namespace) as ipr:
            idx = _ifindex(ipr, namespace, dev)
            kinds = [q.get_attr("TCA_KIND") for q in ipr.get_qdiscs(index=idx)]
            self._own_qdisc = "clsact" not in kinds
            try:
                if self._own_qdisc:
                    ipr.tc("add", "clsact", idx)
                ipr.tc(
                    "add-filter",
                    "bpf",
                    idx,
                    ":1",
                    fd=program.fd,
                    name=program.function,
                    parent=TC_PARENTS[direction],
                    classid=1,
                    direct_action=True,
                    prio=priority,
                )
            except NetlinkError as exc:
                raise PacketlabError(
                    f"cannot attach {program.function} to {namespace}:{dev} {direction}",
                    cause=f"netlink error {exc.code}: {os.strerror(exc.code)}",
                    fix="is another filter using this priority? pass priority=N",
                ) from exc
        self.attached = True

    def _unhook(self) -> None:
        from pyroute2.netlink.exceptions import NetlinkError

        from packetlab.topo.rtnl import iproute

        try:
            with iproute(netns=self.namespace) as ipr:
                idx = _ifindex(ipr, self.namespace, self.dev)
                if self._own_qdisc:
                    ipr.tc("del", "clsact", idx)
                else:
                    ipr.tc("del-filter", "bpf", idx, ":1", parent=TC_PARENTS[self.direction], prio=self.priority)
        except NetlinkError as exc:
            raise OSError(exc.code, str(exc)) from exc

    def __repr__(self) -> str:
        return f"<tc {self.program.function} on {self.namespace}:{self.dev} {self.direction}>"


def _ifindex(ipr: Any, namespace: str | None, dev: str) -> int:
    idx = ipr.link_lookup(ifname=dev)
    if not idx:
        raise PacketlabError(
            f"no interface {dev!r} in " + (f"namespace {namespace}" if namespace else "the host's namespace"),
            cause="the device name is wrong or the link was not created",
            fix=f"list interfaces with: ip {f'-n {namespace} ' if namespace else ''}link",
        )
    return idx[0]
