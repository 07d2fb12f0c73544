"""Survey scales: Cronbach's alpha, item statistics and scale scores."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from evaluation.analysis.scales import (
    cronbach_alpha,
    cronbach_alpha_ci,
    item_statistics,
    pivot_items,
    scale_scores,
)
from evaluation.data.synthetic import SURVEY_ITEMS, truth
from evaluation.params import load_regions, load_synthetic


def long_table(values: np.ndarray, role: str = "school") -> pd.DataFrame:
    """Respondents x items as the long survey_responses table (NaN = not answered)."""
    n, k = values.shape
    frame = pd.DataFrame(values, columns=[f"item{j}" for j in range(k)])
    frame["respondent_id"] = [f"R{i:04d}" for i in range(n)]
    out = frame.melt(id_vars="respondent_id", var_name="item", value_name="value")
    return out.assign(respondent_role=role, school_id="S01", school_year="2015-2016",
                      value=pd.array(out["value"].round(), dtype="Int32"))


def test_alpha_hand_computed():
    # item variances 5/3, 5/3, 4/3 (sum 14/3); totals 4, 7, 9, 12 have variance 34/3:
    # alpha = 3/2 x (1 - 14/34) = 15/17
    wide = pd.DataFrame({"a": [1, 2, 3, 4], "b": [1, 3, 2, 4], "c": [2, 2, 4, 4]})
    assert cronbach_alpha(wide) == pytest.approx(15 / 17)
    a, low, high = cronbach_alpha_ci(wide)
    assert a == pytest.approx(15 / 17) and low < a < high <= 1


def test_alpha_perfectly_correlated_and_independent_items():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 1))
    assert cronbach_alpha(pd.DataFrame(np.repeat(x, 5, axis=1))) == pytest.approx(1.0)
    independent = pd.DataFrame(rng.normal(size=(2000, 5)))
    a, low, high = cronbach_alpha_ci(independent)
    assert abs(a) < 0.05 and low < 0 < high


def test_alpha_uses_complete_respondents_and_feldt_interval_narrows():
    rng = np.random.default_rng(1)
    latent = rng.normal(size=(1000, 1))
    wide = pd.DataFrame(latent + rng.normal(size=(1000, 4)))
    full = cronbach_alpha_ci(wide)
    holed = wide.copy()
    holed.iloc[::10, 0] = np.nan
    assert cronbach_alpha(holed) == pytest.approx(cronbach_alpha(holed.dropna()))
    small = cronbach_alpha_ci(wide.iloc[:100])
    assert full[2] - full[1] < small[2] - small[1]
    assert full[1] < 0.8 < full[2]  # k=4 items, loading 1, noise 1: alpha = 4/(4+1) = 0.8


def test_item_statistics_and_scores_on_a_small_table():
    values = np.array([[1, 1, 2], [2, 3, 2], [3, 2, 4], [4, 4, 4], [5, np.nan, np.nan]])
    responses = long_table(values)
    stats = item_statistics(responses).set_index("item")
    assert stats["n"].tolist() == [5, 4, 4]
    assert stats.loc["item1", "missing_share"] == pytest.approx(0.2)
    assert stats.loc["item0", "mean"] == pytest.approx(3.0)
    # on the four complete respondents: alpha without item2 is that of items 0 and 1
    assert stats.loc["item2", "alpha_if_deleted"] == pytest.approx(
        cronbach_alpha(pd.DataFrame(values[:4, :2])))
    rest = values[:4, 0] + values[:4, 1]
    assert stats.loc["item2", "item_rest_corr"] == pytest.approx(np.corrcoef(values[:4, 2], rest)[0, 1])

    scores = scale_scores(responses).set_index("respondent_id")
    assert len(scores) == 5
    assert scores.loc["R0001", "score"] == pytest.approx(7 / 3)
    assert np.isnan(scores.loc["R0004", "score"])  # one of three items: less than half
    assert scores.loc["R0004", "n_items"] == 1
    assert {"school_id", "school_year", "respondent_role"} <= set(scores.columns)


def test_pivot_keeps_missing_answers():
    responses = long_table(np.array([[1, np.nan], [2, 3]]))
    wide = pivot_items(responses)
    assert wide.shape == (2, 2)
    assert wide.isna().sum().sum() == 1


def test_synthetic_scales(synthetic_tables):
    responses = synthetic_tables["survey_responses"]
    stats = item_statistics(responses)
    for role, items in SURVEY_ITEMS.items():
        assert sorted(stats.loc[stats["respondent_role"] == role, "item"]) == sorted(items)
    assert stats["missing_share"].between(0, 0.1).all()
    assert (stats["item_rest_corr"] > 0.3).all()
    for role in SURVEY_ITEMS:
        a, low, high = cronbach_alpha_ci(pivot_items(responses, role))
        assert 0 < low < a < high < 1


def test_synthetic_school_satisfaction_rises_after_start(synthetic_tables):
    """School staff's scores at pilot schools after their start, against the same schools before
    and the other schools in the same year (school and year fixed effects, standard errors
    clustered by school): up by about the planted shift of the latent score."""
    regions, config = load_regions(), load_synthetic()
    shift = truth(regions, config)["effects"]["satisfaction_shift"]["value"]
    starts = {s.id: s.pilot_start.year if s.pilot_start else 10_000
              for r in regions for s in r.schools}
    scores = scale_scores(synthetic_tables["survey_responses"], "school").dropna(subset=["score"])
    year = scores["school_year"].str.slice(0, 4).astype(int)
    scores = scores.assign(treated=(year >= scores["school_id"].map(starts)).astype(int))
    fit = smf.ols("score ~ treated + C(school_id) + C(school_year)", scores).fit(
        cov_type="cluster", cov_kwds={"groups": pd.factorize(scores["school_id"])[0]})
    low, high = fit.conf_int().loc["treated"]
    assert fit.pvalues["treated"] < 0.001
    assert fit.params["treated"] == pytest.approx(shift, rel=0.3)
    assert low < shift < high
