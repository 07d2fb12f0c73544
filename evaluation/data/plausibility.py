"""Plausibility: what valid data can still get wrong, as warnings that reject nothing.

A row can pass every check of `validation` and still be suspect as part of the whole: a
trajectory dated in a school year without any enrolment (a wrong year, or a delivery that does
not match the pupils), a school with pupils but no care records at all (a provider that did not
deliver for it), a month without records in a series that otherwise has them (an export that
missed a month). Each warning counts rows and names the school years, schools or months, never a
pupil; the import report and the report's data-quality annex list them.

`absent_fields` names the optional fields that a non-empty table holds no value of at all: what an
export did not have, so that indicators needing it say so instead of using a guess.
"""

from __future__ import annotations

import pandas as pd

from evaluation.data.datamodel import TABLES, school_year_of

#: The dated records of each table that care data consist of.
DATED = {"care_reports": "report_date", "trajectories": "signal_date",
         "referrals": "referral_date"}
COLUMNS = ["check", "table", "field", "rows", "detail"]
MIN_PER_MONTH = 5
SUMMER = (7, 8)

#: What each check means, for the command line (the report has its own Dutch words).
CHECKS = {
    "outside_school_years": "dated in a school year without enrolments",
    "school_without_care_records": "school with pupils but no care reports, trajectories or "
                                   "referrals",
    "empty_month": "month without records in a series that otherwise has them",
}


def absent_fields(tables: dict[str, pd.DataFrame]) -> list[tuple[str, str]]:
    """(table, field) of every optional field without a value in a table that has rows."""
    return [(name, f.name) for name, t in TABLES.items()
            if name in tables and len(tables[name])
            for f in t.fields if not f.required and f.name in tables[name]
            and not tables[name][f.name].notna().any()]


def plausibility(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Every plausibility warning, one row per check and table: rows concerned and what they
    concern (school years, schools or months, sorted)."""
    out = [*_outside_school_years(tables), *_schools_without_care(tables), *_empty_months(tables)]
    return pd.DataFrame(out, columns=COLUMNS)


def _outside_school_years(tables: dict[str, pd.DataFrame]) -> list[dict]:
    years = set(tables["enrolments"]["school_year"].dropna().astype(str).unique())
    out = []
    for name, date in DATED.items():
        frame = tables.get(name)
        if frame is None or not len(frame) or not years:
            continue
        year = school_year_of(frame[date])
        outside = year.notna() & ~year.isin(years)
        if outside.any():
            out.append({"check": "outside_school_years", "table": name, "field": date,
                        "rows": int(outside.sum()),
                        "detail": sorted(year[outside].astype(str).unique())})
    return out


def _schools_without_care(tables: dict[str, pd.DataFrame]) -> list[dict]:
    present = [tables[n] for n in DATED if n in tables and len(tables[n])]
    if not present:
        return []  # no care table delivered at all: the report says so per table
    # unique() first: a set over a column iterates it value by value (0.1 s per million rows).
    with_pupils = set(tables["enrolments"]["school_id"].dropna().astype(str).unique())
    with_care = set(pd.concat([f["school_id"] for f in present]).dropna().astype(str).unique())
    missing = sorted(with_pupils - with_care)
    if not missing:
        return []
    e = tables["enrolments"]
    return [{"check": "school_without_care_records", "table": "enrolments", "field": "school_id",
             "rows": int(e["school_id"].astype(str).isin(missing).sum()), "detail": missing}]


def _empty_months(tables: dict[str, pd.DataFrame]) -> list[dict]:
    out = []
    for name, date in DATED.items():
        frame = tables.get(name)
        if frame is None or not len(frame):
            continue
        months = frame[date].dropna().dt.to_period("M")
        if months.nunique() < 2:
            continue
        span = pd.period_range(months.min(), months.max(), freq="M")
        # Only where a month without records is surprising: at least MIN_PER_MONTH records a
        # month on average (an empty month then has a chance below 1%), and not in the summer
        # holidays, when schools are closed.
        if len(months) < MIN_PER_MONTH * len(span):
            continue
        empty = span.difference(pd.PeriodIndex(months.unique()))
        empty = empty[~empty.month.isin(SUMMER)]
        if len(empty):
            out.append({"check": "empty_month", "table": name, "field": date, "rows": 0,
                        "detail": [str(m) for m in empty]})
    return out


def warning_text(row: dict | pd.Series) -> str:
    """One warning for the command line."""
    detail = ", ".join(row["detail"][:12]) + (" ..." if len(row["detail"]) > 12 else "")
    rows = f"{row['rows']} row(s) " if row["rows"] else ""
    return f"{row['table']}.{row['field']}: {rows}{CHECKS[row['check']]}: {detail}"
