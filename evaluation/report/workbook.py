"""The Excel workbook beside each whitepaper: the report's tables and every estimate in numbers.

Readers who want to reuse a figure should not have to copy it out of a PDF. The workbook holds
exactly what the report shows: each table a notebook showed (`notebook.show_table` keeps a copy
in the build dir's `tables/`, already through disclosure control), one sheet per table with its
caption; the estimate table in full precision ("Schattingen": 16 significant digits, more than
Excel keeps; the numbers behind every effect in the text, with counts of records rounded and
small ones withheld like every published count); and a "Toelichting" sheet saying what the
workbook covers and which rules applied.

Layout per sheet: the caption in row 1, an empty row, the header (bold) and the rows. The empty
row keeps the caption out of the table, for screen readers and for `evaluation audit`, which reads
each block of rows as a table with its first row as the header.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.styles import Alignment, Font
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

import evaluation
from evaluation.params import Params
from evaluation.report.provenance import params_hash

#: In the tables dir: the table names in the order the report shows them.
TABLE_ORDER_FILE = "_order.json"
INFO_SHEET = "Toelichting"
ESTIMATES_SHEET = "Schattingen"
PARAMS_SHEET = "Parameters"
MAX_SHEET_NAME = 31  # Excel's limit
_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
SUPPRESSED = "·"
BOLD = Font(bold=True)

# Estimate columns in the order shown, with Dutch headers. Counts of records are rounded and
# withheld below the threshold (see `_protect`); schools are public and shown as they are.
ESTIMATE_COLUMNS = {
    "name": "Indicator",
    "indicator": "Code indicator",
    "theme": "Thema",
    "primary": "Primaire indicator",
    "comparison": "Vergelijking",
    "method": "Methode",
    "unit": "Schaal",
    "estimate": "Schatting",
    "ci_low": "Ondergrens interval",
    "ci_high": "Bovengrens interval",
    "p_value": "p-waarde",
    "p_value_adjusted": "p-waarde gecorrigeerd",
    "significant": "Significant",
    "draws": "Trekkingen of toewijzingen",
    "p_value_bound": "Kleinst haalbare p-waarde",
    "mde": "Minimaal detecteerbaar effect",
    "n": "Aantal waarnemingen",
    "n_missing": "Waarnemingen zonder waarde",
    "n_clusters": "Scholen in de vergelijking",
    "better": "Gunstige richting",
    "note": "Opmerking",
}
ROUNDED_COUNTS = ("n", "n_missing")
DIRECTIONS = {"lower": "lager", "higher": "hoger", "unchanged": "gelijk"}
NUMBER_FORMATS = {"estimate": "0.000", "ci_low": "0.000", "ci_high": "0.000", "mde": "0.000",
                  "p_value": "0.0000", "p_value_adjusted": "0.0000", "p_value_bound": "0.0000",
                  "draws": "0"}


def sheet_names(names: list[str], reserved: tuple[str, ...] = (INFO_SHEET, ESTIMATES_SHEET)
                ) -> list[str]:
    """Valid, unique sheet names for `names`: no []:*?/\\ characters, at most 31 characters, and
    unique ignoring case (as Excel compares them), also against the `reserved` sheets."""
    taken = {r.casefold() for r in reserved}
    out = []
    for name in names:
        base = _FORBIDDEN.sub("-", name).strip("' ") or "Tabel"
        candidate, i = base[:MAX_SHEET_NAME], 1
        while candidate.casefold() in taken or candidate.casefold() == "history":
            i += 1
            suffix = f" ({i})"
            candidate = base[:MAX_SHEET_NAME - len(suffix)] + suffix
        taken.add(candidate.casefold())
        out.append(candidate)
    return out


def _link(cell, sheet: str) -> None:
    """Make a contents cell a link to the sheet it names."""
    from openpyxl.worksheet.hyperlink import Hyperlink

    cell.hyperlink = Hyperlink(ref=cell.coordinate, location=f"'{sheet}'!A1", display=sheet)
    cell.font = Font(color="0B4F8A", underline="single")


#: Words a sheet name must not end on: "Kerncijfers van de" reads as cut off.
_DANGLING = {"de", "het", "een", "van", "en", "of", "per", "op", "in", "met", "voor", "naar",
             "tot", "bij", "aan", "uit", "ten", "t.o.v.", "door", "over", "om", "die", "dat",
             "opzichte"}


#: The standard subtitles of the theme tables ("Zorgroutes: effecten van de pilot per
#: vergelijking"), shortened for a sheet name: "Zorgroutes, effecten".
_SUBTITLES = (("waarde vóór de start", "voor en na"), ("effecten van de pilot", "effecten"))


def caption_title(caption: str, fallback: str) -> str:
    """A Dutch sheet name from a table's caption: its words up to the first comma, colon or
    bracket, cut at a word boundary to fit Excel's 31 characters (the table id when the caption
    is empty); a theme table's standard subtitle is kept in short ("Zorgroutes, effecten")."""
    head = re.split(r"[,:;(\[—]| - ", caption, maxsplit=1)[0].strip()
    if not head:
        return fallback
    rest = caption[len(head):].lstrip(" :")
    for start, short in _SUBTITLES:
        if rest.startswith(start) and len(head) + len(short) + 2 <= MAX_SHEET_NAME:
            return f"{head}, {short}"
    if len(head) <= MAX_SHEET_NAME:
        return head
    words = head[:MAX_SHEET_NAME + 1].rsplit(" ", 1)[0][:MAX_SHEET_NAME].split()
    while len(words) > 1 and words[-1].casefold() in _DANGLING:
        words.pop()  # whole words, and not ending mid-phrase
    cut = " ".join(words)
    return cut if len(cut) >= 8 else head[:MAX_SHEET_NAME]


