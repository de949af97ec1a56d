"""C assignments graded by the kernel: the learner writes eBPF, hidden test packets judge it.

An assignment is a C file the learner edits (a starter in ``bpf/NN-assign-*.c`` with ``TODO``
markers; its solution apart in ``bpf/solutions/``). Most starters hold only the part the
learner writes: the *core* of one of the course's own, tested programs, cut out along the
mkdocs snippet markers that already frame it (``/* --8<-- [start:NAME] */ ... [end:NAME]``).
To grade, the learner's part is spliced into a copy of that program in place of the region,
and clang's errors and the verifier's source lines are mapped back to the learner's file and
line. (A plain ``#include`` would not do: bcc rewrites map syntax such as ``stats.lookup(&k)``
in the main file only; nor would ``#line``: bcc then leaves the source lines out of the
verifier log.) The solution is the program's own region —
`tests/unit/test_toolkit_assignments.py` checks that the solution spliced back in gives
the program byte for byte, so the two never drift apart.

Grading compiles and loads the result with bcc (`LoadedProgram`), runs hidden `Case`\\ s with
BPF_PROG_TEST_RUN — scapy-crafted packets, the expected verdict, rewritten bytes and map
contents — and raises `CheckFailed` naming the FIRST failing case: the packet in one line,
expected vs got. A compile error shows clang's message and line; a verifier rejection is
explained by the toolkit's explainer (`packetlab.ebpf.loader.explain_verifier_log`), mapped
to the learner's line, or by a module's own explainer (module 06 passes its Verifier Diary).

Checks go through the course's grading vocabulary (`graded`, `passed`, `use_reference`):
a notebook's reference cell hands over the solution's path while the starter is
untouched (`edited`), and the check then says "reference solution used".
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packetlab.course.grading import CheckFailed, passed
from packetlab.ebpf.loader import LoadedProgram, explain_verifier_log, resolve_source
from packetlab.errors import BpfCompileError, PacketlabError, VerifierError
from packetlab.paths import REPO_ROOT

TODO = "TODO"
_START = re.compile(r"^\s*/\* --8<-- \[start:(?P<name>[\w-]+)\] \*/\s*$")
_END = re.compile(r"^\s*/\* --8<-- \[end:(?P<name>[\w-]+)\] \*/\s*$")


@dataclass(frozen=True)
class Case:
    """One hidden test: a packet, and what the program must do with it.

    `verdict` is the XDP/tc verdict name; `output` the whole frame expected back (scapy or
    bytes); `maps` maps a map name to ``{key: value}`` that must hold after this packet
    (maps are cleared before each case; a dict value is compared field by field, so only
    the fields named are checked). `prepare` fills configuration maps before the packet;
    `after` inspects what `maps` cannot express and returns (expected, got) when it is wrong.
    """

    name: str
    packet: Any
    verdict: str | None = None
    output: Any = None
    maps: Mapping[str, Mapping[Any, Any]] = field(default_factory=dict)
    prepare: Callable[[LoadedProgram], None] | None = None
    after: Callable[[LoadedProgram], tuple[str, str] | None] | None = None  # (expected, got) if wrong


@dataclass(frozen=True)
class Assignment:
    """A C assignment: the learner's file, its solution, and how it is graded.

    With `skeleton` and `region`, the learner's file is spliced into the skeleton program in
    place of the snippet region; without, the learner's file is the whole program. `runner`
    replaces the `cases`: it gets the built source and grades it itself (swapping it into a
    tool and running the tool's own tests), raising `CaseFailed` for the first failing case.
    """

    key: str  # "07.A1"
    title: str
    starter: str
    solution: str
    try_it: str  # what the learner does: the `graded` decorator's hint
    skeleton: str | None = None
    region: str | None = None
    cases: Callable[[], Sequence[Case]] = tuple
    runner: Callable[[Path], str] | None = None
    prog_type: str = "xdp"
    function: str | None = None
    cflags: Sequence[str] = ()
    reset: Sequence[str] | None = None  # maps cleared before each case (None: all; a huge array is slow to clear)
    hint: str = ""  # printed with a failing case
    explain: Callable[[VerifierError, str], tuple[str, str] | None] | None = None  # module-specific explainer
    inspect: Callable[[LoadedProgram], str | None] | None = None  # after the cases: a problem they cannot show


class CaseFailed(Exception):
    """Raised by a runner: the first case the learner's program got wrong."""

    def __init__(self, case: str, packet: Any, expected: str, got: str) -> None:
        super().__init__(case)
        self.case, self.packet, self.expected, self.got = case, packet, expected, got


# ---- files ------------------------------------------------------------------------------------
def edited(source: str | Path | None) -> str | None:
    """`source` once the learner has worked on it (its TODO markers are gone), else None.

    A notebook's reference cell: ``source = use_reference(edited(source), SOLUTION)``.
    """
    if source is None:
        return None
    path = resolve_source(source)
    return None if TODO in path.read_text() else str(source)


def region(text: str, name: str, where: str) -> tuple[int, int]:
    """0-based line indexes of the start and end markers of snippet region `name` in `text`."""
    lines = text.splitlines()
    starts = [i for i, s in enumerate(lines) if (m := _START.match(s)) and m["name"] == name]
    ends = [i for i, s in enumerate(lines) if (m := _END.match(s)) and m["name"] == name]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise PacketlabError(
            f"{where} has no single snippet region {name!r}",
            cause=f"found {len(starts)} start and {len(ends)} end markers",
            fix=f"frame the region with /* --8<-- [start:{name}] */ and /* --8<-- [end:{name}] */",
        )
    return starts[0], ends[0]


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def splice(skeleton: str | Path, name: str, part: str | Path) -> tuple[str, int]:
    """The skeleton's text with region `name` replaced by the file `part`, and the part's first line (0-based).

    No ``#line`` directives: bcc then drops the source lines from the verifier log. Line
    numbers in clang's and the verifier's messages are mapped back with `Build.learner_line`.
    """
    skel = resolve_source(skeleton)
    lines = skel.read_text().splitlines(keepends=True)
    start, end = region("".join(lines), name, _relative(skel))
    body = resolve_source(part).read_text()
    if not body.endswith("\n"):
        body += "\n"
    return "".join([*lines[: start + 1], body, *lines[end:]]), start + 1


def region_text(skeleton: str | Path, name: str) -> str:
    """What the skeleton holds between the markers of region `name` (the solution's text)."""
    lines = resolve_source(skeleton).read_text().splitlines(keepends=True)
    start, end = region("".join(lines), name, str(skeleton))
    return "".join(lines[start + 1 : end])


@dataclass(frozen=True)
class Build:
    """The program that is loaded: `path`, holding the learner's file from line `offset` + 1 on."""

    path: Path
    learner: Path
    offset: int = 0  # skeleton lines before the learner's first line
    length: int = 0  # the learner's lines (0: the learner's file is the whole program)

    def learner_line(self, line: int) -> int | None:
        """The learner's line number for `line` of the built program, or None if it is the skeleton's."""
        if not self.length:
            return line
        mine = line - self.offset
        return mine if 1 <= mine <= self.length else None


@contextmanager
def built(a: Assignment, source: str | Path) -> Iterator[Build]:
    """The program to load for the learner's `source`: spliced into a temporary copy of the skeleton."""
    learner = resolve_source(source)
    if a.skeleton is None:
        yield Build(learner, learner)
        return
    skel = resolve_source(a.skeleton)
    text, offset = splice(skel, a.region or "", learner)
    with tempfile.TemporaryDirectory(prefix="packetlab-assign-") as tmp:
        out = Path(tmp) / skel.name  # -I bpf/ is always passed, so include "include/parse.h" resolves
        out.write_text(text)
        yield Build(out, learner, offset, len(learner.read_text().splitlines()))


# ---- errors as the learner should read them ---------------------------------------------------------
def _where(b: Build, line: int | None) -> str | None:
    """'bpf/07-assign-x.c:12' for a line of the built program, or the skeleton's name and line."""
    if line is None:
        return None
    mine = b.learner_line(line)
    if mine is not None:
        return f"{_relative(b.learner)}:{mine}"
    return f"{b.path.name}:{line} (the program around your code)"


_CLANG = re.compile(r"^(?P<file>[^\s:]*):(?P<line>\d+):(?P<col>\d+): (?P<what>(?:fatal )?error: .*)$")


def compile_failure(a: Assignment, exc: BpfCompileError, b: Build) -> CheckFailed:
    """clang's first error, at the learner's file and line."""
    first = str(exc.cause or exc.what)
    for raw in (exc.detail or "").splitlines():
        m = _CLANG.match(raw.strip())
        if m:
            main = m["file"].endswith((b.path.name, "/virtual/main.c"))  # bcc names its main file main.c
            where = _where(b, int(m["line"])) if main else f"{m['file']}:{m['line']}"
            first = f"{where}: {m['what']}"
            break
    return CheckFailed(
        a.key + " " + a.title,
        f"{_relative(b.learner)} does not compile: {first}",
        "fix the C error at that line (the full compiler output is in the error's detail)",
    )


def verifier_failure(a: Assignment, exc: VerifierError, b: Build) -> CheckFailed:
    """The verifier's words, the offending line (the learner's, where it is theirs), and what it means.

    The toolkit's explainer finds the line and the meaning; a module's own explainer (module
    06's Verifier Diary) may give a better meaning and fix.
    """
    ex = explain_verifier_log(exc.log, b.path.read_text())
    where = _where(b, ex.line_number)
    meaning, fix = ex.meaning, ex.fix
    if a.explain is not None and (own := a.explain(exc, b.learner.read_text())) is not None:
        meaning, fix = own
    why = f"the verifier rejected it: {ex.message}"
    if where:
        why += f"\n         at {where}: {ex.source_line}"
    else:  # bcc logs source lines only when it could load the program's BTF
        why += "\n         (the verifier's log names no source line for this program)"
    if meaning:
        why += f"\n         meaning: {meaning}"
    return CheckFailed(a.key + " " + a.title, why, fix or "read the verifier log from the bottom up")


# ---- one line per packet, expected vs got --------------------------------------------------------
def describe_packet(packet: Any) -> str:
    """A frame in one readable line (scapy's summary, with its length)."""
    from scapy.layers.l2 import Ether

    raw = bytes(packet)
    try:
        text = Ether(raw).summary()
    except Exception:  # scapy cannot dissect every truncated frame
        text = raw[:32].hex() + ("…" if len(raw) > 32 else "")
    return f"{text} ({len(raw)} bytes)"


def first_difference(expected: bytes, got: bytes) -> str:
    """Where two frames first differ: the byte offset and four bytes of each from there."""
    n = next((i for i, (x, y) in enumerate(zip(expected, got, strict=False)) if x != y), min(len(expected), len(got)))
    return f"first difference at byte {n}: expected {expected[n : n + 4].hex() or 'end'}, got {got[n : n + 4].hex() or 'end'}"


def _matches(expected: Any, got: Any) -> bool:
    if isinstance(expected, Mapping) and isinstance(got, Mapping):
        return all(k in got and _matches(v, got[k]) for k, v in expected.items())
    return bool(expected == got)


def run_case(prog: LoadedProgram, case: Case, reset: Sequence[str] | None = None) -> None:
    """Run one case on a loaded program (after clearing the maps in `reset`, default all); raise CaseFailed
    if anything differs."""
    if reset is None:
        prog.reset_maps()
    else:
        for name in reset:
            prog[name].clear()
    if case.prepare is not None:
        case.prepare(prog)
    res = prog.test_run(case.packet)
    if case.verdict is not None and res.verdict != case.verdict:
        raise CaseFailed(case.name, case.packet, case.verdict, res.verdict)
    if case.output is not None:
        want = bytes(case.output)
        if res.data != want:
            raise CaseFailed(
                case.name,
                case.packet,
                f"{res.verdict} with {describe_packet(want)}",
                f"{res.verdict} with {describe_packet(res.data)}\n         {first_difference(want, res.data)}",
            )
    for name, entries in case.maps.items():
        try:
            table = prog.table(name)
        except PacketlabError as exc:
            raise CaseFailed(case.name, case.packet, f"a map named {name}", f"{exc.what} ({exc.cause})") from None
        for key, value in entries.items():
            got = table.get(key)
            if not _matches(value, got):
                raise CaseFailed(case.name, case.packet, f"{name}[{key!r}] = {value!r}", f"{name}[{key!r}] = {got!r}")
    wrong = case.after(prog) if case.after is not None else None
    if wrong is not None:
        raise CaseFailed(case.name, case.packet, *wrong)


def grade(a: Assignment, source: str | Path) -> str:
    """Compile, load and test `source` for assignment `a`; return a summary or raise CheckFailed."""
    ex = a.key + " " + a.title
    with built(a, source) as b:
        try:
            if a.runner is not None:
                return a.runner(b.path)
            prog = LoadedProgram(b.path, function=a.function, prog_type=a.prog_type, cflags=a.cflags)
        except BpfCompileError as exc:
            raise compile_failure(a, exc, b) from None
        except VerifierError as exc:
            raise verifier_failure(a, exc, b) from None
        except CaseFailed as exc:
            raise _case_failure(a, exc) from None
    try:
        cases = list(a.cases())
        for case in cases:
            try:
                run_case(prog, case, a.reset)
            except CaseFailed as exc:
                raise _case_failure(a, exc) from None
        problem = a.inspect(prog) if a.inspect is not None else None
    finally:
        prog.close()
    if problem:
        raise CheckFailed(ex, f"every test packet was right, but {problem}", a.hint or None)
    if not cases:
        raise CheckFailed(ex, "this assignment has no test cases", "report it: the course is missing its tests")
    return f"{len(cases)} hidden test packets, all right"


def _case_failure(a: Assignment, exc: CaseFailed) -> CheckFailed:
    return CheckFailed(
        a.key + " " + a.title,
        f"case '{exc.case}': {describe_packet(exc.packet)}\n         expected {exc.expected}\n         got      {exc.got}",
        a.hint or "read the TODOs in the starter again",
    )


def check(a: Assignment, source: str | Path | None) -> bool:
    """Grade `source` (the learner's file, or the solution handed over by `use_reference`)."""
    if source is None:
        raise CheckFailed(
            a.key + " " + a.title,
            f"no file yet: edit {a.starter}, then set source = {a.starter!r}",
            a.try_it,
        )
    return passed(a.key + " " + a.title, grade(a, source))
