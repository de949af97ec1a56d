"""A learner's progress: every graded check's outcome, kept locally in one small SQLite file.

`packetlab.course.grading.graded` calls `record` once per check run, with one of three
outcomes: ``passed`` (the learner's own answer was right), ``reference`` (right, but the
reference solution answered or built it — what a Run All in CI records) or ``failed``
(`CheckFailed`: not right yet). Nothing leaves the machine.

Where the file lives (`data_dir`):

1. ``$PACKETLAB_DATA_DIR`` if set — tests, CI and Run All use a temporary folder;
2. under ``sudo`` (root with ``$SUDO_USER`` set), the *invoking user's*
   ``~/.local/share/packetlab``: the labs run as root, but the progress is the learner's, and
   ``packetlab progress`` run without sudo must find it. Files made there are handed to that
   user (chown), so they stay writable without root;
3. otherwise ``$XDG_DATA_HOME/packetlab``, or ``~/.local/share/packetlab``.

`summary` answers per module (exercises / attempted / passed / reference used),
`progress_table` prints it with the one table formatter, `show_progress` is the one line at
the top of each lab, and `reset` forgets everything. Recording never breaks a check: if the
file cannot be written, the check says so once and goes on.
"""

from __future__ import annotations

import ast
import contextlib
import os
import pwd
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packetlab.paths import REPO_ROOT
from packetlab.show.tables import format_table

ENV_DIR = "PACKETLAB_DATA_DIR"
FILE_NAME = "progress.sqlite3"
OUTCOMES = ("passed", "reference", "failed")
COURSE_DIR = REPO_ROOT / "packetlab" / "course"
_MODULE = re.compile(r"(?:^|\.)m(\d\d[a-z]?)_")  # m07_xdp -> 07, m11a_telemetry_sketch -> 11a
_warned = False


def data_dir() -> Path:
    """The folder that holds the progress file (see the module docstring for the order)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    sudo_user = os.environ.get("SUDO_USER")
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        with contextlib.suppress(KeyError):
            return Path(pwd.getpwnam(sudo_user).pw_dir) / ".local" / "share" / "packetlab"
    xdg = os.environ.get("XDG_DATA_HOME")
    return (Path(xdg) if xdg else Path.home() / ".local" / "share") / "packetlab"


def progress_file() -> Path:
    return data_dir() / FILE_NAME


def _owner() -> tuple[int, int] | None:
    """uid, gid to hand new files to: the sudo user's, when root writes into their folder."""
    sudo_user = os.environ.get("SUDO_USER")
    if os.environ.get(ENV_DIR) or os.geteuid() != 0 or not sudo_user or sudo_user == "root":
        return None
    try:
        entry = pwd.getpwnam(sudo_user)
    except KeyError:
        return None
    return entry.pw_uid, entry.pw_gid


@contextlib.contextmanager
def _connect(create: bool) -> Iterator[sqlite3.Connection | None]:
    path = progress_file()
    if not create and not path.exists():
        yield None
        return
    owner = _owner()
    if create and not path.parent.is_dir():
        missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
        path.parent.mkdir(parents=True, exist_ok=True)
        if owner:
            for folder in missing:
                os.chown(folder, *owner)
    new = not path.exists()
    db = sqlite3.connect(path, timeout=5)
    try:
        db.execute("CREATE TABLE IF NOT EXISTS results (module TEXT, exercise TEXT, outcome TEXT, at REAL)")
        if new and owner:
            os.chown(path, *owner)
        yield db
        db.commit()
    finally:
        db.close()


def recorded(folder: Path | None = None) -> list[tuple[str, str, str]]:
    """Every (module, exercise, outcome) recorded, oldest first — in `folder` if given (Run All reads its own)."""
    path = (folder / FILE_NAME) if folder is not None else progress_file()
    if not path.exists():
        return []
    db = sqlite3.connect(path, timeout=5)
    try:
        return list(db.execute("SELECT module, exercise, outcome FROM results ORDER BY at"))
    finally:
        db.close()


def module_of(check_module: str) -> str:
    """'packetlab.course.m07_xdp.exercises' -> '07' (m11a_... -> '11a'); anything else -> '??'."""
    m = _MODULE.search(check_module)
    return m.group(1) if m else "??"


def record(module: str, exercise: str, outcome: str) -> None:
    """Store one check's outcome. Never raises: a progress file that cannot be written is reported once."""
    global _warned
    if outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, not {outcome!r}")
    try:
        with _connect(create=True) as db:
            assert db is not None
            db.execute("INSERT INTO results VALUES (?, ?, ?, ?)", (module, exercise, outcome, time.time()))
    except (OSError, sqlite3.Error) as exc:
        if not _warned:
            _warned = True
            print(f"(progress not recorded: {exc} — set {ENV_DIR} to a writable folder)")