def report_tables(tables_dir: Path) -> list[tuple[str, str, pd.DataFrame]]:
    """(name, caption, table) of every table the notebooks kept, in the report's order."""
    if not tables_dir.is_dir():
        return []
    captions = {p.stem: json.loads(p.read_text(encoding="utf-8"))
                for p in tables_dir.glob("*.json") if p.name != TABLE_ORDER_FILE}
    order_file = tables_dir / TABLE_ORDER_FILE
    order = json.loads(order_file.read_text(encoding="utf-8")) if order_file.is_file() else []
    rest = sorted((n for n in captions if n not in order),
                  key=lambda n: ((tables_dir / f"{n}.json").stat().st_mtime_ns, n))
    out = []
    for name in [n for n in order if n in captions] + rest:
        data = tables_dir / f"{name}.parquet"
        if data.is_file():
            out.append((name, str(captions[name].get("caption", "")), pd.read_parquet(data)))
    return out


def _protect(values: pd.Series, min_count: int, base: int) -> list[object]:
    """Counts as the report publishes them: below the threshold withheld, others rounded."""
    from evaluation.report.disclosure import round_to_base

    rounded = round_to_base(values, base)
    return [SUPPRESSED if pd.isna(v) or v < min_count or r < min_count else int(r)
            for v, r in zip(values, rounded, strict=True)]


def estimates_sheet_frame(estimates: pd.DataFrame, params: Params) -> pd.DataFrame:
    """The estimate table with Dutch headers and values, counts protected, numbers untouched."""
    from evaluation.report.findings import UNIT_NAMES

    t = estimates.copy()
    for col in ROUNDED_COUNTS:
        t[col] = _protect(t[col], params.disclosure.min_count, params.disclosure.rounding_base)
    for col in ("primary", "significant"):
        t[col] = t[col].map(lambda v: "" if pd.isna(v) else ("ja" if v else "nee"))
    t["unit"] = t["unit"].map(lambda u: UNIT_NAMES.get(u, u))
    t["better"] = t["better"].map(lambda b: DIRECTIONS.get(b, b))
    t["note"] = t["note"].fillna("")
    return t[list(ESTIMATE_COLUMNS)].rename(columns=ESTIMATE_COLUMNS)


def _cell(value: object) -> object:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return value


def _write_table(ws: Worksheet, caption: str, frame: pd.DataFrame,
                 formats: dict[str, str] | None = None) -> None:
    ws.append([caption])
    ws["A1"].font = Font(bold=True, size=12)
    ws.append([])
    ws.append([str(c) for c in frame.columns])
    for cell in ws[3]:
        cell.font = BOLD
        cell.alignment = Alignment(wrap_text=True, vertical="top")
    for row in frame.itertuples(index=False):
        ws.append([_cell(v) for v in row])
    for j, col in enumerate(frame.columns, start=1):
        fmt = (formats or {}).get(str(col))
        if fmt:
            for (cell,) in ws.iter_rows(min_row=4, min_col=j, max_col=j):
                cell.number_format = fmt
        width = max([len(str(col))] + [len(str(v)) for v in frame[col].head(200)])
        ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, 8), 60)
    ws.freeze_panes = "A4"


def _unit_text(params: Params) -> str:
    if params.municipality_name is None:
        return "hele regio"
    counted = ("leerlingen geteld naar hun woongemeente" if params.analysis.count_by == "residence"
               else "leerlingen geteld naar de vestigingsgemeente van hun school")
    return f"gemeente {params.municipality_name} ({counted})"


def params_frame(params: Params) -> pd.DataFrame:
    """The merged params as rows of (setting, value): one row per leaf, lists in one cell."""
    rows: list[tuple[str, str]] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict) and value:
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        else:
            rows.append((prefix, json.dumps(value, ensure_ascii=False)
                         if isinstance(value, list | dict) else "" if value is None else str(value)))

    walk("", params.model_dump(mode="json"))
    return pd.DataFrame(rows, columns=["Instelling", "Waarde"])


