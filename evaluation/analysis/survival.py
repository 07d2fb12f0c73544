"""Durations with censoring: time from signal to help, length of help, and the like.

A trajectory still running at the extraction date has lasted *at least* until then. Dropping it
would keep only the short ones, and treating it as ended would shorten it: both bias durations
downwards. So every duration is a (days, event) pair, with event 0 for ongoing trajectories
(censored at the extraction date), and the estimators below are the ones made for such data:
Kaplan-Meier curves and medians, the logrank test and Cox regression (statsmodels).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import chi2, norm
from statsmodels.duration.hazard_regression import PHReg, PHRegResults
from statsmodels.duration.survfunc import SurvfuncRight, survdiff

from evaluation.analysis.durations import km_median

TIME = "days"
EVENT = "event"


def durations(trajectories: pd.DataFrame, start_col: str = "start_date",
              end_col: str = "end_date", extraction_date: str | pd.Timestamp | None = None
              ) -> pd.DataFrame:
    """A copy of `trajectories` with `days` (float) and `event` (1 ended, 0 censored).

    An empty `end_col`, or one after `extraction_date`, is censored at the extraction date: the
    trajectory counts as at risk until then, never as ended and never dropped. Rows without a
    start, or starting after the extraction date, cannot be observed: their `days` is NaN.
    """
    start = pd.to_datetime(trajectories[start_col])
    end = pd.to_datetime(trajectories[end_col])
    if extraction_date is None:
        if end.isna().any():
            raise ValueError("extraction_date is needed to censor rows without an end date")
        extraction = end.max()
    else:
        extraction = pd.Timestamp(extraction_date)
    ended = end.notna() & (end <= extraction)
    stop = end.where(ended, extraction)
    days = (stop - start).dt.total_seconds() / 86_400
    days = days.where(start.notna() & (start <= extraction))
    out = trajectories.copy()
    out[TIME] = days.astype("float64")
    out[EVENT] = ended.astype("int64")
    return out


def _groups(frame: pd.DataFrame, group_col: str | None) -> list[tuple[object, pd.DataFrame]]:
    """(label, rows) per group, observable rows only; one group labelled None without group_col."""
    usable = frame[frame[TIME].notna()]
    if group_col is None:
        return [(None, usable)]
    return [(key, rows) for key, rows in usable.groupby(group_col, observed=True, sort=True)]


def _survfunc(rows: pd.DataFrame) -> SurvfuncRight:
    return SurvfuncRight(rows[TIME].to_numpy(float), rows[EVENT].to_numpy(float))


def kaplan_meier(frame: pd.DataFrame, group_col: str | None = None, alpha: float = 0.05
                 ) -> pd.DataFrame:
    """Kaplan-Meier survival curve per group: time, survival, ci_low, ci_high, at_risk, events.

    `frame` has `days` and `event` (see `durations`). Each curve starts with a row at time 0
    (survival 1, everyone at risk) so that it plots as a step function from the start.
    Pointwise intervals are Greenwood standard errors (statsmodels) on the log(-log) scale, which
    keeps them inside 0..1 (statsmodels offers only simultaneous bands for the curve itself).
    """
    z = norm.ppf(1 - alpha / 2)
    parts = []
    for key, rows in _groups(frame, group_col):
        sf = _survfunc(rows)
        s = np.asarray(sf.surv_prob, float)
        se = np.asarray(sf.surv_prob_se, float)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_s = np.log(s)
            half = z * se / (s * np.abs(log_s))
            low = s ** np.exp(half)
            high = s ** np.exp(-half)
        inner = (s > 0) & (s < 1)
        low = np.where(inner, low, s)
        high = np.where(inner, high, s)
        curve = pd.DataFrame({
            "time": np.concatenate([[0.0], sf.surv_times]),
            "survival": np.concatenate([[1.0], s]),
            "ci_low": np.concatenate([[1.0], low]),
            "ci_high": np.concatenate([[1.0], high]),
            "at_risk": np.concatenate([[len(rows)], sf.n_risk]).astype("int64"),
            "events": np.concatenate([[0], sf.n_events]).astype("int64"),
        })
        if group_col is not None:
            curve.insert(0, group_col, key)
        parts.append(curve)
    return pd.concat(parts, ignore_index=True)


def median_survival(frame: pd.DataFrame, group_col: str | None = None, alpha: float = 0.05
                    ) -> pd.DataFrame:
    """Median duration per group with its interval: n, events, median, ci_low, ci_high.

    The interval inverts the test on the log(-log) survival scale (statsmodels `quantile_ci`);
    its limits are observed times. Where the curve never falls to 0.5 (too much censoring) the
    median is NaN, and an upper limit that is not reached is +inf: both are honest answers. The
    median is `durations.km_median` (the midpoint where the curve is exactly one half over an
    interval), so that the tables and the differences in days use the same definition.
    """
    rows_out = []
    for key, rows in _groups(frame, group_col):
        sf = _survfunc(rows)
        with np.errstate(divide="ignore", invalid="ignore"):  # log(-log 1) at the curve's top
            low, high = sf.quantile_ci(0.5, alpha=alpha, method="cloglog")
        median = km_median(np.asarray(sf.surv_times, float), np.asarray(sf.surv_prob, float))
        row = {"n": len(rows), "events": int(rows[EVENT].sum()),
               "median": float(median[0]), "ci_low": float(low), "ci_high": float(high)}
        rows_out.append(row if group_col is None else {group_col: key, **row})
    return pd.DataFrame(rows_out)


def logrank(frame: pd.DataFrame, group_col: str, strata: str | None = None
            ) -> tuple[float, float]:
    """Logrank test that the groups share one survival curve: (chi-square, p-value).

    With `strata` (for example school) the test compares groups within strata only. The test
    treats records as independent; the report's comparisons of durations use the cluster
    bootstrap over schools instead (`evaluation.analysis.durations`). The p-value comes from the
    chi-square survival function, so that it stays positive (1e-85, not 0) for extreme data, and never
    falls below the smallest positive double where even that underflows.
    """
    usable = frame[frame[TIME].notna()]
    group = pd.factorize(usable[group_col])[0]
    kwargs = {} if strata is None else {"strata": pd.factorize(usable[strata])[0]}
    stat, _ = survdiff(usable[TIME].to_numpy(float), usable[EVENT].to_numpy(float), group,
                       **kwargs)
    p = float(chi2.sf(stat, len(np.unique(group)) - 1))
    return float(stat), max(p, float(np.finfo(float).tiny))  # beyond 1e-308: underflow, not 0


def score_residuals(exog: np.ndarray, time: np.ndarray, status: np.ndarray,
                    strata: np.ndarray, params: np.ndarray) -> np.ndarray:
    """Cox score residuals (Breslow form), one row per observation, vectorised.

    The same quantity as statsmodels' `PHReg.score_residuals`, which we do not call because it
    (a) loops in Python over every event time and risk set (seconds for a few thousand
    trajectories) and (b) returns NaN for rows censored before the first event of their stratum,
    whose residual is 0; with school strata that makes every clustered interval NaN.
    Risk-set sums are reverse cumulative sums over the distinct times of each stratum.
    """
    k = exog.shape[1]
    strata = np.asarray(strata)
    eta = exog @ params
    eta = eta - pd.Series(eta).groupby(strata).transform("max").to_numpy()
    w = np.exp(eta)
    cols = [f"x{j}" for j in range(k)]
    rows = pd.DataFrame(exog * w[:, None], columns=cols).assign(s=strata, t=time, w=w, d=status)
    blocks = rows.groupby(["s", "t"], sort=True)[["w", *cols, "d"]].sum()
    # Sums over the risk set {time >= t} of each stratum: reverse cumulative sums.
    risk = blocks[["w", *cols]].iloc[::-1].groupby(level="s").cumsum().iloc[::-1]
    s0 = risk["w"].to_numpy()
    xbar = risk[cols].to_numpy() / s0[:, None]
    dlam = blocks["d"].to_numpy() / s0  # Breslow increment of the cumulative hazard
    cum = (pd.DataFrame(np.column_stack([dlam, xbar * dlam[:, None]]), index=blocks.index)
           .groupby(level="s").cumsum().to_numpy())
    at = blocks.index.get_indexer(pd.MultiIndex.from_arrays([strata, time]))
    lam, lam_x = cum[at, :1], cum[at, 1:]
    return status[:, None] * (exog - xbar[at]) - w[:, None] * (exog * lam - lam_x)


def _stratum_reverse_cumsum(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums over the rows at or after each row within its stratum; rows sorted by stratum and
    `starts` the first row of each stratum."""
    total = np.cumsum(values[::-1], axis=0)[::-1]
    after = np.vstack([total[starts[1:]], np.zeros((1, values.shape[1]))])  # what follows
    seg = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(values)]))
    return total - after[seg]


