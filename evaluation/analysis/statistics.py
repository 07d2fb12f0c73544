"""Estimators. Each returns an `Estimate` that carries its own method, n and interval, so that a
report can state them without recomputing anything.

statsmodels does the numerics of the exact-score intervals for two Poisson rates (each pilot
school before and after); the pooled models of the comparisons are in `fixed_effects`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.rates import confint_poisson_2indep, test_poisson_2indep


@dataclass(frozen=True)
class Estimate:
    indicator: str
    comparison: str
    method: str
    unit: str
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int
    n_clusters: int | None = None
    note: str = ""  # why an estimate is missing, in Dutch; empty when it is there
    inference: str = ""  # how the interval and p-value were obtained (methods.INFERENCE)
    draws: int | None = None  # bootstrap draws or randomisation assignments, where used
    p_value_bound: float | None = None  # the smallest p-value the draws can resolve

    def to_dict(self) -> dict:
        return asdict(self)


def rate_ratio_two_periods(count_before: int, exposure_before: float, count_after: int,
                           exposure_after: float, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Rate ratio after/before with a score interval and test (two independent Poisson rates)."""
    if exposure_before <= 0 or exposure_after <= 0:
        return (np.nan,) * 4
    ratio = (count_after / exposure_after) / (count_before / exposure_before) \
        if count_before > 0 else np.nan
    low, high = confint_poisson_2indep(count_after, exposure_after, count_before, exposure_before,
                                       method="score", compare="ratio", alpha=alpha)
    p = test_poisson_2indep(count_after, exposure_after, count_before, exposure_before,
                            method="score", compare="ratio").pvalue
    return float(ratio), float(low), float(high), float(p)


def rate_ratio_per_unit(panel: pd.DataFrame, unit: str, alpha: float = 0.05) -> pd.DataFrame:
    """Before/after rate ratio per unit. `panel` has unit, post (bool), count and exposure."""
    agg = (panel.groupby([unit, "post"], observed=True)[["count", "exposure"]].sum()
           .unstack("post"))
    # A unit needs both periods (thin data may lack the years before the start).
    agg = agg.reindex(columns=pd.MultiIndex.from_product([["count", "exposure"], [False, True]]))
    agg = agg.dropna()
    rows = []
    for key, r in agg.iterrows():  # one row per school: tens, not pupils
        ratio, low, high, p = rate_ratio_two_periods(
            int(r[("count", False)]), float(r[("exposure", False)]),
            int(r[("count", True)]), float(r[("exposure", True)]), alpha)
        rows.append({unit: key, "count_before": int(r[("count", False)]),
                     "exposure_before": float(r[("exposure", False)]),
                     "count_after": int(r[("count", True)]),
                     "exposure_after": float(r[("exposure", True)]),
                     "rate_ratio": ratio, "ci_low": low, "ci_high": high, "p_value": p})
    return pd.DataFrame(rows, columns=[unit, "count_before", "exposure_before", "count_after",
                                       "exposure_after", "rate_ratio", "ci_low", "ci_high",
                                       "p_value"])


def between_school_interval(records: pd.DataFrame, num: str, den: str | None, by: list[str],
                            level: float = 0.95) -> pd.DataFrame:
    """A ratio of sums per group (sum(num) / sum(den), den a count of records when None) with
    its interval over schools: the linearised ratio estimator with schools as clusters and a t
    critical value on G-1 degrees of freedom, so that a band shows how much the value would move
    with other schools, not with other pupils alone. Vectorised per group; NaN with < 2 schools."""
    from scipy import stats

    r = records.assign(_num=records[num].astype(float),
                       _den=1.0 if den is None else records[den].astype(float))
    school = r.groupby([*by, "school_id"], observed=True)[["_num", "_den"]].sum().reset_index()
    total = school.groupby(by, observed=True)[["_num", "_den"]].sum()
    ratio = total["_num"] / total["_den"]
    school = school.join(ratio.rename("_ratio"), on=by)
    school["_u"] = (school["_num"] - school["_ratio"] * school["_den"]) ** 2
    g = school.groupby(by, observed=True).agg(_ss=("_u", "sum"), _g=("school_id", "nunique"))
    se = np.sqrt(g["_g"] / (g["_g"] - 1).where(g["_g"] > 1) * g["_ss"]) / total["_den"]
    t = stats.t.ppf(0.5 + level / 2, (g["_g"] - 1).where(g["_g"] > 1))
    return pd.DataFrame({"value": ratio, "low": ratio - t * se, "high": ratio + t * se}
                        ).reset_index()
