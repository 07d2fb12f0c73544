"""Two-way fixed-effects models with the school effects absorbed, not one dummy per school.

At national scale (2,000 schools, 300,000 trajectories) dummy matrices would take gigabytes; a
region's models are the same with tens of schools. Each model gives the same coefficient,
school-clustered covariance and small-sample correction as its dummy version (statsmodels; tested
against it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _cluster_correction(n_groups: int, nobs: int, k_params: int) -> float:
    """statsmodels' small-sample factor for cluster-robust covariances (with all dummies in k)."""
    return n_groups / (n_groups - 1.0) * (nobs - 1.0) / (nobs - k_params)


def _dummies(codes: np.ndarray, n: int) -> np.ndarray:
    """Indicator columns of codes 1..n-1 (the first level is the reference)."""
    return (codes[:, None] == np.arange(1, n)[None, :]).astype(float)


def _normal_result(beta: float, se: float, alpha: float) -> tuple[float, float, float, float]:
    from scipy import stats

    z = stats.norm.ppf(1 - alpha / 2)
    p = float(2 * stats.norm.sf(abs(beta / se))) if se > 0 else float("nan")
    return beta, beta - z * se, beta + z * se, p


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


def _twfe_inputs(treated: np.ndarray, school: np.ndarray, year: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, int]:
    s_codes, s_uniq = pd.factorize(pd.Series(np.asarray(school)), sort=True)
    y_codes, y_uniq = pd.factorize(pd.Series(np.asarray(year)).astype(str), sort=True)
    X = np.column_stack([np.asarray(treated, dtype=float), _dummies(y_codes, len(y_uniq))])
    return X, s_codes, len(s_uniq)


def _identified_within(X: np.ndarray, s_codes: np.ndarray, n_s: int) -> bool:
    """Is the first column identified next to school effects and the other columns?"""
    size = np.bincount(s_codes, minlength=n_s)
    present = size > 0
    means = np.column_stack([np.bincount(s_codes, weights=X[:, j], minlength=n_s)
                             for j in range(X.shape[1])])
    means[present] /= size[present, None]
    Xc = X - means[s_codes]
    other = Xc[:, 1:][:, np.abs(Xc[:, 1:]).sum(axis=0) > 1e-12]
    resid = Xc[:, 0] - other @ np.linalg.lstsq(other, Xc[:, 0], rcond=None)[0] \
        if other.shape[1] else Xc[:, 0]
    return float(resid @ resid) > 1e-7 * max(float(X[:, 0] @ X[:, 0]), 1.0)


def poisson_twfe(count: np.ndarray, exposure: np.ndarray, treated: np.ndarray,
                 school: np.ndarray, year: np.ndarray, alpha: float = 0.05
                 ) -> tuple[float, float, float, float]:
    """Rate ratio of `treated` in a Poisson model with school and year effects, exposure offset
    and school-clustered CRV1 errors: (rate ratio, low, high, p), as `statistics.poisson_effect`
    gives with a dummy per school (same small-sample factor)."""
    X, s_codes, n_s = _twfe_inputs(treated, school, year)
    y = np.asarray(count, dtype=float)
    offset = np.log(np.asarray(exposure, dtype=float))
    beta, hess, mu, Xc = _poisson_profile(y, offset, X, s_codes, n_s, np.zeros(X.shape[1]))
    scores = Xc * (y - mu)[:, None]
    per_school = np.column_stack([np.bincount(s_codes, weights=scores[:, j], minlength=n_s)
                                  for j in range(X.shape[1])])
    h_inv = np.linalg.pinv(hess)
    k_params = 1 + (n_s - 1) + X.shape[1]
    cov = h_inv @ (per_school.T @ per_school) @ h_inv * _cluster_correction(n_s, len(y), k_params)
    b, low, high, p = _normal_result(float(beta[0]), float(np.sqrt(cov[0, 0])), alpha)
    return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p


