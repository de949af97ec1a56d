"""packetlab.show.tables: the one table formatter (pure, no kernel)."""

from __future__ import annotations

import pytest

from packetlab.show.tables import WORDS, format_table


def test_words_align_left():
    table = format_table(["a", "bb"], [["x", "long words"], ["yyy", 1]], align=WORDS)
    lines = table.splitlines()
    assert lines[0] == "a    bb" and lines[1] == "---  ----------" and lines[2] == "x    long words"


def test_figures_align_right_with_separators():
    table = format_table(["what", "packets", "rate"], [["drop", 1234567, 0.5], ["pass", 3, 1234.5]])
    assert table.splitlines() == [
        "what    packets   rate",
        "----  ---------  -----",
        "drop  1,234,567  0.500",
        "pass          3  1,234",
    ]


def test_align_per_column_and_the_last_one_repeats():
    table = format_table(["n", "name", "x", "y"], [[1, "a", 2, 3], [10, "bcd", 20, 30]], align="><")
    assert table.splitlines()[2:] == [" 1  a     2   3", "10  bcd   20  30"]


def test_a_multi_line_cell_spans_lines_and_no_line_ends_in_spaces():
    table = format_table(
        ["status", "check", "result"], [["ok", "a", "fine"], ["warn", "bb", "one\nfix: two"]], align=WORDS
    )
    lines = table.splitlines()
    assert lines[3:] == ["warn    bb     one", "               fix: two"]
    assert not any(line != line.rstrip() for line in lines)


def test_bools_read_as_words_not_numbers():
    assert format_table(["same"], [[True], [False]]).splitlines()[2:] == ["True", "False"]


def test_a_row_of_the_wrong_length_is_refused():
    with pytest.raises(ValueError, match="2 cells for 3 headers"):
        format_table(["a", "b", "c"], [[1, 2]])
    with pytest.raises(ValueError, match="align"):
        format_table(["a"], [], align="^")
