"""The speed work of issue 17 changed how estimates are computed (one pivot for the staggered
jackknife, sums per school as one sparse product, frames that share their pieces, robustness
that reuses the report's own estimates), not what they are: the current code reproduces the
numbers that the code before it (commit 2602757) computed for a region's and a municipality's
report, every estimate and every robustness specification, to 1e-10 (`tests/speed_reference.py`
wrote them)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from speed_reference import REFERENCE, compare, outputs, validated_synthetic

PARAMS = Path(__file__).resolve().parents[1] / "params"


@pytest.fixture(scope="module")
def tables() -> dict:
    return validated_synthetic()


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def test_estimates_and_robustness_equal_the_code_before_the_speed_work(tables, expected):
    problems = compare(outputs(tables, PARAMS), expected)
    assert not problems, "\n".join(problems[:20])


def test_robustness_reusing_the_report_estimates_equals_refitting_them(tables, expected):
    problems = compare(outputs(tables, PARAMS, reuse_estimates=True), expected)
    assert not problems, "\n".join(problems[:20])


def test_the_comparison_would_see_a_changed_number(tables, expected):
    changed = json.loads(json.dumps(expected))
    row = changed["lekstroom/-/2014-2015"]["estimates"][0]
    row["estimate"] = row["estimate"] * (1 + 1e-8)
    assert compare(expected, changed)


def test_ols_points_from_cells_equal_the_records_path_and_one_fit_per_column():
    import numpy as np

    from evaluation.analysis import fixed_effects as fe

    rng = np.random.default_rng(7)
    n = 3000
    school = rng.integers(0, 12, n)
    year = rng.integers(0, 4, n)
    y = rng.normal(size=n) + 0.1 * school + 0.2 * year
    starts = rng.choice([1, 2, 3, 99], size=(12, 40))
    starts[:, 0] = 99                                  # nobody treated: not identified
    T = (year[:, None] >= starts[school]).astype(float)
    cells = fe.ols_points(y, T, school, year)
    assert np.isnan(cells[0]) and np.isfinite(cells[1:]).all()
    one = np.array([fe.ols_point(y, T[:, j], school, year) for j in range(1, 40)])
    np.testing.assert_allclose(cells[1:], one, rtol=1e-10)
    # A column that varies within a cell takes the records path: same coefficients there.
    mixed = T.copy()
    mixed[0, 1] = 1 - mixed[0, 1]
    records = fe.ols_points(y, mixed, school, year)
    np.testing.assert_allclose(records[2:], cells[2:], rtol=1e-10)
    assert records[1] == pytest.approx(fe.ols_point(y, mixed[:, 1], school, year), rel=1e-10)


def test_poisson_jackknife_side_by_side_equals_one_refit_per_school():
    import numpy as np

    from evaluation.analysis import fixed_effects as fe

    rng = np.random.default_rng(3)
    schools, years = 9, 4
    school = np.repeat(np.arange(schools), years)
    year = np.tile(np.arange(years), schools)
    exposure = rng.integers(200, 900, len(school)).astype(float)
    treated = ((school < 3) & (year >= 2)).astype(float)
    count = rng.poisson(exposure * 0.05 * np.where(treated == 1, 0.6, 1.0)).astype(float)
    # The last school alone is seen in the first year: without it that year's effect vanishes.
    keep = (year > 0) | (school == schools - 1)
    count, exposure, treated, school, year = (a[keep] for a in
                                              (count, exposure, treated, school, year))
    X, s_codes, n_s = fe._twfe_inputs(treated, school, year)
    y, offset = count, np.log(exposure)
    full = fe._poisson_profile(y, offset, X, s_codes, n_s, np.zeros(X.shape[1]))[0]
    expected = np.full(n_s, np.nan)
    for g in range(n_s):                                   # the loop the jackknife ran before
        rows = s_codes != g
        Xg = X[rows]
        active = np.r_[True, np.any(Xg[:, 1:] != 0, axis=0)]
        Xg = Xg[:, active]
        if Xg[:, 0].any() and fe._identified_within(Xg, s_codes[rows], n_s):
            expected[g] = fe._poisson_profile(y[rows], offset[rows], Xg, s_codes[rows], n_s,
                                              full[active])[0][0]
    assert np.isfinite(expected).all()
    got = fe._poisson_leave_one_out(y, offset, X, s_codes, n_s, full, np.arange(n_s))[:, 0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    ratio, low, high, p = fe.poisson_twfe(count, exposure, treated, school, year)
    lo_log, hi_log, p_expected = fe.jackknife_interval(float(full[0]), expected, 0.05)
    assert ratio == pytest.approx(np.exp(full[0]), rel=1e-12)
    assert (low, high, p) == pytest.approx((np.exp(lo_log), np.exp(hi_log), p_expected),
                                           rel=1e-9)


def test_holm_adjustment_equals_statsmodels_bit_for_bit():
    """`estimates.holm` replaces statsmodels' `multipletests(method="holm")` (which collects
    garbage on every call); ties, values adjusted above 1 and a single test included."""
    import numpy as np
    from statsmodels.stats.multitest import multipletests

    from evaluation.analysis.estimates import holm

    rng = np.random.default_rng(7)
    for n in (1, 2, 5, 13, 40):
        for _ in range(50):
            p = rng.random(n) ** 3
            p[rng.random(n) < 0.3] = p[0]
            assert np.array_equal(holm(p), multipletests(p, method="holm")[1])
    assert holm(np.array([0.6, 0.3])).tolist() == [0.6, 0.6]
