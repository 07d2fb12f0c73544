"""Reference models for the tests: statsmodels with one dummy per school and school year.

The package fits its comparisons with the school effects absorbed (`fixed_effects`); these are the
textbook versions the absorbed models must equal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats


def fe_design(treatment: pd.Series, fixed: Sequence[pd.Series]) -> pd.DataFrame:
    """Constant, the treatment column `effect` and fixed-effect dummies (first level dropped)."""
    dummies = [pd.get_dummies(f.astype("string"), prefix=f.name, drop_first=True, dtype=float)
               for f in fixed]
    X = pd.concat([treatment.astype(float).rename("effect"), *dummies], axis=1)
    X.insert(0, "const", 1.0)
    return X


def poisson_effect(panel: pd.DataFrame, treatment: str, fixed_effects: list[str], cluster: str,
                   alpha: float = 0.05) -> tuple[float, float, float, float]:
    """exp(beta) of `treatment` in a Poisson GLM with fixed-effect dummies, log-exposure offset
    and standard errors clustered by `cluster` (CRV1): (rate ratio, low, high, p)."""
    X = fe_design(panel[treatment], [panel[fe] for fe in fixed_effects])
    groups = pd.factorize(panel[cluster])[0]
    model = sm.GLM(panel["count"].astype(float), X, family=sm.families.Poisson(),
                   offset=np.log(panel["exposure"].astype(float)))
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    low, high = fit.conf_int(alpha=alpha).loc["effect"]
    return (float(np.exp(fit.params["effect"])), float(np.exp(low)), float(np.exp(high)),
            float(fit.pvalues["effect"]))


def poisson_jackknife(panel: pd.DataFrame, treatment: str, fixed_effects: list[str],
                      cluster: str, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """The same GLM with a leave-one-cluster-out jackknife (CRV3), t(G-1): every refit by
    statsmodels with its own dummies."""
    def coef(frame: pd.DataFrame) -> float:
        X = fe_design(frame[treatment], [frame[fe] for fe in fixed_effects])
        X = X.loc[:, X.any(axis=0)]
        fit = sm.GLM(frame["count"].astype(float), X, family=sm.families.Poisson(),
                     offset=np.log(frame["exposure"].astype(float))).fit()
        return float(fit.params["effect"])

    b = coef(panel)
    groups = pd.unique(panel[cluster])
    loo = np.array([coef(panel[panel[cluster] != g]) for g in groups])
    G = len(groups)
    se = np.sqrt((G - 1) / G * np.sum((loo - b) ** 2))
    crit = stats.t.ppf(1 - alpha / 2, G - 1)
    p = 2 * stats.t.sf(abs(b / se), G - 1)
    return float(np.exp(b)), float(np.exp(b - crit * se)), float(np.exp(b + crit * se)), float(p)
