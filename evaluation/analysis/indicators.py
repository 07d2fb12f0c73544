"""Indicators computed from validated tables: counts and rates per school and period.

All group operations are vectorised (groupby on typed columns); nothing loops over pupils.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pandas as pd

from evaluation.data.datamodel import school_year_of


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
    m = monthly_event_frame(tables["care_reports"], "report_date", tables)
    return (m.groupby(["school_id", "month", "school_year"], observed=True)[["pupils", "reports"]]
            .sum().reset_index())


def monthly_event_frame(events: pd.DataFrame, date_col: str,
                        tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Events per school, municipality of residence and calendar month (every month of every
    school year with pupils, 0 where none), with the school year's pupils as exposure: the input
    of an interrupted time series."""
    ev = events[["student_id", "school_id", date_col]].assign(
        school_year=school_year_of(events[date_col]),
        month=events[date_col].dt.to_period("M").dt.to_timestamp())
    ev = ev.merge(_residence(tables), on=PUPIL_KEYS, how="left")
    keys = ["school_id", "residence_code", "month"]
    counts = ev.groupby(keys, observed=True).size().rename("reports").reset_index()
    exposure = _exposure(tables).rename(columns={"exposure": "pupils"})
    years = exposure["school_year"].unique()
    first, last = int(min(years)[:4]), int(max(years)[:4])
    months = pd.DataFrame({"month": pd.date_range(f"{first}-08-01", f"{last + 1}-07-01",
                                                  freq="MS")})
    months["school_year"] = school_year_of(months["month"])
    out = exposure.merge(months, on="school_year", how="inner")
    out = out.merge(counts, on=keys, how="left")
    out["reports"] = out["reports"].fillna(0).astype("int64")
    return out


# --- analysis frames per indicator ----------------------------------------------------------------
# Each builder returns records in one of four shapes, so that one set of comparison functions
# serves every indicator of a kind:
#   rate:       school_id, residence_code, school_year, count, exposure   (aggregated cells)
#   proportion: school_id, residence_code, school_year, success            (one row per record)
#   duration:   school_id, residence_code, school_year, days, event        (one row per record)
#   scale:      school_id, school_year, score                              (one row per respondent)
# Records with an empty value in the field an indicator needs are left out of that indicator
# only, and counted (`missing` in the frame's attrs) so that the report can state its n.

PUPIL_KEYS = ["student_id", "school_year"]
SCHOOL_ROUTE_HEAVY = ("specialised", "jggz", "residential")


def extraction_date(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The end of the last school year in the enrolments: ongoing trajectories are censored here."""
    last = tables["enrolments"]["school_year"].max()
    return pd.Timestamp(int(last[5:9]), 7, 31)


def _once(memo: dict | None, key: str, make: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """A piece several indicators' frames share, made once per `analysis_frames` call (callers
    never change it in place)."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


