"""Dutch number formatting: decimal comma, dot for thousands, suppression mark for missing."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from evaluation.report.formatting import (
    SUPPRESSED,
    integer,
    interval,
    markdown_table,
    number,
    p_value,
    percent,
)


def test_number_uses_decimal_comma_and_thousands_dot():
    assert number(1234.56) == "1.234,6"
    assert number(0.125, 3) == "0,125"
    assert number(1234567.891, 2) == "1.234.567,89"
    assert number(-1234.5, 1) == "\u22121.234,5"  # a true minus sign, not a hyphen
    assert number(3) == "3,0"
    assert number(999.96, 1) == "1.000,0"


def test_integer_has_thousands_dot_and_no_decimals():
    assert integer(10234) == "10.234"
    assert integer(7) == "7"
    assert integer(1234567) == "1.234.567"
    assert integer(np.int64(10234)) == "10.234"


def test_percent_of_a_share():
    assert percent(0.125) == "12,5%"
    assert percent(0.5, 0) == "50%"
    assert percent(0.12345, 2) == "12,35%"
    assert percent(12.34) == "1.234,0%"


@pytest.mark.parametrize("missing", [None, pd.NA, float("nan"), np.nan, math.nan])
def test_missing_is_the_suppression_mark(missing):
    assert number(missing) == SUPPRESSED
    assert integer(missing) == SUPPRESSED
    assert percent(missing) == SUPPRESSED
    assert p_value(missing) == SUPPRESSED


def test_interval():
    assert interval(0.15, 0.27) == "0,15 tot 0,27"
    assert interval(1234.5, 2345.26, decimals=1) == "1.234,5 tot 2.345,3"
    assert interval(0.15, 0.27, decimals=1, pct=True) == "15,0% tot 27,0%"
    assert interval(None, 0.27) == f"{SUPPRESSED} tot 0,27"


def test_p_value():
    assert p_value(0.0001) == "< 0,001"
    assert p_value(0.000999) == "< 0,001"
    assert p_value(0.001) == "0,001"
    assert p_value(0.0456) == "0,046"
    assert p_value(0.5) == "0,500"
    assert p_value(1.0) == "1,000"


def _cells(line: str) -> list[str]:
    assert line.startswith("| ") and line.endswith(" |"), line
    return [c.strip() for c in line[2:-2].split(" | ")]


def test_markdown_table_is_a_valid_pipe_table():
    frame = pd.DataFrame({
        "School": ["LS01", "LS02", "Totaal"],
        "Meldingen": ["1.234", None, "2.345"],
        "Aandeel": ["12,5%", pd.NA, "100,0%"],
    })
    text = markdown_table(frame)
    lines = text.split("\n")
    assert len(lines) == 2 + len(frame)
    header, rule, *body = (_cells(line) for line in lines)
    assert header == ["School", "Meldingen", "Aandeel"]
    # Text left, numbers right; the dashes follow the width of each column's content.
    assert [r[0] == ":" for r in rule] == [True, False, False]
    assert [r[-1] == ":" for r in rule] == [False, True, True]
    assert len(rule[0]) == max(len("School"), *(len(s) for s in frame["School"]))
    assert all(len(row) == 3 for row in body)
    assert body[0] == ["LS01", "1.234", "12,5%"]
    assert body[1] == ["LS02", SUPPRESSED, SUPPRESSED]
    assert body[2] == ["Totaal", "2.345", "100,0%"]


def test_markdown_table_alignment_can_be_chosen_and_numeric_na_is_suppressed():
    frame = pd.DataFrame({"a": ["x", "y"], "b": [1.5, np.nan], "c": pd.array([3, None],
                                                                              dtype="Int64")})
    lines = markdown_table(frame, align=["c", "l", "r"]).split("\n")
    assert _cells(lines[1]) == [":-:", ":--", "--:"]
    assert _cells(lines[3])[1:] == [SUPPRESSED, SUPPRESSED]


def test_a_bar_inside_a_cell_does_not_break_the_table():
    import pandas as pd

    from evaluation.report.formatting import markdown_table

    table = markdown_table(pd.DataFrame({"a": ["x|y"], "b": ["1"]}))
    assert table.splitlines()[-1] == r"| x\|y | 1 |"
