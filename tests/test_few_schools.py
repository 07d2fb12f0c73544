"""Few-school inference (issue 16): one policy decides the inference of every comparison, the
records say which ran, the intervals keep their size with few (treated) schools, durations are
stated in days and recover the planted change, and the method section follows the settings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from evaluation.analysis import durations, methods
from evaluation.analysis.estimates import estimate_all
from evaluation.analysis.fixed_effects import ols_point, ols_twfe
from evaluation.analysis.randomisation import randomisation_inference
from evaluation.analysis.survival import logrank, median_survival
from evaluation.data.synthetic import median_days_truth
from evaluation.params import load_params, load_synthetic
from evaluation.registry import INDICATORS
from evaluation.report.findings import verdict
from evaluation.report.method import method_text

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import simulation as sim  # noqa: E402  (the few-school null panel of the benchmark)

REGION, YEAR = "lekstroom", "2014-2015"


@pytest.fixture(scope="module")
def lekstroom(synthetic_tables):
    return estimate_all(synthetic_tables, load_params(REGION, school_year=YEAR))


# --- the policy ------------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "comparison", "counts", "expected"), [
    ("rate", methods.DID, (60, 30, 30), "cluster_robust"),
    ("rate", methods.DID, (22, 11, 11), "cluster_jackknife"),
    ("proportion", methods.DID, (22, 11, 11), "wild_bootstrap"),
    ("duration", methods.DID, (22, 11, 11), "cluster_bootstrap"),
    ("rate", methods.DID, (12, 2, 10), "randomisation"),
    ("scale", methods.DID, (12, 8, 4), "randomisation"),      # few comparison schools too
    ("proportion", methods.BEFORE_AFTER, (2, 2, 0), "cluster_jackknife"),
    ("duration", methods.BEFORE_AFTER, (3, 3, 0), "cluster_jackknife"),
    ("proportion", methods.BEFORE_AFTER, (11, 11, 0), "wild_bootstrap"),
    ("rate", methods.EVENT_STUDY, (22, 11, 11), "cluster_jackknife"),
])
def test_one_policy_decides_the_inference(kind, comparison, counts, expected):
    assert methods.inference_for(kind, comparison, *counts) == expected
    assert expected in methods.INFERENCE


def test_region_records_name_their_inference(lekstroom):
    t = lekstroom.table
    est = t[t["estimate"].notna()]
    assert len(est) > 20
    assert est["inference"].isin(list(methods.INFERENCE)).all(), est["inference"].unique()
    assert est["n_clusters"].max() < 50
    assert not (est["inference"] == "cluster_robust").any()  # a region has fewer than 50 schools
    drawn = est[est["inference"].isin(methods.DRAWING)]
    assert len(drawn) > 0
    np.testing.assert_allclose(drawn["p_value_bound"].astype(float),
                               1 / drawn["draws"].astype(float))
    assert (drawn["p_value"] >= drawn["p_value_bound"] - 1e-12).all()
    assert (est["p_value"] > 0).all()
    boot = est[est["inference"].isin(["wild_bootstrap", "cluster_bootstrap"])]
    assert (boot["draws"] == lekstroom.params.analysis.bootstrap_draws).all()
    assert est.loc[est["inference"] == "cluster_jackknife", "draws"].isna().all()


def test_durations_are_days_and_cover_the_planted_change(lekstroom):
    t = lekstroom.table.set_index(["indicator", "comparison"])
    truth = median_days_truth(load_synthetic())
    for ind in ("days_signal_to_help", "days_to_consent"):
        did = t.loc[(ind, methods.DID)]
        assert did["unit"] == "dagen"
        assert did["ci_low"] <= truth[ind]["change"] <= did["ci_high"], (ind, did.to_dict())
        assert did["ci_low"] < did["estimate"] < did["ci_high"] or did["estimate"] in (
            did["ci_low"], did["ci_high"])
        assert t.loc[(ind, methods.DID_HAZARD), "unit"] == "hazard ratio"


def test_many_schools_setting_gives_crv1(synthetic_tables):
    p = load_params(REGION, school_year=YEAR, overrides=["analysis.few_schools=10"])
    t = estimate_all(synthetic_tables, p, indicators=["care_reports_per_100",
                                                      "days_signal_to_help"]).table
    did = t[t["comparison"] == methods.DID].set_index("indicator")["inference"]
    assert did["care_reports_per_100"] == "cluster_robust"
    assert did["days_signal_to_help"] == "cluster_bootstrap"  # a median has no sandwich


def test_one_pilot_school_is_never_confirmed(synthetic_tables):
    p = load_params("zuid-kennemerland", school_year="2016-2017", municipality="bloemendaal")
    es = estimate_all(synthetic_tables, p)
    t = es.table
    did = t[(t["comparison"] == methods.DID) & t["estimate"].notna()]
    assert len(did) > 3
    assert (did["inference"] == "randomisation").all()
    assert (did["p_value"] >= did["p_value_bound"]).all()
    assert (did["p_value_bound"] >= 1 / did["draws"] - 1e-12).all()
    assert did["draws"].max() <= 12  # one pilot among a handful of schools: few assignments
    assert did["note"].str.startswith("niet te scheiden").all()
    for _, row in did.iterrows():
        row = row.copy()
        row["significant"] = row["p_value"] < 0.05
        assert "bevestigd" not in verdict(INDICATORS[row["indicator"]], row)
    # before/after of one pilot school: the jackknife has no school to leave out
    ba = t[t["comparison"] == methods.BEFORE_AFTER]
    assert ba["estimate"].isna().all()


# --- size with few (treated) schools ---------------------------------------------------------

def test_randomisation_keeps_its_size_where_crv1_does_not():
    """Two pilot schools among ten, no effect: CRV1 rejects far more often than 5%, the
    randomisation test (45 assignments, exact under exchangeability) does not."""
    rng = np.random.default_rng(7)
    reps = 200
    crv1 = rand = 0
    for _ in range(reps):
        d = sim.few_school_panel(rng, 10, 2)
        school, year = d["school_id"].to_numpy(), d["school_year"].to_numpy()
        _, _, _, p = ols_twfe(d["y"].to_numpy(), d["treated"].to_numpy(), school, year,
                              inference="cluster_robust")
        crv1 += p < 0.05
        res = randomisation_inference(
            d, lambda x: ols_point(x["y"].to_numpy(), x["treated"].to_numpy(),
                                   x["school_id"].to_numpy(), x["school_year"].to_numpy()),
            "2017-2018", baseline_years=2, max_assignments=999, seed=1)
        assert res["draws"] == 45 and res["p_value_bound"] == pytest.approx(1 / 45)
        rand += res["p_value"] < 0.05
    assert crv1 / reps > 0.10, crv1 / reps
    assert rand / reps <= 0.09, rand / reps


def test_one_treated_school_cannot_reach_significance():
    p = sim.few_school_p_values(sim.few_school_panel(np.random.default_rng(1), 10, 1))
    assert p["randomisation"] >= 0.1  # ten assignments: the smallest p is 1/10


def test_jackknife_before_after_is_wide_with_two_schools():
    """A before/after of two schools: the jackknife's t(1) interval covers the true zero far more
    often than CRV1's normal one."""
    rng = np.random.default_rng(11)
    reps = 300
    cover_jk = cover_crv1 = 0
    for _ in range(reps):
        d = sim.few_school_panel(rng, 2, 2)
        d = d.assign(post=(d["year"] >= 2016).astype("int64"))
        school = d["school_id"].to_numpy()
        # the 0.2-a-year trend is part of the "effect" a before/after cannot separate
        y = d["y"].to_numpy() - 0.2 * (d["year"].to_numpy() - 2014)
        _, lo, hi, _ = ols_twfe(y, d["post"].to_numpy(), school, None,
                                inference="cluster_jackknife")
        cover_jk += lo <= 0 <= hi
        _, lo, hi, _ = ols_twfe(y, d["post"].to_numpy(), school, None,
                                inference="cluster_robust")
        cover_crv1 += lo <= 0 <= hi
    assert cover_jk / reps >= 0.90, cover_jk / reps
    assert cover_crv1 / reps < cover_jk / reps


