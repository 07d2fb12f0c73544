"""The care-report analysis recovers the effect the synthetic generator plants."""

import pytest

from evaluation.analysis.care_reports import analyse
from evaluation.analysis.design import school_design
from evaluation.analysis.estimates import estimate_all
from evaluation.analysis.methods import BEFORE_AFTER, DID, ITS
from evaluation.report import care_reports
from evaluation.report.notebook import setup

INDICATOR = "care_reports_per_100"


def _run(school_year="2014-2015", overrides=()):
    return setup("lekstroom", school_year, "", list(overrides))


def _analysis(school_year="2014-2015", overrides=()):
    run = _run(school_year, overrides)
    return analyse(run.data.tables, run.params, run.params_dir)


def _estimates(overrides=()):
    run = _run(overrides=overrides)
    return estimate_all(run.data.tables, run.params, run.params_dir, indicators=[INDICATOR])


@pytest.fixture(scope="module")
def default():
    return _analysis()


@pytest.fixture(scope="module")
def default_estimates():
    return _estimates()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_difference_in_differences_recovers_the_planted_eighty_percent_drop(seed):
    did = _estimates([f"synthetic.seed={seed}"]).get(INDICATOR, DID)
    assert did["ci_low"] <= 0.2 <= did["ci_high"]
    assert did["p_value"] < 0.001


@pytest.mark.parametrize("comparison", [BEFORE_AFTER, ITS])
def test_pooled_before_after_and_time_series_recover_the_planted_drop(default_estimates,
                                                                       comparison):
    row = default_estimates.get(INDICATOR, comparison)
    assert row["ci_low"] <= 0.2 <= row["ci_high"]


def test_without_a_planted_effect_the_interval_covers_no_change():
    did = _estimates(["synthetic.effects.care_report_rate_ratio=1.0"]).get(INDICATOR, DID)
    assert did["ci_low"] <= 1.0 <= did["ci_high"]
    assert 0.75 < did["estimate"] < 1.3


def test_a_weaker_planted_effect_is_recovered_as_weaker():
    did = _estimates(["synthetic.effects.care_report_rate_ratio=0.6"]).get(INDICATOR, DID)
    assert did["ci_low"] <= 0.6 <= did["ci_high"]


def test_per_school_table_has_every_pilot_school_and_hides_small_counts(default):
    table = care_reports.school_table(default)
    assert len(table) == 12
    after = table["Meldingen 2014-2015"]
    raw_after = default.per_school.set_index("school_name").loc[table["School"], "count_after"]
    for shown, raw in zip(after, raw_after, strict=True):
        if raw < 10:
            assert shown == "·"
        else:
            assert int(shown.replace(".", "")) % 5 == 0


def test_comparison_group_holds_no_school_treated_by_the_report_year():
    run = setup("lekstroom", "2016-2017")
    design = school_design(run.params, run.params_dir)
    comparison = design[design["group"] == "comparison"]
    # Zuid-Kennemerland's pilot schools start in August 2016: not a control for 2016-2017.
    assert set(comparison["school_id"]) == {"ZK03", "ZK04", "ZK07", "ZK09", "ZK10"}
    assert (design["group"] == "pilot").sum() == 12


def test_summary_states_the_estimates_in_dutch(default, default_estimates):
    text = care_reports.summary_markdown(default, default_estimates)
    assert care_reports._change(default_estimates.get(INDICATOR, DID)["estimate"]) in text
    assert "12 scholen" in text
    assert "." not in text.split("per 100 leerlingen")[0].split("van **")[-1]  # decimal comma
