"""The comparisons an indicator gets: before/after at the pilot schools, difference-in-differences
against comparison schools, and an event study that stays unbiased when schools start in
different years.

Which comparisons, which model and which inference each kind of indicator gets is decided in one
table (`evaluation.analysis.methods`); the models are the fixed-effects models of
`evaluation.analysis.fixed_effects` and, for durations, the medians of
`evaluation.analysis.durations`. Scales of the effect: rate ratio for counts, a difference in days
for durations (with the hazard ratio as a secondary, technical figure), a difference in percentage
points for shares and in scale points for survey scores. Inference is clustered by school
throughout (pupils of one school share its way of working), by the policy of `methods`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.analysis import durations, methods
from evaluation.analysis.fixed_effects import (
    cox_twfe,
    jackknife_interval,
    ols_point,
    ols_points,
    ols_twfe,
    poisson_point,
    poisson_points,
    poisson_twfe,
)
from evaluation.analysis.inference import staggered_crv3
from evaluation.analysis.methods import (  # noqa: F401  (the names the report and tests use)
    BEFORE_AFTER,
    DID,
    DID_HAZARD,
    EVENT_STUDY,
    EVENT_STUDY_UNITS,
    ITS,
    METHODS,
    UNITS,
)
from evaluation.analysis.randomisation import randomisation_inference
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


def _counts(n_schools: int, data: pd.DataFrame) -> tuple[int, int, int]:
    schools = data.drop_duplicates("school_id")
    n_pilot = int((schools["group"] == "pilot").sum())
    return n_schools, n_pilot, len(schools) - n_pilot


def _policy(kind: str, comparison: str, data: pd.DataFrame, params: Params,
            many_schools: bool) -> str:
    """The inference `methods.inference_for` gives this comparison of these records."""
    g, n_pilot, n_comp = _counts(int(data["school_id"].nunique()), data)
    a = params.analysis
    inference = methods.inference_for(kind, comparison, g, n_pilot, n_comp,
                                      0 if many_schools else a.few_schools, a.few_treated)
    if METHODS[kind].model == "median" and comparison in (BEFORE_AFTER, DID) \
            and inference == "cluster_robust":
        return "cluster_bootstrap"  # a median has no sandwich: the bootstrap at every scale
    return inference


def fit(kind: str, data: pd.DataFrame, treatment: str, years: bool, inference: str,
        params: Params) -> dict:
    """The kind's model of `data` with school effects (and school-year effects when `years`):
    estimate, ci_low, ci_high, p_value on the scale the report states, n in records (events for
    counts), and for bootstrap methods draws and the p-value floor."""
    m = METHODS[kind]
    a = params.analysis
    out: dict = {}
    if m.model == "poisson":
        keys = ["school_id", "school_year"] if years else ["school_id", treatment]
        cells = (data.groupby(keys, observed=True)
                 .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                      treated=(treatment, "max")).reset_index())
        est = poisson_twfe(cells["count"].to_numpy(), cells["exposure"].to_numpy(),
                           cells["treated"].to_numpy(), cells["school_id"].to_numpy(),
                           cells["school_year"].to_numpy() if years else None, a.alpha,
                           inference)
        n = int(data["count"].sum())
    elif m.model == "median":
        design = "did" if years else "before_after"
        if inference == "cluster_jackknife":
            res = durations.change(data, params.school_year, design,
                                   horizon=a.duration_horizon_days, jackknife=True)
            est = (res["estimate"], *jackknife_interval(res["estimate"], res["leave_one_out"],
                                                        a.alpha))
        else:
            draws = a.bootstrap_draws
            res = durations.change(data, params.school_year, design, draws=draws,
                                   seed=a.bootstrap_seed, horizon=a.duration_horizon_days)
            low, high, p, floor = durations.bootstrap_result(res["estimate"],
                                                             res["replicates"], a.alpha)
            est = (res["estimate"], low, high, p)
            out = {"draws": draws, "p_value_bound": floor}
        n = int(data["days"].notna().sum())
    else:
        year = data["school_year"].to_numpy() if years else None
        est = ols_twfe(data[m.outcome].astype(float).to_numpy(), data[treatment].to_numpy(),
                       data["school_id"].to_numpy(), year, a.alpha, inference,
                       B=a.bootstrap_draws, seed=a.bootstrap_seed)
        est = (*(m.scale * v for v in est[:3]), est[3])
        if inference == "wild_bootstrap":
            floor = 1.0 / a.bootstrap_draws
            est = (*est[:3], max(est[3], floor))
            out = {"draws": a.bootstrap_draws, "p_value_bound": floor}
        n = len(data)
    return {"estimate": est[0], "ci_low": est[1], "ci_high": est[2], "p_value": est[3],
            "n": n, **out}


def did_statistic(kind: str, data: pd.DataFrame, school_year: str, horizon: float) -> float:
    """The difference-in-differences of `fit` on an additive scale (log rate ratio, points, days),
    without inference: what randomisation inference recomputes for every reassignment."""
    m = METHODS[kind]
    if m.model == "poisson":
        cells = (data.groupby(["school_id", "school_year"], observed=True)
                 .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                      treated=("treated", "max")).reset_index())
        return poisson_point(cells["count"].to_numpy(), cells["exposure"].to_numpy(),
                             cells["treated"].to_numpy(), cells["school_id"].to_numpy(),
                             cells["school_year"].to_numpy())
    if m.model == "median":
        return durations.change(data, school_year, "did", horizon=horizon)["estimate"]
    return m.scale * ols_point(data[m.outcome].astype(float).to_numpy(),
                               data["treated"].to_numpy(), data["school_id"].to_numpy(),
                               data["school_year"].to_numpy())


def _randomised(ind: Indicator, data: pd.DataFrame, params: Params) -> dict:
    """The difference-in-differences with randomisation inference (few pilot or comparison
    schools), back on the report's scale."""
    m = METHODS[ind.kind]
    a = params.analysis
    if m.model == "poisson":
        # The Poisson model needs only the school-year cells: reassign those, not the pupils.
        data = (data.groupby(["school_id", "school_year", "year", "group"], observed=True,
                             dropna=False)
                .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                     pilot_start=("pilot_start", "first"), treated=("treated", "max"),
                     period=("period", "first")).reset_index())
    if m.model == "poisson":
        def statistic(d: pd.DataFrame) -> float:  # already one row per school-year
            return poisson_point(d["count"].to_numpy(), d["exposure"].to_numpy(),
                                 d["treated"].to_numpy(), d["school_id"].to_numpy(),
                                 d["school_year"].to_numpy())
    else:
        def statistic(d: pd.DataFrame) -> float:
            return did_statistic(ind.kind, d, params.school_year, a.duration_horizon_days)
    batch = None
    if m.model == "poisson":
        def batch(d: pd.DataFrame, start_years: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                treated = d["year"].to_numpy(float)[:, None] >= start_years
            return poisson_points(d["count"].to_numpy(), d["exposure"].to_numpy(), treated,
                                  d["school_id"].to_numpy(), d["school_year"].to_numpy())
    elif m.model == "median":
        def batch(d: pd.DataFrame, start_years: np.ndarray) -> np.ndarray:
            return durations.did_medians(d, params.school_year, start_years, a.baseline_years)
    elif m.model != "poisson":
        def batch(d: pd.DataFrame, start_years: np.ndarray) -> np.ndarray:
            with np.errstate(invalid="ignore"):
                treated = d["year"].to_numpy(float)[:, None] >= start_years
            return m.scale * ols_points(d[m.outcome].astype(float).to_numpy(), treated,
                                        d["school_id"].to_numpy(), d["school_year"].to_numpy())
    res = randomisation_inference(
        data, statistic,
        params.school_year, a.baseline_years, a.alpha, a.max_reassignments, a.bootstrap_seed,
        batch_statistic=batch, statistic_key=(ind.kind, m.model, m.outcome, m.scale,
                                              a.duration_horizon_days))
    est, low, high = res["estimate"], res["ci_low"], res["ci_high"]
    if m.model == "poisson":
        est, low, high = np.exp(est), np.exp(low), np.exp(high)
    n = int(data["count"].sum()) if m.model == "poisson" else int(len(data))
    note = ("niet te scheiden van de school zelf: met één pilotschool is een effect van de pilot "
            "niet te onderscheiden van wat er verder op die school gebeurde"
            if res["n_pilot"] == 1 else "")
    return {"estimate": est, "ci_low": low, "ci_high": high, "p_value": res["p_value"], "n": n,
            "draws": res["draws"], "p_value_bound": res["p_value_bound"], "note": note}


def _estimate(ind: Indicator, comparison: str, model_text: str, inference: str, res: dict,
              n_clusters: int) -> Estimate:
    return Estimate(ind.id, comparison, f"{model_text}; {methods.inference_text(inference)}",
                    methods.unit_of(ind.kind, comparison), res["estimate"], res["ci_low"],
                    res["ci_high"], res["p_value"], n=res["n"], n_clusters=n_clusters,
                    note=res.get("note", ""), inference=inference, draws=res.get("draws"),
                    p_value_bound=res.get("p_value_bound"))


def before_after(ind: Indicator, data: pd.DataFrame, params: Params,
                 many_schools: bool = False) -> Estimate:
    """The pilot schools' report year against their own baseline years."""
    s = data[data["period"].notna()]
    s = s.assign(post=(s["period"] == "after").astype("int64"))
    inference = _policy(ind.kind, BEFORE_AFTER, s, params, many_schools)
    if METHODS[ind.kind].model == "median":
        s = data  # the cells are found from the periods themselves
    res = fit(ind.kind, s, "post", False, inference, params)
    return _estimate(ind, BEFORE_AFTER, METHODS[ind.kind].before_after, inference, res,
                     int(data.loc[data["period"].notna(), "school_id"].nunique()))


def difference_in_differences(ind: Indicator, data: pd.DataFrame, params: Params,
                              many_schools: bool = False) -> Estimate:
    """Pilot against comparison schools over the analysis years, with school and year effects
    (for durations: the change in the median in days). `many_schools`: the nation's inference
    (cluster-robust) instead of the few-school one."""
    inference = _policy(ind.kind, DID, data, params, many_schools)
    if inference == "randomisation":
        res = _randomised(ind, data, params)
    else:
        res = fit(ind.kind, data, "treated", True, inference, params)
    return _estimate(ind, DID, METHODS[ind.kind].did, inference, res,
                     int(data["school_id"].nunique()))


def hazard_ratio(ind: Indicator, data: pd.DataFrame, params: Params,
                 many_schools: bool = False) -> Estimate:
    """The secondary, technical comparison of a duration: the hazard ratio of a Cox model with
    school strata and school-year dummies (above 1: sooner)."""
    inference = _policy(ind.kind, DID_HAZARD, data, params, many_schools)
    est = cox_twfe(data["days"].to_numpy(dtype=float), data["event"].to_numpy(dtype=float),
                   data["treated"].to_numpy(), data["school_id"].to_numpy(),
                   data["school_year"].to_numpy(), params.analysis.alpha, inference)
    res = dict(zip(("estimate", "ci_low", "ci_high", "p_value"), est, strict=True))
    return _estimate(ind, DID_HAZARD, methods.HAZARD_METHOD, inference,
                     {**res, "n": int(data["days"].notna().sum())},
                     int(data["school_id"].nunique()))


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
    return Estimate(ind.id, EVENT_STUDY, f"{methods.EVENT_STUDY_METHOD}; "
                    f"{methods.inference_text('cluster_jackknife')}", EVENT_STUDY_UNITS[ind.kind],
                    jack["estimate"], jack["ci_low"], jack["ci_high"], jack["p_value"],
                    n=int(data["count"].sum()) if ind.kind == "rate" else int(len(data)),
                    n_clusters=int(panel["school_id"].nunique()),
                    inference="cluster_jackknife")