# --- durations -------------------------------------------------------------------------------

def test_cell_medians_are_the_kaplan_meier_medians(lekstroom):
    frame = lekstroom.data["days_signal_to_help"]
    cell = durations.cells(frame, YEAR)
    got = durations.summaries(frame, YEAR, 365).set_index(["group", "period"])["median"]
    for k, (group, period) in durations.CELL_NAMES.items():
        rows = frame[(cell == k) & frame["days"].notna().to_numpy()]
        if rows.empty:
            continue
        assert got[(group, period)] == median_survival(rows)["median"].iloc[0]


def test_median_is_the_midpoint_where_the_curve_is_flat_at_one_half():
    days = np.array([3.0, 5, 8, 13, 21, 34])  # no censoring: the ordinary median, 10.5
    frame = pd.DataFrame({"days": days, "event": 1.0})
    assert median_survival(frame)["median"].iloc[0] == np.median(days) == 10.5
    times, d, c = durations._cell_counts(days, np.ones(6), np.zeros(6, int), 1)
    assert durations._km_summaries(times, d, c, None)[0][0] == 10.5
    odd = pd.DataFrame({"days": days[:5], "event": 1.0})
    assert median_survival(odd)["median"].iloc[0] == 8.0
    assert np.isnan(durations.km_median(np.array([]), np.empty((1, 0))))[0]  # no days at all


def test_logrank_p_stays_positive_on_extreme_data():
    n = 4000
    frame = pd.DataFrame({"days": np.r_[np.full(n, 5.0), np.full(n, 300.0)],
                          "event": 1.0, "group": np.repeat(["a", "b"], n)})
    stat, p = logrank(frame, "group")
    assert 0 < p < 1e-300  # beyond what a double holds: the smallest positive, not 0
    rng = np.random.default_rng(3)
    moderate = pd.DataFrame({"days": np.r_[rng.exponential(20, 400), rng.exponential(60, 400)],
                             "event": 1.0, "group": np.repeat(["a", "b"], 400)})
    stat, p = logrank(moderate, "group")
    assert 0 < p < 1e-16  # what 1 - cdf would round to 0
    assert p == pytest.approx(chi2.sf(stat, 1), rel=1e-12)