def poisson_crv3_twfe(count: np.ndarray, exposure: np.ndarray, treated: np.ndarray,
                      school: np.ndarray, year: np.ndarray, alpha: float = 0.05
                      ) -> tuple[float, float, float, float]:
    """`inference.poisson_effect_crv3` for the difference-in-differences (school and year
    effects, cluster = school): the same jackknife, leave one school out and refit, t(G-1),
    with each refit a few Newton steps on the profiled model (warm-started at the full fit)
    instead of a GLM with a dummy per school. 120 schools: 0.1 s instead of a minute."""
    from scipy import stats

    X, s_codes, n_s = _twfe_inputs(treated, school, year)
    y = np.asarray(count, dtype=float)
    offset = np.log(np.asarray(exposure, dtype=float))
    if not _identified_within(X, s_codes, n_s):
        raise ValueError("treated: the coefficient is not identified")
    full = _poisson_profile(y, offset, X, s_codes, n_s, np.zeros(X.shape[1]))[0]
    b = float(full[0])
    loo = np.full(n_s, np.nan)
    for g in range(n_s):  # schools: tens to a few hundred
        keep = s_codes != g
        Xg = X[keep]
        active = np.r_[True, np.any(Xg[:, 1:] != 0, axis=0)]
        Xg = Xg[:, active]
        if not Xg[:, 0].any() or not _identified_within(Xg, s_codes[keep], n_s):
            continue
        loo[g] = _poisson_profile(y[keep], offset[keep], Xg, s_codes[keep], n_s,
                                  full[active])[0][0]
    if not np.isfinite(loo).all():
        return float(np.exp(b)), np.nan, np.nan, np.nan
    se = float(np.sqrt((n_s - 1) / n_s * np.sum((loo - b) ** 2)))
    crit = stats.t.ppf(1 - alpha / 2, n_s - 1)
    p = float(2 * stats.t.sf(abs(b / se), n_s - 1)) if se > 0 else np.nan
    return float(np.exp(b)), float(np.exp(b - crit * se)), float(np.exp(b + crit * se)), p


