"""Disclosure control: the one step every published count passes.

Counts below the threshold are suppressed, all others rounded to the rounding base (as the
national statistics office does for youth-care figures); where a table shows totals, further
cells are suppressed (secondary suppression) so that no hidden value can be recomputed from the
totals or from other published cells. Rates, shares and means computed from a suppressed count
are suppressed with it. `check_published` is the last gate: it proves that no table registered
for publication holds a small or unrounded count.

The attacker model for secondary suppression: the attacker knows every published number exactly
and solves the linear equations "cells of a line add up to its total". A hidden cell is
recoverable when those equations determine it; `protect_crosstab` leaves no such cell. The
model ignores two facts: rounding blurs every equation (so the model is conservative), and
counts cannot be negative (a residual risk, see the notes of `protect_crosstab`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import coo_array
from scipy.sparse.csgraph import connected_components

from evaluation.params import Disclosure

TOTAL = "Totaal"  # label of the appended row and column totals


class DisclosureError(AssertionError):
    """A table about to be published gives a small count away.

    An AssertionError, so that checks written against `assert_protected` keep catching it.
    """


def round_to_base(values: pd.Series, base: int) -> pd.Series:
    """Round half up to a multiple of `base` (0 stays 0)."""
    return (np.floor(values.astype("Float64") / base + 0.5) * base).astype("Int64")


def _round_array(values: np.ndarray, base: int) -> np.ndarray:
    """`round_to_base` for an integer array."""
    return (np.floor(values / base + 0.5) * base).astype(np.int64)


def _primary(values: np.ndarray, rule: Disclosure) -> np.ndarray:
    """Cells to hide on their own: the raw or the rounded value is below the threshold.

    The rounded value is judged too, so that rounding never publishes a count below the threshold.
    """
    return (values < rule.min_count) | (_round_array(values, rule.rounding_base) < rule.min_count)


def protect_counts(
    frame: pd.DataFrame,
    counts: list[str],
    rule: Disclosure,
    derived: dict[str, str] | None = None,
    with_total: bool = False,
) -> pd.DataFrame:
    """Return a copy of `frame` safe to publish (one dimension: a list of groups).

    counts: columns holding counts of persons or events; each is suppressed below `rule.min_count`
    and rounded to `rule.rounding_base`.
    derived: {column: count column} for rates or shares that must disappear with their count.
    with_total: the table is published with a column total, so apply secondary suppression.
    For tables with two dimensions (and row and column totals) use `protect_crosstab`.
    """
    out = frame.copy()
    derived = derived or {}
    for col in counts:
        raw = out[col].astype("Float64")
        # Judge the published (rounded) value too: rounding must never bring a cell below the
        # threshold.
        small = (raw < rule.min_count) | (round_to_base(raw, rule.rounding_base) < rule.min_count)
        if with_total and int(small.sum()) == 1 and len(raw) > 1:
            # One hidden cell plus a published total gives it away: hide the next smallest too.
            nxt = raw.where(~small).idxmin()
            small.loc[nxt] = True
        out[col] = round_to_base(raw, rule.rounding_base).mask(small)
        for dcol, source in derived.items():
            if source == col:
                out[dcol] = out[dcol].astype("Float64").mask(small)
    return out


# --- two-dimensional tables ------------------------------------------------------------------


def _with_total(index: pd.Index) -> pd.Index:
    """`index` with the total label appended (a tuple for a MultiIndex)."""
    label: object = TOTAL
    if isinstance(index, pd.MultiIndex):
        label = (TOTAL,) + ("",) * (index.nlevels - 1)
    out = index.append(pd.Index([label], tupleize_cols=True))
    return out.set_names(index.names)


def _raw_counts(table: pd.DataFrame) -> np.ndarray:
    """The counts of `table` as an integer array; NA (no observations) counts as 0."""
    try:
        values = table.apply(pd.to_numeric).astype("Float64").fillna(0).to_numpy(dtype=float)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"protect_crosstab: the table must hold counts only ({exc})") from None
    if (values < 0).any():
        raise ValueError("protect_crosstab: counts cannot be negative")
    if (values != np.round(values)).any():
        raise ValueError("protect_crosstab: counts must be whole numbers")
    return values.astype(np.int64)


def _pick(
    values: np.ndarray, hidden: np.ndarray, margin: np.ndarray, lines: np.ndarray,
    crossing: np.ndarray,
) -> np.ndarray:
    """Column of the cell to hide next in each line of `lines` (rows of the arrays).

    Preference, in this order: an inner cell before a total (a total only when no inner cell is
    left); a cell whose crossing line also has one hidden cell (one suppression completes two
    lines), then one whose crossing line has two or more (no new work), then one whose crossing
    line has none; the smallest count (least information lost).
    """
    big = float(values.max()) + 1.0
    work = np.where(crossing == 1, 0, np.where(crossing >= 2, 1, 2))[None, :]
    key = (margin * 4 + work) * big + values
    key = np.where(hidden, np.inf, key)
    return np.argmin(key[lines], axis=1)


def _complete_lines(values: np.ndarray, hidden: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Hide cells until no line (row or column, totals included) has exactly one hidden cell.

    A line with one hidden cell is an equation with one unknown. Each round is vectorised: all
    rows with one hidden cell get a second one at once, then all such columns.
    """
    hidden = hidden.copy()
    while True:
        changed = False
        for transpose in (False, True):
            v, h, m = (values.T, hidden.T, margin.T) if transpose else (values, hidden, margin)
            lines = np.flatnonzero(h.sum(axis=1) == 1)
            if lines.size == 0:
                continue
            cols = _pick(v, h, m, lines, h.sum(axis=0))
            h[lines, cols] = True  # h is a view of `hidden`
            changed = True
        if not changed:
            return hidden


