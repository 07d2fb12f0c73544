"""Import exports from school administrations and youth-care providers into the project's tables.

Exports are not tidy: semicolons, Windows-1252, decimal commas, Dutch dates, Excel sheets, Parquet,
local codes, and columns with personal data nobody needs. A mapping file says which source column
feeds which field of the data model (`evaluation.data.datamodel`) and how source codes translate; the
importer reads the sources as text, converts the values to what the validator expects, pseudonymises
identifiers, validates, and writes the accepted rows as a project data set. Every row read ends up
either accepted or in a quarantine file with its reasons; the counts go to `import_report.json`.

Mapping format (YAML; every scalar is read as text, so codes such as `01` keep their zero)::

    tables:                              # one entry per project table supplied
      enrolments:
        source: leerlingen.csv           # a file name given on the command line; a list of names
                                         # appends several files; `file.xlsx#Blad1` picks a sheet
        sheet: Blad1                     # optional, the same as `#Blad1` for every source
        delimiter: ";"                   # optional; by default sniffed from the header line
        encoding: cp1252                 # optional; by default UTF-8 (with or without BOM),
                                         # else Windows-1252
        fields:                          # project field: source column, or a spec:
          student_id: {column: leerlingnummer, pseudonymise: true}
          school_id: BRIN                # short for {column: BRIN}
          school_year: {value: 2014-2015}    # the same value for every row
          track: {column: onderwijstype, codes: {VMBO-B: vmbo, HAVO: havo}}

Field spec keys: `column` (a source header; matched ignoring case and repeated spaces) or `value`
(a constant), `codes` (source value -> project value, matched ignoring case; a non-empty source value
without a code is an error), `pseudonymise` (true/false). Identifier fields (student_id, report_id,
trajectory_id, referral_id, respondent_id) are always pseudonymised; `pseudonymise: true` is needed
in addition on a column that holds citizen service numbers (BSN), which is refused otherwise.

Mapping errors (nothing is written): unknown table or field, a required field not mapped, a mapped
column missing from the source, an unknown code, a column of BSNs not marked `pseudonymise: true`
(whatever its header, mapped or not), a column whose header names personal data (naam, adres,
straat, postcode, geboortedatum, telefoon, e-mail, opmerking, toelichting, notitie, ...) mapped to
any field, a table that refers to a table the mapping does not supply. Two exceptions keep school
data importable: headers that also name an institution (`schoolnaam`, `naam vestiging`) are not
personal, and `schools.name` may come from a plain `naam` column (a person's `achternaam` or
`voornaam` is refused there too).

Conversions before validation: surrounding spaces removed; dates dd-mm-jjjj, d-m-jj, dd/mm/jjjj,
dd.mm.jjjj and ISO (a time part is ignored) to YYYY-MM-DD (two-digit years 00-69 are 20xx, 70-99
19xx; a date that cannot be read stays as given, so validation quarantines it as `bad_date`); a
decimal comma in numbers to a point; school years 2014/2015 and 14-15 to 2014-2015; municipality
codes 321 or 0321 to GM0321; categories matched ignoring case; booleans by codes or ja/nee/true/false.

Output (`write_import`): the accepted rows as the project's CSV files plus data dictionary (tables
not supplied are written empty), `quarantine/<table>.csv` per table (`_file`, `_row`, `_reasons`,
then the row's source values; identifiers as pseudonyms, never a BSN) and `import_report.json`
(created, mapping and source hashes, key fingerprint, per table read/accepted/quarantined/blank rows,
reasons with row counts, ignored columns by header). No value of the data appears in the report.
`_row` is the line of the record in a CSV file (header = line 1, blank lines and line breaks inside
quoted values counted), the row in an Excel sheet, the 1-based record number in a Parquet file.
Blank lines hold no record and are counted apart (`blank_rows`); a CSV record with more or fewer
fields than the header is quarantined as `field_count` (its values cannot be placed safely).
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from evaluation.data.datamodel import MUNICIPALITY_CODE, TABLES, Field, Table
from evaluation.data.reading import write_tables
from evaluation.data.pseudonymisation import (
    BSN_COLUMN_SHARE,
    PseudonymisationKeyError,
    is_bsn,
    key_fingerprint,
    load_key,
    pseudonymise,
)
from evaluation.data.validation import FALSE, REASONS, TRUE, validate

REPORT_FILE = "import_report.json"
QUARANTINE_DIR = "quarantine"

# Identifier fields: always pseudonymised, each with its own prefix (the prefix is hashed too, so
# equal source numbers in different roles do not link up).
IDENTIFIERS = {"student_id": "stu_", "report_id": "rep_", "trajectory_id": "trj_",
               "referral_id": "ref_", "respondent_id": "rsp_"}
PSEUDONYMISABLE_KINDS = ("id", "code", "text")

# Headers that name personal data no analysis needs; refused as the source of any field. Matched
# as substrings of the lower-cased header (so `achternaam`, `telefoonnummer` and `emailadres` are
# caught), except where the header also names an institution (`schoolnaam`, `naam vestiging`).
PERSONAL_WORDS = ("naam", "name", "adres", "address", "straat", "street", "postcode", "zip",
                  "geboorte", "birth", "telefoon", "phone", "mobiel", "email", "e-mail",
                  "huisnummer", "opmerking", "toelichting", "notitie", "comment", "remark")
# Words for a person's name in particular: still refused for schools.name, the one field that
# holds a name (of a school location, public), whose export header is often just `naam`.
PERSON_NAME_WORDS = ("achternaam", "voornaam", "roepnaam", "tussenvoegsel", "surname",
                     "first name", "firstname", "last name", "lastname")
NAME_FIELDS = {("schools", "name")}
INSTITUTION_WORDS = ("school", "vestiging", "instelling", "institution")

IMPORT_REASONS = {"field_count": "row has a different number of fields than the header"}
ALL_REASONS = {**REASONS, **IMPORT_REASONS}
BSN_MASK = "[removed: BSN]"

TABLE_KEYS = {"source", "sheet", "fields", "delimiter", "encoding"}
FIELD_KEYS = {"column", "value", "codes", "pseudonymise"}
YES = {"true", "yes", "ja", "1"}
NO = {"false", "no", "nee", "0"}
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
CSV_SUFFIXES = (".csv", ".txt", ".tsv")
FIELD_SIZE_LIMIT = 2**30


class ImportDataError(ValueError):
    """The sources or the mapping cannot be imported; nothing was written. The message lists every
    problem found, each naming the file and column (and, for unknown codes, example values)."""

    def __init__(self, problems: str | Sequence[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------------------------------
# The mapping


@dataclass(frozen=True)
class FieldMap:
    """Where one project field comes from."""

    field: str
    column: str | None = None
    value: str | None = None
    codes: dict[str, str] | None = None  # casefolded source value -> project value
    pseudonymise: bool = False
    explicit_pseudonymise: bool = False  # `pseudonymise: true` written in the mapping

    @property
    def prefix(self) -> str:
        return IDENTIFIERS.get(self.field, self.field.split("_")[0] + "_")


@dataclass(frozen=True)
class SourceRef:
    """A source file by name, and the sheet for a workbook."""

    name: str
    sheet: str | None = None


@dataclass(frozen=True)
class TableMap:
    table: str
    sources: tuple[SourceRef, ...]
    fields: dict[str, FieldMap]
    delimiter: str | None = None
    encoding: str | None = None


@dataclass(frozen=True)
class Mapping:
    tables: dict[str, TableMap]
    origin: str = "mapping"
    sha256: str = ""


def _norm_header(name: object) -> str:
    return " ".join(str(name).split()).casefold()


def is_personal_header(header: str, table: str = "", field: str = "") -> bool:
    """Whether a header names personal data (name, address, birth date, contact, free text) that
    may not feed `table.field`."""
    h = _norm_header(header)
    if any(w in h for w in PERSON_NAME_WORDS):
        return True
    if any(w in h for w in INSTITUTION_WORDS):
        return False
    words = PERSONAL_WORDS
    if (table, field) in NAME_FIELDS:
        words = tuple(w for w in words if w not in ("naam", "name"))
    return any(w in h for w in words)


def _flag(value: object, where: str, errors: list[str]) -> bool:
    text = str(value).strip().lower()
    if text in YES:
        return True
    if text not in NO:
        errors.append(f"{where}: pseudonymise must be true or false, not {value!r}")
    return False


def _check_code_target(target: str, f: Field, where: str, errors: list[str]) -> None:
    if f.kind == "category" and target not in (f.allowed or ()):
        errors.append(f"{where}: code target {target!r} is not a value of {f.name} "
                      f"({', '.join(f.allowed or ())})")
    elif f.kind == "bool" and target.lower() not in TRUE | FALSE:
        errors.append(f"{where}: code target {target!r} is not true or false")
    elif f.pattern and f.kind == "code" and not re.fullmatch(f.pattern, target):
        errors.append(f"{where}: code target {target!r} does not have the format of {f.name}")


def _parse_field(name: str, spec: object, table: Table, origin: str,
                 errors: list[str]) -> FieldMap | None:
    where = f"{origin}: tables.{table.name}.fields.{name}"
    if name not in table.columns:
        errors.append(f"{where}: table {table.name} has no field {name!r} (its fields: "
                      f"{', '.join(table.columns)})")
        return None
    f = table.field(name)
    if isinstance(spec, str):
        spec = {"column": spec}
    if not isinstance(spec, dict):
        errors.append(f"{where}: give a column name or {{column: ..., codes: ..., "
                      "pseudonymise: ...}")
        return None
    unknown = sorted(set(spec) - FIELD_KEYS)
    if unknown:
        errors.append(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: "
                      f"{', '.join(sorted(FIELD_KEYS))})")
    column, value = spec.get("column"), spec.get("value")
    if (column is None) == (value is None):
        errors.append(f"{where}: give exactly one of column (a source header) or value (a "
                      "constant)")
        return None
    if column is not None and not isinstance(column, str) or value is not None \
            and not isinstance(value, str):
        errors.append(f"{where}: column and value must be text")
        return None
    if column is not None and is_personal_header(column, table.name, name):
        errors.append(f"{where}: column {column!r} holds personal data (names, addresses, birth "
                      "dates, contact details or free text), which the project does not take in; "
                      "leave it unmapped")
    explicit = _flag(spec["pseudonymise"], where, errors) if "pseudonymise" in spec else None
    pseudo = name in IDENTIFIERS or bool(explicit)
    if name in IDENTIFIERS and explicit is False:
        errors.append(f"{where}: {name} is an identifier and is always pseudonymised; remove "
                      "`pseudonymise: false`")
    if pseudo and f.kind not in PSEUDONYMISABLE_KINDS:
        errors.append(f"{where}: a {f.kind} field cannot be pseudonymised")
    codes = None
    if "codes" in spec:
        raw = spec["codes"]
        if pseudo:
            errors.append(f"{where}: a pseudonymised field takes no codes")
        elif not isinstance(raw, dict) or not all(isinstance(v, str) for v in raw.values()):
            errors.append(f"{where}: codes must map source values to project values")
        else:
            codes = {}
            for src, target in raw.items():
                key = str(src).strip().casefold()
                if key in codes and codes[key] != target.strip():
                    errors.append(f"{where}: code {src!r} is given twice with different values")
                codes[key] = target.strip()
                _check_code_target(target.strip(), f, where, errors)
    return FieldMap(field=name, column=column.strip() if column else None, value=value,
                    codes=codes, pseudonymise=pseudo, explicit_pseudonymise=bool(explicit))


def _parse_sources(spec: dict, where: str, errors: list[str]) -> tuple[SourceRef, ...]:
    raw = spec.get("source")
    names = [raw] if isinstance(raw, str) else raw
    if not names or not isinstance(names, list) or not all(isinstance(n, str) and n.strip()
                                                           for n in names):
        errors.append(f"{where}.source: give a file name (or a list of them)")
        return ()
    sheet = spec.get("sheet")
    if sheet is not None and not isinstance(sheet, str):
        errors.append(f"{where}.sheet: give a sheet name")
        sheet = None
    refs = []
    for n in names:
        name, _, named_sheet = n.strip().partition("#")
        refs.append(SourceRef(name.strip(), named_sheet.strip() or sheet))
    return tuple(refs)


def parse_mapping(data: object, origin: str = "mapping", sha256: str = "") -> Mapping:
    """Check a mapping (as loaded from YAML) against the data model; raise ImportDataError listing
    every problem, so that a user fixes the mapping in one go."""
    errors: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict) \
            or not data["tables"]:
        raise ImportDataError(f"{origin}: expected `tables:` with one entry per project table "
                              f"({', '.join(TABLES)})")
    extra = sorted(set(data) - {"tables"})
    if extra:
        errors.append(f"{origin}: unknown top-level key(s) {', '.join(extra)}")
    tables: dict[str, TableMap] = {}
    for tname, spec in data["tables"].items():
        where = f"{origin}: tables.{tname}"
        if tname not in TABLES:
            errors.append(f"{where}: unknown table (tables: {', '.join(TABLES)})")
            continue
        if not isinstance(spec, dict):
            errors.append(f"{where}: expected source and fields")
            continue
        unknown = sorted(set(spec) - TABLE_KEYS)
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: "
                          f"{', '.join(sorted(TABLE_KEYS))})")
        table = TABLES[tname]
        sources = _parse_sources(spec, where, errors)
        fields_spec = spec.get("fields")
        if not isinstance(fields_spec, dict) or not fields_spec:
            errors.append(f"{where}.fields: map the table's fields ({', '.join(table.columns)})")
            continue
        fields = {}
        for fname, fspec in fields_spec.items():
            fm = _parse_field(str(fname), fspec, table, origin, errors)
            if fm is not None:
                fields[fm.field] = fm
        names = ", ".join(s.name for s in sources)
        for f in table.fields:
            if f.required and f.name not in fields and f.name not in fields_spec:
                errors.append(f"{where}: required field {f.name!r} is not mapped (source "
                              f"{names}); add `{f.name}: {{column: ...}}` under fields")
        delimiter = spec.get("delimiter")
        if delimiter is not None and (not isinstance(delimiter, str) or len(delimiter) != 1):
            errors.append(f"{where}.delimiter: give one character, such as ';'")
            delimiter = None
        encoding = spec.get("encoding")
        if encoding is not None and not isinstance(encoding, str):
            errors.append(f"{where}.encoding: give an encoding name, such as cp1252")
            encoding = None
        tables[tname] = TableMap(tname, sources, fields, delimiter, encoding)
    for tname, tmap in tables.items():
        for fk in TABLES[tname].foreign_keys:
            if fk.fields[0] in tmap.fields and fk.ref_table not in tables \
                    and fk.ref_table not in data["tables"]:
                errors.append(f"{origin}: tables.{tname}: {fk.fields[0]} refers to table "
                              f"{fk.ref_table}, which the mapping does not supply; every row "
                              f"would be rejected: add {fk.ref_table} to the mapping")
    if errors:
        raise ImportDataError(errors)
    return Mapping(tables, origin, sha256)


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file. YAML's BaseLoader keeps every scalar as text, so `01`,
    `ja` and `no` stay what the user wrote."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportDataError(f"{path}: cannot read the mapping file ({exc.strerror})") from None
    try:
        # BaseLoader builds only str, list and dict: safe, and no YAML 1.1 guessing of types.
        loaded = yaml.load(data.decode("utf-8-sig"), Loader=yaml.BaseLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ImportDataError(f"{path}: not a valid YAML file: {exc}") from None
    return parse_mapping(loaded, path.name, hashlib.sha256(data).hexdigest())


# --------------------------------------------------------------------------------------------------
# Reading sources as text


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


def _finish(label: str, header: list[str], text: pd.DataFrame, rows: np.ndarray,
            shape_ok: np.ndarray, nonblank: np.ndarray, sha256: str) -> SourceTable:
    """Empty cells to NA, blank records out (counted), columns positional."""
    text = text.astype("string")
    text.columns = range(len(text.columns))
    if len(text.columns):
        text = text.mask(text.apply(lambda c: c.str.strip()).fillna("") == "")
    keep = text[nonblank].reset_index(drop=True)
    return SourceTable(label, header, keep, rows[nonblank], shape_ok[nonblank],
                       int((~nonblank).sum()), sha256)


def _read_csv(data: bytes, label: str, delimiter: str | None, encoding: str | None,
              sha256: str) -> SourceTable:
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
    first = int(np.argmax(nonblank))
    header = _header(records[first])
    width = len(header)
    body = slice(first + 1, None)
    cells = pd.DataFrame(grid[body, :width], dtype=object)
    if cells.shape[1] < width:
        cells = cells.reindex(columns=range(width), fill_value="")
    return _finish(label, header, cells, starts[body], lens[body] == width, nonblank[body],
                   sha256)


def _read_excel(data: bytes, label: str, sheet: str | None, table: str,
                sha256: str) -> SourceTable:
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
    first = int(np.argmax(nonblank))
    header = _header(grid[first])
    body = slice(first + 1, None)
    rows = np.arange(1, len(records) + 1)[body]
    return _finish(label, header, text.iloc[body], rows, np.ones(len(rows), dtype=bool),
                   nonblank[body], sha256)


def _read_parquet(data: bytes, label: str, sha256: str) -> SourceTable:
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
    return _finish(label, header, text, np.arange(1, n + 1), np.ones(n, dtype=bool), nonblank,
                   sha256)


def read_source(path: Path, sheet: str | None = None, *, table: str = "",
                delimiter: str | None = None, encoding: str | None = None) -> SourceTable:
    """Read one export as text, by its extension: CSV (.csv, .txt, .tsv), Excel (.xlsx, .xlsm) or
    Parquet (.parquet, .pq). `table` picks a workbook's sheet when `sheet` is not given."""
    label = path.name
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportDataError(f"{path}: cannot read the file ({exc.strerror})") from None
    sha256 = hashlib.sha256(data).hexdigest()
    suffix = path.suffix.lower()
    if suffix in EXCEL_SUFFIXES:
        return _read_excel(data, label, sheet, table, sha256)
    if suffix in PARQUET_SUFFIXES:
        return _read_parquet(data, label, sha256)
    if suffix in CSV_SUFFIXES:
        return _read_csv(data, label, delimiter, encoding, sha256)
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


