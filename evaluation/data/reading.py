"""Reading and writing a data set: one CSV file per table of the data model, plus a data dictionary.

Files are read as text first, so that validation can report a bad value in the user's terms (file,
row, field) instead of failing inside a parser; `evaluation.data.validation` turns the text into typed
columns.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from evaluation.data.datamodel import TABLES, Table, data_dictionary

DICTIONARY_FILE = "data_dictionary.csv"
#: Without schools and their pupils nothing can be counted; every other table may be missing
#: from a data set (a provider could not deliver it): it is read as empty and the report says so.
ESSENTIAL = ("schools", "enrolments")


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


def check_columns(path: Path, columns: list[str], table: Table) -> None:
    """Every declared column must be in the file and nothing else."""
    missing = [c for c in table.columns if c not in columns]
    if missing:
        raise DataSetError(
            f"{path}: column(s) {', '.join(missing)} missing; expected {', '.join(table.columns)}"
        )
    extra = [c for c in columns if c not in table.columns]
    if extra:
        # Unknown columns may carry personal data that no analysis needs: refuse, don't ignore.
        raise DataSetError(
            f"{path}: unexpected column(s) {', '.join(extra)}; the data model has only "
            f"{', '.join(table.columns)} (see {DICTIONARY_FILE})"
        )


def empty_text_table(table: Table) -> pd.DataFrame:
    """A table without rows, as text: what a missing file of a non-essential table reads as."""
    return pd.DataFrame({c: pd.Series(dtype="string") for c in table.columns})


def read_text_table(path: Path, table: Table) -> pd.DataFrame:
    """Read one CSV file as text; every declared column must be there and nothing else."""
    if not path.exists():
        raise DataSetError(f"{path}: file not found (table {table.name} is required)")
    try:
        frame = pd.read_csv(path, dtype="string", keep_default_na=False, na_values=[""],
                            encoding="utf-8-sig", skip_blank_lines=False)
    except pd.errors.EmptyDataError:
        # A 0-byte file or one of blank lines only: no header line to check the columns against.
        hint = ("" if table.name in ESSENTIAL else
                "; if the table was not delivered, leave the file out")
        raise DataSetError(f"{path}: the file is empty (no header line); write at least the "
                           f"header line {','.join(table.columns)}{hint}") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataSetError(f"{path}: cannot be read as a UTF-8 CSV file: {exc}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    check_columns(path, list(frame.columns), table)
    # Blank lines hold no record: leave them out, but keep each row's index equal to its position
    # in the file so that validation reports the true line number.
    frame = frame[frame.notna().any(axis=1)]
    return frame[table.columns]


PARQUET = ".parquet"


def table_files(data_dir: Path) -> dict[str, Path]:
    """The file of each table: `<table>.csv`, or `<table>.parquet` when no CSV file is there
    (the columnar format of national data sets)."""
    data_dir = Path(data_dir)
    out = {}
    for name, t in TABLES.items():
        csv, parquet = data_dir / t.filename, data_dir / f"{name}{PARQUET}"
        out[name] = parquet if not csv.exists() and parquet.exists() else csv
    return out


def as_text(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Typed tables (from the generator) as the text a CSV file would hold, so that in-memory data
    passes through exactly the same validation as files do."""
    out = {}
    for name, frame in tables.items():
        cols = {}
        for f in TABLES[name].fields:
            s = frame[f.name]
            if f.kind == "date":
                s = pd.to_datetime(s).dt.strftime("%Y-%m-%d")
            elif f.kind == "bool":
                s = s.astype("boolean").map({True: "true", False: "false"})
            cols[f.name] = s.astype("string")
        out[name] = pd.DataFrame(cols)
    return out


def read_parquet_text(path: Path, table: Table) -> pd.DataFrame:
    """One Parquet file as the text frame a CSV file gives, so that it is validated row by row
    like any export. Its index runs from -1 so that validation's "row" (index + 2, the line of a
    CSV file under its header) is the 1-based record number in the Parquet file."""
    import pyarrow.parquet as pq

    arrow = pq.read_table(path)
    check_columns(path, arrow.column_names, table)
    text = as_text({table.name: arrow.select(table.columns).to_pandas()})[table.name]
    text.index = pd.RangeIndex(-1, len(text) - 1)
    return text[table.columns]


def absent_tables(data_dir: Path) -> list[str]:
    """The tables `data_dir` has no file for."""
    return [name for name, path in table_files(data_dir).items() if not path.exists()]


def read_text_tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    """Read every table of the data model from `data_dir` as text (CSV, or Parquet where a
    table has no CSV file); a table without a file is empty, unless it is essential (schools,
    enrolments): then the error names every missing file."""
    if not data_dir.is_dir():
        raise DataSetError(f"{data_dir}: data directory not found")
    files = table_files(data_dir)
    missing = [name for name in absent_tables(data_dir) if name in ESSENTIAL]
    if missing:
        raise DataSetError("; ".join(
            f"{files[name]}: file not found (table {name} is required: without schools and "
            "their pupils nothing can be counted)" for name in missing))
    return {name: (empty_text_table(TABLES[name]) if not path.exists()
                   else read_parquet_text(path, TABLES[name]) if path.suffix == PARQUET
                   else read_text_table(path, TABLES[name]))
            for name, path in files.items()}


def file_hashes(data_dir: Path) -> dict[str, str]:
    """SHA-256 of each input file, for the report's provenance (read in blocks: a national
    Parquet file is hundreds of megabytes)."""
    out = {}
    for path in table_files(data_dir).values():
        if path.exists():
            digest = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                    digest.update(block)
            out[path.name] = digest.hexdigest()
    return out
