"""Parquet data folders (the national data sets' columnar format) are read, validated and hashed
like CSV folders: same tables, same checks, problems named by file, record and field."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from evaluation.data.parquet import write_parquet_tables
from evaluation.data.reading import DataSetError, file_hashes, table_files
from evaluation.data.validation import format_problem, validate_dir


@pytest.fixture(scope="module")
def parquet_dir(synthetic_tables, tmp_path_factory):
    out = tmp_path_factory.mktemp("parquet")
    write_parquet_tables(synthetic_tables, out)
    return out


def test_parquet_folder_validates_to_the_same_tables_as_csv(parquet_dir, synthetic_dir):
    from_parquet, from_csv = validate_dir(parquet_dir), validate_dir(synthetic_dir)
    assert from_parquet.ok and from_csv.ok
    assert all(p.suffix == ".parquet" for p in table_files(parquet_dir).values())
    for name, frame in from_csv.tables.items():
        pd.testing.assert_frame_equal(from_parquet.tables[name].reset_index(drop=True),
                                      frame.reset_index(drop=True))


def test_bad_parquet_value_names_file_record_and_field(parquet_dir, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(parquet_dir, bad)
    path = bad / "referrals.parquet"
    frame = pq.read_table(path).to_pandas()
    frame["referrer"] = frame["referrer"].astype("string")
    frame.loc[6, "referrer"] = "buurman"  # the 7th record
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)
    result = validate_dir(bad)
    problems = result.problems
    assert len(problems) == 1
    row = problems.iloc[0]
    assert (row["file"], int(row["row"]), row["field"]) == (str(path), 7, "referrer")
    assert "referrals.parquet, row 7, field referrer 'buurman'" in format_problem(row)
    assert int(result.summary().set_index("table").loc["referrals", "rejected"]) == 1


def test_parquet_with_an_extra_column_is_refused(parquet_dir, tmp_path):
    import shutil

    bad = tmp_path / "extra"
    shutil.copytree(parquet_dir, bad)
    path = bad / "enrolments.parquet"
    table = pq.read_table(path)
    pq.write_table(table.append_column("naam", pa.array(["x"] * table.num_rows)), path)
    with pytest.raises(DataSetError, match=r"enrolments.parquet: unexpected column\(s\) naam"):
        validate_dir(bad)


def test_file_hashes_cover_parquet_files(parquet_dir):
    hashes = file_hashes(parquet_dir)
    assert set(hashes) == {p.name for p in table_files(parquet_dir).values()}
    assert all(len(h) == 64 for h in hashes.values())


def test_audit_collects_identifiers_from_parquet_as_from_csv(parquet_dir, synthetic_dir):
    from evaluation.report.audit import collect_identifiers

    from_parquet = collect_identifiers(parquet_dir)
    assert from_parquet == collect_identifiers(synthetic_dir)
    assert len(from_parquet) > 1000
