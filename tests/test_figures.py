"""Figures that do not mislead (issue 14, point 6), checked on the figure objects: comparison
schools beside pilot schools in the Kaplan-Meier curves, the y axis named by what it counts,
scales from their natural minimum, one unit per panel with the no-effect line where it belongs."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from evaluation.analysis.estimates import estimate_all  # noqa: E402
from evaluation.params import load_params  # noqa: E402
from evaluation.report import plots  # noqa: E402


@pytest.fixture(scope="module")
def es(synthetic_tables):
    return estimate_all(synthetic_tables, load_params("lekstroom", school_year="2014-2015"),
                        indicators=["days_signal_to_help", "school_satisfaction",
                                    "double_intake_share"])


def test_survival_curves_show_comparison_schools_beside_pilot_schools(es):
    fig = plots.survival_curves(es, "days_signal_to_help")
    ax = fig.axes[0]
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(labels) == 4
    assert sum(lab.startswith("Pilotscholen") for lab in labels) == 2
    assert sum(lab.startswith("Vergelijkingsscholen") for lab in labels) == 2
    assert ax.get_ylabel() == "Aandeel nog zonder hulp"  # not "nog niet afgerond"
    assert ax.get_ylim() == pytest.approx((0, 1.02))
    assert ax.get_xlim()[0] == 0
    for line in ax.get_lines():
        y = np.asarray(line.get_ydata(), float)
        assert ((y >= 0) & (y <= 1)).all()
    plt.close(fig)


def test_a_satisfaction_scale_starts_at_its_minimum(es):
    fig = plots.indicator_by_year(es, "school_satisfaction")
    assert fig.axes[0].get_ylim() == pytest.approx((1, 5))
    plt.close(fig)


def _spec(indicator: str, family: str, unit: str, estimate: float) -> dict:
    return {"indicator": indicator, "specification": family, "family": family,
            "estimate": estimate, "ci_low": estimate * 0.8, "ci_high": estimate * 1.2,
            "unit": unit}


def test_specification_curves_keep_one_unit_per_panel():
    robust = pd.DataFrame([
        _spec("care_reports_per_100", "hoofdanalyse", "rate ratio", 0.2),
        _spec("care_reports_per_100", "andere basisperiode", "rate ratio", 0.25),
        _spec("care_reports_per_100", "andere schatter", "per 100 leerlingen", -7.4),
        _spec("double_intake_share", "hoofdanalyse", "procentpunt", -25.0),
        _spec("double_intake_share", "andere schatter", "procentpunt", -27.0),
    ])
    fig = plots.specification_curves(robust)
    rates, shares = fig.axes[0], fig.axes[1]
    points = [line for line in rates.get_lines() if line.get_marker() == "o"][0]
    assert sorted(np.asarray(points.get_ydata(), float)) == [0.2, 0.25]  # no -7.4 on a ratio axis
    null = [line for line in rates.get_lines() if line.get_linestyle() == "--"][0]
    assert np.asarray(null.get_ydata(), float)[0] == 1.0  # no effect: a ratio of 1
    assert "verhouding" in rates.get_ylabel()
    null = [line for line in shares.get_lines() if line.get_linestyle() == "--"][0]
    assert np.asarray(null.get_ydata(), float)[0] == 0.0
    assert shares.get_ylabel() == "procentpunt"
    plt.close(fig)


def test_alt_text_is_computed_from_the_plotted_values():
    from evaluation.report.figure_text import by_year_alt

    yearly = pd.DataFrame({
        "group": ["pilot"] * 3 + ["comparison"] * 3,
        "school_year": ["2012-2013", "2013-2014", "2014-2015"] * 2,
        "value": [7.4, 3.0, 1.6, 1.4, 1.6, 1.8],
    })
    text = by_year_alt(yearly, "zorgmeldingen", "per 100 leerlingen")
    assert "op pilotscholen daalt van 7,4 naar 1,6" in text
    assert "op vergelijkingsscholen stijgt van 1,4 naar 1,8" in text  # not "ongeveer gelijk"
    flat = yearly.assign(value=[5.0, 5.1, 5.1, 2.0, 2.0, 2.02])
    assert "blijft nagenoeg gelijk" in by_year_alt(flat, "x", "y")


def test_survival_alt_text_gives_the_medians_of_the_curves(es):
    from evaluation.analysis import durations
    from evaluation.report.figure_text import survival_curves_alt

    text = survival_curves_alt(es, "days_signal_to_help")
    s = durations.summaries(es.data["days_signal_to_help"], "2014-2015", 365)
    assert len(s) == 4
    for m in s["median"]:
        assert f"na {int(m) if m == int(m) else m} dagen".replace(".", ",") in text
    assert "vergelijkingsscholen" in text and "pilotscholen" in text


def test_computed_alt_text_replaces_the_typed_one(tmp_path):
    import nbformat

    from evaluation.report.figure_text import FIG_META, apply_output_text

    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('#| label: fig-x\n#| fig-cap: "Kop"\n#| fig-alt: "oud"\nshow()')
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "fig"},
                                           metadata={FIG_META: {"fig-alt": "nieuw, berekend"}})]
    nb.cells.append(cell)
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    assert apply_output_text(path) == 1
    source = nbformat.read(path, as_version=4).cells[0].source
    assert '#| fig-alt: "nieuw, berekend"' in source and '"oud"' not in source
    assert '#| fig-cap: "Kop"' in source  # a caption the output does not carry stays


def test_between_school_interval_is_the_t_interval_of_school_means_for_equal_schools():
    """With equal numbers of records per school the band is the t-interval of the school means:
    it shows how the value would vary with other schools, not with other pupils alone."""
    from scipy import stats

    from evaluation.analysis.statistics import between_school_interval

    rng = np.random.default_rng(1)
    shares = np.array([0.2, 0.35, 0.3, 0.5, 0.25])
    records = pd.DataFrame({
        "group": "pilot", "school_year": "2014-2015",
        "school_id": np.repeat([f"S{i}" for i in range(5)], 40),
        "success": np.concatenate([rng.permutation(np.arange(40) < 40 * p) for p in shares]),
    })
    out = between_school_interval(records, "success", None, ["group", "school_year"]).iloc[0]
    means = records.groupby("school_id")["success"].mean()
    half = stats.t.ppf(0.975, 4) * means.std(ddof=1) / np.sqrt(5)
    assert out["value"] == pytest.approx(means.mean())
    assert (out["low"], out["high"]) == pytest.approx((means.mean() - half, means.mean() + half))
    one = between_school_interval(records[records["school_id"] == "S0"], "success", None,
                                  ["group", "school_year"]).iloc[0]
    assert np.isnan(one["low"]) and np.isnan(one["high"])  # one school: no band


def test_trend_lines_carry_their_interval_band(es):
    """Issue 14, point 6: a line per school year with the band of its interval, drawn from the
    same numbers the line shows, and named in the legend."""
    fig = plots.indicator_by_year(es, "double_intake_share")
    ax = fig.axes[0]
    bands = [c for c in ax.collections if c.__class__.__name__ in ("PolyCollection",
                                                                      "FillBetweenPolyCollection")]
    assert len(bands) == 2
    values = plots.yearly_values(es, "double_intake_share")
    pilot = values[values["group"] == "pilot"].sort_values("school_year")
    top = bands[0].get_paths()[0].vertices[:, 1]
    assert max(top) == pytest.approx(pilot["high"].max())
    assert (pilot["low"] <= pilot["value"]).all() and (pilot["value"] <= pilot["high"]).all()
    assert "95%-interval (tussen scholen)" in [t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(fig)