def embed_order(document: Path | None) -> list[str]:
    """The labels of the cells a report document embeds, in the order the reader meets them."""
    if document is None or not Path(document).is_file():
        return []
    # A numbered table's cell is labelled tbl-<name>; the workbook knows it by <name>.
    return [label.removeprefix("tbl-") for label in
            re.findall(r"\{\{<\s*embed\s+[^#>\s]+#([\w-]+)",
                       Path(document).read_text(encoding="utf-8"))]


def write_workbook(tables_dir: Path, estimates_file: Path | None, out: Path, params: Params,
                   generated_at: dt.datetime | None = None, document: Path | None = None
                   ) -> Path:
    """Write `out` (whitepaper.xlsx) from a build dir's tables and estimates (no estimates sheet
    without an estimates file); returns `out`. With the report's `document`, the sheets follow
    the order in which the report shows the tables (the summary first), not the order in which
    the notebooks ran."""
    tables = report_tables(tables_dir)
    order = embed_order(document)
    if order:
        rank = {name: i for i, name in enumerate(order)}
        tables = sorted(tables, key=lambda t: rank.get(t[0], len(rank)))  # stable for the rest
    estimates = (estimates_sheet_frame(pd.read_parquet(estimates_file), params)
                 if estimates_file is not None and Path(estimates_file).is_file() else None)
    names = sheet_names([caption_title(caption, name) for name, caption, _ in tables])
    when = (generated_at or dt.datetime.now().astimezone()).strftime("%Y-%m-%d %H:%M %Z").strip()
    d = params.disclosure

    book = Workbook()
    info = book.active
    info.title = INFO_SHEET
    facts = [
        ("Rapport", params.region.title),
        ("Regio", params.region.name),
        ("Eenheid", _unit_text(params)),
        ("Schooljaar", params.school_year),
        ("Bescherming kleine aantallen",
         f"Aantallen kleiner dan {d.min_count} zijn niet gepubliceerd ({SUPPRESSED}); alle "
         f"gepubliceerde aantallen zijn afgerond op veelvouden van {d.rounding_base}."),
        ("Intervallen", f"{round(100 * (1 - params.analysis.alpha))}%-betrouwbaarheidsintervallen; "
                        f"correctie voor meervoudig toetsen over de primaire indicatoren: "
                        f"{'Holm' if params.analysis.multiple_testing == 'holm' else 'Benjamini-Hochberg'}"),
        ("Getallen", "De tabellen staan zoals in het rapport (tekst met decimale komma's); het "
                     f"tabblad {ESTIMATES_SHEET} geeft de schattingen als getallen in volle precisie."),
        ("Gemaakt op", when),
        ("Pakketversie", evaluation.__version__),
    ]
    info.append(["Toelichting bij de tabellen van de whitepaper"])
    info["A1"].font = Font(bold=True, size=12)
    info.append([])
    info.append(["Gegeven", "Waarde"])
    for fact in facts:
        info.append(list(fact))
    info.append([])
    info.append(["Tabblad", "Inhoud"])
    header_rows = (3, 3 + len(facts) + 2)
    for name, (_, caption, _) in zip(names, tables, strict=True):
        info.append([name, caption])
        _link(info.cell(info.max_row, 1), name)
    if estimates is not None:
        info.append([ESTIMATES_SHEET, "Alle schattingen van het rapport: per indicator en "
                                      "vergelijking de schatting, het interval en de p-waarden."])
        _link(info.cell(info.max_row, 1), ESTIMATES_SHEET)
    info.append([PARAMS_SHEET, "Alle instellingen waarmee dit rapport is gemaakt (standaardwaarden, "
                               "regio en aanpassingen samengevoegd), zodat het na te maken is."])
    _link(info.cell(info.max_row, 1), PARAMS_SHEET)
    for r in header_rows:
        for cell in info[r]:
            cell.font = BOLD
    info.column_dimensions["A"].width = 28
    info.column_dimensions["B"].width = 100
    for row in info.iter_rows(min_row=4, min_col=2, max_col=2):
        row[0].alignment = Alignment(wrap_text=True, vertical="top")

    for name, (_, caption, frame) in zip(names, tables, strict=True):
        _write_table(book.create_sheet(name), caption, frame)
    if estimates is not None:
        _write_table(book.create_sheet(ESTIMATES_SHEET),
                     f"Schattingen, {params.region.name}, {_unit_text(params)}, schooljaar "
                     f"{params.school_year}", estimates,
                     {ESTIMATE_COLUMNS[k]: v for k, v in NUMBER_FORMATS.items()})

    _write_table(book.create_sheet(PARAMS_SHEET),
                 f"Parameters van dit rapport (SHA-256 {params_hash(params)})",
                 params_frame(params))

    book.properties.title = f"{params.region.title}, schooljaar {params.school_year}: tabellen"
    book.properties.creator = params.report.organisation
    book.properties.language = "nl-NL"
    out.parent.mkdir(parents=True, exist_ok=True)
    book.save(out)
    return out
