"""Every estimate of a report, in one table: one record per (indicator, comparison).

This is what `evaluation estimates` prints and what the notebooks and the whitepaper show; nothing
in a report is computed anywhere else. The primary indicators form one family per comparison for
the multiple-testing correction (Holm or Benjamini-Hochberg, a parameter), and the minimum
detectable effect is stated for the difference-in-differences of each primary indicator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from evaluation.analysis import comparisons, feasibility, methods
from evaluation.analysis.blas import single_threaded_blas
from evaluation.analysis.design import analysis_years, school_design
from evaluation.analysis.indicators import analysis_frames
from evaluation.analysis.statistics import Estimate
from evaluation.params import DEFAULT_PARAMS_DIR, Params
from evaluation.registry import INDICATORS, Indicator

COLUMNS = ["indicator", "name", "theme", "primary", "unit", "method", "comparison", "estimate",
           "ci_low", "ci_high", "p_value", "p_value_adjusted", "significant", "n", "n_clusters",
           "n_missing", "mde", "better", "note", "inference", "draws", "p_value_bound"]
MIN_CLUSTERS = 2
TOO_FEW = "niet geschat: te weinig scholen of waarnemingen"
NO_INTERVAL = ("geen betrouwbaarheidsinterval: te weinig scholen om de pilot vaak genoeg "
               "opnieuw toe te wijzen")
POWER = 0.8
RATIO_UNITS = ("rate ratio", "hazard ratio")
MAX_RATIO_SPAN = 1e4


@dataclass
class EstimateSet:
    """All estimates of one region and school year, plus what they were computed from."""

    table: pd.DataFrame
    params: Params
    design: pd.DataFrame
    years: list[str]
    data: dict[str, pd.DataFrame]  # indicator id -> its records with design columns

    def for_indicator(self, indicator_id: str) -> pd.DataFrame:
        return self.table[self.table["indicator"] == indicator_id]

    def get(self, indicator_id: str, comparison: str) -> pd.Series:
        rows = self.table[(self.table["indicator"] == indicator_id)
                          & (self.table["comparison"] == comparison)]
        if rows.empty:
            raise KeyError(f"no estimate for {indicator_id} / {comparison}")
        return rows.iloc[0]


def _indication_free(ind: Indicator, data: pd.DataFrame, params: Params) -> Estimate:
    """Indication-free against indicated trajectories at pilot schools since their start, within
    the same level of care (hazard ratio of ending: above 1 means shorter)."""
    from evaluation.analysis.fixed_effects import cox_twfe

    d = data[(data["treated"] == 1) & data["indication_free"].notna() & data["level"].notna()]
    inference = methods.inference_for(ind.kind, methods.INDICATION_FREE,
                                      int(d["school_id"].nunique()), 0, 0,
                                      params.analysis.few_schools, params.analysis.few_treated)
    est, low, high, p = cox_twfe(d["days"].to_numpy(float), d["event"].to_numpy(float),
                                 d["indication_free"].astype(int).to_numpy(),
                                 d["school_id"].to_numpy(), None, params.analysis.alpha,
                                 inference, strata=d["level"].astype(str).to_numpy())
    return Estimate(ind.id, methods.INDICATION_FREE,
                    f"{methods.INDICATION_FREE_METHOD}; {methods.inference_text(inference)}",
                    "hazard ratio", est, low, high, p, n=len(d),
                    n_clusters=int(d["school_id"].nunique()), inference=inference)


def _its(ind: Indicator, tables: dict[str, pd.DataFrame], design: pd.DataFrame,
         params: Params, years: list[str]) -> Estimate:
    """Monthly counts with school-year seasonality; comparison schools inform trend and season."""
    from evaluation.analysis.indicators import monthly_event_frame, rate_events
    from evaluation.analysis.timeseries import interrupted_time_series

    events, date_col = rate_events(ind.id, tables)
    monthly = monthly_event_frame(events, date_col, tables)
    d = design.assign(start=design["pilot_start"].where(design["group"] == "pilot"))
    monthly = monthly.merge(d[["school_id", "group", "start"]], on="school_id", how="inner")
    monthly = comparisons.restrict_to_unit(monthly[monthly["school_year"].isin(years)], params)
    monthly = (monthly.groupby(["school_id", "month", "start"], observed=True, dropna=False)
               [["reports", "pupils"]].sum().reset_index())
    inference = methods.inference_for(ind.kind, methods.ITS, int(monthly["school_id"].nunique()),
                                      0, 0, params.analysis.few_schools,
                                      params.analysis.few_treated)
    res = interrupted_time_series(monthly, count="reports", exposure="pupils",
                                  start_col="start", alpha=params.analysis.alpha,
                                  inference=inference)
    return replace(res.level, indicator=ind.id, comparison=methods.ITS,
                   method=f"{methods.ITS_METHOD}; {methods.inference_text(inference)}",
                   inference=inference)


def _guarded(compute, ind: Indicator, comparison: str, data: pd.DataFrame,
             params: Params, gap: str | None = None) -> Estimate | None:
    """Run one comparison; where the data cannot carry it (a table or field the source lacks:
    `gap`; no comparison schools, no year before the start: `feasibility.design_gap`) or the unit
    is too small (a municipality with one school, a handful of records), record why instead of
    failing the whole report. An estimate resting on fewer records than the disclosure threshold
    is withheld as well."""
    pilot = data[data["group"] == "pilot"]
    n_records = int(pilot["count"].sum()) if ind.kind == "rate" else len(pilot)
    missing = Estimate(ind.id, comparison, "", methods.unit_of(ind.kind, comparison), np.nan,
                       np.nan, np.nan, np.nan, n=n_records,
                       n_clusters=int(pilot["school_id"].nunique()), note=TOO_FEW)
    note = gap or feasibility.design_gap(ind, comparison, data, params.school_year)
    if note:
        return replace(missing, note=note)
    if n_records < params.disclosure.min_count or pilot["school_id"].nunique() < 1:
        return missing
    if comparison in (methods.DID, methods.EVENT_STUDY) and "group" in data:
        # A comparison needs at least two comparison schools: with one, the school-clustered
        # (leave-one-school-out) inference has nothing to compare with.
        if data.loc[data["group"] == "comparison", "school_id"].nunique() < MIN_CLUSTERS:
            return missing
    try:
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            est = compute()
    except (ZeroDivisionError, ValueError, np.linalg.LinAlgError):
        return missing
    if est is None and not (ind.kind == "duration" and bool((data["event"] == 0).any())):
        return missing  # the event study needs every school in every year
    if est is not None and (est.n_clusters or 0) < MIN_CLUSTERS:
        return missing
    if est is not None and not _credible(est):
        if est.inference == "randomisation" and np.isfinite([est.estimate, est.p_value]).all():
            # Too few reassignments for an interval: the estimate and its p-value stand.
            return replace(est, ci_low=np.nan, ci_high=np.nan, note=est.note or NO_INTERVAL)
        return missing
    return est


def _credible(est: Estimate) -> bool:
    """An estimate a model produced without converging to one: an interval that is not finite,
    a ratio of zero or an interval of zero width. Shown as not estimated, never as a figure."""
    values = np.array([est.estimate, est.ci_low, est.ci_high], dtype=float)
    if not np.isfinite(values).all() or est.ci_high <= est.ci_low:
        return False
    if est.unit == "procentpunt" and (est.ci_low < -100 or est.ci_high > 100):
        return False  # wider than a share can move: the data do not bound it (two schools)
    if est.unit in RATIO_UNITS and est.ci_low > 0 and est.ci_high / est.ci_low > MAX_RATIO_SPAN:
        return False  # a ratio interval spanning more than four orders of magnitude, likewise
    return not (est.unit in RATIO_UNITS and est.estimate <= 0)


def _records(ind: Indicator, data: pd.DataFrame, params: Params,
             tables: dict[str, pd.DataFrame], design: pd.DataFrame,
             years: list[str]) -> list[Estimate]:
    """The comparisons `methods` gives the indicator, each guarded."""
    gap = feasibility.source_gap(ind.id, tables)
    compute = {
        methods.BEFORE_AFTER: lambda: comparisons.before_after(ind, data, params),
        methods.DID: lambda: comparisons.difference_in_differences(ind, data, params),
        methods.DID_HAZARD: lambda: comparisons.hazard_ratio(ind, data, params),
        methods.EVENT_STUDY: lambda: comparisons.event_study(ind, data, params),
        methods.ITS: lambda: _its(ind, tables, design, params, years),
        methods.INDICATION_FREE: lambda: _indication_free(ind, data, params),
    }
    out = [_guarded(compute[c], ind, c, data, params, gap)
           for c in methods.comparisons_of(ind.id, ind.kind)]
    return [e for e in out if e is not None]


def minimum_detectable_effect(row: pd.Series, alpha: float, power: float = POWER) -> float:
    """Smallest true effect the comparison detects with `power`, from its standard error.

    On the log scale for ratios; expressed back on the estimate's own scale, in the direction of
    improvement is left to the reader: the value is the distance from no effect.
    """
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    zc = stats.norm.ppf(1 - alpha / 2)
    if row["unit"] in RATIO_UNITS:
        se = (np.log(row["ci_high"]) - np.log(row["ci_low"])) / (2 * zc)
        return float(np.exp(-z * se))  # the ratio below 1 that would be detected
    se = (row["ci_high"] - row["ci_low"]) / (2 * zc)
    return float(z * se)


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values, the same arithmetic as statsmodels' `multipletests`
    (which runs a full garbage collection on every call: 35 ms, five times per report)."""
    order = np.argsort(p)
    adjusted = np.maximum.accumulate(p[order] * np.arange(len(p), 0, -1))
    adjusted[adjusted > 1] = 1
    out = np.empty_like(adjusted)
    out[order] = adjusted
    return out