def _convert(text: pd.Series, f: Field) -> pd.Series:
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


def _clean(s: pd.Series) -> pd.Series:
    s = s.astype("string").str.strip()
    return s.mask(s == "")


# --------------------------------------------------------------------------------------------------
# The import


@dataclass
class ImportResult:
    """Accepted typed tables, quarantined source rows with reasons, and the report."""

    tables: dict[str, pd.DataFrame]
    quarantine: dict[str, pd.DataFrame]
    report: dict
    sources: list[Path] = field(default_factory=list)

    def counts(self) -> pd.DataFrame:
        """read, accepted and quarantined per table; read = accepted + quarantined."""
        return pd.DataFrame([
            {"table": name, "supplied": t["supplied"], "read": t["read"],
             "accepted": t["accepted"], "quarantined": t["quarantined"]}
            for name, t in self.report["tables"].items()
        ])


def _mask_header(h: str) -> str:
    """A header for messages: a header that is itself a BSN (a sheet without header row) is not
    shown."""
    return BSN_MASK if is_bsn([h])[0] else h


def _resolve_sources(sources: Sequence[Path], mapping: Mapping) -> dict[str, Path]:
    by_name: dict[str, list[Path]] = {}
    for p in sources:
        by_name.setdefault(p.name, []).append(p)
    errors = [f"sources: {len(ps)} files are called {name}; rename them so the mapping can tell "
              "them apart" for name, ps in by_name.items() if len({q.resolve() for q in ps}) > 1]
    wanted = {ref.name for t in mapping.tables.values() for ref in t.sources}
    for name in sorted(wanted - set(by_name)):
        errors.append(f"{mapping.origin}: source {name} is not among the given files "
                      f"({', '.join(sorted(by_name)) or 'none'})")
    if errors:
        raise ImportDataError(errors)
    return {name: ps[0] for name, ps in by_name.items()}