def ols_twfe(y: np.ndarray, treated: np.ndarray, school: np.ndarray, year: np.ndarray,
             alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Coefficient of `treated` in a linear model with school and year effects and
    school-clustered CRV1 errors: (estimate, low, high, p), as statsmodels' OLS with a dummy per
    school and year gives (same small-sample factor). Schools are absorbed by demeaning
    (Frisch-Waugh-Lovell), which leaves coefficient and clustered covariance unchanged.
    """
    s_codes, s_uniq = pd.factorize(school)
    y_codes, y_uniq = pd.factorize(pd.Series(year).astype(str), sort=True)
    n_s = len(s_uniq)
    X = np.column_stack([treated.astype(float), _dummies(y_codes, len(y_uniq))])
    Z = np.column_stack([y.astype(float), X])
    size = np.bincount(s_codes, minlength=n_s)
    means = np.column_stack([np.bincount(s_codes, weights=Z[:, j], minlength=n_s)
                             for j in range(Z.shape[1])]) / size[:, None]
    Zc = Z - means[s_codes]
    yc, Xc = Zc[:, 0], Zc[:, 1:]
    keep = np.abs(Xc).sum(axis=0) > 1e-12  # a year with no variation left drops out
    Xc = Xc[:, keep]
    bread = np.linalg.inv(Xc.T @ Xc)
    beta = bread @ (Xc.T @ yc)
    resid = yc - Xc @ beta
    scores = Xc * resid[:, None]
    per_school = np.vstack([np.bincount(s_codes, weights=scores[:, j], minlength=n_s)
                            for j in range(Xc.shape[1])]).T
    k_params = 1 + (n_s - 1) + Xc.shape[1]
    cov = bread @ (per_school.T @ per_school) @ bread * _cluster_correction(n_s, len(yc),
                                                                           k_params)
    return _normal_result(float(beta[0]), float(np.sqrt(cov[0, 0])), alpha)


def cox_twfe(days: np.ndarray, event: np.ndarray, treated: np.ndarray, school: np.ndarray,
             year: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Hazard ratio of `treated` in a Cox model with school-year dummies, stratified and
    clustered by school: (hazard ratio, low, high, p), as `survival.cox_effect` with
    fixed_effects=["school_year"], strata and cluster "school_id" (Huber-White sandwich from the
    same vectorised score residuals, `survival.score_residuals`)."""
    from evaluation.analysis.survival import cox_fit, score_residuals

    ok = ~np.isnan(days)
    days, event, treated, school, year = (a[ok] for a in (days, event, treated, school, year))
    y_codes, y_uniq = pd.factorize(pd.Series(year).astype(str), sort=True)
    X = np.column_stack([treated.astype(float), _dummies(y_codes, len(y_uniq))])
    X = X[:, np.r_[True, X[:, 1:].any(axis=0)]]
    s_codes = pd.factorize(school)[0]
    beta, hess = cox_fit(days.astype(float), event.astype(float), X, s_codes)
    resid = score_residuals(X, days.astype(float), event.astype(float), s_codes, beta)
    per_school = pd.DataFrame(resid).groupby(s_codes).sum().to_numpy()
    h_inv = np.linalg.inv(hess)
    cov = h_inv @ (per_school.T @ per_school) @ h_inv
    b, low, high, p = _normal_result(float(beta[0]), float(np.sqrt(cov[0, 0])), alpha)
    return float(np.exp(b)), float(np.exp(low)), float(np.exp(high)), p


def _demean(Z: np.ndarray, s_codes: np.ndarray, n_s: int) -> np.ndarray:
    size = np.bincount(s_codes, minlength=n_s).astype(float)
    size[size == 0] = 1.0
    means = np.column_stack([np.bincount(s_codes, weights=Z[:, j], minlength=n_s)
                             for j in range(Z.shape[1])]) / size[:, None]
    return Z - means[s_codes]


def _residualise(v: np.ndarray, A: np.ndarray) -> np.ndarray:
    return v - A @ np.linalg.lstsq(A, v, rcond=None)[0] if A.shape[1] else v


def wild_twfe(y: np.ndarray, treated: np.ndarray, school: np.ndarray, year: np.ndarray,
              alpha: float = 0.05, B: int = 999, seed: int = 0, weights: str = "webb"
              ) -> tuple[float, float, float, float]:
    """`inference.fe_ols_wild` for the difference-in-differences (school and year effects,
    cluster = school): the restricted wild cluster bootstrap with the same draws, statistic,
    test inversion and result, computed with the school effects absorbed.

    Two shortcuts, both exact: (1) with the school as cluster, the part of each draw's CRV1
    score that runs through the school dummies is zero (the treatment's residual sums to zero
    within every school), so only the demeaned treatment and year columns remain; (2) the draws
    times the score matrices are computed once, so that each p-value of the test inversion costs
    B x G instead of B x G x G operations. A region of 120 schools: 0.02 s instead of 0.4 s.
    """

    from evaluation.analysis.inference import draw_weights, inverted_interval

    X, s_codes, G = _twfe_inputs(treated, school, year)
    ya = np.asarray(y, dtype=float)
    n = len(ya)
    if G < 2:
        raise ValueError("clusters: at least two clusters are needed")
    Xc = _demean(X, s_codes, G)
    Xc = Xc[:, np.r_[True, np.abs(Xc[:, 1:]).sum(axis=0) > 1e-12]]
    yc = _demean(ya[:, None], s_codes, G)[:, 0]
    years_c = Xc[:, 1:]
    x_res = _residualise(Xc[:, 0], years_c)
    ssx = float(x_res @ x_res)
    if not ssx > 1e-7 * max(float(X[:, 0] @ X[:, 0]), 1.0):
        raise ValueError("param: the coefficient is not identified (its column is zero or "
                         "collinear with the others)")
    a = x_res / ssx
    beta = np.linalg.lstsq(Xc, yc, rcond=None)[0]
    b = float(beta[0])
    u = yc - Xc @ beta
    rank = G + int(np.linalg.matrix_rank(Xc))
    c = G / (G - 1) * (n - 1) / (n - rank)

    def by_school(v: np.ndarray) -> np.ndarray:
        v = v.reshape(n, -1)
        return np.column_stack([np.bincount(s_codes, weights=v[:, j], minlength=G)
                                for j in range(v.shape[1])])

    score = by_school(a * u)[:, 0]
    se = float(np.sqrt(c * score @ score))
    if not se > 0:
        raise ValueError("y: no residual variation, the coefficient has no standard error")
    gram_inv = np.linalg.pinv(Xc.T @ Xc)
    Fa = by_school(a[:, None] * Xc)  # G x k

    def parts(resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        d = by_school(a * resid)[:, 0]
        return d, np.diag(d) - Fa @ gram_inv @ by_school(resid[:, None] * Xc).T

    ry = _residualise(yc, years_c)
    rx = x_res
    d_y, K_y = parts(ry)
    d_x, K_x = parts(rx)
    V = draw_weights(weights, B, G, np.random.default_rng(seed))
    num_y, num_x = V @ d_y, V @ d_x
    den_y, den_x = V @ K_y.T, V @ K_x.T

    def p_value(b0: float) -> float:
        num = num_y - b0 * num_x
        den = np.sqrt(c * np.square(den_y - b0 * den_x).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = np.abs(num / den)
        return float(np.mean(t_star >= abs((b - b0) / se) * (1 - 1e-12)))

    low, high = inverted_interval(p_value, b, se, alpha)
    return b, low, high, p_value(0.0)