def _recoverable(hidden: np.ndarray) -> np.ndarray:
    """Hidden cells that the line equations determine (they are in the row space of the system).

    Each line says: its inner cells add up to its total. Moving the published values to the right
    hand side leaves a system in the hidden cells; a hidden cell is determined exactly when every
    solution of the homogeneous system is zero in it.
    """
    cells = np.argwhere(hidden)
    out = np.zeros_like(hidden)
    if len(cells) == 0:
        return out
    n_rows, n_cols = hidden.shape
    system = np.zeros((n_rows + n_cols, len(cells)))
    k = np.arange(len(cells))
    # Signs of totals do not change which cells are determined (the lines form a bipartite
    # graph), so every coefficient is 1.
    system[cells[:, 0], k] = 1.0
    system[n_rows + cells[:, 1], k] = 1.0
    _, sing, vt = np.linalg.svd(system)
    rank = int((sing > 1e-9 * max(sing.max(), 1.0)).sum())
    null = vt[rank:]
    determined = np.linalg.norm(null, axis=0) < 1e-8 if len(null) else np.ones(len(cells), bool)
    out[cells[determined, 0], cells[determined, 1]] = True
    return out


def _break_chains(values: np.ndarray, hidden: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Hide cells until no hidden cell is determined by a combination of line equations.

    After `_complete_lines` every line has zero or at least two hidden cells, yet a hidden cell
    can still be determined: in the graph of lines (nodes) and hidden cells (edges) it is a
    bridge, e.g. one hidden cell linking two hidden rectangles. Adding any hidden cell between
    the two sides of the bridge puts it on a cycle; take the smallest inner one.
    """
    hidden = hidden.copy()
    n_rows, n_cols = hidden.shape
    while True:
        bridges = np.argwhere(_recoverable(hidden))
        if len(bridges) == 0:
            return hidden
        i, j = bridges[0]
        rest = hidden.copy()
        rest[i, j] = False
        r, c = np.nonzero(rest)
        graph = coo_array((np.ones(len(r)), (r, n_rows + c)),
                          shape=(n_rows + n_cols, n_rows + n_cols))
        _, label = connected_components(graph, directed=False)
        row_side, col_side = label[:n_rows], label[n_rows:]
        a, b = label[i], label[n_rows + j]
        across = ((row_side[:, None] == a) & (col_side[None, :] == b)) | (
            (row_side[:, None] == b) & (col_side[None, :] == a))
        across &= ~hidden
        if not across.any():  # cannot happen after _complete_lines; guard against a silent leak
            raise RuntimeError("secondary suppression found no cell to protect a hidden cell")
        key = np.where(across, margin * (float(values.max()) + 1.0) + values, np.inf)
        hidden[np.unravel_index(np.argmin(key), key.shape)] = True


def protect_crosstab(
    table: pd.DataFrame, rule: Disclosure, margins: bool = True
) -> pd.DataFrame:
    """Return a two-dimensional table of counts (e.g. school x school year) safe to publish.

    table: raw counts, rows x columns; NA means no observations and counts as 0.
    margins: append row and column totals and the grand total, labelled "Totaal". Totals are
    computed from the raw counts, then rounded and suppressed by the same rule.

    Primary suppression hides every cell (total) whose raw or rounded count is below
    `rule.min_count`. With margins, secondary suppression then hides further cells until no
    hidden value can be recomputed from the published numbers: first, repeatedly, every row and
    column (the total row and column included) with exactly one hidden cell gets a second one
    (the smallest, preferring cells that also complete another line; a total only when no inner
    cell is left); then every hidden cell still determined by a combination of equations gets a
    partner. Without margins no equation is published, so only primary suppression applies.

    Returns a nullable Int64 table of rounded counts, NA where suppressed. Notes: published
    totals are rounded on their own, so published cells need not add up to the published total
    (say so in the caption). The attacker model treats hidden counts as real numbers; since
    counts cannot be negative, a line whose hidden cells are all 0 tells an attacker who knows
    the exact totals (rounding base 1) that they are 0.
    """
    if margins and (TOTAL in table.index or TOTAL in table.columns):
        raise ValueError(f"protect_crosstab: the table already has a {TOTAL!r} row or column; "
                         "pass it without totals, they are computed from the raw counts")
    values = _raw_counts(table)
    index, columns = table.index, table.columns
    if values.size == 0:  # no counts at all (a table not delivered): nothing to publish
        return pd.DataFrame(index=index, columns=columns, dtype="Int64")
    if margins:
        row_total = values.sum(axis=1, keepdims=True)
        values = np.block([[values, row_total],
                           [values.sum(axis=0, keepdims=True), row_total.sum(keepdims=True)]])
        index, columns = _with_total(index), _with_total(columns)
    hidden = _primary(values, rule)
    if margins and values.size:
        margin = np.zeros(values.shape, dtype=np.int64)
        margin[-1, :] = 1
        margin[:, -1] = 1
        hidden = _complete_lines(values, hidden, margin)
        hidden = _break_chains(values, hidden, margin)
    shown = pd.DataFrame(_round_array(values, rule.rounding_base), index=index, columns=columns)
    return shown.astype("Int64").mask(hidden)


# --- rates, shares and means; the figures drawn from them ------------------------------------


def protect_rates(
    frame: pd.DataFrame,
    count_col: str,
    rate_cols: str | Sequence[str],
    rule: Disclosure,
    with_total: bool = False,
) -> pd.DataFrame:
    """Return a copy of `frame` where every rate, share or mean vanishes with its count.

    A rate published next to a suppressed count (or drawn in a figure) gives the small count
    away when the denominator is known, so a figure's data frame passes this before plotting.
    `count_col` may hold raw counts (they are suppressed and rounded here, as in
    `protect_counts`) or counts already protected, e.g. by `protect_crosstab`: NA there stays
    NA and masks the rates too. with_total: the figure or table also shows the total count.
    """
    cols = [rate_cols] if isinstance(rate_cols, str) else list(rate_cols)
    missing = [c for c in [count_col, *cols] if c not in frame.columns]
    if missing:
        raise KeyError(f"protect_rates: no column {', '.join(missing)}")
    already_hidden = frame[count_col].isna()
    out = protect_counts(frame, [count_col], rule, with_total=with_total)
    hidden = (out[count_col].isna() | already_hidden).to_numpy(dtype=bool)
    for col in cols:
        out[col] = out[col].astype("Float64").mask(hidden)
    return out


# --- the gate before publication -------------------------------------------------------------


@dataclass
class PublishedTable:
    """A table or a figure's data as it will be published, with the columns holding counts."""

    name: str
    frame: pd.DataFrame
    count_columns: list[str] = field(default_factory=list)
    caption: str = ""


def _violations(table: PublishedTable, rule: Disclosure) -> list[str]:
    """One line per published count that breaks the rule."""
    found = []
    for col in table.count_columns:
        if col not in table.frame.columns:
            found.append(f"table {table.name!r}, column {col!r}: no such column")
            continue
        try:
            values = pd.to_numeric(table.frame[col]).astype("Float64")
        except (ValueError, TypeError):
            found.append(f"table {table.name!r}, column {col!r}: holds text, not counts "
                         "(register the table before formatting its numbers)")
            continue
        small = (values < rule.min_count).fillna(False)
        off = (values % rule.rounding_base != 0).fillna(False)
        for label, value in values[small | off].items():
            why = (f"{value:g} is below {rule.min_count}" if small[label]
                   else f"{value:g} is not a multiple of {rule.rounding_base}")
            found.append(f"table {table.name!r}, column {col!r}, row {label!r}: {why}")
    return found


def check_published(tables: Iterable[PublishedTable], rule: Disclosure) -> None:
    """Raise DisclosureError naming table, column and row of every count that must not be shown.

    The last gate before publication: whatever route a table took, a count below the threshold
    or off the rounding base never reaches a report.
    """
    found = [line for table in tables for line in _violations(table, rule)]
    if found:
        shown = found[:20] + ([f"... and {len(found) - 20} more"] if len(found) > 20 else [])
        raise DisclosureError("published counts break the disclosure rule "
                              f"(min {rule.min_count}, base {rule.rounding_base}):\n  "
                              + "\n  ".join(shown))


def assert_protected(frame: pd.DataFrame, counts: list[str], rule: Disclosure) -> None:
    """Raise if a published count column holds a value below the threshold or off the base."""
    for col in counts:
        vals = frame[col].dropna().astype("int64")
        if (vals < rule.min_count).any():
            raise DisclosureError(f"column {col} publishes counts below {rule.min_count}")
        if (vals % rule.rounding_base != 0).any():
            raise DisclosureError(
                f"column {col} publishes counts not rounded to {rule.rounding_base}")
