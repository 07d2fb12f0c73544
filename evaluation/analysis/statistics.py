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
