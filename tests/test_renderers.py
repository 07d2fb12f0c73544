"""Quarto and the built-in renderer make the same whitepaper.

For the region report, a municipality report and the national overview, rendered by both from the
same build folder (tests/renderers.py): the same title page, headings and their numbers, table of
contents, tables cell by cell, figures with their alt text and captions, cross-references and
colophon in HTML; the same text, bookmarks, tags and alt text in the PDF, page counts within 10%;
both PDFs tagged PDF/UA-1 in Dutch. The municipality reports come from `render --all` with Quarto
on two workers at once. These tests need Quarto (see tests/renderers.py: they skip without it,
and fail without it where QUARTO_REQUIRED=1).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pypdf import PdfReader
from renderers import (
    KINDS,
    RENDERERS,
    alt_texts,
    html_page,
    outline,
    pdf_text,
    pdf_ua,
    require_quarto,
    struct_types,
)

from evaluation.report import rendering

STRUCTURE = {"/Title", "/H1", "/H2", "/H3", "/H4", "/L", "/LI", "/Figure", "/Table", "/TR",
             "/TH", "/TD"}


def _both(shared_reports, kind: str) -> tuple[dict[str, Path], dict[str, Path]]:
    require_quarto()  # before rendering anything
    return shared_reports.get(kind, "builtin"), shared_reports.get(kind, "quarto")


@pytest.mark.parametrize("kind", KINDS)
def test_html_is_the_same_whitepaper_from_both_renderers(shared_reports, kind: str) -> None:
    builtin, quarto = (html_page(outputs["html"]) for outputs in _both(shared_reports, kind))
    assert builtin.title_block == quarto.title_block
    assert [cls for cls, _ in quarto.title_block][:2] == ["title", "subtitle"]
    assert builtin.headings == quarto.headings
    assert all(level >= 2 for level, _ in builtin.headings)  # the title is the one <h1>
    assert any(text.startswith("1 ") for _, text in builtin.headings)  # numbered sections
    assert builtin.toc == quarto.toc and len(builtin.toc) > 5
    assert len(builtin.tables) == len(quarto.tables) > 3
    for number, (ours, theirs) in enumerate(zip(builtin.tables, quarto.tables, strict=True), 1):
        assert ours == theirs, f"table {number} ({ours['caption']}) differs"
    assert builtin.images == quarto.images and all(builtin.images)
    assert builtin.captions == quarto.captions
    assert builtin.captions[0].startswith("Figuur 1: ")
    assert builtin.xrefs == quarto.xrefs
    # The colophon names the renderer that made it.
    assert builtin.renderer.startswith("de ingebouwde renderer (pandoc 3")
    assert quarto.renderer.startswith(f"Quarto {rendering.quarto_version()} (pandoc ")


@pytest.mark.parametrize("kind", KINDS)
def test_pdf_is_the_same_whitepaper_from_both_renderers(shared_reports, kind: str) -> None:
    builtin, quarto = (outputs["pdf"] for outputs in _both(shared_reports, kind))
    assert pdf_text(builtin) == pdf_text(quarto)  # every word, number and caption, in order
    assert outline(builtin) == outline(quarto) and len(outline(builtin)) > 5
    # The same tagged structure: title, headings, lists, figures, tables cell by cell and
    # captions. (Grouping /Div elements differ: Quarto wraps each notebook cell in a block.)
    tags = [[t for t in struct_types(pdf) if t in STRUCTURE] for pdf in (builtin, quarto)]
    assert tags[0] == tags[1]
    assert struct_types(builtin).count("/Caption") == struct_types(quarto).count("/Caption")
    assert alt_texts(builtin) == alt_texts(quarto) and alt_texts(builtin)
    pages = [len(PdfReader(pdf).pages) for pdf in (builtin, quarto)]
    assert abs(pages[0] - pages[1]) <= 0.1 * max(pages), pages


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("kind", KINDS)
def test_pdf_is_tagged_pdf_ua_1_in_dutch(shared_reports, kind: str, renderer: str) -> None:
    pdf = shared_reports.get(kind, renderer)["pdf"]
    assert pdf_ua(pdf) == {"marked": True, "lang": "nl", "display_title": True, "pdfua": True}
    types = struct_types(pdf)
    assert types.count("/Title") == 1 and types.count("/H1") > 5
    assert {"/Figure", "/Table", "/TH"} <= set(types)


@pytest.mark.parametrize("renderer", RENDERERS)
@pytest.mark.parametrize("kind", ["municipality", "national"])
def test_axe_finds_no_wcag_2_1_aa_violations(shared_reports, kind: str, renderer: str) -> None:
    """The region report's HTML is checked by tests/test_accessibility.py, for both renderers."""
    from test_accessibility import _axe, _describe

    status, result, _ = _axe(shared_reports.get(kind, renderer)["html"])
    assert result["passes"] > 10
    assert status == 0 and not result["violations"], _describe(result["violations"])


def test_render_all_with_quarto_renders_reports_in_parallel(shared_reports) -> None:
    require_quarto()
    shared_reports.get("municipality", "quarto")
    results = shared_reports.batch.results
    assert [r.status for r in results] == ["done", "done"]
    assert {r.renderer for r in results} == {rendering.renderer_name("quarto")}
    assert len({r.worker for r in results}) == 2  # two workers, one Quarto project each


def test_auto_prefers_quarto_on_path() -> None:
    require_quarto()
    assert rendering.renderer_name("auto") == rendering.renderer_name("quarto")
    assert rendering.renderer_name("auto").startswith("quarto 1.")
