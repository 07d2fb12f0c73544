"""Callaway & Sant'Anna staggered DiD: reproduces the published `did` results on mpdta, recovers a
known effect in a simulated staggered panel where two-way fixed effects is biased, and rejects bad
input with the offending column named.

Published numbers and where they were printed (each expected value below repeats its source):
  [README]   bcallaway11/did, README.md: att_gt(..., xformla = ~1, est_method = "reg") on mpdta,
             summary() of the group-time ATTs, aggte(type = "dynamic") and aggte(type = "group").
             Standard errors there come from did's default multiplier bootstrap (1,000 draws).
  [AGGTE]    bcallaway11/did, docs/reference/aggte.md (pkgdown example of aggte): aggte(out,
             type = "simple") for att_gt(..., xformla = NULL) on mpdta; bootstrap SE. (Default
             est_method "dr"; without covariates dr, ipw and reg give identical point estimates.)
  [MODERNDID] jordandeklerk/moderndid, docs/source/user_guide/example_staggered_did.rst: the same
             model in moderndid (a Python port of did) printed with analytic influence-function
             standard errors, which is what att_gt computes without `bootstrap`.
No published not-yet-treated results without covariates were found (the did docs print them only
with ~lpop), so not-yet-treated is checked by an independent 2x2 computation and by the cells where
the two control groups coincide.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from evaluation.analysis.staggered import (
    StaggeredInputError,
    att_gt,
    did_from_csv,
    twfe,
)

MPDTA = Path(__file__).resolve().parents[2] / "shared/data/reference/mpdta.csv"
COLS = {"unit": "countyreal", "time": "year", "cohort": "first.treat", "outcome": "lemp"}

# [README] bcallaway11/did README.md, summary(att_gt(..., est_method = "reg")):
# (group, time): (ATT(g,t), bootstrap Std. Error)
README_GT = {
    (2004, 2004): (-0.0105, 0.0246),
    (2004, 2005): (-0.0704, 0.0332),
    (2004, 2006): (-0.1373, 0.0397),
    (2004, 2007): (-0.1008, 0.0357),
    (2006, 2004): (0.0065, 0.0229),
    (2006, 2005): (-0.0028, 0.0197),
    (2006, 2006): (-0.0046, 0.0179),
    (2006, 2007): (-0.0412, 0.0192),
    (2007, 2004): (0.0305, 0.0154),
    (2007, 2005): (-0.0027, 0.0164),
    (2007, 2006): (-0.0311, 0.0184),
    (2007, 2007): (-0.0261, 0.0170),
}
# [README] bcallaway11/did README.md, summary(aggte(out, type = "dynamic")): event time: (est, SE)
README_DYNAMIC = {
    -3: (0.0305, 0.0154),
    -2: (-0.0006, 0.0132),
    -1: (-0.0245, 0.0153),
    0: (-0.0199, 0.0123),
    1: (-0.0510, 0.0167),
    2: (-0.1373, 0.0413),
    3: (-0.1008, 0.0351),
}
README_DYNAMIC_OVERALL = (-0.0772, 0.0219)  # [README] same output, "Overall summary" row
# [README] bcallaway11/did README.md, summary(aggte(out, type = "group")): group: (est, SE)
README_GROUP = {2004: (-0.0797, 0.0291), 2006: (-0.0229, 0.0176), 2007: (-0.0261, 0.0175)}
README_GROUP_OVERALL = (-0.031, 0.0126)  # [README] same output, "Overall summary" row
# [AGGTE] bcallaway11/did docs/reference/aggte.md, aggte(out, type = "simple"): ATT printed as
# -0.04 (R drops the trailing zeros), Std. Error 0.0119, 95% CI [-0.0633, -0.0166].
AGGTE_SIMPLE = (-0.040, 0.0119)

# [MODERNDID] jordandeklerk/moderndid docs/source/user_guide/example_staggered_did.rst:
# analytic SEs of the 12 ATT(g,t), in README_GT's order.
MODERNDID_GT_SE = [0.0233, 0.0310, 0.0364, 0.0344, 0.0233, 0.0196, 0.0178, 0.0202,
                   0.0150, 0.0164, 0.0179, 0.0167]
# [MODERNDID] same file, did.aggte(result, type="dynamic"): SEs for e = -3..3, overall (-0.0772, 0.0200)
MODERNDID_DYNAMIC_SE = [0.0150, 0.0133, 0.0142, 0.0118, 0.0169, 0.0364, 0.0344]
MODERNDID_DYNAMIC_OVERALL = (-0.0772, 0.0200)
# [MODERNDID] same file, type="simple": ATT -0.0400, SE 0.0120, CI [-0.0635, -0.0164]
MODERNDID_SIMPLE = (-0.0400, 0.0120, -0.0635, -0.0164)
# [MODERNDID] same file, type="group": overall (-0.0310, 0.0124); cohort SEs 2004, 2006, 2007
MODERNDID_GROUP_OVERALL = (-0.0310, 0.0124)
MODERNDID_GROUP_SE = [0.0264, 0.0167, 0.0167]

HALF_4DP = 0.5e-4 + 1e-12   # "equal when printed to 4 decimals"
HALF_3DP = 0.5e-3 + 1e-12


@pytest.fixture(scope="module")
def mpdta() -> pd.DataFrame:
    if not MPDTA.exists():
        pytest.skip(f"reference panel not found at {MPDTA} (see shared/data/reference/SOURCES.md)")
    return pd.read_csv(MPDTA)


@pytest.fixture(scope="module")
def never(mpdta):
    return att_gt(mpdta, **COLS)


@pytest.fixture(scope="module")
def not_yet(mpdta):
    return att_gt(mpdta, **COLS, control="not_yet_treated")


# ---------------------------------------------------------------------------------------------
# mpdta against the published did output
# ---------------------------------------------------------------------------------------------

def test_group_time_atts_match_did_readme_to_4_decimals(never):
    gt = never.group_time.set_index(["cohort", "time"])
    assert list(gt.index) == list(README_GT)
    for key, (att, _se) in README_GT.items():
        assert abs(gt.loc[key, "att"] - att) <= HALF_4DP, key
    assert gt["post"].tolist() == [t >= g for g, t in README_GT]
    assert never.n_units == 500 and never.n_clusters == 500


def test_aggregations_match_did_readme_and_aggte_docs(never):
    assert abs(never.simple["att"] - AGGTE_SIMPLE[0]) <= HALF_3DP          # [AGGTE]
    assert abs(never.cohort_overall["att"] - README_GROUP_OVERALL[0]) <= HALF_3DP  # [README]
    coh = never.cohort.set_index("cohort")
    for g, (att, _se) in README_GROUP.items():                                # [README]
        assert abs(coh.loc[g, "att"] - att) <= HALF_4DP, g
    ev = never.event_time.set_index("event_time")
    assert list(ev.index) == list(README_DYNAMIC)
    for e, (att, _se) in README_DYNAMIC.items():                              # [README]
        assert abs(ev.loc[e, "att"] - att) <= HALF_4DP, e
    assert abs(never.event_time_overall["att"] - README_DYNAMIC_OVERALL[0]) <= HALF_4DP


def test_analytic_standard_errors_match_moderndid_to_4_decimals(never):
    assert np.all(np.abs(never.group_time["se"].to_numpy() - MODERNDID_GT_SE) <= HALF_4DP)
    assert np.all(np.abs(never.event_time["se"].to_numpy() - MODERNDID_DYNAMIC_SE) <= HALF_4DP)
    assert np.all(np.abs(never.cohort["se"].to_numpy() - MODERNDID_GROUP_SE) <= HALF_4DP)
    s = never.simple
    got = (s["att"], s["se"], s["ci_low"], s["ci_high"])
    assert np.all(np.abs(np.array(got) - MODERNDID_SIMPLE) <= HALF_4DP)
    for ours, pub in ((never.cohort_overall, MODERNDID_GROUP_OVERALL),
                      (never.event_time_overall, MODERNDID_DYNAMIC_OVERALL)):
        assert abs(ours["att"] - pub[0]) <= HALF_4DP
        assert abs(ours["se"] - pub[1]) <= HALF_4DP


def test_bootstrap_standard_errors_within_10_percent_of_did_readme(mpdta):
    """did reports IQR-based SEs from a Rademacher multiplier bootstrap; so does bootstrap=N."""
    res = att_gt(mpdta, **COLS, bootstrap=5000, seed=1)
    pairs = list(zip(res.group_time["se"], [se for _, se in README_GT.values()], strict=True))
    pairs += list(zip(res.event_time["se"], [se for _, se in README_DYNAMIC.values()], strict=True))
    pairs += list(zip(res.cohort["se"], [se for _, se in README_GROUP.values()], strict=True))
    pairs += [(res.event_time_overall["se"], README_DYNAMIC_OVERALL[1]),   # [README]
              (res.cohort_overall["se"], README_GROUP_OVERALL[1]),          # [README]
              (res.simple["se"], AGGTE_SIMPLE[1])]                          # [AGGTE]
    rel = np.array([abs(ours / pub - 1) for ours, pub in pairs])
    assert rel.max() < 0.10, rel.round(3)
    assert "bootstrap" in res.method
    again = att_gt(mpdta, **COLS, bootstrap=5000, seed=1)
    assert again.simple == res.simple                  # a fixed seed reproduces the draws


# ---------------------------------------------------------------------------------------------
# not-yet-treated controls, base periods, clustering
# ---------------------------------------------------------------------------------------------

def _two_by_two(df: pd.DataFrame, g: int, t: int, base: int, controls: pd.Series) -> float:
    """Plain difference of mean changes, written independently of the module."""
    wide = df.pivot(index="countyreal", columns="year", values="lemp")
    coh = df.groupby("countyreal")["first.treat"].first()
    change = wide[t] - wide[base]
    return change[coh == g].mean() - change[controls.reindex(change.index)].mean()


def test_not_yet_treated_matches_independent_two_by_two(mpdta, not_yet):
    coh = mpdta.groupby("countyreal")["first.treat"].first()
    for row in not_yet.group_time.itertuples():
        base = row.cohort - 1 if row.post else row.time - 1
        controls = (coh == 0) | ((coh > max(row.time, base)) & (coh != row.cohort))
        expected = _two_by_two(mpdta, row.cohort, row.time, base, controls)
        assert row.att == pytest.approx(expected, abs=1e-12), (row.cohort, row.time)
        assert row.n == (coh == row.cohort).sum() + controls.sum()


def test_not_yet_equals_never_where_the_control_groups_coincide(never, not_yet):
    a = never.group_time.set_index(["cohort", "time"])
    b = not_yet.group_time.set_index(["cohort", "time"])
    # In 2007 (and for the 2007 cohort from 2006 on) no cohort is still untreated but the never-treated.
    same = [(2004, 2007), (2006, 2007), (2007, 2006), (2007, 2007)]
    for key in same:
        assert b.loc[key, "att"] == pytest.approx(a.loc[key, "att"], abs=1e-14)
        assert b.loc[key, "se"] == pytest.approx(a.loc[key, "se"], abs=1e-14)
    # Where later cohorts join the controls, the estimate moves and uses more units.
    assert b.loc[(2004, 2004), "n"] > a.loc[(2004, 2004), "n"]
    assert b.loc[(2004, 2004), "att"] != pytest.approx(a.loc[(2004, 2004), "att"], abs=1e-4)
    assert not_yet.control == "not_yet_treated"


def test_not_yet_without_never_treated_uses_last_cohort_only_as_control(mpdta):
    treated_only = mpdta[mpdta["first.treat"] > 0]
    res = att_gt(treated_only, **COLS, control="not_yet_treated")
    # As in did: the 2007 cohort gets no ATT of its own, periods from 2007 on are dropped.
    assert sorted(res.group_time["cohort"].unique()) == [2004, 2006]
    assert res.group_time["time"].max() == 2006
    assert res.n_units == treated_only["countyreal"].nunique()


def test_universal_base_period_keeps_post_cells_and_zeroes_g_minus_1(mpdta, never):
    res = att_gt(mpdta, **COLS, base_period="universal")
    uni = res.group_time.set_index(["cohort", "time"])
    var = never.group_time.set_index(["cohort", "time"])
    post = var.index[var["post"]]
    assert np.allclose(uni.loc[post, "att"], var.loc[post, "att"], atol=1e-14)
    assert uni.loc[(2006, 2005), "att"] == 0 and np.isnan(uni.loc[(2006, 2005), "se"])
    assert res.simple["att"] == pytest.approx(never.simple["att"], abs=1e-14)


def test_clustering_changes_only_standard_errors(mpdta, never):
    df = mpdta.assign(state=mpdta["countyreal"] // 1000)   # county FIPS: leading digits = state
    by_unit = att_gt(df, **COLS, cluster="countyreal")
    assert np.allclose(by_unit.group_time["se"], never.group_time["se"], atol=1e-15)
    by_state = att_gt(df, **COLS, cluster="state")
    assert by_state.n_clusters == df["state"].nunique() < by_state.n_units
    assert np.allclose(by_state.group_time["att"], never.group_time["att"], atol=1e-15)
    assert not np.allclose(by_state.group_time["se"], never.group_time["se"], rtol=1e-3)
    # The cluster-level bootstrap estimates the same variance as the analytic cluster sums.
    boot = att_gt(df, **COLS, cluster="state", bootstrap=5000, seed=3, bootstrap_weights="mammen")
    assert boot.simple["se"] == pytest.approx(by_state.simple["se"], rel=0.15)
    assert "'state'" in by_state.method


def test_cohort_recodings_follow_did(mpdta, never):
    """NaN cohort = never treated; a start after the window counts as never treated within it;
    units treated from the first period have no pre-period and are dropped with a warning."""
    df = mpdta.astype({"first.treat": "float"})
    df.loc[df["first.treat"] == 0, "first.treat"] = np.nan
    late = df["countyreal"].isin(df.loc[df["first.treat"].isna(), "countyreal"].unique()[:5])
    df.loc[late, "first.treat"] = 2010
    always = pd.DataFrame({"countyreal": 1, "year": range(2003, 2008), "lemp": 5.0,
                           "first.treat": 2003.0})
    with pytest.warns(UserWarning, match="first.treat.*dropped 1 units already treated"):
        res = att_gt(pd.concat([df, always], ignore_index=True), **COLS)
    assert res.n_units == 500
    assert np.allclose(res.group_time["att"], never.group_time["att"], atol=1e-14)


def test_to_dict_is_json_ready_and_did_from_csv_reads_the_file(never):
    d = did_from_csv(MPDTA, "countyreal", "year", "first.treat", "lemp", "never_treated")
    text = json.dumps(d, allow_nan=False)
    assert json.loads(text)["aggregations"]["simple"]["att"] == pytest.approx(never.simple["att"])
    assert len(d["group_time"]) == 12
    assert set(d["group_time"][0]) == {"cohort", "time", "att", "se", "ci_low", "ci_high", "n", "post"}
    assert set(d["aggregations"]) >= {"simple", "cohort", "event_time"}


# ---------------------------------------------------------------------------------------------
# simulated staggered panel: CS recovers the truth, TWFE does not
# ---------------------------------------------------------------------------------------------

COHORTS = (3, 5, 7)
N_PERIODS = 8


def simulate_staggered(seed: int = 20240601, n_per_cohort: int = 8, n_never: int = 6) -> pd.DataFrame:
    """Unit and time effects plus an effect 1 + 0.5 (t - g) that grows with exposure."""
    rng = np.random.default_rng(seed)
    g = np.repeat(list(COHORTS) + [0], [n_per_cohort] * len(COHORTS) + [n_never])
    t = np.arange(1, N_PERIODS + 1)
    unit_fx = rng.normal(0, 1, len(g))
    time_fx = 0.3 * t + rng.normal(0, 0.2, len(t))
    gg, tt = np.meshgrid(g, t, indexing="ij")
    effect = np.where((gg > 0) & (tt >= gg), 1 + 0.5 * (tt - gg), 0.0)
    y = unit_fx[:, None] + time_fx[None, :] + effect + rng.normal(0, 0.2, gg.shape)
    return pd.DataFrame({"unit": np.repeat(np.arange(len(g)), len(t)), "time": np.tile(t, len(g)),
                         "cohort": np.repeat(g, len(t)), "school": np.repeat(np.arange(len(g)) % 10, len(t)),
                         "y": y.ravel()})


def test_cs_recovers_growing_effects_where_twfe_is_biased():
    df = simulate_staggered()
    res = att_gt(df, "unit", "time", "cohort", "y")
    # Equal cohort sizes: the "simple" target is the plain mean of the true post-treatment cells.
    true_simple = np.mean([1 + 0.5 * (t - g) for g in COHORTS for t in range(g, N_PERIODS + 1)])
    assert res.simple["ci_low"] <= true_simple <= res.simple["ci_high"]
    assert res.simple["att"] == pytest.approx(true_simple, abs=0.2)
    ev = res.event_time.set_index("event_time")
    for e in range(N_PERIODS - min(COHORTS) + 1):
        truth = 1 + 0.5 * e
        assert abs(ev.loc[e, "att"] - truth) < 4 * ev.loc[e, "se"], e
        assert ev.loc[e, "att"] == pytest.approx(truth, abs=0.5), e
    pre = ev.loc[ev.index < 0]
    assert (pre["att"].abs() < 4 * pre["se"]).all()        # parallel trends hold by construction

    tw = twfe(df, "unit", "time", "cohort", "y")
    # Growing effects make the early cohort a "control" with rising outcomes: TWFE falls far short.
    assert tw["att"] < true_simple - 0.4
    assert not tw["ci_low"] <= true_simple <= tw["ci_high"]


def test_twfe_matches_ols_with_unit_and_time_dummies():
    df = simulate_staggered(seed=7)
    tw = twfe(df, "unit", "time", "cohort", "y", cluster="school")
    d = df.assign(d=((df["cohort"] > 0) & (df["time"] >= df["cohort"])).astype(float))
    ols = smf.ols("y ~ d + C(unit) + C(time)", data=d).fit()
    assert tw["att"] == pytest.approx(ols.params["d"], abs=1e-10)
    assert tw["ci_low"] < tw["att"] < tw["ci_high"] and tw["se"] > 0


# ---------------------------------------------------------------------------------------------
# bad input: one test per class, the column is named
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def small() -> pd.DataFrame:
    return simulate_staggered(n_per_cohort=3, n_never=3)


ARGS = ("unit", "time", "cohort", "y")


def test_missing_column_is_named(small):
    with pytest.raises(StaggeredInputError, match="column 'y'.*missing"):
        att_gt(small.drop(columns="y"), *ARGS)


def test_cohort_changing_within_unit_is_rejected(small):
    bad = small.copy()
    bad.loc[(bad["unit"] == 0) & (bad["time"] == 8), "cohort"] = 5
    with pytest.raises(StaggeredInputError, match="column 'cohort'.*changes over time.*0"):
        att_gt(bad, *ARGS)


def test_non_numeric_outcome_is_rejected(small):
    bad = small.assign(y=small["y"].round(2).astype(str))
    with pytest.raises(StaggeredInputError, match="column 'y'.*numeric"):
        att_gt(bad, *ARGS)


def test_time_with_gaps_is_rejected(small):
    bad = small.assign(time=small["time"].where(small["time"] < 5, small["time"] + 1))
    with pytest.raises(StaggeredInputError, match="column 'time'.*not consecutive"):
        att_gt(bad, *ARGS)


def test_duplicate_unit_time_rows_are_rejected(small):
    with pytest.raises(StaggeredInputError, match="duplicate.*\\(0, 1\\)"):
        att_gt(pd.concat([small, small.iloc[[0]]]), *ARGS)


def test_unbalanced_panel_names_the_units(small):
    bad = small[~((small["unit"] == 4) & (small["time"] == 2))]
    with pytest.raises(StaggeredInputError, match="column 'unit'.*unbalanced.*units 4 "):
        att_gt(bad, *ARGS)


def test_no_never_treated_units_with_never_treated_control(small):
    with pytest.raises(StaggeredInputError, match="column 'cohort'.*no never-treated"):
        att_gt(small[small["cohort"] > 0], *ARGS, control="never_treated")


def test_cluster_changing_within_unit_is_rejected(small):
    bad = small.assign(school=np.arange(len(small)) % 3)
    with pytest.raises(StaggeredInputError, match="column 'school'.*changes over time"):
        att_gt(bad, *ARGS, cluster="school")


# ---------------------------------------------------------------------------------------------
# the cluster jackknife from one wide panel equals att_gt on every reduced panel
# ---------------------------------------------------------------------------------------------

def _loo_by_refitting(panel, cluster, control):
    """What the jackknife did before: att_gt on a copy of the panel without each cluster."""
    import warnings

    key = cluster or "unit"
    out = []
    for label in pd.unique(panel[key]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = att_gt(panel[panel[key] != label], "unit", "time", "cohort", "y",
                             control=control, cluster=cluster)
            out.append(res.simple["att"])
        except (StaggeredInputError, ValueError, IndexError):
            out.append(np.nan)
    return np.array(out)


@pytest.mark.parametrize("control", ["never_treated", "not_yet_treated"])
@pytest.mark.parametrize("cluster", [None, "school"])
def test_leave_one_out_from_one_pivot_equals_refitting(control, cluster):
    from evaluation.analysis.staggered import simple_att_leave_one_out

    df = simulate_staggered()
    # Edge cases: a unit treated from the first period (dropped), one whose start lies after the
    # window (never treated within it), and a cohort with a single unit (leaving it out removes
    # the cohort).
    df.loc[df["unit"] == 0, "cohort"] = 1
    df.loc[df["unit"] == 1, "cohort"] = 99
    df.loc[df["unit"] == 2, "cohort"] = 2
    labels, loo = simple_att_leave_one_out(df, "unit", "time", "cohort", "y", control, cluster)
    expected = _loo_by_refitting(df, cluster, control)
    assert list(labels) == list(pd.unique(df[cluster or "unit"]))
    np.testing.assert_array_equal(np.isnan(loo), np.isnan(expected))
    np.testing.assert_allclose(loo, expected, rtol=0, atol=1e-12)


def test_leave_one_out_without_never_treated_units_equals_refitting():
    from evaluation.analysis.staggered import simple_att_leave_one_out

    df = simulate_staggered()
    df = df[df["cohort"] > 0]           # every unit starts at some point: last cohort as control
    labels, loo = simple_att_leave_one_out(df, "unit", "time", "cohort", "y", "not_yet_treated")
    expected = _loo_by_refitting(df, None, "not_yet_treated")
    np.testing.assert_allclose(loo, expected, rtol=0, atol=1e-12)
    assert np.isfinite(loo).all()


def test_leave_one_out_is_nan_where_the_reduced_panel_cannot_be_estimated():
    from evaluation.analysis.staggered import simple_att_leave_one_out

    df = simulate_staggered()
    df = df[df["unit"].isin([0, 24, 25])]          # one pilot unit, two never treated
    labels, loo = simple_att_leave_one_out(df, "unit", "time", "cohort", "y", "never_treated")
    expected = _loo_by_refitting(df, None, "never_treated")
    assert list(labels) == [0, 24, 25]
    assert np.isnan(loo[0]) and np.isfinite(loo[1:]).all()
    np.testing.assert_allclose(loo, expected, rtol=0, atol=1e-12)
