"""Parameters: defaults, region files and --set overrides merge into one validated Params; every
bad value is a ParamsError that names its dotted key."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
import yaml

from evaluation.cli import main
from evaluation.params import (
    DEFAULT_PARAMS_DIR,
    ParamsError,
    load_params,
    load_regions,
    load_synthetic,
    parse_override,
)

LEKSTROOM_MUNICIPALITIES = ["GM0321", "GM0353", "GM0331", "GM0356", "GM0620"]


@pytest.fixture
def params_dir(tmp_path) -> Path:
    """A private copy of params/ that a test may edit."""
    out = tmp_path / "params"
    shutil.copytree(DEFAULT_PARAMS_DIR, out)
    return out


def edit_region(params_dir: Path, region: str, change) -> None:
    path = params_dir / f"{region}.yml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data["region"])
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")


def error_of(*args, **kwargs) -> str:
    with pytest.raises(ParamsError) as exc:
        load_params(*args, **kwargs)
    return str(exc.value)


# --- loading -----------------------------------------------------------------------------------


def test_lekstroom_2014_2015_loads_with_defaults_merged():
    p = load_params("lekstroom", "2014-2015")
    assert p.school_year == "2014-2015"
    assert p.analysis.alpha == 0.05
    assert p.analysis.baseline_years == 2
    assert p.analysis.count_by == "school"
    assert p.disclosure.min_count == 10
    assert p.disclosure.rounding_base == 5
    assert p.region.id == "lekstroom"
    assert len(p.region.schools) == 12
    assert [m.code for m in p.region.municipalities] == LEKSTROOM_MUNICIPALITIES
    assert p.region.first_pilot_year == "2013-2014"
    assert all(s.municipality in LEKSTROOM_MUNICIPALITIES for s in p.region.schools)


def test_both_regions_load():
    regions = {r.id: r for r in load_regions()}
    assert set(regions) == {"lekstroom", "zuid-kennemerland"}
    assert len(regions["lekstroom"].schools) == 12
    assert len(regions["lekstroom"].municipalities) == 5
    # Lekstroom's comparison schools are Zuid-Kennemerland's.
    zk = {s.id for s in regions["zuid-kennemerland"].schools}
    assert set(regions["lekstroom"].comparison_schools) <= zk


def test_synthetic_settings_load_and_take_overrides():
    assert load_synthetic().seed == 20130801
    assert load_synthetic(["synthetic.seed=7"]).seed == 7
    with pytest.raises(ParamsError, match="synthetic.effects.nonsense"):
        load_synthetic(["synthetic.effects.nonsense=1"])


# --- --set overrides ---------------------------------------------------------------------------


def test_parse_override_builds_nested_mapping_with_yaml_types():
    assert parse_override("analysis.alpha=0.01") == {"analysis": {"alpha": 0.01}}
    assert isinstance(parse_override("analysis.alpha=0.01")["analysis"]["alpha"], float)
    assert parse_override("analysis.baseline_years=3") == {"analysis": {"baseline_years": 3}}
    assert parse_override("analysis.count_by=residence") == {"analysis": {"count_by": "residence"}}
    assert parse_override("report.formats=[html]") == {"report": {"formats": ["html"]}}


def test_set_overrides_change_nested_values():
    p = load_params("lekstroom", "2014-2015",
                    ["analysis.alpha=0.01", "analysis.count_by=residence", "disclosure.min_count=5"])
    assert p.analysis.alpha == 0.01
    assert isinstance(p.analysis.alpha, float)
    assert p.analysis.count_by == "residence"
    assert p.disclosure.min_count == 5
    # Keys not overridden keep their merged values.
    assert p.analysis.baseline_years == 2
    assert p.disclosure.rounding_base == 5
    assert len(p.region.schools) == 12


def test_repeated_overrides_apply_in_order():
    p = load_params("lekstroom", "2014-2015", ["analysis.alpha=0.01", "analysis.alpha=0.02"])
    assert p.analysis.alpha == 0.02
    p = load_params("lekstroom", "2014-2015", ["analysis.alpha=0.02", "analysis.alpha=0.01"])
    assert p.analysis.alpha == 0.01


@pytest.mark.parametrize("text", ["analysis.alpha", "analysis.alpha 0.01", ""])
def test_override_without_equals_sign_is_an_error(text):
    with pytest.raises(ParamsError, match="key=value"):
        parse_override(text)
    with pytest.raises(ParamsError):
        load_params("lekstroom", "2014-2015", [text])


@pytest.mark.parametrize("text", ["=0.01", "analysis.=0.01", ".alpha=1"])
def test_override_with_empty_key_is_an_error(text):
    with pytest.raises(ParamsError, match="key"):
        parse_override(text)


# --- errors name the key -----------------------------------------------------------------------


def test_unknown_key_is_named():
    msg = error_of("lekstroom", "2014-2015", ["analysis.alpah=1"])
    assert "analysis.alpah" in msg
    assert "unknown key" in msg


def test_wrong_type_is_named():
    msg = error_of("lekstroom", "2014-2015", ["analysis.baseline_years=abc"])
    assert "analysis.baseline_years" in msg
    assert "abc" in msg


def test_value_out_of_range_is_named():
    msg = error_of("lekstroom", "2014-2015", ["disclosure.min_count=0"])
    assert "disclosure.min_count" in msg


def test_value_not_among_choices_is_named():
    msg = error_of("lekstroom", "2014-2015", ["analysis.count_by=postcode"])
    assert "analysis.count_by" in msg


@pytest.mark.parametrize("year", ["2014-2016", "2015-2014", "14-15", "2014/2015", "2014"])
def test_impossible_school_year_is_named(year):
    msg = error_of("lekstroom", year)
    assert "school_year" in msg
    assert year in msg


def test_school_year_before_the_first_pilot_year_is_refused():
    msg = error_of("lekstroom", "2012-2013")
    assert "school_year" in msg
    assert "2013-2014" in msg  # the first pilot year
    # The first pilot year itself is fine.
    assert load_params("lekstroom", "2013-2014").school_year == "2013-2014"


def test_missing_school_year_is_named():
    msg = error_of("lekstroom", None)
    assert "school_year" in msg


def test_unknown_region_is_named_with_the_known_ones():
    msg = error_of("utrecht", "2014-2015")
    assert "utrecht" in msg
    assert "lekstroom" in msg
    assert "zuid-kennemerland" in msg


def test_unknown_comparison_school_is_refused(params_dir):
    edit_region(params_dir, "lekstroom",
                lambda r: r.update(comparison_schools=[*r["comparison_schools"], "ZK99"]))
    msg = error_of("lekstroom", "2014-2015", params_dir=params_dir)
    assert "comparison_schools" in msg
    assert "ZK99" in msg


def test_comparison_school_of_the_region_itself_is_refused(params_dir):
    edit_region(params_dir, "lekstroom", lambda r: r.update(comparison_schools=["LS01", "ZK01"]))
    msg = error_of("lekstroom", "2014-2015", params_dir=params_dir)
    assert "comparison_schools" in msg
    assert "LS01" in msg


def test_school_outside_the_regions_municipalities_is_refused(params_dir):
    def move(region):
        region["schools"][11]["municipality"] = "GM0999"

    edit_region(params_dir, "lekstroom", move)
    msg = error_of("lekstroom", "2014-2015", params_dir=params_dir)
    assert "region.schools" in msg
    assert "LS12" in msg
    assert "GM0999" in msg
    with pytest.raises(ParamsError, match="GM0999"):
        load_regions(params_dir)


def test_pilot_start_not_on_1_august_is_refused(params_dir):
    def shift(region):
        region["schools"][0]["pilot_start"] = dt.date(2013, 9, 1)

    edit_region(params_dir, "lekstroom", shift)
    msg = error_of("lekstroom", "2014-2015", params_dir=params_dir)
    assert "region.schools.0" in msg
    assert "pilot_start" in msg
    assert "2013-09-01" in msg


def test_duplicate_school_id_is_refused(params_dir):
    def dup(region):
        region["schools"][1]["id"] = region["schools"][0]["id"]

    edit_region(params_dir, "lekstroom", dup)
    assert "region.schools" in error_of("lekstroom", "2014-2015", params_dir=params_dir)


def test_bad_municipality_code_in_params_is_named(params_dir):
    def bad(region):
        region["municipalities"][0]["code"] = "0321"

    edit_region(params_dir, "lekstroom", bad)
    assert "region.municipalities.0.code" in error_of("lekstroom", "2014-2015",
                                                      params_dir=params_dir)


# --- command line --------------------------------------------------------------------------------


def test_cli_params_prints_merged_yaml(capsys):
    code = main(["params", "--region", "lekstroom", "--school-year", "2014-2015",
                 "--set", "analysis.alpha=0.01"])
    out = capsys.readouterr().out
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["analysis"]["alpha"] == 0.01
    assert printed["school_year"] == "2014-2015"
    assert printed["region"]["id"] == "lekstroom"
    assert printed["disclosure"]["min_count"] == 10


def test_cli_params_with_bad_key_returns_2_and_names_it(capsys):
    code = main(["params", "--region", "lekstroom", "--school-year", "2014-2015",
                 "--set", "analysis.alpah=1"])
    out, err = capsys.readouterr()
    assert code == 2
    assert "analysis.alpah" in err
    assert "unknown key" in err
    assert out == ""


def test_params_files_are_parsed_once_but_a_changed_file_is_read_again(tmp_path):
    import os

    from evaluation import params as P

    path = tmp_path / "x.yml"
    path.write_text("analysis:\n  alpha: 0.05\n", encoding="utf-8")
    first = P._read_yaml(path)
    first["analysis"]["alpha"] = 0.5             # a caller changing its copy changes nothing
    assert P._read_yaml(path) == {"analysis": {"alpha": 0.05}}
    path.write_text("analysis:\n  alpha: 0.10\n", encoding="utf-8")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert P._read_yaml(path) == {"analysis": {"alpha": 0.10}}
