"""The national synthetic set and the estimates for every region: realistic regions, the same
planted effects, and fast estimators that give what the region reports give.

Everything runs on a small national set (20,000 pupils a year in the same 42 regions); the
scaling to a million pupils is measured by benchmarks/national_benchmark.py, not here.
"""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from reference_models import fe_design, poisson_effect, poisson_jackknife
from scipy import stats

from evaluation.analysis import comparisons, durations, methods
from evaluation.analysis.design import analysis_years, school_design
from evaluation.analysis.indicators import analysis_frame
from evaluation.analysis.inference import wild_cluster_bootstrap
from evaluation.analysis.survival import cox_effect, median_survival
from evaluation.data.datamodel import TABLES
from evaluation.data.parquet import read_parquet_tables, write_parquet_tables
from evaluation.data.reading import DataSetError, as_text
from evaluation.data.synthetic import generate
from evaluation.data.synthetic_national import (
    KEPT_REGIONS,
    default_schools,
    national_config,
    national_regions,
    parse_scale,
    write_national,
)
from evaluation.national.estimates import (
    NATIONAL_ID,
    NO_PILOT,
    estimates_all_regions,
    national_frames,
    national_region,
    region_design,
    region_params,
)
from evaluation.national.funnel import region_funnel
from evaluation.params import load_params, load_regions, load_synthetic
from evaluation.registry import INDICATORS, PRIMARY

SCALE = 20_000
SEED = 20130801
YEAR = "2016-2017"


@pytest.fixture(scope="module")
def regions():
    return national_regions(SEED, SCALE)


@pytest.fixture(scope="module")
def config():
    return national_config(load_synthetic())


@pytest.fixture(scope="module")
def tables(regions, config):
    return generate(regions, config)


@pytest.fixture(scope="module")
def template():
    return load_params("lekstroom", YEAR)


@pytest.fixture(scope="module")
def frames(tables):
    return national_frames(tables, list(PRIMARY))


def _region_tables(tables: dict[str, pd.DataFrame], schools: set[str]) -> dict[str, pd.DataFrame]:
    """The tables of one region only, as a regional data set would hold them."""
    out = {}
    for name, frame in tables.items():
        out[name] = frame[frame["school_id"].isin(schools)] if "school_id" in frame else frame
    ids = out["trajectories"]["trajectory_id"]
    out["parent_involvement"] = tables["parent_involvement"][
        tables["parent_involvement"]["trajectory_id"].isin(ids)]
    return out


def _pilot_region(regions):
    """A generated region with pilot schools and never-treated schools of its own."""
    return next(r for r in regions if r.id not in KEPT_REGIONS and r.pilot_schools
                and any(s.pilot_start is None for s in r.schools))


# --- the regions ----------------------------------------------------------------------------


def test_regions_are_deterministic_for_a_seed(regions):
    assert national_regions(SEED, SCALE) == regions
    other = national_regions(SEED + 1, SCALE)
    assert other != regions
    assert [r.id for r in other] == [r.id for r in regions]


def test_tables_are_deterministic_for_a_seed(regions, config, tables):
    again = generate(regions, config)
    for name in ("schools", "enrolments", "care_reports", "trajectories"):
        pd.testing.assert_frame_equal(tables[name], again[name])


def test_full_scale_counts_and_size_spread():
    """42 regions, 340 municipalities, 2,000 schools and a million pupils, with regions as
    unequal as Dutch youth-care regions (the largest many times the smallest)."""
    full = national_regions(SEED)
    assert len(full) == 42
    assert sum(len(r.municipalities) for r in full) == 340
    assert sum(len(r.schools) for r in full) == 2000 == default_schools(1_000_000)
    pupils = np.array([r.pupils for r in full])
    assert abs(pupils.sum() - 1_000_000) < 0.01 * 1_000_000
    assert 5 <= pupils.max() / pupils.min() <= 40
    assert np.percentile(pupils, 75) / np.percentile(pupils, 25) > 1.5
    schools_per_region = [len(r.schools) for r in full]
    assert min(schools_per_region) >= 4 and max(schools_per_region) > 100
    ids = [s.id for r in full for s in r.schools]
    assert len(set(ids)) == len(ids)
    codes = [m.code for r in full for m in r.municipalities]
    assert len(set(codes)) == len(codes)


def test_fictional_codes_cannot_collide_with_cbs(regions):
    for r in regions:
        for m in r.municipalities:
            if r.id in KEPT_REGIONS:
                assert not m.code.startswith("GM9")
            else:
                assert re.fullmatch(r"GM9\d{3}", m.code), m.code
                assert re.fullmatch(r"Gemeente \d{3}", m.name), m.name


