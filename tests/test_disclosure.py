"""Disclosure control: no published count below the threshold or off the rounding base, derived
rates vanish with their count, and a total cannot give a hidden cell away."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.disclosure import assert_protected, protect_counts, round_to_base
from evaluation.params import Disclosure

DEFAULT = Disclosure()  # min_count 10, rounding_base 5
SMALL = Disclosure(min_count=5, rounding_base=3)


def counts(values) -> pd.DataFrame:
    return pd.DataFrame({"group": [f"g{i}" for i in range(len(values))], "n": values})


def published(frame: pd.DataFrame, col: str = "n") -> list:
    return [None if pd.isna(v) else int(v) for v in frame[col]]


def test_default_rule_is_10_and_5():
    assert (DEFAULT.min_count, DEFAULT.rounding_base) == (10, 5)


def test_round_to_base_rounds_half_up():
    assert round_to_base(pd.Series([0, 2, 3, 7, 8, 12, 13, 22, 23]), 5).tolist() == [
        0, 0, 5, 5, 10, 10, 15, 20, 25]
    # Exact halves go up (not to even).
    assert round_to_base(pd.Series([5, 15, 25, 35]), 10).tolist() == [10, 20, 30, 40]
    assert round_to_base(pd.Series([1, 3, 5]), 2).tolist() == [2, 4, 6]


def test_small_counts_are_suppressed_and_the_rest_rounded():
    out = protect_counts(counts([0, 3, 9, 10, 12, 13, 47]), ["n"], DEFAULT)
    assert published(out) == [None, None, None, 10, 10, 15, 45]
    assert out["group"].tolist() == [f"g{i}" for i in range(7)]


def test_protect_counts_leaves_the_input_alone():
    frame = counts([3, 12])
    protect_counts(frame, ["n"], DEFAULT)
    assert frame["n"].tolist() == [3, 12]


def test_thresholds_are_parameters():
    out = protect_counts(counts([4, 5, 7, 8, 10]), ["n"], SMALL)
    assert published(out) == [None, 6, 6, 9, 9]
    # The same counts under the default rule.
    assert published(protect_counts(counts([4, 5, 7, 8, 10]), ["n"], DEFAULT)) == [
        None, None, None, None, 10]


def test_derived_rates_are_suppressed_with_their_count():
    frame = counts([3, 12, 40]).assign(rate=[0.03, 0.12, 0.40], other=[1.0, 2.0, 3.0])
    out = protect_counts(frame, ["n"], DEFAULT, derived={"rate": "n"})
    assert out["rate"].isna().tolist() == [True, False, False]
    assert out["rate"].iloc[1:].tolist() == [0.12, 0.40]
    assert out["other"].tolist() == [1.0, 2.0, 3.0]  # not derived from n: untouched


def test_each_count_column_protects_its_own_derived_columns():
    frame = pd.DataFrame({"a": [3, 20], "a_rate": [0.1, 0.2], "b": [20, 3], "b_rate": [0.3, 0.4]})
    out = protect_counts(frame, ["a", "b"], DEFAULT, derived={"a_rate": "a", "b_rate": "b"})
    assert out["a_rate"].isna().tolist() == [True, False]
    assert out["b_rate"].isna().tolist() == [False, True]


def test_one_small_cell_with_a_total_also_hides_the_next_smallest():
    frame = counts([40, 3, 25, 12]).assign(rate=[0.4, 0.03, 0.25, 0.12])
    out = protect_counts(frame, ["n"], DEFAULT, derived={"rate": "n"}, with_total=True)
    assert published(out) == [40, None, 25, None]
    assert out["rate"].isna().tolist() == [False, True, False, True]
    # Without a total the second cell is published.
    assert published(protect_counts(frame, ["n"], DEFAULT)) == [40, None, 25, 10]


def test_no_secondary_suppression_when_two_cells_are_already_hidden():
    out = protect_counts(counts([40, 3, 25, 4, 12]), ["n"], DEFAULT, with_total=True)
    assert published(out) == [40, None, 25, None, 10]


def test_no_secondary_suppression_when_nothing_is_small():
    out = protect_counts(counts([40, 13, 25]), ["n"], DEFAULT, with_total=True)
    assert published(out) == [40, 15, 25]


def test_assert_protected_raises_on_small_counts():
    with pytest.raises(AssertionError, match="below"):
        assert_protected(counts([5, 20]), ["n"], DEFAULT)


def test_assert_protected_raises_on_unrounded_counts():
    with pytest.raises(AssertionError, match="rounded"):
        assert_protected(counts([12, 20]), ["n"], DEFAULT)


def test_assert_protected_passes_on_protected_output():
    for rule in (DEFAULT, SMALL):
        frame = counts([0, 1, 4, 5, 9, 10, 11, 13, 99, 1234])
        out = protect_counts(frame, ["n"], rule, with_total=True)
        assert_protected(out, ["n"], rule)
    # Raw counts that happen to be safe also pass.
    assert_protected(counts([10, 15, 100]), ["n"], DEFAULT)


@pytest.mark.parametrize("rule", [DEFAULT, SMALL, Disclosure(min_count=3, rounding_base=1),
                                  Disclosure(min_count=10, rounding_base=10)],
                         ids=["10-5", "5-3", "3-1", "10-10"])
@pytest.mark.parametrize("with_total", [False, True], ids=["no_total", "total"])
def test_protected_output_never_publishes_small_or_unrounded_counts(rule, with_total):
    for seed in range(200):
        rng = np.random.default_rng(seed)
        size = int(rng.integers(1, 12))
        # Mix of small and large counts, with zeros; a NA now and then (cell without data).
        values = rng.choice([rng.integers(0, 2 * rule.min_count), rng.integers(0, 500)],
                            size=size)
        frame = pd.DataFrame({"n": pd.array(values, dtype="Int64")})
        if size > 2 and seed % 5 == 0:
            frame.loc[0, "n"] = pd.NA
        frame["rate"] = frame["n"].astype("Float64") / 1000
        out = protect_counts(frame, ["n"], rule, derived={"rate": "n"}, with_total=True
                             if with_total else False)

        shown = out["n"].dropna().astype("int64")
        assert (shown >= rule.min_count).all(), (seed, values, out)
        assert (shown % rule.rounding_base == 0).all(), (seed, values, out)
        raw = frame["n"]
        # Every published count is the rounded raw count, never more than half a base away.
        assert ((shown - raw[shown.index]).abs() * 2 <= rule.rounding_base).all(), (seed, values)
        # A small raw count is never published, and its rate disappears with it.
        small = raw.fillna(0) < rule.min_count
        assert out.loc[small, "n"].isna().all(), (seed, values)
        assert out.loc[out["n"].isna(), "rate"].isna().all(), (seed, values)
        if with_total:
            hidden = int(out["n"].isna().sum() - raw.isna().sum())
            assert hidden != 1 or len(raw.dropna()) == 1, (seed, values, out)
        assert_protected(out, ["n"], rule)


def test_rounding_never_brings_a_published_count_below_the_threshold():
    rule = Disclosure(min_count=7, rounding_base=5)
    out = protect_counts(counts([7, 20]), ["n"], rule)
    assert_protected(out, ["n"], rule)
