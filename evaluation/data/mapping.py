"""The mapping file of an import: which source column feeds which field of the data model.

`load_mapping` reads and checks a mapping against the data model (`evaluation.data.datamodel`) and
lists every problem at once, so that a user fixes the mapping in one go; `is_personal_header`
decides which headers name personal data. What the import does with it, and what stops it:
`evaluation.data.importing`.

Mapping format (YAML; every scalar is read as text, so codes such as `01` keep their zero)::

    max_unknown_share: 0.05              # optional, see evaluation.data.importing
    tables:                              # one entry per project table supplied
      enrolments:
        source: leerlingen.csv           # a file name given on the command line; a list of names
                                         # appends several files; `file.xlsx#Blad1` picks a sheet;
                                         # a source may also be {file: ..., sheet: ...,
                                         # header_row: ..., footer_rows: ...} of its own
        sheet: Blad1                     # optional, the same as `#Blad1` for every source
        header_row: 3                    # optional: the line (CSV) or row (Excel) of the column
                                         # names, 1-based; rows above it (a title) are ignored and
                                         # counted. Default: the first non-blank one
        footer_rows: 1                   # optional: non-blank rows at the end to skip (totals)
        delimiter: ";"                   # optional; by default sniffed from the header line
        encoding: cp1252                 # optional; by default UTF-8 (with or without BOM),
                                         # else Windows-1252
        fields:                          # project field: source column, or a spec:
          student_id: {column: leerlingnummer, pseudonymise: true}
          school_id: BRIN                # short for {column: BRIN}
          school_year: {value: 2014-2015}    # the same value for every row
          track: {column: onderwijstype, codes: {VMBO-B: vmbo, HAVO: havo}}

Field spec keys: `column` (a source header; matched ignoring case and repeated spaces) or `value`
(a constant), `codes` (source value -> project value, matched ignoring case), `pseudonymise`
(true/false). Identifier fields (student_id, report_id, trajectory_id, referral_id,
respondent_id) are always pseudonymised; `pseudonymise: true` is needed in addition on a column
that holds citizen service numbers (BSN). Fields the data dictionary marks optional may be left
out when an export does not have them: they stay empty, and the indicators that need them say
that they cannot be determined. Never fill them with a constant: it would enter the tables as if
observed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from evaluation.data.datamodel import TABLES, Field, Table
from evaluation.data.validation import FALSE, TRUE

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

#: Where a source's records are: keys of a table (for all its sources) or of one source.
LAYOUT_KEYS = {"sheet", "header_row", "footer_rows"}
TABLE_KEYS = {"source", "fields", "delimiter", "encoding", *LAYOUT_KEYS}
SOURCE_KEYS = {"file", *LAYOUT_KEYS}
FIELD_KEYS = {"column", "value", "codes", "pseudonymise"}
TOP_KEYS = {"tables", "max_unknown_share"}
#: Above this share of a column's rows with an unknown code or reference, the mapping (not the
#: rows) is likely wrong: the import stops and lists the values instead of quarantining them.
MAX_UNKNOWN_SHARE = 0.05
#: ... and at least this many rows: one or two wrong rows never stop an import, however small.
MIN_UNKNOWN_ROWS = 3
YES = {"true", "yes", "ja", "1"}
NO = {"false", "no", "nee", "0"}


class ImportDataError(ValueError):
    """The sources or the mapping cannot be imported; nothing was written. The message lists every
    problem found, each naming the file and column (and, for unknown codes, the values)."""

    def __init__(self, problems: str | Sequence[str]):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


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
    """A source file by name; the sheet of a workbook; the line (CSV) or row (Excel) of the
    header, 1-based (None: the first non-blank one); non-blank rows to skip at the end (totals)."""

    name: str
    sheet: str | None = None
    header_row: int | None = None
    footer_rows: int = 0


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
    max_unknown_share: float = MAX_UNKNOWN_SHARE


def normal_header(name: object) -> str:
    return " ".join(str(name).split()).casefold()


def is_personal_header(header: str, table: str = "", field: str = "") -> bool:
    """Whether a header names personal data (name, address, birth date, contact, free text) that
    may not feed `table.field`."""
    h = normal_header(header)
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


def _count(value: object, where: str, minimum: int, errors: list[str]) -> int | None:
    """A whole number of at least `minimum` (YAML gives text)."""
    text = str(value).strip()
    if not text.isdigit() or int(text) < minimum:
        errors.append(f"{where}: give a whole number of at least {minimum}, not {value!r}")
        return None
    return int(text)


def _layout(spec: dict, where: str, errors: list[str], default: SourceRef | None = None
            ) -> dict[str, object]:
    """sheet, header_row and footer_rows of a table or one source (a source's own win)."""
    out: dict[str, object] = {} if default is None else {
        "sheet": default.sheet, "header_row": default.header_row,
        "footer_rows": default.footer_rows}
    if spec.get("sheet") is not None:
        if isinstance(spec["sheet"], str) and spec["sheet"].strip():
            out["sheet"] = spec["sheet"].strip()
        else:
            errors.append(f"{where}.sheet: give a sheet name")
    if spec.get("header_row") is not None:
        out["header_row"] = _count(spec["header_row"], f"{where}.header_row", 1, errors)
    if spec.get("footer_rows") is not None:
        out["footer_rows"] = _count(spec["footer_rows"], f"{where}.footer_rows", 0, errors) or 0
    return out


def _parse_sources(spec: dict, where: str, errors: list[str]) -> tuple[SourceRef, ...]:
    """`source:` as a file name, a list of them, or per source a mapping with `file` and its own
    sheet, header_row and footer_rows; `file.xlsx#Sheet` names the sheet."""
    raw = spec.get("source")
    items = [raw] if isinstance(raw, str | dict) else raw
    if not items or not isinstance(items, list):
        errors.append(f"{where}.source: give a file name (or a list of them)")
        return ()
    table = SourceRef("", **_layout(spec, where, errors))
    refs = []
    for i, item in enumerate(items):
        at = f"{where}.source" + (f"[{i + 1}]" if len(items) > 1 else "")
        own: dict = {}
        if isinstance(item, dict):
            unknown = sorted(set(item) - SOURCE_KEYS)
            if unknown:
                errors.append(f"{at}: unknown key(s) {', '.join(unknown)} (allowed: "
                              f"{', '.join(sorted(SOURCE_KEYS))})")
            own, item = item, item.get("file")
        if not isinstance(item, str) or not item.strip():
            errors.append(f"{at}: give a file name")
            continue
        name, _, named_sheet = item.strip().partition("#")
        layout = _layout(own, at, errors, table)
        if named_sheet.strip():
            layout["sheet"] = named_sheet.strip()
        refs.append(SourceRef(name.strip(), **layout))
    return tuple(refs)


def parse_mapping(data: object, origin: str = "mapping", sha256: str = "",
                  problems: list[str] | None = None) -> Mapping:
    """Check a mapping (as loaded from YAML) against the data model and list every problem, so that
    a user fixes the mapping in one go: raised as ImportDataError, or, when `problems` is given,
    appended to it and the usable part of the mapping returned (so that the import can check the
    sources as well in the same run)."""
    errors: list[str] = []
    if not isinstance(data, dict) or not isinstance(data.get("tables"), dict) \
            or not data["tables"]:
        raise ImportDataError(f"{origin}: expected `tables:` with one entry per project table "
                              f"({', '.join(TABLES)})")
    extra = sorted(set(data) - TOP_KEYS)
    if extra:
        errors.append(f"{origin}: unknown top-level key(s) {', '.join(extra)} (allowed: "
                      f"{', '.join(sorted(TOP_KEYS))})")
    share = MAX_UNKNOWN_SHARE
    if data.get("max_unknown_share") is not None:
        try:
            share = float(str(data["max_unknown_share"]).strip().rstrip("%")) / (
                100 if str(data["max_unknown_share"]).strip().endswith("%") else 1)
            if not 0 <= share <= 1:
                raise ValueError
        except ValueError:
            errors.append(f"{origin}: max_unknown_share: give a share between 0 and 1 (or a "
                          f"percentage such as 5%), not {data['max_unknown_share']!r}")
            share = MAX_UNKNOWN_SHARE
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
        if any(s.header_row is not None and s.name.lower().endswith((".parquet", ".pq"))
               for s in sources):
            errors.append(f"{where}.header_row: a Parquet file has its column names; header_row "
                          "applies to CSV and Excel sources only")
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
    if errors and problems is None:
        raise ImportDataError(errors)
    if problems is not None:
        problems.extend(errors)
    return Mapping(tables, origin, sha256, share)


def load_mapping(path: Path, problems: list[str] | None = None) -> Mapping:
    """Read and check a mapping file (see `parse_mapping` for `problems`). YAML's BaseLoader keeps
    every scalar as text, so `01`, `ja` and `no` stay what the user wrote."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportDataError(f"{path}: cannot read the mapping file ({exc.strerror})") from None
    try:
        # BaseLoader builds only str, list and dict: safe, and no YAML 1.1 guessing of types.
        loaded = yaml.load(data.decode("utf-8-sig"), Loader=yaml.BaseLoader)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ImportDataError(f"{path}: not a valid YAML file: {exc}") from None
    return parse_mapping(loaded, path.name, hashlib.sha256(data).hexdigest(), problems)
