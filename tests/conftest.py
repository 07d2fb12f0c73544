"""Shared fixtures: the synthetic data set, typed and as a folder of CSV files, and a helper that
writes a copy of that folder with one cell changed.

The session folder is read-only by convention: a test that needs bad data writes a corrupted copy
into its own tmp_path.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from evaluation.data.datamodel import TABLES
from evaluation.data.reading import write_tables
from evaluation.data.synthetic import generate
from evaluation.params import load_regions, load_synthetic


@pytest.fixture(scope="session")
def synthetic_tables() -> dict[str, pd.DataFrame]:
    """The synthetic data set as typed tables (the generator's output, default params)."""
    return generate(load_regions(), load_synthetic())


@pytest.fixture(scope="session")
def synthetic_dir(synthetic_tables, tmp_path_factory) -> Path:
    """The synthetic data set written as CSV files (one per table plus the data dictionary)."""
    out = tmp_path_factory.mktemp("synthetic")
    write_tables(synthetic_tables, out)
    return out


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV file exactly as text: every cell a str, empty cells ''."""
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def copy_data(src_dir: Path, dst_dir: Path) -> Path:
    """Copy every CSV file of `src_dir` into `dst_dir` (created if needed)."""
    dst_dir.mkdir(parents=True, exist_ok=True)
    for path in src_dir.glob("*.csv"):
        shutil.copy2(path, dst_dir / path.name)
    return dst_dir


def corrupt(src_dir: Path, dst_dir: Path, table: str, row_index: int, field: str,
            value: str) -> Path:
    """Copy the data set in `src_dir` to `dst_dir` and set one cell of one table to `value`.

    row_index is the 0-based data row (line row_index + 2 of the file, the header being line 1).
    Returns the path of the changed CSV file.
    """
    copy_data(src_dir, dst_dir)
    path = dst_dir / TABLES[table].filename
    frame = read_csv_text(path)
    assert field in frame.columns, f"{table} has no column {field}"
    assert 0 <= row_index < len(frame), f"{table} has no row {row_index}"
    frame.loc[row_index, field] = value
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def data_copy(synthetic_dir, tmp_path) -> Path:
    """A fresh copy of the synthetic CSV folder in this test's tmp_path/data."""
    return copy_data(synthetic_dir, tmp_path / "data")


@pytest.fixture
def corrupt_copy(synthetic_dir, tmp_path) -> Callable[..., Path]:
    """`corrupt_copy(table, row_index, field, value)`: a copy of the synthetic data in this test's
    tmp_path/data with one cell changed; returns the changed file's path."""

    def make(table: str, row_index: int, field: str, value: str) -> Path:
        return corrupt(synthetic_dir, tmp_path / "data", table, row_index, field, value)

    return make


@pytest.fixture(scope="session")
def shared_reports(synthetic_dir, tmp_path_factory):
    """Real reports rendered once per session by both renderers (tests/renderers.py):
    `shared_reports.get("region" | "municipality" | "national", "builtin" | "quarto")`."""
    from renderers import SharedReports

    return SharedReports(synthetic_dir, tmp_path_factory.mktemp("shared-reports"))
