"""Reading and writing a data set: one CSV file per table of the data model, plus a data dictionary.

Files are read as text first, so that validation can report a bad value in the user's terms (file,
row, field) instead of failing inside a parser; `evaluation.validation` turns the text into typed
columns.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from evaluation.datamodel import TABLES, Table, data_dictionary

DICTIONARY_FILE = "data_dictionary.csv"


class DataSetError(ValueError):
    """A data set cannot be read at all (missing file or column); names the file and column."""


def _to_text(series: pd.Series) -> pd.Series:
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(series):
        return series.dt.strftime("%Y-%m-%d")
    if pd.api.types.is_bool_dtype(series):
        return series.map({True: "true", False: "false"}).astype("string")
    return series


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Write each table as `<table>.csv` (ISO dates, true/false, empty for missing) and the data
    dictionary; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in tables.items():
        table = TABLES[name]
        text = frame[table.columns].apply(_to_text)
        path = out_dir / table.filename
        text.to_csv(path, index=False, na_rep="")
        written.append(path)
    path = out_dir / DICTIONARY_FILE
    data_dictionary().to_csv(path, index=False)
    written.append(path)
    return written


def read_text_table(path: Path, table: Table) -> pd.DataFrame:
    """Read one CSV file as text; every declared column must be there and nothing else."""
    if not path.exists():
        raise DataSetError(f"{path}: file not found (table {table.name} is required)")
    try:
        frame = pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""],
                            encoding="utf-8-sig", skip_blank_lines=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSetError(f"{path}: cannot be read as a UTF-8 CSV file: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in table.columns if c not in frame.columns]
    if missing:
        raise DataSetError(
            f"{path}: column(s) {', '.join(missing)} missing; expected {', '.join(table.columns)}"
        )
    extra = [c for c in frame.columns if c not in table.columns]
    if extra:
        # Unknown columns may carry personal data that no analysis needs: refuse, don't ignore.
        raise DataSetError(
            f"{path}: unexpected column(s) {', '.join(extra)}; the data model has only "
            f"{', '.join(table.columns)} (see {DICTIONARY_FILE})"
        )
    # Blank lines hold no record: leave them out, but keep each row's index equal to its position
    # in the file so that validation reports the true line number.
    frame = frame[frame.notna().any(axis=1)]
    return frame[table.columns]


def read_text_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Read every table of the data model from `data_dir` as text."""
    if not data_dir.is_dir():
        raise DataSetError(f"{data_dir}: data directory not found")
    return {name: read_text_table(data_dir / t.filename, t) for name, t in TABLES.items()}


def file_hashes(data_dir: Path) -> dict[str, str]:
    """SHA-256 of each input file, for the report's provenance."""
    out = {}
    for t in TABLES.values():
        path = data_dir / t.filename
        if path.exists():
            out[t.filename] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out
