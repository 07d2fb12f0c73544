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
