"""Checks tell the truth about who answered: the learner, or the reference solution.

A solution cell that fills in the answer (`use_reference`) or builds the thing
(`reference_needed`) leaves a mark; the next graded check takes it and says
"reference solution used — now try it yourself: ..." instead of "correct".
"""

from __future__ import annotations

import ast
import inspect

import nbformat
import pytest

import packetlab.course.grading as exercises
from packetlab.course.grading import CheckFailed, graded, passed, reference_needed, require, use_reference
from packetlab.paths import REPO_ROOT

TRY = "set answer yourself and run this check again"


@graded(TRY)
def check_answer(answer, expected=42):
    require(answer == expected, "Exercise T", f"{answer!r} is not {expected}")
    return passed("Exercise T", "the answer is 42")


@graded("build it yourself")
def check_built(built):
    require(built, "Exercise B", "nothing built")
    return passed("Exercise B")


@pytest.fixture(autouse=True)
def _no_mark_left():
    exercises._clear()
    yield
    exercises._clear()


def test_learners_own_answer_is_correct(capsys):
    answer = use_reference(42, 41)  # the learner answered: the reference stays out
    assert check_answer(answer)
    assert capsys.readouterr().out.strip() == "✔ Exercise T: correct — the answer is 42"


def test_reference_answer_is_reported_as_such(capsys):
    answer = use_reference(None, 42)
    assert check_answer(answer)
    out = capsys.readouterr().out
    assert "using the reference solution" in out
    assert f"✔ Exercise T: reference solution used (the answer is 42) — now try it yourself: {TRY}" in out
    assert "correct" not in out


def test_the_mark_is_used_once(capsys):
    check_answer(use_reference(None, 42))
    capsys.readouterr()
    check_answer(42)  # the next run of the check: the learner's own
    assert "correct" in capsys.readouterr().out


def test_an_answer_typed_after_the_solution_cell_is_the_learners(capsys):
    use_reference(None, [1, 2])  # solution cell ran while the answer was empty ...
    answer = 42  # ... then the learner wrote an answer and checked it
    check_answer(answer)
    assert "correct" in capsys.readouterr().out


def test_a_failing_check_uses_up_the_mark(capsys):
    wrong = use_reference(None, 41)
    with pytest.raises(CheckFailed):
        check_answer(wrong)
    check_built(True)  # another exercise, answered by the learner
    assert "✔ Exercise B: correct" in capsys.readouterr().out


def test_reference_that_builds(capsys):
    assert reference_needed(True) is True
    check_built(True)
    out = capsys.readouterr().out
    assert "running the reference solution" in out
    assert "✔ Exercise B: reference solution used — now try it yourself: build it yourself" in out


def test_learner_built_it_first(capsys):
    use_reference(None, 42)  # a stale mark from another exercise ...
    assert reference_needed(False) is False  # ... dropped by this solution cell, which had nothing to do
    capsys.readouterr()
    check_built(True)
    assert capsys.readouterr().out.strip() == "✔ Exercise B: correct"


def test_passed_outside_a_graded_check_is_plain(capsys):
    use_reference(None, 1)
    passed("Something")
    assert capsys.readouterr().out.strip().endswith("✔ Something: correct")


# ---- every check and every solution cell follows the convention ----------------------------------
def _check_functions():
    for path in sorted((REPO_ROOT / "packetlab" / "course").glob("m*/exercises.py")):
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name.startswith("check_"):
                yield path.stem, node


@pytest.mark.parametrize("module,node", list(_check_functions()), ids=lambda x: getattr(x, "name", x))
def test_every_exercise_check_is_graded(module, node):
    decorators = [ast.unparse(d) for d in node.decorator_list]
    assert any(d.startswith("graded(") for d in decorators), (
        f"packetlab/course/grading/{module}.py:{node.lineno} {node.name} needs @graded('<what to try yourself>')"
    )


def test_graded_keeps_the_signature():
    from packetlab.course.m00_getting_started.exercises import check_veth_peer

    assert list(inspect.signature(check_veth_peer).parameters) == ["answer", "host", "dev"]


@pytest.mark.parametrize("notebook", sorted((REPO_ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.stem)
def test_every_solution_cell_leaves_a_mark(notebook):
    nb = nbformat.read(notebook, as_version=4)
    for i, cell in enumerate(nb.cells):
        if "solution" in cell.metadata.get("tags", []):
            assert "use_reference(" in cell.source or "reference_needed(" in cell.source, (
                f"{notebook.name} cell {i + 1}: a solution cell must call use_reference() or reference_needed(), "
                "or its check will claim the learner's answer was correct"
            )
