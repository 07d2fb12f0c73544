"""Robustness of the conclusions: the primary indicators re-estimated under reasonable
alternatives, and a check of the parallel-trends assumption behind the comparisons.

Why: every evaluation rests on choices a critical reader could have made differently — how many
school years count as "before", which schools compare, whether the first, still settling pilot
year counts, how a municipality counts its pupils, which estimator. A conclusion that holds only
for one set of choices is fragile, and the whitepaper should say so. `robustness` varies one choice
at a time (a *family*) against the main analysis (difference-in-differences with the run's
params) and records for every (indicator, specification) whether the conclusion holds: an
estimate in the same direction as the main analysis, significant at alpha (unadjusted p-value:
the question is whether a choice changes the conclusion, not a new family of tests).

Families (Dutch labels in the `family` column):

* ``basisperiode`` — analysis.baseline_years 1, 2 and 3 (params);
* ``vergelijkingsgroep`` — only comparison schools that never start a pilot, instead of also
  those that start later ("not yet treated") (data restriction);
* ``telling`` — pupils counted by school location or by residence (analysis.count_by; only in a
  municipality report, where it matters);
* ``invoeringsjaar`` — each pilot school's first pilot year left out (data restriction on the
  records before estimation: the implementation year may not yet show the way of working);
* ``school weggelaten`` — each pilot school left out in turn (one specification per pilot
  school: does one school carry the result?);
* ``schatter`` — event study (Callaway & Sant'Anna) and interrupted time series (rates) next to
  the difference-in-differences.

Every estimate comes from the functions that make the report's estimates (`evaluation.analysis.comparisons`,
guarded as in `evaluation.analysis.estimates`), so the main analysis here equals the report's. The
alternative specifications estimate the difference-in-differences only: that keeps a full run for
a region and school year within a minute.

`parallel_trends` tests the pre-period group-time effects jointly and computes a breakdown value
of the first post-period effect in the style of Rambachan & Roth (2023), see there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.analysis import comparisons, methods
from evaluation.analysis.blas import single_threaded_blas
from evaluation.analysis.estimates import EstimateSet, _guarded, _its, design_frames
from evaluation.analysis.indicators import analysis_frames
from evaluation.analysis.statistics import Estimate
from evaluation.params import DEFAULT_PARAMS_DIR, Params, load_params
from evaluation.registry import INDICATORS, PRIMARY

__all__ = [
    "COLUMNS",
    "FAMILIES",
    "parallel_trends",
    "pre_trend_test",
    "relative_magnitude_interval",
    "robustness",
    "robustness_summary",
]

COLUMNS = ["indicator", "specification", "family", "estimate", "ci_low", "ci_high", "p_value",
           "unit", "n", "holds", "n_clusters", "note"]
MAIN = "hoofdanalyse"
FAMILIES = {
    "main": MAIN,
    "baseline": "basisperiode",
    "comparison": "vergelijkingsgroep",
    "count_by": "telling",
    "first_year": "invoeringsjaar",
    "leave_one_out": "school weggelaten",
    "estimator": "schatter",
}
MAIN_LABEL = f"{MAIN}: {methods.DID}"
NO_TREATED = "niet te schatten: na deze keuze blijven geen pilotjaren over"
RATIO_UNITS = ("rate ratio", "hazard ratio")
ALTERNATIVE_DRAWS = 999


@dataclass(frozen=True)
class _Spec:
    """One alternative: a params change and/or a restriction of the records."""

    family: str
    label: str
    overrides: tuple[str, ...] = ()
    restriction: str | None = None    # "never_treated", "first_year" or "without_school"
    school_id: str | None = None


def _restrict(frame: pd.DataFrame, spec: _Spec) -> pd.DataFrame:
    """Apply the spec's data restriction to one indicator's records (with design columns)."""
    if spec.restriction is None:
        return frame
    pilot = (frame["group"] == "pilot").to_numpy()
    if spec.restriction == "never_treated":
        later = (~pilot) & frame["pilot_start"].notna().to_numpy()
        return frame[~later]
    if spec.restriction == "first_year":
        first = pilot & (frame["year"] == frame["pilot_start"].dt.year).fillna(False).to_numpy()
        return frame[~first]
    if spec.restriction == "without_school":
        return frame[(frame["school_id"] != spec.school_id).to_numpy()]
    raise ValueError(f"unknown restriction {spec.restriction!r}")


def _did(ind_id: str, data: pd.DataFrame, params: Params) -> Estimate:
    """The report's difference-in-differences, guarded as in `estimates`; an explicit note
    where a restriction leaves no treated school-year (the model would silently return 1)."""
    ind = INDICATORS[ind_id]
    if not (data["treated"] == 1).any():
        return Estimate(ind_id, methods.DID, "", methods.UNITS[ind.kind], np.nan, np.nan,
                        np.nan, np.nan, n=0, n_clusters=int(data["school_id"].nunique()),
                        note=NO_TREATED)
    return _guarded(lambda: comparisons.difference_in_differences(ind, data, params), ind,
                    methods.DID, data, params)


def _row(est: Estimate | None, spec_label: str, family: str, ind_id: str) -> dict:
    if est is None:
        return {}
    return {"indicator": ind_id, "specification": spec_label, "family": family,
            "estimate": est.estimate, "ci_low": est.ci_low, "ci_high": est.ci_high,
            "p_value": est.p_value, "unit": est.unit, "n": est.n,
            "n_clusters": est.n_clusters, "note": est.note}


def _direction(estimate: float, unit: str) -> float:
    """Direction of the change in the indicator itself: +1 higher, -1 lower, 0 none, NaN if
    missing. A rate ratio above 1 means more events; a hazard ratio above 1 means the event
    comes sooner, i.e. fewer days (the event study measures durations in days)."""
    if not np.isfinite(estimate):
        return np.nan
    if unit == "hazard ratio":
        return float(-np.sign(np.log(estimate)))
    return float(np.sign(np.log(estimate) if unit in RATIO_UNITS else estimate))


def _specs(params: Params, design: pd.DataFrame, main_overrides: tuple[str, ...],
           municipality: str | None) -> list[_Spec]:
    """The declared alternatives for this run (duplicates of the main analysis left out)."""
    specs = []
    fam = FAMILIES
    for k in (1, 2, 3):
        if k != params.analysis.baseline_years:
            word = "schooljaar" if k == 1 else "schooljaren"
            specs.append(_Spec(fam["baseline"], f"basisperiode {k} {word}",
                               (*main_overrides, f"analysis.baseline_years={k}")))
    comparison = design[design["group"] == "comparison"]
    if comparison["pilot_start"].notna().any():
        specs.append(_Spec(fam["comparison"], "alleen vergelijkingsscholen zonder pilot",
                           restriction="never_treated"))
    if municipality is not None:
        other = "residence" if params.analysis.count_by == "school" else "school"
        text = "woonplaats" if other == "residence" else "schoollocatie"
        specs.append(_Spec(fam["count_by"], f"leerlingen geteld naar {text}",
                           (*main_overrides, f"analysis.count_by={other}")))
    specs.append(_Spec(fam["first_year"], "zonder het eerste pilotjaar van elke school",
                       restriction="first_year"))
    pilots = design[design["group"] == "pilot"]
    shared = set(pilots.loc[pilots["school_name"].duplicated(keep=False), "school_name"])
    for _, school in pilots.iterrows():
        name = school["school_name"]
        label = f"zonder {name} ({school['school_id']})" if name in shared else f"zonder {name}"
        specs.append(_Spec(fam["leave_one_out"], label, restriction="without_school",
                           school_id=school["school_id"]))
    return specs


def robustness(tables: dict[str, pd.DataFrame], region: str, school_year: str,
               params_dir: Path = DEFAULT_PARAMS_DIR, base_overrides: tuple[str, ...] = (),
               municipality: str | None = None,
               indicators: tuple[str, ...] | list[str] = PRIMARY,
               estimates: EstimateSet | None = None) -> pd.DataFrame:
    """One row per (indicator, specification): the main analysis, the other estimators and every
    declared alternative (see the module docstring), with `holds`: same direction as the main
    difference-in-differences and p < alpha. Columns: `COLUMNS`.

    `estimates`: the report's own estimates for the same params; the main analysis and the other
    estimators are then taken from them instead of being fitted a second time (same functions,
    same data: the same numbers, tested)."""
    with single_threaded_blas():
        return _robustness(tables, region, school_year, params_dir, tuple(base_overrides),
                           municipality, list(indicators), estimates)


def _reused(es: EstimateSet | None, params: Params, ids: list[str]) -> EstimateSet | None:
    """The report's estimates when they were made with these params for every indicator."""
    if es is None or es.params.model_dump_json() != params.model_dump_json():
        return None
    return es if set(ids) <= set(es.table["indicator"]) else None