def _column_positions(src: SourceTable, tmap: TableMap, errors: list[str]) -> dict[str, int]:
    normal = [_norm_header(h) for h in src.headers]
    positions = {}
    for fm in tmap.fields.values():
        if fm.column is None:
            continue
        hits = [i for i, h in enumerate(normal) if h == _norm_header(fm.column)]
        if not hits:
            shown = ", ".join(repr(_mask_header(h)) for h in src.headers if h) or "none"
            errors.append(f"{src.label}: column {fm.column!r} (for {tmap.table}.{fm.field}) not "
                          f"found; the columns are {shown}")
        elif len(hits) > 1:
            errors.append(f"{src.label}: column {fm.column!r} (for {tmap.table}.{fm.field}) occurs "
                          f"{len(hits)} times; make the headers unique")
        else:
            positions[fm.field] = hits[0]
    return positions


def bsn_columns(values: pd.DataFrame, share: float = BSN_COLUMN_SHARE) -> list[int]:
    """Positions of the columns whose non-empty values are BSNs for at least `share`: the rule of
    `looks_like_bsn_column`, for all columns in one vectorised pass."""
    n, k = values.shape
    if n == 0 or k == 0:
        return []
    flat = pd.Series(values.to_numpy(dtype=object).ravel(order="F"), dtype="string").str.strip()
    column = np.repeat(np.arange(k), n)
    filled = (flat.notna() & (flat != "")).to_numpy(dtype=bool)
    hits = np.zeros(len(flat), dtype=bool)
    hits[filled] = is_bsn(flat[filled])
    counts = np.bincount(column[filled], minlength=k)
    found = np.bincount(column, weights=hits, minlength=k)
    return [int(i) for i in np.flatnonzero((counts > 0) & (found >= share * counts))]