def adjust(table: pd.DataFrame, method: str, alpha: float) -> pd.DataFrame:
    """Adjust the p-values of the primary indicators, one family per comparison."""
    table = table.copy()
    table["p_value_adjusted"] = np.nan
    for _, idx in table[table["primary"]].groupby("comparison").groups.items():
        p = table.loc[idx, "p_value"].to_numpy(dtype=float)
        ok = ~np.isnan(p)
        if ok.any():
            adjusted = np.full(len(p), np.nan)
            adjusted[ok] = (holm(p[ok]) if method == "holm"
                            else multipletests(p[ok], alpha=alpha, method=method)[1])
            table.loc[idx, "p_value_adjusted"] = adjusted
    table["significant"] = table["p_value_adjusted"] < alpha
    table.loc[~table["primary"], "significant"] = table.loc[~table["primary"], "p_value"] < alpha
    return table


def estimate_all(tables: dict[str, pd.DataFrame], params: Params,
                 params_dir: Path = DEFAULT_PARAMS_DIR,
                 indicators: list[str] | None = None) -> EstimateSet:
    """Every comparison of every indicator (or of `indicators`) for one region and school year."""
    with single_threaded_blas():
        return _estimate_all(tables, params, params_dir, indicators)


def _estimate_all(tables: dict[str, pd.DataFrame], params: Params, params_dir: Path,
                  indicators: list[str] | None) -> EstimateSet:
    ids = indicators or list(INDICATORS)
    design, years, frames = design_frames(tables, params, params_dir, ids)
    rows = []
    for ind_id in ids:
        ind = INDICATORS[ind_id]
        data = frames[ind_id]
        for est in _records(ind, data, params, tables, design, years):
            rows.append({**est.to_dict(), "name": ind.name_nl, "theme": ind.theme,
                         "primary": ind.primary, "better": ind.better,
                         "n_missing": int(data.attrs.get("missing", 0))})
    table = pd.DataFrame(rows)
    table = adjust(table, params.analysis.multiple_testing, params.analysis.alpha)
    is_did = table["comparison"] == methods.DID
    table["mde"] = np.nan
    table.loc[is_did, "mde"] = table[is_did].apply(
        minimum_detectable_effect, axis=1, alpha=params.analysis.alpha)
    return EstimateSet(table[COLUMNS], params, design, years, frames)