def test_small_scale_counts(regions, tables):
    assert len(regions) == 42
    assert sum(len(r.municipalities) for r in regions) == 340
    assert tables["schools"]["region"].nunique() == 42
    per_year = tables["enrolments"].groupby("school_year").size()
    assert list(per_year.index) == ["2012-2013", "2013-2014", "2014-2015", "2015-2016", YEAR]
    assert ((per_year - SCALE).abs() < 0.15 * SCALE).all(), per_year


def test_lekstroom_and_zuid_kennemerland_as_in_params(regions, tables):
    params = {r.id: r for r in load_regions()}
    national = {r.id: r for r in regions}
    for rid in KEPT_REGIONS:
        assert national[rid].municipalities == params[rid].municipalities
        assert national[rid].schools == params[rid].schools
        assert national[rid].comparison_schools == params[rid].comparison_schools
    lek = {"GM0321", "GM0353", "GM0331", "GM0356", "GM0620"}
    schools = tables["schools"]
    assert set(schools.loc[schools["region"] == "lekstroom", "municipality_code"]) == lek
    assert lek <= set(tables["enrolments"]["residence_municipality_code"].unique())


def test_pilots_start_in_different_years_and_some_never(regions, config):
    y0, y1 = int(config.first_school_year[:4]), int(config.last_school_year[:4])
    first = [min((s.pilot_start.year for s in r.pilot_schools), default=None) for r in regions]
    assert len({f for f in first if f is not None}) >= 3
    assert 3 <= sum(f is None for f in first) <= 20
    by_id = {s.id: s for r in regions for s in r.schools}
    all_in = [r for r in regions if r.pilot_schools and all(s.pilot_start for s in r.schools)]
    assert all_in, "some regions have every school in the pilot"
    for r in regions:
        for s in r.pilot_schools:
            assert (s.pilot_start.month, s.pilot_start.day) == (8, 1)
            assert y0 < s.pilot_start.year <= y1
        if r in all_in and r.id not in KEPT_REGIONS:
            assert len(r.comparison_schools) >= 20
            assert all(by_id[s].pilot_start is None for s in r.comparison_schools)


# --- the analysis frames, nationally and per region -----------------------------------------


def test_indicators_identical_whole_and_per_region(regions, tables, frames):
    for region in (next(r for r in regions if r.id == "lekstroom"), _pilot_region(regions)):
        schools = {s.id for s in region.schools}
        own = _region_tables(tables, schools)
        for ind in PRIMARY:
            whole = frames[ind]
            whole = whole[whole["school_id"].isin(schools)].reset_index(drop=True)
            alone = analysis_frame(ind, own).reset_index(drop=True)
            pd.testing.assert_frame_equal(whole, alone, check_like=False, obj=f"{region.id} {ind}")


def test_lean_enrolments_change_no_frame(tables, frames):
    for ind in ("days_to_consent", "double_intake_share", "school_satisfaction"):
        pd.testing.assert_frame_equal(frames[ind], analysis_frame(ind, tables))


def test_region_design_matches_design_module():
    by_id = {s.id: s for r in load_regions() for s in r.schools}
    for year in ("2013-2014", "2016-2017"):
        params = load_params("lekstroom", year)
        pd.testing.assert_frame_equal(region_design(params.region, year, by_id),
                                      school_design(params))


# --- the estimators -------------------------------------------------------------------------


def _did_data(region, regions, frames, template, ind):
    by_id = {s.id: s for r in regions for s in r.schools}
    design = region_design(region, YEAR, by_id)
    params = region_params(template, region, YEAR)
    frame = frames[ind]
    data = comparisons.with_design(frame[frame["school_id"].isin(design["school_id"])], design,
                                   params, analysis_years(params, design))
    return data, params


