"""Validation: text tables in, typed tables out, and every rejected row kept with its reason.

Every check is a vectorised mask over a whole column. A row with at least one problem is rejected
(moved to `ValidationResult.rejected` with all its reasons); nothing is dropped without a line in
`ValidationResult.problems`. Columns arrive as text (CSV) or, from Parquet, already typed where the
file has the data model's type (`reading.read_parquet_columns`): typed values are checked as they
are (no text round trip), with the same accepted tables, rejected rows and problems; values in
problems and rejected rows are always shown as the text a CSV file would hold. Foreign keys are checked against the *accepted* rows of the referenced
table, so a rejected school also rejects the rows that point to it, each with a reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from evaluation.data.datamodel import TABLES, Field, Table
from evaluation.data.reading import (
    DataSetError,
    absent_tables,
    field_text,
    read_text_tables,
    table_files,
)

# Tables in an order where every referenced table comes first.
ORDER = ("schools", "enrolments", "trajectories", "care_reports", "referrals",
         "parent_involvement", "survey_responses")

TRUE = {"true", "1", "ja", "yes", "waar", "j", "y"}
FALSE = {"false", "0", "nee", "no", "onwaar", "n"}

# Problem codes with the English text the command line prints; labels.py holds the Dutch ones.
REASONS = {
    "missing_required": "required value is empty",
    "bad_format": "value does not have the required format",
    "bad_school_year": "not a school year (write 2014-2015: two consecutive years)",
    "bad_date": "not a date (write YYYY-MM-DD)",
    "not_integer": "not a whole number",
    "out_of_range": "number outside the allowed range",
    "bad_boolean": "not true/false",
    "unknown_value": "value not allowed",
    "duplicate_key": "key occurs more than once (the first occurrence is kept)",
    "date_order": "date is before the date it should follow",
    "unknown_reference": "refers to a row that does not exist (or was rejected)",
    "unknown_code": "value has no code in the import mapping",
}
PROBLEM_COLUMNS = ["table", "file", "row", "field", "value", "reason", "other"]


@dataclass
class ValidationResult:
    """Typed accepted tables, rejected rows and the problems that rejected them."""

    tables: dict[str, pd.DataFrame]
    rejected: dict[str, pd.DataFrame]
    problems: pd.DataFrame
    read: dict[str, int]
    files: dict[str, str] = field(default_factory=dict)
    # Accepted rows per table in the files, kept when `tables` holds one report's schools only.
    accepted: dict[str, int] | None = None
    # Tables the data set has no file for (read as empty).
    absent: tuple[str, ...] = ()
    # School years with enrolments in the whole data set, kept when `tables` is narrowed.
    years: tuple[str, ...] | None = None

    @property
    def ok(self) -> bool:
        return self.problems.empty

    def summary(self) -> pd.DataFrame:
        """Rows read, accepted and rejected per table (read = accepted + rejected always holds)."""
        rows = [
            {
                "table": name,
                "file": self.files.get(name, TABLES[name].filename),
                "read": self.read[name],
                "accepted": (self.accepted[name] if self.accepted is not None
                             else len(self.tables[name])),
                "rejected": len(self.rejected[name]),
                "supplied": name not in self.absent,
            }
            for name in TABLES
        ]
        return pd.DataFrame(rows)

    def school_years(self) -> list[str]:
        """The school years with enrolments in the data set (before any narrowing)."""
        if self.years is not None:
            return list(self.years)
        return sorted(self.tables["enrolments"]["school_year"].dropna().astype(str).unique())

    def for_schools(self, schools: Iterable[str]) -> ValidationResult:
        """The accepted rows of these schools only (parent involvement through its
        trajectories): what one report analyses, a few percent of a national data set. Rows read,
        accepted and rejected, and the problems, stay those of the files (the data-quality
        annex reports on the data as delivered)."""
        ids = pd.Index(sorted(set(schools)), dtype="string")
        tables = {}
        for name, frame in self.tables.items():
            if "school_id" in frame:
                tables[name] = frame[frame["school_id"].astype("string").isin(ids).to_numpy()]
        if "parent_involvement" in self.tables and "trajectories" in tables:
            pi = self.tables["parent_involvement"]
            tables["parent_involvement"] = pi[pi["trajectory_id"].isin(
                tables["trajectories"]["trajectory_id"]).to_numpy()]
        tables = {name: tables.get(name, frame) for name, frame in self.tables.items()}
        accepted = self.accepted or {name: len(frame) for name, frame in self.tables.items()}
        return replace(self, tables=tables, accepted=accepted, years=tuple(self.school_years()))

    def reasons(self) -> pd.DataFrame:
        """Rejected rows per table and reason (a row with two reasons counts under both)."""
        if self.problems.empty:
            return pd.DataFrame(columns=["table", "field", "reason", "rows"])
        return (
            self.problems.groupby(["table", "field", "reason"], observed=True)["row"]
            .nunique()
            .rename("rows")
            .reset_index()
        )

    def missing(self) -> pd.DataFrame:
        """Empty values in optional fields per table: allowed, but reported as data quality."""
        rows = []
        for name, t in TABLES.items():
            frame = self.tables[name]
            for f in t.fields:
                if not f.required:
                    n = int(frame[f.name].isna().sum())
                    rows.append({"table": name, "field": f.name, "missing": n,
                                 "share": n / len(frame) if len(frame) else np.nan})
        return pd.DataFrame(rows)


def _is_typed(values: pd.Series) -> bool:
    """A column read typed from Parquet (not text): dates, numbers, booleans, categories."""
    dtype = values.dtype
    return (isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_datetime64_any_dtype(dtype)
            or pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype))


def _text(values: pd.Series) -> pd.Series:
    """Values as the text a CSV file holds (`reading.field_text`): how a typed value is shown in
    a problem or a rejected row, exactly as when the file had been read as text."""
    if not _is_typed(values):
        return values.astype("string")
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return field_text(values, "date")
    if pd.api.types.is_bool_dtype(values.dtype):
        return field_text(values, "bool")
    return field_text(values, "int")


def _as_read(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows as text (typed columns as `_text`), for the rejected rows."""
    typed = [c for c in frame.columns if _is_typed(frame[c])]
    return frame.assign(**{c: _text(frame[c]) for c in typed}) if typed else frame


