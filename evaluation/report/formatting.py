"""Dutch number formatting for reports: decimal comma, dot for thousands, `12,5%`.

Kept apart from the analysis so that every figure is computed in full precision and rounded only
where it is shown.
"""

from __future__ import annotations

import math
import re
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
    text = text.replace(",", "\u0001").replace(".", ",").replace("\u0001", ".")
    # A true minus sign: a hyphen reads as a dash in Dutch typesetting.
    return "\u2212" + text[1:] if text.startswith("-") else text


def integer(x: float | int | None) -> str:
    return number(x, 0)


def count_noun(n: int, singular: str, plural: str) -> str:
    """`1 school`, `12 scholen`."""
    return f"{integer(n)} {singular if n == 1 else plural}"


def join_and(items: Iterable[str], sep: str = ", ") -> str:
    """["a", "b", "c"] -> "a, b en c" (Dutch, no comma before "en")."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{sep.join(items[:-1])} en {items[-1]}" if items else ""


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


NUMERIC_CELL = r"^[\s+\u2212\-<·–]*\d[\d.,]*\s*(%|dagen)?(\s*\(.*\))?$|^[·–]$"


def _alignment(frame: pd.DataFrame) -> list[str]:
    """Right-align columns of numbers, left-align text."""
    out = []
    for col in frame.columns:
        cells = frame[col].astype("string").fillna(SUPPRESSED)
        numeric = cells.str.match(NUMERIC_CELL).mean() >= 0.8 if len(cells) else False
        out.append("r" if numeric else "l")
    return out


def markdown_table(frame: pd.DataFrame, align: Iterable[str] | None = None) -> str:
    """A pipe table (Pandoc/Quarto Markdown) of already formatted text cells."""
    cols = [str(c) for c in frame.columns]
    align = list(align) if align is not None else _alignment(frame)
    # A "|" inside a cell would end it early: escape it.
    body = frame.astype("string").fillna(SUPPRESSED).apply(lambda c: c.str.replace("|", r"\|"))
    # Pandoc sizes the columns of a wide pipe table by the dashes of this line: make them follow
    # the longest word-run of each column, so that long text gets room and numbers do not.
    widths = [max([len(c), *body[col].str.len().fillna(1).astype(int).tolist()])
              for c, col in zip(cols, body.columns, strict=True)]
    widths = [min(max(w, 3), 40) for w in widths]
    marks = {"l": lambda w: ":" + "-" * (w - 1), "r": lambda w: "-" * (w - 1) + ":",
             "c": lambda w: ":" + "-" * (w - 2) + ":"}
    lines = ["| " + " | ".join(cols) + " |",
             "| " + " | ".join(marks[a](w) for a, w in zip(align, widths, strict=True)) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body.itertuples(index=False)]
    return "\n".join(lines)


def slug(name: str) -> str:
    """A name as a folder or anchor name: "Zuid-Kennemerland" -> "zuid-kennemerland"."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
