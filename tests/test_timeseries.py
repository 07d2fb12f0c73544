"""Interrupted time series: a planted level change recovered on simulated and synthetic counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.analysis.indicators import care_reports_per_month
from evaluation.analysis.timeseries import interrupted_time_series
from evaluation.data.synthetic import truth
from evaluation.params import load_regions, load_synthetic

#: School-year seasonality: almost nothing in the summer holiday, less at Christmas.
SEASON = {1: 1.1, 2: 0.9, 3: 1.1, 4: 1.0, 5: 0.9, 6: 1.0, 7: 0.15, 8: 0.2, 9: 1.2, 10: 1.0,
          11: 1.2, 12: 0.7}


def simulate(rate_ratio: float, seed: int, units: int = 20, trend: float = 0.03,
             rate_per_100: float = 8.0) -> pd.DataFrame:
    """Monthly Poisson counts for `units` schools over seven school years: school effects,
    seasonality, a yearly trend and a level change at staggered starts (a quarter of the schools
    never start)."""
    rng = np.random.default_rng(seed)
    months = pd.date_range("2010-08-01", "2017-07-01", freq="MS")
    unit = np.repeat(np.arange(units), len(months))
    month = np.tile(months.to_numpy(), units)
    pupils = np.repeat(rng.integers(400, 1500, units), len(months))
    starts = rng.choice(pd.to_datetime(["2013-08-01", "2014-08-01", "2015-08-01"]), units)
    starts = pd.Series(starts).where(np.arange(units) >= units // 4)
    start = starts.to_numpy()[unit]
    years = (month - month[0]) / np.timedelta64(365, "D")
    post = month >= start  # NaT: False
    school = np.exp(rng.normal(0, 0.25, units))[unit]
    season = pd.Series(month).dt.month.map(SEASON).to_numpy()
    mu = (rate_per_100 / 100 * pupils / 12 * school * season * (1 + trend) ** years
          * np.where(post, rate_ratio, 1.0))
    return pd.DataFrame({"school_id": [f"S{u:02d}" for u in unit], "month": month,
                         "reports": rng.poisson(mu), "pupils": pupils, "pilot_start": start})


def test_recovers_level_drop_seasonality_and_trend():
    result = interrupted_time_series(simulate(0.5, seed=1))
    level = result.level
    assert level.ci_low < 0.5 < level.ci_high
    assert level.p_value < 0.001
    assert level.unit == "rate ratio" and level.n_clusters == 20
    assert result.trend == pytest.approx(1.03, abs=0.03)
    season = pd.Series(SEASON)
    season = season / np.exp(np.log(season).mean())
    assert np.allclose(result.seasonality, season, rtol=0.15)
    assert result.seasonality[[7, 8]].max() < 0.3


def test_no_change_covers_one():
    level = interrupted_time_series(simulate(1.0, seed=2)).level
    assert level.ci_low < 1 < level.ci_high


def test_interval_coverage():
    """Clustered intervals cover the planted rate ratio in most of repeated samples."""
    hits = [(e.ci_low < 0.7 < e.ci_high)
            for e in (interrupted_time_series(simulate(0.7, seed=100 + i)).level
                      for i in range(30))]
    assert np.mean(hits) >= 0.85


def test_slope_change_and_series():
    data = simulate(0.5, seed=3)
    result = interrupted_time_series(data, slope_change=True)
    assert result.level.ci_low < 0.5 < result.level.ci_high
    assert result.slope is not None and result.slope.ci_low < 1 < result.slope.ci_high
    s = result.series
    assert len(s) == len(data)
    assert np.allclose(s.loc[~s["post"], "fitted"], s.loc[~s["post"], "counterfactual"])
    assert (s.loc[s["post"], "fitted"] < s.loc[s["post"], "counterfactual"]).all()
    # Poisson GLM with a constant: fitted counts add up to the observed ones
    assert s["fitted"].sum() == pytest.approx(s["count"].sum(), rel=1e-6)
    months = result.by_month()
    assert len(months) == data["month"].nunique()
    assert {"count_per_100", "fitted_per_100", "counterfactual_per_100"} <= set(months.columns)


def test_needs_a_start():
    data = simulate(1.0, seed=4).assign(pilot_start=pd.NaT)
    with pytest.raises(ValueError, match="start"):
        interrupted_time_series(data)


def test_synthetic_care_reports_drop_by_planted_ratio(synthetic_tables):
    """Care reports of Lekstroom's pilot schools per month, pupils per school year as exposure:
    the level change is close to the planted rate ratio. With the comparison schools added
    (they inform trend and seasonality) the interval covers it."""
    regions, config = load_regions(), load_synthetic()
    planted = truth(regions, config)["effects"]["care_report_rate_ratio"]["value"]
    starts = {s.id: pd.Timestamp(s.pilot_start) if s.pilot_start else pd.NaT
              for r in regions for s in r.schools}
    monthly = care_reports_per_month(synthetic_tables)
    monthly["pilot_start"] = monthly["school_id"].map(starts)
    lekstroom = {s.id for r in regions if r.id == "lekstroom" for s in r.pilot_schools}

    pilot = interrupted_time_series(monthly[monthly["school_id"].isin(lekstroom)])
    assert pilot.level.n_clusters == len(lekstroom)
    assert pilot.level.ci_high < 1 and pilot.level.p_value < 0.001
    assert pilot.level.estimate == pytest.approx(planted, abs=0.06)

    everyone = interrupted_time_series(monthly)
    assert everyone.level.ci_low < planted < everyone.level.ci_high
    assert everyone.seasonality[[7, 8]].max() < 0.5 * everyone.seasonality.median()
