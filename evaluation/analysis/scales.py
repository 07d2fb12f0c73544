"""Satisfaction survey scales: reliability, item statistics and a score per respondent.

The survey asks each role a handful of Likert items (1-5) about one thing, satisfaction with the
collaboration. Reporting the mean of those items as one score is only defensible if the items
hang together (Cronbach's alpha, item-rest correlations) and no item drags the scale down (alpha
if item deleted); these are the checks a reader of the report expects next to the scores.

Input everywhere is the long survey_responses table (respondent_id, respondent_role, school_id,
school_year, item, value; value may be missing), pivoted once to respondents x items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import f as f_dist

KEYS = ["respondent_id", "respondent_role", "school_id", "school_year"]


def pivot_items(responses: pd.DataFrame, role: str | None = None) -> pd.DataFrame:
    """Respondents x items (float, NaN = not answered), indexed by respondent, role, school and
    year. Items not asked of a role never appear as columns for it when `role` is given."""
    data = responses if role is None else responses[responses["respondent_role"] == role]
    values = data.set_index([*KEYS, "item"])["value"].astype("Float64").astype(float)
    out = values.unstack("item")
    out.columns = out.columns.astype(str)
    return out


def _alpha(items: np.ndarray) -> float:
    """Cronbach's alpha of complete rows: k/(k-1) x (1 - sum of item variances / total variance)."""
    n, k = items.shape
    if k < 2 or n < 2:
        return np.nan
    total = items.sum(axis=1).var(ddof=1)
    if total == 0:
        return np.nan
    return float(k / (k - 1) * (1 - items.var(axis=0, ddof=1).sum() / total))


def cronbach_alpha(wide: pd.DataFrame) -> float:
    """Cronbach's alpha of respondents x items, on respondents who answered every item.

    Listwise deletion is the usual convention (SPSS): alpha needs one covariance matrix, and
    pairwise covariances can make it fall outside its range.
    """
    return _alpha(wide.dropna().to_numpy(float))


def cronbach_alpha_ci(wide: pd.DataFrame, alpha: float = 0.05) -> tuple[float, float, float]:
    """Cronbach's alpha with Feldt's (1965) F-based interval: (alpha, ci_low, ci_high).

    `alpha` here is the significance level of the interval, as everywhere in this package.
    """
    complete = wide.dropna().to_numpy(float)
    n, k = complete.shape
    a = _alpha(complete)
    if np.isnan(a):
        return a, np.nan, np.nan
    df1, df2 = n - 1, (n - 1) * (k - 1)
    low = 1 - (1 - a) * f_dist.ppf(1 - alpha / 2, df1, df2)
    high = 1 - (1 - a) * f_dist.ppf(alpha / 2, df1, df2)
    return a, float(low), float(high)


def _item_statistics_one(items: pd.DataFrame) -> pd.DataFrame:
    """Item statistics for one role's respondents x items."""
    complete = items.dropna()
    total = complete.sum(axis=1)
    rest = (-complete).add(total, axis=0)  # per column: the sum of the other items
    out = pd.DataFrame({
        "n": items.notna().sum(),
        "mean": items.mean(),
        "sd": items.std(ddof=1),
        "missing_share": items.isna().mean(),
        "item_rest_corr": complete.corrwith(rest),
        "alpha_if_deleted": pd.Series({c: cronbach_alpha(complete.drop(columns=c))
                                       for c in items.columns}),
    })
    out.index.name = "item"
    return out


def item_statistics(responses: pd.DataFrame, role: str | None = None) -> pd.DataFrame:
    """Per role and item: n, mean, sd, missing_share, item_rest_corr, alpha_if_deleted.

    n, mean and sd use every answer; the missing share counts the role's respondents who left
    the item empty. Item-rest correlations and alpha if deleted use respondents who answered every
    item of their role (as `cronbach_alpha`). Items are per role: an item not asked of a role is
    not missing for it.
    """
    data = responses if role is None else responses[responses["respondent_role"] == role]
    parts = []
    for key, rows in data.groupby("respondent_role", observed=True):  # four roles at most
        stats = _item_statistics_one(pivot_items(rows).dropna(axis=1, how="all"))
        parts.append(stats.reset_index().assign(respondent_role=str(key)))
    out = pd.concat(parts, ignore_index=True)
    out["n"] = out["n"].astype("int64")
    return out[["respondent_role", "item", "n", "mean", "sd", "missing_share", "item_rest_corr",
                "alpha_if_deleted"]]


def scale_scores(responses: pd.DataFrame, role: str | None = None,
                 min_share: float = 0.5) -> pd.DataFrame:
    """One score per respondent: the mean of the answered items of their role.

    A respondent who answered fewer than `min_share` of the role's items gets no score (NaN):
    a mean of one or two items would not measure the same thing as the scale. Returns
    respondent_id, respondent_role, school_id, school_year, n_items (answered), score.
    """
    data = responses if role is None else responses[responses["respondent_role"] == role]
    data = data.assign(value=data["value"].astype("Float64").astype(float))
    per_role = data.groupby("respondent_role", observed=True)["item"].nunique()
    out = (data.groupby(KEYS, observed=True)["value"].agg(n_items="count", score="mean")
           .reset_index())
    needed = out["respondent_role"].map(per_role).astype(float) * min_share
    out["score"] = out["score"].where(out["n_items"] >= needed)
    out["n_items"] = out["n_items"].astype("int64")
    return out
