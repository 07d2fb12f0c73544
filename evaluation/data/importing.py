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

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.data.datamodel import TABLES, Table
from evaluation.data.exports import (
    EXCEL_SUFFIXES,
    SourceTable,
    clean_text,
    convert_field,
    read_source,
)
from evaluation.data.mapping import (
    FieldMap,
    ImportDataError,
    Mapping,
    TableMap,
    load_mapping,
    normal_header,
)
from evaluation.data.pseudonymisation import (
    BSN_COLUMN_SHARE,
    PseudonymisationKeyError,
    is_bsn,
    key_fingerprint,
    load_key,
    pseudonymise,
)
from evaluation.data.reading import write_tables
from evaluation.data.validation import REASONS, validate

REPORT_FILE = "import_report.json"
QUARANTINE_DIR = "quarantine"
IMPORT_REASONS = {"field_count": "row has a different number of fields than the header"}
ALL_REASONS = {**REASONS, **IMPORT_REASONS}
BSN_MASK = "[removed: BSN]"


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
    normal = [normal_header(h) for h in src.headers]
    positions = {}
    for fm in tmap.fields.values():
        if fm.column is None:
            continue
        hits = [i for i, h in enumerate(normal) if h == normal_header(fm.column)]
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
    normal = [normal_header(h) for h in src.headers]
    marked: set[str] = set()
    unmarked: set[str] = set()
    for tmap in tmaps:
        for fm in tmap.fields.values():
            if fm.column is not None:
                (marked if fm.explicit_pseudonymise else unmarked).add(normal_header(fm.column))
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
        text = clean_text(raw[f.name])
        fm = tmap.fields.get(f.name)
        if fm is not None and fm.codes is not None:
            mapped = text.str.casefold().map(fm.codes).astype("string")
            _unknown_codes(text, mapped, meta["_file"], fm, tmap, errors)
            text = mapped
        text = convert_field(text, f)
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
        used = {normal_header(fm.column) for t in users.get(s.label, [])
                for fm in t.fields.values() if fm.column is not None}
        ignored = [_mask_header(h) or f"(column {i + 1}, no header)"
                   for i, h in enumerate(s.headers)
                   if normal_header(h) not in used and (h or s.values[i].notna().any())]
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
