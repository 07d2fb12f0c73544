"""Thin or incomplete data, as real evaluations start: every command still gives a clear answer.

For each case of `thin_data.CASES` (a table not delivered or empty, one school, no comparison
schools, no school year before the start, one school year, a municipality without pupils, a
report year without data) the whitepaper renders (HTML, built-in renderer) with exit status 0 and
says in Dutch what is missing and what could therefore not be determined; `estimates` returns a
record for every comparison, with a note where there is no estimate. A report year without any
data is the one error (exit 2), naming the year and the years there are.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from thin_data import CASES, write_case

from evaluation.cli import main
from evaluation.registry import INDICATORS


def _words(raw_html: str) -> str:
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", raw_html, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body))).replace("\u00ad", "")


@pytest.fixture(scope="module")
def case_dirs(synthetic_tables, tmp_path_factory) -> dict[str, Path]:
    """Every case's data set, cut once from the session's synthetic tables."""
    root = tmp_path_factory.mktemp("thin")
    return {c.id: write_case(c, synthetic_tables, root / c.id) for c in CASES}


def _run_args(case) -> list[str]:
    args = ["--region", "lekstroom", "--school-year", case.school_year]
    return args + (["--municipality", case.municipality] if case.municipality else [])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_render_gives_a_whitepaper_that_says_what_is_missing(case, case_dirs, tmp_path, capsys):
    code = main(["render", *_run_args(case), "--data", str(case_dirs[case.id]), "--format",
                 "html", "--renderer", "builtin", "--build-dir", str(tmp_path / "_build"),
                 "--output", str(tmp_path / "_output")])
    out, err = capsys.readouterr()
    assert code == case.exit_code, err[-2000:]
    assert "Traceback" not in err
    if case.exit_code:
        for text in case.says:
            assert text in err, (text, err)
        return
    page = next((tmp_path / "_output").rglob("whitepaper.html"))
    words = _words(page.read_text(encoding="utf-8"))
    for heading in ("Samenvatting", "Zorgmeldingen", "Zorgroutes", "Verwijzingen",
                    "Ouderbetrokkenheid", "Tevredenheid", "Bijlage: datakwaliteit"):
        assert heading in words
    assert "Onvolledige gegevens." in words
    for text in case.says:
        assert text in words, text
    # No code names of fields or commands in what a reader reads.
    assert "indication_free" not in words and "evaluation import" not in words


@pytest.mark.parametrize("case", [c for c in CASES if not c.exit_code],
                         ids=[c.id for c in CASES if not c.exit_code])
def test_estimates_give_a_record_per_comparison_with_a_note_for_the_rest(case, case_dirs,
                                                                         capsys):
    assert main(["estimates", *_run_args(case), "--data", str(case_dirs[case.id]),
                 "--format", "json"]) == 0
    records = pd.DataFrame(json.loads(capsys.readouterr().out))
    assert set(records["indicator"]) == set(INDICATORS)
    missing = records[records["estimate"].isna()]
    assert missing["note"].fillna("").str.len().gt(0).all()
    for note in case.notes:
        assert (records["note"] == note).any(), (note, records["note"].unique())


def test_estimates_for_a_year_without_data_is_an_error_naming_the_years(case_dirs, capsys):
    code = main(["estimates", "--region", "lekstroom", "--school-year", "2030-2031", "--data",
                 str(case_dirs["care_reports_absent"])])
    err = capsys.readouterr().err
    assert code == 2
    assert "school year 2030-2031: no data" in err
    assert "2011-2012, 2012-2013, 2013-2014, 2014-2015" in err


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"], ids=["zero-bytes", "blank-lines"])
def test_validate_explains_an_empty_file(case_dirs, tmp_path, content, capsys):
    data = tmp_path / "data"
    data.mkdir()
    for path in case_dirs["referrals_empty"].glob("*.csv"):
        (data / path.name).write_bytes(path.read_bytes())
    (data / "referrals.csv").write_bytes(content)
    assert main(["validate", str(data)]) == 2
    err = capsys.readouterr().err
    assert "referrals.csv: the file is empty (no header line)" in err
    assert "referral_id,trajectory_id" in err and "Traceback" not in err


def test_validate_lists_tables_not_delivered(case_dirs, capsys):
    assert main(["validate", str(case_dirs["care_reports_absent"])]) == 0
    assert "not supplied (read as empty): care_reports" in capsys.readouterr().out


def test_a_data_set_without_enrolments_is_a_clear_error(case_dirs, tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    (data / "schools.csv").write_bytes((case_dirs["one_school"] / "schools.csv").read_bytes())
    assert main(["validate", str(data)]) == 2
    assert "enrolments.csv: file not found (table enrolments is required" in \
        capsys.readouterr().err
