"""The house style for figures: one colour-blind-safe palette, Dutch labels, decimal commas.

Figures receive data that has already passed disclosure control; they never aggregate pupils
themselves.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import FuncFormatter

from evaluation import labels
from evaluation.analysis.statistics import between_school_interval
from evaluation.report import formatting
from evaluation.report.per_records import per_records

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


def interval_bands(ax: plt.Axes, data: pd.DataFrame, x_order: list[str]) -> None:
    """Shade each group's interval (columns Groep, school_year, low, high) behind its line and
    name the band in the legend."""
    from matplotlib.patches import Patch

    for group, colour in GROUP_COLOURS.items():
        g = data[data["Groep"] == group].set_index("school_year").reindex(x_order)
        if g["low"].notna().any():
            ax.fill_between(range(len(x_order)), g["low"].to_numpy(float),
                            g["high"].to_numpy(float), color=colour, alpha=0.15, linewidth=0)
    handles, names = ax.get_legend_handles_labels()
    band = Patch(facecolor="0.6", alpha=0.35, label="95%-interval (tussen scholen)")
    ax.legend(handles=[*handles, band], labels=[*names, band.get_label()], title="Groep")


def rate_by_school_year(group_years: pd.DataFrame, pilot_starts: list[str]) -> plt.Figure | None:
    """Care reports per 100 pupils per school year, pilot against comparison schools; None when
    there is no rate to draw."""
    if group_years.empty or not group_years["rate_per_100"].notna().any():
        return None
    house_style()
    data = group_years.assign(Groep=group_years["group"].map(labels.GROUPS))
    fig, ax = plt.subplots()
    sns.lineplot(data=data, x="school_year", y="rate_per_100", hue="Groep", marker="o", ax=ax,
                 errorbar=None,
                 palette=GROUP_COLOURS)
    years = list(data["school_year"].drop_duplicates().sort_values())
    if {"low", "high"} <= set(data.columns):
        interval_bands(ax, data, years)
    for start in pilot_starts:
        if start in years:
            ax.axvline(years.index(start) - 0.5, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(labels.SCHOOL_YEAR)
    ax.set_ylabel(labels.RATE_PER_100)
    ax.set_ylim(bottom=0)
    decimal_comma(ax)
    fig.tight_layout()
    return fig


def rate_by_month(monthly: pd.DataFrame) -> plt.Figure | None:
    """Monthly care reports (per 100 pupils per year), showing holidays and the pilot drop; None
    when there is no report to draw."""
    if monthly.empty or monthly["reports"].sum() == 0:
        return None
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


@per_records
def yearly_values(es, indicator_id: str) -> pd.DataFrame:
    """Value per group and school year, withheld where it rests on fewer records than the
    disclosure threshold (the data behind `indicator_by_year` and its alt text)."""
    from evaluation.registry import INDICATORS
    from evaluation.report.findings import _value

    ind = INDICATORS[indicator_id]
    d = es.data[indicator_id]
    rows = []
    for (group, year), g in d.groupby(["group", "school_year"], observed=True):
        v, n = _value(ind, g)
        rows.append({"group": group, "school_year": year, "value": v, "n": n})
    out = pd.DataFrame(rows, columns=["group", "school_year", "value", "n"])
    ratio = {"rate": ("count", "exposure"), "proportion": ("success", None),
             "scale": ("score", None)}.get(ind.kind)
    if ratio is not None and len(d):
        ci = between_school_interval(d.dropna(subset=[ratio[0]]), *ratio,
                                     ["group", "school_year"])
        scale = 100.0 if ind.kind in ("rate", "proportion") else 1.0
        ci[["low", "high"]] = ci[["low", "high"]] * scale
        out = out.merge(ci[["group", "school_year", "low", "high"]],
                        on=["group", "school_year"], how="left")
    else:
        out = out.assign(low=np.nan, high=np.nan)
    out.loc[out["n"] < es.params.disclosure.min_count, ["value", "low", "high"]] = np.nan
    return out


YEARLY_UNITS = {"rate": "per 100 leerlingen", "proportion": "% van de trajecten",
                "duration": "mediaan, dagen", "scale": "gemiddelde score (1-5)"}


def indicator_by_year(es, indicator_id: str) -> plt.Figure | None:
    """An indicator per school year, pilot against comparison schools, with the pilot starts;
    None when no value is publishable."""
    from evaluation.registry import INDICATORS

    ind = INDICATORS[indicator_id]
    data = yearly_values(es, indicator_id)
    if not data["value"].notna().any():
        return None
    house_style()
    data = data.assign(Groep=data["group"].map(labels.GROUPS))
    fig, ax = plt.subplots()
    sns.lineplot(data=data, x="school_year", y="value", hue="Groep", marker="o", ax=ax,
                 errorbar=None,
                 palette=GROUP_COLOURS)
    years = sorted(data["school_year"].unique())
    interval_bands(ax, data, years)
    for start in sorted(es.design["cohort"].dropna().unique()):
        if start in years:
            ax.axvline(years.index(start) - 0.5, color="0.4", linestyle="--", linewidth=1)
    ax.set_xlabel(labels.SCHOOL_YEAR)
    unit = YEARLY_UNITS[ind.kind]
    ax.set_ylabel(f"{ind.name_nl}\n({unit})" if len(ind.name_nl) < 40 else unit)
    ax.set_title(ind.name_nl, fontsize=11)
    if ind.kind == "scale":
        ax.set_ylim(1, 5)  # the whole answer scale: a cut axis would magnify the change
    else:
        ax.set_ylim(bottom=0)
    decimal_comma(ax, 0 if ind.kind == "duration" else 1)
    fig.tight_layout()
    return fig


#: What a Kaplan-Meier curve of each duration counts down: the share still waiting.
STILL_WAITING = {"days_signal_to_help": "Aandeel nog zonder hulp",
                 "days_to_consent": "Aandeel nog zonder toestemming",
                 "trajectory_days": "Aandeel trajecten nog lopend",
                 "indication_free_days": "Aandeel trajecten nog lopend"}


def survival_curves(es, indicator_id: str) -> plt.Figure | None:
    """Kaplan-Meier curves before and in the report year, at the pilot schools (solid) beside
    the comparison schools in the same school years (dashed): the difference-in-differences in
    the text compares exactly these four. Ongoing trajectories are censored, never dropped; the
    tail where fewer pupils than the threshold remain at risk is withheld. None when no curve
    has records enough."""
    from evaluation.analysis import durations
    from evaluation.analysis.survival import kaplan_meier
    from evaluation.registry import INDICATORS

    ind = INDICATORS[indicator_id]
    d = es.data[indicator_id]
    cell = durations.cells(d, es.params.school_year)
    d = d.assign(cell=cell)[(cell >= 0) & d["days"].notna().to_numpy()]
    sizes = d.groupby("cell").size()
    shown = [k for k in durations.CELL_NAMES if sizes.get(k, 0) >= es.params.disclosure.min_count]
    if not shown:
        return None
    house_style()
    period = {"before": "vóór de start", "after": es.params.school_year}
    fig, ax = plt.subplots()
    for k in shown:
        group, when = durations.CELL_NAMES[k]
        g = kaplan_meier(d[d["cell"] == k])
        g = g[g["at_risk"] >= es.params.disclosure.min_count]
        ax.step(g["time"], g["survival"], where="post",
                label=f"{labels.GROUPS[group]}, {period[when]}",
                color=PALETTE[0] if group == "pilot" else PALETTE[1],
                linestyle="-" if group == "pilot" else "--",
                alpha=1.0 if when == "after" else 0.45)
    ax.axhline(0.5, color="0.5", linewidth=0.7, linestyle=":")  # where the median is read
    ax.set_xlabel("Dagen")
    ax.set_ylabel(STILL_WAITING.get(indicator_id, "Aandeel nog niet afgerond"))
    ax.set_title(ind.name_nl, fontsize=11)
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.legend(fontsize=8)
    decimal_comma(ax, 1)
    fig.tight_layout()
    return fig


UNIT_LABELS = {"rate ratio": "verhouding (1 = gelijk)", "hazard ratio": "hazard ratio",
               "procentpunt": "procentpunt", "schaalpunt": "schaalpunt", "dagen": "dagen",
               "per 100 leerlingen": "per 100 leerlingen"}


def specification_curves(robust: pd.DataFrame) -> plt.Figure | None:
    """Per primary indicator, every specification's estimate and interval, sorted, with the main
    analysis marked: does the conclusion hinge on one choice? None when nothing was estimated."""
    import numpy as np

    from evaluation.registry import INDICATORS

    if robust.empty or not robust["estimate"].notna().any():
        return None
    house_style()
    robust = robust[robust.groupby("indicator")["estimate"].transform(
        lambda e: e.notna().any())]
    ids = list(dict.fromkeys(robust["indicator"]))
    cols = 2
    rows = int(np.ceil(len(ids) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(9, 2.3 * rows), squeeze=False)
    for ax, ind_id in zip(axes.flat, ids, strict=False):
        g = robust[(robust["indicator"] == ind_id) & robust["estimate"].notna()]
        main_unit = g.loc[g["family"] == "hoofdanalyse", "unit"]
        unit = main_unit.iloc[0] if len(main_unit) else g["unit"].iloc[0]
        g = g[g["unit"] == unit]  # one scale per panel: ratios and differences never mix
        g = g.sort_values("estimate").reset_index(drop=True)
        x = np.arange(len(g))
        main = (g["family"] == "hoofdanalyse").to_numpy()
        # Segments, not error bars: a bootstrap percentile interval of a median need not
        # contain the point estimate, and a randomisation test may give no interval at all.
        shown = g["ci_low"].notna() & g["ci_high"].notna()
        ax.vlines(x[shown.to_numpy()], g.loc[shown, "ci_low"], g.loc[shown, "ci_high"],
                  color="0.6", linewidth=0.8)
        ax.plot(x, g["estimate"], "o", color=PALETTE[0], markersize=3)
        ax.plot(x[main], g.loc[main, "estimate"], "D", color=PALETTE[3], markersize=6,
                label="hoofdanalyse")
        null = 1.0 if unit in ("rate ratio", "hazard ratio") else 0.0  # no effect
        ax.axhline(null, color="0.3", linewidth=0.8, linestyle="--")
        ax.set_title(INDICATORS[ind_id].label_nl, fontsize=9)
        ax.set_ylabel(UNIT_LABELS.get(unit, unit), fontsize=8)
        ax.set_xticks([])
        ax.tick_params(labelsize=8)
        decimal_comma(ax, 2 if null == 1.0 else 1)
    for ax in list(axes.flat)[len(ids):]:
        ax.set_visible(False)
    fig.supxlabel("Specificaties, gesorteerd naar schatting", fontsize=9)
    fig.tight_layout()
    return fig