def _from_table(es: EstimateSet, ind_id: str, comparison: str) -> Estimate | None:
    rows = es.table[(es.table["indicator"] == ind_id) & (es.table["comparison"] == comparison)]
    if rows.empty:  # the report has no such estimate: the comparison returned nothing
        return None
    r = rows.iloc[0]
    return Estimate(ind_id, comparison, str(r["method"]), str(r["unit"]), float(r["estimate"]),
                    float(r["ci_low"]), float(r["ci_high"]), float(r["p_value"]), n=int(r["n"]),
                    n_clusters=None if pd.isna(r["n_clusters"]) else int(r["n_clusters"]),
                    note="" if pd.isna(r["note"]) else str(r["note"]))


def _robustness(tables: dict[str, pd.DataFrame], region: str, school_year: str,
                params_dir: Path, base_overrides: tuple[str, ...], municipality: str | None,
                ids: list[str], estimates: EstimateSet | None = None) -> pd.DataFrame:
    params = load_params(region, school_year, base_overrides, params_dir, municipality)
    es = _reused(estimates, params, ids)
    if es is not None:
        design, years, frames = es.design, es.years, es.data
    else:
        design, years, frames = design_frames(tables, params, params_dir, ids)
    rows: list[dict] = []

    # The main analysis and the other estimators, as the report computes them.
    for ind_id in ids:
        ind, data = INDICATORS[ind_id], frames[ind_id]
        if es is not None and (data["treated"] == 1).any():
            rows.append(_row(_from_table(es, ind_id, methods.DID), MAIN_LABEL, MAIN, ind_id))
        else:
            rows.append(_row(_did(ind_id, data, params), MAIN_LABEL, MAIN, ind_id))
        if es is not None:
            rows.append(_row(_from_table(es, ind_id, methods.EVENT_STUDY), methods.EVENT_STUDY,
                             FAMILIES["estimator"], ind_id))
        else:
            rows.append(_row(_guarded(lambda ind=ind, data=data: comparisons.event_study(
                ind, data, params), ind, methods.EVENT_STUDY, data, params),
                methods.EVENT_STUDY, FAMILIES["estimator"], ind_id))
        if ind.kind == "rate" and es is not None:
            rows.append(_row(_from_table(es, ind_id, methods.ITS), methods.ITS,
                             FAMILIES["estimator"], ind_id))
        elif ind.kind == "rate":
            rows.append(_row(_guarded(lambda ind=ind, data=data: _its(
                ind, tables, design, params, years), ind, methods.ITS, data, params),
                methods.ITS, FAMILIES["estimator"], ind_id))

    # The alternatives: the difference-in-differences only.
    records: dict[str, pd.DataFrame] | None = None  # the params-free records, made once
    for spec in _specs(params, design, base_overrides, municipality):
        if spec.overrides:
            p = load_params(region, school_year, spec.overrides, params_dir, municipality)
            records = records if records is not None else analysis_frames(ids, tables)
            spec_frames = design_frames(tables, p, params_dir, ids, records)[2]
        else:
            p, spec_frames = params, frames
        p = _fewer_draws(p)
        for ind_id in ids:
            data = _restrict(spec_frames[ind_id], spec)
            rows.append(_row(_did(ind_id, data, p), spec.label, spec.family, ind_id))

    out = pd.DataFrame([r for r in rows if r])
    return _with_holds(out, params.analysis.alpha)[COLUMNS]