def _problems(mask: pd.Series, frame: pd.DataFrame, table: Table, column: str,
              reason: str, file: str, other: str = "") -> pd.DataFrame:
    """The rows `mask` marks, as problems; `other`: the field `column` disagrees with (date
    order), whose value goes to `other_value`."""
    idx = mask[mask.fillna(False)].index
    if len(idx) == 0:
        return pd.DataFrame()
    return pd.DataFrame({
        "table": table.name,
        "file": file,
        # Line number in the file: line 1 is the header.
        "row": np.asarray(idx, dtype=np.int64) + 2,
        "field": column,
        "value": _text(frame.loc[idx, column]).fillna("").to_numpy()
        if column in frame else "",
        "reason": reason,
        "other": other,
        "other_value": _text(frame.loc[idx, other]).fillna("").to_numpy()
        if other in frame else "",
    })


def _strip(raw: pd.Series) -> pd.Series:
    """The values without surrounding white space; the column itself when no value has any, so
    that the accepted table shares the text read instead of holding a second copy of it."""
    text = raw.str.strip()
    if isinstance(raw.dtype, pd.StringDtype) and raw.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        length = [pc.sum(pc.utf8_length(pa.array(s.array))).as_py() or 0 for s in (raw, text)]
        if length[0] == length[1]:  # stripping only removes characters: nothing was removed
            return raw
    return text


