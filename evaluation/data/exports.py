"""Reading exports as text and converting their values to what the validator expects.

CSV (any common delimiter and encoding), Excel workbooks and Parquet files are read cell by cell
as text (`read_source`), with each record's line or row number kept for the quarantine; the
conversions (`convert_field`) turn Dutch dates, decimal commas, school years and municipality
numbers into the project's forms, vectorised. Values that cannot be converted stay as given, so
that validation quarantines them with a reason.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.data.datamodel import MUNICIPALITY_CODE, Field
from evaluation.data.mapping import ImportDataError, normal_header

EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
FIELD_SIZE_LIMIT = 2**30
PREVIEW_ROWS = 30


@dataclass
class SourceTable:
    """One source read as text: headers, non-blank records (positional columns, string dtype, NA
    for empty cells), each record's line/row number, and whether it has the header's width."""

    label: str
    headers: list[str]
    values: pd.DataFrame
    rows: np.ndarray
    shape_ok: np.ndarray
    blank: int
    sha256: str
    header_line: int = 1      # line (CSV) or row (Excel) of the header
    above: int = 0            # non-blank rows above the header (a title), ignored
    footer: int = 0           # non-blank rows at the end skipped as the mapping says (totals)
    # The first records (line, cells normalised) to find the header in when a mapped column is
    # missing; never written anywhere.
    preview: list[tuple[int, list[str]]] = field(default_factory=list)

    def header_line_with(self, columns: Iterable[str]) -> int | None:
        """The line of the first previewed record that holds every one of `columns` (headers
        normalised), if it is not the header: where `header_row` should point."""
        wanted = {normal_header(c) for c in columns}
        for line, cells in self.preview:
            if line != self.header_line and wanted <= set(cells):
                return line
        return None


def _grid(rows: list[Sequence[object]], fill: object) -> tuple[np.ndarray, np.ndarray]:
    """Ragged rows as a rectangular object array, padded with `fill`, and each row's length.
    Vectorised: one flat array of all cells scattered into place."""
    lens = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    width = int(lens.max()) if len(rows) else 0
    grid = np.full((len(rows), width), fill, dtype=object)
    total = int(lens.sum())
    if total:
        flat = np.empty(total, dtype=object)
        flat[:] = list(chain.from_iterable(rows))
        r = np.repeat(np.arange(len(rows)), lens)
        c = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
        grid[r, c] = flat
    return grid, lens


def _decode(data: bytes, label: str, encoding: str | None) -> str:
    if encoding:
        try:
            return data.decode(encoding)
        except LookupError:
            raise ImportDataError(f"{label}: unknown encoding {encoding!r}") from None
        except UnicodeDecodeError:
            raise ImportDataError(f"{label}: not {encoding} text") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            raise ImportDataError(f"{label}: not UTF-16 text despite its byte-order mark") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        raise ImportDataError(f"{label}: neither UTF-8 nor Windows-1252 text; save the export as "
                              "CSV (UTF-8) or give `encoding:` in the mapping") from None


def _sniff_delimiter(text: str) -> str:
    """The separator that occurs most in the first non-blank line (the header): headers rarely hold
    separators, unlike values with decimal commas, which confuse csv.Sniffer."""
    first = next((line for line in text.split("\n") if line.strip()), "")
    counts = {d: first.count(d) for d in (";", ",", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _header(cells: Sequence[object]) -> list[str]:
    return ["" if c is None or (isinstance(c, float) and np.isnan(c)) else str(c).strip()
            for c in cells]


def _as_text(s: pd.Series) -> pd.Series:
    """A typed column (Excel, Parquet) as the text a CSV export would hold."""
    if s.dtype == object:
        inferred = s.infer_objects()
        if inferred.dtype != object:
            return _as_text(inferred)
        return s.astype("string")
    if pd.api.types.is_bool_dtype(s):
        return s.map({True: "true", False: "false"}).astype("string")
    if pd.api.types.is_datetime64_any_dtype(s):
        return s.dt.strftime("%Y-%m-%d").astype("string")
    if pd.api.types.is_float_dtype(s):
        finite = s[np.isfinite(s.to_numpy(dtype=float, na_value=np.nan))]
        if (finite == np.floor(finite)).all() and (finite.abs() < 2**53).all():
            return s.where(s.notna() & np.isfinite(s.astype(float))).astype("Int64").astype("string")
    return s.astype("string")


def _locate(label: str, lines: np.ndarray, nonblank: np.ndarray, header_row: int | None,
            footer_rows: int, unit: str) -> tuple[int, int, np.ndarray, int]:
    """Where the records are: the index of the header record (the first non-blank one, or the one
    on line `header_row`), the non-blank records above it (a title, ignored), and the body's
    non-blank mask with the last `footer_rows` non-blank records (totals) taken out."""
    if header_row is None:
        first = int(np.argmax(nonblank))
    else:
        at = np.flatnonzero(lines == header_row)
        if len(at) == 0:
            last = int(lines.max()) if len(lines) else 0
            raise ImportDataError(f"{label}: header_row {header_row}, but the {unit}s run from 1 "
                                  f"to {last}" if header_row > last else
                                  f"{label}: header_row {header_row} is inside a quoted value "
                                  "that spans lines; give the line where the header starts")
        first = int(at[0])
        if not nonblank[first]:
            raise ImportDataError(f"{label}: header_row {header_row} is a blank {unit}; give the "
                                  f"{unit} that holds the column names")
    above = int(nonblank[:first].sum())
    body = nonblank[first + 1:].copy()
    if footer_rows:
        kept = np.flatnonzero(body)
        if footer_rows > len(kept):
            raise ImportDataError(f"{label}: footer_rows {footer_rows}, but there are only "
                                  f"{len(kept)} {unit}s below the header")
        body[kept[len(kept) - footer_rows:]] = False
    return first, above, body, footer_rows


def _preview(cells: Sequence[Sequence[object]], lines: np.ndarray,
             nonblank: np.ndarray) -> list[tuple[int, list[str]]]:
    picked = np.flatnonzero(nonblank)[:PREVIEW_ROWS]
    return [(int(lines[i]), [normal_header(c) for c in _header(cells[i]) if c]) for i in picked]


def _finish(label: str, header: list[str], text: pd.DataFrame, rows: np.ndarray,
            shape_ok: np.ndarray, nonblank: np.ndarray, sha256: str,
            blank: int | None = None) -> SourceTable:
    """Empty cells to NA, blank records out (counted), columns positional."""
    text = text.astype("string")
    text.columns = range(len(text.columns))
    if len(text.columns):
        text = text.mask(text.apply(lambda c: c.str.strip()).fillna("") == "")
    keep = text[nonblank].reset_index(drop=True)
    return SourceTable(label, header, keep, rows[nonblank], shape_ok[nonblank],
                       int((~nonblank).sum()) if blank is None else blank, sha256)


def _read_csv(data: bytes, label: str, delimiter: str | None, encoding: str | None,
              sha256: str, header_row: int | None = None, footer_rows: int = 0) -> SourceTable:
    text = _decode(data, label, encoding)
    if "\x00" in text:
        raise ImportDataError(f"{label}: contains NUL bytes, so it is no text file (is it a "
                              "workbook or Parquet file with the wrong extension?)")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ImportDataError(f"{label}: the file is empty (no header line)")
    delim = delimiter or _sniff_delimiter(text)
    limit = csv.field_size_limit()
    try:
        # Long free-text cells (in columns the mapping leaves out) must not stop the import.
        csv.field_size_limit(FIELD_SIZE_LIMIT)
        # csv.reader iterates in C; list() gives every record (a blank line is []).
        records = list(csv.reader(io.StringIO(text), delimiter=delim, strict=False))
    except csv.Error as exc:
        raise ImportDataError(f"{label}: cannot be read as CSV ({exc})") from None
    finally:
        csv.field_size_limit(limit)
    grid, lens = _grid(records, "")
    n = len(records)
    flat = pd.Series(list(chain.from_iterable(records)), dtype="string")
    owner = np.repeat(np.arange(n), lens)
    # Line where each record starts: one line per record plus the line breaks inside quoted
    # values of the records before it.
    breaks = np.bincount(owner, weights=flat.str.count("\n").to_numpy(dtype=float),
                         minlength=n).astype(np.int64)
    starts = 1 + np.arange(n) + np.concatenate([[0], np.cumsum(breaks)[:-1]])
    # A record is blank when every cell is empty, however many separators it has.
    nonblank = np.bincount(owner, weights=(flat.str.strip() != "").to_numpy(dtype=float),
                           minlength=n) > 0
    if not nonblank.any():
        raise ImportDataError(f"{label}: the file is empty (no header line)")
    first, above, kept, footer = _locate(label, starts, nonblank, header_row, footer_rows, "line")
    header = _header(records[first])
    width = len(header)
    body = slice(first + 1, None)
    cells = pd.DataFrame(grid[body, :width], dtype=object)
    if cells.shape[1] < width:
        cells = cells.reindex(columns=range(width), fill_value="")
    out = _finish(label, header, cells, starts[body], lens[body] == width, kept, sha256,
                  int((~nonblank[body]).sum()))
    out.header_line, out.above, out.footer = int(starts[first]), above, footer
    out.preview = _preview(records, starts, nonblank)
    return out


def _read_excel(data: bytes, label: str, sheet: str | None, table: str,
                sha256: str, header_row: int | None = None, footer_rows: int = 0) -> SourceTable:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise ImportDataError(f"{label}: cannot be read as an Excel workbook "
                              f"({type(exc).__name__})") from None
    try:
        names = list(wb.sheetnames)
        by_name = {n.casefold(): n for n in names}
        if sheet is not None:
            chosen = by_name.get(sheet.strip().casefold())
            if chosen is None:
                raise ImportDataError(f"{label}: has no sheet {sheet!r} (sheets: "
                                      f"{', '.join(names)})")
        elif table.casefold() in by_name:
            chosen = by_name[table.casefold()]
        elif len(names) == 1:
            chosen = names[0]
        else:
            raise ImportDataError(f"{label}: has sheets {', '.join(names)}; name one in the "
                                  f"mapping (source: {label}#SHEET), or call a sheet {table}")
        try:
            records = list(wb[chosen].iter_rows(min_row=1, values_only=True))
        except Exception as exc:
            raise ImportDataError(f"{label}#{chosen}: cannot be read ({type(exc).__name__})") \
                from None
    finally:
        wb.close()
    label = f"{label}#{chosen}"
    grid, _ = _grid(records, None)
    # Typed cells (numbers, dates) to text column by column, as a CSV export would show them.
    text = pd.DataFrame(grid, dtype=object).apply(_as_text) if grid.shape[1] else \
        pd.DataFrame(index=range(len(records)))
    filled = (text.apply(lambda c: c.str.strip()).fillna("") != "") if grid.shape[1] else text
    nonblank = filled.any(axis=1).to_numpy() if grid.shape[1] else \
        np.zeros(len(records), dtype=bool)
    if not nonblank.any():
        raise ImportDataError(f"{label}: the sheet is empty (no header row)")
    lines = np.arange(1, len(records) + 1)
    first, above, kept, footer = _locate(label, lines, nonblank, header_row, footer_rows, "row")
    header = _header(grid[first])
    body = slice(first + 1, None)
    rows = lines[body]
    out = _finish(label, header, text.iloc[body], rows, np.ones(len(rows), dtype=bool), kept,
                  sha256, int((~nonblank[body]).sum()))
    out.header_line, out.above, out.footer = int(lines[first]), above, footer
    out.preview = _preview(grid, lines, nonblank)
    return out


def _read_parquet(data: bytes, label: str, sha256: str, footer_rows: int = 0) -> SourceTable:
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises many kinds for a damaged file
        raise ImportDataError(f"{label}: cannot be read as a Parquet file "
                              f"({type(exc).__name__})") from None
    header = [str(c).strip() for c in frame.columns]
    cells = frame.reset_index(drop=True)
    cells.columns = range(len(cells.columns))
    text = cells.apply(_as_text) if len(cells.columns) else cells
    n = len(cells)
    nonblank = (text.apply(lambda c: c.str.strip()).fillna("") != "").any(axis=1).to_numpy() \
        if len(cells.columns) else np.zeros(n, dtype=bool)
    kept = nonblank.copy()
    if footer_rows:
        rows = np.flatnonzero(nonblank)
        if footer_rows > len(rows):
            raise ImportDataError(f"{label}: footer_rows {footer_rows}, but the file has only "
                                  f"{len(rows)} records")
        kept[rows[len(rows) - footer_rows:]] = False
    out = _finish(label, header, text, np.arange(1, n + 1), np.ones(n, dtype=bool), kept,
                  sha256, int((~nonblank).sum()))
    out.footer = footer_rows
    return out


def read_source(path: Path, sheet: str | None = None, *, table: str = "",
                delimiter: str | None = None, encoding: str | None = None,
                header_row: int | None = None, footer_rows: int = 0) -> SourceTable:
    """Read one export as text, by its extension: CSV (.csv, .txt, .tsv), Excel (.xlsx, .xlsm) or
    Parquet (.parquet, .pq). `table` picks a workbook's sheet when `sheet` is not given;
    `header_row` (1-based line or row) is where the column names are, the rows above it are
    ignored (a title) and counted; the last `footer_rows` non-blank rows (totals) are skipped."""
    label = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportDataError(f"{path}: cannot read the file ({exc.strerror})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(data, label, sheet, table, sha256, header_row, footer_rows)
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(data, label, sha256, footer_rows)
    if suffix in CSV_SUFFIXES:
        return _read_csv(data, label, delimiter, encoding, sha256, header_row, footer_rows)
    if suffix == ".xls":
        raise ImportDataError(f"{label}: the old Excel format (.xls) is not read; save the "
                              "workbook as .xlsx")
    raise ImportDataError(f"{label}: unknown file type {suffix or '(none)'}; give CSV (.csv), "
                          "Excel (.xlsx) or Parquet (.parquet)")


# --------------------------------------------------------------------------------------------------
# Conversions: source text to the text the validator expects (all vectorised)

_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_ISO_DATE = rf"^(?P<year>\d{{4}})[-/.](?P<month>\d{{1,2}})[-/.](?P<day>\d{{1,2}}){_TIME}$"
_DUTCH_DATE = rf"^(?P<day>\d{{1,2}})[-/.](?P<month>\d{{1,2}})[-/.](?P<year>\d{{4}}|\d{{2}}){_TIME}$"


def convert_dates(text: pd.Series) -> pd.Series:
    """Dutch (dd-mm-jjjj, d-m-jj, dd/mm/jjjj, dd.mm.jjjj) and ISO dates to YYYY-MM-DD; what cannot
    be read (or is no calendar date) stays as given, for validation to quarantine."""
    text = text.astype("string")
    parts = text.str.extract(_ISO_DATE).fillna(text.str.extract(_DUTCH_DATE))
    year, month, day = (pd.to_numeric(parts[c], errors="coerce").astype("float64")
                        for c in ("year", "month", "day"))
    short = (parts["year"].str.len() == 2).fillna(False).to_numpy(dtype=bool)
    year = year.mask(short, year + np.where(year.fillna(0) < 70, 2000, 1900))
    ok = (year.between(1900, 2099) & month.between(1, 12) & day.between(1, 31)).to_numpy()
    parsed = pd.Series(pd.NaT, index=text.index, dtype="datetime64[s]")
    if ok.any():
        # Assembling from parts rejects impossible dates (31-02) as NaT.
        parsed[ok] = pd.to_datetime(pd.DataFrame({"year": year[ok], "month": month[ok],
                                                  "day": day[ok]}), errors="coerce")
    return parsed.dt.strftime("%Y-%m-%d").astype("string").where(parsed.notna(), text)


def _replace_where(text: pd.Series, needs: pd.Series, pattern: str, repl: str) -> pd.Series:
    """A regex replacement on the values that need it only: replacements with group references
    run in Python per value, so the (usually many) values already right are left alone."""
    text = text.astype("string")
    needs = needs.fillna(False).to_numpy(dtype=bool)
    if not needs.any():
        return text
    out = text.copy()
    out[needs] = text[needs].str.replace(pattern, repl, regex=True)
    return out


def convert_numbers(text: pd.Series) -> pd.Series:
    """A decimal comma to a point (`3,0` -> `3.0`); thousands separators are left for validation
    to refuse, as `1.234` is ambiguous."""
    text = text.astype("string")
    return _replace_where(text, text.str.contains(",", regex=False),
                          r"^([+-]?\d+),(\d+)$", r"\1.\2")


def convert_school_years(text: pd.Series) -> pd.Series:
    """`2014/2015`, `2014 - 2015` and `14-15` to `2014-2015`."""
    text = text.astype("string")
    text = _replace_where(text, ~text.str.fullmatch(r"\d{4}-\d{4}"),
                          r"^(\d{4})\s*[-/]\s*(\d{4})$", r"\1-\2")
    return _replace_where(text, text.str.len() < 9,
                          r"^(\d{2})\s*[-/]\s*(\d{2})$", r"20\1-20\2")


def convert_municipality_codes(text: pd.Series) -> pd.Series:
    """CBS municipality numbers (`321`, `0321`, `gm0321`) to `GM0321`."""
    text = text.astype("string").str.upper()
    number = text.str.fullmatch(r"\d{1,4}").fillna(False)
    return text.mask(number, "GM" + text.str.zfill(4))


def convert_categories(text: pd.Series, allowed: Iterable[str]) -> pd.Series:
    """Match allowed values ignoring case (`HAVO` -> `havo`); others stay for validation."""
    lookup = {a.casefold(): a for a in allowed}
    text = text.astype("string")
    return text.str.casefold().map(lookup).astype("string").fillna(text)


def convert_field(text: pd.Series, f: Field) -> pd.Series:
    if f.kind == "date":
        return convert_dates(text)
    if f.kind == "int":
        return convert_numbers(text)
    if f.kind == "school_year":
        return convert_school_years(text)
    if f.kind == "category":
        return convert_categories(text, f.allowed or ())
    if f.kind == "bool":
        return text.str.lower()
    if f.kind == "code" and f.pattern == MUNICIPALITY_CODE:
        return convert_municipality_codes(text)
    return text


def clean_text(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip()
    return s.mask(s == "")
