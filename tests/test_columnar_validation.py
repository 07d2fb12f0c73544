"""Columnar validation of Parquet input: columns that already have the data model's type are
checked as typed values (`reading.read_parquet_columns`), never through text and back. The result
must be exactly what the text path gives (`validate_dir(..., columnar=False)`, which reads every
Parquet column as the text a CSV file holds): accepted tables (dtypes and values), rejected rows
with their reasons, and the problems naming file, row and field."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.data.datamodel import TABLES
from evaluation.data.parquet import write_parquet_tables
from evaluation.data.reading import read_parquet_columns
from evaluation.data.validation import ValidationResult, format_problem, validate_dir


@pytest.fixture(scope="module")
def parquet_dir(synthetic_tables, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("columnar")
    write_parquet_tables(synthetic_tables, out)
    return out


def _copy(parquet_dir: Path, tmp_path: Path) -> Path:
    out = tmp_path / "data"
    shutil.copytree(parquet_dir, out)
    return out


def plant(data_dir: Path, table: str, values: dict[int, dict[str, Any]],
          types: dict[str, pa.DataType] | None = None) -> None:
    """Set values (record index -> field -> value) in `<table>.parquet`, each column keeping its
    Arrow type (dictionaries re-encoded) unless `types` gives another."""
    path = data_dir / f"{table}.parquet"
    arrow = pq.read_table(path)
    arrays, fields = [], []
    for name in arrow.column_names:
        col = arrow.column(name).combine_chunks()
        typ = (types or {}).get(name)
        changed = any(name in v for v in values.values())
        if typ is not None or changed:
            items = col.to_pylist()
            for row, fields_values in values.items():
                if name in fields_values:
                    items[row] = fields_values[name]
            if typ is not None:
                col = pa.array(items, type=typ)
            elif pa.types.is_dictionary(col.type):
                col = pa.array(items, type=col.type.value_type).dictionary_encode()
            else:
                col = pa.array(items, type=col.type)
        arrays.append(col)
        fields.append(pa.field(name, col.type, nullable=True))
    pq.write_table(pa.Table.from_arrays(arrays, schema=pa.schema(fields)), path)


def assert_same_result(columnar: ValidationResult, text: ValidationResult) -> None:
    for name in TABLES:
        pd.testing.assert_frame_equal(columnar.tables[name], text.tables[name])
        pd.testing.assert_frame_equal(columnar.rejected[name], text.rejected[name])
    pd.testing.assert_frame_equal(columnar.problems, text.problems)
    assert columnar.read == text.read
    pd.testing.assert_frame_equal(columnar.summary(), text.summary())
    assert ([format_problem(r) for _, r in columnar.problems.iterrows()]
            == [format_problem(r) for _, r in text.problems.iterrows()])


def test_model_typed_columns_are_read_typed(parquet_dir):
    frame = read_parquet_columns(parquet_dir / "trajectories.parquet", TABLES["trajectories"])
    assert pd.api.types.is_datetime64_any_dtype(frame["signal_date"])
    assert pd.api.types.is_numeric_dtype(frame["n_intakes"])
    assert isinstance(frame["route"].dtype, pd.CategoricalDtype)
    assert str(frame["school_informed"].dtype) == "boolean"
    assert isinstance(frame["trajectory_id"].dtype, pd.StringDtype)
    assert frame.index[0] == -1  # row = index + 2 = record number 1


def test_clean_parquet_same_through_both_paths(parquet_dir):
    columnar, text = validate_dir(parquet_dir), validate_dir(parquet_dir, columnar=False)
    assert columnar.ok
    assert_same_result(columnar, text)


def test_planted_bad_typed_values_same_through_both_paths(parquet_dir, tmp_path):
    data = _copy(parquet_dir, tmp_path)
    schools = pq.read_table(data / "schools.parquet").column("school_id").to_pylist()
    trajectories = pq.read_table(data / "trajectories.parquet")
    first_id = trajectories.column("trajectory_id")[0].as_py()
    plant(data, "schools", {3: {"name": None}})  # rejects the school and every row of it
    plant(data, "enrolments", {
        0: {"grade": 7}, 1: {"grade": 0}, 2: {"school_id": None},
        4: {"track": "gymnasium"}, 5: {"track": " havo "}, 6: {"track": ""},
        7: {"school_year": "2014-2016"}, 8: {"residence_municipality_code": "9999"},
        9: {"indication": None}, 10: {"school_id": "S-NOWHERE"},
    })
    enrolments = pq.read_table(data / "enrolments.parquet")
    dup = {c: enrolments.column(c)[20].as_py() for c in ("student_id", "school_year")}
    plant(data, "enrolments", {21: dup})  # a duplicate key
    plant(data, "care_reports", {0: {"report_date": None}, 1: {"channel": "buurman"},
                                 2: {"school_id": schools[-1] + "x"}})
    plant(data, "trajectories", {
        0: {"signal_date": None}, 1: {"n_intakes": 25}, 2: {"n_intakes": 0},
        3: {"start_date": dt.date(2000, 1, 1)},              # before its signal date
        4: {"end_date": dt.date(2001, 1, 1)},                # before its start date
        5: {"level": "ziekenhuis"}, 6: {"route": None},
        7: {"trajectory_id": first_id},                      # duplicate key
    })
    plant(data, "referrals", {0: {"referrer": None}, 1: {"destination_level": "onbekend"},
                              2: {"trajectory_id": "T-NOWHERE"}})
    plant(data, "parent_involvement", {
        0: {"consent_date": dt.date(2000, 1, 1), "first_parent_contact_date": dt.date(2001, 1, 1)},
        1: {"trajectory_id": "T-NOWHERE"}})
    plant(data, "survey_responses", {0: {"value": 9}, 1: {"respondent_role": "buurman"},
                                     2: {"item": None}})

    columnar, text = validate_dir(data), validate_dir(data, columnar=False)
    assert_same_result(columnar, text)
    # Record i (0-based) is row i + 1.
    found = set(zip(columnar.problems["table"], columnar.problems["row"],
                    columnar.problems["field"], columnar.problems["reason"], strict=True))
    for planted in [("schools", 4, "name", "missing_required"),
                    ("enrolments", 1, "grade", "out_of_range"),
                    ("enrolments", 2, "grade", "out_of_range"),
                    ("enrolments", 3, "school_id", "missing_required"),
                    ("enrolments", 5, "track", "unknown_value"),
                    ("enrolments", 8, "school_year", "bad_school_year"),
                    ("enrolments", 9, "residence_municipality_code", "bad_format"),
                    ("enrolments", 11, "school_id", "unknown_reference"),
                    ("enrolments", 22, "student_id+school_year", "duplicate_key"),
                    ("care_reports", 1, "report_date", "missing_required"),
                    ("care_reports", 2, "channel", "unknown_value"),
                    ("care_reports", 3, "school_id", "unknown_reference"),
                    ("trajectories", 1, "signal_date", "missing_required"),
                    ("trajectories", 2, "n_intakes", "out_of_range"),
                    ("trajectories", 3, "n_intakes", "out_of_range"),
                    ("trajectories", 4, "start_date", "date_order"),
                    ("trajectories", 5, "end_date", "date_order"),
                    ("trajectories", 6, "level", "unknown_value"),
                    ("trajectories", 8, "trajectory_id", "duplicate_key"),
                    ("referrals", 1, "referrer", "missing_required"),
                    ("referrals", 2, "destination_level", "unknown_value"),
                    ("referrals", 3, "trajectory_id", "unknown_reference"),
                    ("parent_involvement", 1, "consent_date", "date_order"),
                    ("parent_involvement", 2, "trajectory_id", "unknown_reference"),
                    ("survey_responses", 1, "value", "out_of_range"),
                    ("survey_responses", 2, "respondent_role", "unknown_value"),
                    ("survey_responses", 3, "item", "missing_required")]:
        assert planted in found, planted
    problems = columnar.problems.set_index(["table", "row", "field"])
    assert problems.loc[("enrolments", 1, "grade"), "value"] == "7"
    # Before both its signal and its first intake date: two problems, the value as text.
    assert list(problems.loc[("trajectories", 4, "start_date"), "value"]) == ["2000-01-01"] * 2
    # " havo " is havo once stripped, as in a CSV file; an empty category is a missing value.
    accepted = columnar.tables["enrolments"]
    assert (accepted["track"] == "havo").sum() == (
        text.tables["enrolments"]["track"] == "havo").sum()
    # Never a row dropped silently: read = accepted + rejected in every table.
    s = columnar.summary()
    assert (s["read"] == s["accepted"] + s["rejected"]).all()


def test_columns_of_another_type_are_checked_as_text(parquet_dir, tmp_path):
    """Numbers as text or with decimals, dates as text or out of the typed range, categories
    as plain strings, booleans as words: the text path where the type is not the model's, the
    typed path for the file's other columns, one result."""
    data = _copy(parquet_dir, tmp_path)
    enrolments = pq.read_table(data / "enrolments.parquet")
    grades = [None if g is None else str(g) for g in enrolments.column("grade").to_pylist()]
    grades[0], grades[1], grades[2] = "x", " 3 ", "2.0"
    words = ["ja" if v else "nee" if v is not None else None
             for v in enrolments.column("indication").to_pylist()]
    words[3] = "misschien"
    tracks = enrolments.column("track").to_pylist()
    tracks[4] = "atheneum"
    plant(data, "enrolments", {i: {"grade": g, "indication": w, "track": t}
                               for i, (g, w, t) in enumerate(zip(grades, words, tracks,
                                                                 strict=True))},
          types={"grade": pa.string(), "indication": pa.string(), "track": pa.string()})
    trajectories = pq.read_table(data / "trajectories.parquet")
    intakes = [None if n is None else float(n) for n in trajectories.column("n_intakes").to_pylist()]
    intakes[0], intakes[1] = 2.5, 3.0
    plant(data, "trajectories", {i: {"n_intakes": n} for i, n in enumerate(intakes)},
          types={"n_intakes": pa.float64()})
    plant(data, "trajectories", {2: {"end_date": dt.date(999, 1, 1)},
                                  3: {"end_date": dt.date(1500, 1, 1)}})
    reports = pq.read_table(data / "care_reports.parquet")
    dates = [d.isoformat() for d in reports.column("report_date").to_pylist()]
    dates[0], dates[1] = "2015-02-30", " 2015-03-01"
    plant(data, "care_reports", {i: {"report_date": d} for i, d in enumerate(dates)},
          types={"report_date": pa.string()})
    plant(data, "survey_responses", {0: {"value": None}, 1: {"school_year": "2015/2016"}})
    # The whole column empty: a dictionary without values.
    pi = pq.read_table(data / "parent_involvement.parquet")
    plant(data, "parent_involvement", {i: {"parents_at_first_meeting": None}
                                       for i in range(pi.num_rows)},
          types={"parents_at_first_meeting": pa.bool_()})
    typed = read_parquet_columns(data / "trajectories.parquet", TABLES["trajectories"])
    assert isinstance(typed["end_date"].dtype, pd.StringDtype)  # year 999: as text

    columnar, text = validate_dir(data), validate_dir(data, columnar=False)
    assert_same_result(columnar, text)
    reasons = set(zip(columnar.problems["table"], columnar.problems["row"],
                      columnar.problems["reason"], strict=True))
    # Record i (0-based) is row i + 1.
    assert {("enrolments", 1, "not_integer"), ("enrolments", 4, "bad_boolean"),
            ("enrolments", 5, "unknown_value"), ("trajectories", 1, "not_integer"),
            ("care_reports", 1, "bad_date"), ("survey_responses", 2, "bad_format")} <= reasons
    assert ("enrolments", 2, "not_integer") not in reasons  # " 3 " is 3
    assert ("enrolments", 3, "not_integer") not in reasons  # "2.0" is 2


def test_all_empty_optional_category_and_empty_table(parquet_dir, tmp_path):
    data = _copy(parquet_dir, tmp_path)
    routes = pq.read_table(data / "trajectories.parquet").num_rows
    plant(data, "trajectories", {i: {"route": None} for i in range(routes)})
    survey = pq.read_table(data / "survey_responses.parquet")
    pq.write_table(survey.slice(0, 0), data / "survey_responses.parquet")
    columnar, text = validate_dir(data), validate_dir(data, columnar=False)
    assert_same_result(columnar, text)
    assert columnar.tables["trajectories"]["route"].isna().all()
    assert len(columnar.tables["survey_responses"]) == 0
