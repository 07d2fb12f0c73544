"""The care-report analysis recovers the effect the synthetic generator plants."""

import pytest

from evaluation import care_reports
from evaluation.design import school_design
from evaluation.notebook import setup


def _analysis(school_year="2014-2015", overrides=()):
    run = setup("lekstroom", school_year, "", list(overrides))
    return care_reports.analyse(run.data.tables, run.params, run.params_dir)


@pytest.fixture(scope="module")
def default():
    return _analysis()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_difference_in_differences_recovers_the_planted_eighty_percent_drop(seed):
    a = _analysis(overrides=[f"synthetic.seed={seed}"])
    assert a.did.ci_low <= 0.2 <= a.did.ci_high
    assert a.did.p_value < 0.001


def test_pooled_before_after_recovers_the_planted_drop(default):
    assert default.pooled.ci_low <= 0.2 <= default.pooled.ci_high


def test_without_a_planted_effect_the_interval_covers_no_change():
    a = _analysis(overrides=["synthetic.effects.care_report_rate_ratio=1.0"])
    assert a.did.ci_low <= 1.0 <= a.did.ci_high
    assert 0.75 < a.did.estimate < 1.3


def test_a_weaker_planted_effect_is_recovered_as_weaker():
    a = _analysis(overrides=["synthetic.effects.care_report_rate_ratio=0.6"])
    assert a.did.ci_low <= 0.6 <= a.did.ci_high


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


def test_summary_states_the_estimates_in_dutch(default):
    text = care_reports.summary_markdown(default)
    assert care_reports._change(default.did.estimate) in text
    assert "12 scholen" in text
    assert "." not in text.split("per 100 leerlingen")[0].split("van **")[-1]  # decimal comma