def design_frames(tables: dict[str, pd.DataFrame], params: Params, params_dir: Path,
                  indicators: list[str], records: dict[str, pd.DataFrame] | None = None
                  ) -> tuple[pd.DataFrame, list[str], dict[str, pd.DataFrame]]:
    """The schools' design, the analysed school years and per indicator its records with the
    design columns. `records`: the indicators' `analysis_frames` of these tables, when already
    made (they do not depend on the params)."""
    design = school_design(params, params_dir)
    years = analysis_years(params, design)
    records = records if records is not None else analysis_frames(indicators, tables)
    frames = {i: comparisons.with_design(records[i], design, params, years) for i in indicators}
    return design, years, frames


def save_estimates(es: EstimateSet, path: Path) -> None:
    """Write the estimate table (Parquet keeps the exact floats the report must repeat)."""
    es.table.to_parquet(path, index=False)


def load_estimates(path: Path, tables: dict[str, pd.DataFrame], params: Params,
                   params_dir: Path = DEFAULT_PARAMS_DIR) -> EstimateSet:
    """The estimates computed once per report, with the cheap record frames rebuilt for figures."""
    table = pd.read_parquet(path)
    design, years, frames = design_frames(tables, params, params_dir,
                                          list(table["indicator"].unique()))
    return EstimateSet(table, params, design, years, frames)


def to_records(es: EstimateSet) -> list[dict]:
    """JSON-ready records with region and school year."""
    t = es.table.assign(region=es.params.region.id, school_year=es.params.school_year)
    t = t.astype(object).where(t.notna(), None)
    return t.to_dict(orient="records")


def format_table(es: EstimateSet) -> str:
    """A plain-text table for the command line (English column names, full precision kept to 3
    decimals)."""
    t = es.table[["indicator", "comparison", "unit", "estimate", "ci_low", "ci_high", "p_value",
                  "p_value_adjusted", "n", "n_clusters"]].copy()
    for col in ("estimate", "ci_low", "ci_high"):
        t[col] = t[col].map(lambda v: f"{v:.3f}")
    for col in ("p_value", "p_value_adjusted"):
        t[col] = t[col].map(lambda v: "" if pd.isna(v) else ("<0.001" if v < 0.001 else f"{v:.3f}"))
    head = (f"Estimates for region {es.params.region.id}, school year {es.params.school_year} "
            f"(alpha {es.params.analysis.alpha}, {es.params.analysis.multiple_testing} correction "
            "across the primary indicators)\n")
    return head + t.to_string(index=False)
