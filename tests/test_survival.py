"""Durations with censoring: recovered truths on simulated data and on the synthetic data set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.duration.hazard_regression import PHReg

from evaluation.analysis.survival import (
    cox_effect,
    cox_model,
    durations,
    kaplan_meier,
    logrank,
    median_survival,
    score_residuals,
)
from evaluation.data.datamodel import school_year_of
from evaluation.data.synthetic import DURATION_SHAPE, SIGNAL_TO_HELP_SHAPE, truth
from evaluation.params import load_regions, load_synthetic


def simulate(n: int, hazard_ratio: float, shape: float = 1.0, scale: float = 100.0,
             seed: int = 0, clusters: int = 20) -> pd.DataFrame:
    """Weibull durations (exponential for shape 1) with proportional hazards and independent
    censoring: exponential dropout and an administrative end at 300 days; whole days, as in the
    data. The treated scale is scale * hazard_ratio ** (-1 / shape)."""
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < 0.5
    scales = scale * np.where(treated, hazard_ratio ** (-1 / shape), 1.0)
    t = scales * rng.weibull(shape, n)
    c = np.minimum(rng.exponential(2 * scale, n), 300.0)
    return pd.DataFrame({
        "days": np.ceil(np.minimum(t, c)),
        "event": (t <= c).astype(int),
        "treated": treated.astype(int),
        "cluster": rng.integers(0, clusters, n),
    })


# --- durations ---------------------------------------------------------------------------------


def test_durations_censor_ongoing_at_extraction():
    frame = pd.DataFrame({
        "start_date": pd.to_datetime(["2016-01-01", "2016-01-01", "2016-01-01", "2017-09-01"]),
        "end_date": pd.to_datetime(["2016-01-11", None, "2017-12-31", None]),
    })
    out = durations(frame, extraction_date="2017-07-31")
    assert len(out) == len(frame)
    assert out["event"].tolist() == [1, 0, 0, 0]
    # ongoing and ended-after-extraction: at risk until the extraction date
    assert out["days"].tolist()[:3] == [10.0, 577.0, 577.0]
    assert np.isnan(out["days"].iloc[3])  # starts after the extraction: not observable


def test_durations_need_extraction_date_for_ongoing():
    frame = pd.DataFrame({"start_date": pd.to_datetime(["2016-01-01"]), "end_date": [pd.NaT]})
    with pytest.raises(ValueError, match="extraction_date"):
        durations(frame)


# --- Kaplan-Meier, median, logrank ---------------------------------------------------------------


def test_censored_rows_are_kept():
    data = simulate(800, 1.5, seed=1)
    assert 0.1 < 1 - data["event"].mean() < 0.6  # a real share is censored
    curve = kaplan_meier(data, "treated")
    first = curve.groupby("treated").head(1).set_index("treated")
    assert first["at_risk"].sum() == len(data)
    assert (first["survival"] == 1).all()
    assert curve["events"].sum() == data["event"].sum()  # censored rows are not counted as ended
    med = median_survival(data, "treated")
    assert med["n"].sum() == len(data)
    assert cox_model(data, "treated", cluster="cluster").model.exog.shape[0] == len(data)


def test_kaplan_meier_curve_and_median_recover_exponential_truth():
    data = simulate(2000, 2.0, seed=2)
    curve = kaplan_meier(data, "treated")
    assert (curve["ci_low"] <= curve["survival"]).all()
    assert (curve["survival"] <= curve["ci_high"]).all()
    assert curve.groupby("treated")["survival"].apply(lambda s: s.is_monotonic_decreasing).all()
    med = median_survival(data, "treated").set_index("treated")
    # true medians: 100 ln 2 and 50 ln 2, plus half a day for the rounding up to whole days
    for group, true in ((0, 100 * np.log(2) + 0.5), (1, 50 * np.log(2) + 0.5)):
        assert med.loc[group, "ci_low"] <= true <= med.loc[group, "ci_high"]
    # at the true median the curve's interval covers 0.5
    ungrouped = kaplan_meier(data[data["treated"] == 0])
    at = ungrouped[ungrouped["time"] <= 100 * np.log(2)].iloc[-1]
    assert at["ci_low"] <= 0.5 <= at["ci_high"]


def test_median_is_nan_when_too_few_events():
    data = pd.DataFrame({"days": [5.0, 10, 20, 30], "event": [1, 0, 0, 0]})
    med = median_survival(data)
    assert np.isnan(med.loc[0, "median"])
    assert med.loc[0, "n"] == 4


def test_logrank_detects_a_real_difference():
    stat, p = logrank(simulate(600, 1.6, seed=3), "treated")
    assert stat > 0
    assert p < 0.001


def test_logrank_null_p_values_are_roughly_uniform():
    p = np.array([logrank(simulate(200, 1.0, seed=100 + i), "treated")[1] for i in range(100)])
    assert (p < 0.05).mean() < 0.10
    assert 0.35 < np.median(p) < 0.65


def test_logrank_within_strata():
    data = simulate(600, 1.6, seed=4)
    _, p = logrank(data, "treated", strata="cluster")
    assert p < 0.001


# --- Cox ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "hazard_ratio", "seed"), [(1.0, 2.0, 5), (1.5, 0.6, 11)])
def test_cox_recovers_hazard_ratio(shape, hazard_ratio, seed):
    data = simulate(2000, hazard_ratio, shape=shape, seed=seed)
    hr, low, high, p = cox_effect(data, "treated", cluster="cluster")
    assert low < hazard_ratio < high
    assert low < hr < high
    assert p < 0.001


def test_cox_interval_coverage():
    """Over repeated Weibull samples the clustered 95% interval covers the truth about 95% of
    the time (a single seed can miss: one in twenty should)."""
    hits = [low < 0.6 < high for low, high in
            (cox_effect(simulate(500, 0.6, shape=1.5, seed=200 + i), "treated",
                        cluster="cluster")[1:3] for i in range(30))]
    assert np.mean(hits) >= 0.85


def test_cox_null_interval_covers_one():
    hr, low, high, p = cox_effect(simulate(1000, 1.0, seed=7), "treated", cluster="cluster")
    assert low < 1 < high
    assert p > 0.05


def test_score_residuals_match_statsmodels():
    """Our vectorised residuals equal statsmodels' where those are defined, and are 0 (not NaN)
    for a row censored before the first event of its stratum; the clustered covariance then
    equals PHReg's own robust covariance."""
    data = simulate(300, 1.5, seed=8, clusters=15)
    data["stratum"] = data["cluster"] % 3
    first = data.index[data["stratum"] == 1][0]
    data.loc[first, ["days", "event"]] = [0.5, 0]
    x = data[["treated"]].to_numpy(float)
    model = PHReg(data["days"].to_numpy(float), x, status=data["event"].to_numpy(float),
                  strata=data["stratum"].to_numpy())
    fit = model.fit()
    theirs = model.score_residuals(fit.params)
    ours = score_residuals(x, data["days"].to_numpy(float), data["event"].to_numpy(float),
                           data["stratum"].to_numpy(), np.asarray(fit.params))
    defined = ~np.isnan(theirs).any(axis=1)
    assert (~defined).sum() >= 1
    np.testing.assert_allclose(ours[defined], theirs[defined], rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours[~defined], 0.0, atol=1e-12)

    clean = data[defined]  # without the rows statsmodels cannot handle
    ours_fit = cox_model(clean, "treated", strata="stratum", cluster="cluster")
    theirs_fit = PHReg(clean["days"].to_numpy(float), clean[["treated"]].to_numpy(float),
                       status=clean["event"].to_numpy(float), strata=clean["stratum"].to_numpy(),
                       ties="efron").fit(groups=clean["cluster"].to_numpy())
    np.testing.assert_allclose(ours_fit.bse, theirs_fit.bse, rtol=1e-8)


