"""Theme: care reports (zorgmeldingen) from schools, before and after the pilot start.

The pilot claims 80% fewer care reports from pilot schools. The pooled comparisons (before/after,
difference-in-differences, event study, time series) are in the estimate table
(`evaluation.analysis.estimates`); this module adds what is particular to the theme: the before/after
rate ratio of each pilot school (score intervals for two Poisson rates) and the yearly and monthly
series for the figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evaluation.analysis.design import analysis_years, school_design
from evaluation.analysis.statistics import between_school_interval, rate_ratio_per_unit
from evaluation.params import DEFAULT_PARAMS_DIR, Params

INDICATOR = "care_reports_per_100"


@dataclass
class CareReportAnalysis:
    design: pd.DataFrame        # schools with group and pilot start
    yearly: pd.DataFrame        # school x school year: pupils, reports, rate, group, post
    per_school: pd.DataFrame    # pilot school: before/after counts, rate ratio and interval
    group_years: pd.DataFrame   # group x school year: pupils, reports, rate per 100
    monthly: pd.DataFrame       # group x month: pupils, reports, rate per 100 pupils per year
    params: Params


def analyse(tables: dict[str, pd.DataFrame], params: Params,
            params_dir: Path = DEFAULT_PARAMS_DIR) -> CareReportAnalysis:
    """Compute the care-report series and per-school figures for one report.

    Uses the same records and the same unit (region, or a municipality by school location or
    residence) as the estimate table, so that the two can never disagree.
    """
    from evaluation.analysis.comparisons import restrict_to_unit, with_design
    from evaluation.analysis.indicators import analysis_frame, monthly_event_frame

    design = school_design(params, params_dir)
    years = analysis_years(params, design)
    alpha = params.analysis.alpha
    records = with_design(analysis_frame(INDICATOR, tables), design, params, years)
    yearly = (records.groupby(["school_id", "school_year"], observed=True)
              .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                   treated=("treated", "max"), period=("period", "first"))
              .reset_index()
              .merge(design, on="school_id"))
    yearly["pupils"] = yearly["exposure"]
    yearly["post"] = yearly["period"].map({"before": False, "after": True})

    ba = yearly[(yearly["group"] == "pilot") & yearly["post"].notna()].copy()
    ba["post"] = ba["post"].astype(bool)
    per_school = rate_ratio_per_unit(ba, "school_id", alpha).merge(
        design[["school_id", "school_name", "cohort"]], on="school_id")

    group_years = (yearly.groupby(["group", "school_year"], observed=True)[["pupils", "count"]]
                   .sum().reset_index())
    group_years["rate_per_100"] = 100 * group_years["count"] / group_years["pupils"]
    band = between_school_interval(yearly, "count", "exposure", ["group", "school_year"])
    group_years = group_years.merge(
        band[["group", "school_year"]].assign(low=100 * band["low"], high=100 * band["high"]),
        on=["group", "school_year"], how="left")

    events = tables["care_reports"]
    monthly = monthly_event_frame(events, "report_date", tables).merge(
        design[["school_id", "group"]], on="school_id")
    monthly = restrict_to_unit(monthly[monthly["school_year"].isin(years)], params)
    monthly = (monthly.groupby(["group", "month"], observed=True)[["pupils", "reports"]].sum()
               .reset_index())
    # Per 100 pupils per year, so that months compare with the yearly rate.
    monthly["rate_per_100"] = 1200 * monthly["reports"] / monthly["pupils"]

    return CareReportAnalysis(design, yearly, per_school, group_years, monthly, params)