def _fewer_draws(params: Params) -> Params:
    """The alternatives ask whether the conclusion holds, not for a fourth decimal of a p-value:
    their bootstraps use at most `ALTERNATIVE_DRAWS` draws (the main analysis keeps the report's)."""
    a = params.analysis
    if a.bootstrap_draws <= ALTERNATIVE_DRAWS:
        return params
    return params.model_copy(update={"analysis": a.model_copy(
        update={"bootstrap_draws": ALTERNATIVE_DRAWS})})


def _with_holds(df: pd.DataFrame, alpha: float) -> pd.DataFrame:
    df = df.copy()
    direction = np.array([_direction(e, u) for e, u in zip(df["estimate"], df["unit"],
                                                            strict=True)])
    main = df["family"] == MAIN
    ref = pd.Series(direction[main.to_numpy()], index=df.loc[main, "indicator"])
    ref_dir = df["indicator"].map(ref).to_numpy(dtype=float)
    p = df["p_value"].to_numpy(dtype=float)
    df["holds"] = (direction == ref_dir) & (ref_dir != 0) & (p < alpha)
    df.attrs["alpha"] = alpha
    return df


def robustness_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per indicator: how many estimable specifications keep the main conclusion, with a plain
    Dutch sentence for the report. Specifications that could not be estimated are counted apart.
    Where the main analysis itself shows no significant effect, the sentence says so instead of
    calling that a conclusion that fails to hold."""
    rows = []
    for ind_id, g in df.groupby("indicator", sort=False):
        estimated = g[g["estimate"].notna()]
        y, x = len(estimated), int(estimated["holds"].sum())
        main = g[g["family"] == MAIN]
        main_holds = bool(main["holds"].any())
        rows.append({"indicator": ind_id, "n_specifications": y, "n_holds": x,
                     "share_holds": x / y if y else np.nan,
                     "n_not_estimated": int(len(g) - y), "main_holds": main_holds,
                     "sentence": _sentence(x, y, main_holds)})
    return pd.DataFrame(rows)


def _quantity(x: int, y: int) -> str:
    if x == y:
        return "alle"
    if x == 0:
        return "geen van de"
    if 2 * x > y:
        return "de meeste"
    if 2 * x == y:
        return "de helft van de"
    return "weinig"


def _sentence(x: int, y: int, main_holds: bool) -> str:
    if y == 0:
        return "Geen enkele specificatie kon worden geschat."
    if main_holds:
        return f"De conclusie houdt stand in {_quantity(x, y)} specificaties ({x} van {y})."
    return (f"De hoofdanalyse toont geen significant effect; een significant effect in dezelfde "
            f"richting verschijnt in {_quantity(x, y)} specificaties ({x} van {y}).")


# --- parallel trends -------------------------------------------------------------------------------

def relative_magnitude_interval(estimate: float, se: float, max_pre: float, mbar: float,
                                alpha: float = 0.05) -> tuple[float, float]:
    """Conservative interval for a post-period effect when its bias may be up to
    mbar x the largest pre-period change: [est - mbar·maxpre - z·se, est + mbar·maxpre + z·se]."""
    z = stats.norm.ppf(1 - alpha / 2)
    half = mbar * max_pre + z * se
    return float(estimate - half), float(estimate + half)


def pre_trend_test(panel: pd.DataFrame, unit: str = "school_id", time: str = "year",
                   cohort: str = "cohort", outcome: str = "value",
                   control: str = "not_yet_treated", alpha: float = 0.05, B: int = 999,
                   seed: int = 0) -> dict:
    """Pre-period group-time effects with a joint Wald test, and the relative-magnitudes
    breakdown value of the first post-period effect, on a balanced school-year panel (one unit
    per school; schools are the clusters).

    The pre-period ATT(g, t) (t < g, varying base period t - 1: each is the change from one year
    to the next, treated minus control) would all be 0 under parallel trends. Wald statistic
    theta' V^+ theta with V the covariance of the influence functions of `staggered.att_gt` (the
    covariance behind its standard errors), chi-square with rank(V) degrees of freedom: `wald_p`,
    the pre-test that R's `did` prints. With cohorts of a handful of schools that test is far too
    eager: V is estimated from about as many schools per cohort as it has pre-period cells
    (a simulation with 6 schools per cohort and 5 cells rejects a true null 1 time in 3 at 5%).
    `wald_p_bootstrap` is therefore the one to report: a restricted wild bootstrap of the same
    studentised statistic (null imposed: one common mean change per cell; Webb weights per
    school; V re-estimated in every draw), 9% instead of 33% in that simulation.

    Sensitivity in the style of Rambachan & Roth (2023), relative magnitudes: the bias of the
    first post-period effect (event time 0) is bounded by M̄ times the largest absolute
    pre-period change (event-time aggregates e < 0, each a one-year change); the robust interval
    is `relative_magnitude_interval`. The breakdown value is the largest M̄ for which that
    interval excludes 0: (|est| - z·se) / max_pre, and 0 when the effect is not significant even
    under exact parallel trends. This is a simplified, conservative version of `honestdid`: it
    adds the bias bound to both ends of the interval instead of computing the optimal
    (FLCI / conditional) confidence set, and, unlike `honestdid`, it treats the largest pre-period
    change as known rather than estimated.
    """
    from evaluation.analysis import staggered as st
    from evaluation.analysis.inference import draw_weights

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = st.att_gt(panel, unit, time, cohort, outcome, control=control, alpha=alpha,
                        base_period="varying")
        # att_gt keeps only the diagonal of the covariance: rebuild its influence functions with
        # the same helpers (same cells, same order).
        p = st._prepare(panel, unit, time, cohort, outcome, control, None)
        cells = st._cells_for(p, control, "varying")
        att, _, inf = st._gt_influence(p, cells, control)
    n = len(p.cohort)
    post = np.array([c[3] for c in cells], dtype=bool)
    pre = ~post & np.isfinite(att)
    gt = res.group_time.assign(event_time=lambda d: d["time"] - d["cohort"])
    pre_coef = gt[pre].reset_index(drop=True)

    wald, df, wald_p, wald_p_boot = np.nan, 0, np.nan, np.nan
    if pre.any():
        cov = inf[:, pre].T @ inf[:, pre] / n**2
        df = int(np.linalg.matrix_rank(cov, hermitian=True))
        wald = float(att[pre] @ np.linalg.pinv(cov, hermitian=True) @ att[pre])
        wald_p = float(stats.chi2.sf(wald, df)) if df else np.nan
        dy, treated, ctrl = _pre_cells(p, [c for c, keep in zip(cells, pre, strict=True) if keep],
                                       control)
        theta, V = _cells_theta_cov(dy[None], treated, ctrl)
        if not np.allclose(theta[0], att[pre]) or not np.allclose(V[0], cov):
            raise RuntimeError("pre-period cells differ from staggered.att_gt")   # kept in step
        # Restricted wild bootstrap: under H0 treated and controls share one mean change.
        used = treated + ctrl
        mean0 = (dy * used).sum(axis=0) / used.sum(axis=0)
        v = draw_weights("webb", B, n, np.random.default_rng(seed))
        theta_b, V_b = _cells_theta_cov(mean0 + (dy - mean0) * used * v[:, :, None], treated,
                                        ctrl)
        wald_b = np.einsum("bk,bkl,bl->b", theta_b, np.linalg.pinv(V_b, hermitian=True),
                           theta_b)
        wald_p_boot = float(np.mean(wald_b >= wald * (1 - 1e-12)))

    ev = res.event_time
    pre_ev = ev[ev["event_time"] < 0]
    first = ev[ev["event_time"] == 0]
    max_pre = float(pre_ev["att"].abs().max()) if len(pre_ev) else np.nan
    est = float(first["att"].iloc[0]) if len(first) else np.nan
    se = float(first["se"].iloc[0]) if len(first) else np.nan
    margin = abs(est) - stats.norm.ppf(1 - alpha / 2) * se
    if not (np.isfinite(margin) and np.isfinite(max_pre)):
        breakdown = np.nan
    elif margin <= 0:
        breakdown = 0.0
    else:
        breakdown = margin / max_pre if max_pre > 0 else np.inf
    return {"pre_coefficients": pre_coef, "pre_event_time": pre_ev.reset_index(drop=True),
            "wald_stat": wald, "wald_df": df, "wald_p": wald_p, "wald_p_bootstrap": wald_p_boot,
            "breakdown_mbar": float(breakdown), "first_post": {"att": est, "se": se},
            "max_pre": max_pre, "n_clusters": n}


def _pre_cells(p, cells: list[tuple[int, int, int, bool]], control: str
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit and cell: the outcome change from base to t, and 0/1 membership of the treated
    cohort and of the controls (the rule of `staggered._gt_influence`; `pre_trend_test` checks
    that both give the same effects and covariance)."""
    t0 = int(p.times[0])
    dy = np.column_stack([p.y[:, t - t0] - p.y[:, base - t0] for _, t, base, _ in cells])
    treated = np.column_stack([p.cohort == c for c, _, _, _ in cells]).astype(float)
    never = p.cohort == 0
    ctrl = np.column_stack([never if control == "never_treated" else
                            never | ((p.cohort > max(t, base)) & (p.cohort != c))
                            for c, t, base, _ in cells]).astype(float)
    return dy, treated, ctrl