def _check_bsn(src: SourceTable, tmaps: list[TableMap], errors: list[str]) -> None:
    """Refuse any column of BSNs, mapped or not, unless every table that maps it marks it
    `pseudonymise: true`."""
    normal = [_norm_header(h) for h in src.headers]
    marked: set[str] = set()
    unmarked: set[str] = set()
    for tmap in tmaps:
        for fm in tmap.fields.values():
            if fm.column is not None:
                (marked if fm.explicit_pseudonymise else unmarked).add(_norm_header(fm.column))
    for i in bsn_columns(src.values):
        if normal[i] in marked and normal[i] not in unmarked:
            continue
        header = _mask_header(src.headers[i]) or f"number {i + 1} (no header)"
        errors.append(
            f"{src.label}: column {header!r} holds citizen service numbers (BSN), which may "
            "not enter the project; remove the column from the export, or, if it is the only "
            "key that links the files, map it with `pseudonymise: true`")


def _unknown_codes(text: pd.Series, mapped: pd.Series, files: pd.Series, fm: FieldMap,
                   tmap: TableMap, errors: list[str]) -> None:
    unknown = text.notna() & mapped.isna()
    if not unknown.any():
        return
    frame = pd.DataFrame({"file": files[unknown], "value": text[unknown]})
    for file, values in frame.groupby("file", sort=False)["value"]:
        examples = values.drop_duplicates().head(5)
        errors.append(
            f"{file}: column {fm.column or '(value)'!r} (for {tmap.table}.{fm.field}) has values "
            f"without a code in the mapping, in {len(values)} row(s), for example "
            f"{', '.join(repr(v) for v in examples)}; add them under codes")


