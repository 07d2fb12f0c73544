"""Staggered difference-in-differences: Callaway & Sant'Anna (2021) group-time effects.

Pilot schools start in different school years. A two-way fixed-effects regression then compares
late starters with early starters that are already treated, and with effects that grow over time
its estimate is biased (it can even take the wrong sign). The estimator of Callaway and Sant'Anna
avoids those "forbidden comparisons": every ATT(g, t) is a 2x2 difference-in-differences of one
start cohort `g` against units that are not (yet) treated, and summaries are explicit weighted
averages of those cells.

This module follows the R package `did` (Callaway & Sant'Anna, version 2.x) for the balanced-panel,
no-covariate case, where its outcome-regression, IPW and doubly-robust estimators coincide:

* the base period is `t - 1` before treatment ("varying", the `did` default) and `g - 1` after it;
* "not yet treated" controls are never-treated units plus units with cohort > max(t, base);
* standard errors come from the influence functions, clustered at the unit or at a coarser level
  (cluster sums, no small-sample factor, as `did`); optionally a cluster multiplier bootstrap;
* aggregations are those of `did::aggte` ("simple", "group", "dynamic"), including the extra
  influence-function term for the estimated cohort-share weights.

`tests/test_staggered.py` reproduces the numbers that `did` publishes for its `mpdta` example.
Not implemented: covariates, anticipation periods, sampling weights, unbalanced panels,
simultaneous (uniform) confidence bands, the "calendar" aggregation.

Few clusters: like `did`, cluster-sum standard errors carry no small-sample correction, so with the
10-30 schools of one region they are too small; treat them as a lower bound there.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import norm
from statsmodels.regression.linear_model import OLS

__all__ = [
    "StaggeredInputError",
    "StaggeredResult",
    "att_gt",
    "did_from_csv",
    "twfe",
]

CONTROLS = ("never_treated", "not_yet_treated")
BASE_PERIODS = ("varying", "universal")
BOOTSTRAP_WEIGHTS = ("mammen", "rademacher")


class StaggeredInputError(ValueError):
    """The panel cannot be used for a staggered DiD; the message names the column and problem."""


@dataclass
class StaggeredResult:
    """Group-time ATTs and their `did::aggte`-style summaries, with the metadata a report needs.

    `cohort_overall` is the "group" summary (the average over cohorts of each cohort's average
    effect, `did`'s recommended overall ATT); `event_time_overall` averages the event-time effects
    for e >= 0 ("dynamic" summary).
    """

    group_time: pd.DataFrame
    simple: dict
    cohort: pd.DataFrame
    event_time: pd.DataFrame
    control: str
    n_units: int
    n_clusters: int
    method: str
    cohort_overall: dict = field(default_factory=dict)
    event_time_overall: dict = field(default_factory=dict)
    base_period: str = "varying"
    alpha: float = 0.05

    def to_dict(self) -> dict:
        """JSON-ready form: NaN becomes None, numpy scalars become Python numbers."""
        return {
            "group_time": _records(self.group_time),
            "aggregations": {
                "simple": _clean(self.simple),
                "cohort": _records(self.cohort),
                "cohort_overall": _clean(self.cohort_overall),
                "event_time": _records(self.event_time),
                "event_time_overall": _clean(self.event_time_overall),
            },
            "control": self.control,
            "base_period": self.base_period,
            "alpha": self.alpha,
            "n_units": int(self.n_units),
            "n_clusters": int(self.n_clusters),
            "method": self.method,
        }


def _py(value: object) -> object:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _clean(d: dict) -> dict:
    return {k: _py(v) for k, v in d.items()}


def _records(frame: pd.DataFrame) -> list[dict]:
    return [_clean(r) for r in frame.to_dict(orient="records")]


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------

@dataclass
class _Panel:
    """The balanced panel in wide form: one row per unit, one column per period."""

    y: np.ndarray            # (n_units, n_times)
    times: np.ndarray        # consecutive integers
    cohort: np.ndarray       # per unit, 0 = never treated (after did's recoding)
    cluster_codes: np.ndarray | None
    n_clusters: int
    units: np.ndarray


def _fail(column: str, problem: str) -> StaggeredInputError:
    return StaggeredInputError(f"column '{column}': {problem}")


def _examples(values: pd.Index | np.ndarray | list, k: int = 5) -> str:
    values = list(values)
    shown = ", ".join(str(v) for v in values[:k])
    return shown + (f" (and {len(values) - k} more)" if len(values) > k else "")


def _validate(panel: pd.DataFrame, unit: str, time: str, cohort: str, outcome: str,
              cluster: str | None) -> pd.DataFrame:
    """Check the long panel and return it sorted, with cohort NaN recoded to 0.

    Each check raises with the column named, so a user can fix the input file rather than debug
    the estimator.
    """
    if not isinstance(panel, pd.DataFrame):
        raise StaggeredInputError("panel: expected a pandas DataFrame")
    needed = [unit, time, cohort, outcome] + ([cluster] if cluster else [])
    for col in needed:
        if col not in panel.columns:
            raise _fail(col, f"missing from the panel (columns present: {_examples(panel.columns, 12)})")
    df = panel[list(dict.fromkeys(needed))].copy()
    if df[unit].isna().any():
        raise _fail(unit, f"{int(df[unit].isna().sum())} rows have no unit id")

    for col in (outcome, time, cohort):
        s = df[col]
        is_bool = pd.api.types.is_bool_dtype(s)
        if not pd.api.types.is_numeric_dtype(s) or (is_bool and col != outcome):
            kind = "numeric" if col == outcome else "integer"
            raise _fail(col, f"must be {kind}, found dtype {s.dtype}")
    y = df[outcome].to_numpy(dtype=float, na_value=np.nan)    # a 0/1 (bool) outcome is fine
    if not np.isfinite(y).all():
        bad = df.loc[~np.isfinite(y), unit].unique()
        raise _fail(outcome, f"missing or infinite values for units {_examples(bad)}")
    df[outcome] = y

    t = df[time].to_numpy(dtype=float, na_value=np.nan)
    if not np.isfinite(t).all() or (t != np.round(t)).any():
        raise _fail(time, "must hold whole numbers without gaps (map school years or months "
                          "to consecutive integers first)")
    times = np.unique(t)
    if len(times) < 2:
        raise _fail(time, "needs at least two periods")
    gaps = times[1:][np.diff(times) != 1]
    if len(gaps):
        raise _fail(time, f"periods are not consecutive integers: gap before {_examples(gaps.astype(int))} "
                          f"(periods present: {_examples(times.astype(int), 12)})")
    df[time] = t.astype(np.int64)

    g = df[cohort].to_numpy(dtype=float, na_value=np.nan)
    g = np.where(np.isnan(g), 0.0, g)
    if not np.isfinite(g).all() or (g != np.round(g)).any() or (g < 0).any():
        raise _fail(cohort, "must be the first treated period (an integer), 0 or empty when "
                            "never treated")
    df[cohort] = g.astype(np.int64)

    dup = df.duplicated([unit, time], keep=False)
    if dup.any():
        pairs = df.loc[dup, [unit, time]].drop_duplicates().head(5).itertuples(index=False)
        raise _fail(f"{unit}/{time}", "duplicate (unit, time) rows, e.g. "
                    + ", ".join(f"({u}, {tt})" for u, tt in pairs))

    per_unit = df.drop_duplicates([unit, cohort])
    changing = per_unit.loc[per_unit.duplicated(unit, keep=False), unit].unique()
    if len(changing):
        raise _fail(cohort, f"changes over time within units {_examples(changing)}; the cohort "
                            "(first treated period) must be constant per unit")
    if cluster:
        if df[cluster].isna().any():
            raise _fail(cluster, "has missing values")
        per_unit = df.drop_duplicates([unit, cluster])
        changing = per_unit.loc[per_unit.duplicated(unit, keep=False), unit].unique()
        if len(changing):
            raise _fail(cluster, f"changes over time within units {_examples(changing)}; a unit "
                                 "must stay in one cluster")

    counts = df.groupby(unit, sort=False).size()
    short = counts.index[counts.to_numpy() != len(times)]
    if len(short):
        raise _fail(unit, f"unbalanced panel: units {_examples(short)} are not observed in all "
                          f"{len(times)} periods ({int(times[0])}-{int(times[-1])})")
    return df.sort_values([unit, time], kind="stable").reset_index(drop=True)


def _prepare(panel: pd.DataFrame, unit: str, time: str, cohort: str, outcome: str,
             control: str, cluster: str | None) -> _Panel:
    """Validate, apply `did`'s recodings and pivot to wide form."""
    if control not in CONTROLS:
        raise StaggeredInputError(f"control: expected one of {CONTROLS}, got {control!r}")
    df = _validate(panel, unit, time, cohort, outcome, cluster)
    return _recode(*_pivot(df, unit, time, cohort, outcome, cluster), cohort, control)


def _pivot(df: pd.DataFrame, unit: str, time: str, cohort: str, outcome: str,
           cluster: str | None) -> tuple[np.ndarray, ...]:
    """The validated long panel (sorted by unit, then time) as wide arrays: outcomes, periods,
    and per unit its cohort, id and cluster."""
    times = np.sort(df[time].unique())
    n_t = len(times)
    y = df[outcome].to_numpy(dtype=float).reshape(-1, n_t)   # sorted by unit, then time
    first = df.iloc[::n_t]
    g = first[cohort].to_numpy(dtype=np.int64)
    units = first[unit].to_numpy()
    clusters = first[cluster].to_numpy() if cluster else None
    return y, times, g, units, clusters


def _recode(y: np.ndarray, times: np.ndarray, g: np.ndarray, units: np.ndarray,
            clusters: np.ndarray | None, cohort: str, control: str) -> _Panel:
    """`did`'s recodings of the wide panel (of all units, or of the units a jackknife keeps)."""
    g = g.copy()
    # As in did: a start after the window is "never treated" within it, and units treated from
    # the first period on have no untreated period to difference from, so they are dropped.
    g[g > times[-1]] = 0
    always = (g > 0) & (g <= times[0])
    if always.any():
        warnings.warn(f"column '{cohort}': dropped {int(always.sum())} units already treated in "
                      f"the first period {int(times[0])} (no pre-treatment period)", stacklevel=4)
        keep = ~always
        y, g, units = y[keep], g[keep], units[keep]
        clusters = clusters[keep] if clusters is not None else None

    if not (g == 0).any():
        if control == "never_treated":
            raise _fail(cohort, "no never-treated units (0 or empty); use "
                                "control='not_yet_treated' or add comparison units")
        # did: the last cohort only serves as a control, so periods from its start are dropped.
        last = g.max()
        cols = times < last
        if cols.sum() < 2:
            raise _fail(cohort, "no never-treated units and fewer than two periods before the "
                                "last cohort starts")
        y, times = y[:, cols], times[cols]
    if not ((g > times[0]) & (g <= times[-1])).any():
        raise _fail(cohort, "no unit starts treatment inside the observed periods")

    if clusters is not None:
        codes, uniq = pd.factorize(clusters, sort=True)
        return _Panel(y, times, g, codes.astype(np.int64), len(uniq), units)
    return _Panel(y, times, g, None, len(g), units)


def simple_att_leave_one_out(panel: pd.DataFrame, unit: str, time: str, cohort: str,
                             outcome: str, control: str = "not_yet_treated",
                             cluster: str | None = None, base_period: str = "varying"
                             ) -> tuple[np.ndarray, np.ndarray]:
    """The clusters (or units) in order of appearance and, for each, `att_gt(...).simple["att"]`
    of the panel without it (NaN where that panel cannot be estimated): what a cluster jackknife
    needs, from one validated wide panel instead of validating and pivoting a copy per cluster.
    The same rows and arithmetic as `att_gt` on the reduced panel, so the same numbers."""
    if control not in CONTROLS:
        raise StaggeredInputError(f"control: expected one of {CONTROLS}, got {control!r}")
    key = cluster or unit
    labels = pd.unique(panel[key])
    y, times, g, units, clusters = _pivot(_validate(panel, unit, time, cohort, outcome, cluster),
                                          unit, time, cohort, outcome, cluster)
    of_unit = clusters if cluster else units
    out = np.full(len(labels), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, label in enumerate(labels):
            keep = of_unit != label
            if not keep.any():
                continue
            try:
                p = _recode(y[keep], times, g[keep], units[keep],
                            None if clusters is None else clusters[keep], cohort, control)
                out[i] = _simple_att(p, control, base_period)
            except (StaggeredInputError, ValueError, IndexError):
                continue
    return labels, out


def _simple_att(p: _Panel, control: str, base_period: str) -> float:
    """`att_gt`'s "simple" aggregation without its influence functions; ValueError where
    `att_gt` fails for want of a post-treatment cell."""
    cells = _cells_for(p, control, base_period)
    att = _gt_influence(p, cells, control)[0]
    g_cell = np.array([c[0] for c in cells], dtype=np.int64)
    post = np.array([c[3] for c in cells], dtype=bool)
    cohorts = np.unique(g_cell)
    pg = np.array([(p.cohort == c).mean() for c in cohorts])
    pg_cell = pg[np.searchsorted(cohorts, g_cell)]
    keep = np.flatnonzero(post & np.isfinite(att))
    if not len(keep):
        raise ValueError("no post-treatment cell")
    w = pg_cell[keep] / pg_cell[keep].sum()
    return float(w @ att[keep])


# --------------------------------------------------------------------------------------------
# estimation
# --------------------------------------------------------------------------------------------

def _gt_influence(p: _Panel, cells: list[tuple[int, int, int, bool]], control: str
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ATT(g,t), the units used, and the n x K influence-function matrix (did's scaling).

    Without covariates the outcome-regression DiD is the difference of mean changes; its
    influence function for unit i is n * [D_i (dY_i - mean_T) / n_T - C_i (dY_i - mean_C) / n_C]
    (DRDID::reg_did_panel times did's n/n1 rescaling), so SE = sqrt(sum IF^2) / n.
    """
    n = len(p.cohort)
    t0 = int(p.times[0])
    att = np.full(len(cells), np.nan)
    n_used = np.zeros(len(cells), dtype=np.int64)
    inf = np.zeros((n, len(cells)))
    never = p.cohort == 0
    for k, (c, t, base, _post) in enumerate(cells):
        if t == base:                      # universal base period: normalised to 0
            att[k] = 0.0
            continue
        treated = p.cohort == c
        if control == "never_treated":
            ctrl = never
        else:
            ctrl = never | ((p.cohort > max(t, base)) & ~treated)
        n_t, n_c = int(treated.sum()), int(ctrl.sum())
        n_used[k] = n_t + n_c
        if n_t == 0 or n_c == 0:
            continue
        dy = p.y[:, t - t0] - p.y[:, base - t0]
        dy_t, dy_c = dy[treated], dy[ctrl]
        m_t, m_c = dy_t.mean(), dy_c.mean()
        att[k] = m_t - m_c
        inf[treated, k] = n * (dy_t - m_t) / n_t
        inf[ctrl, k] = -n * (dy_c - m_c) / n_c
    return att, n_used, inf


def _weights_if(keep_g: np.ndarray, pg: np.ndarray, cohort: np.ndarray) -> np.ndarray:
    """did's `wif`: influence of estimating the cohort-share weights pg (n x k)."""
    centered = (cohort[:, None] == keep_g[None, :]).astype(float) - pg[None, :]
    s = pg.sum()
    return centered / s - centered.sum(axis=1, keepdims=True) * (pg / s**2)[None, :]


def _aggregate(att: np.ndarray, inf: np.ndarray, idx: np.ndarray, pg_cell: np.ndarray,
               g_cell: np.ndarray, cohort: np.ndarray, with_wif: bool) -> tuple[float, np.ndarray]:
    """Weighted average of ATT(g,t) over `idx` (weights pg) and its influence function."""
    w = pg_cell[idx] / pg_cell[idx].sum()
    est = float(w @ att[idx])
    if_agg = inf[:, idx] @ w
    if with_wif:
        if_agg = if_agg + _weights_if(g_cell[idx], pg_cell[idx], cohort) @ att[idx]
    return est, if_agg


def _cluster_sums(inf: np.ndarray, codes: np.ndarray | None, n_clusters: int) -> np.ndarray:
    if codes is None:
        return inf
    n = inf.shape[0]
    member = sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(n_clusters, n))
    return np.asarray(member @ inf)


def _bootstrap_se(sums: np.ndarray, n: int, draws: int, seed: int, weights: str,
                  chunk: int = 250) -> np.ndarray:
    """Multiplier bootstrap at the cluster level, SE from the normalised IQR (as did::mboot)."""
    rng = np.random.default_rng(seed)
    n_c = sums.shape[0]
    out = np.empty((draws, sums.shape[1]))
    root5 = np.sqrt(5.0)
    for start in range(0, draws, chunk):
        b = min(chunk, draws - start)
        if weights == "mammen":
            low = rng.random((b, n_c)) < (root5 + 1) / (2 * root5)
            v = np.where(low, (1 - root5) / 2, (1 + root5) / 2)
        else:
            v = rng.choice(np.array([-1.0, 1.0]), size=(b, n_c))
        out[start:start + b] = v @ sums
    q75, q25 = np.quantile(out, [0.75, 0.25], axis=0, method="inverted_cdf")
    return (q75 - q25) / (norm.ppf(0.75) - norm.ppf(0.25)) / n


def att_gt(panel: pd.DataFrame, unit: str, time: str, cohort: str, outcome: str,
           control: str = "never_treated", cluster: str | None = None, alpha: float = 0.05,
           base_period: str = "varying", bootstrap: int = 0, seed: int = 0,
           bootstrap_weights: str = "rademacher") -> StaggeredResult:
    """Callaway & Sant'Anna group-time average treatment effects and their aggregations.

    `panel` is a balanced long panel; `cohort` holds the first treated period (0 or NaN = never
    treated). `control` is "never_treated" or "not_yet_treated". Standard errors are analytic
    (influence function, clustered by unit, or by `cluster`, e.g. school) unless `bootstrap` > 0
    draws of the cluster multiplier bootstrap are asked for. Intervals are pointwise normal.

    >>> res = att_gt(df, "countyreal", "year", "first.treat", "lemp")   # doctest: +SKIP
    >>> res.simple["att"], res.event_time                               # doctest: +SKIP
    """
    if base_period not in BASE_PERIODS:
        raise StaggeredInputError(f"base_period: expected one of {BASE_PERIODS}, got {base_period!r}")
    if bootstrap_weights not in BOOTSTRAP_WEIGHTS:
        raise StaggeredInputError(f"bootstrap_weights: expected one of {BOOTSTRAP_WEIGHTS}")
    if not 0 < alpha < 1:
        raise StaggeredInputError(f"alpha: must lie in (0, 1), got {alpha}")
    if bootstrap < 0:
        raise StaggeredInputError(f"bootstrap: number of draws must be >= 0, got {bootstrap}")
    p = _prepare(panel, unit, time, cohort, outcome, control, cluster)
    n = len(p.cohort)

    cells = _cells_for(p, control, base_period)
    att, n_used, inf = _gt_influence(p, cells, control)
    g_cell = np.array([c[0] for c in cells], dtype=np.int64)
    t_cell = np.array([c[1] for c in cells], dtype=np.int64)
    post = np.array([c[3] for c in cells], dtype=bool)
    ok = np.isfinite(att)
    if not ok.all():
        bad = [f"({g}, {t})" for g, t in zip(g_cell[~ok], t_cell[~ok], strict=True)]
        warnings.warn(f"no treated or control units for cells {_examples(bad)}; they are left "
                      "out of the aggregations", stacklevel=2)

    # Cohort shares among all units, as did::aggte's pg.
    cohorts = np.unique(g_cell)
    pg = np.array([(p.cohort == c).mean() for c in cohorts])
    pg_cell = pg[np.searchsorted(cohorts, g_cell)]

    columns: list[np.ndarray] = [inf]
    estimates: list[float] = list(att)

    def add(est: float, if_vec: np.ndarray) -> int:
        estimates.append(est)
        columns.append(if_vec[:, None])
        return len(estimates) - 1

    # "simple": post-treatment cells weighted by cohort size.
    keep = np.flatnonzero(post & ok)
    simple_idx = add(*_aggregate(att, inf, keep, pg_cell, g_cell, p.cohort, with_wif=True))

    # "group": each cohort's mean over its post cells, then a pg-weighted mean of cohorts.
    coh_rows, coh_att, coh_if = [], [], []
    for c in cohorts:
        idx = np.flatnonzero((g_cell == c) & post & ok)
        if not len(idx):
            continue
        est, if_vec = _aggregate(att, inf, idx, pg_cell, g_cell, p.cohort, with_wif=False)
        coh_rows.append((int(c), add(est, if_vec)))
        coh_att.append(est)
        coh_if.append(if_vec)
    coh_g = np.array([c for c, _ in coh_rows], dtype=np.int64)
    coh_att_arr, coh_if_mat = np.array(coh_att), np.column_stack(coh_if)
    coh_pg = pg[np.searchsorted(cohorts, coh_g)]
    group_idx = add(*_aggregate(coh_att_arr, coh_if_mat, np.arange(len(coh_g)), coh_pg, coh_g,
                                p.cohort, with_wif=True))

    # "dynamic": event time e = t - g, cohorts weighted by size; overall = mean over e >= 0.
    e_cell = t_cell - g_cell
    ev_rows, ev_att, ev_if = [], [], []
    for e in np.unique(e_cell[ok]):
        idx = np.flatnonzero((e_cell == e) & ok)
        est, if_vec = _aggregate(att, inf, idx, pg_cell, g_cell, p.cohort, with_wif=True)
        ev_rows.append((int(e), add(est, if_vec)))
        ev_att.append(est)
        ev_if.append(if_vec)
    ev_e = np.array([e for e, _ in ev_rows])
    pos = ev_e >= 0
    dyn_est = float(np.mean(np.array(ev_att)[pos]))
    dyn_if = np.column_stack(ev_if)[:, pos].mean(axis=1)
    dyn_idx = add(dyn_est, dyn_if)

    all_if = np.hstack(columns)
    sums = _cluster_sums(all_if, p.cluster_codes, p.n_clusters)
    if bootstrap:
        se = _bootstrap_se(sums, n, bootstrap, seed, bootstrap_weights)
        how = f"cluster multiplier bootstrap ({bootstrap} draws, {bootstrap_weights} weights)"
    else:
        se = np.sqrt((sums**2).sum(axis=0)) / n
        how = "analytic influence-function standard errors"
    est_all = np.array(estimates)
    # A zero SE means the IF vanished (e.g. a normalised cell): report no SE, as did does.
    se = np.where(se <= np.sqrt(np.finfo(float).eps) * 10, np.nan, se)
    z = norm.ppf(1 - alpha / 2)
    lo, hi = est_all - z * se, est_all + z * se

    def summary(i: int) -> dict:
        return {"att": float(est_all[i]), "se": float(se[i]), "ci_low": float(lo[i]),
                "ci_high": float(hi[i])}

    k = len(cells)
    group_time = pd.DataFrame({
        "cohort": g_cell, "time": t_cell, "att": att, "se": se[:k], "ci_low": lo[:k],
        "ci_high": hi[:k], "n": n_used, "post": post,
    })
    cohort_df = pd.DataFrame([{"cohort": c, **summary(i)} for c, i in coh_rows],
                             columns=["cohort", "att", "se", "ci_low", "ci_high"])
    event_df = pd.DataFrame([{"event_time": e, **summary(i)} for e, i in ev_rows],
                            columns=["event_time", "att", "se", "ci_low", "ci_high"])
    cluster_txt = f"clustered by '{cluster}'" if cluster else f"clustered by '{unit}'"
    method = (f"Callaway-Sant'Anna (2021) group-time ATT, outcome regression without covariates, "
              f"{control.replace('_', '-')} controls, {base_period} base period; {how}, "
              f"{cluster_txt}; pointwise {100 * (1 - alpha):g}% normal intervals")
    return StaggeredResult(
        group_time=group_time, simple=summary(simple_idx), cohort=cohort_df, event_time=event_df,
        control=control, n_units=n, n_clusters=p.n_clusters, method=method,
        cohort_overall=summary(group_idx), event_time_overall=summary(dyn_idx),
        base_period=base_period, alpha=alpha,
    )


def _cells_for(p: _Panel, control: str, base_period: str) -> list[tuple[int, int, int, bool]]:
    """(cohort, time, base, post) of every ATT(g,t) that `did::att_gt` reports, in its order."""
    times = p.times
    cohorts = [int(c) for c in np.unique(p.cohort) if times[0] < c <= times[-1]]
    if control == "not_yet_treated" and not (p.cohort == 0).any():
        # Without never-treated units the last cohort is only a control (did's rule).
        cohorts = [c for c in cohorts if c < p.cohort.max()]
    out = []
    for c in cohorts:
        for t in (times[1:] if base_period == "varying" else times):
            post = bool(t >= c)
            base = c - 1 if (post or base_period == "universal") else int(t) - 1
            out.append((c, int(t), int(base), post))
    return out


def did_from_csv(path: str | Path, unit: str, time: str, cohort: str, outcome: str,
                 control: str = "never_treated", cluster: str | None = None) -> dict:
    """Read a long-format CSV, estimate `att_gt` and return its JSON-ready dictionary."""
    return att_gt(pd.read_csv(path), unit, time, cohort, outcome, control=control,
                  cluster=cluster).to_dict()


def twfe(panel: pd.DataFrame, unit: str, time: str, cohort: str, outcome: str,
         cluster: str | None = None, alpha: float = 0.05) -> dict:
    """Static two-way fixed-effects DiD: outcome on a treated-post dummy, unit and time effects.

    Kept only as the comparison that shows the bias of the conventional estimator under staggered
    starts with dynamic effects. Unit effects are absorbed by demeaning within units (same
    coefficient as unit dummies, by Frisch-Waugh-Lovell); time dummies stay in the regression.
    Cluster-robust SEs (statsmodels, unit or `cluster`), nested unit dummies not counted in the
    small-sample factor, as Stata's reghdfe.
    """
    df = _validate(panel, unit, time, cohort, outcome, cluster)
    g = df[cohort].to_numpy()
    tt = df[time].to_numpy()
    d = ((g > 0) & (tt >= g)).astype(float)
    if d.min() == d.max():
        raise _fail(cohort, "the treated-post dummy does not vary")
    times = np.sort(np.unique(tt))
    x = np.column_stack([d] + [(tt == s).astype(float) for s in times[1:]])
    y = df[outcome].to_numpy(dtype=float)
    codes = pd.factorize(df[unit])[0]
    counts = np.bincount(codes)

    def demean(a: np.ndarray) -> np.ndarray:
        if a.ndim == 1:
            return a - (np.bincount(codes, a) / counts)[codes]
        return np.column_stack([demean(a[:, j]) for j in range(a.shape[1])])

    groups = pd.factorize(df[cluster] if cluster else df[unit])[0]
    fit = OLS(demean(y), demean(x)).fit(cov_type="cluster", cov_kwds={"groups": groups})
    est, se = float(fit.params[0]), float(fit.bse[0])
    z = norm.ppf(1 - alpha / 2)
    return {"att": est, "se": se, "ci_low": float(est - z * se), "ci_high": float(est + z * se)}
