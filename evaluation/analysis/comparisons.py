"""The comparisons an indicator gets: before/after at the pilot schools, difference-in-differences
against comparison schools, and an event study that stays unbiased when schools start in
different years.

Which comparisons, which model and which inference each kind of indicator gets is decided in one
table (`evaluation.analysis.methods`); the models are the fixed-effects models of
`evaluation.analysis.fixed_effects`. Scales of the effect: rate ratio for counts, hazard ratio for
durations (above 1: sooner), a difference in percentage points for shares and in scale points for
survey scores. Standard errors are clustered by school throughout: pupils of one school share its
way of working.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.analysis.fixed_effects import cox_twfe, ols_twfe, poisson_twfe
from evaluation.analysis.inference import staggered_crv3
from evaluation.analysis.methods import (  # noqa: F401  (the names the report and tests use)
    BEFORE_AFTER,
    DID,
    EVENT_STUDY,
    EVENT_STUDY_UNITS,
    ITS,
    METHODS,
    UNITS,
    inference_of,
    inference_text,
)
from evaluation.analysis.statistics import Estimate
from evaluation.params import Params
from evaluation.registry import Indicator


def with_design(frame: pd.DataFrame, design: pd.DataFrame, params: Params,
                years: list[str]) -> pd.DataFrame:
    """Attach group, start year and period to each record of the analysis years.

    period: "before" for a pilot school's own baseline years, "after" for the report year,
    NA otherwise; treated: a pilot school in a year from its start on.
    """
    d = design[["school_id", "group", "pilot_start"]]
    out = frame.merge(d, on="school_id", how="inner")
    out = out[out["school_year"].isin(years)]
    out = restrict_to_unit(out, params).copy()
    year = out["school_year"].str.slice(0, 4).astype("int64")
    start = out["pilot_start"].dt.year
    pilot = (out["group"] == "pilot").to_numpy()
    out["year"] = year
    out["treated"] = (pilot & (year >= start).fillna(False).to_numpy()).astype("int64")
    before = pilot & ((year < start) & (year >= start - params.analysis.baseline_years)).fillna(
        False).to_numpy()
    after = pilot & (out["school_year"] == params.school_year).to_numpy()
    out["period"] = pd.Series(np.where(before, "before", np.where(after, "after", None)),
                              index=out.index, dtype="string")
    return out


def restrict_to_unit(frame: pd.DataFrame, params: Params) -> pd.DataFrame:
    """In a municipality report counted by residence, keep the pilot schools' records of pupils
    living in the municipality (comparison schools keep all theirs: they lie elsewhere). Survey
    answers concern a school, not a pupil's home, and stay by school location."""
    if (params.municipality is None or params.analysis.count_by != "residence"
            or "residence_code" not in frame):
        return frame
    keep = (frame["group"] == "comparison").to_numpy() | (
        frame["residence_code"] == params.municipality).fillna(False).to_numpy()
    return frame[keep]


def school_year_counts(data: pd.DataFrame) -> pd.DataFrame:
    """Events and exposure per school and school year, and whether the pilot ran there then:
    the cells of the Poisson difference-in-differences."""
    return (data.groupby(["school_id", "school_year"], observed=True)
            .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                 treated=("treated", "max")).reset_index())


def fit(kind: str, data: pd.DataFrame, treatment: str, years: bool, inference: str,
        alpha: float) -> tuple[float, float, float, float, int]:
    """The kind's model of `data` with school effects (and school-year effects when `years`):
    (effect, low, high, p, n) on the scale the report states, n in records (events for counts)."""
    m = METHODS[kind]
    if m.model == "poisson":
        keys = ["school_id", "school_year"] if years else ["school_id", treatment]
        cells = (data.groupby(keys, observed=True)
                 .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                      treated=(treatment, "max")).reset_index())
        est = poisson_twfe(cells["count"].to_numpy(), cells["exposure"].to_numpy(),
                           cells["treated"].to_numpy(), cells["school_id"].to_numpy(),
                           cells["school_year"].to_numpy() if years else None, alpha, inference)
        return (*est, int(data["count"].sum()))
    year = data["school_year"].to_numpy() if years else None
    if m.model == "cox":
        est = cox_twfe(data["days"].to_numpy(dtype=float), data["event"].to_numpy(dtype=float),
                       data[treatment].to_numpy(), data["school_id"].to_numpy(), year, alpha,
                       inference)
        return (*est, len(data))
    est = ols_twfe(data[m.outcome].astype(float).to_numpy(), data[treatment].to_numpy(),
                   data["school_id"].to_numpy(), year, alpha, inference)
    return (*(m.scale * v for v in est[:3]), est[3], len(data))