def cox_fit(time_: np.ndarray, event: np.ndarray, X: np.ndarray, stratum: np.ndarray,
            tol: float = 1e-10, max_iter: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Stratified Cox regression, Efron's method for ties: (coefficients, Hessian).

    The same partial likelihood as statsmodels' PHReg(ties="efron", strata=...), whose loops over
    strata and event times take seconds per model for a region and minutes for the nation; here
    every risk-set sum is a reverse cumulative sum over (stratum, time) blocks.
    """
    n, k = X.shape
    s_codes = pd.factorize(stratum)[0]
    order = np.lexsort((time_, s_codes))
    t, d, x, s = time_[order], event[order].astype(float), X[order], s_codes[order]
    block_start = np.flatnonzero(np.r_[True, (s[1:] != s[:-1]) | (t[1:] != t[:-1])])
    stratum_start = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    b_stratum = s[block_start]
    b_stratum_start = np.flatnonzero(np.r_[True, b_stratum[1:] != b_stratum[:-1]])
    d_b = np.add.reduceat(d, block_start)
    ev = d_b > 0
    m = d_b[ev].astype(int)
    frac = (np.arange(m.sum()) - np.repeat(np.cumsum(m) - m, m)) / np.repeat(m, m)
    owner = np.repeat(np.flatnonzero(ev), m)
    sx = (d[:, None] * x).sum(axis=0)
    xx = (x[:, :, None] * x[:, None, :]).reshape(n, k * k)
    base = np.column_stack([np.ones(n), x, xx])
    seg = np.repeat(np.arange(len(stratum_start)), np.diff(np.r_[stratum_start, n]))
    beta = np.zeros(k)
    hess = np.zeros((k, k))
    for _ in range(max_iter):
        eta = x @ beta
        w = np.exp(eta - np.maximum.reduceat(eta, stratum_start)[seg])
        parts = base * w[:, None]
        risk = _stratum_reverse_cumsum(np.add.reduceat(parts, block_start, axis=0),
                                       b_stratum_start)
        dev = np.add.reduceat(parts * d[:, None], block_start, axis=0)
        r = risk[owner] - frac[:, None] * dev[owner]
        r0 = r[:, 0]
        q1 = r[:, 1:1 + k] / r0[:, None]
        q2 = (r[:, 1 + k:] / r0[:, None]).sum(axis=0).reshape(k, k)
        grad = sx - q1.sum(axis=0)
        hess = -(q2 - q1.T @ q1)
        if not (np.isfinite(hess).all() and np.isfinite(grad).all()):
            # A coefficient runs off to infinity (no events in a group): no estimate exists.
            raise ValueError("the Cox model does not converge")
        step = np.linalg.lstsq(-hess, grad, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    else:  # no convergence: a coefficient runs off to infinity (separation)
        raise ValueError("the Cox model does not converge")
    return beta, hess


def cox_model(frame: pd.DataFrame, treatment: str, covariates: Sequence[str] = (),
              fixed_effects: Sequence[str] = (), strata: str | None = None,
              cluster: str | None = None) -> PHRegResults:
    """The fitted Cox model behind `cox_effect` (for its n, events and other coefficients).

    Rows without `days` (unobservable) are left out; censored rows are always kept. Covariates
    enter as numbers, fixed effects as dummies (first level dropped). `strata` gives each stratum
    its own baseline hazard (no coefficient). With `cluster`, the covariance is the Huber-White
    sandwich of PHReg's robust covariance (`groups`), dependence allowed within clusters; its
    score residuals come from `score_residuals` above, for speed and because statsmodels' own
    are NaN for some censored rows.
    """
    used = [treatment, *covariates, *fixed_effects, strata, cluster]
    data = frame.dropna(subset=[TIME, *[c for c in used if c is not None]])
    dummies = [pd.get_dummies(data[fe].astype("string"), prefix=fe, drop_first=True, dtype=float)
               for fe in fixed_effects]
    exog = pd.concat([data[[treatment, *covariates]].astype(float), *dummies], axis=1)
    time = data[TIME].to_numpy(float)
    status = data[EVENT].to_numpy(float)
    codes = np.zeros(len(data), int) if strata is None else pd.factorize(data[strata])[0]
    model = PHReg(time, exog, status=status, strata=None if strata is None else codes,
                  ties="efron")
    # The model's likelihood, maximised by the vectorised `cox_fit` (PHReg's own Newton steps
    # loop over strata and event times: 80% of a robustness run); tests check both agree.
    if cluster is None:
        params, hess = cox_fit(time, status, np.asarray(model.exog, float), codes)
        return PHRegResults(model, pd.Series(params, index=exog.columns), -np.linalg.inv(hess))
    groups = pd.factorize(data[cluster])[0]
    params, cov = cox_cluster_fit(time, status, np.asarray(model.exog, float), codes, groups)
    model.groups = groups
    return PHRegResults(model, pd.Series(params, index=exog.columns), cov,
                        covariance_type="robust")


def cox_cluster_fit(time_: np.ndarray, event: np.ndarray, X: np.ndarray, strata: np.ndarray,
                    clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stratified Cox regression with the Huber-White sandwich clustered by `clusters` (integer
    codes): (coefficients, covariance). The fit of `cox_effect` and of the comparisons'
    `fixed_effects.cox_twfe`."""
    params, hess = cox_fit(time_, event, X, strata)
    hess_inv = np.linalg.inv(hess)
    resid = score_residuals(X, time_, event, strata, params)
    per_cluster = pd.DataFrame(resid).groupby(clusters).sum().to_numpy()
    return params, hess_inv @ (per_cluster.T @ per_cluster) @ hess_inv


def cox_effect(frame: pd.DataFrame, treatment: str, covariates: Sequence[str] = (),
               fixed_effects: Sequence[str] = (), strata: str | None = None,
               cluster: str | None = None, alpha: float = 0.05
               ) -> tuple[float, float, float, float]:
    """Hazard ratio of `treatment` from a Cox model: (hazard ratio, ci_low, ci_high, p).

    A hazard ratio above 1 means the event comes sooner (shorter durations). For a
    difference-in-differences: treatment = treated x post dummy, the school year as fixed effect,
    strata = school and cluster = school, so that each school keeps its own baseline and the pilot
    effect is the change at pilot schools beyond the change that all schools share.
    """
    fit = cox_model(frame, treatment, covariates, fixed_effects, strata, cluster)
    names = list(fit.model.exog_names)
    i = names.index(treatment)
    low, high = np.asarray(fit.conf_int(alpha=alpha))[i]
    beta, p = np.asarray(fit.params)[i], np.asarray(fit.pvalues)[i]
    return float(np.exp(beta)), float(np.exp(low)), float(np.exp(high)), float(p)
