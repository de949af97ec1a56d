"""Graded exercises: the `check_*` helpers every lab notebook calls.

Convention (every module follows it):

* ``packetlab/exercises/<slug>.py`` (slug with underscores, e.g. ``osi_model``)
  holds that module's ``check_*`` functions; the lab imports them.
* The notebook has, per exercise: a markdown cell stating the task, an answer
  cell the learner edits (``answer = ...`` or code to run), a *collapsed*
  reference-solution cell (cell metadata ``{"jupyter": {"source_hidden": true},
  "tags": ["solution"]}``) that only fills in the answer if the learner left it
  unanswered, and a cell calling ``check_*``.
* A check returns normally and prints a ✔ line when right; when wrong it raises
  `CheckFailed` whose message says *why* and gives a hint, so nbval fails in CI
  and the learner sees one readable line instead of a traceback.
"""
from __future__ import annotations

from typing import Any

from ..errors import PacketlabError


class CheckFailed(PacketlabError, AssertionError):
    """An exercise answer is not right yet; the message says why and hints at the fix."""

    def __init__(self, exercise: str, why: str, hint: str | None = None) -> None:
        super().__init__(f"✘ {exercise}: not yet", cause=why, fix=hint)


def passed(exercise: str, message: str = "") -> bool:
    """Print the success line for `exercise` and return True."""
    print(f"✔ {exercise}: correct" + (f" — {message}" if message else ""))
    return True


def unanswered(value: Any) -> bool:
    """True while the learner has not replaced the placeholder (None or ...)."""
    return value is None or value is Ellipsis


def use_reference(value: Any, reference: Any) -> Any:
    """In a solution cell: keep the learner's answer, or fall back to the reference.

    ``answer = use_reference(answer, 42)`` — running the notebook top to bottom
    (as CI does) checks the reference; a learner's own answer is never overwritten.
    """
    if unanswered(value):
        print("(no answer given: using the reference solution — expand this cell to read it)")
        return reference
    return value


def pair_answer(answer: Any, exercise: str, *, placeholder: str, shape: str, hint: str | None = None) -> tuple:
    """The learner's two-part answer, or CheckFailed saying which shape is expected.

    ``placeholder`` is what to write (``"('<interface>', '<source address>')"``),
    ``shape`` describes it (``"a pair like ('eth0', '10.0.0.1')"``).
    """
    if unanswered(answer):
        raise CheckFailed(exercise, f"no answer yet: set answer = {placeholder}", hint)
    require(isinstance(answer, (tuple, list)) and len(answer) == 2, exercise,
            f"the answer should be {shape}, got {answer!r}", hint)
    return tuple(answer)


def require(condition: bool, exercise: str, why: str, hint: str | None = None) -> None:
    """Raise CheckFailed(exercise, why, hint) unless `condition` holds."""
    if not condition:
        raise CheckFailed(exercise, why, hint)
