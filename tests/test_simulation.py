"""The Monte Carlo benchmark (benchmarks/simulation.py): its functions return what the script
prints, and a small run already shows the difference-in-differences intervals cover the planted
effect and that without effects few data sets come out significant.

The full run (200 and 100 data sets, minutes) is the script itself; see benchmarks/README.md.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

from evaluation.params import load_synthetic
from evaluation.registry import INDICATORS, PRIMARY

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# The script is imported by name from its folder (not from its file path): its worker processes
# are spawned and import it again by name, which needs the folder on sys.path (inherited).
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import simulation as sim  # noqa: E402

FAST = ("care_reports_per_100", "double_intake_share")  # a rate and a share
FAST_NULL = ("double_intake_share", "school_satisfaction")  # the two quickest primaries


def test_truths_follow_the_params():
    config = load_synthetic()
    e = config.effects
    truths = sim.known_truths(config)
    assert truths[("care_reports_per_100", sim.DID)] == e.care_report_rate_ratio
    assert truths[("specialised_referrals_per_100", sim.DID)] == pytest.approx(
        e.specialised_referral_rate_ratio)
    assert truths[("double_intake_share", sim.DID)] == pytest.approx(
        100 * (e.double_intake_pilot - e.double_intake_baseline))
    assert truths[("days_signal_to_help", sim.EVENT_STUDY)] == pytest.approx(-30.0)
    # A referral chance above 1 is capped: 0.30 * 5 -> 1, so the ratio is 1 / 0.30.
    big = load_synthetic(["synthetic.effects.specialised_referral_rate_ratio=5"])
    assert sim.referral_ratio(big) == pytest.approx(1 / 0.30)


def test_null_overrides_remove_every_pilot_effect():
    null = load_synthetic(list(sim.null_overrides()))
    truths = sim.known_truths(null)
    for (ind, comparison), value in truths.items():
        ratio_scale = INDICATORS[ind].kind == "rate" and comparison == sim.DID
        assert value == pytest.approx(1.0 if ratio_scale else 0.0), (ind, comparison)
    e = null.effects
    assert e.satisfaction_shift == 0
    assert e.consent_days_ratio == e.signal_to_help_ratio == 1
    # Not a pilot effect: left as configured.
    assert e.indication_free_duration_ratio == load_synthetic().effects.indication_free_duration_ratio


def test_functions_return_the_expected_structure(tmp_path):
    cov = sim.coverage(3, jobs=1, indicators=FAST)
    assert not cov.failed
    s = cov.summary
    assert {"indicator", "comparison", "unit", "truth", "reps", "coverage", "coverage_low",
            "coverage_high", "mean_estimate", "bias", "mean_ci_width"} <= set(s.columns)
    assert set(zip(s["indicator"], s["comparison"], strict=True)) == {
        ("care_reports_per_100", sim.DID), ("care_reports_per_100", sim.EVENT_STUDY),
        ("double_intake_share", sim.DID), ("double_intake_share", sim.EVENT_STUDY)}
    assert (s["reps"] == 3).all()
    assert s["coverage"].between(0, 1).all()
    assert (s["coverage_low"] <= s["coverage"]).all() and (s["coverage"] <= s["coverage_high"]).all()
    assert (s["mean_ci_width"] > 0).all()
    assert sorted(cov.replicates["seed"].unique()) == [1, 2, 3]
    assert cov.seconds > 0

    null = sim.false_positives(3, jobs=1, indicators=FAST_NULL)
    assert not null.failed
    assert null.reps == 3
    assert 0 <= null.any_significant <= 1
    assert null.any_interval[0] <= null.any_significant <= null.any_interval[1]
    assert list(null.per_indicator["indicator"]) == list(FAST_NULL)
    for col in ("significant_unadjusted", "significant_adjusted"):
        assert null.per_indicator[col].between(0, 1).all()
    # Holm never makes a test more significant than it was unadjusted.
    assert (null.per_indicator["significant_adjusted"]
            <= null.per_indicator["significant_unadjusted"]).all()
    assert sim.DID in set(null.per_comparison["comparison"])

    paths = sim.write_results(cov, null, tmp_path)
    assert all(p.exists() for p in paths)
    assert "mean est" in sim.format_coverage(cov)
    assert "adjusted" in sim.format_null(null)


@pytest.mark.slow
def test_small_simulation_covers_and_controls_false_positives():
    """30 data sets each: about 45 s on two idle cores.

    Bounds are loose because 30 data sets measure a rate only roughly: with a true coverage of
    95%, 30 intervals cover fewer than 80% (24 of 30) with probability 0.06%; with a family-wise
    error rate of 5%, 9 or more of 30 data sets (30%) are significant with probability 0.001%.
    The seeds are fixed (1..30), so the outcome does not change from run to run; the bounds say
    how far the estimators may drift before this test notices.
    """
    jobs = min(4, os.cpu_count() or 1)
    cov = sim.coverage(30, jobs=jobs, indicators=("care_reports_per_100",))
    assert not cov.failed
    row = cov.summary.set_index("comparison").loc[sim.DID]
    assert row["reps"] == 30
    assert row["coverage"] >= 0.80, cov.summary

    # For time, a family of two primaries that between them use both kinds of DiD interval
    # (cluster jackknife for the Poisson rate, wild cluster bootstrap for the linear share)
    # instead of all eight; Holm keeps the family-wise error rate at 5% for any family, so the
    # bound holds for this family as well. The script measures the full family.
    family = ["care_reports_per_100", "double_intake_share"]
    assert set(family) <= set(PRIMARY)
    null = sim.false_positives(30, jobs=jobs, indicators=family)
    assert not null.failed
    assert null.reps == 30
    assert np.isfinite(null.any_significant)
    assert null.any_significant < 0.30, null.per_indicator