@dataclass
class _Prepared:
    """One table's source rows: raw source text per field, its converted form, and provenance."""

    raw: pd.DataFrame
    converted: pd.DataFrame
    meta: pd.DataFrame
    shape_ok: np.ndarray
    blank: int


def _prepare(tmap: TableMap, srcs: list[SourceTable], key: bytes | None,
             errors: list[str]) -> _Prepared:
    """Gather a table's fields from its sources (source text kept for the quarantine), apply codes
    and conversions, and pseudonymise; mapping problems go to `errors`."""
    table = TABLES[tmap.table]
    parts, metas, shapes = [], [], []
    for src in srcs:
        pos = _column_positions(src, tmap, errors)
        n = len(src.values)
        cols = {}
        for f in table.fields:
            fm = tmap.fields.get(f.name)
            if fm is None:
                cols[f.name] = pd.Series(pd.NA, index=range(n), dtype="string")
            elif fm.column is None:
                cols[f.name] = pd.Series(fm.value, index=range(n), dtype="string")
            else:
                cols[f.name] = (src.values[pos[f.name]] if f.name in pos
                                else pd.Series(pd.NA, index=range(n), dtype="string"))
        parts.append(pd.DataFrame(cols, index=range(n)))
        metas.append(pd.DataFrame({"_file": pd.Series(src.label, index=range(n), dtype="string"),
                                   "_row": src.rows.astype(np.int64)}))
        shapes.append(src.shape_ok)
    raw = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=table.columns)
    raw = raw.astype("string")
    meta = pd.concat(metas, ignore_index=True)
    converted = {}
    for f in table.fields:
        text = _clean(raw[f.name])
        fm = tmap.fields.get(f.name)
        if fm is not None and fm.codes is not None:
            mapped = text.str.casefold().map(fm.codes).astype("string")
            _unknown_codes(text, mapped, meta["_file"], fm, tmap, errors)
            text = mapped
        text = _convert(text, f)
        if fm is not None and fm.pseudonymise and key is not None:
            text = pseudonymise(text, key, fm.prefix)
        converted[f.name] = text
    return _Prepared(raw, pd.DataFrame(converted, index=raw.index), meta,
                     np.concatenate(shapes) if shapes else np.zeros(0, dtype=bool),
                     sum(s.blank for s in srcs))


