"""Plain-text tables: the one formatter every lab, tool, benchmark and the doctor use.

Notebook output, ``packetlab doctor``, ``packetlab firewall status`` and the
benchmarks all print tables; one formatter keeps them alike (a header, a rule
of dashes, two spaces between columns) and keeps number formatting in one place.

It imports nothing from packetlab, so any layer may use it without pulling in
the rest of ``show``.
"""

from __future__ import annotations

from collections.abc import Sequence

FIGURES = "<>"  # first column left (what is measured), every other column right (the figures)
WORDS = "<"  # every column left: tables of words


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, align: str = FIGURES) -> str:
    """A text table: the headers, a rule of dashes, then one line per row.

    ``align`` says per column ``<`` (left) or ``>`` (right); its last character
    stands for every column after it, so the default ``"<>"`` is "the first column
    left, the figures right" and ``"<"`` is "all left". Ints get thousands
    separators and floats a precision that suits their size. A cell with
    newlines spans several lines (the other columns stay blank below their
    first line), which is how the doctor prints a fix under a failed check.
    Trailing spaces are dropped.
    """
    if not align or set(align) - {"<", ">"}:
        raise ValueError(f"align takes '<' and '>' per column, not {align!r}")
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in row] for row in rows]
    for row in cells[1:]:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} headers: {row}")
    split = [[cell.split("\n") for cell in row] for row in cells]
    widths = [max((len(line) for r in split for line in r[i]), default=0) for i in range(len(headers))]
    sides = [align[min(i, len(align) - 1)] for i in range(len(headers))]
    lines = []
    for n, cell_lines in enumerate(split):
        for k in range(max((len(cell) for cell in cell_lines), default=1)):
            parts = [cell[k] if k < len(cell) else "" for cell in cell_lines]
            lines.append(
                "  ".join(p.ljust(w) if s == "<" else p.rjust(w) for p, w, s in zip(parts, widths, sides)).rstrip()
            )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(value: object) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if abs(value) < 10:
            return f"{value:,.3f}"
        return f"{value:,.1f}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