def test_vectorised_cox_fit_equals_statsmodels():
    """`cox_model` maximises PHReg's Efron partial likelihood with its own vectorised Newton
    steps: coefficients and naive standard errors equal statsmodels' fit, with ties, strata and
    dummies."""
    data = simulate(800, 1.7, seed=11, clusters=12)
    rng = np.random.default_rng(11)
    data["year"] = rng.choice(["a", "b", "c"], len(data))
    data["age"] = rng.normal(14, 1.5, len(data))
    assert data["days"].duplicated().sum() > 100  # many tied event times
    ours = cox_model(data, "treated", covariates=["age"], fixed_effects=["year"],
                     strata="cluster")
    exog = ours.model.exog
    theirs = PHReg(data["days"].to_numpy(float), exog, status=data["event"].to_numpy(float),
                   strata=pd.factorize(data["cluster"])[0], ties="efron").fit()
    np.testing.assert_allclose(np.asarray(ours.params), theirs.params, rtol=1e-7)
    np.testing.assert_allclose(np.asarray(ours.bse), theirs.bse, rtol=1e-6)


def test_cox_with_strata_and_fixed_effects():
    """Difference-in-differences form: strata (schools) with their own baseline, year dummies."""
    data = simulate(1500, 2.0, seed=9)
    rng = np.random.default_rng(9)
    data["year"] = rng.choice(["2014-2015", "2015-2016", "2016-2017"], len(data))
    hr, low, high, _ = cox_effect(data, "treated", fixed_effects=["year"], strata="cluster",
                                  cluster="cluster")
    assert np.isfinite([hr, low, high]).all()
    assert low < 2.0 < high


