"""Disclosure control: no published count below the threshold or off the rounding base, derived
rates vanish with their count, and neither a total nor other published cells give a hidden cell
away (checked against an attacker who solves the published row and column equations)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from evaluation.params import Disclosure
from evaluation.report.disclosure import (
    TOTAL,
    DisclosureError,
    PublishedTable,
    assert_protected,
    check_published,
    protect_counts,
    protect_crosstab,
    protect_rates,
    round_to_base,
)

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


# --- two-dimensional tables: primary and secondary suppression ---------------------------------

def hidden_cells(out: pd.DataFrame) -> set[tuple]:
    return {(r, c) for r in out.index for c in out.columns if pd.isna(out.loc[r, c])}


def lines_with_one_hidden(out: pd.DataFrame) -> list[tuple]:
    """Rows and columns (the total row and column too) that are equations with one unknown."""
    hidden = out.isna().to_numpy()
    return ([("row", r) for r, k in zip(out.index, hidden.sum(axis=1), strict=True) if k == 1]
            + [("column", c) for c, k in zip(out.columns, hidden.sum(axis=0), strict=True)
               if k == 1])


def recoverable(out: pd.DataFrame) -> list[tuple]:
    """Hidden cells an attacker computes exactly from the published table with totals.

    Every row says: its cells add up to its total (the last column); every column likewise with
    the last row. With the published numbers moved to the right-hand side, a hidden cell is
    determined exactly when its column of the system is not spanned by the other hidden cells'
    columns (removing it lowers the rank). This catches combinations of equations, not only
    equations with a single unknown.
    """
    hidden = out.isna().to_numpy()
    n_rows, n_cols = hidden.shape
    cells = [tuple(c) for c in np.argwhere(hidden)]
    if not cells:
        return []
    system = np.zeros((n_rows + n_cols, len(cells)))
    for k, (i, j) in enumerate(cells):
        system[i, k] = -1.0 if j == n_cols - 1 else 1.0  # the total of row i, or a cell of it
        system[n_rows + j, k] = -1.0 if i == n_rows - 1 else 1.0
    rank = np.linalg.matrix_rank(system)
    return [(out.index[i], out.columns[j]) for k, (i, j) in enumerate(cells)
            if np.linalg.matrix_rank(np.delete(system, k, axis=1)) < rank]


def with_raw_totals(table: pd.DataFrame) -> pd.DataFrame:
    full = table.astype("Float64").fillna(0).astype("int64")
    full[TOTAL] = full.sum(axis=1)
    full.loc[TOTAL] = full.sum(axis=0)
    return full


def check_crosstab(table: pd.DataFrame, out: pd.DataFrame, rule: Disclosure, note=None) -> None:
    """Properties (a)-(c) of a protected crosstab, plus: primary cells hidden, rest rounded."""
    note = note if note is not None else table
    raw = with_raw_totals(table)
    assert out.index.equals(raw.index) and out.columns.equals(raw.columns), note
    assert (out.dtypes == "Int64").all(), note
    # (a) No row or column (the totals' too) is an equation with one unknown.
    assert lines_with_one_hidden(out) == [], (note, out)
    # (b) Every published count is the rounded raw count, at least the threshold, on the base.
    shown = out.stack().dropna().astype("int64")
    assert (shown >= rule.min_count).all(), (note, out)
    assert (shown % rule.rounding_base == 0).all(), (note, out)
    expected = raw.map(lambda v: int(np.floor(v / rule.rounding_base + 0.5)) * rule.rounding_base)
    assert (shown == expected.stack()[shown.index]).all(), (note, out)
    small = (raw < rule.min_count) | (expected < rule.min_count)
    assert out[small].isna().all().all(), (note, out)
    # (c) No combination of published equations pins a hidden count down.
    assert recoverable(out) == [], (note, out)
    check_published([PublishedTable("kruistabel", out, list(out.columns), "")], rule)


def school_by_year() -> pd.DataFrame:
    """One small cell (school A, 2013-2014): alone in its row and in its column."""
    return pd.DataFrame(
        {"2012-2013": [40, 30, 15], "2013-2014": [3, 22, 35], "2014-2015": [25, 18, 50]},
        index=pd.Index(["A", "B", "C"], name="school"),
    ).rename_axis(columns="schooljaar")


def test_crosstab_one_small_cell_gets_partners_in_its_row_and_column():
    table = school_by_year()
    out = protect_crosstab(table, DEFAULT)
    # The smallest partners close a rectangle: every hidden cell has a hidden partner in its row
    # and in its column, all totals are published.
    assert hidden_cells(out) == {("A", "2013-2014"), ("A", "2014-2015"),
                                 ("B", "2013-2014"), ("B", "2014-2015")}
    assert out.loc["A", TOTAL] == 70 and out.loc["C"].tolist() == [15, 35, 50, 100]
    assert out.loc[TOTAL].tolist() == [85, 60, 95, 240]  # 93 and 238 rounded
    assert out.index.name == "school" and out.columns.name == "schooljaar"
    check_crosstab(table, out, DEFAULT)


def test_a_single_small_cell_with_totals_would_be_recoverable():
    """The attacker model of the checks: with only primary suppression the cell is exposed."""
    table = school_by_year()
    naive = protect_crosstab(table, DEFAULT, margins=False)
    naive[TOTAL] = with_raw_totals(table)[TOTAL].iloc[:-1].map(lambda v: 5 * int(v / 5 + 0.5))
    naive.loc[TOTAL] = [85, 60, 95, 240]
    assert lines_with_one_hidden(naive) == [("row", "A"), ("column", "2013-2014")]
    assert recoverable(naive) == [("A", "2013-2014")]


def test_crosstab_breaks_chains_that_lines_alone_miss():
    """Two hidden rectangles linked by one hidden cell: every line has two or more hidden
    cells, yet adding rows 0 and 1 and subtracting columns 0 and 1 gives the link away."""
    values = np.full((5, 5), 40)
    links = [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (2, 3), (3, 2), (3, 3), (0, 2)]
    for cell in links:
        values[cell] = 2
    table = pd.DataFrame(values)
    primary_only = with_raw_totals(table).astype("Int64")
    for cell in links:
        primary_only.iloc[cell] = pd.NA
    assert lines_with_one_hidden(primary_only) == []
    assert recoverable(primary_only) == [(0, 2)]

    out = protect_crosstab(table, DEFAULT)
    assert hidden_cells(out) == {*links, (0, 3)}  # the smallest cell across the link
    check_crosstab(table, out, DEFAULT)


def test_crosstab_thresholds_are_parameters():
    table = pd.DataFrame([[4, 20, 9], [12, 6, 30]], index=["x", "y"], columns=["p", "q", "r"])
    out = protect_crosstab(table, SMALL)
    assert published(out.T, "x") == [None, 21, None, 33]
    assert published(out.T, "y") == [None, 6, None, 48]
    assert out.loc[TOTAL].tolist() == [15, 27, 39, 81]
    check_crosstab(table, out, SMALL)
    # Under the default rule 4, 9 and 6 are small; the table still passes every check.
    check_crosstab(table, protect_crosstab(table, DEFAULT), DEFAULT)


def test_crosstab_suppresses_small_totals_and_protects_them_too():
    table = pd.DataFrame([[2, 3], [40, 50]], index=["a", "b"], columns=["p", "q"])
    out = protect_crosstab(table, DEFAULT)
    assert pd.isna(out.loc["a", TOTAL])  # 5 is below 10
    check_crosstab(table, out, DEFAULT)
    # One column: each row total equals its cell, so it goes with it.
    single = pd.DataFrame({"n": [3, 40, 12]})
    out = protect_crosstab(single, DEFAULT)
    assert out["n"].isna().tolist() == out[TOTAL].isna().tolist() == [True, False, True, False]
    check_crosstab(single, out, DEFAULT)


def test_crosstab_without_margins_only_suppresses_small_cells():
    table = school_by_year()
    out = protect_crosstab(table, DEFAULT, margins=False)
    assert TOTAL not in out.index and TOTAL not in out.columns
    assert hidden_cells(out) == {("A", "2013-2014")}
    assert out.loc["B"].tolist() == [30, 20, 20]


def test_crosstab_leaves_the_input_alone_and_reads_na_as_zero():
    table = school_by_year().astype("Int64")
    table.loc["C", "2012-2013"] = pd.NA
    before = table.copy()
    out = protect_crosstab(table, DEFAULT)
    pd.testing.assert_frame_equal(table, before)
    assert pd.isna(out.loc["C", "2012-2013"])
    assert out.loc[TOTAL, "2012-2013"] == 70  # 40 + 30 + 0
    check_crosstab(table, out, DEFAULT)


def test_crosstab_rejects_tables_that_are_not_counts():
    with pytest.raises(ValueError, match="negative"):
        protect_crosstab(pd.DataFrame({"a": [-1, 20]}), DEFAULT)
    with pytest.raises(ValueError, match="whole"):
        protect_crosstab(pd.DataFrame({"a": [1.5, 20]}), DEFAULT)
    with pytest.raises(ValueError, match="Totaal"):
        protect_crosstab(pd.DataFrame({"a": [1, 20], TOTAL: [1, 20]}), DEFAULT)


@pytest.mark.parametrize("rule", [DEFAULT, SMALL, Disclosure(min_count=3, rounding_base=1),
                                  Disclosure(min_count=10, rounding_base=10)],
                         ids=["10-5", "5-3", "3-1", "10-10"])
def test_protected_crosstabs_have_no_recoverable_cell(rule):
    for seed in range(200):
        rng = np.random.default_rng(seed)
        shape = (int(rng.integers(1, 8)), int(rng.integers(1, 7)))
        # Many small cells (zeros included) between larger ones; now and then a cell without data.
        share_small = rng.uniform(0.1, 0.8)
        values = np.where(rng.random(shape) < share_small,
                          rng.integers(0, 2 * rule.min_count, shape), rng.integers(0, 200, shape))
        table = pd.DataFrame(values, columns=[f"c{j}" for j in range(shape[1])]).astype("Int64")
        if seed % 7 == 0:
            table.iloc[0, 0] = pd.NA
        out = protect_crosstab(table, rule)
        check_crosstab(table, out, rule, note=(seed, values.tolist()))


# --- rates, shares and means -------------------------------------------------------------------

def test_protect_rates_hides_rates_of_small_counts():
    frame = pd.DataFrame({"school": ["A", "B", "C"], "n": [3, 12, 40],
                          "per_100": [0.6, 2.4, 8.0], "mean_days": [30.0, 41.5, 52.0],
                          "pupils": [500, 500, 500]})
    before = frame.copy()
    out = protect_rates(frame, "n", ["per_100", "mean_days"], DEFAULT)
    pd.testing.assert_frame_equal(frame, before)
    assert published(out) == [None, 10, 40]
    assert out["per_100"].isna().tolist() == out["mean_days"].isna().tolist() == [True, False,
                                                                                  False]
    assert out["mean_days"].iloc[1:].tolist() == [41.5, 52.0]
    assert out["pupils"].tolist() == [500, 500, 500]  # not derived from n
    # One rate column may be named on its own; protecting twice changes nothing.
    once = protect_rates(frame, "n", "per_100", SMALL)
    assert once["per_100"].isna().tolist() == [True, False, False]
    pd.testing.assert_frame_equal(protect_rates(once, "n", "per_100", SMALL), once)
    with pytest.raises(KeyError, match="share"):
        protect_rates(frame, "n", ["share"], DEFAULT)


def test_protect_rates_follows_secondary_suppression_of_a_crosstab():
    """A figure drawn from a crosstab: a rate whose (large) count was hidden as a partner
    must vanish too, or it gives the hidden count back."""
    table = school_by_year()
    safe = protect_crosstab(table, DEFAULT).drop(index=TOTAL, columns=TOTAL)
    long = table.stack().rename("raw").to_frame().join(safe.stack().rename("n"))
    long["per_100"] = 100 * long["raw"] / 400
    figure = protect_rates(long.drop(columns="raw"), "n", ["per_100"], DEFAULT)
    assert figure["per_100"].isna().sum() == 4
    assert pd.isna(figure.loc[("B", "2014-2015"), "per_100"])  # raw 18: hidden as a partner
    assert figure.loc[("C", "2014-2015"), "per_100"] == 12.5


# --- the gate before publication ---------------------------------------------------------------

def test_check_published_names_table_column_and_row():
    good = PublishedTable("Zorgmeldingen per school", counts([10, 45]), ["n"], "Afgerond op 5")
    small = PublishedTable("Verwijzingen per verwijzer", counts([20, 5]).set_index("group"),
                           ["n"], "")
    with pytest.raises(DisclosureError) as err:
        check_published([good, small], DEFAULT)
    msg = str(err.value)
    assert "'Verwijzingen per verwijzer'" in msg and "'n'" in msg and "'g1'" in msg
    assert "below 10" in msg and "Zorgmeldingen" not in msg

    unrounded = PublishedTable("Trajecten", counts([12, 20]), ["n"], "")
    with pytest.raises(DisclosureError, match=r"'Trajecten', column 'n', row 0: 12 is not a "
                                              r"multiple of 5"):
        check_published([unrounded], DEFAULT)
    with pytest.raises(DisclosureError, match="no such column"):
        check_published([PublishedTable("T", counts([10]), ["count"], "")], DEFAULT)
    formatted = PublishedTable("T", pd.DataFrame({"n": ["1.234", "·"]}), ["n"], "")
    with pytest.raises(DisclosureError, match="text"):
        check_published([formatted], DEFAULT)
    # A DisclosureError is an AssertionError: callers of assert_protected keep catching it.
    assert issubclass(DisclosureError, AssertionError)


def test_check_published_passes_on_protected_tables():
    frame = counts([0, 3, 12, 47]).assign(rate=[0.0, 0.3, 1.2, 4.7])
    tables = [
        PublishedTable("1-D", protect_counts(frame, ["n"], DEFAULT, with_total=True), ["n"], ""),
        PublishedTable("rates", protect_rates(frame, "n", ["rate"], DEFAULT), ["n"], ""),
        PublishedTable("crosstab", protect_crosstab(school_by_year(), DEFAULT),
                       [*school_by_year().columns, TOTAL], ""),
        PublishedTable("empty", counts([]), ["n"], ""),
    ]
    check_published(tables, DEFAULT)
    # The same tables under a stricter rule do not pass: the gate checks the rule it is given.
    with pytest.raises(DisclosureError):
        check_published(tables, Disclosure(min_count=20, rounding_base=5))