def _quarantine(prep: _Prepared, tmap: TableMap | None, table: Table,
                bad: np.ndarray, reasons: pd.Series) -> pd.DataFrame:
    """The quarantined source rows: where they came from, why, and their source values, with
    pseudonyms for pseudonymised fields and any single BSN masked."""
    columns = ["_file", "_row", "_reasons", *table.columns]
    if tmap is None or not bad.any():
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "_row" else "string")
                             for c in columns})
    shown = prep.raw.loc[bad].copy()
    for f in table.fields:
        fm = tmap.fields.get(f.name)
        if fm is not None and fm.pseudonymise:
            shown[f.name] = prep.converted.loc[bad, f.name]
        else:
            shown[f.name] = shown[f.name].mask(is_bsn(shown[f.name].fillna("")), BSN_MASK)
    out = pd.concat([prep.meta.loc[bad], shown], axis=1)
    out["_reasons"] = reasons.reindex(out.index).astype("string")
    return out[columns].reset_index(drop=True)


def _reasons_text(problems: pd.DataFrame) -> pd.Series:
    """`field: reason; field: reason` per row position, for the quarantine file."""
    if problems.empty:
        return pd.Series(dtype="string")
    text = (problems["field"] + ": " + problems["reason"]).rename("text")
    frame = pd.DataFrame({"pos": problems["pos"], "text": text}).drop_duplicates()
    # One string join per quarantined row (there is no vectorised string aggregation).
    return frame.sort_values(["pos", "text"]).groupby("pos")["text"].agg("; ".join)


