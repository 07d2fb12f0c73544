"""One whitepaper, end to end: synthetic CSV files -> validated data -> papermill -> HTML and PDF,
with the same computed numbers in both."""

import html
import json
import re

import pytest
from pypdf import PdfReader

from evaluation.analysis.care_reports import analyse
from evaluation.analysis.methods import DID
from evaluation.registry import PRIMARY
from evaluation.report import care_reports, findings
from evaluation.report.notebook import setup
from evaluation.run.pipeline import render_report, write_synthetic


def _words(text: str) -> str:
    return re.sub(r"\s+", " ", text).replace("\u00ad", "")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    data = root / "data"
    write_synthetic(data)
    result = render_report("lekstroom", "2014-2015", data_dir=data, output_root=root / "_output",
                           build_root=root / "_build", renderer="builtin", log=lambda _m: None)
    return result, data


@pytest.fixture(scope="module")
def texts(rendered):
    result, _ = rendered
    raw_html = result.outputs["html"].read_text(encoding="utf-8")
    body = html.unescape(re.sub(r"<[^>]+>", " ", raw_html))
    pdf = " ".join(page.extract_text() for page in PdfReader(result.outputs["pdf"]).pages)
    return raw_html, _words(body), _words(pdf)


@pytest.fixture(scope="module")
def run(rendered):
    _, data = rendered
    return setup("lekstroom", "2014-2015", str(data))


@pytest.fixture(scope="module")
def expected(run):
    """The care-report figures, computed independently of the rendered files."""
    return analyse(run.data.tables, run.params, run.params_dir)


@pytest.fixture(scope="module")
def estimates(run):
    """The estimate table, recomputed here from the data (not read from the build folder)."""
    return run.estimates


def test_report_lands_in_the_output_folder_as_html_and_pdf(rendered):
    result, _ = rendered
    assert result.outputs["html"].name == "whitepaper.html"
    assert result.outputs["pdf"].name == "whitepaper.pdf"
    assert result.outputs["html"].parent.parts[-2:] == ("lekstroom", "2014-2015")
    assert result.outputs["pdf"].read_bytes().startswith(b"%PDF")
    assert result.renderer.startswith("builtin")


def test_title_page_names_region_and_school_year_in_both(texts):
    _, body, pdf = texts
    for text in (body, pdf):
        assert "regio Lekstroom" in text
        assert "Schooljaar 2014-2015" in text


def test_html_and_pdf_show_the_same_computed_numbers(texts, expected, estimates):
    _, body, pdf = texts
    a = expected
    did = care_reports._change(estimates.get("care_reports_per_100", DID)["estimate"])
    n_pilot = f"{int((a.design['group'] == 'pilot').sum())} scholen"
    figures = [did, n_pilot]
    # Every primary indicator's difference-in-differences effect, as the estimates command
    # computes it, appears in both renders.
    for ind in PRIMARY:
        row = estimates.get(ind, DID)
        figures.append(findings.effect(row["estimate"], row["unit"]))
    for figure in figures:
        assert figure in body, f"{figure!r} missing from the HTML"
        assert figure in pdf, f"{figure!r} missing from the PDF"
    # Decimal commas, not points, in the reader's numbers.
    assert re.search(r"\d+,\d% minder", body)


def test_the_planted_eighty_percent_drop_is_what_the_report_states(estimates):
    # The synthetic data plant a rate ratio of 0.2; the report's DiD interval must contain it.
    row = estimates.get("care_reports_per_100", DID)
    assert row["ci_low"] <= 0.2 <= row["ci_high"]


def test_every_theme_has_its_section_in_both_renders(texts):
    _, body, pdf = texts
    for heading in ("Samenvatting", "Aanpak", "Zorgmeldingen", "Zorgroutes", "Verwijzingen",
                    "Ouderbetrokkenheid", "Tevredenheid", "Doelen en voortgang", "Kosten en baten",
                    "Conclusies", "Beperkingen", "Bijlage: verantwoording",
                    "Bijlage: datakwaliteit", "Literatuur", "Colofon"):
        assert heading in body and heading in pdf, heading


def test_html_is_dutch_self_contained_and_figures_have_alt_text(texts):
    raw, _, _ = texts
    assert re.search(r'<html[^>]*lang="nl"', raw)
    images = re.findall(r"<img[^>]*>", raw)
    assert len(images) >= 2
    for img in images:
        assert 'src="data:image/png;base64,' in img
        assert re.search(r'alt="[^"]{20,}"', img), img[:200]
    assert "<th" in raw


