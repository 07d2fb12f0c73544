"""The Excel workbook beside each whitepaper: one sheet per table with its caption, the estimates
in numbers, a Toelichting sheet; valid sheet names; counts protected like the report's."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest
from openpyxl import load_workbook

from evaluation.analysis.estimates import estimate_all, save_estimates
from evaluation.report.notebook import setup, show_table
from evaluation.report.workbook import (
    ESTIMATE_COLUMNS,
    ESTIMATES_SHEET,
    INFO_SHEET,
    MAX_SHEET_NAME,
    PARAMS_SHEET,
    TABLE_ORDER_FILE,
    caption_title,
    sheet_names,
    write_workbook,
)

LONG = "referrals-by-referrer-and-school-year-with-totals"


@pytest.fixture(scope="module")
def run(synthetic_dir):
    return setup("lekstroom", "2014-2015", str(synthetic_dir))


@pytest.fixture(scope="module")
def workbook(run, tmp_path_factory):
    """A workbook from tables kept by `show_table` (as the notebooks keep them) and the real
    estimates of Lekstroom 2014-2015."""
    root = tmp_path_factory.mktemp("excel")
    tables = root / "tables"
    show_table(pd.DataFrame({"Groep": ["Pilotscholen", "Vergelijkingsscholen"],
                             "Vóór": ["7,4", "8,9"], "2014-2015": ["1,6", "9,6"]}),
               "Zorgmeldingen per 100 leerlingen, vóór de start en in het rapportjaar",
               "care-report-periods", str(tables))
    show_table(pd.DataFrame({"Verwijzer": ["Huisarts", "School"], "Aantal": ["15", "·"]}),
               "Verwijzingen naar verwijzer (· = niet gepubliceerd)", LONG, str(tables))
    show_table(pd.DataFrame({"a": ["1"]}), "Tweede tabel met een lange naam", LONG + "-2",
               str(tables))
    (tables / TABLE_ORDER_FILE).write_text(
        f'["{LONG}", "care-report-periods", "{LONG}-2"]', encoding="utf-8")
    es = estimate_all(run.data.tables, run.params, run.params_dir)
    save_estimates(es, root / "estimates.parquet")
    out = write_workbook(tables, root / "estimates.parquet", root / "whitepaper.xlsx", run.params,
                         dt.datetime(2026, 1, 5, 10, 30))
    return out, es


def test_sheets_one_per_table_in_report_order_plus_estimates_and_notes(workbook):
    path, _ = workbook
    book = load_workbook(path)
    names = book.sheetnames
    assert names[0] == INFO_SHEET and names[-2:] == [ESTIMATES_SHEET, PARAMS_SHEET]
    assert len(names) == 6
    # Dutch names from the captions, in the report's order
    assert names[1:4] == ["Verwijzingen naar verwijzer", "Zorgmeldingen per 100",
                          "Tweede tabel met een lange naam"]
    assert all(len(n) <= MAX_SHEET_NAME for n in names)
    assert len({n.casefold() for n in names}) == len(names)


def test_each_table_sheet_has_caption_then_bold_header_then_rows(workbook):
    path, _ = workbook
    sheet = load_workbook(path)["Zorgmeldingen per 100"]
    assert sheet["A1"].value.startswith("Zorgmeldingen per 100 leerlingen")
    assert sheet["A2"].value is None  # an empty row keeps the caption out of the table
    assert [c.value for c in sheet[3]] == ["Groep", "Vóór", "2014-2015"]
    assert all(c.font.bold for c in sheet[3])
    assert [c.value for c in sheet[4]] == ["Pilotscholen", "7,4", "1,6"]
    assert sheet.freeze_panes == "A4"


def test_estimates_sheet_holds_the_estimates_as_numbers(workbook):
    path, es = workbook
    sheet = load_workbook(path)[ESTIMATES_SHEET]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    header, body = list(rows[0]), rows[1:]
    assert header == list(ESTIMATE_COLUMNS.values())
    table = es.table.reset_index(drop=True)
    assert len(body) == len(table)
    for key in ("estimate", "ci_low", "ci_high", "p_value", "mde"):
        col = header.index(ESTIMATE_COLUMNS[key])
        for got, want in zip((r[col] for r in body), table[key], strict=True):
            # openpyxl writes 16 significant digits (Excel itself keeps 15).
            assert (got is None and pd.isna(want)) or got == pytest.approx(want, rel=1e-15), key
    col = header.index(ESTIMATE_COLUMNS["comparison"])
    assert [r[col] for r in body] == list(table["comparison"])
    assert {r[header.index("Primaire indicator")] for r in body} <= {"ja", "nee"}


def test_counts_in_the_estimates_sheet_are_protected(workbook):
    path, es = workbook
    sheet = load_workbook(path)[ESTIMATES_SHEET]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    col = list(rows[0]).index(ESTIMATE_COLUMNS["n"])
    rule = es.params.disclosure
    for value in (r[col] for r in rows[1:]):
        assert value == "·" or (value >= rule.min_count and value % rule.rounding_base == 0)


def test_notes_sheet_names_unit_year_rules_and_time(workbook):
    path, _ = workbook
    rows = {r[0]: r[1] for r in load_workbook(path)[INFO_SHEET].iter_rows(values_only=True)
            if r[0]}
    assert rows["Regio"] == "Lekstroom" and rows["Eenheid"] == "hele regio"
    assert rows["Schooljaar"] == "2014-2015"
    small = rows["Bescherming kleine aantallen"]
    assert "kleiner dan 10" in small and "veelvouden van 5" in small
    assert rows["Gemaakt op"].startswith("2026-01-05 10:30")
    assert rows["Zorgmeldingen per 100"].startswith("Zorgmeldingen")  # a table of contents
    assert rows[ESTIMATES_SHEET]


def test_workbook_passes_the_publication_audit(workbook, synthetic_dir):
    audit = pytest.importorskip("evaluation.report.audit")
    path, _ = workbook
    assert audit.audit(path.parent, synthetic_dir, files=[path]) == []


def test_caption_titles():
    assert caption_title("Kosten van de pilot en vermeden kosten, schooljaar 2014-2015", "x") == \
        "Kosten van de pilot en vermeden"
    assert caption_title("Zorgmeldingen (per 100)", "x") == "Zorgmeldingen"
    assert caption_title("", "care-report-periods") == "care-report-periods"
    assert len(caption_title("Onbreekbaarheidsbeoordelingsprocedurehandleiding", "x")) == 31
    # never ending on a word that leaves the phrase hanging ("Kerncijfers van de")
    assert caption_title("Kerncijfers van de hoofdindicatoren (effect: verschil)", "x") == \
        "Kerncijfers"


def test_sheets_follow_the_report_and_the_contents_link_them(tmp_path, synthetic_tables):
    from evaluation.params import load_params
    from evaluation.report.workbook import write_workbook

    tables = tmp_path / "tables"
    tables.mkdir()
    for name, caption in (("data-quality-counts", "Aantallen per tabel"),
                          ("summary-key-figures", "Kerncijfers van de hoofdindicatoren")):
        pd.DataFrame({"a": ["1"]}).to_parquet(tables / f"{name}.parquet")
        (tables / f"{name}.json").write_text(json.dumps({"name": name, "caption": caption}))
    (tables / "_order.json").write_text(json.dumps(["data-quality-counts",
                                                    "summary-key-figures"]))
    doc = tmp_path / "whitepaper.qmd"
    # numbered tables are embedded by their tbl- label; the workbook knows them by name
    doc.write_text("# Samenvatting\n{{< embed ../notebooks/07-summary.ipynb#tbl-summary-key-figures"
                   " >}}\n# Bijlage\n{{< embed ../notebooks/00-d.ipynb#tbl-data-quality-counts >}}\n")
    out = write_workbook(tables, None, tmp_path / "w.xlsx",
                         load_params("lekstroom", school_year="2014-2015"), document=doc)
    book = load_workbook(out)
    assert book.sheetnames == [INFO_SHEET, "Kerncijfers", "Aantallen per tabel", PARAMS_SHEET]
    links = {c.value: c.hyperlink.location for c in book[INFO_SHEET]["A"] if c.hyperlink}
    assert links == {"Kerncijfers": "'Kerncijfers'!A1",
                     "Aantallen per tabel": "'Aantallen per tabel'!A1",
                     PARAMS_SHEET: f"'{PARAMS_SHEET}'!A1"}


def test_sheet_names_are_valid_unique_and_short():
    names = sheet_names(["a/b:c?", "x" * 40, "x" * 40, "Schattingen", "history", "", "X" * 31])
    assert names[0] == "a-b-c-"
    assert all(len(n) <= 31 for n in names)
    assert len({n.casefold() for n in names + ["Toelichting", "Schattingen"]}) == len(names) + 2
    assert names[1] == "x" * 31 and names[2].endswith("(2)")
    assert names[3] != "Schattingen" and names[4].casefold() != "history" and names[5] == "Tabel"


def test_municipality_workbook_says_how_pupils_are_counted(synthetic_dir, tmp_path):
    run = setup("lekstroom", "2014-2015", str(synthetic_dir), municipality="Lopik")
    estimates = pd.DataFrame([{c: None for c in ESTIMATE_COLUMNS}]).assign(
        estimate=0.5, ci_low=0.25, ci_high=1.0, n=7, n_missing=0, n_clusters=1, primary=True,
        significant=False, unit="rate ratio", better="lower", note="")
    estimates.to_parquet(tmp_path / "estimates.parquet")
    out = write_workbook(tmp_path / "no-tables", tmp_path / "estimates.parquet",
                         tmp_path / "w.xlsx", run.params)
    book = load_workbook(out)
    assert book.sheetnames == [INFO_SHEET, ESTIMATES_SHEET, PARAMS_SHEET]
    notes = {r[0]: r[1] for r in book[INFO_SHEET].iter_rows(values_only=True) if r[0]}
    assert notes["Eenheid"] == ("gemeente Lopik (leerlingen geteld naar de vestigingsgemeente van "
                                "hun school)")
    row = [c.value for c in book[ESTIMATES_SHEET][4]]
    assert row[list(ESTIMATE_COLUMNS).index("n")] == "·"  # 7 records: withheld
    assert row[list(ESTIMATE_COLUMNS).index("estimate")] == 0.5


def test_theme_tables_get_short_distinct_sheet_names():
    a = caption_title("Zorgroutes: waarde vóór de start en in het rapportjaar, pilotscholen", "x")
    b = caption_title("Zorgroutes: effecten van de pilot per vergelijking", "x")
    assert (a, b) == ("Zorgroutes, voor en na", "Zorgroutes, effecten")
    assert caption_title("Voortgang ten opzichte van de doelen per niveau", "x") == "Voortgang"


def test_parameters_sheet_holds_every_merged_setting(workbook, run):
    """The colophon points here: the full merged params, so the report can be made again."""
    from evaluation.report.provenance import params_hash

    path, _ = workbook
    rows = list(load_workbook(path)[PARAMS_SHEET].iter_rows(values_only=True))
    assert params_hash(run.params) in rows[0][0]
    values = {r[0]: r[1] for r in rows[2:]}
    assert values["school_year"] == "2014-2015"
    assert values["analysis.alpha"] == str(run.params.analysis.alpha)
    assert values["region.schools[0].id"] == run.params.region.schools[0].id
    assert values["report.commissioned_by"] == run.params.report.commissioned_by
    assert values["costs.hourly_rate.value"] == str(run.params.costs.hourly_rate.value)
