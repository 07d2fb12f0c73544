"""The plan of `render --all`: one task per report that params/ declares.

Per region and per municipality of the region, per school year from the region's first pilot year
up to the last school year in the data; each task carries its merged, validated params, so that a
wrong value stops the run before anything renders.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evaluation.data.reading import DataSetError, table_files
from evaluation.params import (
    DEFAULT_PARAMS_DIR,
    Params,
    ParamsError,
    Region,
    School,
    load_params,
    load_regions,
    load_synthetic,
    merged_params,
    region_files,
    school_year_of_date,
    school_year_start_year,
)
from evaluation.report.formatting import slug
from evaluation.run.sources import DEFAULT_SOURCES, Sources

# --- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One report: a region or one of its municipalities, in one school year."""

    region: str
    school_year: str
    municipality: str | None  # CBS code; None: the region's own report
    region_name: str
    unit_name: str | None  # municipality name; None: the whole region
    count_by: str  # how a municipality report counts pupils: "school" or "residence"
    formats: tuple[str, ...]
    notebooks: tuple[str, ...]  # sub-steps, in order
    params_hash: str = field(default="", compare=False)
    params: Params | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """`<region>/[<municipality>/]<school-year>`: the report's folder under the output."""
        unit = f"{slug(self.unit_name)}/" if self.unit_name else ""
        return f"{self.region}/{unit}{self.school_year}"

    @property
    def label(self) -> str:
        return f"{self.region_name}, {self.unit_name or 'hele regio'}, {self.school_year}"


def school_years(first: str, last: str) -> list[str]:
    """`2013-2014` .. `2016-2017`, both included (empty when last comes before first)."""
    return [f"{y}-{y + 1}" for y in range(school_year_start_year(first),
                                          school_year_start_year(last) + 1)]


def last_school_year(data_dir: Path | None, params_dir: Path = DEFAULT_PARAMS_DIR,
                     overrides: Sequence[str] = ()) -> str:
    """The last school year with enrolments in the data (read from the enrolments file only);
    for the synthetic data, `synthetic.last_school_year`."""
    if data_dir is None:
        return load_synthetic(list(overrides), params_dir).last_school_year
    path = table_files(Path(data_dir))["enrolments"]
    if not path.is_file():
        raise DataSetError(f"{path}: file not found (table enrolments is required)")
    years = _school_years_in(path)
    valid = [y for y in years if len(y) == 9 and y[4] == "-" and y[:4].isdigit()]
    if not valid:
        raise DataSetError(f"{path}: no school_year values (as 2014-2015) to plan reports by")
    return max(valid, key=school_year_start_year)


def _school_years_in(path: Path) -> set[str]:
    """The distinct values of the file's school_year column, read columnar (only that column;
    none when the file has no such column)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        if "school_year" not in pq.read_schema(path).names:
            return set()
        column = pq.read_table(path, columns=["school_year"]).column("school_year")
    else:
        import pyarrow.csv as pacsv

        try:
            column = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                include_columns=["school_year"], column_types={"school_year": pa.string()},
                strings_can_be_null=False)).column("school_year")
        except (pa.ArrowInvalid, KeyError):  # no such column, or a file pyarrow cannot split
            return _school_years_by_row(path)
    column = pc.utf8_trim_whitespace(pc.cast(column, pa.string()))
    return {y for y in pc.unique(column).to_pylist() if y is not None}


def _school_years_by_row(path: Path) -> set[str]:
    """The same read row by row, for a CSV file the columnar reader rejects (ragged rows: the
    validation names them later); a missing column gives no years."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return {(row.get("school_year") or "").strip() for row in csv.DictReader(fh)}


def _cached_last_school_year(data_dir: Path, build_root: Path) -> str:
    """`last_school_year`, remembered per enrolments file (size and time): reading a large file
    would dominate a run with nothing to do."""
    path = table_files(data_dir)["enrolments"]
    cache = build_root / ".last-school-year.json"
    if not path.is_file():
        return last_school_year(data_dir)  # which says what is missing
    stat = path.stat()
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        known = json.loads(cache.read_text(encoding="utf-8"))
        if known.get("key") == key:
            return known["last"]
    last = last_school_year(data_dir)
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"key": key, "last": last}), encoding="utf-8")
    return last


