"""Funnel plots: each region's rate against its size, with control limits around the national rate.

A table that ranks 42 regions by their rate of care reports puts the smallest regions at both ends
by chance alone: a region of 5,000 pupils varies far more from year to year than one of 75,000.
A funnel plot (Spiegelhalter 2005, "Funnel plots for comparing institutional performance",
Statistics in Medicine 24:1185-1202) shows the rate against the size, with the range a region of
that size would show if its true rate were the national one. Only a region outside the 99.8%
limits (about 3 standard deviations) differs more than chance explains; between 95% and 99.8% is
a signal to watch, not a verdict.

Limits are exact for counts, not normal approximations, because small regions have small counts:
`method="interpolated"` takes the quantiles of the Poisson (or binomial) distribution of the
count expected at the national rate and interpolates between integers as Spiegelhalter's appendix
does, so that the limits are smooth in the size; `method="exact"` gives the continuous
chi-square (Poisson) or beta (binomial) limits of the English public-health funnel tools (which
Byar's formula approximates) instead.

Regions differ for reasons beyond chance (their schools differ), so with large regions Poisson
limits flag more regions than chance would: overdispersion. `funnel_frame(...,
overdispersion=True)` estimates the overdispersion factor phi from winsorised z-scores and, when
it exceeds 1, widens the limits by sqrt(phi) (Spiegelhalter 2005, section 7.1, multiplicative
model); a report should say which limits it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from evaluation.params import Region

Kind = Literal["poisson", "binomial"]
Method = Literal["interpolated", "exact"]
LEVELS = (0.95, 0.998)
FLAGS = {"high_998": "boven 99,8%-grens", "high_95": "boven 95%-grens", "inside": "binnen grenzen",
         "low_95": "onder 95%-grens", "low_998": "onder 99,8%-grens"}


def _quantile_counts(p: np.ndarray, dist: stats.rv_discrete) -> np.ndarray:
    """Spiegelhalter's interpolated quantile: y_p - alpha with y_p the p-quantile of the count
    and alpha = (F(y_p) - p) / (F(y_p) - F(y_p - 1)), continuous in the size."""
    y = dist.ppf(p)
    upper, lower = dist.cdf(y), dist.cdf(y - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = np.where(upper > lower, (upper - p) / (upper - lower), 0.0)
    return np.maximum(y - alpha, 0.0)


def funnel_limits(national_rate: float, sizes: Sequence[float] | np.ndarray,
                  levels: Sequence[float] = LEVELS, kind: Kind = "poisson",
                  method: Method = "interpolated", per: float = 1.0,
                  phi: float = 1.0) -> pd.DataFrame:
    """Control limits of a rate around `national_rate`, one row per (size, level).

    `national_rate` and the limits are per `per` units of size (per=100 with sizes in pupils:
    per 100 pupils); for kind "binomial" the rate per unit is a proportion and sizes are counts
    of trials. Columns: size, level, expected (count), lower, upper (rates), lower_count,
    upper_count. With an overdispersion factor `phi` > 1 the limits are the normal ones widened
    by sqrt(phi): rate +- z sqrt(phi var / size) (Spiegelhalter 2005, section 7.1).
    """
    theta = float(national_rate) / per
    if theta < 0 or (kind == "binomial" and theta > 1):
        raise ValueError(f"national rate {national_rate} per {per} is impossible for {kind}")
    size = np.asarray(sizes, dtype=float)
    if (size <= 0).any():
        raise ValueError("sizes must be positive")
    rows = []
    for level in levels:
        if not 0 < level < 1:
            raise ValueError(f"level {level} must lie between 0 and 1")
        lo_p, hi_p = (1 - level) / 2, (1 + level) / 2
        mean = theta * size
        if phi > 1:
            var = theta * (1 - theta) if kind == "binomial" else theta
            half = stats.norm.ppf(hi_p) * np.sqrt(phi * var * size)
            lower, upper = np.maximum(mean - half, 0.0), mean + half
            if kind == "binomial":
                upper = np.minimum(upper, size)
        elif method == "interpolated":
            if kind == "poisson":
                dist = stats.poisson(mean)
            else:
                dist = stats.binom(np.rint(size).astype(int), theta)
            lower, upper = _quantile_counts(lo_p, dist), _quantile_counts(hi_p, dist)
        elif kind == "poisson":
            lower = stats.chi2.ppf(lo_p, 2 * mean) / 2
            upper = stats.chi2.ppf(hi_p, 2 * (mean + 1)) / 2
        else:
            lower = size * stats.beta.ppf(lo_p, mean, size - mean + 1)
            upper = size * stats.beta.ppf(hi_p, mean + 1, size - mean)
        lower = np.nan_to_num(lower, nan=0.0)
        rows.append(pd.DataFrame({"size": size, "level": level, "expected": mean,
                                  "lower": per * lower / size, "upper": per * upper / size,
                                  "lower_count": lower, "upper_count": upper}))
    return pd.concat(rows, ignore_index=True)


def funnel_frame(counts: Sequence[float] | np.ndarray, sizes: Sequence[float] | np.ndarray,
                 labels: Sequence[str], national_rate: float | None = None,
                 levels: Sequence[float] = LEVELS, kind: Kind = "poisson",
                 method: Method = "interpolated", per: float = 100.0,
                 overdispersion: bool = False) -> pd.DataFrame:
    """One row per unit (region): label, size, count, rate (per `per`) and where it lies.

    The national rate defaults to the pooled rate of the units (total count / total size), as
    the reference in a funnel plot is the whole country. `flag` says which limits the rate
    crosses (the widest one crossed): high_998, high_95, inside, low_95, low_998; `flag_nl` the
    Dutch text; `z` the standardised difference from the national rate. With `overdispersion`
    the limits widen by the estimated factor (`overdispersion_factor`). Attributes:
    national_rate, levels, kind, method, per, phi.
    """
    count = np.asarray(counts, dtype=float)
    size = np.asarray(sizes, dtype=float)
    rate = per * count / size
    national = per * count.sum() / size.sum() if national_rate is None else float(national_rate)
    theta = national / per
    var = theta * (1 - theta) if kind == "binomial" else theta
    z = (count / size - theta) / np.sqrt(var / size)
    phi = overdispersion_factor(z) if overdispersion else 1.0
    limits = funnel_limits(national, size, levels, kind, method, per, phi=phi)
    out = pd.DataFrame({"label": list(labels), "size": size, "count": count, "rate": rate,
                        "expected": national * size / per, "z": z})
    flag = np.full(len(out), "inside", dtype=object)
    for level in sorted(levels):  # the widest level crossed wins
        lim = limits[limits["level"] == level]
        tag = "998" if level >= 0.99 else "95"
        flag = np.where(rate > lim["upper"].to_numpy(), f"high_{tag}", flag)
        flag = np.where(rate < lim["lower"].to_numpy(), f"low_{tag}", flag)
        out[f"lower_{level:g}"] = lim["lower"].to_numpy()
        out[f"upper_{level:g}"] = lim["upper"].to_numpy()
    out["flag"] = flag
    out["flag_nl"] = out["flag"].map(FLAGS)
    out.attrs.update(national_rate=national, levels=tuple(levels), kind=kind, method=method,
                     per=per, phi=phi)
    return out


def overdispersion_factor(z: Sequence[float] | np.ndarray, winsor: float = 0.1) -> float:
    """phi = mean of the squared z-scores after winsorising the outer 10% at each end
    (Spiegelhalter 2005, section 7.1), so that the outliers the plot is meant to find do not
    widen the limits themselves; at least 1 (no underdispersion correction)."""
    zs = np.sort(np.asarray(z, dtype=float))
    if len(zs) < 3:
        return 1.0
    lo, hi = np.quantile(zs, [winsor, 1 - winsor])
    return max(float(np.mean(np.clip(zs, lo, hi) ** 2)), 1.0)


def region_counts(frame: pd.DataFrame, school_region: Mapping[str, str],
                  school_year: str | None = None) -> pd.DataFrame:
    """Counts and sizes per region from an indicator's analysis frame (by school location).

    Rate frames (count, exposure; exposure = pupils enrolled) give events and pupils; proportion
    frames (success) give successes and records. `school_year` restricts to one year (default:
    the last in the frame). Returns region, count, size.
    """
    year = school_year or str(frame["school_year"].max())
    f = frame[frame["school_year"] == year]
    region = f["school_id"].astype(str).map(school_region)
    if "exposure" in f:
        g = f.assign(region=region).groupby("region")[["count", "exposure"]].sum()
        return pd.DataFrame({"region": g.index, "count": g["count"].to_numpy(float),
                             "size": g["exposure"].to_numpy(float)})
    g = f.assign(region=region, success=f["success"].astype(float)).groupby("region")["success"]
    return pd.DataFrame({"region": g.sum().index, "count": g.sum().to_numpy(float),
                         "size": g.size().to_numpy(float)})


def funnel_figure(frame: pd.DataFrame, title: str | None = None,
                  xlabel: str = "Aantal leerlingen", ylabel: str = "Per 100 leerlingen",
                  highlight: Sequence[str] = (), annotate_flagged: bool = True) -> plt.Figure:
    """The funnel plot of `funnel_frame`'s output in the house style: points per region, the
    national rate, dashed 95% and solid 99.8% limits, Dutch labels and decimal commas.

    Regions in `highlight` (labels) are marked and named; so are regions outside the widest
    limits when `annotate_flagged`. The rate axis is not forced to start at 0: the funnel is
    about the spread around the national line. Figures show aggregated regional rates only.
    """
    from evaluation.report.plots import PALETTE, decimal_comma, house_style

    house_style()
    attrs = frame.attrs
    national, per = attrs.get("national_rate"), attrs.get("per", 100.0)
    levels = attrs.get("levels", LEVELS)
    kind, method = attrs.get("kind", "poisson"), attrs.get("method", "interpolated")
    if national is None:
        national = per * frame["count"].sum() / frame["size"].sum()
    lo, hi = frame["size"].min(), frame["size"].max()
    grid = np.geomspace(max(lo * 0.8, 1.0), hi * 1.15, 200)
    if kind == "binomial":  # binomial limits exist for whole numbers of records only
        grid = np.unique(np.round(grid))
    phi = attrs.get("phi", 1.0)
    limits = funnel_limits(national, grid, levels, kind, method, per, phi=phi)

    fig, ax = plt.subplots(figsize=(8, 5.2))
    widened = " (gecorrigeerd voor overdispersie)" if phi > 1 else ""
    styles = {0.95: ("--", "95%-grenzen" + widened), 0.998: ("-", "99,8%-grenzen" + widened)}
    for level in levels:
        lim = limits[limits["level"] == level]
        style, label = styles.get(level, (":", f"{level:.1%}-grenzen".replace(".", ",")))
        ax.plot(lim["size"], lim["upper"], style, color="0.35", linewidth=1, label=label)
        ax.plot(lim["size"], lim["lower"], style, color="0.35", linewidth=1)
    ax.axhline(national, color=PALETTE[0], linewidth=1.2,
               label="Landelijk: " + _dutch(national, 2))
    colours = {"inside": PALETTE[7], "high_95": PALETTE[1], "low_95": PALETTE[2],
               "high_998": PALETTE[3], "low_998": PALETTE[4]}
    for flag, rows in frame.groupby("flag", sort=False):
        ax.scatter(rows["size"], rows["rate"], s=28, color=colours.get(str(flag), PALETTE[7]),
                   edgecolor="white", linewidth=0.5, zorder=3, label=FLAGS.get(str(flag), flag))
    widest = "998" if max(levels) >= 0.99 else "95"
    named = frame[frame["label"].isin(list(highlight))]
    if annotate_flagged:
        named = pd.concat([named, frame[frame["flag"].isin([f"high_{widest}", f"low_{widest}"])]])
    for _, row in named.drop_duplicates("label").iterrows():
        ax.annotate(str(row["label"]), (row["size"], row["rate"]), xytext=(4, 4),
                    textcoords="offset points", fontsize=8)
    if len(highlight):
        sel = frame[frame["label"].isin(list(highlight))]
        ax.scatter(sel["size"], sel["rate"], s=70, facecolor="none", edgecolor="black",
                   linewidth=1.2, zorder=4)
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title, fontsize=11)
    decimal_comma(ax, 1)
    decimal_comma(ax, 0, axis="x")
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    # Below the plot: inside it the legend would hide regions.
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3,
              frameon=False)
    fig.tight_layout()
    return fig


def _dutch(value: float, decimals: int) -> str:
    from evaluation.report.formatting import number

    return number(value, decimals)


def region_funnel(tables: Mapping[str, pd.DataFrame], regions: Sequence[Region],
                  indicator: str = "care_reports_per_100", school_year: str | None = None,
                  overdispersion: bool = False) -> pd.DataFrame:
    """The data of a funnel plot (`funnel.funnel_frame`) of one rate or share indicator: each
    region's value in `school_year` (default: the last) against its pupils or records, labelled
    with the region's name. Rates are per 100 pupils (Poisson limits), shares per 100 records
    (binomial limits)."""
    from evaluation.national.estimates import national_frames
    from evaluation.registry import INDICATORS

    kind = INDICATORS[indicator].kind
    if kind not in ("rate", "proportion"):
        raise ValueError(f"{indicator}: a funnel plot needs a rate or a share, not a {kind}")
    frame = national_frames(tables, [indicator])[indicator]
    names = {s.id: r.name for r in regions for s in r.schools}
    counts = region_counts(frame, names, school_year)
    return funnel_frame(counts["count"], counts["size"], counts["region"],
                        kind="poisson" if kind == "rate" else "binomial", per=100.0,
                        overdispersion=overdispersion)