def test_region_estimates_equal_the_dummy_models(regions, frames, template):
    """A region's difference-in-differences (school effects absorbed, few-school inference)
    equals the models with a dummy per school and year: the Poisson jackknife refitted by
    statsmodels, the wild bootstrap with dummies (same draws), the clustered Cox model."""
    region = max((r for r in regions if r.pilot_schools), key=lambda r: len(r.schools))
    for ind_id in PRIMARY:
        ind = INDICATORS[ind_id]
        data, params = _did_data(region, regions, frames, template, ind_id)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fast = comparisons.difference_in_differences(ind, data, params)
        if ind.kind == "rate":
            ref = poisson_jackknife(comparisons.school_year_counts(data), "treated",
                                    ["school_id", "school_year"], "school_id")
        elif ind.kind == "duration":
            # the change in the median in days: Kaplan-Meier medians of the four cells
            cell = durations.cells(data, YEAR)
            med = {k: median_survival(data[(cell == k) & data["days"].notna().to_numpy()])
                   ["median"].iloc[0] for k in durations.CELL_NAMES}
            assert fast.estimate == (med[durations.PILOT_AFTER] - med[durations.PILOT_BEFORE]
                                     - med[durations.COMPARISON_AFTER]
                                     + med[durations.COMPARISON_BEFORE])
            assert fast.unit == "dagen" and fast.inference in ("cluster_bootstrap",
                                                               "randomisation")
            assert fast.ci_low <= fast.estimate <= fast.ci_high
            # the technical hazard ratio: the Cox model's point, its jackknife by refits
            hr = comparisons.hazard_ratio(ind, data, params)
            schools = sorted(data["school_id"].unique())
            loo = np.log([cox_effect(data[data["school_id"] != s], "treated",
                                     fixed_effects=["school_year"], strata="school_id")[0]
                          for s in schools])
            b = np.log(cox_effect(data, "treated", fixed_effects=["school_year"],
                                  strata="school_id")[0])
            G = len(schools)
            se = np.sqrt((G - 1) / G * np.sum((loo - b) ** 2))
            crit = stats.t.ppf(0.975, G - 1)
            np.testing.assert_allclose([hr.estimate, hr.ci_low, hr.ci_high],
                                       np.exp([b, b - crit * se, b + crit * se]), rtol=1e-5,
                                       err_msg=ind_id)
            continue
        else:
            col, scale = ("success", 100) if ind.kind == "proportion" else ("score", 1)
            X = fe_design(data["treated"], [data["school_id"], data["school_year"]])
            a = params.analysis  # the report's draws and seed
            res = wild_cluster_bootstrap(data[col].astype(float).to_numpy(), X, "effect",
                                         data["school_id"].to_numpy(), B=a.bootstrap_draws,
                                         seed=a.bootstrap_seed)
            ref = (scale * res["estimate"], scale * res["ci_low"], scale * res["ci_high"],
                   res["p_value"])
        np.testing.assert_allclose([fast.estimate, fast.ci_low, fast.ci_high, fast.p_value],
                                   ref, rtol=1e-6, atol=1e-9, err_msg=ind_id)
        n = int(data["count"].sum()) if ind.kind == "rate" else len(data)
        assert (fast.n, fast.n_clusters) == (n, data["school_id"].nunique())


def test_absorbed_national_estimators_equal_dummy_models(regions, frames, template):
    """Absorbing the school effects changes nothing: same estimate and clustered interval as
    the models with a dummy per school (statsmodels), on a pool of a few regions."""
    pool = national_region([r for r in regions if r.pilot_schools][:6])
    for ind_id in ("care_reports_per_100", "double_intake_share", "school_satisfaction",
                   "days_signal_to_help"):
        ind = INDICATORS[ind_id]
        data, params = _did_data(pool, regions, frames, template, ind_id)
        fast = comparisons.difference_in_differences(ind, data, params, many_schools=True)
        if ind.kind == "rate":
            agg = (data.groupby(["school_id", "school_year"], observed=True)
                   .agg(count=("count", "sum"), exposure=("exposure", "sum"),
                        treated=("treated", "max")).reset_index())
            ref = poisson_effect(agg, "treated", ["school_id", "school_year"], "school_id")
        elif ind.kind == "duration":  # the technical hazard ratio, cluster-robust at scale
            fast = comparisons.hazard_ratio(ind, data, params, many_schools=True)
            ref = cox_effect(data, "treated", fixed_effects=["school_year"], strata="school_id",
                             cluster="school_id")
        else:
            col, scale = ("success", 100) if ind.kind == "proportion" else ("score", 1)
            dummies = [pd.get_dummies(data[c].astype("string"), prefix=c, drop_first=True,
                                      dtype=float) for c in ("school_id", "school_year")]
            X = sm.add_constant(pd.concat([data["treated"].astype(float).rename("effect"),
                                           *dummies], axis=1))
            fit = sm.OLS(data[col].astype(float), X).fit(
                cov_type="cluster", cov_kwds={"groups": pd.factorize(data["school_id"])[0]})
            low, high = fit.conf_int().loc["effect"]
            ref = (scale * fit.params["effect"], scale * low, scale * high,
                   fit.pvalues["effect"])
        np.testing.assert_allclose([fast.estimate, fast.ci_low, fast.ci_high], ref[:3],
                                   rtol=1e-6, err_msg=ind_id)
        np.testing.assert_allclose(fast.p_value, ref[3], rtol=1e-5, atol=1e-12, err_msg=ind_id)