# --- the synthetic data set -------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted() -> dict:
    return truth(load_regions(), load_synthetic())


def test_indication_free_trajectories_end_sooner(synthetic_tables, planted):
    """Within the same level, indication-free help ends sooner. The generator scales gamma
    durations (shape DURATION_SHAPE) by the ratio r: medians scale by r, and the hazard ratio of
    ending lies between 1 / r (late) and r ** -shape (early)."""
    ratio = planted["effects"]["indication_free_duration_ratio"]["value"]
    data = durations(synthetic_tables["trajectories"], "start_date", "end_date",
                     planted["extraction_date"])
    assert (data["event"] == 0).any()
    data["free"] = data["indication_free"].astype(int)
    hr, low, high, p = cox_effect(data, "free", strata="level", cluster="school_id")
    assert low > 1 and p < 0.001
    assert 1 / ratio < hr < ratio ** -DURATION_SHAPE

    light = median_survival(data[data["level"] == "light"], "free").set_index("free")
    assert light.loc[1, "median"] < light.loc[0, "median"]
    # a conservative interval for the ratio of medians covers the planted ratio
    assert light.loc[1, "ci_low"] / light.loc[0, "ci_high"] < ratio \
        < light.loc[1, "ci_high"] / light.loc[0, "ci_low"]
    _, p_logrank = logrank(data, "free", strata="level")
    assert p_logrank < 0.001


def test_signal_to_help_shorter_at_pilot_schools_after_start(synthetic_tables, planted):
    """Difference-in-differences Cox model: treated = pilot school after its start, school years
    as fixed effects, schools as strata and clusters. Waits are gamma (shape
    SIGNAL_TO_HELP_SHAPE) scaled by the planted ratio r, so the hazard ratio lies between 1 / r
    and r ** -shape; the median wait halves."""
    ratio = planted["effects"]["signal_to_help_ratio"]["value"]
    starts = {s["school_id"]: s["pilot_start"] for s in planted["schools"]}
    data = durations(synthetic_tables["trajectories"], "signal_date", "start_date",
                     planted["extraction_date"])
    start = pd.to_datetime(data["school_id"].map(starts))
    data["treated"] = (data["signal_date"] >= start).astype(int)
    data["school_year"] = school_year_of(data["signal_date"])
    hr, low, high, p = cox_effect(data, "treated", fixed_effects=["school_year"],
                                  strata="school_id", cluster="school_id")
    assert low > 1 and p < 0.001
    assert 1 / ratio < hr < ratio ** -SIGNAL_TO_HELP_SHAPE
    med = median_survival(data, "treated").set_index("treated")
    assert med.loc[1, "median"] / med.loc[0, "median"] == pytest.approx(ratio, abs=0.1)