# --- the method section follows the settings -------------------------------------------------

def test_method_text_follows_the_settings(synthetic_tables, lekstroom):
    text = method_text(lekstroom)
    assert "Met minder dan 50 scholen" in text
    assert "9.999 trekkingen" in text
    assert "Met minder dan 5 pilot- of vergelijkingsscholen" in text
    p = load_params(REGION, school_year=YEAR, overrides=[
        "analysis.few_schools=10", "analysis.bootstrap_draws=1999", "analysis.few_treated=3"])
    other = method_text(estimate_all(synthetic_tables, p, indicators=[
        "care_reports_per_100", "days_signal_to_help"]))
    assert "Met minder dan 10 scholen" in other
    assert "1.999 trekkingen" in other
    assert "Met minder dan 3 pilot- of vergelijkingsscholen" in other
    assert "CRV1" in other


@pytest.mark.parametrize("indicator", ["double_intake_share", "days_signal_to_help",
                                       "care_reports_per_100"])
def test_batched_reassignments_equal_one_refit_each(synthetic_tables, indicator):
    """The matrix form of the randomisation test (all reassignments at once) gives the same
    p-value and interval as refitting the model for every reassignment."""
    from evaluation.analysis import comparisons

    p = load_params("lekstroom", school_year=YEAR, municipality="vianen")
    es = estimate_all(synthetic_tables, p, indicators=[indicator])
    data = es.data[indicator]
    a = p.analysis
    kind = INDICATORS[indicator].kind
    batched = comparisons.difference_in_differences(INDICATORS[indicator], data, p)
    assert batched.inference == "randomisation"
    looped = randomisation_inference(
        data, lambda d: comparisons.did_statistic(kind, d, YEAR, a.duration_horizon_days),
        YEAR, a.baseline_years, a.alpha, a.max_reassignments, a.bootstrap_seed)
    assert batched.p_value == pytest.approx(looped["p_value"], abs=1e-12)
    assert batched.draws == looped["draws"]
    back = np.exp if kind == "rate" else (lambda v: v)  # a rate is tested on the log scale
    for field in ("estimate", "ci_low", "ci_high"):
        assert getattr(batched, field) == pytest.approx(back(looped[field]), abs=1e-9)


def test_tables_show_the_p_value_floor_and_keep_an_estimate_without_interval(synthetic_tables):
    from evaluation.report.findings import estimates_table, p_text

    assert p_text(1 / 66, 1 / 66) == "0,015 (laagst mogelijk)"
    assert p_text(0.2, 1 / 66) == "0,200"
    assert p_text(1e-4, 1 / 9999) == "< 0,001"
    p = load_params("zuid-kennemerland", school_year="2016-2017", municipality="bloemendaal")
    es = estimate_all(synthetic_tables, p, indicators=["double_intake_share"])
    row = estimates_table(es, ["double_intake_share"]).set_index("Vergelijking").loc[methods.DID]
    assert row["Effect"] != "–" and row["p"] != "–"  # the estimate and its p stand
    assert row["95%-interval"] == "–"  # too few placebo assignments for an interval
    assert row["Toelichting"].startswith("niet te scheiden")


def test_placebo_estimates_are_remembered_only_for_the_same_comparison_records(synthetic_tables):
    """The placebo estimates are computed once per statistic and comparison records: a second
    call (another robustness specification) gets the same interval without recomputing them,
    and a changed comparison record is a new key."""
    from evaluation.analysis import comparisons, randomisation

    p = load_params("lekstroom", school_year=YEAR, municipality="vianen")
    es = estimate_all(synthetic_tables, p, indicators=["double_intake_share"])
    data = es.data["double_intake_share"]
    a = p.analysis
    kind = INDICATORS["double_intake_share"].kind
    calls = []

    def statistic(d):
        calls.append(len(d))
        return comparisons.did_statistic(kind, d, YEAR, a.duration_horizon_days)

    def run(records):
        return randomisation_inference(records, statistic, YEAR, a.baseline_years, a.alpha,
                                       a.max_reassignments, a.bootstrap_seed,
                                       statistic_key=("test", kind))

    randomisation._PLACEBOS.clear()
    first = run(data)
    n_first = len(calls)
    again = run(data)
    assert again == first
    assert len(calls) < 2 * n_first  # the placebos were not computed again
    changed = data.copy()
    comparison = changed.index[changed["group"] == "comparison"][0]
    changed.loc[comparison, "success"] = not changed.loc[comparison, "success"]
    calls.clear()
    run(changed)
    assert len(calls) == n_first  # a new key: computed afresh
    randomisation._PLACEBOS.clear()
    assert run(data) == first
