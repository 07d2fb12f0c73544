"""Reading and writing a data set: one CSV file per table of the data model, plus a data dictionary.

Files are read as text first, so that validation can report a bad value in the user's terms (file,
row, field) instead of failing inside a parser; `evaluation.data.validation` turns the text into typed
columns. A Parquet column that already has the data model's type is kept typed
(`read_parquet_columns`): validation checks its values as they are, with the same outcome.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

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
    return {name: pd.DataFrame({f.name: field_text(frame[f.name], f.kind)
                                for f in TABLES[name].fields})
            for name, frame in tables.items()}


def field_text(values: pd.Series, kind: str) -> pd.Series:
    """One typed column of a field of `kind` as the text a CSV file would hold (a column of text
    stays as it is: a Parquet file may hold dates or booleans as words)."""
    if isinstance(values.dtype, pd.StringDtype) or pd.api.types.infer_dtype(
            values, skipna=True) in ("string", "empty"):
        pass
    elif kind == "date":
        values = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
    elif kind == "bool":
        values = values.astype("boolean").map({True: "true", False: "false"})
    return values.astype("string")


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


#: Dates within these years read the same typed as through text (four-digit years that every
#: datetime unit holds); a Parquet date column outside them is validated as text.
TYPED_DATE_YEARS = (1000, 9999)


def _has_model_type(kind: str, column: Any) -> bool:
    """Whether a Parquet column already holds the data model's type for a field of `kind`, so
    that validation can check the typed values instead of their text (dates as dates, whole
    numbers as numbers, true/false as booleans, categories as a dictionary)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    t = column.type
    if kind == "date":
        if not pa.types.is_date32(t):
            return False
        low, high = (v.as_py() for v in pc.min_max(column).values())
        lo, hi = TYPED_DATE_YEARS
        return low is None or (lo <= low.year and high.year <= hi)
    if kind == "int":
        return pa.types.is_integer(t) or pa.types.is_floating(t)
    if kind == "bool":
        return pa.types.is_boolean(t)
    if kind == "category":
        return pa.types.is_dictionary(t)
    return False


def _column_frame(columns: dict[str, pd.Series], length: int) -> pd.DataFrame:
    frame = pd.DataFrame(columns)
    # Validation's "row" is index + 2 (the line of a CSV file under its header): from -1, it is
    # the 1-based record number in the Parquet file.
    frame.index = pd.RangeIndex(-1, length - 1)
    return frame


def read_parquet_columns(path: Path, table: Table) -> pd.DataFrame:
    """One Parquet file for columnar validation: a column that already has the data model's type
    (`_has_model_type`) stays typed (dates as datetime64[s], numbers as pyarrow gives them,
    booleans as boolean, categories as categorical), every other column is the text that
    `read_parquet_text` gives, so that validation checks typed values without a round trip
    through text and says exactly what it says of the text. Row numbers as `read_parquet_text`."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    check_columns(path, pq.read_schema(path).names, table)
    arrow = pq.read_table(path, columns=table.columns)
    strings = {pa.string(): pd.StringDtype(), pa.large_string(): pd.StringDtype()}.get
    cols = {}
    for f in table.fields:
        col = arrow.column(f.name)
        if _has_model_type(f.kind, col):
            if f.kind == "date":
                s = pc.cast(col, pa.timestamp("s")).to_pandas()
            elif f.kind == "bool":
                s = col.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get)
            else:
                s = col.to_pandas()
        elif pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            s = col.to_pandas(types_mapper=strings)  # the text itself, without a copy
        else:  # another type (a number in an identifier field, ...): its text, as from CSV
            s = field_text(col.to_pandas(), f.kind)
        cols[f.name] = s.reset_index(drop=True)
    return _column_frame(cols, arrow.num_rows)


def absent_tables(data_dir: Path) -> list[str]:
    """The tables `data_dir` has no file for."""
    return [name for name, path in table_files(data_dir).items() if not path.exists()]


def read_text_tables(data_dir: Path, columnar: bool = True) -> dict[str, pd.DataFrame]:
    """Read every table of the data model from `data_dir` as text (CSV, or Parquet where a
    table has no CSV file); a table without a file is empty, unless it is essential (schools,
    enrolments): then the error names every missing file. `columnar`: Parquet columns that have
    the data model's type stay typed (`read_parquet_columns`) for validation to check as they
    are; without it every column is text (`read_parquet_text`), as from CSV."""
    if not data_dir.is_dir():
        raise DataSetError(f"{data_dir}: data directory not found")
    files = table_files(data_dir)
    missing = [name for name in absent_tables(data_dir) if name in ESSENTIAL]
    if missing:
        raise DataSetError("; ".join(
            f"{files[name]}: file not found (table {name} is required: without schools and "
            "their pupils nothing can be counted)" for name in missing))
    parquet = read_parquet_columns if columnar else read_parquet_text
    return {name: (empty_text_table(TABLES[name]) if not path.exists()
                   else parquet(path, TABLES[name]) if path.suffix == PARQUET
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
