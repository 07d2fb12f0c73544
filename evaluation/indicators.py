"""Indicators computed from validated tables: counts and rates per school and period.

All group operations are vectorised (groupby on typed columns); nothing loops over pupils.
"""

from __future__ import annotations

import pandas as pd

from evaluation.datamodel import school_year_of


def pupils_per_school_year(enrolments: pd.DataFrame) -> pd.DataFrame:
    """Number of enrolled pupils per school and school year (the exposure for rates)."""
    return (
        enrolments.groupby(["school_id", "school_year"], observed=True)
        .size()
        .rename("pupils")
        .reset_index()
    )


def care_reports_per_school_year(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Care reports and pupils per school and school year, with the rate per 100 pupils.

    School-years with pupils but no report get a count of 0, never a missing row.
    """
    pupils = pupils_per_school_year(tables["enrolments"])
    reports = tables["care_reports"].assign(
        school_year=lambda d: school_year_of(d["report_date"])
    )
    counts = (
        reports.groupby(["school_id", "school_year"], observed=True).size().rename("reports")
        .reset_index()
    )
    out = pupils.merge(counts, on=["school_id", "school_year"], how="left")
    out["reports"] = out["reports"].fillna(0).astype("int64")
    out["rate_per_100"] = 100 * out["reports"] / out["pupils"]
    return out


def care_reports_per_month(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Care reports per school and calendar month, with the school year's pupils as exposure."""
    reports = tables["care_reports"]
    month = reports["report_date"].dt.to_period("M").dt.to_timestamp()
    counts = (
        reports.assign(month=month).groupby(["school_id", "month"], observed=True).size()
        .rename("reports").reset_index()
    )
    pupils = pupils_per_school_year(tables["enrolments"])
    years = pupils["school_year"].unique()
    first = int(min(years)[:4])
    last = int(max(years)[:4])
    months = pd.date_range(f"{first}-08-01", f"{last + 1}-07-01", freq="MS")
    grid = pd.MultiIndex.from_product([pupils["school_id"].unique(), months],
                                      names=["school_id", "month"]).to_frame(index=False)
    grid["school_year"] = school_year_of(grid["month"])
    out = grid.merge(pupils, on=["school_id", "school_year"], how="inner")
    out = out.merge(counts, on=["school_id", "month"], how="left")
    out["reports"] = out["reports"].fillna(0).astype("int64")
    return out
