"""The Verifier Diary: programs the kernel verifier rejects, why, and the fix for each.

Every entry pairs a broken program ``bpf/06-fail-<key>.c`` with its fix
``bpf/06-fixed-<key>.c``. Nothing here is pasted: `attempt()` really loads the
program and captures the verifier's own words, the toolkit maps the rejected
instruction back to the source line, and the tests assert that every broken
program is rejected for the expected reason and every fix loads.

The offending line of each broken file carries a ``REJECTED HERE`` comment, so
the diary can point at it even when the verifier's log names no line (stack
size is checked after the walk; some helper checks log no line info).

Two entries need a special loader, and say so:
* ``uninit-stack`` is loaded without CAP_PERFMON/CAP_SYS_ADMIN (``setpriv``),
  like a container granted only CAP_BPF + CAP_NET_ADMIN: a loader with
  CAP_PERFMON may read uninitialised stack (Linux 6.3+ and recent 6.1 updates;
  the ``perfmon_uninit_stack`` probe says whether this kernel does), so there as
  full root the kernel accepts the bug silently.
* ``stack-too-large`` goes through the libbpf path (clang + bpftool): bcc
  cannot load BPF-to-BPF function calls, and a single function over 512 bytes
  is refused by clang before the verifier ever sees it.

Run ``python -m packetlab.course.m06_ebpf_fundamentals.verifier_diary`` to print the whole diary.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.ebpf.loader import REPO_ROOT, LoadedProgram, resolve_source
from packetlab.errors import MissingRequirement, PacketlabError, VerifierError
from packetlab.show.tables import WORDS, format_table

if TYPE_CHECKING:
    from packetlab.topo.lab import Lab

MARKER = "REJECTED HERE"
DROPPED_CAPS = "-perfmon,-sys_admin"


@dataclass(frozen=True)
class DiaryEntry:
    """One page of the diary: a rejected program, the expected reason, and its fix."""

    key: str
    title: str
    broken: str
    fixed: str
    expect: str  # regex the verifier's log must match
    explanation: str  # plain language: what the verifier saw, pointing at the source
    remedy: str  # what the fixed program does differently
    loader: str = "bcc"  # "bcc" (LoadedProgram) or "core" (clang + bpftool)
    privileges: str = "root"  # "root" or "no-perfmon"

    def source(self, which: str = "broken") -> str:
        return resolve_source(self.broken if which == "broken" else self.fixed).read_text()

    @property
    def marked_line(self) -> int:
        """Line number of the ``REJECTED HERE`` comment in the broken program."""
        for n, line in enumerate(self.source().splitlines(), 1):
            if MARKER in line and not line.lstrip().startswith(("/*", "*")):
                return n
        raise PacketlabError(f"{self.broken} has no '{MARKER}' comment on its offending line")


ENTRIES: list[DiaryEntry] = [
    DiaryEntry(
        "packet-bounds",
        "Unchecked packet bounds",
        "bpf/06-fail-packet-bounds.c",
        "bpf/06-fixed-packet-bounds.c",
        r"invalid access to packet",
        "For every packet pointer the verifier tracks how many bytes are proven to exist: "
        "'r=14' after the Ethernet check. ip->protocol is byte 23 (off=23), beyond the proven 14, "
        "so on a short frame the read would run past the end of the packet.",
        "Compare (void *)(ip + 1) with data_end before reading the IPv4 header.",
    ),
    DiaryEntry(
        "unbounded-loop",
        "Unbounded loop",
        "bpf/06-fail-unbounded-loop.c",
        "bpf/06-fixed-unbounded-loop.c",
        r"jumps is too complex|back-edge|infinite loop|BPF program is too large|Argument list too long",
        "The loop count *n comes from a map that user space writes, so it can be any 32-bit number. "
        "The verifier proves loops safe by walking them iteration by iteration; with no upper bound "
        "it walks until it hits its own limit and gives up.",
        "Run the loop to a compile-time constant (MAX_ROUNDS) and skip the rounds past the configured "
        "count. A clamped count is not enough on every kernel: clang turns i < n into i != n, which "
        "Linux 6.1's verifier cannot bound. #pragma clang loop unroll(disable) keeps it a loop.",
    ),
    DiaryEntry(
        "uninit-stack",
        "Uninitialised stack read",
        "bpf/06-fail-uninit-stack.c",
        "bpf/06-fixed-uninit-stack.c",
        r"invalid (indirect )?read from stack",
        "struct flow_event is not initialised and its ports are only set for TCP, yet all 24 bytes "
        "are copied to user space by bpf_ringbuf_output(): for any other packet 8 of them are stale "
        "stack. Without CAP_PERFMON the verifier refuses to leak them.",
        "Declare the struct with = {} so every byte (padding too, where there is any) is written first.",
        privileges="no-perfmon",
    ),
    DiaryEntry(
        "null-map-value",
        "Map value used without a NULL check",
        "bpf/06-fail-null-map-value.c",
        "bpf/06-fixed-null-map-value.c",
        r"map_value_or_null",
        "A hash-map lookup returns NULL when the key is absent. The returned register has the type "
        "'map_value_or_null', and the atomic add dereferences it without a check.",
        "Test the pointer (if (count) ... else insert); after the test the verifier knows it is valid.",
    ),
    DiaryEntry(
        "map-out-of-range",
        "Out-of-range map value access",
        "bpf/06-fail-map-out-of-range.c",
        "bpf/06-fixed-map-out-of-range.c",
        r"invalid access to map value",
        "The value is 16 u64 buckets (value_size=128). The index len / 128 is only known to be a "
        "32-bit length divided by 128, so bucket[b] could be far outside the value.",
        "Clamp the index to BUCKETS - 1 before using it.",
    ),
    DiaryEntry(
        "bad-helper",
        "Helper not allowed for this program type",
        "bpf/06-fail-bad-helper.c",
        "bpf/06-fixed-bad-helper.c",
        r"cannot use helper|unknown func",
        "bpf_skb_load_bytes() works on a struct sk_buff (tc, socket filters). XDP runs before any "
        "sk_buff exists, so the XDP program type does not offer that helper.",
        "Use the XDP twin, bpf_xdp_load_bytes() (or read through a bounds-checked pointer).",
    ),
    DiaryEntry(
        "misaligned",
        "Misaligned access",
        "bpf/06-fail-misaligned.c",
        "bpf/06-fixed-misaligned.c",
        r"misaligned",
        "The map value is a packed struct, so the 8-byte counter sits at offset 1. Plain loads may be "
        "misaligned on x86 (checked only with BPF_F_STRICT_ALIGNMENT), but atomic operations must "
        "always be naturally aligned.",
        "Drop __attribute__((packed)) and put the widest field first: packets lands at offset 0.",
    ),
    DiaryEntry(
        "stack-too-large",
        "Stack too large",
        "bpf/06-fail-stack-too-large.bpf.c",
        "bpf/06-fixed-stack-too-large.bpf.c",
        r"combined stack size|stack size|stack limit",
        "Each BPF function's frame fits the 512-byte limit on its own (clang checks that), but "
        "xdp_scratch() keeps 320 bytes live while it calls checksum_words(), which needs 320 more. "
        "The verifier adds up the frames of the whole call chain.",
        "Move the caller's scratch buffer into a one-slot per-CPU array map.",
        loader="core",
    ),
]

BY_KEY = {e.key: e for e in ENTRIES}


@dataclass
class Attempt:
    """What happened when one diary program was handed to the kernel."""

    entry: DiaryEntry
    which: str  # "broken" or "fixed"
    loaded: bool
    error: VerifierError | None
    seconds: float

    @property
    def message(self) -> str:
        """The verifier's line that states the reason (the one matching the entry's pattern)."""
        if self.error is None:
            return ""
        lines = [
            line.strip()
            for line in self.error.log.splitlines()
            if re.search(self.entry.expect, line) and not re.match(r"\s*(\d+: \(|; )", line)
        ]
        if lines:
            return lines[0]
        return str(self.error.cause).splitlines()[0]

    @property
    def rejected_as_expected(self) -> bool:
        return self.error is not None and re.search(self.entry.expect, self.error.log) is not None

    @property
    def line_number(self) -> int:
        """The offending line: as mapped from the verifier log, else the marked line."""
        if self.error is not None and self.error.line_number:
            return self.error.line_number
        return self.entry.marked_line

    @property
    def line_from_verifier(self) -> bool:
        return self.error is not None and bool(self.error.line_number)

    @property
    def source_line(self) -> str:
        return self.entry.source().splitlines()[self.line_number - 1].strip()


def attempt(entry: DiaryEntry | str, which: str = "broken", *, lab: Lab | None = None) -> Attempt:
    """Load one diary program for real; return whether it loaded and, if not, the VerifierError.

    Loaded programs are unloaded right away (CO-RE pins are removed again).
    """
    entry = BY_KEY[entry] if isinstance(entry, str) else entry
    path = entry.broken if which == "broken" else entry.fixed
    t0 = time.perf_counter()
    error: VerifierError | None = None
    try:
        if entry.privileges == "no-perfmon":
            _load_without_perfmon(path)
        elif entry.loader == "core":
            from packetlab.ebpf import co_re as core

            core.load(path, lab=lab, name=f"diary-{entry.key}-{which}").close()
        else:
            LoadedProgram(path).close()
    except VerifierError as exc:
        error = exc
    return Attempt(entry, which, error is None, error, time.perf_counter() - t0)


def run_diary(entries: list[DiaryEntry] | None = None, *, lab: Lab | None = None) -> list[tuple[Attempt, Attempt]]:
    """Attempt every broken program and its fix; returns (broken, fixed) pairs."""
    return [(attempt(e, "broken", lab=lab), attempt(e, "fixed", lab=lab)) for e in (entries or ENTRIES)]


def summary(results: list[tuple[Attempt, Attempt]]) -> str:
    """A text table: entry, how it was loaded, the verifier's words, the line, fix loaded?"""
    rows = []
    for broken, fixed in results:
        e = broken.entry
        how = e.loader + (" w/o CAP_PERFMON" if e.privileges == "no-perfmon" else "")
        verdict = "rejected" if broken.rejected_as_expected else ("LOADED?!" if broken.loaded else "other error")
        words = broken.message if len(broken.message) <= 60 else broken.message[:57] + "..."
        rows.append(
            [
                e.key,
                how,
                verdict,
                words,
                f"{resolve_source(e.broken).name.split('-', 2)[2]}:{broken.line_number}",
                "loads" if fixed.loaded else "REJECTED",
            ]
        )
    return format_table(["entry", "loader", "broken", "verifier says", "line", "fix"], rows, align=WORDS)


