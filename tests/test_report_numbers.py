"""Numbers in the report that must not disagree or repeat (issue 14, point 7): each table row
comes from its own records."""

from __future__ import annotations

import pytest

from evaluation.analysis.estimates import estimate_all
from evaluation.params import load_params
from evaluation.registry import INDICATORS
from evaluation.report.findings import period_table, value_text


@pytest.fixture(scope="module")
def routes(synthetic_tables):
    return estimate_all(synthetic_tables, load_params("lekstroom", school_year="2014-2015"),
                        indicators=["trajectory_days", "indication_free_days"])


def test_indication_free_row_is_not_the_trajectory_row(routes):
    t = period_table(routes, ["trajectory_days", "indication_free_days"])
    traj = t[t["Indicator"] == INDICATORS["trajectory_days"].label_nl]
    free = t[t["Indicator"] == INDICATORS["indication_free_days"].label_nl]
    assert list(traj["Groep"]) == ["Pilotscholen", "Vergelijkingsscholen"]
    assert list(free["Groep"]) == ["Indicatievrije trajecten (pilotscholen)",
                                   "Geïndiceerde trajecten (pilotscholen)"]
    assert free.iloc[:, 2:].to_numpy().tolist() != traj.iloc[:, 2:].to_numpy().tolist()
    # indication-free trajectories end sooner, as the generator plants (ratio below 1)
    from evaluation.params import load_synthetic
    from evaluation.report.findings import period_values

    assert load_synthetic().effects.indication_free_duration_ratio < 1
    pv = period_values(routes, "indication_free_days").set_index("group")
    assert pv.loc["indication_free", "after"] < pv.loc["indicated", "after"]


def test_half_day_medians_keep_their_half():
    ind = INDICATORS["days_signal_to_help"]
    assert value_text(ind, 46.5) == "46,5 dagen"
    assert value_text(ind, 46.0) == "46 dagen"


def test_a_percentage_change_has_a_percentage_interval():
    from evaluation.report.findings import ratio_change_text

    assert ratio_change_text(0.566, 0.45, 0.71, 95) == (
        "43,4% minder (95%-interval 29,0% tot 55,0% minder)")
    assert ratio_change_text(1.5, 1.2, 1.9, 95) == "50,0% meer (95%-interval 20,0% tot 90,0% meer)"
    assert ratio_change_text(0.9, 0.8, 1.2, 90) == (
        "10,0% minder (90%-interval van 20,0% minder tot 20,0% meer)")
    assert ratio_change_text(0.9, float("nan"), float("nan"), 95) == "10,0% minder"


def test_site_index_is_headed_in_dutch():
    from evaluation.report.site import TITLE

    assert "whitepaper" not in TITLE.lower() and TITLE.startswith("Evaluatierapporten")


def test_goal_counts_say_what_is_withheld(synthetic_tables):
    from evaluation.report.findings import progress, progress_table

    es = estimate_all(synthetic_tables, load_params("lekstroom", school_year="2014-2015"))
    p = progress(es)
    schools = p[(p["level"] == "school") & (p["indicator"] == "care_reports_per_100")].iloc[0]
    pilots = int((es.design["group"] == "pilot").sum())
    assert schools["units"] + schools["units_withheld"] == pilots  # every pilot school counted
    text = progress_table(es).set_index(["Indicator", "Niveau"]).loc[
        (INDICATORS["care_reports_per_100"].label_nl, "school"), "Stand 2014-2015"]
    assert f"van {int(schools['units'])} scholen" in text
    if schools["units_withheld"]:
        assert f"({int(schools['units_withheld'])} scholen niet getoond" in text or \
            "school niet getoond" in text


def test_every_summary_effect_carries_its_unit(synthetic_tables):
    from evaluation.report.findings import key_figures

    es = estimate_all(synthetic_tables, load_params("lekstroom", school_year="2014-2015"))
    t, _ = key_figures(es)
    col = next(c for c in t.columns if c.startswith("Effect"))
    for text in t[col]:
        assert text == "–" or any(u in text for u in (
            "% minder", "% meer", "dagen", "procentpunt", "schaalpunt")), text


def test_synthetic_data_are_announced_and_real_data_are_not(tmp_path):
    from evaluation.data.synthetic import MARKER, marker
    from evaluation.report.provenance import colophon, synthetic_note
    from evaluation.run.pipeline import report_metadata, write_synthetic

    written = write_synthetic(tmp_path / "syn")
    assert tmp_path / "syn" / MARKER in written
    assert marker(tmp_path / "syn")["seed"] is not None
    params = load_params("lekstroom", school_year="2014-2015")
    assert "synthetische gegevens" in report_metadata(params, synthetic=marker(tmp_path / "syn"))[
        "subtitle"]
    assert synthetic_note(tmp_path / "syn").startswith("**Let op: synthetische gegevens.**")
    facts = dict(colophon(params, tmp_path / "syn").itertuples(index=False))
    assert facts["Gegevens"].startswith("synthetisch")
    # the same tables without the marker are somebody's real delivery: nothing is announced
    (tmp_path / "syn" / MARKER).unlink()
    assert marker(tmp_path / "syn") is None and synthetic_note(tmp_path / "syn") == ""
    assert "synthetische" not in report_metadata(params, synthetic=None)["subtitle"]
    assert "Gegevens" not in dict(colophon(params, tmp_path / "syn").itertuples(index=False))


def test_colophon_and_title_page_name_publisher_and_publication_date():
    """Commissioning body, authors, contact and publication date come from params; the title
    page date is the publication date when one is set, else the day of rendering."""
    import datetime as dt

    from evaluation.params import load_params
    from evaluation.report.provenance import colophon
    from evaluation.run.pipeline import report_metadata

    p = load_params("lekstroom", school_year="2014-2015", overrides=[
        "report.authors=[A. de Vries, B. Jansen]", "report.contact=evaluatie@example.org",
        "report.publication_date=2015-11-02"])
    facts = dict(colophon(p, None).itertuples(index=False))
    assert facts["Opdrachtgever"].startswith("Gemeenten Houten")
    assert facts["Auteurs"] == "A. de Vries, B. Jansen"
    assert facts["Contact"] == "evaluatie@example.org"
    assert facts["Publicatiedatum"] == "2015-11-02"
    assert "tabblad Parameters" in facts["Parameters"]
    meta = report_metadata(p, today=dt.date(2026, 12, 5))
    assert meta["date"] == "2 november 2015" and meta["author"] == "A. de Vries, B. Jansen"
    default = load_params("lekstroom", school_year="2014-2015")
    assert report_metadata(default, today=dt.date(2026, 12, 5))["date"] == "5 december 2026"
    assert "Contact" not in dict(colophon(default, None).itertuples(index=False))
