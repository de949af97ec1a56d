"""No import cycles in packetlab, not even through imports inside functions.

An import placed inside a function to dodge "partially initialized module" is
still a cycle at run time: the two modules are really one, or a piece belongs in
a lower layer (modules/architecture.md). lint-imports checks the layers; this
test checks what layers cannot see: two modules of the same package that import
each other.

The graph comes from grimp (import-linter's engine), which reads every import
statement in the source, at module level or inside a function. Imports under
``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import grimp
import pytest


def import_cycles(package: str) -> list[list[str]]:
    """Each import cycle in `package`, as the modules around it (first one repeated at the end).

    Modules that import each other, directly or round a longer loop, form a
    strongly connected component; for every module of a component not yet on a
    reported cycle, the shortest cycle through it is reported, so each loop a
    reader has to break is named once.
    """
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    cycles: list[list[str]] = []
    for component in _components(graph):
        covered: set[str] = set()
        for module in sorted(component):
            if module in covered:
                continue
            cycle = _shortest_cycle(graph, module, component)
            covered.update(cycle)
            cycles.append(cycle)
    return cycles


def _components(graph: grimp.ImportGraph) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            for nxt in successors:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.find_modules_directly_imported_by(nxt)))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(component)
    return found


def _shortest_cycle(graph: grimp.ImportGraph, module: str, component: set[str]) -> list[str]:
    best: tuple[str, ...] | None = None
    for nxt in sorted(graph.find_modules_directly_imported_by(module) & component):
        back = graph.find_shortest_chain(importer=nxt, imported=module)
        if back and (best is None or len(back) < len(best)):
            best = back
    assert best is not None, f"{module} is in a cycle, so a chain leads back to it"
    return [module, *best]


def _describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    """One line per import of the cycle, with where it is written."""
    lines = [" -> ".join(cycle)]
    for importer, imported in zip(cycle, cycle[1:]):
        for detail in graph.get_import_details(importer=importer, imported=imported)[:1]:
            lines.append(f"    {importer} line {detail['line_number']}: {detail['line_contents']}")
    return "\n".join(lines)


def test_packetlab_has_no_import_cycles():
    cycles = import_cycles("packetlab")
    if cycles:
        graph = grimp.build_graph("packetlab", exclude_type_checking_imports=True, cache_dir=None)
        pytest.fail(
            f"{len(cycles)} import cycle(s) in packetlab — a cycle means two modules are really one, or a piece "
            "belongs in a lower layer (modules/architecture.md); an import inside a function does not break it:\n"
            + "\n".join(_describe(graph, c) for c in cycles),
            pytrace=False,
        )


def test_a_cycle_through_a_function_level_import_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The check itself: a loop closed by an import inside a function is a cycle; a TYPE_CHECKING one is not."""
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "rules.py").write_text("from cyclepkg.compiler import compile_rules\n")
    (pkg / "compiler.py").write_text(
        textwrap.dedent(
            """
            from typing import TYPE_CHECKING
            if TYPE_CHECKING:
                from cyclepkg.typed import Hint
            def compile_rules():
                from cyclepkg.rules import Rule  # the lazy import that hides the cycle
            """
        )
    )
    (pkg / "typed.py").write_text("from cyclepkg.compiler import compile_rules\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_cycles("cyclepkg") == [["cyclepkg.compiler", "cyclepkg.rules", "cyclepkg.compiler"]]
