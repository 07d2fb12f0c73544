"""Conclusions and limitations generated from the estimates (issue 14, point 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.analysis import methods
from evaluation.analysis.estimates import estimate_all
from evaluation.params import load_params
from evaluation.report.conclusions import (
    conclusions_markdown,
    limitations_markdown,
    takeaway_markdown,
    verdicts,
)


@pytest.fixture(scope="module")
def es(synthetic_tables):
    return estimate_all(synthetic_tables, load_params("lekstroom", school_year="2014-2015"))


def _with(es, indicator: str, **values):
    """The estimate set with one difference-in-differences record changed."""
    t = es.table.copy()
    sel = (t["indicator"] == indicator) & (t["comparison"] == methods.DID)
    for k, v in values.items():
        t.loc[sel, k] = v
    return type(es)(t, es.params, es.design, es.years, es.data)


def test_a_null_result_is_never_confirmed_and_an_untested_claim_says_why(es):
    null = _with(es, "care_reports_per_100", significant=False, p_value=0.4,
                 p_value_adjusted=0.8)
    v = verdicts(null).set_index("indicator")
    assert v.loc["care_reports_per_100", "group"] == "niet aangetoond"
    text = conclusions_markdown(null)
    assert "Voor deze claims is geen effect aangetoond" in text
    untested = _with(es, "school_satisfaction", estimate=np.nan, ci_low=np.nan, ci_high=np.nan,
                     note="niet te bepalen: geen vergelijkingsscholen in deze regio")
    text = conclusions_markdown(untested)
    assert "Deze claims konden niet worden getoetst" in text
    assert "(geen vergelijkingsscholen in deze regio)" in text
    # 8 claims: satisfaction untested; double intake, referrals partly (see below); 5 confirmed
    assert text.startswith("Van de 8 claims van de pilot die dit rapport toetst, zijn er 5 met "
                           "de gegevens bevestigd en 2 deels")


def test_goals_missed_are_named_next_to_the_claims(es):
    goals = pd.DataFrame({"Indicator": ["Zorgmeldingen", "Tevredenheid scholen"],
                          "Niveau": ["regio", "regio"], "Doel gehaald": ["ja", "nee"]})
    text = conclusions_markdown(es, goals)
    assert "Van de 2 doelen waarvoor een stand te geven is, zijn er 1 gehaald" in text
    assert "niet gehaald: tevredenheid scholen (regio)" in text


def test_limitations_follow_the_data(es):
    trends = pd.DataFrame({"Indicator": ["Zorgmeldingen", "Dubbele intake"],
                           "Toets vóórperiode (p)": ["0,062", "0,400"],
                           "Opmerking": ["zwakke aanwijzing voor ongelijke trends vóór de start",
                                         "geen aanwijzing voor ongelijke trends"]})
    text = limitations_markdown(es, trends, synthetic=True)
    assert "zorgmeldingen (p = 0,062)" in text and "dubbele intake (p" not in text
    assert "**Synthetische gegevens.**" in text
    assert "**Gespreide start.**" in text  # Lekstroom's pilot schools started in two years
    assert "**Synthetische gegevens.**" not in limitations_markdown(es, trends, synthetic=False)


def test_a_significant_improvement_short_of_the_claim_or_goal_is_partly_confirmed(es):
    """The rule (findings.VERDICT_RULE): the claimed size, the claimed end state and the region's
    goal; the default synthetic data miss two goals and leave double intakes above zero."""
    v = verdicts(es).set_index("indicator")
    # "geen dubbele intakes meer": significant fall, but double intakes remain
    assert v.loc["double_intake_share", "verdict"] == "deels bevestigd"
    assert "waar de claim 0,0% belooft" in v.loc["double_intake_share", "reason"]
    # region goals of 1,0 referrals per 100 and satisfaction 3,5 are missed
    assert "regionaal doel (1,0) niet gehaald" in v.loc["specialised_referrals_per_100", "reason"]
    assert "regionaal doel (3,50) niet gehaald" in v.loc["school_satisfaction", "reason"]
    # 80% fewer care reports is inside the interval: confirmed
    assert v.loc["care_reports_per_100", "verdict"] == "bevestigd"
    # an interval that stays short of 80% fewer makes it partly
    short = _with(es, "care_reports_per_100", estimate=0.5, ci_low=0.4, ci_high=0.6)
    row = verdicts(short).set_index("indicator").loc["care_reports_per_100"]
    assert row["verdict"] == "deels bevestigd"
    assert "de daling (40% tot 60%) blijft onder de 80% van de claim" in row["reason"]
    # a reduction larger than claimed is still confirmed
    more = _with(es, "care_reports_per_100", estimate=0.1, ci_low=0.08, ci_high=0.12)
    assert verdicts(more).set_index("indicator").loc["care_reports_per_100", "verdict"] == \
        "bevestigd"
    # a missed goal never turns a null result into anything but "niet aangetoond"
    null = _with(es, "specialised_referrals_per_100", significant=False, p_value=0.3)
    assert verdicts(null).set_index("indicator").loc["specialised_referrals_per_100",
                                                     "verdict"] == "niet aangetoond"
    # the partial verdicts are listed with their reason in the conclusions
    text = conclusions_markdown(es)
    assert "Deze claims worden deels ondersteund" in text
    assert "*Dubbele intake*: geen dubbele intakes meer (nog 5,2% in 2014-2015" in text


def test_summary_table_and_takeaway_use_the_same_verdicts(es):
    from evaluation.report.findings import key_figures

    key, _ = key_figures(es)
    v = verdicts(es)
    assert list(key["Conclusie"]) == list(v["verdict"])
    text = takeaway_markdown(es, synthetic=True)
    confirmed = int((v["group"] == "bevestigd").sum())
    partly = int((v["group"] == "deels bevestigd").sum())
    assert f"Op {confirmed} van de 8 getoetste punten doet de pilot aantoonbaar" in text
    assert f"op {partly} gaat het aantoonbaar de goede kant op" in text
    assert "synthetisch" in text


def test_cost_balance_in_the_summary_is_rounded_with_its_margin():
    import math

    from evaluation.report.costs import balance_sentence, euro_rounded

    assert euro_rounded((608_787.0, 112_000.0, 1_310_000.0)) == ("0,6 mln", "0,1 mln", "1,3 mln")
    assert euro_rounded((45_400.0, -3_000.0, 90_000.0)) == ("45 duizend", "−3 duizend",
                                                            "90 duizend")

    class CB:  # the fields balance_sentence reads
        example = True
        school_year = "2014-2015"
        withheld = ""

        class net:
            point, low, high = 608_787.0, 112_000.0, 1_310_000.0

    text = balance_sentence(CB)
    assert "saldo ≈ € 0,6 mln in schooljaar 2014-2015 (marge € 0,1 mln tot 1,3 mln, op " \
           "voorbeeldtarieven" in text
    assert text.startswith("**Geld.** De pilot bespaart naar schatting meer")
    CB.net.low = -200_000.0
    assert "niet aan te tonen" in balance_sentence(CB)
    CB.net.point = math.nan
    assert "niet berekend" in balance_sentence(CB)


def test_a_region_without_targets_gets_verdicts_from_the_claims_alone(es):
    """Regions need not set goals (the national set's fictional regions set none)."""
    from dataclasses import replace as dc_replace

    from evaluation.report.findings import key_figures

    region = es.params.region.model_copy(update={"targets": {}})
    bare = dc_replace(es, params=es.params.model_copy(update={"region": region}))
    v = verdicts(bare).set_index("indicator")
    assert v.loc["specialised_referrals_per_100", "verdict"] == "bevestigd"  # no goal to miss
    assert v.loc["double_intake_share", "verdict"] == "deels bevestigd"  # the claim itself
    key, _ = key_figures(bare)
    assert len(key) == len(v)


def test_recommendations_follow_from_the_results_and_gaps(es):
    from evaluation.report.conclusions import recommendations_markdown

    text = recommendations_markdown(es, synthetic=True)
    assert "**Volg wat achterblijft.** Bij dubbele intake, verwijzingen zwaardere zorg en " \
           "tevredenheid scholen" in text
    assert "**Gebruik de eigen tarieven.**" in text  # the default params use example tariffs
    assert "**Herhaal de evaluatie met echte gegevens.**" in text
    assert "Meer scholen" not in text  # 12 pilot and 10 comparison schools
    few = _with(es, "care_reports_per_100", significant=False, p_value=0.3)
    design = few.design.copy()
    pilots = design.index[design["group"] == "pilot"][2:]
    design.loc[pilots, "group"] = "comparison"  # two pilot schools left
    few = type(es)(few.table, es.params, design, es.years, es.data)
    text = recommendations_markdown(few)
    assert "**Meer scholen in de vergelijking.** Met 2 pilot- en 20 vergelijkingsscholen" in text
    assert "**Kijk opnieuw naar wat niet is aangetoond.** Voor zorgmeldingen" in text
    assert "Herhaal de evaluatie" not in text
    # an evaluator's voice: no advocacy
    assert not any(w in text.lower() for w in ("investeer", "investeren", "moeten kiezen voor"))
