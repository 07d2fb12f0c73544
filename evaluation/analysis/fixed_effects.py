"""Fixed-effects models of the comparisons, with the school effects absorbed.

Every before/after and difference-in-differences comparison of a report, of every region in
`estimates --all-regions` and of the nation runs through these three functions: a Poisson model for
counts (pupils as exposure), a linear model for shares and scores, a Cox model for durations. Each
has school effects (absorbed: profiled out or demeaned, never one dummy per school, which at
national scale would take gigabytes) and optional school-year effects, and clusters by school.

Inference is a choice (`inference`), from a fixed vocabulary (`INFERENCE`) that
`evaluation.analysis.methods` picks per indicator kind and number of schools:

* "cluster_robust": the sandwich (CRV1) with statsmodels' small-sample factor and normal critical
  values, right with many schools (the nation);
* "cluster_jackknife": leave one school out and refit (CRV3), t(G-1) critical values: counts with
  few schools (`evaluation.analysis.inference`);
* "wild_bootstrap": the restricted wild cluster bootstrap with an interval by test inversion
  (`inference.wild_cluster_bootstrap` on the demeaned model): shares and scores with few schools.

`poisson_point` and `ols_point` give the same coefficients without inference, for the many refits
of randomisation inference (`evaluation.analysis.randomisation`).

Each returns (estimate, ci_low, ci_high, p_value) on the effect's scale: a rate ratio, a hazard
ratio, or a difference in the outcome's units. Tests check them against statsmodels' models with a
dummy per school and school year.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from evaluation.analysis.inference import wild_cluster_bootstrap

INFERENCE = ("cluster_robust", "cluster_jackknife", "wild_bootstrap")  # of these models


def _check(inference: str, allowed: tuple[str, ...]) -> None:
    if inference not in allowed:
        raise ValueError(f"inference: expected one of {allowed}, got {inference!r}")


def _cluster_correction(n_groups: int, nobs: int, k_params: int) -> float:
    """statsmodels' small-sample factor for cluster-robust covariances (with all dummies in k)."""
    return n_groups / (n_groups - 1.0) * (nobs - 1.0) / (nobs - k_params)


def _dummies(codes: np.ndarray, n: int) -> np.ndarray:
    """Indicator columns of codes 1..n-1 (the first level is the reference)."""
    return (codes[:, None] == np.arange(1, n)[None, :]).astype(float)


def _normal_result(beta: float, se: float, alpha: float) -> tuple[float, float, float, float]:
    z = stats.norm.ppf(1 - alpha / 2)
    p = float(2 * stats.norm.sf(abs(beta / se))) if se > 0 else float("nan")
    return beta, beta - z * se, beta + z * se, p


def _by_school(v: np.ndarray, s_codes: np.ndarray, n_s: int) -> np.ndarray:
    """Column sums within each school: n x k -> n_s x k."""
    from scipy import sparse

    n = len(s_codes)
    v = v.reshape(n, -1)
    if v.shape[1] == 1:
        return np.bincount(s_codes, weights=v[:, 0], minlength=n_s)[:, None]
    # One sparse product for all columns (hundreds at once in randomisation inference); it adds
    # the records of a school in record order, as bincount does.
    member = sparse.csr_matrix((np.ones(n), (s_codes, np.arange(n))), shape=(n_s, n))
    return np.asarray(member @ v)


def _demean(Z: np.ndarray, s_codes: np.ndarray, n_s: int) -> np.ndarray:
    size = np.bincount(s_codes, minlength=n_s).astype(float)
    size[size == 0] = 1.0
    return Z - (_by_school(Z, s_codes, n_s) / size[:, None])[s_codes]


