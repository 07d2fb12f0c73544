"""Validation: every bad value is reported with file, line, field and reason; its row is rejected
and kept with that reason; nothing is dropped silently and nothing good is rejected."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from evaluation.cli import main
from evaluation.data import validation
from evaluation.data.datamodel import TABLES
from evaluation.data.reading import DataSetError, as_text
from evaluation.data.validation import REASONS, validate, validate_dir


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV file exactly as text: every cell a str, empty cells ''."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def clean(synthetic_dir) -> validation.ValidationResult:
    return validate_dir(synthetic_dir)


@pytest.fixture
def run_validate(capsys, monkeypatch):
    """Run `evaluation validate DIR` and also hand back the ValidationResult the command computed,
    so each corrupted copy is validated only once (keeps the suite fast)."""

    def run(data_dir: Path, *extra: str) -> tuple[int, str, str, validation.ValidationResult]:
        results = []
        real = validation.validate_dir

        def spy(path):
            results.append(real(path))
            return results[-1]

        monkeypatch.setattr(validation, "validate_dir", spy)
        code = main(["validate", str(data_dir), *extra])
        out, err = capsys.readouterr()
        monkeypatch.setattr(validation, "validate_dir", real)
        assert len(results) == 1, "the validate command did not call validation.validate_dir"
        return code, out, err, results[0]

    return run


def assert_counts_add_up(result: validation.ValidationResult) -> None:
    for name in TABLES:
        assert result.read[name] == len(result.tables[name]) + len(result.rejected[name]), name
    summary = result.summary()
    assert (summary["read"] == summary["accepted"] + summary["rejected"]).all()


def assert_rejected(result: validation.ValidationResult, path: Path, table: str, row_index: int,
                    field: str, reason: str, value: str,
                    cascade: dict[str, int] | None = None) -> None:
    """Exactly one problem in `table`, at the right place, and only cascades elsewhere."""
    line = row_index + 2  # the header is line 1
    own = result.problems[result.problems["table"] == table]
    assert own[["file", "row", "field", "reason"]].to_numpy().tolist() == [
        [str(path), line, field, reason]
    ], own.to_string()
    assert own["value"].iloc[0] == value
    assert reason in REASONS

    rejected = result.rejected[table]
    assert rejected["_row"].tolist() == [line]
    assert reason in rejected["_reasons"].iloc[0].split(";")
    assert_counts_add_up(result)

    cascade = cascade or {}
    for name in TABLES:
        if name == table:
            continue
        assert len(result.rejected[name]) == cascade.get(name, 0), name
        others = result.problems[result.problems["table"] == name]
        assert set(others["reason"]) <= {"unknown_reference"}, others.to_string()


def assert_cli_reports(code: int, out: str, path: Path, row_index: int, field: str) -> None:
    assert code == 1
    assert path.name in out
    assert f"row {row_index + 2}" in out
    assert field in out
    assert f"{path}, row {row_index + 2}, field {field}" in out


# --- clean data ---------------------------------------------------------------------------------


def test_synthetic_data_validates_cleanly(clean, synthetic_tables):
    assert clean.ok
    assert clean.problems.empty
    for name in TABLES:
        assert clean.read[name] == len(synthetic_tables[name]) > 0, name
        assert len(clean.tables[name]) == clean.read[name], name
        assert clean.rejected[name].empty, name
    assert_counts_add_up(clean)


def test_cli_validate_returns_0_on_clean_data(synthetic_dir, capsys):
    assert main(["validate", str(synthetic_dir)]) == 0
    out = capsys.readouterr().out
    assert "all rows valid" in out


def test_optional_empty_values_are_not_problems_but_are_counted(clean, synthetic_dir):
    missing = clean.missing().set_index(["table", "field"])["missing"]
    optional = {(t.name, f.name) for t in TABLES.values() for f in t.fields if not f.required}
    assert set(missing.index) == optional
    for table, field in optional:
        text = read_csv_text(synthetic_dir / TABLES[table].filename)
        assert missing[(table, field)] == int((text[field] == "").sum()), (table, field)
    # The generator leaves a share of every optional field empty, and that is still clean data;
    # except the fields optional because an export may lack them altogether, which it fills.
    may_lack = {("enrolments", "grade"), ("enrolments", "track"), ("enrolments", "indication"),
                ("trajectories", "route"), ("trajectories", "level"),
                ("trajectories", "indication_free")}
    assert (missing.drop(index=list(may_lack)) > 0).all()
    assert (missing.loc[list(may_lack)] == 0).all()
    assert clean.ok


def test_as_text_then_validate_equals_reading_the_csv_files(clean, synthetic_tables):
    result = validate(as_text(synthetic_tables))
    assert result.ok
    for name in TABLES:
        pd.testing.assert_frame_equal(result.tables[name], clean.tables[name], obj=name)


def test_accepted_tables_have_the_datamodel_dtypes(clean):
    for name, table in TABLES.items():
        assert list(clean.tables[name].columns) == table.columns, name
        for f in table.fields:
            assert clean.tables[name][f.name].dtype == f.dtype, (name, f.name)


# --- one class of bad input per test -------------------------------------------------------------


def test_missing_required_value_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("care_reports", 10, "report_date", "")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "care_reports", 10, "report_date", "missing_required", "")
    assert_cli_reports(code, out, path, 10, "report_date")


@pytest.mark.parametrize("bad", ["2014-13-45", "13-01-2014"])
def test_bad_date_is_rejected(corrupt_copy, run_validate, bad):
    path = corrupt_copy("care_reports", 20, "report_date", bad)
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "care_reports", 20, "report_date", "bad_date", bad)
    assert result.rejected["care_reports"]["report_date"].tolist() == [bad]
    assert_cli_reports(code, out, path, 20, "report_date")


def test_non_integer_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("enrolments", 30, "grade", "2.5")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "enrolments", 30, "grade", "not_integer", "2.5")
    assert_cli_reports(code, out, path, 30, "grade")


def test_integer_out_of_range_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("enrolments", 40, "grade", "9")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "enrolments", 40, "grade", "out_of_range", "9")
    assert_cli_reports(code, out, path, 40, "grade")


def test_bad_boolean_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("enrolments", 50, "indication", "misschien")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "enrolments", 50, "indication", "bad_boolean", "misschien")
    assert_cli_reports(code, out, path, 50, "indication")


def test_unknown_category_value_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("enrolments", 60, "track", "gymnasium")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "enrolments", 60, "track", "unknown_value", "gymnasium")
    assert_cli_reports(code, out, path, 60, "track")


def test_bad_municipality_code_format_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("enrolments", 70, "residence_municipality_code", "0356")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "enrolments", 70, "residence_municipality_code", "bad_format",
                    "0356")
    assert_cli_reports(code, out, path, 70, "residence_municipality_code")


def test_impossible_school_year_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("enrolments", 80, "school_year", "2014-2016")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "enrolments", 80, "school_year", "bad_school_year", "2014-2016")
    assert_cli_reports(code, out, path, 80, "school_year")


def test_duplicate_key_rejects_the_later_row_and_keeps_the_first(corrupt_copy, run_validate,
                                                                  synthetic_dir):
    first = read_csv_text(synthetic_dir / "care_reports.csv").loc[5, "report_id"]
    path = corrupt_copy("care_reports", 6, "report_id", first)
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "care_reports", 6, "report_id", "duplicate_key", first)
    accepted = result.tables["care_reports"]
    assert (accepted["report_id"] == first).sum() == 1
    assert_cli_reports(code, out, path, 6, "report_id")


def test_end_date_before_start_date_is_rejected_with_its_dependants(corrupt_copy, run_validate,
                                                                     synthetic_dir):
    trajectories = read_csv_text(synthetic_dir / "trajectories.csv")
    row = trajectories.loc[4]
    assert row["end_date"] and row["start_date"] > "2010-12-31"
    path = corrupt_copy("trajectories", 4, "end_date", "2010-12-31")
    # Rows pointing to the rejected trajectory are rejected with it, each with its own reason.
    parents = read_csv_text(synthetic_dir / "parent_involvement.csv")
    referrals = read_csv_text(synthetic_dir / "referrals.csv")
    cascade = {
        "parent_involvement": int((parents["trajectory_id"] == row["trajectory_id"]).sum()),
        "referrals": int((referrals["trajectory_id"] == row["trajectory_id"]).sum()),
    }
    assert cascade == {"parent_involvement": 1, "referrals": 1}

    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "trajectories", 4, "end_date", "date_order", "2010-12-31",
                    cascade=cascade)
    for name in cascade:
        dependants = result.problems[result.problems["table"] == name]
        assert dependants["field"].tolist() == ["trajectory_id"]
        assert dependants["value"].tolist() == [row["trajectory_id"]]
    assert_cli_reports(code, out, path, 4, "end_date")


def test_unknown_school_reference_is_rejected(corrupt_copy, run_validate):
    path = corrupt_copy("care_reports", 100, "school_id", "XX99")
    code, out, _, result = run_validate(path.parent)
    assert_rejected(result, path, "care_reports", 100, "school_id", "unknown_reference", "XX99")
    assert_cli_reports(code, out, path, 100, "school_id")


@pytest.fixture
def bad_school(corrupt_copy, synthetic_dir) -> tuple[Path, str]:
    """A copy where school LS01 (row 0) has a malformed municipality code."""
    school = read_csv_text(synthetic_dir / "schools.csv").loc[0, "school_id"]
    assert school == "LS01"
    return corrupt_copy("schools", 0, "municipality_code", "GM356"), school


def test_rejected_school_cascades_to_its_enrolments(bad_school, run_validate, synthetic_tables):
    path, school = bad_school
    code, out, _, result = run_validate(path.parent)
    problems = result.problems
    own = problems[problems["table"] == "schools"]
    assert own[["file", "row", "field", "reason"]].to_numpy().tolist() == [
        [str(path), 2, "municipality_code", "bad_format"]
    ]
    assert result.rejected["schools"]["school_id"].tolist() == [school]

    enrolments = synthetic_tables["enrolments"]
    expected = int((enrolments["school_id"] == school).sum())
    rejected = result.rejected["enrolments"]
    assert len(rejected) == expected > 0
    assert (rejected["school_id"] == school).all()
    assert (rejected["_reasons"] == "unknown_reference").all()
    enrol_problems = problems[problems["table"] == "enrolments"]
    assert set(enrol_problems["field"]) == {"school_id"}
    assert sorted(enrol_problems["row"]) == sorted(rejected["_row"])
    # Nothing of the rejected school survives anywhere, and every row is accounted for.
    for name, table in TABLES.items():
        if "school_id" in table.columns:
            assert not (result.tables[name]["school_id"] == school).any(), name
    assert set(problems.loc[problems["table"] != "schools", "reason"]) == {"unknown_reference"}
    assert_counts_add_up(result)
    assert_cli_reports(code, out, path, 0, "municipality_code")
    # The listing is truncated (default --max-problems 1000); the root cause comes first, before
    # the thousands of rows that point to the rejected school.
    assert out.splitlines()[0].startswith(f"{path}, row 2, field municipality_code")
    assert "more problems" in out


def test_reported_row_is_the_line_in_the_file_even_after_a_blank_line(data_copy, run_validate):
    data = data_copy
    path = data / "care_reports.csv"
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.insert(3, "\n")  # a blank line 4; the first data rows are lines 2 and 3
    target = 6  # a data row after the blank line
    cells = lines[target - 1].split(",")
    cells[3] = "2014-13-45"  # report_date
    lines[target - 1] = ",".join(cells)
    path.write_text("".join(lines), encoding="utf-8")
    _, out, _, result = run_validate(data)
    assert result.problems["row"].tolist() == [target]
    assert result.rejected["care_reports"]["_row"].tolist() == [target]
    assert f"{path}, row {target}, field report_date" in out
    # The blank line is no record: it is neither read nor rejected.
    assert result.read["care_reports"] == len(lines) - 2
    assert_counts_add_up(result)


# --- data sets that cannot be read at all ----------------------------------------------------------


def _remove_file(data: Path) -> tuple[Path, str]:
    # Schools and enrolments are the tables a data set cannot lack (others read as empty).
    path = data / "enrolments.csv"
    path.unlink()
    return path, "enrolments"


def _drop_column(data: Path) -> tuple[Path, str]:
    path = data / "care_reports.csv"
    read_csv_text(path).drop(columns="channel").to_csv(path, index=False)
    return path, "channel"


def _extra_column(data: Path) -> tuple[Path, str]:
    path = data / "enrolments.csv"
    read_csv_text(path).assign(bsn="123456782").to_csv(path, index=False)
    return path, "bsn"


@pytest.mark.parametrize("damage", [_remove_file, _drop_column, _extra_column],
                         ids=["missing_file", "missing_column", "extra_column"])
def test_unreadable_data_set_raises_naming_file_and_column(data_copy, capsys, damage):
    data = data_copy
    path, name = damage(data)
    with pytest.raises(DataSetError) as exc:
        validate_dir(data)
    assert str(path) in str(exc.value)
    assert name in str(exc.value)

    assert main(["validate", str(data)]) == 2
    out, err = capsys.readouterr()
    assert str(path) in err
    assert name in err


def test_missing_data_directory_is_a_dataset_error(tmp_path, capsys):
    with pytest.raises(DataSetError, match="not found"):
        validate_dir(tmp_path / "nowhere")
    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err
