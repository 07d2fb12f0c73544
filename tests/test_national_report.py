"""The national overview report (`evaluation render --national`): one real render on a small
national set, checked against the numbers computed directly.

The set (30,000 pupils a year in 42 regions, `national.write_national`) is written as CSV with one
corrupted row, so that the render also shows that rejected rows reach the data-quality annex and
that the publication audit reads the data's identifiers. HTML and PDF come from the built-in
renderer. The accessibility check reuses tests/test_accessibility.py's axe-core helper and skips
(or fails with A11Y_REQUIRED=1) as that file does.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from test_accessibility import _axe, _describe, _Page

from evaluation.data.synthetic_national import write_national
from evaluation.national import build as nr
from evaluation.national.estimates import estimates_all_regions
from evaluation.national.funnel import region_funnel
from evaluation.national.overview import FUNNEL_INDICATORS
from evaluation.params import load_params, load_regions
from evaluation.registry import INDICATORS, PRIMARY
from evaluation.report import formatting as f
from evaluation.report.audit import count_columns
from evaluation.report.disclosure import round_to_base
from evaluation.report.findings import effect, interval
from evaluation.run.pipeline import PipelineError, cached_validate_dir

SCALE = 30_000
YEAR = "2016-2017"  # the last school year of the national set


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("national-data")
    write_national(out, SCALE, "csv")
    # One bad row: it must be rejected and counted in the annex, not dropped silently.
    path = out / "care_reports.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[3, "report_date"] = "31-02-2016"
    frame.to_csv(path, index=False)
    return out


@pytest.fixture(scope="module")
def rendered(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("national-render")
    result = nr.render_national(None, data_dir=data_dir, formats=["html", "pdf"],
                                output_root=root / "_output", build_root=root / "_build",
                                renderer="builtin", log=lambda _m: None)
    return result, root


@pytest.fixture(scope="module")
def html(rendered) -> str:
    return rendered[0].outputs["html"].read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def checked(data_dir: Path):
    return cached_validate_dir(data_dir)


@pytest.fixture(scope="module")
def regions(data_dir: Path):
    return load_regions(data_dir / "params")


@pytest.fixture(scope="module")
def params(data_dir: Path):
    return load_params("lekstroom", YEAR, [], data_dir / "params")


class _Tables(HTMLParser):
    """Every table of a page: caption, header cells and body rows as text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_caption = False

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append({"caption": "", "header": [], "rows": []})
        elif tag == "caption":
            self._in_caption = True
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag == "caption":
            self._in_caption = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self.tables:
            t = self.tables[-1]
            (t["rows"] if t["header"] else t["header"]).extend(
                [self._row] if t["header"] else self._row)
            self._row = None

    def handle_data(self, data):
        if self._in_caption and self.tables:
            self.tables[-1]["caption"] += data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def tables(html: str) -> list[dict]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _table(tables: list[dict], *words: str) -> dict:
    found = [t for t in tables if all(w in " ".join(t["caption"].split()) for w in words)]
    assert len(found) == 1, f"expected one table with {words} in its caption, found {len(found)}"
    return found[0]


def _shown(frame: pd.DataFrame, indicator: str, min_count: int) -> pd.Series:
    """Regions with enough records to be shown (count, size and, for shares, the rest)."""
    ok = (frame["count"] >= min_count) & (frame["size"] >= min_count)
    if INDICATORS[indicator].kind == "proportion":
        ok &= (frame["size"] - frame["count"]) >= min_count
    return ok


def _rate(value: float, indicator: str) -> str:
    if INDICATORS[indicator].kind == "proportion":
        return f.percent(value / 100, 1)
    return f.number(value, 2)


# --------------------------------------------------------------------------------- the outputs


def test_html_pdf_and_workbook_are_published_under_national_year(rendered) -> None:
    result, root = rendered
    dest = root / "_output" / "national" / YEAR
    assert result.school_year == YEAR
    assert result.outputs["html"] == dest / "national.html"
    assert result.outputs["pdf"] == dest / "national.pdf"
    assert result.outputs["xlsx"] == dest / "national.xlsx"
    assert all(p.is_file() and p.stat().st_size > 0 for p in result.outputs.values())
    assert result.renderer.startswith("builtin")
    assert result.rejected_rows == 1