def _typed_field(raw: pd.Series, f: Field, table: Table, file: str
                 ) -> tuple[pd.Series, list[pd.DataFrame]] | None:
    """Check one column that is already typed as its field (`_is_typed`): the same checks as
    `_parse_field` makes of its text, on the values; None when the column's type is not the
    field's (then it is checked as text)."""
    frame = raw.to_frame()
    found: list[pd.DataFrame] = []
    dtype = raw.dtype
    if f.kind == "category" and isinstance(dtype, pd.CategoricalDtype):
        # The checks of the text, made once per category instead of once per row.
        text = pd.Series(raw.cat.categories).astype("string").str.strip()
        # A last entry for code -1 (no value): empty, and nowhere among the allowed values.
        unusable = np.append((text.isna() | (text == "")).to_numpy(dtype=bool), True)
        where = np.append(pd.Index(list(f.allowed or ()), dtype="string").get_indexer(
            text.fillna("")), -1)
        codes = np.where(raw.cat.codes.to_numpy() < 0, len(text), raw.cat.codes.to_numpy())
        empty = unusable[codes]
        bad = ~empty & (where[codes] < 0)
        keep = ~(empty | bad)
        out = pd.Series(pd.Categorical.from_codes(np.where(keep, where[codes], -1),
                                                  dtype=f.dtype), index=raw.index)
        empty, bad = pd.Series(empty, index=raw.index), pd.Series(bad, index=raw.index)
        found.append(_problems(bad, frame, table, f.name, "unknown_value", file))
    elif f.kind == "date" and pd.api.types.is_datetime64_any_dtype(dtype):
        empty, out = raw.isna(), raw.astype("datetime64[s]")
    elif f.kind == "bool" and pd.api.types.is_bool_dtype(dtype):
        empty, out = raw.isna(), raw.astype("boolean")
    elif (f.kind == "int" and pd.api.types.is_numeric_dtype(dtype)
          and not pd.api.types.is_bool_dtype(dtype)):
        num = raw.astype("float64")
        empty = num.isna()
        bad = (num != np.floor(num)) & ~empty
        found.append(_problems(bad, frame, table, f.name, "not_integer", file))
        out = _in_range(num.where(~bad), f, frame, table, file, found)
    else:
        return None
    if f.required:
        found.insert(0, _problems(empty, frame, table, f.name, "missing_required", file))
    return out, found


def _in_range(num: pd.Series, f: Field, frame: pd.DataFrame, table: Table, file: str,
              found: list[pd.DataFrame]) -> pd.Series:
    """The whole numbers within the field's range (Int32); those outside are a problem."""
    rng = pd.Series(False, index=num.index)
    if f.minimum is not None:
        rng |= num < f.minimum
    if f.maximum is not None:
        rng |= num > f.maximum
    found.append(_problems(rng, frame, table, f.name, "out_of_range", file))
    return num.where(~rng).astype("Int32")


def _parse_field(raw: pd.Series, f: Field, table: Table, file: str
                 ) -> tuple[pd.Series, list[pd.DataFrame]]:
    """Parse one text column to its typed dtype; collect problems for values that fail. A column
    that is typed already is checked as it is (`_typed_field`)."""
    if _is_typed(raw):
        typed = _typed_field(raw, f, table, file)
        if typed is not None:
            return typed
        raw = _text(raw)
    frame = raw.to_frame()
    found: list[pd.DataFrame] = []
    text = _strip(raw)
    empty = text.isna() | (text == "")
    if (empty & text.notna()).any():
        text = text.mask(empty)
    if f.required:
        found.append(_problems(empty, frame, table, f.name, "missing_required", file))

    if f.kind == "date":
        parsed = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce")
        found.append(_problems(parsed.isna() & ~empty, frame, table, f.name, "bad_date", file))
        out = parsed.astype("datetime64[s]")
    elif f.kind == "int":
        num = pd.to_numeric(text, errors="coerce")
        bad = (num.isna() | (num != np.floor(num))) & ~empty
        found.append(_problems(bad, frame, table, f.name, "not_integer", file))
        out = _in_range(num.where(~bad), f, frame, table, file, found)
    elif f.kind == "bool":
        low = text.str.lower()
        val = pd.Series(pd.NA, index=raw.index, dtype="boolean")
        val[low.isin(TRUE).fillna(False)] = True
        val[low.isin(FALSE).fillna(False)] = False
        found.append(_problems(val.isna() & ~empty, frame, table, f.name, "bad_boolean", file))
        out = val
    elif f.kind == "category":
        bad = ~text.isin(f.allowed or ()) & ~empty
        found.append(_problems(bad, frame, table, f.name, "unknown_value", file))
        out = text.where(~bad).astype(f.dtype)
    else:
        out = text.astype("string")
        if f.pattern:
            # Checked once per distinct value (five school years, a few hundred municipality
            # codes among millions of rows), then spread to the rows.
            codes, distinct = pd.factorize(text)
            bad_format, bad_year = _pattern_checks(pd.Series(distinct, dtype="string"), f)
            row_bad = pd.Series(np.append(bad_format, False)[codes], index=raw.index)
            found.append(_problems(row_bad, frame, table, f.name, "bad_format", file))
            if bad_year is not None:
                row_bad = pd.Series(np.append(bad_year, False)[codes], index=raw.index)
                found.append(_problems(row_bad, frame, table, f.name, "bad_school_year", file))
    return out, found


