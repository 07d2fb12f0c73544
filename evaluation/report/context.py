"""The regional context section: the CBS figures of the region's municipalities, as the report
shows them (latest period, decimal commas, a mark for what CBS does not publish).

The figures come from the cache that `evaluation.data.context` keeps; nothing here reads the
network.
"""

from __future__ import annotations

import pandas as pd

from evaluation.data.context import COUNTRY, ContextResult, period_label
from evaluation.report import formatting as f


def _decimals(values: pd.Series) -> int:
    """Decimals needed to show every value as the source gives it (at most 3)."""
    present = values.dropna().astype(float)
    for d in range(4):
        if ((present * 10**d).round(6) % 1 == 0).all():
            return d
    return 3


def latest_period(periods: pd.Series) -> str:
    """The latest year ("2022JJ00") when the extract has years, else the latest period."""
    codes = periods.dropna().astype(str)
    years = codes[codes.str.contains("JJ", regex=False)]
    return str((years if len(years) else codes).max())


def context_table(result: ContextResult) -> pd.DataFrame:
    """The latest period's figures, one row per municipality (then the country), formatted.

    A measure with more than one value per municipality in that period (a table with a further
    dimension, such as the referrer) is left out here; `result.data` holds it in full."""
    if result.data.empty:
        return pd.DataFrame()
    latest = latest_period(result.data["period"])
    rows = result.data[result.data["period"] == latest]
    order = [c for c in [*result.requested, COUNTRY] if c in set(rows["region_code"])]
    table = pd.DataFrame({"Gemeente": [result.names.get(c, c) for c in order]})
    for m in result.measures:
        sub = rows[rows["measure_key"] == m.key]
        if len(sub) != sub["region_code"].nunique():  # a further dimension: not one value a cell
            continue
        values = sub.set_index("region_code")["value"].reindex(order)
        decimals = m.decimals if m.decimals is not None else _decimals(values)
        table[m.label] = [f.number(v, decimals) for v in values]
    return table


def context_markdown(result: ContextResult) -> str:
    """A Dutch report section: the region's municipalities beside the extract's values (latest
    period), or the sentence saying why context data is unavailable."""
    if result.status != "available":
        return result.message
    table = context_table(result)
    latest = period_label(latest_period(result.data["period"]))
    caption = (f": CBS StatLine, tabel {result.table_id}, {latest}: gemeenten van de regio"
               + (" en Nederland" if COUNTRY in set(result.data["region_code"]) else "")
               + " (· = niet gepubliceerd door het CBS)")
    return f"{result.message}\n\n{f.markdown_table(table)}\n\n{caption}"