def test_planted_care_report_effect_recovered_across_regions(regions, tables, template):
    timings: dict[str, float] = {}
    out = estimates_all_regions(tables, regions, template, indicators=["care_reports_per_100"],
                                timings=timings)
    assert len(out) == len(regions) + 1
    assert set(timings) == {"frames", "models"}
    nat = out[out["region"] == NATIONAL_ID].iloc[0]
    assert 0.15 <= nat["estimate"] <= 0.27, nat["estimate"]
    assert nat["ci_low"] < 0.2 < nat["ci_high"]
    assert nat["n_pilot_schools"] > 50 and nat["n_comparison_schools"] > 50
    regional = out[(out["level"] == "regio") & out["estimate"].notna()]
    assert len(regional) >= 20
    assert 0.12 <= regional["estimate"].median() <= 0.3
    never = out[out["note"] == NO_PILOT]
    assert len(never) == sum(not r.pilot_schools for r in regions)
    assert never["estimate"].isna().all()
    assert out["comparison"].eq(methods.DID).all()


#: The all-region estimates of one indicator of each kind on this set, as computed before the
#: speed work of issue 17 on the national estimates (commit 8a666d6): (region, indicator) -> n,
#: n_clusters, estimate, ci_low, ci_high, p_value, p_value_adjusted, mde. Lekstroom (jackknife),
#: a region borrowing comparison schools, one with four schools (randomisation) and the nation;
#: the table's rows, estimates and their sum stand for every other region.
REFERENCE_INDICATORS = ["care_reports_per_100", "days_signal_to_help", "double_intake_share",
                        "school_satisfaction"]
NAN = float("nan")
REFERENCE_ESTIMATES = {
    ("lekstroom", "care_reports_per_100"): (328, 17,
        0.2398444372055338, 0.11360722192863243, 0.5063529684281552,
        0.0009280854752479808, 0.0027842564257439424, 0.3436558222259714),
    ("lekstroom", "days_signal_to_help"): (321, 17,
        -31.0, -73.0, 8.0,
        0.12201220122012202, 0.12201220122012202, 57.89096239959835),
    ("lekstroom", "double_intake_share"): (311, 17,
        -16.267552155924736, -33.875130470926706, -0.6974619245218756,
        0.0461046104610461, 0.0922092209220922, 23.712187189213072),
    ("lekstroom", "school_satisfaction"): (1296, 17,
        0.6440145485876803, 0.47040477916403434, 0.8138192822681016,
        0.00030003000300030005, 0.0012001200120012002, 0.24543945786017662),
    ("regio-02", "care_reports_per_100"): (1243, 26,
        0.23185872738896923, 0.13989504370168646, 0.3215360234862802,
        0.0010362694300518134, 0.004145077720207254, 0.5516793549569948),
    ("regio-02", "days_signal_to_help"): (929, 26,
        -27.0, -48.0, -4.0,
        0.025906735751295335, 0.025906735751295335, 31.44694253805342),
    ("regio-02", "double_intake_share"): (903, 26,
        -41.73482917767687, -58.18271379007359, -21.5401863523612,
        0.002072538860103627, 0.004145077720207254, 26.18853306324517),
    ("regio-02", "school_satisfaction"): (1605, 26,
        0.5855359113133926, 0.35904658368789566, 0.8256128000318556,
        0.0010362694300518134, 0.004145077720207254, 0.33345638626285246),
    ("regio-18", "care_reports_per_100"): (226, 4,
        0.15331431626869937, NAN, NAN,
        0.3333333333333333, 1.0, NAN),
    ("regio-18", "days_signal_to_help"): (146, 4,
        -12.5, NAN, NAN,
        0.6666666666666666, 1.0, NAN),
    ("regio-18", "double_intake_share"): (141, 4,
        -10.903264920852543, NAN, NAN,
        0.6666666666666666, 1.0, NAN),
    ("regio-18", "school_satisfaction"): (175, 4,
        0.8842921170326768, NAN, NAN,
        0.3333333333333333, 1.0, NAN),
    ("nederland", "care_reports_per_100"): (6929, 182,
        0.1802434717192425, 0.153718054030717, 0.2113460861982643,
        8.593405221979115e-99, 3.437362088791646e-98, 0.7964865760424616),
    ("nederland", "days_signal_to_help"): (6064, 182,
        -25.0, -29.0, -19.0,
        0.00010001000100010001, 0.00010001000100010001, 7.147032395012141),
    ("nederland", "double_intake_share"): (5907, 182,
        -25.641534839473394, -29.955749564214113, -21.32732011473268,
        2.3204252453600375e-31, 4.640850490720075e-31, 6.1667664793520585),
    ("nederland", "school_satisfaction"): (13664, 182,
        0.5461917618469585, 0.4947358835130372, 0.5976476401808798,
        3.936705181135826e-96, 1.1810115543407477e-95, 0.07355136587326777),
}
REFERENCE_TABLE = (172, 128, -1552.0121386052697)
REFERENCE_NUMBERS = ["estimate", "ci_low", "ci_high", "p_value", "p_value_adjusted", "mde"]


