"""The synthetic generator: it must obey the data model and show the effects it claims to plant,
because every analysis and report is tested and demonstrated on its output."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from evaluation.data.datamodel import TABLES, school_year_of
from evaluation.data.synthetic import generate, truth
from evaluation.params import Region, Synthetic, load_regions, load_synthetic

FIRST_DAY = pd.Timestamp("2010-08-01")
LAST_DAY = pd.Timestamp("2017-07-31")
OPTIONAL = [
    ("care_reports", "channel"),
    ("trajectories", "first_intake_date"),
    ("trajectories", "n_intakes"),
    ("trajectories", "school_informed"),
    ("parent_involvement", "first_parent_contact_date"),
    ("parent_involvement", "consent_date"),
    ("parent_involvement", "parents_at_first_meeting"),
    ("survey_responses", "value"),
]


@pytest.fixture(scope="module")
def regions() -> list[Region]:
    return load_regions()


@pytest.fixture(scope="module")
def config() -> Synthetic:
    return load_synthetic()


@pytest.fixture(scope="module")
def data(regions: list[Region], config: Synthetic) -> dict[str, pd.DataFrame]:
    return generate(regions, config)


@pytest.fixture(scope="module")
def lekstroom(regions: list[Region]) -> Region:
    return next(r for r in regions if r.id == "lekstroom")


def _year(dates: pd.Series) -> pd.Series:
    """First calendar year of the school year of each date."""
    return dates.dt.year - (dates.dt.month < 8).astype(int)


def _rate_ratio(data: dict[str, pd.DataFrame], events: pd.DataFrame, date: str,
                region: Region) -> float:
    """(events per pupil after / before start) at the region's pilot schools, divided by the
    same ratio at its comparison schools (after = from 2013), over school years before 2016."""
    e = data["enrolments"]
    pupils = e.groupby([e["school_id"], e["school_year"].str[:4].astype(int).rename("year")]).size()
    counts = events.groupby([events["school_id"], _year(events[date]).rename("year")]).size()
    df = pd.DataFrame({"pupils": pupils, "events": counts.reindex(pupils.index, fill_value=0)})
    df = df.reset_index()
    df = df[df["year"] < 2016]

    def rate(x: pd.DataFrame) -> float:
        return x["events"].sum() / x["pupils"].sum()

    start = {s.id: s.pilot_start.year for s in region.pilot_schools if s.pilot_start}
    pilot = df[df["school_id"].isin(list(start))]
    after = pilot["year"] >= pilot["school_id"].map(start)
    comp = df[df["school_id"].isin(region.comparison_schools)]
    return (rate(pilot[after]) / rate(pilot[~after])) / (
        rate(comp[comp["year"] >= 2013]) / rate(comp[comp["year"] < 2013]))


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(data, regions, config):
    again = generate(regions, config)
    for name in TABLES:
        pd.testing.assert_frame_equal(data[name], again[name])


def test_other_seed_gives_other_tables(data, regions, config):
    other = generate(regions, config.model_copy(update={"seed": config.seed + 1}))
    pd.testing.assert_frame_equal(data["schools"], other["schools"])  # from the params
    for name in ("enrolments", "care_reports", "trajectories", "survey_responses"):
        assert not data[name].equals(other[name]), name


# --- the data model ---------------------------------------------------------------------------


def test_columns_and_dtypes_match_datamodel(data):
    assert list(data) == list(TABLES)
    for name, table in TABLES.items():
        df = data[name]
        assert list(df.columns) == table.columns, name
        for f in table.fields:
            assert df[f.name].dtype == f.dtype, (name, f.name, df[f.name].dtype)
        assert len(df) > 0, name


def test_values_obey_datamodel(data):
    for name, table in TABLES.items():
        df = data[name]
        assert not df.duplicated(list(table.key)).any(), f"{name}: duplicate keys"
        for f in table.fields:
            col = df[f.name]
            if f.required:
                assert col.notna().all(), (name, f.name)
            if f.allowed is not None:
                assert col.dropna().isin(f.allowed).all(), (name, f.name)
            if f.minimum is not None:
                assert (col.dropna() >= f.minimum).all(), (name, f.name)
            if f.maximum is not None:
                assert (col.dropna() <= f.maximum).all(), (name, f.name)
            if f.pattern is not None:
                assert col.dropna().str.fullmatch(f.pattern).all(), (name, f.name)
            if f.kind == "date":
                present = col.dropna()
                assert present.between(FIRST_DAY, LAST_DAY).all(), (name, f.name)
        for fk in table.foreign_keys:
            ref = data[fk.ref_table][list(fk.ref_fields)]
            own = df[list(fk.fields)].dropna()
            merged = own.merge(ref, left_on=list(fk.fields), right_on=list(fk.ref_fields),
                               how="left", indicator=True)
            assert (merged["_merge"] == "both").all(), (name, fk)
        for earlier, later in table.date_order:
            both = df[[earlier, later]].dropna()
            assert (both[earlier] <= both[later]).all(), (name, earlier, later)


def test_ids_are_opaque_and_stable(data):
    e = data["enrolments"]
    assert e["student_id"].str.fullmatch(r"P\d{7}").all()
    # A pupil stays at one school and moves up one grade a year.
    g = e.assign(year=e["school_year"].str[:4].astype(int)).sort_values(["student_id", "year"])
    span = g.groupby("student_id")["year"].agg(["min", "max", "size"])
    assert (span["max"] - span["min"] + 1 == span["size"]).all()
    assert (g["grade"].astype(int) - g["year"]).groupby(g["student_id"]).nunique().eq(1).all()
    assert g.groupby("student_id")["school_id"].nunique().eq(1).all()
    assert e.groupby("student_id").size().max() <= 6


def test_events_belong_to_an_enrolment(data):
    e = data["enrolments"][["student_id", "school_id", "school_year"]]
    for name, date in (("care_reports", "report_date"), ("trajectories", "signal_date"),
                       ("referrals", "referral_date")):
        df = data[name]
        keys = pd.DataFrame({"student_id": df["student_id"], "school_id": df["school_id"],
                             "school_year": school_year_of(df[date]).astype("string")})
        merged = keys.merge(e, how="left", indicator=True)
        assert (merged["_merge"] == "both").all(), name


def test_school_referrals_follow_their_trajectory(data):
    r = data["referrals"]
    school = r[r["referrer"] == "school"]
    assert school["trajectory_id"].notna().all()
    assert r.loc[r["referrer"] != "school", "trajectory_id"].isna().all()
    t = data["trajectories"].set_index("trajectory_id")
    tr = t.loc[school["trajectory_id"]]
    assert (school["referral_date"].to_numpy() >= tr["signal_date"].to_numpy()).all()
    assert (school["destination_level"].astype(str).to_numpy()
            == tr["level"].astype(str).to_numpy()).all()
    assert (school["destination_level"] != "light").all()


# --- realism ----------------------------------------------------------------------------------


def test_lekstroom_size_and_composition(data, lekstroom, config):
    schools = data["schools"]
    own = schools[schools["region"] == "lekstroom"]
    assert len(own) == 12
    assert own["municipality_code"].nunique() == 5
    e = data["enrolments"].merge(schools, on="school_id")
    e = e[e["region"] == "lekstroom"]
    per_year = e.groupby("school_year").size()
    assert len(per_year) == 7
    assert ((per_year - lekstroom.pupils).abs() < 0.15 * lekstroom.pupils).all(), per_year
    assert 0.15 <= e["indication"].mean() <= 0.19
    by_track = e.groupby("track", observed=True)["indication"].mean()
    assert by_track["pro"] > by_track["vmbo"] > by_track["havo"]
    other = (e["residence_municipality_code"] != e["municipality_code"]).mean()
    assert 0.15 <= other <= 0.35
    assert set(e["residence_municipality_code"]) <= {m.code for m in lekstroom.municipalities}
    sizes = e.groupby("school_id").size() / 7
    pro = own.loc[own["name"].str.contains("Praktijk"), "school_id"]
    assert (sizes[pro] < 400).all()
    assert sizes.drop(pro).between(300, 1700).all() and sizes.drop(pro).std() > 100


def test_tracks_have_their_grades(data):
    e = data["enrolments"]
    top = e.groupby("track", observed=True)["grade"].max()
    assert top.to_dict() == {"pro": 6, "vmbo": 4, "havo": 5, "vwo": 6}


def test_planted_care_report_effect_is_visible(data, lekstroom):
    ratio = _rate_ratio(data, data["care_reports"], "report_date", lekstroom)
    assert 0.15 <= ratio <= 0.27, ratio


def test_no_care_report_effect_when_not_planted(regions, config, lekstroom):
    effects = config.effects.model_copy(update={"care_report_rate_ratio": 1.0})
    data = generate(regions, config.model_copy(update={"effects": effects}))
    ratio = _rate_ratio(data, data["care_reports"], "report_date", lekstroom)
    assert 0.85 <= ratio <= 1.18, ratio


def test_care_reports_are_seasonal(data):
    month = data["care_reports"]["report_date"].dt.month
    assert month.isin([7, 8]).mean() < 0.05
    assert (month == 12).mean() < (month == 11).mean()


def test_ongoing_trajectories_are_censored_at_extraction(data):
    t = data["trajectories"]
    ongoing = t["end_date"].isna()
    assert ongoing.any()
    last = school_year_of(t["signal_date"]) == "2016-2017"
    assert ongoing[last].mean() > ongoing[~last].mean()
    assert (t["start_date"] <= LAST_DAY).all()


@pytest.mark.parametrize(("table", "column"), OPTIONAL)
def test_optional_fields_have_a_few_missing_values(data, table, column):
    share = data[table][column].isna().mean()
    assert 0.01 <= share <= 0.06, share


def test_pilot_changes_care_routes(data):
    t = data["trajectories"]
    pilot = t["route"] == "kernteam"
    assert pilot.any() and (~pilot).any()
    double = (t["n_intakes"] > 1).astype("boolean")
    assert double[pilot].mean() < 0.4 * double[~pilot].mean()
    wait = (t["start_date"] - t["signal_date"]).dt.days
    assert wait[pilot].median() < 0.7 * wait[~pilot].median()
    assert t.loc[pilot, "school_informed"].mean() > t.loc[~pilot, "school_informed"].mean() + 0.2
    assert t.loc[pilot, "indication_free"].mean() > 0.5 > t.loc[~pilot, "indication_free"].mean()
    assert (t["level"].value_counts(normalize=True)["light"] > 0.5)


def test_indication_free_trajectories_are_shorter(data):
    t = data["trajectories"].dropna(subset=["end_date"])
    days = (t["end_date"] - t["start_date"]).dt.days
    free = t["indication_free"].astype(bool)
    for level in ("light", "specialised"):
        at = t["level"] == level
        assert days[at & free].median() < 0.85 * days[at & ~free].median(), level


def test_parents_involved_earlier_in_pilot(data):
    p = data["parent_involvement"].merge(data["trajectories"], on="trajectory_id")
    pilot = p["route"] == "kernteam"
    days = (p["consent_date"] - p["signal_date"]).dt.days
    assert days[pilot].median() < 0.7 * days[~pilot].median()
    present = p["parents_at_first_meeting"]
    assert present[pilot].mean() > present[~pilot].mean() + 0.2


def test_referrals_heavier_care_fall_but_gp_jggz_remains(data, lekstroom):
    r = data["referrals"]
    school = r[r["referrer"] == "school"]
    gp = r[(r["referrer"] == "gp") & (r["destination_level"] == "jggz")]
    assert _rate_ratio(data, school, "referral_date", lekstroom) < 0.8
    gp_ratio = _rate_ratio(data, gp, "referral_date", lekstroom)
    assert 0.75 <= gp_ratio <= 1.35, gp_ratio
    assert set(r["referrer"].astype(str)) == {"school", "gp", "youth_doctor", "district_team",
                                             "certified_institution"}


def test_school_satisfaction_rises_in_pilot(data, lekstroom):
    s = data["survey_responses"]
    starts = {x.id: x.pilot_start.year for x in lekstroom.pilot_schools if x.pilot_start}
    s = s[s["school_id"].isin(list(starts)) & (s["school_year"].str[:4].astype(int) < 2016)]
    after = s["school_year"].str[:4].astype(int) >= s["school_id"].map(starts)
    shift = {}
    for role in ("school", "parent"):
        v = s.loc[s["respondent_role"] == role, "value"]
        a = after[s["respondent_role"] == role]
        shift[role] = v[a].mean() - v[~a].mean()
    assert shift["school"] > 0.3 > shift["parent"], shift
    per_respondent = s.groupby(["respondent_id", "school_year"]).size()
    assert per_respondent.between(4, 6).all()


def test_survey_respondent_counts(data):
    s = data["survey_responses"]
    n = s.groupby(["school_id", "school_year", "respondent_role"], observed=True)[
        "respondent_id"].nunique().unstack()
    assert n["school"].between(10, 20).all() and n["pupil"].between(30, 60).all()
    assert n["parent"].between(20, 40).all() and n["professional"].between(5, 15).all()
    assert s["item"].str.fullmatch(r"sat_[a-z]+").all()


# --- truth ------------------------------------------------------------------------------------


def test_truth_is_json_and_names_the_planted_effects(regions, config):
    t = json.loads(json.dumps(truth(regions, config)))
    assert t["seed"] == config.seed
    assert t["effects"]["care_report_rate_ratio"]["value"] == 0.2
    assert set(t["effects"]) == set(config.effects.model_dump())
    assert all(v["description"] for v in t["effects"].values())
    assert t["school_years"][0] == "2010-2011" and len(t["school_years"]) == 7
    starts = {s["school_id"]: s["pilot_start"] for s in t["schools"]}
    assert starts["LS01"] == "2013-08-01" and starts["ZK03"] is None
    assert t["secular_trend"]["value"] == config.secular_trend
    assert t["baseline"]["care_reports_per_100"] == config.care_reports_per_100


def test_truth_matches_generated_schools(data, regions, config):
    t = truth(regions, config)
    e = data["enrolments"]
    sizes = e.groupby("school_id").size() / e["school_year"].nunique()
    for s in t["schools"]:
        assert abs(sizes[s["school_id"]] - s["pupils_per_year"]) < 0.2 * s["pupils_per_year"]
    assert all(re.fullmatch(r"\d{4}-\d{4}", y) for y in t["school_years"])


def test_scales_without_row_loops(regions, config):
    """Ten times the pupils still generate quickly (vectorised), with proportional counts."""
    big = [r.model_copy(update={"pupils": r.pupils * 10}) for r in regions]
    data = generate(big, config.model_copy(update={"first_school_year": "2015-2016"}))
    per_year = data["enrolments"].groupby("school_year").size()
    assert per_year.min() > 8 * sum(r.pupils for r in regions)
    assert np.isclose(len(data["care_reports"]) / per_year.sum(), 0.05, atol=0.03)