def _pattern_checks(text: pd.Series, f: Field) -> tuple[np.ndarray, np.ndarray | None]:
    """Which (stripped, non-empty) values break the field's pattern, and for a school year which
    are not two consecutive years."""
    bad = ~text.str.fullmatch(f.pattern).fillna(True)
    if f.kind != "school_year":
        return bad.to_numpy(dtype=bool), None
    ok = text.where(~bad)
    first = pd.to_numeric(ok.str.slice(0, 4), errors="coerce")
    second = pd.to_numeric(ok.str.slice(5, 9), errors="coerce")
    year = (ok.notna() & (second != first + 1)).fillna(False)
    return bad.to_numpy(dtype=bool), year.to_numpy(dtype=bool)


def _validate_table(raw: pd.DataFrame, table: Table, file: str) -> tuple[pd.DataFrame, list[pd.DataFrame]]:
    typed = {}
    found: list[pd.DataFrame] = []
    for f in table.fields:
        typed[f.name], problems = _parse_field(raw[f.name], f, table, file)
        found.extend(problems)
    out = pd.DataFrame(typed, index=raw.index)

    key = list(table.key)
    dup = out[key].duplicated(keep="first") & out[key].notna().all(axis=1)
    label = "+".join(key)
    shown = pd.DataFrame({k: _text(raw.loc[dup, k]) for k in key}).fillna("")
    shown = shown[key[0]].str.cat([shown[k] for k in key[1:]], sep="|").rename(label).to_frame()
    found.append(_problems(dup, shown, table, label, "duplicate_key", file))
    for earlier, later in table.date_order:
        bad = (out[earlier] > out[later]).fillna(False)
        found.append(_problems(bad, raw, table, later, "date_order", file, other=earlier))
    return out, found