def _residence(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return tables["enrolments"][[*PUPIL_KEYS, "residence_municipality_code"]].rename(
        columns={"residence_municipality_code": "residence_code"})


def _exposure(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    e = tables["enrolments"]
    return (e.groupby(["school_id", "residence_municipality_code", "school_year"], observed=True)
            .size().rename("exposure").reset_index()
            .rename(columns={"residence_municipality_code": "residence_code"}))


def event_rate_frame(events: pd.DataFrame, date_col: str,
                     tables: dict[str, pd.DataFrame], memo: dict | None = None) -> pd.DataFrame:
    """Events counted per school, municipality of residence and school year, with pupils as
    exposure; cells with pupils but no events count 0."""
    ev = events[["student_id", "school_id", date_col]].assign(
        school_year=school_year_of(events[date_col]))
    ev = ev.merge(_once(memo, "residence", lambda: _residence(tables)), on=PUPIL_KEYS,
                  how="left")
    counts = (ev.groupby(["school_id", "residence_code", "school_year"], observed=True).size()
              .rename("count").reset_index())
    out = _once(memo, "exposure", lambda: _exposure(tables)).merge(counts, on=["school_id", "residence_code", "school_year"],
                                  how="left")
    out["count"] = out["count"].fillna(0).astype("int64")
    out.attrs["missing"] = int(ev["residence_code"].isna().sum())
    return out


def _trajectory_records(tables: dict[str, pd.DataFrame], memo: dict | None = None
                        ) -> pd.DataFrame:
    t = tables["trajectories"].assign(school_year=lambda d: school_year_of(d["signal_date"]))
    return t.merge(_once(memo, "residence", lambda: _residence(tables)), on=PUPIL_KEYS,
                   how="left")


def _keep(frame: pd.DataFrame, ok: pd.Series, columns: list[str]) -> pd.DataFrame:
    out = frame.loc[ok.fillna(False).to_numpy(), columns].reset_index(drop=True)
    out.attrs["missing"] = int(len(frame) - len(out))
    return out


def _days(later: pd.Series, earlier: pd.Series) -> pd.Series:
    return (later - earlier).dt.days.astype("float64")


def rate_events(indicator_id: str, tables: dict[str, pd.DataFrame]) -> tuple[pd.DataFrame, str]:
    """The events a rate indicator counts, and their date column."""
    if indicator_id == "care_reports_per_100":
        return tables["care_reports"], "report_date"
    r = tables["referrals"]
    if indicator_id == "specialised_referrals_per_100":
        sel = (r["referrer"] == "school") & r["destination_level"].isin(SCHOOL_ROUTE_HEAVY)
    elif indicator_id == "gp_jggz_referrals_per_100":
        sel = (r["referrer"] == "gp") & (r["destination_level"] == "jggz")
    else:
        raise KeyError(f"{indicator_id} is not a rate indicator")
    return r[sel.to_numpy()], "referral_date"


def analysis_frames(indicator_ids: Iterable[str], tables: dict[str, pd.DataFrame]
                    ) -> dict[str, pd.DataFrame]:
    """`analysis_frame` of several indicators, with the pieces they share (pupils per cell,
    trajectories with their pupils' residence) made once."""
    memo: dict = {}
    return {i: analysis_frame(i, tables, memo) for i in indicator_ids}


def analysis_frame(indicator_id: str, tables: dict[str, pd.DataFrame],
                   memo: dict | None = None) -> pd.DataFrame:
    """The records of one indicator in its kind's shape (see above). `memo`: shared pieces, see
    `analysis_frames`."""
    base = ["school_id", "residence_code", "school_year"]
    if indicator_id.endswith("_per_100"):
        events, date_col = rate_events(indicator_id, tables)
        return event_rate_frame(events, date_col, tables, memo)

    t = _once(memo, "trajectories", lambda: _trajectory_records(tables, memo))
    end = extraction_date(tables)
    if indicator_id == "days_signal_to_help":
        t = t.assign(days=_days(t["start_date"], t["signal_date"]), event=1)
        return _keep(t, t["days"].notna(), [*base, "days", "event"])
    if indicator_id in ("trajectory_days", "indication_free_days"):
        ended = t["end_date"].notna()
        t = t.assign(days=_days(t["end_date"].fillna(end), t["start_date"]),
                     event=ended.astype("int64"))
        cols = [*base, "days", "event"]
        ok = t["days"].notna()
        if indicator_id == "indication_free_days":
            cols += ["indication_free", "level"]
            ok &= t["indication_free"].notna() & t["level"].notna()  # optional fields
        return _keep(t, ok, cols)
    if indicator_id == "double_intake_share":
        t = t.assign(success=t["n_intakes"] > 1)
        return _keep(t, t["n_intakes"].notna(), [*base, "success"])
    if indicator_id == "school_informed_share":
        t = t.assign(success=t["school_informed"])
        return _keep(t, t["school_informed"].notna(), [*base, "success"])
    if indicator_id in ("parents_first_meeting_share", "days_to_consent"):
        t = _once(memo, "trajectories+parents", lambda: t.merge(
            tables["parent_involvement"], on="trajectory_id", how="left"))
        if indicator_id == "parents_first_meeting_share":
            t = t.assign(success=t["parents_at_first_meeting"])
            return _keep(t, t["parents_at_first_meeting"].notna(), [*base, "success"])
        # No consent yet while help runs: censored at extraction. No consent date after help
        # ended: a missing value, left out and counted.
        consented = t["consent_date"].notna()
        ongoing = t["end_date"].isna()
        t = t.assign(days=_days(t["consent_date"].fillna(end), t["signal_date"]),
                     event=consented.astype("int64"))
        return _keep(t, consented | ongoing, [*base, "days", "event"])
    if indicator_id.endswith("_satisfaction"):
        from evaluation.analysis.scales import scale_scores

        role = indicator_id.removesuffix("_satisfaction")
        scores = scale_scores(tables["survey_responses"], role)
        return _keep(scores, scores["score"].notna(), ["school_id", "school_year", "score"])
    raise KeyError(f"no analysis frame for indicator {indicator_id!r}")