def test_all_region_estimates_unchanged(regions, tables, template):
    out = estimates_all_regions(tables, regions, template, indicators=REFERENCE_INDICATORS)
    rows, estimates, total = REFERENCE_TABLE
    assert (len(out), int(out["estimate"].notna().sum())) == (rows, estimates)
    np.testing.assert_allclose(out["estimate"].sum(), total, rtol=1e-10)
    got = out.set_index(["region", "indicator"])
    for key, (n, clusters, *numbers) in REFERENCE_ESTIMATES.items():
        row = got.loc[key]
        assert (int(row["n"]), int(row["n_clusters"])) == (n, clusters), key
        np.testing.assert_allclose(row[REFERENCE_NUMBERS].to_numpy(float), numbers, rtol=1e-10,
                                   atol=0, equal_nan=True, err_msg=str(key))


def test_estimates_the_same_in_one_process_and_in_workers(regions, tables, template):
    ind = ["care_reports_per_100"]
    pd.testing.assert_frame_equal(
        estimates_all_regions(tables, regions, template, indicators=ind, workers=1),
        estimates_all_regions(tables, regions, template, indicators=ind, workers=2))


# --- files ------------------------------------------------------------------------------------


def test_parquet_round_trip(regions, tables, tmp_path):
    lekstroom = next(r for r in regions if r.id == "lekstroom")
    tables = {name: frame.reset_index(drop=True) for name, frame in  # small: text is slow
              _region_tables(tables, {s.id for s in lekstroom.schools}).items()}
    written = write_parquet_tables(tables, tmp_path)
    assert {p.name for p in written} >= {f"{t}.parquet" for t in TABLES}
    back = read_parquet_tables(tmp_path)
    for name in TABLES:
        pd.testing.assert_frame_equal(back[name], tables[name], obj=name)
    text, expected = read_parquet_tables(tmp_path, text=True), as_text(tables)
    for name in TABLES:
        pd.testing.assert_frame_equal(text[name], expected[name], obj=name)
    (tmp_path / "referrals.parquet").unlink()
    with pytest.raises(DataSetError, match="referrals.parquet"):
        read_parquet_tables(tmp_path)


def test_write_national_with_truth_and_params(tmp_path):
    written = write_national(tmp_path, 10_000, "parquet")
    assert (tmp_path / "enrolments.parquet") in written
    truth = json.loads((tmp_path / "truth.json").read_text(encoding="utf-8"))
    assert truth["effects"]["care_report_rate_ratio"]["value"] == 0.2
    assert len(truth["national"]["regions"]) == 42
    assert truth["school_years"][0] == "2012-2013" and len(truth["school_years"]) == 5
    loaded = load_regions(tmp_path / "params")
    assert loaded == national_regions(SEED, 10_000)
    params = load_params("lekstroom", YEAR, params_dir=tmp_path / "params")
    assert params.synthetic.first_school_year == "2012-2013"
    assert read_parquet_tables(tmp_path)["schools"]["region"].nunique() == 42


def test_parse_scale():
    assert parse_scale("national") == 1_000_000
    assert parse_scale("20000") == parse_scale("20_000") == 20_000
    for bad in ("many", "500"):
        with pytest.raises(ValueError, match="--scale"):
            parse_scale(bad)


def test_region_funnel(regions, tables):
    frame = region_funnel(tables, regions, school_year="2012-2013")
    assert len(frame) == 42 and "Lekstroom" in set(frame["label"])
    assert 5 < frame.attrs["national_rate"] < 12  # per 100 pupils, before most pilots
    shares = region_funnel(tables, regions, "school_informed_share")
    assert shares.attrs["kind"] == "binomial" and (shares["rate"] <= 100).all()
    with pytest.raises(ValueError, match="rate or a share"):
        region_funnel(tables, regions, "days_to_consent")