def _is_graded(decorator: ast.expr) -> bool:
    func = decorator.func if isinstance(decorator, ast.Call) else decorator
    return (getattr(func, "id", None) or getattr(func, "attr", None)) == "graded"


def _exercise_counts(only: str | None = None) -> dict[str, tuple[str, int]]:
    """{'07': ('xdp', number of @graded checks)}, read from the source (nothing imported)."""
    out: dict[str, tuple[str, int]] = {}
    for pkg in sorted(COURSE_DIR.glob(f"m{only or '[0-9][0-9]*'}_*")):
        m = _MODULE.match(pkg.name)
        if not m or (only and m.group(1) != only):
            continue
        count = 0
        for source in pkg.glob("*.py"):
            with contextlib.suppress(SyntaxError, OSError):
                for node in ast.walk(ast.parse(source.read_text())):
                    if isinstance(node, ast.FunctionDef) and any(_is_graded(d) for d in node.decorator_list):
                        count += 1
        out[m.group(1)] = (pkg.name[m.end() :].replace("_", " "), count)
    return out


@dataclass(frozen=True)
class ModuleProgress:
    module: str
    title: str
    exercises: int  # graded checks in the module's code
    attempted: int  # distinct exercises checked at least once
    passed: int  # ... answered right by the learner at least once
    reference: int  # ... right only with the reference solution
    last: float | None  # time of the latest check, or None

    def line(self) -> str:
        if not self.attempted:
            return f"Module {self.module} progress: no exercise checked yet ({self.exercises} in this lab)."
        return (
            f"Module {self.module} progress: {self.passed} of {self.exercises} exercises passed on your own, "
            f"{self.reference} with the reference solution, {self.attempted} attempted."
        )


def summary(only: str | None = None) -> dict[str, ModuleProgress]:
    """Per module, what the progress file says (every course module, checked or not; or module `only`)."""
    best: dict[tuple[str, str], set[str]] = {}
    last: dict[str, float] = {}
    with _connect(create=False) as db:
        if db is not None:
            query = "SELECT module, exercise, outcome, at FROM results" + (" WHERE module = ?" if only else "")
            for module, exercise, outcome, at in db.execute(query, (only,) if only else ()):
                best.setdefault((module, exercise), set()).add(outcome)
                last[module] = max(last.get(module, 0.0), at)
    counts = _exercise_counts(only)
    modules = sorted(set(counts) | {m for m, _ in best})
    out = {}
    for m in modules:
        outcomes = [o for (mod, _), o in best.items() if mod == m]
        title, total = counts.get(m, ("", 0))
        out[m] = ModuleProgress(
            m,
            title,
            max(total, len(outcomes)),
            len(outcomes),
            sum("passed" in o for o in outcomes),
            sum("reference" in o and "passed" not in o for o in outcomes),
            last.get(m),
        )
    return out


def progress_table() -> str:
    """`packetlab progress`: one row per module."""
    rows = []
    for p in summary().values():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.last)) if p.last else "-"
        rows.append([f"{p.module} {p.title}", p.exercises, p.attempted, p.passed, p.reference, when])
    table = format_table(["module", "exercises", "attempted", "passed", "reference used", "last check"], rows)
    return f"{table}\n(progress file: {progress_file()})"


def progress_markdown() -> str:
    """The docs home's "Your progress" section (``make docs`` serves it; a published build has none)."""
    rows = [p for p in summary().values()]
    lines = [
        "## Your progress",
        "",
        f"Read from `{progress_file()}` when this site was built (`packetlab progress` prints the same; "
        "`packetlab progress --reset` forgets it). The page is rebuilt when a check records a result "
        "(if that folder existed when `make docs` started).",
        "",
        "| module | exercises | attempted | passed | reference used |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {p.module} {p.title} | {p.exercises} | {p.attempted} | {p.passed} | {p.reference} |" for p in rows]
    return "\n".join(lines) + "\n"


def reset() -> bool:
    """Forget all progress. True if there was a file to remove."""
    path = progress_file()
    if not path.exists():
        return False
    path.unlink()
    return True


def show_progress(module: str) -> None:
    """One line at the top of a lab: this module's progress (a cheap read of the SQLite file)."""
    p = summary(module).get(module)
    print(p.line() if p else f"Module {module}: no graded exercises.")