def before_after(ind: Indicator, data: pd.DataFrame, params: Params,
                 many_schools: bool = False) -> Estimate:
    """The pilot schools' report year against their own baseline years."""
    s = data[data["period"].notna()]
    s = s.assign(post=(s["period"] == "after").astype("int64"))
    inference = inference_of(ind.kind, many_schools)
    est, low, high, p, n = fit(ind.kind, s, "post", False, inference, params.analysis.alpha)
    method = f"{METHODS[ind.kind].before_after}, {inference_text(inference, many_schools)}"
    return Estimate(ind.id, BEFORE_AFTER, method, UNITS[ind.kind], est, low, high, p, n=n,
                    n_clusters=int(s["school_id"].nunique()))


def difference_in_differences(ind: Indicator, data: pd.DataFrame, params: Params,
                              many_schools: bool = False) -> Estimate:
    """Pilot against comparison schools over the analysis years, with school and year effects.
    `many_schools`: the nation's inference (cluster-robust) instead of the few-school one."""
    inference = inference_of(ind.kind, many_schools)
    est, low, high, p, n = fit(ind.kind, data, "treated", True, inference, params.analysis.alpha)
    method = f"{METHODS[ind.kind].did}, {inference_text(inference, many_schools)}"
    return Estimate(ind.id, DID, method, UNITS[ind.kind], est, low, high, p, n=n,
                    n_clusters=int(data["school_id"].nunique()))


def school_year_panel(ind: Indicator, data: pd.DataFrame) -> pd.DataFrame:
    """One value per school and school year on the indicator's natural scale."""
    keys = ["school_id", "year"]
    if ind.kind == "rate":
        g = data.groupby(keys, observed=True)[["count", "exposure"]].sum()
        value = 100 * g["count"] / g["exposure"]
    elif ind.kind == "proportion":
        value = 100 * data.groupby(keys, observed=True)["success"].mean()
    elif ind.kind == "duration":
        # Censoring makes a plain mean wrong for durations that may still run; the panel uses
        # only durations that always end (signal to start of help).
        value = data.groupby(keys, observed=True)["days"].mean()
    else:
        value = data.groupby(keys, observed=True)["score"].mean()
    panel = value.rename("value").reset_index()
    cohorts = (data.drop_duplicates("school_id")
               .assign(cohort=lambda d: d["pilot_start"].dt.year.fillna(0).astype("int64"))
               [["school_id", "cohort"]])
    panel = panel.merge(cohorts, on="school_id")
    # A school that starts after the last year of the panel is, within it, never treated.
    panel.loc[panel["cohort"] > panel["year"].max(), "cohort"] = 0
    return panel


def event_study(ind: Indicator, data: pd.DataFrame, params: Params) -> Estimate | None:
    """Group-time effects (Callaway & Sant'Anna) against not-yet-started schools, aggregated to
    one average effect; unbiased under staggered starts where two-way fixed effects is not. The
    interval comes from leaving one school out at a time (CRV3, t with G-1 degrees of freedom):
    att_gt's analytic errors have no small-sample correction."""
    if ind.kind == "duration" and bool((data["event"] == 0).any()):
        return None
    panel = school_year_panel(ind, data)
    # The estimator needs every school in every year: a school without records in some year (a
    # small municipality counted by residence) leaves the event study, not the other comparisons.
    years = panel["year"].nunique()
    complete = panel.groupby("school_id")["year"].transform("nunique") == years
    panel = panel[complete & panel["value"].notna()]
    treated = panel.loc[panel["cohort"] > 0, "school_id"].nunique()
    controls = panel.loc[panel["cohort"] == 0, "school_id"].nunique()
    if treated == 0 or controls == 0 or panel.groupby("school_id")["year"].nunique().min() < years:
        return None
    jack = staggered_crv3(panel, "school_id", "year", "cohort", "value",
                          control="not_yet_treated", alpha=params.analysis.alpha)
    return Estimate(ind.id, EVENT_STUDY, "groep-tijdeffecten (Callaway & Sant'Anna), "
                    "vergeleken met nog niet gestarte scholen, cluster-jackknife over scholen "
                    "(CRV3)", EVENT_STUDY_UNITS[ind.kind],
                    jack["estimate"], jack["ci_low"], jack["ci_high"], jack["p_value"],
                    n=int(data["count"].sum()) if ind.kind == "rate" else int(len(data)),
                    n_clusters=int(panel["school_id"].nunique()))