def test_pdf_has_the_title(rendered) -> None:
    from pypdf import PdfReader

    reader = PdfReader(rendered[0].outputs["pdf"])
    first = " ".join(reader.pages[0].extract_text().split())
    assert "Jeugdhulp in het voortgezet onderwijs: landelijk overzicht" in first
    assert f"Schooljaar {YEAR}" in first
    assert reader.metadata.title and "landelijk overzicht" in reader.metadata.title


def test_a_section_and_a_funnel_figure_with_alt_text_per_key_indicator(
        html: str, checked, regions, params) -> None:
    page = _Page()
    page.feed(html)
    headings = [text for _, text in page.headings]
    alts = [img.get("alt") or "" for img in page.images]
    assert {"care_reports_per_100", "specialised_referrals_per_100",
            "school_informed_share"} <= set(FUNNEL_INDICATORS)
    for ind in FUNNEL_INDICATORS:
        name = INDICATORS[ind].name_nl
        assert any(name in h for h in headings), f"no section for {name}"
        frame = region_funnel(checked.tables, regions, ind, YEAR)
        shown = frame[_shown(frame, ind, params.disclosure.min_count)]
        outside = int(shown["flag"].isin(["high_998", "low_998"]).sum())
        funnel_alts = [a for a in alts if a.startswith(f"Trechterdiagram van {name.lower()}")]
        assert len(funnel_alts) == 1, f"one funnel figure for {name}"
        assert f"liggen er {f.integer(outside)} buiten de 99,8%-grenzen" in funnel_alts[0]


def test_regions_outside_the_limits_are_those_of_region_funnel(tables, checked, regions,
                                                               params) -> None:
    rule = params.disclosure
    for ind in FUNNEL_INDICATORS:
        frame = region_funnel(checked.tables, regions, ind, YEAR)
        shown = frame[_shown(frame, ind, rule.min_count)]
        outside = shown[shown["flag"].isin(["high_998", "low_998"])]
        expected = {(
            str(r["label"]),
            f.integer(round_to_base(pd.Series([r["size"]]), rule.rounding_base).iloc[0]),
            f.integer(round_to_base(pd.Series([r["count"]]), rule.rounding_base).iloc[0]),
            _rate(r["rate"], ind),
            f"{_rate(r['lower_0.998'], ind)} tot {_rate(r['upper_0.998'], ind)}",
            r["flag_nl"],
        ) for _, r in outside.iterrows()}
        if not expected:
            continue
        table = _table(tables, f"{INDICATORS[ind].label_nl} buiten de grenzen",
                       "buiten de 99,8%-grenzen")
        assert {tuple(row) for row in table["rows"]} == expected, ind


def test_regional_estimates_shown_are_estimates_all_regions(tables, checked, regions,
                                                            params) -> None:
    est = estimates_all_regions(checked.tables, regions, params, school_year=YEAR)
    for ind in ("care_reports_per_100", "school_informed_share"):
        table = _table(tables, f"Effecten {INDICATORS[ind].label_nl.lower()}:",
                       "effect van de pilot op")
        rows = {row[0]: row for row in table["rows"]}
        for region in ("Lekstroom", "Nederland"):
            e = est[(est["region_name"] == region) & (est["indicator"] == ind)].iloc[0]
            row = rows[region]
            assert effect(e["estimate"], e["unit"]) in row
            assert interval(e["ci_low"], e["ci_high"], e["unit"]) in row
            assert f.p_value(e["p_value_adjusted"]) in row
        # Regions without a pilot have no estimate and no row; every region with one has a row.
        with_pilot = est[(est["indicator"] == ind) & (est["note"] != "geen pilot in deze regio")]
        assert set(rows) == set(with_pilot["region_name"])