def import_data(sources: Sequence[Path], mapping: Mapping | Path) -> ImportResult:
    """Read, map, convert, pseudonymise and validate; nothing is written. Raises ImportDataError
    (every mapping and source problem at once) or PseudonymisationKeyError."""
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(Path(mapping))
    paths = _resolve_sources(sources, mapping)
    needs_key = any(fm.pseudonymise for t in mapping.tables.values() for fm in t.fields.values())
    key = load_key() if needs_key else None

    errors: list[str] = []
    cache: dict[tuple, SourceTable] = {}
    table_sources: dict[str, list[SourceTable]] = {}
    users: dict[str, list[TableMap]] = {}
    for tname, tmap in mapping.tables.items():
        table_sources[tname] = []
        for ref in tmap.sources:
            path = paths[ref.name]
            ck = (path, ref.sheet, tname if path.suffix.lower() in EXCEL_SUFFIXES else "",
                  tmap.delimiter, tmap.encoding)
            if ck not in cache:
                try:
                    cache[ck] = read_source(path, ref.sheet, table=tname,
                                            delimiter=tmap.delimiter, encoding=tmap.encoding)
                except ImportDataError as exc:
                    errors.extend(exc.problems)
                    continue
            table_sources[tname].append(cache[ck])
            users.setdefault(cache[ck].label, []).append(tmap)
    seen: set[str] = set()
    for src in cache.values():
        if src.label not in seen:
            seen.add(src.label)
            _check_bsn(src, users[src.label], errors)
    prepared = {}
    if not errors:
        for tname, tmap in mapping.tables.items():
            prepared[tname] = _prepare(tmap, table_sources[tname], key, errors)
    if errors:
        raise ImportDataError(errors)

    # Validation sees only the rows with the header's width; positions map back to source rows.
    raw_tables, positions, files = {}, {}, {}
    for tname, table in TABLES.items():
        prep = prepared.get(tname)
        if prep is None:
            raw_tables[tname] = pd.DataFrame({c: pd.Series(dtype="string") for c in table.columns})
            positions[tname] = np.zeros(0, dtype=np.int64)
            files[tname] = "(not supplied)"
            continue
        positions[tname] = np.flatnonzero(prep.shape_ok)
        raw_tables[tname] = prep.converted.iloc[positions[tname]].reset_index(drop=True)
        files[tname] = ", ".join(dict.fromkeys(s.label for s in table_sources[tname]))
    result = validate(raw_tables, files)

    problems = result.problems.copy()
    problems["pos"] = np.zeros(len(problems), dtype=np.int64)
    for tname in TABLES:
        sel = (problems["table"] == tname).to_numpy()
        if sel.any():
            problems.loc[sel, "pos"] = positions[tname][problems.loc[sel, "row"].to_numpy() - 2]
    quarantine, tables_report, reason_rows = {}, {}, []
    for tname, table in TABLES.items():
        prep = prepared.get(tname)
        tmap = mapping.tables.get(tname)
        if prep is None:
            quarantine[tname] = _quarantine(prep, None, table, np.zeros(0, dtype=bool),
                                            pd.Series(dtype="string"))
            tables_report[tname] = {"supplied": False, "sources": [], "read": 0, "accepted": 0,
                                    "quarantined": 0, "blank_rows": 0, "pseudonymised": [],
                                    "fields_not_mapped": table.columns}
            continue
        n = len(prep.raw)
        shape_bad = ~prep.shape_ok
        mine = problems[problems["table"] == tname][["pos", "field", "reason"]]
        ragged = pd.DataFrame({"pos": np.flatnonzero(shape_bad), "field": "_row",
                               "reason": "field_count"})
        mine = pd.concat([mine, ragged], ignore_index=True) if len(ragged) else mine
        bad = np.zeros(n, dtype=bool)
        bad[mine["pos"].to_numpy(dtype=np.int64)] = True
        quarantine[tname] = _quarantine(prep, tmap, table, bad, _reasons_text(mine))
        if len(ragged):
            reason_rows.append({"table": tname, "field": "_row", "reason": "field_count",
                                "rows": len(ragged)})
        tables_report[tname] = {
            "supplied": True,
            "sources": list(dict.fromkeys(s.label for s in table_sources[tname])),
            "read": n,
            "accepted": len(result.tables[tname]),
            "quarantined": int(bad.sum()),
            "blank_rows": prep.blank,
            "pseudonymised": [f for f, fm in tmap.fields.items() if fm.pseudonymise],
            "fields_not_mapped": [c for c in table.columns if c not in tmap.fields],
        }
    reasons = result.reasons()
    reason_rows = [
        {"table": r.table, "field": r.field, "reason": r.reason, "rows": int(r.rows)}
        for r in reasons.itertuples(index=False)
    ] + reason_rows
    report = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mapping": {"file": mapping.origin, "sha256": mapping.sha256},
        "key_fingerprint": key_fingerprint(key) if key is not None else None,
        "sources": _sources_report(cache.values()),
        "tables": tables_report,
        "not_supplied": [t for t in TABLES if t not in mapping.tables],
        "reasons": reason_rows,
        "ignored_columns": _ignored_columns(cache.values(), users),
        "unused_sources": sorted(set(paths) - {r.name for t in mapping.tables.values()
                                               for r in t.sources}),
    }
    return ImportResult(result.tables, quarantine, report,
                        [paths[r.name] for t in mapping.tables.values() for r in t.sources])


