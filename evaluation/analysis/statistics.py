"""Estimators. Each returns an `Estimate` that carries its own method, n and interval, so that a
report can state them without recomputing anything.

statsmodels does the numerics: exact-score intervals for two Poisson rates, and Poisson GLMs with
school-clustered standard errors for pooled before/after and difference-in-differences.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
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
    return pd.DataFrame(rows)


def poisson_effect(panel: pd.DataFrame, treatment: str, fixed_effects: list[str], cluster: str,
                   alpha: float = 0.05) -> tuple[float, float, float, float]:
    """exp(beta) of `treatment` in a Poisson GLM with fixed effects, log-exposure offset and
    standard errors clustered by `cluster`. Returns (rate ratio, low, high, p)."""
    dummies = [pd.get_dummies(panel[fe].astype("string"), prefix=fe, drop_first=True, dtype=float)
               for fe in fixed_effects]
    X = pd.concat([panel[[treatment]].astype(float), *dummies], axis=1)
    X = sm.add_constant(X, has_constant="add")
    y = panel["count"].astype(float)
    groups = pd.factorize(panel[cluster])[0]
    model = sm.GLM(y, X, family=sm.families.Poisson(), offset=np.log(panel["exposure"].astype(float)))
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    beta = fit.params[treatment]
    low, high = fit.conf_int(alpha=alpha).loc[treatment]
    return float(np.exp(beta)), float(np.exp(low)), float(np.exp(high)), float(fit.pvalues[treatment])
