"""Conclusions and limitations generated from the estimates (issue 14, point 3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.analysis import methods
from evaluation.analysis.estimates import estimate_all
from evaluation.params import load_params
from evaluation.report.conclusions import conclusions_markdown, limitations_markdown, verdicts


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
    assert text.startswith("Van de 8 claims van de pilot die dit rapport toetst, zijn er 7 ")


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