def test_small_groups_are_never_published(texts, expected):
    raw, _, _ = texts
    # Every count in the per-school table is suppressed or a multiple of 5 of at least 10.
    table = care_reports.school_table(expected)
    for col in ("Meldingen vóór", "Meldingen 2014-2015"):
        for cell in table[col]:
            if cell != "·":
                value = int(cell.replace(".", ""))
                assert value >= 10 and value % 5 == 0


def test_notebooks_ran_with_the_injected_parameters(rendered):
    result, data = rendered
    for nb in result.notebooks:
        cells = json.loads(nb.read_text())["cells"]
        injected = [c for c in cells if "injected-parameters" in c["metadata"].get("tags", [])]
        assert injected, f"{nb.name} has no injected parameters"
        assert str(data.resolve()) in "".join(injected[0]["source"])
        errors = [o for c in cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
        assert not errors


def test_no_command_tool_or_field_name_reaches_the_reader(texts):
    """Reader text speaks Dutch: no command to run, no tool of the build, no table, field or
    file name (issue 14, point 4). Style and scripts are not reader text."""
    raw, _, pdf = texts
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    body = _words(html.unescape(re.sub(r"<[^>]+>", " ", body)))
    for text in (body, pdf):
        for pattern in (r"\bevaluation (context|import|render|validate)\b", r"\bpapermill\b",
                        r"\b(care_reports|survey_responses|parent_involvement|first_intake_date|"
                        r"school_id|pupil_id)\b", r"\b\w+\.(csv|parquet|ipynb|ya?ml)\b",
                        r"\bquarantaine\b"):
            found = re.findall(pattern, text)
            assert not found, (pattern, found[:5])


def test_tables_and_figures_are_numbered_and_cited_and_the_links_resolve(texts):
    """Issue 14, point 5: every table and figure carries a number in its caption, the numbers
    run 1, 2, 3 ..., each is referred to in the text, and each reference lands on its anchor."""
    raw, body, pdf = texts
    for kind in ("Tabel", "Figuur"):
        numbers = [int(n) for n in re.findall(rf"{kind} (\d+):", body)]
        assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) > 10, (kind, numbers)
        assert [int(n) for n in re.findall(rf"{kind} (\d+):", _words(pdf))] == numbers
    anchors = set(re.findall(r'id="((?:tbl|fig)-[\w-]+)"', raw))
    links = re.findall(r'<a href="#((?:tbl|fig)-[\w-]+)"[^>]*>\s*(Tabel|Figuur)\s+\d+\s*</a>',
                       raw)
    assert {target for target, _ in links} <= anchors
    uncited = anchors - {target for target, _ in links}
    assert not uncited, f"never referred to in the text: {sorted(uncited)}"


def test_summary_is_one_page_with_verdicts_money_and_takeaway(rendered):
    """Issue 14, point 1: the summary fits its page: the key table, the cost balance and what
    the reader should take away all stand before the next chapter, on one page."""
    result, _ = rendered
    pages = [_words(p.extract_text()) for p in PdfReader(result.outputs["pdf"]).pages]
    first = next(i for i, p in enumerate(pages) if re.search(r"\b1 Samenvatting\b", p)
                 and "Let op: synthetische gegevens" in p)
    page = pages[first]
    for part in ("Tabel 1:", "Geld.", "saldo ≈ €", "Wat dit betekent.", "Beperkingen."):
        assert part in page, part
    assert "2 Inleiding" in pages[first + 1]


def test_main_text_leaves_technical_terms_to_the_appendix(texts):
    """Issue 14, point 4: models and inference methods are named in the appendix
    'Verantwoording', not in the chapters a policy adviser reads."""
    raw, _, _ = texts
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", raw, flags=re.S)
    body = _words(html.unescape(re.sub(r"<[^>]+>", " ", body)))
    start = body.index("Let op: synthetische gegevens")
    main = body[start:body.index("Bijlage: verantwoording Deze bijlage")]
    for term in ("hazard", "rate ratio", "CRV", "jackknife", "wild cluster", "event study",
                 "Poisson", "Cox", "Callaway"):
        assert term.lower() not in main.lower(), term
