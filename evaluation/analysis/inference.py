"""Inference that holds with few schools: wild cluster bootstrap and cluster jackknife (CRV3).

Why this module exists: a region has 10 to 30 school locations, and pupils of one school share its
way of working, so every comparison clusters by school. With so few clusters the usual
cluster-robust (CRV1) standard errors are too small and normal critical values too narrow:
intervals cover the truth less often than they claim and p-values are too small (MacKinnon,
Nielsen & Webb 2023, "Cluster-robust inference: a guide to empirical practice", J. Econometrics).
Two remedies, both recommended there:

* `wild_cluster_bootstrap` — the restricted wild cluster bootstrap (WCR, null imposed) bootstrap-t
  for one coefficient of a linear model (OLS with fixed-effect dummies). Webb's six-point weights
  by default: with G clusters Rademacher weights give only 2^G distinct draws (4096 for 12
  schools), Webb's give 6^G. The p-value is symmetric, P(|t*| >= |t|). The confidence interval is
  obtained by **test inversion**: the set of null values b0 whose WCR p-value is at least alpha,
  its two ends found by bisection with the same draws for every b0 (as Stata's `boottest`,
  Roodman, MacKinnon, Nielsen & Webb 2019). Nothing loops over draws: with
  y* = yhat_r + u_r * v_g the bootstrap coefficient and each cluster's CRV1 score are linear in
  the draws v, so one B x G draw matrix times a G-vector and a G x G matrix gives all B
  t-statistics; and the restricted residuals are linear in b0, so each inversion step is two
  small matrix products.
  With `impose_null=False` the unrestricted bootstrap (WCU) gives a symmetric percentile-t
  interval instead (b ± q·se, q the 1 - alpha quantile of |t*|).
* `crv3_ols` (and, for counts, `fixed_effects.poisson_twfe(inference="cluster_jackknife")`) —
  the cluster jackknife variance CRV3, (G-1)/G · Σ_g (b_(g) - b)², with t(G-1) critical values.
  For the Poisson count
  difference-in-differences (rates) the jackknife is chosen over a score/wild bootstrap of the
  linearised GLM: it refits the model itself, so nothing rests on a linearisation around an
  estimate that few clusters make imprecise; the count models run on a school x school-year panel
  (tens of rows), so G refits take milliseconds; it needs no random draws, so a published
  interval is the same at every render; and MacKinnon, Nielsen & Webb find CRV3 with t(G-1)
  close to the WCR bootstrap and far better than CRV1 with few clusters. `tests/test_inference.py`
  checks its coverage by Monte Carlo.
* `staggered_crv3` — the same jackknife for the Callaway & Sant'Anna average effect of
  `evaluation.analysis.staggered.att_gt` (leave one school out, refit), whose own analytic standard errors
  carry no small-sample correction.

The comparisons reach these through `evaluation.analysis.fixed_effects`, whose models absorb the
school effects; which inference each indicator kind gets is decided in `evaluation.analysis.methods`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import stats

__all__ = [
    "WEIGHTS",
    "crv3_ols",
    "draw_weights",
    "staggered_crv3",
    "wild_cluster_bootstrap",
]

WEIGHTS = ("webb", "rademacher", "mammen")
_WEBB = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
_WEIGHT_NAMES = {"webb": "Webb-gewichten", "rademacher": "Rademacher-gewichten",
                 "mammen": "Mammen-gewichten"}


# --- shared helpers ----------------------------------------------------------------------------

def _cluster_codes(clusters: Sequence | np.ndarray | pd.Series, n: int) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(pd.Series(np.asarray(clusters)), sort=True)
    if len(codes) != n:
        raise ValueError(f"clusters: {len(codes)} values for {n} observations")
    if (codes < 0).any():
        raise ValueError("clusters: missing values")
    if len(uniques) < 2:
        raise ValueError("clusters: at least two clusters are needed")
    return codes.astype(np.int64), len(uniques)


def _design(X: np.ndarray | pd.DataFrame, param: int | str) -> tuple[np.ndarray, int]:
    """The regressors as a float matrix and the column index of the tested coefficient."""
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        j = names.index(str(param)) if isinstance(param, str) else int(param)
        Xa = X.to_numpy(dtype=float)
    else:
        if isinstance(param, str):
            raise ValueError("param: a column name needs X as a DataFrame")
        Xa = np.asarray(X, dtype=float)
        j = int(param)
    if Xa.ndim != 2:
        raise ValueError("X: expected a two-dimensional array")
    if not 0 <= j < Xa.shape[1]:
        raise ValueError(f"param: column {j} is not among the {Xa.shape[1]} regressors")
    if not np.isfinite(Xa).all():
        raise ValueError("X: missing or infinite values")
    return Xa, j


def _vector(y: Sequence | np.ndarray | pd.Series, n: int, name: str = "y") -> np.ndarray:
    ya = np.asarray(y, dtype=float).ravel()
    if len(ya) != n:
        raise ValueError(f"{name}: {len(ya)} values for {n} observations")
    if not np.isfinite(ya).all():
        raise ValueError(f"{name}: missing or infinite values")
    return ya


def _gram(A: np.ndarray, B: np.ndarray | None = None) -> np.ndarray:
    """A'B (A'A) by einsum: single-threaded, which on a shared, busy machine beats waking the
    threads of a BLAS for matrices of a few thousand rows and tens of columns."""
    return np.einsum("ni,nj->ij", A, A if B is None else B)


def _membership(codes: np.ndarray, G: int) -> sp.csr_matrix:
    """G x n indicator matrix: `Z @ v` sums v within clusters."""
    n = len(codes)
    return sp.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(G, n))


def _identified(A: np.ndarray, j: int) -> tuple[bool, np.ndarray]:
    """Is coefficient j identified by the cross-product matrix A = X'X (e_j in its row space)?
    Also returns the pseudo-inverse, which solves the normal equations when it is."""
    A_inv = np.linalg.pinv(A, rcond=1e-10, hermitian=True)
    e = np.zeros(len(A))
    e[j] = 1.0
    return bool(np.allclose(A_inv @ A[:, j], e, atol=1e-7)), A_inv


def draw_weights(kind: str, B: int, G: int, rng: np.random.Generator) -> np.ndarray:
    """B x G matrix of cluster weights with mean 0 and variance 1.

    Rademacher weights are enumerated in full when 2^G <= B (every sign pattern once), as
    `boottest` does: with so few clusters random draws would only repeat patterns.
    """
    if kind not in WEIGHTS:
        raise ValueError(f"weights: expected one of {WEIGHTS}, got {kind!r}")
    if kind == "rademacher":
        if 2**G <= B:
            patterns = (np.arange(2**G)[:, None] >> np.arange(G)[None, :]) & 1
            return 2.0 * patterns - 1.0
        return rng.choice(np.array([-1.0, 1.0]), size=(B, G))
    if kind == "webb":
        return _WEBB[rng.integers(0, 6, size=(B, G))]
    root5 = np.sqrt(5.0)
    low = rng.random((B, G)) < (root5 + 1) / (2 * root5)
    return np.where(low, (1 - root5) / 2, (1 + root5) / 2)


# --- wild cluster bootstrap ---------------------------------------------------------------------

def wild_cluster_bootstrap(y: Sequence | np.ndarray | pd.Series, X: np.ndarray | pd.DataFrame,
                           param: int | str, clusters: Sequence | np.ndarray | pd.Series,
                           B: int = 999, weights: str = "webb", alpha: float = 0.05,
                           seed: int = 0, impose_null: bool = True, ci: bool = True,
                           absorbed: int = 0) -> dict:
    """Wild cluster bootstrap-t for coefficient `param` of the OLS of `y` on `X`.

    Returns estimate, ci_low, ci_high, p_value (H0: coefficient = 0), se and t_stat (CRV1, with
    the small-sample factor G/(G-1)·(n-1)/(n-k)), n_clusters, draws and a Dutch `method` text.
    `impose_null=True` (default, WCR): p-value from the restricted bootstrap, interval by test
    inversion. `impose_null=False` (WCU): symmetric percentile-t interval. `ci=False` skips the
    interval (NaN), for Monte Carlo checks that need only the p-value. `absorbed`: parameters
    absorbed before the call (fixed effects of the clusters demeaned out of `y` and `X`, see
    `fixed_effects.ols_twfe`), counted in the small-sample factor as their dummies would be; with
    the cluster's own effects absorbed the bootstrap is the same as with a dummy per cluster,
    because the treatment's residual sums to zero within every cluster.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha: must lie in (0, 1), got {alpha}")
    if B < 19:
        raise ValueError(f"B: at least 19 draws are needed, got {B}")
    Xa, j = _design(X, param)
    n = Xa.shape[0]
    ya = _vector(y, n)
    codes, G = _cluster_codes(clusters, n)
    XtX = _gram(Xa)
    ok, XtX_inv = _identified(XtX, j)
    if not ok:
        raise ValueError("param: the coefficient is not identified (its column is zero or "
                         "collinear with the others)")
    Z = _membership(codes, G)
    a = Xa @ XtX_inv[:, j]                      # b_j = a'y
    rank = int(np.linalg.matrix_rank(XtX, hermitian=True)) + absorbed
    beta = XtX_inv @ (Xa.T @ ya)
    b = float(beta[j])
    u = ya - Xa @ beta
    c = G / (G - 1) * (n - 1) / (n - rank)
    score = Z @ (a * u)
    se = float(np.sqrt(c * score @ score))
    if not se > 0:
        raise ValueError("y: no residual variation, the coefficient has no standard error")
    F = np.asarray(Z @ (a[:, None] * Xa))       # G x k: sum of a_i x_i' within each cluster

    def parts(resid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d and K such that b*_j - b0 = V d and the CRV1 scores of the draws are V K'."""
        d = Z @ (a * resid)
        P = XtX_inv @ np.asarray(Z @ (Xa * resid[:, None])).T   # k x G
        return d, np.diag(d) - F @ P

    V = draw_weights(weights, B, G, np.random.default_rng(seed))

    def t_boot(d: np.ndarray, K: np.ndarray) -> np.ndarray:
        # einsum, not @: these products are small, and a multi-threaded BLAS on a busy machine
        # spends more time waking its threads than computing them.
        num = np.einsum("bg,g->b", V, d)
        den = np.sqrt(c * np.square(np.einsum("bh,gh->bg", V, K)).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(num / den)

    label = _WEIGHT_NAMES[weights]
    if not impose_null:
        t_star = t_boot(*parts(u))
        t_star = t_star[np.isfinite(t_star)]
        q = float(np.quantile(t_star, 1 - alpha, method="higher"))
        p = float(np.mean(t_star >= abs(b / se)))
        return {"estimate": b, "ci_low": float(b - q * se), "ci_high": float(b + q * se),
                "p_value": p,
                "se": se, "t_stat": b / se, "n_clusters": G, "draws": len(V),
                "method": f"wild cluster bootstrap (WCU, {label}, {len(V)} trekkingen), "
                          "symmetrisch percentiel-t-interval"}

    # Restricted residuals under H0: b_j = b0 are M_r (y - b0 x_j) = ry - b0 rx.
    Xr = np.delete(Xa, j, axis=1)
    XrtXr_inv = np.linalg.pinv(np.delete(np.delete(XtX, j, 0), j, 1), rcond=1e-10,
                               hermitian=True)
    ry = ya - Xr @ (XrtXr_inv @ (Xr.T @ ya))
    rx = Xa[:, j] - Xr @ (XrtXr_inv @ (Xr.T @ Xa[:, j]))
    d_y, K_y = parts(ry)
    d_x, K_x = parts(rx)

    # The draws times each part, once: every step of the test inversion is then B x G work.
    num_y, num_x = np.einsum("bg,g->b", V, d_y), np.einsum("bg,g->b", V, d_x)
    den_y, den_x = np.einsum("bh,gh->bg", V, K_y), np.einsum("bh,gh->bg", V, K_x)

    def p_value(b0: float) -> float:
        num = num_y - b0 * num_x
        den = np.sqrt(c * np.square(den_y - b0 * den_x).sum(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_star = np.abs(num / den)
        # A draw that reproduces the sample (all weights 1) ties with it: count it, whatever
        # the rounding.
        return float(np.mean(t_star >= abs((b - b0) / se) * (1 - 1e-12)))

    low, high = inverted_interval(p_value, b, se, alpha) if ci else (np.nan, np.nan)
    return {"estimate": b, "ci_low": low, "ci_high": high,
            "p_value": p_value(0.0),
            "se": se, "t_stat": b / se, "n_clusters": G, "draws": len(V),
            "method": f"wild cluster bootstrap (WCR, {label}, {len(V)} trekkingen), "
                      "interval door testinversie"}


# --- cluster jackknife (CRV3) --------------------------------------------------------------------

def _jackknife_summary(estimate: float, loo: np.ndarray, alpha: float, G: int) -> dict:
    """CRV3 standard error around the full estimate, t(G-1) interval and p-value."""
    if not np.isfinite(loo).all():
        return {"estimate": estimate, "se": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "p_value": np.nan, "n_clusters": G, "jackknife": loo}
    se = float(np.sqrt((G - 1) / G * np.sum((loo - estimate) ** 2)))
    crit = stats.t.ppf(1 - alpha / 2, G - 1)
    p = float(2 * stats.t.sf(abs(estimate / se), G - 1)) if se > 0 else np.nan
    return {"estimate": estimate, "se": se, "ci_low": float(estimate - crit * se),
            "ci_high": float(estimate + crit * se), "p_value": p, "n_clusters": G, "jackknife": loo}


def crv3_ols(y: Sequence | np.ndarray | pd.Series, X: np.ndarray | pd.DataFrame,
             param: int | str, clusters: Sequence | np.ndarray | pd.Series,
             alpha: float = 0.05) -> dict:
    """Cluster-jackknife (CRV3) inference for coefficient `param` of an OLS with t(G-1).

    Each leave-one-cluster-out coefficient comes from down-dated cross products
    (X'X - X_g'X_g), not a refit; columns that vanish without cluster g (its own fixed effect)
    are dropped. NaN throughout when leaving some cluster out leaves the coefficient unidentified
    (e.g. the only treated school).
    """
    Xa, j = _design(X, param)
    n, _ = Xa.shape
    ya = _vector(y, n)
    codes, G = _cluster_codes(clusters, n)
    XtX, Xty = _gram(Xa), Xa.T @ ya
    ok, XtX_inv = _identified(XtX, j)
    if not ok:
        raise ValueError("param: the coefficient is not identified")
    b = float((XtX_inv @ Xty)[j])
    loo = np.full(G, np.nan)
    for g in range(G):                            # G is tens: a loop over clusters is cheap
        rows = codes == g
        A = XtX - _gram(Xa[rows])
        r = Xty - Xa[rows].T @ ya[rows]
        active = np.flatnonzero(np.abs(np.diag(A)) > 1e-12 * max(np.abs(np.diag(XtX)).max(), 1))
        if j not in active:
            continue
        jj = int(np.flatnonzero(active == j)[0])
        ok, A_inv = _identified(A[np.ix_(active, active)], jj)
        if ok:
            loo[g] = (A_inv @ r[active])[jj]
    out = _jackknife_summary(b, loo, alpha, G)
    out["method"] = "cluster-jackknife (CRV3), t-verdeling met G-1 vrijheidsgraden"
    return out


def staggered_crv3(panel: pd.DataFrame, unit: str, time: str, cohort: str, outcome: str,
                   control: str = "not_yet_treated", alpha: float = 0.05,
                   cluster: str | None = None) -> dict:
    """Callaway & Sant'Anna overall ATT ("simple" aggregation) with a leave-one-cluster-out
    jackknife (CRV3) interval, t(G-1). Clusters are `cluster` or the units (schools).

    NaN interval when leaving some cluster out makes the estimator undefined (e.g. the only
    control school), rather than a jackknife over the clusters that happen to work.
    """
    from evaluation.analysis.staggered import att_gt, simple_att_leave_one_out

    full = att_gt(panel, unit, time, cohort, outcome, control=control, alpha=alpha,
                  cluster=cluster)
    key = cluster or unit
    G = len(pd.unique(panel[key]))
    if G < 2:
        raise ValueError(f"{key}: at least two clusters are needed")
    loo = simple_att_leave_one_out(panel, unit, time, cohort, outcome, control, cluster)[1]
    out = _jackknife_summary(float(full.simple["att"]), loo, alpha, G)
    out["method"] = ("groep-tijdeffecten (Callaway & Sant'Anna), cluster-jackknife (CRV3), "
                     "t-verdeling met G-1 vrijheidsgraden")
    out["analytic_se"] = float(full.simple["se"])
    return out


def inverted_interval(p_value: Callable[[float], float], b: float, se: float, alpha: float
                      ) -> tuple[float, float]:
    """The interval of all b0 the test does not reject at `alpha`, found by test inversion: from
    the estimate widen outward in doubling steps until `p_value(b0)` < alpha, then bisect the
    boundary to 1e-7 standard errors. An end that is never reached is infinite."""

    def end(direction: float) -> float:
        inside, step = b, stats.norm.ppf(1 - alpha / 2) * se
        outside = b + direction * step
        for _ in range(60):                      # widen until the null is rejected
            if p_value(outside) < alpha:
                break
            inside, step = outside, 2 * step
            outside = b + direction * step
        else:
            return direction * np.inf
        for _ in range(100):                     # then bisect the boundary
            mid = (inside + outside) / 2
            if p_value(mid) < alpha:
                outside = mid
            else:
                inside = mid
            if abs(outside - inside) <= 1e-7 * se:
                break
        return (inside + outside) / 2

    return float(end(-1.0)), float(end(1.0))
