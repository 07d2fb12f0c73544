"""The house style for figures: one colour-blind-safe palette, Dutch labels, decimal commas.

Figures receive data that has already passed disclosure control; they never aggregate pupils
themselves.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from evaluation import formatting, labels

PALETTE = sns.color_palette("colorblind")
GROUP_COLOURS = {labels.GROUPS["pilot"]: PALETTE[0], labels.GROUPS["comparison"]: PALETTE[1]}


def house_style() -> None:
    """Apply the house style to every figure that follows."""
    sns.set_theme(context="notebook", style="whitegrid", palette=PALETTE,
                  rc={"figure.figsize": (8, 4.2), "figure.dpi": 110, "savefig.dpi": 150,
                      "axes.titleweight": "bold", "font.size": 11})


def decimal_comma(ax: plt.Axes, decimals: int = 1, axis: str = "y") -> None:
    fmt = FuncFormatter(lambda v, _pos: formatting.number(v, decimals))
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def rate_by_school_year(group_years: pd.DataFrame, pilot_starts: list[str]) -> plt.Figure:
    """Care reports per 100 pupils per school year, pilot against comparison schools."""
    house_style()
    data = group_years.assign(Groep=group_years["group"].map(labels.GROUPS))
    fig, ax = plt.subplots()
    sns.lineplot(data=data, x="school_year", y="rate_per_100", hue="Groep", marker="o", ax=ax,
                 palette=GROUP_COLOURS)
    years = list(data["school_year"].drop_duplicates().sort_values())
    for start in pilot_starts:
        if start in years:
            ax.axvline(years.index(start) - 0.5, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(labels.SCHOOL_YEAR)
    ax.set_ylabel(labels.RATE_PER_100)
    ax.set_ylim(bottom=0)
    decimal_comma(ax)
    fig.tight_layout()
    return fig


def rate_by_month(monthly: pd.DataFrame) -> plt.Figure:
    """Monthly care reports (per 100 pupils per year), showing holidays and the pilot drop."""
    house_style()
    data = monthly.assign(Groep=monthly["group"].map(labels.GROUPS))
    fig, ax = plt.subplots()
    sns.lineplot(data=data, x="month", y="rate_per_100", hue="Groep", ax=ax,
                 palette=GROUP_COLOURS, linewidth=1.3)
    ax.set_xlabel(labels.MONTH)
    ax.set_ylabel("Per 100 leerlingen, op jaarbasis")
    ax.set_ylim(bottom=0)
    decimal_comma(ax)
    fig.tight_layout()
    return fig
