"""Plausibility warnings: valid rows that are suspect as a whole, warned about, never rejected."""

from __future__ import annotations

import pandas as pd

from evaluation.data.plausibility import absent_fields, plausibility, warning_text
from evaluation.report.data_quality import plausibility_table


def tables(signals: list[str], reports: list[str] | None = None) -> dict[str, pd.DataFrame]:
    schools = pd.DataFrame({"school_id": ["S1", "S2"], "name": ["Alfa College", "Beta Lyceum"]})
    enrolments = pd.DataFrame({"student_id": ["a", "b", "c"], "school_id": ["S1", "S1", "S2"],
                               "school_year": ["2014-2015"] * 3})
    traj = pd.DataFrame({"student_id": "a", "school_id": "S1",
                         "signal_date": pd.to_datetime(signals), "level": pd.NA})
    reports = reports or []
    care = pd.DataFrame({"student_id": "a", "school_id": "S1",
                         "report_date": pd.to_datetime(reports)})
    refs = pd.DataFrame({"student_id": pd.Series(dtype=str), "school_id": pd.Series(dtype=str),
                         "referral_date": pd.Series(dtype="datetime64[s]")})
    return {"schools": schools, "enrolments": enrolments, "trajectories": traj,
            "care_reports": care, "referrals": refs}


def test_records_outside_the_school_years_of_the_enrolments():
    w = plausibility(tables(["2014-10-01", "2012-03-01", "2012-09-01", "2013-05-01"]))
    row = w[w["check"] == "outside_school_years"].iloc[0]
    assert (row["table"], row["rows"], row["detail"]) == ("trajectories", 3,
                                                          ["2011-2012", "2012-2013"])
    assert warning_text(row) == ("trajectories.signal_date: 3 row(s) dated in a school year "
                                 "without enrolments: 2011-2012, 2012-2013")


def test_a_school_with_pupils_but_no_care_records():
    w = plausibility(tables(["2014-10-01"]))
    row = w[w["check"] == "school_without_care_records"].iloc[0]
    assert row["detail"] == ["S2"] and row["rows"] == 1
    shown = plausibility_table(tables(["2014-10-01"]))
    assert "Beta Lyceum" in shown["Betreft"].tolist()  # by name in the annex


def test_a_month_without_records_in_a_dense_series_but_not_in_a_sparse_one_or_the_summer():
    days = pd.date_range("2014-09-01", "2015-06-30", freq="D")
    dense = [str(d.date()) for d in days if d.month not in (1, 7)][::5]  # ~6 a month, none in Jan
    w = plausibility(tables(["2014-10-01"], dense))
    row = w[w["check"] == "empty_month"].iloc[0]
    assert (row["table"], row["detail"]) == ("care_reports", ["2015-01"])
    sparse = dense[::10]
    assert not (plausibility(tables(["2014-10-01"], sparse))["check"] == "empty_month").any()
    summer = [str(d.date()) for d in pd.date_range("2014-09-01", "2015-09-30", freq="D")
              if d.month not in (7, 8)][::5]  # every month but July and August
    assert not (plausibility(tables(["2014-10-01"], summer))["check"] == "empty_month").any()


def test_an_optional_field_empty_in_every_row_is_absent_from_the_source():
    assert ("trajectories", "level") in absent_fields(tables(["2014-10-01"]))
    assert ("trajectories", "level") not in absent_fields(tables([]))  # no rows: no verdict
