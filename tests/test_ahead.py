"""The robustness analysis started ahead in a forked child (`run.ahead`) gives the notebook the
same table it would compute itself, and never leaves it waiting for nothing."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from evaluation.analysis.estimates import estimate_all
from evaluation.analysis.robustness import PRIMARY, robustness
from evaluation.params import DEFAULT_PARAMS_DIR, load_params
from evaluation.run import ahead
from evaluation.run.pipeline import cached_report_data

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


@pytest.fixture(scope="module")
def report(synthetic_dir):
    params = load_params("lekstroom", "2014-2015", municipality="houten")
    tables = cached_report_data(synthetic_dir, params).tables
    return params, tables, estimate_all(tables, params, DEFAULT_PARAMS_DIR)


def _key(params, es):
    return ahead.robustness_key(params.region.id, params.school_year, DEFAULT_PARAMS_DIR, (),
                                params.municipality, tuple(PRIMARY), es)


def test_the_result_computed_ahead_equals_the_notebooks_own(report, tmp_path):
    params, tables, es = report
    ahead.start_robustness(tmp_path, tables, params, DEFAULT_PARAMS_DIR, (), es)
    taking = ahead.taking(robustness)
    got = taking(tables, params.region.id, params.school_year, DEFAULT_PARAMS_DIR, (),
                 params.municipality, estimates=es)
    assert not ahead._PENDING and not list(tmp_path.iterdir())  # taken and cleaned up
    own = robustness(tables, params.region.id, params.school_year, DEFAULT_PARAMS_DIR, (),
                     params.municipality, estimates=es)
    pd.testing.assert_frame_equal(got, own)
    assert len(own) > 10


def test_another_call_or_a_failed_child_falls_back_to_computing_it(report, tmp_path):
    params, tables, es = report
    ahead.start_robustness(tmp_path, tables, params, DEFAULT_PARAMS_DIR, (), es)
    other = ahead.robustness_key("elders", params.school_year, DEFAULT_PARAMS_DIR, (),
                                 params.municipality, tuple(PRIMARY), es)
    assert ahead.taken(other) is None  # not this call's result
    ahead.discard()  # a report that failed before its robustness notebook: the child is gone
    assert not ahead._PENDING and ahead.taken(_key(params, es)) is None
    broken = {**tables, "enrolments": tables["enrolments"].iloc[0:0]}  # the child raises
    ahead.start_robustness(tmp_path, broken, params, DEFAULT_PARAMS_DIR, (), es)
    assert ahead.taken(_key(params, es)) is None  # no result: the notebook computes it itself
    assert not list(tmp_path.iterdir())