def _sources_report(srcs: Iterable[SourceTable]) -> list[dict]:
    out: dict[str, dict] = {}
    for s in srcs:
        name = s.label.split("#")[0]
        out.setdefault(name, {"file": name, "sha256": s.sha256})
    return list(out.values())


def _ignored_columns(srcs: Iterable[SourceTable], users: dict[str, list[TableMap]]) -> list[dict]:
    """Source columns no table maps, by header only (never their values)."""
    out = []
    done = set()
    for s in srcs:
        if s.label in done:
            continue
        done.add(s.label)
        used = {_norm_header(fm.column) for t in users.get(s.label, [])
                for fm in t.fields.values() if fm.column is not None}
        ignored = [_mask_header(h) or f"(column {i + 1}, no header)"
                   for i, h in enumerate(s.headers)
                   if _norm_header(h) not in used and (h or s.values[i].notna().any())]
        if ignored:
            out.append({"file": s.label, "columns": ignored})
    return out


def write_import(result: ImportResult, out_dir: Path) -> list[Path]:
    """Write the accepted tables (project CSV files + data dictionary), one quarantine file per
    table (header only when empty, so no stale file survives) and the report."""
    targets = [out_dir / t.filename for t in TABLES.values()]
    sources = {p.resolve() for p in result.sources}
    clash = [str(t) for t in targets if t.resolve() in sources]
    if clash:
        raise ImportDataError(f"{out_dir}: writing there would overwrite source file(s) "
                              f"{', '.join(clash)}; choose another --out folder")
    written = write_tables(result.tables, out_dir)
    qdir = out_dir / QUARANTINE_DIR
    qdir.mkdir(parents=True, exist_ok=True)
    for name, frame in result.quarantine.items():
        path = qdir / f"{name}.csv"
        frame.to_csv(path, index=False, na_rep="")
        written.append(path)
    path = out_dir / REPORT_FILE
    path.write_text(json.dumps(result.report, indent=2, ensure_ascii=False) + "\n",
                    encoding="utf-8")
    written.append(path)
    return written


def format_summary(result: ImportResult, out_dir: Path) -> str:
    """The counts, reasons and ignored columns as the command line prints them (no values)."""
    rep = result.report
    counts = result.counts()
    counts["supplied"] = counts["supplied"].map({True: "", False: "not supplied"})
    lines = [counts.rename(columns={"supplied": "note"})[
        ["table", "read", "accepted", "quarantined", "note"]].to_string(index=False)]
    if rep["reasons"]:
        lines += ["", "quarantined rows by reason:"]
        lines += [f"  {r['table']}.{r['field']}: {ALL_REASONS.get(r['reason'], r['reason'])} "
                  f"({r['rows']} row(s))" for r in rep["reasons"]]
    for item in rep["ignored_columns"]:
        lines.append(f"\nnot imported from {item['file']}: {', '.join(item['columns'])}")
    if rep["unused_sources"]:
        lines.append(f"\nnot used by the mapping: {', '.join(rep['unused_sources'])}")
    quarantined = int(counts["quarantined"].sum())
    lines.append(f"\nwrote the data set and {REPORT_FILE} to {out_dir}")
    if quarantined:
        lines.append(f"{quarantined} row(s) quarantined: see {out_dir / QUARANTINE_DIR}")
    return "\n".join(lines)


def import_command(sources: list[Path], mapping: Path, out_dir: Path) -> int:
    """`evaluation import SOURCE... --mapping MAPPING --out DIR`: 0 when every row was accepted,
    1 when rows were quarantined (the data set is written all the same), 2 when nothing could be
    imported (the error says why)."""
    try:
        result = import_data(sources, mapping)
        write_import(result, out_dir)
    except (ImportDataError, PseudonymisationKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to {out_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    print(format_summary(result, out_dir))
    return 1 if any(t["quarantined"] for t in result.report["tables"].values()) else 0
