"""Disclosure control: the one step every published count passes.

Counts below the threshold are suppressed, all others rounded to the rounding base (as the
national statistics office does for youth-care figures); where a table shows a total, a second
cell is suppressed when only one is, so that the hidden value cannot be recomputed from the total.
Rates and shares computed from a suppressed count are suppressed with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.params import Disclosure


def round_to_base(values: pd.Series, base: int) -> pd.Series:
    """Round half up to a multiple of `base` (0 stays 0)."""
    return (np.floor(values.astype("Float64") / base + 0.5) * base).astype("Int64")


def protect_counts(
    frame: pd.DataFrame,
    counts: list[str],
    rule: Disclosure,
    derived: dict[str, str] | None = None,
    with_total: bool = False,
) -> pd.DataFrame:
    """Return a copy of `frame` safe to publish.

    counts: columns holding counts of persons or events; each is suppressed below `rule.min_count`
    and rounded to `rule.rounding_base`.
    derived: {column: count column} for rates or shares that must disappear with their count.
    with_total: the table is published with a column total, so apply secondary suppression.
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


def assert_protected(frame: pd.DataFrame, counts: list[str], rule: Disclosure) -> None:
    """Raise if a published count column holds a value below the threshold or off the base."""
    for col in counts:
        vals = frame[col].dropna().astype("int64")
        if (vals < rule.min_count).any():
            raise AssertionError(f"column {col} publishes counts below {rule.min_count}")
        if (vals % rule.rounding_base != 0).any():
            raise AssertionError(f"column {col} publishes counts not rounded to {rule.rounding_base}")
