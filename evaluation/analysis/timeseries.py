"""Interrupted time series of monthly counts (care reports, referrals) with school-year seasonality.

Monthly counts at a school swing with the school calendar: almost nothing in the summer holiday,
less at Christmas. A before/after comparison of months would mix that swing, and the slow trend
that all schools share, with the pilot. The model here separates them: a Poisson GLM of the monthly
count per unit with the exposure as offset, calendar-month dummies (seasonality), a linear trend,
and a level change (optionally also a slope change) from each unit's own start. Units without a
start (comparison schools) inform the trend and seasonality only. Counts of one school are
correlated over months and overdispersed, so standard errors are clustered by unit.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.genmod import families
from statsmodels.genmod.generalized_linear_model import GLM, GLMResultsWrapper
from statsmodels.tools.tools import add_constant

from evaluation.analysis.statistics import Estimate

POST = "post"
SLOPE = "post_years"
TREND = "trend_years"


@dataclass(frozen=True)
class InterruptedTimeSeries:
    """The fitted interrupted time series: estimates, the series for a figure and the fit."""

    level: Estimate  # rate ratio at the start (post versus the counterfactual)
    slope: Estimate | None  # rate ratio per year since the start, if a slope change was fitted
    trend: float  # rate ratio per year of the underlying trend
    seasonality: pd.Series  # rate ratio per calendar month (1..12), geometric mean 1
    series: pd.DataFrame  # unit, month, count, exposure, post, fitted, counterfactual
    fit: GLMResultsWrapper

    def by_month(self, treated_only: bool = True) -> pd.DataFrame:
        """Counts, fitted and counterfactual values summed over units per month, with rates per
        100 per year (exposure is a yearly count, so a month's rate is 1200 x count / exposure).

        With `treated_only` the sum runs over units that have a start, so that the counterfactual
        line shows what the model expects for them without the change.
        """
        s = self.series[self.series["treated_unit"]] if treated_only else self.series
        out = (s.groupby("month")[["count", "exposure", "fitted", "counterfactual"]].sum()
               .reset_index())
        for col in ("count", "fitted", "counterfactual"):
            out[f"{col}_per_100"] = 1200 * out[col] / out["exposure"]
        return out


def _design(data: pd.DataFrame, unit: str, month: str, start: str, slope_change: bool,
            unit_effects: bool) -> pd.DataFrame:
    """Regressors: trend (years), post, optional slope (years since start), month and unit dummies."""
    first = data[month].min()
    months = (data[month].dt.year - first.year) * 12 + data[month].dt.month - first.month
    starts = pd.to_datetime(data[start])
    post = (data[month] >= starts).astype(float)  # NaT start: never post
    cols = {TREND: months / 12, POST: post}
    if slope_change:
        since = ((data[month].dt.year - starts.dt.year) * 12
                 + data[month].dt.month - starts.dt.month) / 12
        cols[SLOPE] = (since * post).fillna(0.0)
    X = pd.DataFrame(cols, index=data.index)
    if not X[POST].any():
        raise ValueError("no unit-month after a start: the level change cannot be estimated")
    calendar = pd.get_dummies(data[month].dt.month, prefix="month", dtype=float)
    parts = [X, calendar.iloc[:, 1:]]  # reference: the first calendar month in the data
    if unit_effects:
        parts.append(pd.get_dummies(data[unit].astype("string"), prefix="unit", drop_first=True,
                                    dtype=float))
    return add_constant(pd.concat(parts, axis=1), has_constant="add")


def interrupted_time_series(monthly: pd.DataFrame, count: str = "reports",
                            exposure: str = "pupils", unit: str = "school_id",
                            start_col: str = "pilot_start", month_col: str = "month",
                            slope_change: bool = False, unit_effects: bool = True,
                            alpha: float = 0.05, inference: str = "cluster_jackknife"
                            ) -> InterruptedTimeSeries:
    """Poisson interrupted time series of monthly counts per unit, clustered by unit.

    `monthly` has one row per unit and month (first day of the month) with the count, the
    exposure as a yearly count (pupils; the offset is log(exposure / 12)) and the unit's start
    (NaT: no start). Rows without a positive exposure or a count cannot inform a rate and are
    left out. `unit_effects` gives every unit its own level, so that the level change compares
    each unit with itself. The level change is the rate ratio exp(post coefficient): at the start
    when a slope change is fitted, otherwise on average after the start.

    `inference`: "cluster_jackknife" (few units: each unit left out in turn and the model refitted,
    CRV3 with t(G-1) critical values on the log scale) or "cluster_robust" (the sandwich clustered
    by unit, normal critical values: many units).
    """
    if inference not in ("cluster_jackknife", "cluster_robust"):
        raise ValueError(f"inference: expected cluster_jackknife or cluster_robust, got "
                         f"{inference!r}")
    data = monthly[[unit, month_col, count, exposure, start_col]].copy()
    data[month_col] = pd.to_datetime(data[month_col])
    data = data[data[count].notna() & (data[exposure].astype(float) > 0)]
    data = data.sort_values([unit, month_col]).reset_index(drop=True)
    X = _design(data, unit, month_col, start_col, slope_change, unit_effects)
    y = data[count].astype(float)
    offset = np.log(data[exposure].astype(float) / 12)
    clusters = pd.factorize(data[unit])[0]
    fit = GLM(y, X, family=families.Poisson(), offset=offset).fit(
        cov_type="cluster", cov_kwds={"groups": clusters})

    ci = fit.conf_int(alpha=alpha)
    n_clusters = int(data[unit].nunique())
    names = [POST, *([SLOPE] if slope_change else [])]
    if inference == "cluster_jackknife":
        jack = _jackknife(y, X, offset, clusters, fit.params, names, alpha)
    method = ("Poisson GLM van maandaantallen: kalendermaanden, lineaire trend, "
              f"{'niveau- en trendbreuk' if slope_change else 'niveaubreuk'} bij de start"
              f"{', eenheidsvaste effecten' if unit_effects else ''}; "
              + ("cluster-jackknife over eenheden (CRV3)" if inference == "cluster_jackknife"
                 else "clustergecorrigeerde standaardfouten"))

    def estimate(name: str, comparison: str) -> Estimate:
        low, high, p = ((ci.loc[name, 0], ci.loc[name, 1], fit.pvalues[name])
                        if inference == "cluster_robust" else jack[name])
        return Estimate(count, comparison, method, "rate ratio", float(np.exp(fit.params[name])),
                        float(np.exp(low)), float(np.exp(high)), float(p), n=int(y.sum()),
                        n_clusters=n_clusters, inference=inference)

    level = estimate(POST, "onderbroken tijdreeks: niveau na de start t.o.v. verwacht")
    slope = estimate(SLOPE, "onderbroken tijdreeks: verandering per jaar na de start") \
        if slope_change else None

    counterfactual_X = X.copy()
    counterfactual_X[[c for c in (POST, SLOPE) if c in X]] = 0.0
    series = data.rename(columns={count: "count", exposure: "exposure", month_col: "month"})
    series = series.assign(post=X[POST].astype(bool), fitted=np.asarray(fit.fittedvalues),
                           counterfactual=np.asarray(fit.predict(counterfactual_X,
                                                                 offset=offset)),
                           treated_unit=data[start_col].notna().groupby(data[unit])
                           .transform("any").astype(bool))

    observed = sorted(data[month_col].dt.month.unique())
    month_coef = pd.Series([fit.params.get(f"month_{m}", 0.0) for m in observed], index=observed)
    seasonality = np.exp(month_coef - month_coef.mean()).rename("rate_ratio")
    return InterruptedTimeSeries(level, slope, float(np.exp(fit.params[TREND])), seasonality,
                                 series, fit)


def _jackknife(y: pd.Series, X: pd.DataFrame, offset: pd.Series, clusters: np.ndarray,
               params: pd.Series, names: list[str], alpha: float
               ) -> dict[str, tuple[float, float, float]]:
    """CRV3 over units: the model refitted without each unit (warm-started at the full fit,
    columns that vanish without it dropped); (low, high, p) per coefficient on the log scale,
    t(G-1). NaN when leaving some unit out leaves a coefficient unidentified."""
    from scipy import stats

    G = int(clusters.max()) + 1
    loo = {name: np.full(G, np.nan) for name in names}
    # Plain arrays: the same fits as with the frames, without pandas' indexing per refit.
    Xa, ya, oa = X.to_numpy(float), y.to_numpy(float), offset.to_numpy(float)
    start = params[X.columns].to_numpy(float)
    where = [X.columns.get_loc(name) for name in names]
    for g in range(G):  # units: tens
        keep = clusters != g
        used = (Xa[keep] != 0).any(axis=0)  # columns that vanish without the unit
        if not used[where].all():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = GLM(ya[keep], Xa[keep][:, used], family=families.Poisson(),
                          offset=oa[keep]).fit(start_params=start[used])
        except (ValueError, np.linalg.LinAlgError):
            continue
        position = np.cumsum(used) - 1  # a kept column's place among the kept
        for name, w in zip(names, where, strict=True):
            loo[name][g] = res.params[position[w]]
    out = {}
    crit = stats.t.ppf(1 - alpha / 2, G - 1)
    for name in names:
        b, v = float(params[name]), loo[name]
        if not np.isfinite(v).all():
            out[name] = (np.nan, np.nan, np.nan)
            continue
        se = float(np.sqrt((G - 1) / G * np.sum((v - b) ** 2)))
        p = float(2 * stats.t.sf(abs(b / se), G - 1)) if se > 0 else np.nan
        out[name] = (b - crit * se, b + crit * se, p)
    return out