def _cells_theta_cov(dy: np.ndarray, treated: np.ndarray, ctrl: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Difference in mean change (treated - controls) per cell and its influence-function
    covariance, for a stack of outcome changes dy (draws x units x cells)."""
    n = dy.shape[1]
    n_t, n_c = treated.sum(axis=0), ctrl.sum(axis=0)
    m_t = (dy * treated).sum(axis=1) / n_t
    m_c = (dy * ctrl).sum(axis=1) / n_c
    inf = n * (treated * (dy - m_t[:, None]) / n_t - ctrl * (dy - m_c[:, None]) / n_c)
    return m_t - m_c, np.einsum("bnk,bnl->bkl", inf, inf) / n**2


def parallel_trends(tables: dict[str, pd.DataFrame], params: Params,
                    params_dir: Path = DEFAULT_PARAMS_DIR,
                    indicator: str = "care_reports_per_100",
                    data: pd.DataFrame | None = None) -> dict:
    """`pre_trend_test` on the indicator's school-year panel as the event study builds it
    (schools observed in every analysis year; rates per 100 pupils, shares in percent). Raise
    ValueError where the event study does not apply (durations with ongoing trajectories).
    `data`: the indicator's records with the design columns for these params, when at hand
    (`EstimateSet.data`)."""
    ind = INDICATORS[indicator]
    if data is None:
        data = design_frames(tables, params, params_dir, [indicator])[2][indicator]
    if ind.kind == "duration" and bool((data["event"] == 0).any()):
        raise ValueError(f"{indicator}: censored durations have no school-year mean; the "
                         "parallel-trends check needs the event-study panel")
    panel = comparisons.school_year_panel(ind, data)
    years = panel["year"].nunique()
    complete = panel.groupby("school_id")["year"].transform("nunique") == years
    panel = panel[complete & panel["value"].notna()]
    out = pre_trend_test(panel, alpha=params.analysis.alpha)
    out["indicator"] = indicator
    return out

