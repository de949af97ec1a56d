"""The import contracts in pyproject.toml cover the whole tree (modules/architecture.md).

lint-imports checks only the modules a contract names: a new top-level module left out of the
layers contract, or a new course module left out of the course order, is checked by nothing. The
tools need no list (the independence contract takes ``packetlab.tools.*``), but a contract that
names them one by one would miss the next tool, so this test checks that too. Each failure names
the package and the line to add.
"""

from __future__ import annotations

import fnmatch
import re

import pytest

from packetlab.paths import REPO_ROOT

tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11 (Debian 12 has it)")

PACKAGE = REPO_ROOT / "packetlab"


def _contracts() -> dict[str, dict]:
    with open(REPO_ROOT / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)["tool"]["importlinter"]
    return {c["name"]: c for c in config["contracts"]}


def _contract(kind: str, words: str) -> dict:
    """The one contract of type `kind` whose name starts with `words`."""
    found = [c for name, c in _contracts().items() if c["type"] == kind and name.startswith(words)]
    assert len(found) == 1, f"pyproject.toml: expected one {kind} contract named '{words}…', found {len(found)}"
    return found[0]


def _layer_modules(contract: dict) -> list[str]:
    """Every module a layers contract names, top to bottom (siblings split; optional '(…)' unwrapped)."""
    return [m.strip().strip("()") for layer in contract["layers"] for m in re.split(r"[:|]", layer) if m.strip()]


def _children(directory) -> list[str]:
    """Direct submodules: packages (a folder with __init__.py) and modules (a .py file)."""
    names = [p.name for p in directory.iterdir() if (p / "__init__.py").is_file()]
    names += [p.stem for p in directory.glob("*.py") if p.stem != "__init__"]
    return sorted(names)


def test_every_top_level_module_is_in_a_layer():
    layered = set(_layer_modules(_contract("layers", "layers")))
    missing = [f"packetlab.{name}" for name in _children(PACKAGE) if f"packetlab.{name}" not in layered]
    assert not missing, (
        f"{', '.join(missing)}: in no layer of the 'layers' contract in pyproject.toml, so lint-imports "
        "checks nothing it imports; move it into a layer's package (modules/architecture.md, 'Where does X go?') "
        "or add it to the layer it belongs to"
    )


def test_every_course_module_is_in_the_course_order():
    order = _contract("layers", "course modules")
    listed = _layer_modules(order)
    modules = [f"packetlab.course.{name}" for name in _children(PACKAGE / "course") if re.match(r"m\d", name)]
    missing = [m for m in modules if m not in listed]
    assert not missing, (
        f"{', '.join(missing)}: not in the 'course modules build on earlier ones' contract in pyproject.toml; "
        f'add "{missing[-1]}" on top of its layers (capstones that must not import each other share one line, '
        'joined by " | ")'
    )
    lines = [
        [m for m in _layer_modules({"layers": [line]}) if re.match(r"packetlab\.course\.m\d", m)]
        for line in order["layers"]
    ]
    lines = [line for line in lines if line]
    assert all(min(upper) > max(lower) for upper, lower in zip(lines, lines[1:])), (
        "the course order lists the modules from the last to the first"
    )


def test_every_tool_is_independent_of_the_others():
    patterns = _contract("independence", "tools")["modules"]
    tools = [f"packetlab.tools.{name}" for name in _children(PACKAGE / "tools")]
    missing = [
        t for t in tools if not any(fnmatch.fnmatchcase(t, p) and t.count(".") == p.count(".") for p in patterns)
    ]
    assert not missing, (
        f"{', '.join(missing)}: not in the 'tools are independent' contract in pyproject.toml; "
        'its modules should be ["packetlab.tools.*"]'
    )