def describe(broken: Attempt, fixed: Attempt | None = None) -> str:
    """One diary page as readable text: the verifier's words, the line, why, the fix."""
    e = broken.entry
    where = (
        "mapped from the verifier log" if broken.line_from_verifier else "marked in the source; the log names no line"
    )
    lines = [
        f"── {e.title} ({e.key}) " + "─" * max(0, 60 - len(e.title) - len(e.key)),
        f"program   : {e.broken}"
        + ("   [loaded without CAP_PERFMON]" if e.privileges == "no-perfmon" else "")
        + ("   [clang + bpftool]" if e.loader == "core" else ""),
        f"verifier  : {broken.message or '(it loaded!)'}",
        f"line {broken.line_number:<4} : {broken.source_line}   ({where})",
        f"why       : {e.explanation}",
        f"fix       : {e.remedy}",
    ]
    if fixed is not None:
        lines.append(f"fixed     : {e.fixed} -> {'loads' if fixed.loaded else 'REJECTED: ' + fixed.message}")
    return "\n".join(lines)


# ---- loading without CAP_PERFMON --------------------------------------------------------
def _load_without_perfmon(path: str) -> None:
    """Load `path` in a child process whose bounding set lacks CAP_PERFMON and CAP_SYS_ADMIN.

    The child keeps CAP_BPF and CAP_NET_ADMIN (enough to load XDP); the verifier
    then applies the rules for non-perfmon loaders. Its VerifierError is rebuilt here.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise MissingRequirement(
            "setpriv is not installed (util-linux)",
            fix="apt-get install util-linux; it drops capabilities for this diary entry",
        )
    argv = [
        setpriv,
        f"--bounding-set={DROPPED_CAPS}",
        "--",
        sys.executable,
        "-m",
        "packetlab.course.m06_ebpf_fundamentals.verifier_diary",
        "--child",
        path,
    ]
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=900, cwd=REPO_ROOT
    )  # minutes under qemu without KVM
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise PacketlabError(
            f"the reduced-privilege loader for {path} failed",
            cause=(proc.stderr or proc.stdout).strip()[-800:] or f"exit code {proc.returncode}",
            fix="run it by hand: setpriv --bounding-set=-perfmon,-sys_admin -- "
            f"{sys.executable} -m packetlab.course.m06_ebpf_fundamentals.verifier_diary --child {path}",
        ) from None
    if result.get("error"):
        err = result["error"]
        if err["type"] != "VerifierError":
            raise PacketlabError(err["what"], cause=err.get("cause"), fix=err.get("fix"))
        raise VerifierError(
            err["what"] + " (loaded without CAP_PERFMON)",
            log=err["log"],
            source_line=err["source_line"],
            line_number=err["line_number"],
            cause=err["cause"],
            fix=err["fix"],
            detail=err["detail"],
        )


def _child(path: str) -> int:
    """Child side of _load_without_perfmon: load, print one JSON line."""
    try:
        LoadedProgram(path).close()
        print(json.dumps({"loaded": True}))
    except PacketlabError as exc:
        print(
            json.dumps(
                {
                    "loaded": False,
                    "error": {
                        "type": type(exc).__name__,
                        "what": exc.what,
                        "cause": exc.cause,
                        "fix": exc.fix,
                        "detail": exc.detail,
                        "log": getattr(exc, "log", ""),
                        "line_number": getattr(exc, "line_number", None),
                        "source_line": getattr(exc, "source_line", None),
                    },
                }
            )
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"] and len(argv) == 2:
        return _child(argv[1])
    results = run_diary()
    for broken, fixed in results:
        print(describe(broken, fixed), end="\n\n")
    print(summary(results))
    ok = all(b.rejected_as_expected and f.loaded for b, f in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