def _params_hash(params: Params, schools: dict[str, School]) -> str:
    """The report's params as validated, plus the comparison schools it takes from other regions'
    files: a change to another region's own schools or texts leaves this report alone."""
    borrowed = [schools[s].model_dump(mode="json") for s in params.region.comparison_schools
                if s in schools]
    text = json.dumps({"params": params.model_dump(mode="json"), "comparison": borrowed},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _validated(merged: dict[str, Any], region: str, school_year: str, overrides: Sequence[str],
               params_dir: Path, municipality: str | None) -> Params:
    """`load_params` for one report of a region whose files were read and checked once already:
    the same schema on the same merged mapping, without re-reading every YAML file per report
    (which made planning slow). Errors go through `load_params` for its messages."""
    data = {**merged, "school_year": school_year}
    if municipality is not None:
        data["municipality"] = municipality
    try:
        return Params.model_validate(data)
    except ValidationError:
        return load_params(region, school_year, list(overrides), params_dir, municipality)


def task_for(params: Params, formats: Sequence[str] | None, schools: dict[str, School],
             sources: Sources = DEFAULT_SOURCES) -> Task:
    return Task(params.region.id, params.school_year, params.municipality, params.region.name,
                params.municipality_name, params.analysis.count_by,
                tuple(formats or params.report.formats),
                tuple(p.name for p in sources.notebooks()), _params_hash(params, schools), params)


def first_report_year(region: Region, municipality: str | None, count_by: str) -> str | None:
    """The first school year with something to evaluate: the first pilot year of the region, or
    of the municipality's own schools when a municipality report counts pupils by school
    location (a municipality whose schools have no pilot yet has no pilot group; pupils counted
    by residence may attend any pilot school of the region)."""
    if municipality is None or count_by != "school":
        return region.first_pilot_year
    starts = [s.pilot_start for s in region.pilot_schools
              if s.municipality == municipality and s.pilot_start]
    return school_year_of_date(min(starts)) if starts else None


def plan(last_year: str, params_dir: Path = DEFAULT_PARAMS_DIR, region: str | None = None,
         school_year: str | None = None, formats: Sequence[str] | None = None,
         overrides: Sequence[str] = (), sources: Sources = DEFAULT_SOURCES) -> list[Task]:
    """Every report params/ declares up to `last_year`: per region (or only `region`), for the
    region and each of its municipalities, per school year from the first year with a pilot to
    evaluate (`first_report_year`; or only `school_year`). Reads the params files only; each
    task's params are validated. Ordered by region, school year, then region before its
    municipalities."""
    files = region_files(params_dir)
    if region is not None and region not in files:
        raise ParamsError(f"region {region!r}: no params/{region}.yml "
                          f"(known regions: {', '.join(files) or 'none'})")
    regions = load_regions(params_dir)
    schools = {s.id: s for r in regions for s in r.schools}
    tasks = []
    for reg in regions:
        if (region is not None and reg.id != region) or reg.first_pilot_year is None:
            continue
        merged = merged_params(reg.id, None, list(overrides), params_dir)
        # The region's report in its first pilot year, with every check load_params makes.
        base = load_params(reg.id, reg.first_pilot_year, list(overrides), params_dir)
        count_by = base.analysis.count_by
        for year in school_years(reg.first_pilot_year, last_year):
            if school_year is not None and year != school_year:
                continue
            for code in [None, *(m.code for m in reg.municipalities)]:
                first = first_report_year(reg, code, count_by)
                if first is None or school_year_start_year(year) < school_year_start_year(first):
                    continue
                params = _validated(merged, reg.id, year, overrides, params_dir, code)
                tasks.append(task_for(params, formats, schools, sources))
    if not tasks:
        which = f"region {region}" if region else "any region"
        year = f"school year {school_year}" if school_year else "any school year"
        raise ParamsError(f"no report to render for {which} and {year}: reports start at the "
                          f"first pilot year and end at the data's last school year "
                          f"({last_year})")
    return tasks
