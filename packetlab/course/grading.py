"""Graded exercises: the `check_*` helpers every lab notebook calls.

Convention (every module follows it):

* ``packetlab/course/grading/<slug>.py`` (slug with underscores, e.g. ``osi_model``)
  holds that module's ``check_*`` functions; the lab imports them.
* The notebook has, per exercise: a markdown cell stating the task, an answer
  cell the learner edits (``answer = ...`` or code to run), a *collapsed*
  reference-solution cell (cell metadata ``{"jupyter": {"source_hidden": true},
  "tags": ["solution"]}``) that only fills in the answer if the learner left it
  unanswered, and a cell calling ``check_*``.
* A check returns normally and prints a ✔ line when right; when wrong it raises
  `CheckFailed` whose message says *why* and gives a hint, so nbval fails in CI
  and the learner sees one readable line instead of a traceback.
* Checks tell the truth about who answered. A solution cell that fills in the
  answer (`use_reference`) or builds the thing itself (`reference_needed`)
  leaves a mark; the next ``@graded`` check takes it and, when right, says
  "reference solution used — now try it yourself: <what to do>" instead of
  "correct". A learner's own right answer still prints "correct".
* Every graded check's outcome is recorded here, once, for the learner's progress
  (`packetlab.course.progress`): ``passed`` (their own answer), ``reference`` (the
  reference solution's — all a Run All can earn) or ``failed`` (`CheckFailed`).
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from packetlab.course import progress
from packetlab.errors import PacketlabError

F = TypeVar("F", bound=Callable[..., Any])


class CheckFailed(PacketlabError, AssertionError):
    """An exercise answer is not right yet; the message says why and hints at the fix."""

    def __init__(self, exercise: str, why: str, hint: str | None = None) -> None:
        super().__init__(f"✘ {exercise}: not yet", cause=why, fix=hint)


_BUILT = object()  # the reference solution built or changed something (no answer value to compare)


@dataclass
class _ReferenceMark:
    """Left by a solution cell that answered for the learner; taken by the next graded check."""

    value: Any


_pending: _ReferenceMark | None = None
_grading: contextvars.ContextVar[tuple[bool, str] | None] = contextvars.ContextVar("packetlab_grading", default=None)


def _mark(value: Any) -> None:
    global _pending
    _pending = _ReferenceMark(value)


def _clear() -> None:
    global _pending
    _pending = None


def use_reference(value: Any, reference: Any) -> Any:
    """In a solution cell: keep the learner's answer, or fall back to the reference.

    ``answer = use_reference(answer, 42)`` — running the notebook top to bottom
    (as CI and Run All do) checks the reference; a learner's own answer is never
    overwritten. When the reference is used, the next check says so instead of
    "correct".
    """
    if unanswered(value):
        print("(no answer given: using the reference solution — expand this cell to read it)")
        _mark(reference)
        return reference
    _clear()
    return value


def reference_needed(needed: bool) -> bool:
    """In a solution cell that *builds* something: ``if reference_needed(not done): <build it>``.

    Returns `needed` unchanged. When True the next check reports that the
    reference solution did the work; when False (the learner already did it)
    any older mark is dropped, so the check credits the learner.
    """
    if needed:
        print("(not done yet: running the reference solution — expand this cell to read it)")
        _mark(_BUILT)
    else:
        _clear()
    return needed


def graded(try_it: str) -> Callable[[F], F]:
    """Decorator for a ``check_*`` function; `try_it` tells the learner what to do themselves.

    The check takes the mark a solution cell left (if any): it applies when the
    reference built something, or when one of the check's arguments *is* the
    object `use_reference` handed out (an answer typed in later does not count as
    the reference's). The mark is used up whether the check passes or fails.
    """

    def decorate(check: F) -> F:
        @functools.wraps(check)
        def run(*args: Any, **kwargs: Any) -> Any:
            mark, by_reference = _pending, False
            if mark is not None:
                _clear()
                by_reference = mark.value is _BUILT or any(a is mark.value for a in (*args, *kwargs.values()))
            token = _grading.set((by_reference, try_it))
            exercise = (progress.module_of(check.__module__), check.__qualname__)
            try:
                result = check(*args, **kwargs)
            except CheckFailed:
                progress.record(*exercise, "failed")
                raise
            finally:
                _grading.reset(token)
            progress.record(*exercise, "reference" if by_reference else "passed")
            return result

        return run  # type: ignore[return-value]

    return decorate


def passed(exercise: str, message: str = "") -> bool:
    """Print the success line for `exercise` and return True.

    Inside a graded check answered by the reference solution the line says so,
    with what to try next, instead of "correct".
    """
    grading = _grading.get()
    if grading is not None and grading[0]:
        print(
            f"✔ {exercise}: reference solution used"
            + (f" ({message})" if message else "")
            + f" — now try it yourself: {grading[1]}"
        )
    else:
        print(f"✔ {exercise}: correct" + (f" — {message}" if message else ""))
    return True


def unanswered(value: Any) -> bool:
    """True while the learner has not replaced the placeholder (None or ...)."""
    return value is None or value is Ellipsis


def pair_answer(answer: Any, exercise: str, *, placeholder: str, shape: str, hint: str | None = None) -> tuple:
    """The learner's two-part answer, or CheckFailed saying which shape is expected.

    ``placeholder`` is what to write (``"('<interface>', '<source address>')"``),
    ``shape`` describes it (``"a pair like ('eth0', '10.0.0.1')"``).
    """
    if unanswered(answer):
        raise CheckFailed(exercise, f"no answer yet: set answer = {placeholder}", hint)
    require(
        isinstance(answer, (tuple, list)) and len(answer) == 2,
        exercise,
        f"the answer should be {shape}, got {answer!r}",
        hint,
    )
    return tuple(answer)


def require(condition: object, exercise: str, why: str, hint: str | None = None) -> None:
    """Raise CheckFailed(exercise, why, hint) unless `condition` holds (is truthy: a check may pass the value itself)."""
    if not condition:
        raise CheckFailed(exercise, why, hint)
