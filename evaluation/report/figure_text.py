"""Alt texts computed from the numbers a figure shows, and how they reach the rendered report.

A figure's alt text describes what the reader would see; typed into a notebook it describes what
the author expected ("op vergelijkingsscholen blijft het gelijk") and goes wrong when the data
differ. So a notebook attaches the text it computes to the figure's output (`show_figure`), and
after execution `apply_output_text` writes it into the cell's `#| fig-alt` (and `#| fig-cap`)
options, which both renderers read. Region, municipality and national reports share this.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.report import formatting as f

FIG_META = "evaluation/figure"  # key of the output metadata that carries fig-alt and fig-cap
FLAT = 0.05  # a change of less than 5% of the starting value reads as "nagenoeg gelijk"


def show_figure_with_text(fig, alt: str, caption: str | None = None) -> None:
    """Display a figure with its computed alt text (and caption) attached to the output."""
    text = {"fig-alt": alt, **({"fig-cap": caption} if caption else {})}
    display_figure(fig, {FIG_META: text})


def display_figure(fig, metadata: dict | None = None) -> None:
    """Display a figure as an inline kernel does (a PNG at the figure's dpi, and its text form),
    then close it. The figures lay themselves out (`tight_layout`), so the PNG is drawn once at
    the figure's own size: IPython's default `bbox_inches="tight"` draws every figure a second
    time to measure it first."""
    import matplotlib.pyplot as plt
    from IPython.core.pylabtools import print_figure
    from IPython.display import display
    from matplotlib.layout_engine import PlaceHolderLayoutEngine

    if isinstance(fig.get_layout_engine(), PlaceHolderLayoutEngine):
        # What `tight_layout()` leaves behind: no layout to run, but its presence alone makes
        # matplotlib draw the figure once more before printing it.
        fig.set_layout_engine(None)
    png = print_figure(fig, "png", bbox_inches=None, base64=True)
    if png is not None:  # None: a figure without axes, which shows nothing in a kernel either
        display({"image/png": png, "text/plain": repr(fig)}, raw=True, metadata=metadata or {})
    plt.close(fig)


def apply_output_text(nb_path: Path) -> int:
    """Write the texts that outputs carry into their cell's options (the executed notebook;
    both renderers read the options there), replacing what the cell said: a figure's computed
    `#| fig-alt` (and `#| fig-cap`), and in a cell labelled tbl-* the table's `#| tbl-cap`, whose
    inline pandoc caption is then dropped so that the renderer numbers the table ("Tabel 3: ...").
    Returns the number of cells changed."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = [o for o in cell.get("outputs", [])
                   if o.get("output_type") == "display_data" and o.get("metadata", {}).get(FIG_META)]
        if not outputs:
            continue
        lines = cell.source.splitlines()
        head = [ln for ln in lines if ln.startswith("#|")]
        body = lines[len(head):]
        numbered = any(ln.replace(" ", "").startswith("#|label:tbl-") for ln in head)
        texts = [o["metadata"][FIG_META] for o in outputs]
        keys = [k for k in ("fig-cap", "fig-alt") if all(k in t for t in texts)]
        captions = [t["tbl-cap"] for t in texts if "tbl-cap" in t]
        if numbered and len(captions) == 1:
            keys.append("tbl-cap")
            for o in outputs:
                md = o.get("data", {}).get("text/markdown")
                cap = o["metadata"][FIG_META].get("tbl-cap")
                if md and cap and md.endswith(f"\n\n: {cap}"):
                    o["data"]["text/markdown"] = md[: -len(f"\n\n: {cap}")]
        if not keys:
            continue
        head = [ln for ln in head if not ln.startswith(tuple(f"#| {k}:" for k in keys))]
        for key in keys:
            values = [t[key] for t in texts if key in t]
            value = values[0] if len(values) == 1 else values
            head.append(f"#| {key}: {json.dumps(value, ensure_ascii=False)}")
        cell.source = "\n".join(head + body)
        changed += 1
    nbformat.write(nb, nb_path)
    return changed


def trend_words(first: float, last: float) -> str:
    """"stijgt van 1,4 naar 1,8", "daalt van ...", "blijft nagenoeg gelijk (...)": computed."""
    if pd.isna(first) or pd.isna(last):
        return "is niet over de hele periode te tonen"
    span = f"van {f.number(first, 1)} naar {f.number(last, 1)}"
    if abs(last - first) <= FLAT * max(abs(first), 1e-9):
        return f"blijft nagenoeg gelijk ({span})"
    return f"{'stijgt' if last > first else 'daalt'} {span}"


def by_year_alt(yearly: pd.DataFrame, what: str, unit: str) -> str:
    """Alt text of a line chart per school year and group (`plots.yearly_values`): per group
    the direction from its first to its last shown year, computed from the plotted values."""
    from evaluation import labels

    parts = []
    for group in ("pilot", "comparison"):
        g = yearly[(yearly["group"] == group) & yearly["value"].notna()].sort_values(
            "school_year")
        if g.empty:
            continue
        trend = trend_words(g["value"].iloc[0], g["value"].iloc[-1])
        parts.append(f"op {labels.GROUPS[group].lower()} {trend} tussen "
                     f"{g['school_year'].iloc[0]} en {g['school_year'].iloc[-1]}")
    body = "; ".join(parts) if parts else "geen publiceerbare waarden"
    unit = "" if unit in what else f" ({unit})"
    return f"Lijndiagram van {what}{unit} per schooljaar: {body}."


def survival_alt(summary: pd.DataFrame, what: str, school_year: str) -> str:
    """Alt text of Kaplan-Meier curves (`durations.summaries`): the median of each curve, the
    day it crosses one half, which the reader would read off the figure."""
    from evaluation import labels

    period = {"before": "vóór de start", "after": school_year}
    parts = []
    for r in summary.itertuples(index=False):
        median = ("niet bereikt" if not np.isfinite(r.median)
                  else f"na {f.number(r.median, 0 if r.median == round(r.median) else 1)} dagen")
        parts.append(f"{labels.GROUPS[r.group].lower()} {period[r.period]}: de helft {median}")
    body = "; ".join(parts) if parts else "geen publiceerbare curven"
    return (f"Dalende trapcurven van het aandeel dat nog wacht, tegen het aantal dagen, "
            f"voor {what}: {body}.")


# --- for the report's notebooks: the text of a figure from the same data as the figure -------

def indicator_by_year_alt(es, indicator_id: str) -> str:
    """Alt text of `plots.indicator_by_year` for this report."""
    from evaluation.registry import INDICATORS
    from evaluation.report.plots import YEARLY_UNITS, yearly_values

    ind = INDICATORS[indicator_id]
    return by_year_alt(yearly_values(es, indicator_id), ind.name_nl.lower(),
                       YEARLY_UNITS[ind.kind])


def survival_curves_alt(es, indicator_id: str) -> str:
    """Alt text of `plots.survival_curves` for this report: the medians of its curves."""
    from evaluation.analysis import durations
    from evaluation.registry import INDICATORS

    rule = es.params.disclosure
    summary = durations.summaries(es.data[indicator_id], es.params.school_year, 365)
    summary = summary[summary["n"] >= rule.min_count]  # the curves the figure shows
    return survival_alt(summary, INDICATORS[indicator_id].name_nl.lower(), es.params.school_year)
