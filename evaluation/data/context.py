"""Regional context from the national statistics office (CBS StatLine open data).

The whitepaper sets the region beside the country: youth with youth care per municipality and
year (table 85098NED and similar, by referrer where a table has it) and the youth population.
Our machines cannot reach the open-data service, so the work is split in two:

- `refresh` runs where the network is reachable and writes a cache: per table a folder with the
  data in the API's own shape (`data.csv`), the table's metadata (`DataProperties.json` with keys,
  titles and units, `TableInfos.json`, the dimension code lists) and `SOURCE.json` (table id,
  download time, API url, filter). It downloads everything first and only then writes, beside the
  cache, renaming the finished folders into place: a failed refresh never changes the cache.
- `load_context` reads the cache only, never the network, so a render never fails because the
  network is down: without a cached extract it returns a result that says so in Dutch.

Figures are CBS's own: a suppressed (empty) cell stays missing and is shown as "·", never filled
or estimated. Values carry the titles and units of the table's metadata when that is cached,
otherwise only their column keys (the metadata is the only source of what a measure means).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from evaluation.labels import dutch_date

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CACHE_DIR = REPO / "data" / "cbs"
DEFAULT_TABLES = ("85098NED",)  # youth care by region (jeugdhulp; regio)
COUNTRY = "NL01"  # the region code of the Netherlands as a whole

DATA_FILE = "data.csv"
SOURCE_FILE = "SOURCE.json"
PROPERTIES_FILE = "DataProperties.json"

UNAVAILABLE = ("Contextgegevens van het CBS waren niet beschikbaar toen dit rapport werd gemaakt "
               "(geen verbinding met CBS open data en geen eerder opgehaalde cijfers); deze "
               "paragraaf vergelijkt de regio daarom niet met de rest van het land.")
NOT_REACHABLE = "CBS open data not reachable; the cache was not changed"

TABLE_ID = re.compile(r"\d{5}[A-Za-z]{3}")  # 85098NED, 03759ned, 82070ENG
MUNICIPALITY = re.compile(r"GM\d{4}")
REGION_CODE = re.compile(r"(NL|LD|PV|CR|JZ|GM|WK|BU)[0-9A-Z]{2,8}")
PERIOD_CODE = re.compile(r"(\d{4})([A-Z]{2})(\d{2})")
MEASURE_KEY = re.compile(r".+_\d+")  # the API numbers every measure: Key_1, Key_2, ...
MISSING = {"", "."}  # an empty cell, or the untyped data set's mark of a suppressed figure

PERIOD_KINDS = {"JJ": "", "KW": "kwartaal ", "MM": "maand ", "HJ": "halfjaar "}


class ContextRefreshError(RuntimeError):
    """A refresh could not complete; the cache is as it was before."""


# --- reading an extract ------------------------------------------------------------------------


def _column_like(raw: pd.DataFrame, name: str, pattern: re.Pattern[str]) -> str | None:
    """The column called `name`, else the first whose every value matches `pattern`."""
    if name in raw.columns:
        return name
    for col in raw.columns:
        values = raw[col].astype("string").str.strip()
        if len(values) and values.str.fullmatch(pattern.pattern).fillna(False).all():
            return str(col)
    return None


def tidy(raw: pd.DataFrame, measures: Sequence[str] | None = None) -> pd.DataFrame:
    """An extract in the API's shape (one column per measure) as a typed long table.

    Columns of the result: region_code, period, year, any further dimension (for example the
    referrer), measure_key, value. measures: the measure keys (from the metadata); without them a
    column is a measure when its key ends in `_N`, as the API names every measure. Empty cells
    (and the untyped data set's ".") stay missing: they are figures the office did not publish.
    """
    raw = raw.drop(columns=[c for c in ("ID",) if c in raw.columns]).copy()
    raw.columns = [str(c).strip() for c in raw.columns]
    region = _column_like(raw, "RegioS", REGION_CODE)
    period = _column_like(raw, "Perioden", PERIOD_CODE)
    if region is None or period is None:
        raise ValueError("extract has no region column (RegioS, codes like GM0014) or no period "
                         f"column (Perioden, codes like 2022JJ00); columns: {list(raw.columns)}")
    keys = [c for c in raw.columns if c not in (region, period)
            and (c in measures if measures is not None else MEASURE_KEY.fullmatch(c))]
    if not keys:
        raise ValueError(f"extract has no measure columns (keys ending in _N): {list(raw.columns)}")
    dims = [c for c in raw.columns if c not in (region, period, *keys)]
    text = raw.astype("string").apply(lambda c: c.str.strip())
    wide = pd.DataFrame({"region_code": text[region], "period": text[period]})
    for d in dims:
        wide[d] = text[d]
    wide["_row"] = range(len(wide))
    long = wide.join(text[keys]).melt(id_vars=["region_code", "period", *dims, "_row"],
                                      value_vars=keys, var_name="measure_key", value_name="cell")
    order = {k: i for i, k in enumerate(keys)}
    long = long.assign(_m=long["measure_key"].map(order)).sort_values(["_row", "_m"], kind="stable")
    cell = long["cell"].where(~long["cell"].fillna("").isin(MISSING))
    value = pd.to_numeric(cell, errors="coerce").astype("Float64")
    bad = cell.notna() & value.isna()
    if bad.any():
        row = long[bad].iloc[0]
        raise ValueError(f"extract: {row['measure_key']} of {row['region_code']} "
                         f"{row['period']} is not a number: {row['cell']!r}")
    year = long["period"].str.extract(PERIOD_CODE.pattern)[0]
    out = pd.DataFrame({
        "region_code": long["region_code"].astype("string"),
        "period": long["period"].astype("string"),
        "year": pd.to_numeric(year, errors="coerce").astype("Int64"),
        **{d: long[d].astype("string") for d in dims},
        "measure_key": long["measure_key"].astype("string"),
        "value": value,
    })
    return out.reset_index(drop=True)


def read_extract(path: Path, measures: Sequence[str] | None = None) -> pd.DataFrame:
    """Read an extract CSV in the API's shape (as `refresh` writes it) into the long format of
    `tidy`. Every cell is read as text first, so that an empty cell stays missing rather than
    becoming 0 and codes keep their leading zeros."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    return tidy(raw, measures)


# --- the cache ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measure:
    """One measure of a table: its API key and, when the metadata is cached, title and unit."""

    key: str
    title: str | None = None
    unit: str | None = None
    decimals: int | None = None

    @property
    def label(self) -> str:
        if not self.title:
            return self.key
        return f"{self.title} ({self.unit})" if self.unit else self.title


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _measures_from_properties(properties: Any) -> dict[str, Measure]:
    """Measures (DataProperties entries of type Topic) by key."""
    out = {}
    for p in properties if isinstance(properties, list) else []:
        if isinstance(p, dict) and p.get("Type") == "Topic" and p.get("Key"):
            decimals = p.get("Decimals")
            out[str(p["Key"]).strip()] = Measure(
                key=str(p["Key"]).strip(), title=(p.get("Title") or "").strip() or None,
                unit=(p.get("Unit") or "").strip() or None,
                decimals=int(decimals) if isinstance(decimals, int | float) else None)
    return out


def _code_titles(entries: Any) -> dict[str, str]:
    """{code: title} of a cached dimension list (RegioS.json, Perioden.json)."""
    return {str(e["Key"]).strip(): str(e.get("Title") or "").strip()
            for e in entries if isinstance(e, dict) and e.get("Key")} if isinstance(
        entries, list) else {}


def store_extract(
    cache_dir: Path,
    table_id: str,
    frame: pd.DataFrame,
    metadata: Mapping[str, Any] | None = None,
    source: Mapping[str, Any] | None = None,
) -> Path:
    """Write one table into the cache, atomically; return its folder.

    frame: the data in the API's shape (one column per measure, region and period codes).
    metadata: {name: list of records} such as DataProperties, TableInfos, RegioS, Perioden; each
    is written as <name>.json. source: written as SOURCE.json. The folder is built beside the
    cache and renamed into place, so a reader sees the old extract or the new one, never half.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=f".staging-{table_id}-", dir=cache_dir))
    try:
        _write_table(staged, frame, metadata or {}, source or {"table_id": table_id})
        return _install(staged, cache_dir / table_id)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _write_table(folder: Path, frame: pd.DataFrame, metadata: Mapping[str, Any],
                 source: Mapping[str, Any]) -> None:
    clean = frame.drop(columns=[c for c in ("ID",) if c in frame.columns]).copy()
    for col in clean.columns:
        if clean[col].dtype == object or isinstance(clean[col].dtype, pd.StringDtype):
            clean[col] = clean[col].astype("string").str.strip()  # the API pads codes: "GM0014  "
    clean.to_csv(folder / DATA_FILE, index=False)
    for name, records in metadata.items():
        (folder / f"{name}.json").write_text(
            json.dumps(records, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    (folder / SOURCE_FILE).write_text(
        json.dumps(dict(source), indent=1, ensure_ascii=False, default=str), encoding="utf-8")


def _install(staged: Path, target: Path) -> Path:
    """Rename a finished folder into place, keeping the old one until the new one is there."""
    final = target.parent / f".new-{target.name}-{uuid.uuid4().hex[:8]}"
    os.replace(staged, final)
    old = None
    if target.exists():
        old = target.parent / f".old-{target.name}-{uuid.uuid4().hex[:8]}"
        os.replace(target, old)
    try:
        os.replace(final, target)
    except OSError:
        if old is not None:
            os.replace(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return target


# --- refresh (network) -------------------------------------------------------------------------


def _filter(municipalities: Sequence[str] | None) -> str | None:
    """OData filter for the municipalities plus the country; None for the whole table.

    `substringof` because the API pads region keys with spaces ("GM0014  ")."""
    if not municipalities:
        return None
    codes = [*dict.fromkeys(municipalities), COUNTRY]
    return " or ".join(f"substringof('{c}',RegioS)" for c in codes)


def _api_url(cbsodata: Any, table_id: str) -> str:
    options = cbsodata.options
    scheme = "https" if getattr(options, "use_https", True) else "http"
    return f"{scheme}://{options.catalog_url}/ODataFeed/odata/{table_id}/TypedDataSet"


def _download(cbsodata: Any, table_id: str, filters: str | None) -> dict[str, Any]:
    """Data and metadata of one table, in memory.

    `download_data` rather than `get_data`: get_data replaces the region and period codes by
    their titles ("GM0014" -> "Groningen"), and the report joins on codes. download_data also
    brings DataProperties (keys, titles, units), TableInfos and the dimension code lists, which
    are what `get_meta` would fetch one by one.
    """
    try:
        return cbsodata.download_data(table_id, typed=True, filters=filters)
    except OSError as exc:  # requests' ConnectionError, Timeout and HTTPError are OSErrors
        response = getattr(exc, "response", None)
        if response is not None and getattr(response, "status_code", None):
            raise ContextRefreshError(
                f"CBS open data refused table {table_id} (HTTP {response.status_code}); "
                "the cache was not changed") from None
        raise ContextRefreshError(f"{NOT_REACHABLE} (table {table_id}: "
                                  f"{type(exc).__name__}: {exc})") from None


def refresh(
    cache_dir: Path,
    table_ids: Sequence[str],
    municipalities: Sequence[str] | None = None,
    now: dt.datetime | None = None,
) -> list[Path]:
    """Download each table (data and metadata) from CBS open data into the cache.

    municipalities: CBS codes (GM....) to keep, plus the country (NL01); None keeps every region.
    Every table is downloaded (and its shape checked) before anything is written, so a network
    failure halfway leaves the cache exactly as it was; raises ContextRefreshError with a message
    that says so. Each table's folder is then replaced by a rename. Returns the folders written.
    """
    import cbsodata

    bad = [t for t in table_ids if not TABLE_ID.fullmatch(t)]
    wrong = [m for m in municipalities or () if not MUNICIPALITY.fullmatch(m)]
    if bad or wrong or not table_ids:
        raise ContextRefreshError(
            "nothing refreshed: " + "; ".join(
                ([f"table ids look like 85098NED, not {', '.join(bad)}"] if bad else [])
                + ([f"municipality codes look like GM0356, not {', '.join(wrong)}"] if wrong
                   else [])
                + (["no table given"] if not table_ids else [])))
    filters = _filter(municipalities)
    when = (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    downloaded = {}
    for table_id in table_ids:
        tables = _download(cbsodata, table_id, filters)
        data = tables.get("TypedDataSet", tables.get("UntypedDataSet"))
        if not isinstance(data, list) or not data:
            raise ContextRefreshError(f"CBS open data returned no rows for table {table_id}"
                                      + (f" with filter {filters}" if filters else "")
                                      + "; the cache was not changed")
        info = (tables.get("TableInfos") or [{}])[0]
        source = {
            "table_id": table_id,
            "title": info.get("Title"),
            "modified": info.get("Modified"),
            "downloaded_at": when,
            "api_url": _api_url(cbsodata, table_id),
            "filters": filters,
            "rows": len(data),
            "client": f"cbsodata {getattr(cbsodata, '__version__', '?')}",
        }
        metadata = {k: v for k, v in tables.items() if k not in ("TypedDataSet", "UntypedDataSet")}
        frame = pd.DataFrame(data)
        measures = list(_measures_from_properties(metadata.get("DataProperties"))) or None
        try:
            tidy(frame.astype("string"), measures)  # the shape the reader expects, before writing
        except ValueError as exc:
            raise ContextRefreshError(f"table {table_id} has an unexpected shape ({exc}); "
                                      "the cache was not changed") from None
        downloaded[table_id] = (frame, metadata, source)
    written = []
    for table_id, (frame, metadata, source) in downloaded.items():
        written.append(store_extract(cache_dir, table_id, frame, metadata, source))
    return written


def context_refresh_command(cache_dir: Path, tables: list[str],
                            municipalities: list[str] | None) -> int:
    """`evaluation context refresh`: 0 when every table is cached, 2 when nothing changed."""
    tables = list(tables) or list(DEFAULT_TABLES)
    try:
        written = refresh(cache_dir, tables, municipalities)
    except ContextRefreshError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for folder in written:
        source = _read_json(folder / SOURCE_FILE) or {}
        print(f"{folder.name}: {source.get('rows', '?')} rows "
              f"({source.get('title') or 'CBS StatLine'}) -> {folder}")
    return 0


# --- reading the cache for a report ------------------------------------------------------------


@dataclass
class ContextResult:
    """What the report can say about the region's context, read from the cache alone.

    status: "available" (figures for at least one requested municipality), "not_in_extract" (an
    extract is cached but holds none of them) or "unavailable" (nothing usable is cached).
    message: Dutch sentences for the report: the source used, or why there is none.
    data: long table (see `tidy`) of the requested municipalities and the country, if present.
    """

    status: Literal["available", "not_in_extract", "unavailable"]
    message: str
    table_id: str
    requested: list[str]
    names: dict[str, str] = field(default_factory=dict)
    data: pd.DataFrame = field(default_factory=pd.DataFrame)
    measures: list[Measure] = field(default_factory=list)
    labelled_by: Literal["metadata", "keys"] = "keys"
    periods: list[str] = field(default_factory=list)
    downloaded_at: str | None = None
    api_url: str | None = None
    missing: list[str] = field(default_factory=list)
    detail: str = ""  # English, for logs: why the status is what it is

    @property
    def available(self) -> bool:
        return self.status == "available"


def _dutch_date(iso: str | None) -> str | None:
    try:
        day = dt.datetime.fromisoformat(str(iso)).date()
    except ValueError:
        return None
    return dutch_date(day)


def period_label(code: str, titles: Mapping[str, str] | None = None) -> str:
    """"2022JJ00" -> "2022" (the cached title when there is one)."""
    if titles and titles.get(code):
        return titles[code]
    m = PERIOD_CODE.fullmatch(code)
    if not m:
        return code
    year, kind, number = m.groups()
    if kind == "JJ":
        return year
    return f"{year} {PERIOD_KINDS.get(kind, kind + ' ')}{int(number)}".strip()


def _join(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " en " + items[-1]


def load_context(
    cache_dir: Path,
    table_id: str,
    municipality_codes: Sequence[str],
    names: Mapping[str, str] | None = None,
) -> ContextResult:
    """The cached figures of `table_id` for the municipalities (and the country), never raising
    for a missing or unreadable cache: a render must not fail because the network was down.

    names: {code: name} for the report (e.g. from the region's params); otherwise the cached
    region titles, otherwise the codes.
    """
    requested = list(municipality_codes)
    folder = Path(cache_dir) / table_id
    result = ContextResult("unavailable", UNAVAILABLE, table_id, requested)
    if not (folder / DATA_FILE).is_file():
        result.detail = f"no cached extract of {table_id} in {cache_dir}"
        return result
    properties = _read_json(folder / PROPERTIES_FILE)
    by_key = _measures_from_properties(properties)
    try:
        frame = read_extract(folder / DATA_FILE, list(by_key) or None)
    except (OSError, ValueError) as exc:
        result.detail = f"cached extract {folder / DATA_FILE} is unreadable: {exc}"
        return result
    source = _read_json(folder / SOURCE_FILE) or {}
    region_titles = _code_titles(_read_json(folder / "RegioS.json"))
    period_titles = _code_titles(_read_json(folder / "Perioden.json"))
    keys = list(dict.fromkeys(frame["measure_key"].tolist()))
    result.measures = [by_key.get(k, Measure(k)) for k in keys]
    result.labelled_by = "metadata" if by_key and all(k in by_key for k in keys) else "keys"
    result.downloaded_at = source.get("downloaded_at")
    result.api_url = source.get("api_url")
    result.names = {c: (names or {}).get(c) or region_titles.get(c) or c
                    for c in [*requested, COUNTRY]}
    if COUNTRY not in (names or {}) and COUNTRY not in region_titles:
        result.names[COUNTRY] = "Nederland"
    present = set(frame["region_code"].dropna())
    result.missing = [c for c in requested if c not in present]
    result.data = frame[frame["region_code"].isin([*requested, COUNTRY])].reset_index(drop=True)
    all_periods = list(dict.fromkeys(frame["period"].dropna()))
    result.periods = list(dict.fromkeys(result.data["period"].dropna())) or all_periods
    when = _dutch_date(result.downloaded_at)
    extract = (f"het CBS-extract van tabel {table_id} (periode "
               f"{_join([period_label(p, period_titles) for p in result.periods]) or 'onbekend'}, "
               + (f"gedownload op {when})" if when else "downloaddatum onbekend)"))
    missing_names = [f"{result.names[c]} ({c})" if result.names[c] != c else c
                     for c in result.missing]
    if requested and len(result.missing) == len(requested):
        result.status = "not_in_extract"
        result.message = (f"De gemeenten {_join(missing_names)} staan niet in {extract}. "
                          + UNAVAILABLE)
        result.detail = f"none of {requested} is in the cached extract of {table_id}"
        return result
    result.status = "available"
    labels = ("Titels en eenheden komen uit de metadata van de tabel."
              if result.labelled_by == "metadata" else
              "De metadata van de tabel (titels en eenheden) zijn niet in de cache: de kolommen "
              "dragen de sleutels van de open-data-API.")
    text = (f"Bron: {extract}. {labels} Een · betekent dat het CBS "
            "dit cijfer niet publiceert (te klein); het is niet aangevuld of geschat.")
    if result.missing:
        text += (f" {'De gemeente' if len(missing_names) == 1 else 'De gemeenten'} "
                 f"{_join(missing_names)} {'staat' if len(missing_names) == 1 else 'staan'} "
                 "niet in dit extract.")
    result.message = text
    return result
