"""Import exports from school administrations and youth-care providers into the project's tables.

Exports are not tidy: semicolons, Windows-1252, decimal commas, Dutch dates, Excel sheets with a
title above the header and a totals line below the data, Parquet, local codes, and columns with
personal data nobody needs. A mapping file says which source column feeds which field of the data
model (`evaluation.data.datamodel`) and how source codes translate; the importer reads the sources
as text, converts the values to what the validator expects, pseudonymises identifiers, validates,
and writes the accepted rows as a project data set. Every row read ends up either accepted or in a
quarantine file with its reasons; the counts go to `import_report.json`. The goal is one run: every
problem of every file is found and reported together.

The mapping format (which source column feeds which field, codes, `header_row`, `footer_rows`,
`max_unknown_share`) is described in `evaluation.data.mapping`.

What stops an import (nothing is written; the error lists every such problem of every file):
a mapping that does not fit the data model (unknown table or field, a required field not mapped, a
table referring to a table not supplied), an unreadable file, a mapped column missing from its
source (with a hint when the column names stand on a later line: `header_row`), a column whose
header names personal data (naam, adres, straat, postcode, geboortedatum, telefoon, e-mail,
opmerking, toelichting, notitie, ...) mapped to any field, a column of BSNs mapped without
`pseudonymise: true`, a missing key, and a column whose unknown codes or references cover more
than `max_unknown_share` (default 5%) of its rows (and at least 3 rows): then the mapping, not
the rows, is likely wrong, and the error lists the unknown values with their counts. Two
exceptions keep school data importable: headers that also name an institution (`schoolnaam`,
`naam vestiging`) are not personal, and `schools.name` may come from a plain `naam` column (a
person's `achternaam` or `voornaam` is refused there too).

What does not stop it: a value without a code, or a reference to a row that does not exist, below
that share goes to quarantine with the file, line, column, value and reason; a column of BSNs that
the mapping leaves out is never read into any table, and is reported by header as a warning.
Plausibility warnings (`evaluation.data.plausibility`) reject nothing either.

Conversions before validation: surrounding spaces removed; dates dd-mm-jjjj, d-m-jj, dd/mm/jjjj,
dd.mm.jjjj and ISO (a time part is ignored) to YYYY-MM-DD (two-digit years 00-69 are 20xx, 70-99
19xx; a date that cannot be read stays as given, so validation quarantines it as `bad_date`); a
decimal comma in numbers to a point; school years 2014/2015 and 14-15 to 2014-2015; municipality
codes 321 or 0321 to GM0321; categories matched ignoring case; booleans by codes or ja/nee/true/false.

Output (`write_import`): the accepted rows as the project's CSV files plus data dictionary (tables
not supplied are written empty), `quarantine/<table>.csv` per table (`_file`, `_row`, `_reasons`
in plain words naming the source columns and values (`evaluation.data.quarantine`), `_codes`
(field: reason code), then the row's source values; identifiers as pseudonyms, never a BSN) and
`import_report.json` (created, mapping and source hashes, key fingerprint, per table
read/accepted/quarantined/blank rows and rows skipped above the header and at the end, reasons
with row counts, ignored columns by header, warnings). No value of the data appears in the
report. `_row` is the line of the record in a CSV file (line 1 is the first line of the file,
blank lines and line breaks inside quoted values counted), the row in an Excel sheet, the 1-based
record number in a Parquet file. Blank lines hold no record and are counted apart (`blank_rows`);
a CSV record with more or fewer fields than the header is quarantined as `field_count` (its values
cannot be placed safely).
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
    MIN_UNKNOWN_ROWS,
    ImportDataError,
    Mapping,
    TableMap,
    load_mapping,
    normal_header,
)
from evaluation.data.plausibility import plausibility, warning_text
from evaluation.data.pseudonymisation import (
    BSN_COLUMN_SHARE,
    PseudonymisationKeyError,
    is_bsn,
    key_fingerprint,
    load_key,
    pseudonymise,
)
from evaluation.data.quarantine import explain
from evaluation.data.reading import write_tables
from evaluation.data.validation import REASONS, validate

REPORT_FILE = "import_report.json"
QUARANTINE_DIR = "quarantine"
IMPORT_REASONS = {"field_count": "row has a different number of fields than the header"}
WARNINGS = {"bsn_column_not_imported": "holds citizen service numbers (BSN); not imported",
            "constant_value": "filled with one value for every row although the field is "
                              "optional: it enters the tables as if observed; leave it out if "
                              "the export does not have it"}
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


def _resolve_sources(sources: Sequence[Path], mapping: Mapping,
                     errors: list[str]) -> dict[str, Path]:
    by_name: dict[str, list[Path]] = {}
    for p in sources:
        by_name.setdefault(p.name, []).append(p)
    errors.extend(f"sources: {len(ps)} files are called {name}; rename them so the mapping can "
                  "tell them apart" for name, ps in by_name.items()
                  if len({q.resolve() for q in ps}) > 1)
    wanted = {ref.name for t in mapping.tables.values() for ref in t.sources}
    for name in sorted(wanted - set(by_name)):
        errors.append(f"{mapping.origin}: source {name} is not among the given files "
                      f"({', '.join(sorted(by_name)) or 'none'})")
    return {name: ps[0] for name, ps in by_name.items()}


def _column_positions(src: SourceTable, tmap: TableMap, errors: list[str]) -> dict[str, int]:
    normal = [normal_header(h) for h in src.headers]
    positions, missing = {}, []
    for fm in tmap.fields.values():
        if fm.column is None:
            continue
        hits = [i for i, h in enumerate(normal) if h == normal_header(fm.column)]
        if not hits:
            missing.append(fm)
        elif len(hits) > 1:
            errors.append(f"{src.label}: column {fm.column!r} (for {tmap.table}.{fm.field}) occurs "
                          f"{len(hits)} times; make the headers unique")
        else:
            positions[fm.field] = hits[0]
    if missing:
        shown = ", ".join(repr(_mask_header(h)) for h in src.headers if h) or "none"
        columns = [fm.column for fm in tmap.fields.values() if fm.column is not None]
        line = src.header_line_with(columns)
        unit = "row" if "#" in src.label else "line"
        hint = (f"; the column names stand on {unit} {line}: add `header_row: {line}` under "
                f"tables.{tmap.table}" if line else "")
        for fm in missing:
            errors.append(f"{src.label}: column {fm.column!r} (for {tmap.table}.{fm.field}) not "
                          f"found on {unit} {src.header_line}; the columns there are {shown}"
                          f"{hint}")
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


def _check_bsn(src: SourceTable, tmaps: list[TableMap], errors: list[str],
               warnings: list[dict]) -> None:
    """A column of BSNs mapped to a field must be marked `pseudonymise: true` in every table that
    maps it; one the mapping leaves out is never read into any table: a warning, by header."""
    normal = [normal_header(h) for h in src.headers]
    marked: set[str] = set()
    unmarked: set[str] = set()
    for tmap in tmaps:
        for fm in tmap.fields.values():
            if fm.column is not None:
                (marked if fm.explicit_pseudonymise else unmarked).add(normal_header(fm.column))
    for i in bsn_columns(src.values):
        header = _mask_header(src.headers[i]) or f"number {i + 1} (no header)"
        if normal[i] in unmarked:
            errors.append(
                f"{src.label}: column {header!r} holds citizen service numbers (BSN), which may "
                "not enter the project; leave the column out of the mapping, or, if it is the "
                "only key that links the files, map it with `pseudonymise: true`")
        elif normal[i] not in marked:
            warnings.append({"kind": "bsn_column_not_imported", "file": src.label,
                             "column": header})


def _too_many_unknown(unknown: np.ndarray, shown: pd.Series | None, files: pd.Series,
                      what: str, share: float, errors: list[str]) -> None:
    """Stop when a column's unknown values cover more than `share` of a file's rows: the mapping
    is then likely wrong. The error lists the values (most frequent first) with their counts;
    `shown` None: values that may not be shown (pseudonyms), counted only."""
    if not unknown.any():
        return
    frame = pd.DataFrame({"file": files.to_numpy(), "unknown": unknown})
    per_file = frame.groupby("file", sort=False)["unknown"].agg(["sum", "size"])
    for file, (n_unknown, n_rows) in per_file.iterrows():
        if n_unknown <= share * n_rows or n_unknown < MIN_UNKNOWN_ROWS:
            continue
        text = (f"{file}: {what}: {n_unknown} of {n_rows} rows ({100 * n_unknown / n_rows:.0f}%) "
                f"are unknown, more than the {100 * share:g}% (max_unknown_share) a few wrong "
                "rows would explain, so the mapping is likely wrong or incomplete")
        if shown is not None:
            values = shown[(files == file).to_numpy() & unknown].value_counts()
            listed = ", ".join(f"{v!r} ({c})" for v, c in values.head(20).items())
            more = f" and {len(values) - 20} more" if len(values) > 20 else ""
            text += f": {listed}{more}"
        errors.append(text)


@dataclass
class _Prepared:
    """One table's source rows: raw source text per field, its converted form, provenance, and
    the problems found before validation (unknown codes)."""

    raw: pd.DataFrame
    converted: pd.DataFrame
    meta: pd.DataFrame
    shape_ok: np.ndarray
    blank: int
    above: int
    footer: int
    flagged: pd.DataFrame


def _prepare(tmap: TableMap, srcs: list[SourceTable], key: bytes | None, errors: list[str],
             share: float) -> _Prepared:
    """Gather a table's fields from its sources (source text kept for the quarantine), apply codes
    and conversions, and pseudonymise; mapping problems go to `errors`, values without a code to
    the returned `flagged` (row by row), unless there are too many of them."""
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
    meta = (pd.concat(metas, ignore_index=True) if metas else
            pd.DataFrame({"_file": pd.Series(dtype="string"), "_row": pd.Series(dtype="int64")}))
    converted, flagged = {}, []
    for f in table.fields:
        text = clean_text(raw[f.name])
        fm = tmap.fields.get(f.name)
        if fm is not None and fm.codes is not None:
            mapped = text.str.casefold().map(fm.codes).astype("string")
            unknown = (text.notna() & mapped.isna()).to_numpy(dtype=bool)
            _too_many_unknown(unknown, text, meta["_file"],
                              f"column {fm.column or '(value)'!r} (for {tmap.table}.{fm.field}) "
                              "has values without a code in the mapping", share, errors)
            flagged.append(pd.DataFrame({"pos": np.flatnonzero(unknown), "field": f.name,
                                         "reason": "unknown_code"}))
            text = mapped
        text = convert_field(text, f)
        if fm is not None and fm.pseudonymise and key is not None:
            text = pseudonymise(text, key, fm.prefix)
        converted[f.name] = text
    return _Prepared(raw, pd.DataFrame(converted, index=raw.index), meta,
                     np.concatenate(shapes) if shapes else np.zeros(0, dtype=bool),
                     sum(s.blank for s in srcs), sum(s.above for s in srcs),
                     sum(s.footer for s in srcs),
                     pd.concat(flagged, ignore_index=True) if flagged else
                     pd.DataFrame({"pos": pd.Series(dtype="int64"), "field": pd.Series(dtype=str),
                                   "reason": pd.Series(dtype=str)}))


def _check_references(prepared: dict[str, _Prepared], mapping: Mapping, share: float,
                      errors: list[str]) -> None:
    """References to values the referenced table's source does not hold at all (not rejected
    rows: values never delivered) stop the import above `share` of a file's rows; below it,
    validation quarantines them row by row."""
    for tname, prep in prepared.items():
        for fk in TABLES[tname].foreign_keys:
            name, parent = fk.fields[0], prepared.get(fk.ref_table)
            fm = mapping.tables[tname].fields.get(name)
            if parent is None or fm is None:
                continue
            child = prep.converted[name]
            known = parent.converted[fk.ref_fields[0]].dropna()
            unknown = (child.notna() & ~child.isin(known)).to_numpy(dtype=bool)
            shown = None if fm.pseudonymise else clean_text(prep.raw[name])
            _too_many_unknown(unknown, shown, prep.meta["_file"],
                              f"column {fm.column or '(value)'!r} (for {tname}.{name}) refers to "
                              f"values that table {fk.ref_table} does not hold", share, errors)


def _quarantine(prep: _Prepared | None, tmap: TableMap | None, table: Table,
                bad: np.ndarray, reasons: pd.Series, codes: pd.Series) -> pd.DataFrame:
    """The quarantined source rows: where they came from, why (plain words and codes), and their
    source values, with pseudonyms for pseudonymised fields and any single BSN masked."""
    columns = ["_file", "_row", "_reasons", "_codes", *table.columns]
    if prep is None or tmap is None or not bad.any():
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
    out["_codes"] = codes.reindex(out.index).astype("string")
    return out[columns].reset_index(drop=True)


def _joined(pos: pd.Series, text: pd.Series) -> pd.Series:
    """The texts of each row position joined with '; ', sorted and without repeats."""
    if pos.empty:
        return pd.Series(dtype="string")
    frame = pd.DataFrame({"pos": pos.to_numpy(), "text": text.to_numpy()}).drop_duplicates()
    # One string join per quarantined row (there is no vectorised string aggregation).
    return frame.sort_values(["pos", "text"]).groupby("pos")["text"].agg("; ".join)


def _explained(mine: pd.DataFrame, prep: _Prepared, tmap: TableMap) -> tuple[pd.Series, pd.Series]:
    """Per quarantined row: the reasons in plain words (source columns and values) and as codes."""
    columns = {f: fm.column or f for f, fm in tmap.fields.items()}
    hidden = {f for f, fm in tmap.fields.items() if fm.pseudonymise}
    words = explain(mine, tmap.table, columns, prep.raw, hidden)
    codes = mine["field"] + ": " + mine["reason"]
    return _joined(mine["pos"], words), _joined(mine["pos"], codes)


def import_data(sources: Sequence[Path], mapping: Mapping | Path,
                max_unknown_share: float | None = None) -> ImportResult:
    """Read, map, convert, pseudonymise and validate; nothing is written. Raises ImportDataError
    listing every problem that stops the import, of every file, at once (a missing key among
    them)."""
    problems: list[str] = []
    if not isinstance(mapping, Mapping):
        mapping = load_mapping(Path(mapping), problems)
    share = mapping.max_unknown_share if max_unknown_share is None else max_unknown_share
    paths = _resolve_sources(sources, mapping, problems)
    needs_key = any(fm.pseudonymise for t in mapping.tables.values() for fm in t.fields.values())
    key = None
    if needs_key:
        try:
            key = load_key()
        except PseudonymisationKeyError as exc:
            problems.append(str(exc))
            key = bytes(32)  # check the files all the same; nothing is written

    warnings: list[dict] = []
    cache: dict[tuple, SourceTable] = {}
    table_sources: dict[str, list[SourceTable]] = {}
    users: dict[str, list[TableMap]] = {}
    unread: set[str] = set()
    for tname, tmap in mapping.tables.items():
        table_sources[tname] = []
        for ref in tmap.sources:
            path = paths.get(ref.name)
            if path is None:
                unread.add(tname)
                continue
            ck = (path, ref.sheet, tname if path.suffix.lower() in EXCEL_SUFFIXES else "",
                  tmap.delimiter, tmap.encoding, ref.header_row, ref.footer_rows)
            if ck not in cache:
                try:
                    cache[ck] = read_source(path, ref.sheet, table=tname,
                                            delimiter=tmap.delimiter, encoding=tmap.encoding,
                                            header_row=ref.header_row,
                                            footer_rows=ref.footer_rows)
                except ImportDataError as exc:
                    problems.extend(p for p in exc.problems if p not in problems)
                    unread.add(tname)
                    continue
            table_sources[tname].append(cache[ck])
            users.setdefault(cache[ck].label, []).append(tmap)
    seen: set[str] = set()
    for src in cache.values():
        if src.label not in seen:
            seen.add(src.label)
            _check_bsn(src, users[src.label], problems, warnings)
    prepared = {tname: _prepare(tmap, table_sources[tname], key, problems, share)
                for tname, tmap in mapping.tables.items() if tname not in unread}
    _check_references(prepared, mapping, share, problems)
    if problems:
        raise ImportDataError(problems)

    # Validation sees only the rows with the header's width; positions map back to source rows.
    raw_tables, positions, files, flagged = {}, {}, {}, {}
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
        row_of = np.full(len(prep.shape_ok), -1, dtype=np.int64)
        row_of[positions[tname]] = np.arange(len(positions[tname]))
        f = prep.flagged.assign(row=row_of[prep.flagged["pos"].to_numpy(dtype=np.int64)] + 2)
        f = f[f["row"] >= 2]
        flagged[tname] = f.assign(value="")[["row", "field", "value", "reason"]]
    result = validate(raw_tables, files, flagged)

    problems_found = result.problems.copy()
    problems_found["pos"] = np.zeros(len(problems_found), dtype=np.int64)
    for tname in TABLES:
        sel = (problems_found["table"] == tname).to_numpy()
        if sel.any():
            problems_found.loc[sel, "pos"] = positions[tname][
                problems_found.loc[sel, "row"].to_numpy(dtype=np.int64) - 2]
    quarantine, tables_report, reason_rows = {}, {}, []
    for tname, table in TABLES.items():
        prep = prepared.get(tname)
        tmap = mapping.tables.get(tname)
        if prep is None or tmap is None:
            quarantine[tname] = _quarantine(None, None, table, np.zeros(0, dtype=bool),
                                            pd.Series(dtype="string"), pd.Series(dtype="string"))
            tables_report[tname] = {"supplied": False, "sources": [], "read": 0, "accepted": 0,
                                    "quarantined": 0, "blank_rows": 0, "rows_above_header": 0,
                                    "footer_rows": 0, "pseudonymised": [],
                                    "fields_not_mapped": table.columns}
            continue
        n = len(prep.raw)
        mine = problems_found[problems_found["table"] == tname][
            ["pos", "field", "reason", "other"]]
        ragged = pd.DataFrame({"pos": np.flatnonzero(~prep.shape_ok), "field": "_row",
                               "reason": "field_count", "other": ""})
        mine = pd.concat([mine, ragged], ignore_index=True) if len(ragged) else mine
        mine = mine.reset_index(drop=True)
        bad = np.zeros(n, dtype=bool)
        bad[mine["pos"].to_numpy(dtype=np.int64)] = True
        words, codes = _explained(mine, prep, tmap)
        quarantine[tname] = _quarantine(prep, tmap, table, bad, words, codes)
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
            "rows_above_header": prep.above,
            "footer_rows": prep.footer,
            "pseudonymised": [f for f, fm in tmap.fields.items() if fm.pseudonymise],
            "fields_not_mapped": [c for c in table.columns if c not in tmap.fields],
        }
        warnings += [{"kind": "constant_value", "table": tname, "field": f.name}
                     for f in table.fields if not f.required and f.name in tmap.fields
                     and tmap.fields[f.name].value is not None]
    reasons = result.reasons()
    reason_rows = [
        {"table": r.table, "field": r.field, "reason": r.reason, "rows": int(r.rows)}
        for r in reasons.itertuples(index=False)
    ] + reason_rows
    warnings += [{"kind": "plausibility", **{k: (v if k != "rows" else int(v))
                                             for k, v in w.items()}}
                 for w in plausibility(result.tables).to_dict(orient="records")]
    report = {
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "mapping": {"file": mapping.origin, "sha256": mapping.sha256},
        "key_fingerprint": key_fingerprint(key) if key is not None else None,
        "max_unknown_share": share,
        "sources": _sources_report(cache.values()),
        "tables": tables_report,
        "not_supplied": [t for t in TABLES if t not in mapping.tables],
        "reasons": reason_rows,
        "ignored_columns": _ignored_columns(cache.values(), users),
        "unused_sources": sorted(set(paths) - {r.name for t in mapping.tables.values()
                                               for r in t.sources}),
        "warnings": warnings,
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
    skipped = [f"  {name}: {t['rows_above_header']} row(s) above the header, "
               f"{t['footer_rows']} row(s) at the end" for name, t in rep["tables"].items()
               if t.get("rows_above_header") or t.get("footer_rows")]
    if skipped:
        lines += ["", "skipped as the mapping says (title and totals rows):", *skipped]
    for item in rep["ignored_columns"]:
        lines.append(f"\nnot imported from {item['file']}: {', '.join(item['columns'])}")
    warned = [f"  {w['file']}: column {w['column']!r} {WARNINGS[w['kind']]}"
              if w["kind"] == "bsn_column_not_imported" else
              f"  {w['table']}.{w['field']}: {WARNINGS[w['kind']]}"
              if w["kind"] in WARNINGS else f"  {warning_text(w)}"
              for w in rep.get("warnings", [])]
    if warned:
        lines += ["", "warnings (nothing rejected):", *warned]
    if rep["unused_sources"]:
        lines.append(f"\nnot used by the mapping: {', '.join(rep['unused_sources'])}")
    quarantined = int(counts["quarantined"].sum())
    lines.append(f"\nwrote the data set and {REPORT_FILE} to {out_dir}")
    if quarantined:
        lines.append(f"{quarantined} row(s) quarantined: see {out_dir / QUARANTINE_DIR}")
    return "\n".join(lines)


def import_command(sources: list[Path], mapping: Path, out_dir: Path,
                   max_unknown_share: float | None = None) -> int:
    """`evaluation import SOURCE... --mapping MAPPING --out DIR`: 0 when every row was accepted,
    1 when rows were quarantined (the data set is written all the same), 2 when nothing could be
    imported (the error lists every reason)."""
    try:
        result = import_data(sources, mapping, max_unknown_share)
        write_import(result, out_dir)
    except (ImportDataError, PseudonymisationKeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to {out_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    print(format_summary(result, out_dir))
    return 1 if any(t["quarantined"] for t in result.report["tables"].values()) else 0