def validate(raw: dict[str, pd.DataFrame], files: dict[str, str] | None = None,
             flagged: dict[str, pd.DataFrame] | None = None) -> ValidationResult:
    """Validate text tables (as read by `reading.read_text_tables` or made by the generator).

    `flagged`: problems found before validation (the import's unknown codes), per table with
    `row` (index + 2), `field`, `value` and `reason`; they reject their rows like any other and
    replace what validation says about the same field of the same row (an unknown code, left
    empty, is not also a missing value)."""
    files = files or {name: TABLES[name].filename for name in TABLES}
    accepted: dict[str, pd.DataFrame] = {}
    rejected: dict[str, pd.DataFrame] = {}
    all_problems: list[pd.DataFrame] = []
    read = {}
    for name in ORDER:
        table = TABLES[name]
        # The index is the row's position in its file (line - 2); readers keep it through
        # dropped blank lines, so that reported line numbers stay true.
        frame = raw[name]
        read[name] = len(frame)
        typed, found = _validate_table(frame, table, files[name])
        for fk in table.foreign_keys:
            parent = accepted[fk.ref_table][list(fk.ref_fields)]
            child = typed[list(fk.fields)]
            present = child.notna().all(axis=1)
            known = pd.MultiIndex.from_frame(child).isin(pd.MultiIndex.from_frame(parent))
            bad = present & ~pd.Series(known, index=typed.index)
            found.append(_problems(bad, frame, table, fk.fields[0], "unknown_reference",
                                   files[name]))
        found = [p for p in found if not p.empty]
        pre = (flagged or {}).get(name)
        if pre is not None and len(pre):
            pre = pre.assign(table=name, file=files[name], other="", other_value="")
            keys = set(zip(pre["row"], pre["field"], strict=True))
            found = [p[[k not in keys for k in zip(p["row"], p["field"], strict=True)]]
                     for p in found] + [pre]
            found = [p for p in found if not p.empty]
        problems = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
        bad_rows = np.zeros(len(frame), dtype=bool)
        if not problems.empty:
            bad_rows = frame.index.isin(problems["row"].to_numpy() - 2)
            reasons = problems.groupby("row")["reason"].agg(lambda r: ";".join(sorted(set(r))))
            kept = _as_read(frame[bad_rows])
            rejected[name] = kept.assign(_row=kept.index + 2,
                                         _reasons=reasons.reindex(kept.index + 2).to_numpy())
        else:
            rejected[name] = _as_read(frame.iloc[0:0]).assign(_row=pd.Series(dtype="int64"),
                                                    _reasons=pd.Series(dtype="string"))
        # Without rejected rows the typed columns are taken as they are, not copied.
        accepted[name] = (typed[~bad_rows] if bad_rows.any() else typed).reset_index(drop=True)
        all_problems.append(problems)
    all_problems = [p for p in all_problems if not p.empty]
    problems = (
        # Root causes first: tables in dependency order, so a rejected school is listed before
        # the rows that point to it.
        pd.concat(all_problems, ignore_index=True)
        .assign(_order=lambda d: d["table"].map({t: i for i, t in enumerate(ORDER)}))
        .sort_values(["_order", "row", "field"], kind="stable")
        .drop(columns="_order")
        if all_problems
        else pd.DataFrame(columns=[*PROBLEM_COLUMNS, "other_value"])
    )
    return ValidationResult(
        tables={n: accepted[n] for n in TABLES},
        rejected={n: rejected[n] for n in TABLES},
        problems=problems.reset_index(drop=True),
        read={n: read[n] for n in TABLES},
        files=files,
    )


def format_problem(row: pd.Series) -> str:
    """One problem as a line for the command line: file, row, field, value and reason; for two
    dates in the wrong order, both fields and both values."""
    if row["reason"] == "date_order" and row.get("other"):
        return (f"{row['file']}, row {row['row']}, field {row['field']}: {row['field']} "
                f"{row['value']} is before {row['other']} {row['other_value']}")
    value = f" {row['value']!r}:" if row["value"] != "" else ":"
    return f"{row['file']}, row {row['row']}, field {row['field']}{value} {REASONS[row['reason']]}"


def validate_dir(data_dir: Path, columnar: bool = True) -> ValidationResult:
    """Read and validate every table in `data_dir` (a table without a file reads as empty and is
    listed in `absent`). `columnar=False` checks Parquet files through their text, as CSV files
    (the same result, slower; for tests)."""
    raw = read_text_tables(data_dir, columnar=columnar)
    result = validate(raw, {n: str(path) for n, path in table_files(data_dir).items()})
    del raw
    _release_memory()
    return replace(result, absent=tuple(absent_tables(data_dir)))


def _release_memory() -> None:
    """Give the memory of the files read back to the system: Arrow's allocator keeps freed blocks
    for reuse, some hundreds of megabytes after a national data set, which the analysis that
    follows (and its worker processes) would otherwise hold on top of the tables."""
    import sys

    if "pyarrow" in sys.modules:
        sys.modules["pyarrow"].default_memory_pool().release_unused()


def require_school_year(result: ValidationResult, school_year: str, where: object) -> None:
    """A report needs pupils in its school year: without a single enrolment (of the schools the
    result holds) there is nothing to report on, which is an error naming the years there are,
    not a report of empty tables."""
    enrolled = result.tables["enrolments"]["school_year"].dropna().astype(str)
    if (enrolled == school_year).any():
        return
    years = sorted(enrolled.unique())
    held = (f"the enrolments there cover {_years_text(years)}" if years
            else "there are no accepted enrolments at all")
    raise DataSetError(f"school year {school_year}: no data in {where} (no pupil is enrolled "
                       f"in that year); {held}")


def _years_text(years: list[str]) -> str:
    return ("school year " if len(years) == 1 else "school years ") + ", ".join(years)
