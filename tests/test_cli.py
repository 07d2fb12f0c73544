"""The command line: help on every command, deterministic data, truth, and early errors."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.cli import main


@pytest.mark.parametrize("argv", [[], ["data"], ["data", "synthetic"], ["data", "truth"],
                                  ["validate"], ["params"], ["render"]])
def test_every_command_explains_itself(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "usage: evaluation" in out
    assert len(out.split()) > 25  # more than a bare usage line


def test_python_dash_m_runs_the_same_command_line():
    done = subprocess.run([sys.executable, "-m", "evaluation", "--help"], capture_output=True,
                          text=True, check=True)
    assert "render" in done.stdout and "validate" in done.stdout


def test_synthetic_data_is_deterministic_for_a_seed(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        assert main(["data", "synthetic", "--out", str(tmp_path / name), "--seed", str(seed)]) == 0
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert "data_dictionary.csv" in files and "care_reports.csv" in files
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "enrolments.csv").read_bytes() != \
        (tmp_path / "c" / "enrolments.csv").read_bytes()


def test_truth_reports_the_planted_effects_and_follows_overrides(capsys):
    assert main(["data", "truth"]) == 0
    truth = json.dumps(json.loads(capsys.readouterr().out))
    assert "care_report_rate_ratio" in truth and "0.2" in truth
    assert main(["data", "truth", "--set", "synthetic.effects.care_report_rate_ratio=0.5"]) == 0
    assert "0.5" in capsys.readouterr().out


def test_render_refuses_bad_params_before_anything_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main(["render", "--region", "lekstroom", "--school-year", "2014-2016"])
    assert code == 2
    assert "school_year" in capsys.readouterr().err
    assert not (tmp_path / "_build").exists()
    code = main(["render", "--region", "utrecht", "--school-year", "2014-2015"])
    assert code == 2
    assert "lekstroom" in capsys.readouterr().err  # lists the known regions


def test_render_names_a_missing_data_folder(tmp_path, capsys):
    code = main(["render", "--region", "lekstroom", "--school-year", "2014-2015",
                 "--data", str(tmp_path / "nowhere"), "--output", str(tmp_path / "out")])
    assert code == 2
    assert "nowhere" in capsys.readouterr().err


def _panel(tmp_path, rows, header="unit,year,cohort,y"):
    path = tmp_path / "panel.csv"
    path.write_text(header + "\n" + "\n".join(rows) + "\n")
    return path


GOOD = ["1,2001,0,1.0", "1,2002,0,1.5", "2,2001,2002,2.0", "2,2002,2002,3.1",
        "3,2001,0,0.5", "3,2002,0,0.9"]


@pytest.mark.parametrize("rows, column", [
    ([r.replace(",y", "") for r in GOOD], "outcome"),                     # missing column (below)
    (GOOD[:3] + ["2,2002,0,3.1"] + GOOD[4:], "cohort"),                  # cohort changes
    ([r.rsplit(",", 1)[0] + ",abc" for r in GOOD], "y"),                  # non-numeric outcome
    ([r.replace("2002", "2004") for r in GOOD], "year"),                  # (no gap: all moved)
])
def test_did_command_names_the_column_of_bad_input(tmp_path, capsys, rows, column):
    if column == "outcome":
        path = _panel(tmp_path, GOOD)
        code = main(["did", "--panel", str(path), "--unit", "unit", "--time", "year",
                     "--cohort", "cohort", "--outcome", "missing_col"])
        assert code == 2 and "missing_col" in capsys.readouterr().err
        return
    if column == "year":
        rows = GOOD + ["1,2004,0,1.2", "2,2004,2002,3.3", "3,2004,0,1.0"]  # a gap: 2003 absent
    path = _panel(tmp_path, rows)
    code = main(["did", "--panel", str(path), "--unit", "unit", "--time", "year",
                 "--cohort", "cohort", "--outcome", "y"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert column in err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def national_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("national")
    assert main(["data", "synthetic", "--scale", "20000", "--format", "parquet", "--out",
                 str(out)]) == 0
    return out


def test_estimates_all_regions_covers_every_region_and_the_nation(national_dir, capsys):
    from evaluation.national.estimates import NATIONAL_ID
    from evaluation.params import load_regions
    from evaluation.registry import PRIMARY

    capsys.readouterr()
    assert main(["estimates", "--data", str(national_dir), "--all-regions", "--format",
                 "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    regions = {r.id for r in load_regions(national_dir / "params")}  # the data set's own params
    assert len(regions) == 42
    assert {r["region"] for r in rows} == regions | {NATIONAL_ID}
    assert len(rows) == (len(regions) + 1) * len(PRIMARY)
    assert {r["school_year"] for r in rows} == {"2016-2017"}  # the last year in the data
    estimated = [r for r in rows if r["estimate"] is not None]
    assert len(estimated) > len(PRIMARY) * 10
    # No estimate rests on fewer than two comparison or pilot schools.
    for r in rows:
        if r["n_comparison_schools"] < 2 or r["n_pilot_schools"] < 2:
            assert r["estimate"] is None and r["note"], r
        elif r["estimate"] is not None and r["ci_low"] is not None:
            assert r["ci_low"] < r["ci_high"]
        elif r["estimate"] is not None:  # too few reassignments for a Conley-Taber interval
            assert r["inference"] == "randomisation" and r["note"] and r["p_value"] > 0, r


def test_estimates_all_regions_table_and_errors(national_dir, capsys):
    assert main(["estimates", "--data", str(national_dir), "--all-regions",
                 "--school-year", "2015-2016"]) == 0
    out = capsys.readouterr().out
    assert "school year 2015-2016 (42 regions" in out and "lekstroom" in out
    assert main(["estimates", "--data", str(national_dir), "--all-regions",
                 "--school-year", "2030-2031"]) == 2
    assert "school year 2030-2031 is not in the data" in capsys.readouterr().err
    assert main(["estimates", "--school-year", "2014-2015"]) == 2
    assert "estimates needs --region (or --all-regions)" in capsys.readouterr().err
    assert main(["estimates", "--all-regions"]) == 2
    assert "--all-regions needs --data DIR" in capsys.readouterr().err


def test_render_needs_a_report_or_all(capsys):
    assert main(["render", "--region", "lekstroom"]) == 2
    assert "render needs --school-year" in capsys.readouterr().err
    assert main(["render", "--all", "--municipality", "Lopik"]) == 2
    assert "--municipality names one report" in capsys.readouterr().err


def test_render_national_refuses_a_region(capsys):
    assert main(["render", "--national", "--region", "lekstroom"]) == 2
    assert "render --national makes the overview of all regions" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["data", "synthetic", "--out", "x"], ["data", "truth"],
    ["params", "--region", "lekstroom", "--school-year", "2014-2015"],
    ["estimates", "--region", "lekstroom", "--school-year", "2014-2015"],
    ["robustness", "--region", "lekstroom", "--school-year", "2014-2015"],
    ["render", "--region", "lekstroom", "--school-year", "2014-2015"], ["audit", "out"]])
def test_every_command_that_reads_params_takes_set(argv):
    from evaluation.cli import build_parser

    args = build_parser().parse_args([*argv, "--set", "disclosure.min_count=20"])
    assert args.overrides == ["disclosure.min_count=20"]


@pytest.mark.parametrize("argv", [["validate", "x"], ["import", "a.csv", "--mapping", "m.yml",
                                                      "--out", "o"]])
def test_commands_without_params_refuse_set_as_the_readme_says(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--set", "disclosure.min_count=20"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --set" in capsys.readouterr().err
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert "`validate`, `import`, `did` and `context` read no parameters" in readme
