"""Dutch number formatting for reports: decimal comma, dot for thousands, `12,5%`.

Kept apart from the analysis so that every figure is computed in full precision and rounded only
where it is shown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import pandas as pd

SUPPRESSED = "·"  # shown for a value withheld by disclosure control


def _isnan(x: object) -> bool:
    return x is None or x is pd.NA or (isinstance(x, float) and math.isnan(x))


def number(x: float | int | None, decimals: int = 1) -> str:
    """`1234.56` -> `1.234,6`; missing -> the suppression mark."""
    if _isnan(x):
        return SUPPRESSED
    text = f"{float(x):,.{decimals}f}"
    return text.replace(",", "\u0001").replace(".", ",").replace("\u0001", ".")


def integer(x: float | int | None) -> str:
    return number(x, 0)


def percent(x: float | None, decimals: int = 1) -> str:
    """A share (0-1) as a Dutch percentage: `0.125` -> `12,5%`."""
    return SUPPRESSED if _isnan(x) else f"{number(100 * float(x), decimals)}%"


def interval(low: float | None, high: float | None, decimals: int = 2, pct: bool = False) -> str:
    """A confidence interval as `0,15 tot 0,27` (or with percentages)."""
    fmt = (lambda v: percent(v, decimals)) if pct else (lambda v: number(v, decimals))
    return f"{fmt(low)} tot {fmt(high)}"


def p_value(p: float | None) -> str:
    if _isnan(p):
        return SUPPRESSED
    return "< 0,001" if p < 0.001 else number(p, 3)


def markdown_table(frame: pd.DataFrame, align: Iterable[str] | None = None) -> str:
    """A pipe table (Pandoc/Quarto Markdown) of already formatted text cells."""
    cols = [str(c) for c in frame.columns]
    align = list(align) if align is not None else ["l"] + ["r"] * (len(cols) - 1)
    marks = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join(marks[a] for a in align) + " |"]
    # A "|" inside a cell would end it early: escape it.
    body = frame.astype("string").fillna(SUPPRESSED).apply(lambda c: c.str.replace("|", r"\|"))
    lines += ["| " + " | ".join(row) + " |" for row in body.itertuples(index=False)]
    return "\n".join(lines)