def _twfe_inputs(treated: np.ndarray, school: np.ndarray, year: np.ndarray | None
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    """The treatment column and the school-year dummies (none without `year`), and the school
    codes (sorted, so that draws and leave-one-out order are the same at every run)."""
    s_codes, s_uniq = pd.factorize(pd.Series(np.asarray(school)), sort=True)
    columns = [np.asarray(treated, dtype=float)]
    if year is not None:
        y_codes, y_uniq = pd.factorize(pd.Series(np.asarray(year)).astype(str), sort=True)
        columns.append(_dummies(y_codes, len(y_uniq)))
    return np.column_stack(columns), s_codes, len(s_uniq)


def _identified_within(X: np.ndarray, s_codes: np.ndarray, n_s: int) -> bool:
    """Is the first column identified next to school effects and the other columns?"""
    Xc = _demean(X, s_codes, n_s)
    other = Xc[:, 1:][:, np.abs(Xc[:, 1:]).sum(axis=0) > 1e-12]
    resid = Xc[:, 0] - other @ np.linalg.lstsq(other, Xc[:, 0], rcond=None)[0] \
        if other.shape[1] else Xc[:, 0]
    return float(resid @ resid) > 1e-7 * max(float(X[:, 0] @ X[:, 0]), 1.0)


def jackknife_interval(estimate: float, loo: np.ndarray, alpha: float
                       ) -> tuple[float, float, float]:
    """CRV3 interval and p-value, t(G-1): (low, high, p); NaN when some school could not be left
    out (its fit undefined), rather than a jackknife over the schools that happen to work."""
    G = len(loo)
    if not np.isfinite(loo).all():
        return np.nan, np.nan, np.nan
    se = float(np.sqrt((G - 1) / G * np.sum((loo - estimate) ** 2)))
    crit = stats.t.ppf(1 - alpha / 2, G - 1)
    p = float(2 * stats.t.sf(abs(estimate / se), G - 1)) if se > 0 else np.nan
    return estimate - crit * se, estimate + crit * se, p


# --- Poisson: counts with pupils as exposure ---------------------------------------------------

def _poisson_profile(y: np.ndarray, offset: np.ndarray, X: np.ndarray, s_codes: np.ndarray,
                     n_s: int, beta: np.ndarray, tol: float = 1e-10, max_iter: int = 100
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Newton's method for a Poisson model with one effect per school profiled out: given the
    other coefficients each school's effect is log(its count / its expected count), so only
    the few other coefficients are iterated. Returns (beta, Hessian, mu, centred X)."""
    y_school = np.bincount(s_codes, weights=y, minlength=n_s)
    k = X.shape[1]
    for _ in range(max_iter):
        eta = X @ beta + offset
        shift = np.full(n_s, -np.inf)
        np.maximum.at(shift, s_codes, eta)
        w = np.exp(eta - shift[s_codes])
        denom = np.bincount(s_codes, weights=w, minlength=n_s)
        mu = y_school[s_codes] * w / denom[s_codes]
        mu_s = np.bincount(s_codes, weights=mu, minlength=n_s)
        xbar = np.column_stack([np.bincount(s_codes, weights=mu * X[:, j], minlength=n_s)
                                for j in range(k)])
        with np.errstate(invalid="ignore", divide="ignore"):
            xbar = np.where(mu_s[:, None] > 0, xbar / mu_s[:, None], 0.0)
        Xc = X - xbar[s_codes]
        hess = np.einsum("ni,nj->ij", Xc * mu[:, None], Xc)
        step = np.linalg.lstsq(hess, (y - mu) @ X, rcond=None)[0]
        beta = beta + step
        if np.max(np.abs(step)) < tol:
            break
    return beta, hess, mu, Xc


def poisson_twfe(count: np.ndarray, exposure: np.ndarray, treated: np.ndarray,
                 school: np.ndarray, year: np.ndarray | None = None, alpha: float = 0.05,
                 inference: str = "cluster_jackknife") -> tuple[float, float, float, float]:
    """Rate ratio of `treated` in a Poisson model with school (and school-year) effects and a
    log-exposure offset: (rate ratio, low, high, p).

    "cluster_jackknife": each school left out in turn and the model refitted (a few Newton steps
    on the profiled model, warm-started at the full fit), t(G-1) on the log scale.
    "cluster_robust": the sandwich with the small-sample factor of statsmodels' GLM with a dummy
    per school.
    """
    _check(inference, ("cluster_jackknife", "cluster_robust"))
    X, s_codes, n_s = _twfe_inputs(treated, school, year)
    y = np.asarray(count, dtype=float)
    offset = np.log(np.asarray(exposure, dtype=float))
    if inference == "cluster_robust":
        beta, hess, mu, Xc = _poisson_profile(y, offset, X, s_codes, n_s, np.zeros(X.shape[1]))
        per_school = _by_school(Xc * (y - mu)[:, None], s_codes, n_s)
        h_inv = np.linalg.pinv(hess)
        k_params = 1 + (n_s - 1) + X.shape[1]
        cov = (h_inv @ (per_school.T @ per_school) @ h_inv
               * _cluster_correction(n_s, len(y), k_params))
        b, low, high, p = _normal_result(float(beta[0]), float(np.sqrt(cov[0, 0])), alpha)
        return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p
    if not _identified_within(X, s_codes, n_s):
        raise ValueError("treated: the coefficient is not identified")
    full = _poisson_profile(y, offset, X, s_codes, n_s, np.zeros(X.shape[1]))[0]
    b = float(full[0])
    fits = np.zeros(n_s, dtype=bool)
    for g in range(n_s):  # which schools can be left out: a cheap check per school
        keep = s_codes != g
        Xg = X[keep]
        Xg = Xg[:, np.r_[True, np.any(Xg[:, 1:] != 0, axis=0)]]
        fits[g] = bool(Xg[:, 0].any()) and _identified_within(Xg, s_codes[keep], n_s)
    loo = np.full(n_s, np.nan)
    loo[fits] = _poisson_leave_one_out(y, offset, X, s_codes, n_s, full,
                                       np.flatnonzero(fits))[:, 0]
    low, high, p = jackknife_interval(b, loo, alpha)
    return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p


def _poisson_leave_one_out(y: np.ndarray, offset: np.ndarray, X: np.ndarray,
                           s_codes: np.ndarray, n_s: int, start: np.ndarray,
                           left_out: np.ndarray, tol: float = 1e-10, max_iter: int = 100
                           ) -> np.ndarray:
    """`_poisson_profile` without each school of `left_out` in turn, all fits side by side:
    leaving a school out removes its rows' terms from the gradient and the Hessian (its own
    effect is profiled), so every fit is one slice of the same arrays. A column that has no
    non-zero row without the school (its year) gets no step, as if it were dropped. Each fit
    starts at `start` (the full fit) and stops where `_poisson_profile` would."""
    from scipy import sparse

    n, k = X.shape
    A = len(left_out)
    keep = (s_codes[:, None] != left_out[None, :]).astype(float)          # n x A
    S = sparse.csr_matrix((np.ones(n), (s_codes, np.arange(n))), shape=(n_s, n))
    y_school = np.bincount(s_codes, weights=y, minlength=n_s)
    order = np.argsort(s_codes, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(s_codes[order])) + 1]
    beta = np.tile(np.asarray(start, dtype=float), (A, 1))
    out = np.full((A, k), np.nan)
    active = np.arange(A)
    for _ in range(max_iter):
        if not len(active):
            break
        b, m = beta[active], keep[:, active]
        eta = X @ b.T + offset[:, None]                                    # n x a
        shift = np.maximum.reduceat(eta[order], starts, axis=0)
        w = np.exp(eta - _school_rows(shift, s_codes, order, starts))
        mu = y_school[s_codes][:, None] * w / (S @ w)[s_codes] * m
        mu_s = S @ mu
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = np.where(mu_s > 0, 1.0 / mu_s, 0.0)
        a = len(active)
        xbar = (S @ (mu[:, :, None] * X[:, None, :]).reshape(n, -1)).reshape(n_s, a, k)
        xbar = xbar * inv[:, :, None]
        Xc = X[:, None, :] - xbar[s_codes]                                 # n x a x k
        hess = np.einsum("nai,naj->aij", Xc * mu[:, :, None], Xc)
        grad = np.einsum("na,nj->aj", (y[:, None] - mu) * m, X)
        step = np.einsum("aij,aj->ai", np.linalg.pinv(hess), grad)
        beta[active] = b + step
        done = np.max(np.abs(step), axis=1) < tol
        out[active[done]] = beta[active[done]]
        active = active[~done]
    out[active] = beta[active]  # as `_poisson_profile`: the last iterate after max_iter
    return out


# --- linear: shares (linear probability) and scale scores --------------------------------------

def ols_twfe(y: np.ndarray, treated: np.ndarray, school: np.ndarray,
             year: np.ndarray | None = None, alpha: float = 0.05,
             inference: str = "wild_bootstrap", B: int = 999, seed: int = 0,
             weights: str = "webb") -> tuple[float, float, float, float]:
    """Coefficient of `treated` in a linear model with school (and school-year) effects:
    (estimate, low, high, p). Schools are absorbed by demeaning (Frisch-Waugh-Lovell), which
    leaves the coefficient and its school-clustered scores unchanged.

    "wild_bootstrap": the restricted wild cluster bootstrap (B draws, fixed seed) with the school
    dummies counted in the small-sample factor, as with a dummy per school.
    "cluster_robust": CRV1 with statsmodels' small-sample factor and normal critical values.
    "cluster_jackknife": CRV3 with t(G-1), each school left out in turn (its demeaned rows
    removed from the cross-products: demeaning within schools leaves the others unchanged).
    """
    _check(inference, ("wild_bootstrap", "cluster_robust", "cluster_jackknife"))
    X, s_codes, n_s = _twfe_inputs(treated, school, year)
    ya = np.asarray(y, dtype=float)
    if n_s < 2:
        raise ValueError("clusters: at least two clusters are needed")
    Xc = _demean(X, s_codes, n_s)
    Xc = Xc[:, np.r_[True, np.abs(Xc[:, 1:]).sum(axis=0) > 1e-12]]  # years left without variation
    yc = _demean(ya[:, None], s_codes, n_s)[:, 0]
    if inference == "wild_bootstrap":
        res = wild_cluster_bootstrap(yc, Xc, 0, s_codes, B=B, weights=weights, alpha=alpha,
                                     seed=seed, absorbed=n_s)
        return res["estimate"], res["ci_low"], res["ci_high"], res["p_value"]
    if inference == "cluster_jackknife":
        k = Xc.shape[1]
        xx = _by_school((Xc[:, :, None] * Xc[:, None, :]).reshape(len(yc), -1), s_codes,
                        n_s).reshape(n_s, k, k)
        xy = _by_school(Xc * yc[:, None], s_codes, n_s)
        beta0 = float(np.linalg.lstsq(xx.sum(0), xy.sum(0), rcond=None)[0][0])
        loo = np.full(n_s, np.nan)
        for g in range(n_s):  # G small systems of k equations; G < analysis.few_schools
            left = xx.sum(0) - xx[g]
            if np.linalg.matrix_rank(left) == k:
                loo[g] = np.linalg.solve(left, xy.sum(0) - xy[g])[0]
        return (beta0, *jackknife_interval(beta0, loo, alpha))
    bread = np.linalg.inv(Xc.T @ Xc)
    beta = bread @ (Xc.T @ yc)
    per_school = _by_school(Xc * (yc - Xc @ beta)[:, None], s_codes, n_s)
    k_params = 1 + (n_s - 1) + Xc.shape[1]
    cov = bread @ (per_school.T @ per_school) @ bread * _cluster_correction(n_s, len(yc),
                                                                           k_params)
    return _normal_result(float(beta[0]), float(np.sqrt(cov[0, 0])), alpha)


# --- Cox: durations, ongoing trajectories censored ---------------------------------------------

def cox_twfe(days: np.ndarray, event: np.ndarray, treated: np.ndarray, school: np.ndarray,
             year: np.ndarray | None = None, alpha: float = 0.05,
             inference: str = "cluster_jackknife", strata: np.ndarray | None = None
             ) -> tuple[float, float, float, float]:
    """Hazard ratio of `treated` in a Cox model stratified by school (or by `strata`: each its
    own baseline hazard), with school-year dummies: (hazard ratio, low, high, p); above 1 the
    event comes sooner. Rows without a duration are left out, censored rows kept.

    "cluster_jackknife": each school left out in turn and the model refitted (CRV3, t(G-1) on the
    log scale). "cluster_robust": the Huber-White sandwich clustered by school
    (`survival.cox_cluster_fit`), normal critical values: right with many schools.
    """
    from evaluation.analysis.survival import cox_cluster_fit, cox_fit

    _check(inference, ("cluster_robust", "cluster_jackknife"))
    days = np.asarray(days, dtype=float)
    ok = ~np.isnan(days)
    event, treated, school = (np.asarray(a)[ok] for a in (event, treated, school))
    X = np.asarray(treated, dtype=float)[:, None]
    if year is not None:
        y_codes, y_uniq = pd.factorize(pd.Series(np.asarray(year)[ok]).astype(str), sort=True)
        X = np.column_stack([X, _dummies(y_codes, len(y_uniq))])
        X = X[:, np.r_[True, X[:, 1:].any(axis=0)]]
    s_codes = pd.factorize(school, sort=True)[0]
    st_codes = s_codes if strata is None else pd.factorize(np.asarray(strata)[ok])[0]
    ev = np.asarray(event, dtype=float)
    if inference == "cluster_robust":
        beta, cov = cox_cluster_fit(days[ok], ev, X, st_codes, s_codes)
        b, low, high, p = _normal_result(float(beta[0]), float(np.sqrt(cov[0, 0])), alpha)
        return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p
    b = float(cox_fit(days[ok], ev, X, st_codes)[0][0])
    n_s = int(s_codes.max()) + 1
    loo = np.full(n_s, np.nan)
    for g in range(n_s):  # schools: tens
        keep = s_codes != g
        Xg = X[keep]
        active = np.r_[True, np.any(Xg[:, 1:] != 0, axis=0)]
        if not Xg[:, 0].any() or Xg[:, 0].all():
            continue
        try:
            loo[g] = cox_fit(days[ok][keep], ev[keep], Xg[:, active], st_codes[keep])[0][0]
        except (ValueError, np.linalg.LinAlgError):
            continue
    low, high, p = jackknife_interval(b, loo, alpha)
    return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p


# --- point estimates for randomisation inference -----------------------------------------------

def poisson_point(count: np.ndarray, exposure: np.ndarray, treated: np.ndarray,
                  school: np.ndarray, year: np.ndarray | None = None) -> float:
    """The log rate ratio of `poisson_twfe`, without inference."""
    X, s_codes, n_s = _twfe_inputs(treated, school, year)
    if not _identified_within(X, s_codes, n_s):
        raise ValueError("treated: the coefficient is not identified")
    y = np.asarray(count, dtype=float)
    offset = np.log(np.asarray(exposure, dtype=float))
    return float(_poisson_profile(y, offset, X, s_codes, n_s, np.zeros(X.shape[1]))[0][0])


def poisson_points(count: np.ndarray, exposure: np.ndarray, treated: np.ndarray,
                   school: np.ndarray, year: np.ndarray, tol: float = 1e-10,
                   max_iter: int = 100) -> np.ndarray:
    """`poisson_point` for many treatment columns at once (`treated`: cells x assignments), as
    randomisation inference needs: the same profiled Newton iterations, run side by side for
    every assignment (one Hessian per assignment, of the treatment and the few year effects);
    NaN where a column is not identified."""
    from scipy import sparse

    T = np.asarray(treated, dtype=float)
    X0, s_codes, n_s = _twfe_inputs(T[:, 0], school, year)
    D = X0[:, 1:]                                              # year effects, shared
    n, A = T.shape
    S = sparse.csr_matrix((np.ones(n), (s_codes, np.arange(n))), shape=(n_s, n))
    y = np.asarray(count, dtype=float)
    offset = np.log(np.asarray(exposure, dtype=float))
    y_school = S @ y
    # identified: the treatment is not a combination of school and year effects
    size = np.maximum(np.asarray(S.sum(axis=1)).ravel(), 1.0)
    Dc = D - (S @ D / size[:, None])[s_codes]
    keep = np.abs(Dc).sum(axis=0) > 1e-12
    Tc = T - (S @ T / size[:, None])[s_codes]
    if keep.any():
        Tc = Tc - Dc[:, keep] @ np.linalg.lstsq(Dc[:, keep], Tc, rcond=None)[0]
    ok = np.einsum("ij,ij->j", Tc, Tc) > 1e-7 * np.maximum(np.einsum("ij,ij->j", T, T), 1.0)
    order = np.argsort(s_codes, kind="stable")
    starts = np.r_[0, np.flatnonzero(np.diff(s_codes[order])) + 1]
    k = 1 + D.shape[1]
    beta = np.zeros((A, k))
    active = np.flatnonzero(ok)  # each assignment stops where `poisson_point` would stop
    for _ in range(max_iter):
        if not len(active):
            break
        Ta, b = T[:, active], beta[active]
        a = len(active)
        eta = offset[:, None] + Ta * b[:, 0] + D @ b[:, 1:].T            # n x a
        shift = np.maximum.reduceat(eta[order], starts, axis=0)          # schools x a
        w = np.exp(eta - _school_rows(shift, s_codes, order, starts))
        mu = y_school[s_codes][:, None] * w / (S @ w)[s_codes]
        mu_s = S @ mu
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = np.where(mu_s > 0, 1.0 / mu_s, 0.0)
        X = np.concatenate([Ta[:, :, None], np.broadcast_to(D[:, None, :], (n, a, k - 1))],
                           axis=2)                                         # n x a x k
        xbar = (S @ (mu[:, :, None] * X).reshape(n, -1)).reshape(n_s, a, k) * inv[:, :, None]
        Xc = X - xbar[s_codes]
        hess = np.einsum("nai,naj->aij", Xc * mu[:, :, None], Xc)
        grad = np.einsum("na,nai->ai", y[:, None] - mu, X)
        step = np.einsum("aij,aj->ai", np.linalg.pinv(hess), grad)
        beta[active] = b + step
        active = active[np.max(np.abs(step), axis=1) >= tol]
    return np.where(ok, beta[:, 0], np.nan)


def _school_rows(per_school_sorted: np.ndarray, s_codes: np.ndarray, order: np.ndarray,
                 starts: np.ndarray) -> np.ndarray:
    """Rows of a (schools in sorted order) x A array, spread to the records."""
    codes_sorted = s_codes[order][starts]           # the school of each reduceat block
    per_school = np.empty_like(per_school_sorted)
    per_school[codes_sorted] = per_school_sorted
    return per_school[s_codes]


def ols_points(y: np.ndarray, treated: np.ndarray, school: np.ndarray, year: np.ndarray
               ) -> np.ndarray:
    """`ols_point` for many treatment columns at once (`treated`: records x assignments), as
    randomisation inference needs: by Frisch-Waugh-Lovell the coefficient is t'y~ / |t~|^2, with
    y~ the outcome with school and year effects removed and t~ the column with the same removed;
    NaN where a column is not identified.

    Where every column is constant within each school-year cell (randomisation reassigns whole
    schools), all regressors are, and the same coefficients follow from the cells alone:
    weighted least squares on the cell means with the cell sizes as weights has the same
    residuals on cell-constant columns, and the outcome's variation within cells is orthogonal
    to them. A few dozen cells then replace thousands of records."""
    s_codes, s_uniq = pd.factorize(pd.Series(np.asarray(school)), sort=True)
    y_codes, y_uniq = pd.factorize(pd.Series(np.asarray(year)).astype(str), sort=True)
    n_s = len(s_uniq)
    T = np.asarray(treated, dtype=float)
    if T.ndim == 1:
        T = T[:, None]
    cell = s_codes.astype(np.int64) * len(y_uniq) + y_codes
    _, first, inverse = np.unique(cell, return_index=True, return_inverse=True)
    if len(first) < len(cell) and np.array_equal(T[first][inverse], T):
        return _ols_points_cells(np.asarray(y, dtype=float), T, s_codes[first], y_codes[first],
                                 inverse, n_s, len(y_uniq))
    Z = _demean(_dummies(y_codes, len(y_uniq)), s_codes, n_s)
    u, sv, _ = np.linalg.svd(Z, full_matrices=False)
    Q = u[:, sv > 1e-10 * max(sv.max(initial=0.0), 1.0)]  # basis of the demeaned years
    yc = _demean(np.asarray(y, dtype=float)[:, None], s_codes, n_s)[:, 0]
    yc = yc - Q @ (Q.T @ yc)
    Tc = _demean(T, s_codes, n_s)
    norm = np.einsum("ij,ij->j", Tc, Tc) - np.einsum("ij,ij->j", Q.T @ Tc, Q.T @ Tc)
    scale = np.maximum(np.einsum("ij,ij->j", T, T), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 1e-7 * scale, (T.T @ yc) / norm, np.nan)


def _ols_points_cells(y: np.ndarray, T: np.ndarray, cell_school: np.ndarray,
                      cell_year: np.ndarray, inverse: np.ndarray, n_s: int, n_y: int
                      ) -> np.ndarray:
    """`ols_points` from the school-year cells (see there): in the space scaled by the root of
    the cell sizes, weighted least squares is ordinary least squares."""
    n = np.bincount(inverse).astype(float)
    root = np.sqrt(n)
    ybar = np.bincount(inverse, weights=y) / n
    tau = T[np.unique(inverse, return_index=True)[1]]            # cells x assignments

    member = (cell_school[None, :] == np.arange(n_s)[:, None]) * n[None, :]  # schools x cells
    size = np.maximum(member.sum(axis=1), 1e-300)

    def demeaned(v: np.ndarray) -> np.ndarray:                   # school means weighted by n
        v = v.reshape(len(n), -1)
        return root[:, None] * (v - (member @ v / size[:, None])[cell_school])

    Z = demeaned(_dummies(cell_year, n_y))
    u, sv, _ = np.linalg.svd(Z, full_matrices=False)
    Q = u[:, sv > 1e-10 * max(sv.max(initial=0.0), 1.0)]
    yc = demeaned(ybar)[:, 0]
    yc = yc - Q @ (Q.T @ yc)
    Tc = demeaned(tau)
    norm = np.einsum("ij,ij->j", Tc, Tc) - np.einsum("ij,ij->j", Q.T @ Tc, Q.T @ Tc)
    scale = np.maximum(n @ np.square(tau), 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(norm > 1e-7 * scale, ((root[:, None] * tau).T @ yc) / norm, np.nan)


def ols_point(y: np.ndarray, treated: np.ndarray, school: np.ndarray,
              year: np.ndarray | None = None) -> float:
    """The coefficient of `ols_twfe`, without inference."""
    X, s_codes, n_s = _twfe_inputs(treated, school, year)
    Xc = _demean(X, s_codes, n_s)
    Xc = Xc[:, np.r_[True, np.abs(Xc[:, 1:]).sum(axis=0) > 1e-12]]
    if not np.abs(Xc[:, 0]).sum() > 1e-12:
        raise ValueError("treated: the coefficient is not identified")
    yc = _demean(np.asarray(y, dtype=float)[:, None], s_codes, n_s)[:, 0]
    return float(np.linalg.lstsq(Xc, yc, rcond=None)[0][0])