def test_every_primary_indicator_has_a_forest_figure(html: str) -> None:
    page = _Page()
    page.feed(html)
    alts = [img.get("alt") or "" for img in page.images]
    for ind in PRIMARY:
        name = INDICATORS[ind].name_nl.lower()
        assert sum(a.startswith(f"Bosdiagram van het effect op {name}") for a in alts) == 1


# ------------------------------------------------------------------------ disclosure, audit


def test_the_publication_audit_passes_and_no_small_count_is_shown(rendered, tables, checked,
                                                                  data_dir, params) -> None:
    result, _ = rendered
    nr.audit_national(result.outputs, data_dir, params)  # raises on a finding
    for t in tables:
        for col in count_columns(t["header"]):
            for row in t["rows"]:
                cell = row[col].replace(".", "")
                if cell.isdigit():
                    assert int(cell) >= params.disclosure.min_count, (t["caption"], row)
    pupil = str(checked.tables["enrolments"]["student_id"].iloc[0])
    assert pupil not in rendered[0].outputs["html"].read_text(encoding="utf-8")


def test_rejected_rows_are_counted_in_the_annex(tables) -> None:
    counts = _table(tables, "Rijen per tabel")
    care = next(row for row in counts["rows"] if row[0] == "Zorgmeldingen")
    assert care[3] == "1"  # Afgekeurd
    assert _table(tables, "Afgekeurde rijen per reden")["rows"]


def test_the_audit_reads_identifiers_from_parquet_data(tmp_path: Path, params) -> None:
    data = nr.ensure_synthetic(tmp_path / "_build", 10_000, log=lambda _m: None)
    assert (data / "enrolments.parquet").is_file()
    stamp = (data / "enrolments.parquet").stat().st_mtime_ns
    assert nr.ensure_synthetic(tmp_path / "_build", 10_000, log=lambda _m: None) == data
    assert (data / "enrolments.parquet").stat().st_mtime_ns == stamp  # not generated again
    checked = cached_validate_dir(data)
    pupil = str(checked.tables["enrolments"]["student_id"].iloc[0])
    page = tmp_path / "page.html"
    page.write_text(f"<html lang='nl'><body><p>Leerling {pupil}</p></body></html>",
                    encoding="utf-8")
    with pytest.raises(PipelineError, match="identifier"):
        nr.audit_national({"html": page}, data, params)


def test_a_school_year_outside_the_data_is_a_clear_error(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"2030-2031 is not in the data.*2012-2013 to "
                                            r"2016-2017"):
        nr.render_national("2030-2031", data_dir=data_dir, output_root=tmp_path / "_output",
                           build_root=tmp_path / "_build", renderer="builtin",
                           log=lambda _m: None)
    assert not (tmp_path / "_output").exists()


# --------------------------------------------------------------------------- accessibility


def test_every_image_has_alt_text_and_tables_have_headers(html: str) -> None:
    page = _Page()
    page.feed(html)
    assert page.lang == "nl" and "landelijk overzicht" in page.title
    assert page.images and all((img.get("alt") or "").strip() for img in page.images)
    for table in page.tables:
        assert table["th"] and all(th.get("scope") == "col" for th in table["th"])
    levels = [level for level, _ in page.headings]
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False))


def test_reader_facing_numbers_use_the_decimal_comma(tables) -> None:
    for t in tables:
        if "Herkomst" in t["caption"]:
            continue  # hashes and version numbers
        for row in t["rows"]:
            for cell in row:
                assert not re.search(r"\d\.\d{1,2}(?!\d)", cell), (t["caption"], cell)


def test_axe_finds_no_wcag_2_1_aa_violations(rendered) -> None:
    status, result, _ = _axe(rendered[0].outputs["html"])
    assert result["passes"] > 10
    assert status == 0 and not result["violations"], _describe(result["violations"])


def test_the_site_index_lists_the_national_overview(rendered) -> None:
    from evaluation.report.site import write_index

    result, root = rendered
    index = write_index(root / "_output").read_text(encoding="utf-8")
    assert '<h2 id="landelijk">Landelijk overzicht</h2>' in index
    assert f'href="national/{YEAR}/national.html"' in index
    assert f"van het landelijk overzicht, schooljaar {YEAR}" in index
