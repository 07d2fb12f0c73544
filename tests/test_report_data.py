"""One report reads only its schools' rows: the same estimates as from the whole data set, and
the data-quality counts of the files as delivered."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.analysis.design import candidate_schools
from evaluation.analysis.estimates import estimate_all
from evaluation.data.validation import validate_dir
from evaluation.params import DEFAULT_PARAMS_DIR, load_params, load_regions

NUMBERS = ["estimate", "ci_low", "ci_high", "p_value", "p_value_adjusted", "n", "n_clusters"]


def _same_estimates(whole, part, params, params_dir):
    a = estimate_all(whole.tables, params, params_dir).table
    b = estimate_all(part.tables, params, params_dir).table
    pd.testing.assert_frame_equal(a[["indicator", "comparison", *NUMBERS, "note"]],
                                  b[["indicator", "comparison", *NUMBERS, "note"]])


@pytest.fixture(scope="module")
def whole(synthetic_dir):
    return validate_dir(synthetic_dir)


@pytest.mark.parametrize("region, year, municipality", [
    ("zuid-kennemerland", "2016-2017", None),
    ("zuid-kennemerland", "2016-2017", "Haarlem"),
])
def test_narrowed_data_give_the_same_estimates(whole, region, year, municipality):
    params = load_params(region, year, municipality=municipality)
    part = whole.for_schools(candidate_schools(params))
    assert len(part.tables["enrolments"]) < len(whole.tables["enrolments"])  # really narrowed
    assert set(part.tables["schools"]["school_id"]) == candidate_schools(params)
    kept = set(part.tables["trajectories"]["trajectory_id"])
    assert set(part.tables["parent_involvement"]["trajectory_id"]) <= kept
    pd.testing.assert_frame_equal(part.summary(), whole.summary())  # counts of the files
    _same_estimates(whole, part, params, DEFAULT_PARAMS_DIR)


def test_a_national_region_reads_a_few_percent_and_estimates_the_same(tmp_path):
    from evaluation.data.synthetic_national import write_national

    write_national(tmp_path, 20_000, "parquet")
    whole = validate_dir(tmp_path)
    pdir = tmp_path / "params"
    region = next(r.id for r in load_regions(pdir)
                  if r.id.startswith("regio-") and r.pilot_schools)
    params = load_params(region, "2016-2017", params_dir=pdir)
    part = whole.for_schools(candidate_schools(params))
    share = len(part.tables["enrolments"]) / len(whole.tables["enrolments"])
    assert share < 0.25, share
    _same_estimates(whole, part, params, pdir)
    assert np.isfinite(estimate_all(part.tables, params, pdir).table["estimate"]).any()
