"""Comparisons that every indicator gets, by kind: before/after at the pilot schools,
difference-in-differences against comparison schools, and an event study that stays unbiased when
schools start in different years.

Scales of the effect: rate ratio for counts, hazard ratio for durations (above 1: sooner), a
difference in percentage points for shares and in scale points for survey scores. Standard errors
are clustered by school throughout: pupils of one school share its way of working.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.analysis.inference import fe_ols_wild, poisson_effect_crv3, staggered_crv3
from evaluation.analysis.statistics import Estimate
from evaluation.params import Params
from evaluation.registry import Indicator

BEFORE_AFTER = "voor/na (pilotscholen)"
DID = "verschil-in-verschillen"
EVENT_STUDY = "gespreide start (event study)"
ITS = "onderbroken tijdreeks"

UNITS = {"rate": "rate ratio", "proportion": "procentpunt", "duration": "hazard ratio",
         "scale": "schaalpunt"}
#: How the interval of each kind allows for few schools (evaluation.analysis.inference): with 10-30
#: schools cluster-robust (CRV1) errors are too small.
INFERENCE = {"rate": "cluster-jackknife over scholen (CRV3)",
             "proportion": "wild cluster bootstrap over scholen",
             "duration": "clustergecorrigeerd",
             "scale": "wild cluster bootstrap over scholen"}


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


def _fe_ols(y: pd.Series, treatment: pd.Series, fixed: list[pd.Series], cluster: pd.Series,
            alpha: float) -> tuple[float, float, float, float]:
    """OLS with fixed effects; interval and p-value from the restricted wild cluster bootstrap
    (Webb weights, 999 draws, interval by test inversion, fixed seed: the same at every render)."""
    return fe_ols_wild(y.astype(float), treatment, fixed, cluster, alpha)


def before_after(ind: Indicator, data: pd.DataFrame, params: Params) -> Estimate:
    """The pilot schools' report year against their own baseline years."""
    alpha = params.analysis.alpha
    s = data[data["period"].notna()].copy()
    post = (s["period"] == "after").astype("int64")
    n_clusters = int(s["school_id"].nunique())
    if ind.kind == "rate":
        s = s.assign(post=post)
        agg = s.groupby(["school_id", "post"], observed=True)[["count", "exposure"]].sum()
        est, low, high, p = poisson_effect_crv3(agg.reset_index(), "post", ["school_id"],
                                                "school_id", alpha)
        method = "Poisson-regressie, schoolvaste effecten, leerlingen als blootstelling"
        n = int(s["count"].sum())
    elif ind.kind == "proportion":
        # Records of one school are not independent, so a Newcombe interval for two proportions
        # would be too narrow; the difference comes from a school fixed-effects model with the wild
        # cluster bootstrap. (Wilson intervals remain for each period's share in the tables.)
        est, low, high, p = _fe_ols(s["success"].astype(float), post, [s["school_id"]],
                                    s["school_id"], alpha)
        est, low, high = 100 * est, 100 * low, 100 * high
        method = "lineair kansmodel, schoolvaste effecten"
        n = len(s)
    elif ind.kind == "duration":
        from evaluation.analysis.survival import cox_effect

        est, low, high, p = cox_effect(s.assign(post=post), "post", strata="school_id",
                                       cluster="school_id", alpha=alpha)
        method = "Cox-regressie gestratificeerd naar school (lopende trajecten gecensureerd)"
        n = len(s)
    else:
        est, low, high, p = _fe_ols(s["score"], post, [s["school_id"]], s["school_id"], alpha)
        method = "lineaire regressie, schoolvaste effecten"
        n = len(s)
    return Estimate(ind.id, BEFORE_AFTER, method + ", " + INFERENCE[ind.kind], UNITS[ind.kind],
                    est, low, high, p, n=n, n_clusters=n_clusters)


def school_year_counts(data: pd.DataFrame) -> pd.DataFrame:
    """Events and exposure per school and school year, and whether the pilot ran there then:
    the cells of the Poisson difference-in-differences."""
    return (data.groupby(["school_id", "school_year"], observed=True)
            .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                 treated=("treated", "max")).reset_index())


def difference_in_differences(ind: Indicator, data: pd.DataFrame, params: Params) -> Estimate:
    """Pilot against comparison schools over the analysis years, with school and year effects."""
    alpha = params.analysis.alpha
    n_clusters = int(data["school_id"].nunique())
    if ind.kind == "rate":
        agg = school_year_counts(data)
        est, low, high, p = poisson_effect_crv3(agg, "treated", ["school_id", "school_year"],
                                                "school_id", alpha)
        method = "Poisson-regressie, school- en schooljaarvaste effecten"
        n = int(data["count"].sum())
    elif ind.kind == "proportion":
        est, low, high, p = _fe_ols(data["success"].astype(float), data["treated"],
                                    [data["school_id"], data["school_year"]], data["school_id"],
                                    alpha)
        est, low, high = 100 * est, 100 * low, 100 * high
        method = "lineair kansmodel, school- en schooljaarvaste effecten"
        n = len(data)
    elif ind.kind == "duration":
        from evaluation.analysis.survival import cox_effect

        est, low, high, p = cox_effect(data, "treated", fixed_effects=["school_year"],
                                       strata="school_id", cluster="school_id", alpha=alpha)
        method = "Cox-regressie met schooljaar, gestratificeerd naar school"
        n = len(data)
    else:
        est, low, high, p = _fe_ols(data["score"], data["treated"],
                                    [data["school_id"], data["school_year"]], data["school_id"],
                                    alpha)
        method = "lineaire regressie, school- en schooljaarvaste effecten"
        n = len(data)
    return Estimate(ind.id, DID, method + ", " + INFERENCE[ind.kind], UNITS[ind.kind], est, low,
                    high, p, n=n, n_clusters=n_clusters)


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


EVENT_STUDY_UNITS = {"rate": "per 100 leerlingen", "proportion": "procentpunt",
                     "duration": "dagen", "scale": "schaalpunt"}


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

