"""Rendering: both renderers (the built-in one, pandoc + Typst, and Quarto) on a small project
that mirrors a build dir; the errors of each; the Lua filter they share. tests/test_renderers.py
compares the two on real reports. The Quarto cases skip without Quarto (fail with
QUARTO_REQUIRED=1, as in CI)."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import sys
from pathlib import Path

import matplotlib
import nbformat
import pypandoc
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pypdf import PdfReader
from renderers import (
    RENDERERS,
    alt_texts,
    html_page,
    normalise,
    pdf_ua,
    require_quarto,
    struct_types,
)

from evaluation.report import rendering
from evaluation.report.rendering import RenderError, render

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TITLE = "Evaluatie pilots jeugdhulp"
SUBTITLE = "Regio Lekstroom, schooljaar 2013-2014"
ALT = "Staafdiagram: 40 zorgmeldingen in 2012-2013 en 35 in 2013-2014"
CAPTION = "Zorgmeldingen per schooljaar"
SUMMARY = (
    "Het aandeel trajecten dat binnen vier weken startte steeg naar **12,5%**.\n\n"
    "| School | Meldingen | Aandeel |\n|:--|--:|--:|\n"
    "| Lek College | 40 | 12,5% |\n| Vaart College | 35 | 8,3% |\n"
)
QMD = """---
title: "{title}"
subtitle: "{subtitle}"
---

# Samenvatting

Dit rapport betreft {{{{< meta subtitle >}}}}. Zie @fig-meldingen.

{{{{< embed ../notebooks/nb.ipynb#summary >}}}}

## Zorgmeldingen

{{{{< embed ../notebooks/nb.ipynb#fig-meldingen >}}}}
"""


def _png() -> str:
    fig, ax = plt.subplots(figsize=(4, 2.5))
    ax.bar(["2012-2013", "2013-2014"], [40, 35])
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=72)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def _notebook() -> nbformat.NotebookNode:
    """An 'executed' notebook: cells with Quarto '#|' options and crafted outputs."""
    summary = new_code_cell(
        "#| label: summary\n#| tbl-cap: Meldingen per school\ndisplay(Markdown(text))",
        outputs=[new_output("display_data", data={
            "text/markdown": SUMMARY, "text/plain": "<IPython.core.display.Markdown object>"})],
    )
    figure = new_code_cell(
        f"#| label: fig-meldingen\n#| fig-cap: {CAPTION}\n#| fig-alt: \"{ALT}\"\nplot()",
        outputs=[new_output("display_data", data={
            "image/png": _png(), "text/plain": "<Figure size 400x250 with 1 Axes>"})],
    )
    return new_notebook(cells=[new_markdown_cell("# Zorgmeldingen"), summary, figure])


def make_project(root: Path, qmd_text: str | None = None) -> Path:
    """A build-dir-like project: _quarto.yml, reports/ (qmd, css, template), notebooks/."""
    (root / "reports").mkdir(parents=True)
    (root / "notebooks").mkdir()
    config = yaml.safe_load((REPO / "_quarto.yml").read_text(encoding="utf-8"))
    config["project"]["render"] = ["reports/doc.qmd"]
    (root / "_quarto.yml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    for path in (REPO / "reports").iterdir():  # css, Lua filter, template partials, skip link
        if path.suffix not in (".qmd", ".yml") and path.is_file():
            shutil.copy(path, root / "reports" / path.name)
    (root / "reports" / "_metadata.yml").write_text(
        "subtitle: Overschreven door de front matter\ndate: 31 juli 2014\n"
        "author: [Regio Lekstroom]\n", encoding="utf-8")
    nbformat.write(_notebook(), root / "notebooks" / "nb.ipynb")
    qmd = root / "reports" / "doc.qmd"
    qmd.write_text(qmd_text or QMD.format(title=TITLE, subtitle=SUBTITLE), encoding="utf-8")
    return qmd


@pytest.fixture(scope="module", params=RENDERERS)
def rendered(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> rendering.RenderResult:
    """The small document rendered by each renderer (Quarto: skipped or failed without it)."""
    if request.param == "quarto":
        require_quarto()
    qmd = make_project(tmp_path_factory.mktemp(f"project-{request.param}"))
    return render(qmd, prefer=request.param)


def _pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


def _html_text(path: Path) -> str:
    """Visible text: tags dropped, whitespace collapsed, entities left alone."""
    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")).split())


def _is(rendered: rendering.RenderResult, renderer: str) -> bool:
    return rendered.renderer.startswith(renderer)


def test_renders_html_and_pdf_next_to_the_qmd(rendered: rendering.RenderResult) -> None:
    if _is(rendered, "builtin"):
        assert rendered.renderer.startswith("builtin (pandoc 3") and "+ typst 0." in rendered.renderer
    else:
        assert re.fullmatch(r"quarto 1\.\d+\.\d+ \+ typst 0\.\d+\.\d+", rendered.renderer)
    html, pdf = rendered.outputs["html"], rendered.outputs["pdf"]
    assert html.name == "doc.html" and pdf.name == "doc.pdf"
    assert html.parent.name == "reports" and html.stat().st_size > 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert not (html.parent / "doc_files").exists() or _is(rendered, "quarto")


def test_html_and_pdf_show_the_same_numbers_title_and_captions(
    rendered: rendering.RenderResult,
) -> None:
    html = normalise(_html_text(rendered.outputs["html"]).replace("&nbsp;", " "))
    pdf = _pdf_text(rendered.outputs["pdf"])
    expected = [TITLE, SUBTITLE, "12,5%", "8,3%", "Vaart College", "Meldingen per school",
                f"Figuur 1: {CAPTION}", "Zie Figuur 1", "31 juli 2014"]
    for text in expected:
        assert text in html, text
        assert text in pdf, text
    assert "Overschreven door de front matter" not in html + pdf  # front matter wins
    assert "Inhoudsopgave" in html and "Inhoudsopgave" in pdf
    for rendered_text in (html, pdf):
        assert "Figure size" not in rendered_text and "IPython.core" not in rendered_text
        assert "{{<" not in rendered_text and "#|" not in rendered_text


def test_both_renderers_give_the_same_document(tmp_path: Path) -> None:
    """The small document; tests/test_renderers.py compares the real reports."""
    require_quarto()
    results = {name: render(make_project(tmp_path / name), prefer=name) for name in RENDERERS}
    pages = {name: html_page(result.outputs["html"]) for name, result in results.items()}
    builtin, quarto = pages["builtin"], pages["quarto"]
    for part in ("title_block", "headings", "toc", "tables", "images", "captions", "xrefs"):
        assert getattr(builtin, part) == getattr(quarto, part), part
    texts = {name: _pdf_text(result.outputs["pdf"]) for name, result in results.items()}
    assert texts["builtin"] == texts["quarto"]


def test_html_is_dutch_accessible_and_self_contained(rendered: rendering.RenderResult) -> None:
    html = rendered.outputs["html"].read_text(encoding="utf-8")
    assert re.search(r'<html [^>]*lang="nl"', html)
    page = html_page(rendered.outputs["html"])
    assert [t["rows"][0] for t in page.tables] == [["School", "Meldingen", "Aandeel"]]
    assert page.images == [ALT]
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 1 and re.search(r'src="data:image/png;base64,', images[0])
    assert not re.search(r'<(?:img|script|link)\b[^>]*(src|href)="(?!data:|#)', html)  # nothing
    # loaded from files or the web
    assert "--wp-accent" in html  # whitepaper.css is inlined
    assert page.title_block == [("title", TITLE), ("subtitle", SUBTITLE),
                                ("author", "Regio Lekstroom"), ("date", "31 juli 2014")]
    assert 'id="fig-meldingen"' in html and page.xrefs == [("#fig-meldingen", "Figuur 1")]


def test_html_has_landmarks_a_skip_link_and_an_outline(rendered: rendering.RenderResult) -> None:
    html = rendered.outputs["html"].read_text(encoding="utf-8")
    body = html[html.index("<body"):]
    # The skip link is the first link, before the title <header> and the contents <nav>; its
    # target follows them, in <main> (WCAG 2.4.1).
    assert re.search(r"<a\b", body).start() == body.index('<a class="skip-link" href="#inhoud">')
    assert body.index("<header") < body.index("<nav") < body.index('id="inhoud"')
    assert html.count("<main") == 1
    main = body[body.index("<main"):body.index("</main>")]
    assert 'id="inhoud"' in main and "Samenvatting" in main and "<figure" in main
    assert "<table" in main
    # The title is the one <h1>; "# Samenvatting" is <h2>, "## Zorgmeldingen" <h3>, both in the
    # table of contents (toc-depth counts Markdown levels).
    page = html_page(rendered.outputs["html"])
    assert re.findall(r"<h1\b", html) == ["<h1"] and page.title_block[0] == ("title", TITLE)
    assert page.headings == [(2, "Inhoudsopgave"), (2, "1 Samenvatting"), (3, "1.1 Zorgmeldingen")]
    assert re.search(r'<h2 [^>]*id="samenvatting"|<section id="samenvatting"', html)
    assert 'href="#samenvatting"' in html and 'href="#zorgmeldingen"' in html


def test_html_tables_have_scoped_headers_and_scroll_on_their_own(
    rendered: rendering.RenderResult,
) -> None:
    html = rendered.outputs["html"].read_text(encoding="utf-8")
    headers = re.findall(r"<th\b[^>]*>", html)
    assert len(headers) == 3 and all('scope="col"' in th for th in headers)
    wrapper = re.search(r'<div class="table-scroll"[^>]*>\s*<table', html)
    assert wrapper, "table not wrapped in a scroll container"
    for attribute in ('role="group"', 'tabindex="0"', 'aria-label="Meldingen per school"'):
        assert attribute in wrapper.group(0)


def test_pdf_is_a4_titled_and_tags_the_figure_with_alt_text(
    rendered: rendering.RenderResult,
) -> None:
    reader = PdfReader(rendered.outputs["pdf"])
    width, height = (float(v) for v in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    assert reader.metadata.title == TITLE
    assert ALT in alt_texts(rendered.outputs["pdf"])
    assert "Samenvatting" in reader.pages[-1].extract_text()


def test_pdf_is_tagged_pdf_ua_1(rendered: rendering.RenderResult) -> None:
    assert pdf_ua(rendered.outputs["pdf"]) == {"marked": True, "lang": "nl",
                                               "display_title": True, "pdfua": True}
    types = struct_types(rendered.outputs["pdf"])
    assert types.count("/Title") == 1  # the title page's title, tagged as such
    assert types.count("/H1") >= 2 and "/H2" in types  # Inhoudsopgave + Samenvatting; ## level
    assert "/Figure" in types and {"/Table", "/THead", "/TH"} <= set(types)


def test_pdf_refuses_a_figure_without_alt_text(tmp_path: Path) -> None:
    """PDF/UA-1 needs alt text on every figure: the renderer warns, Typst refuses."""
    qmd = make_project(tmp_path / "p")
    notebook = nbformat.read(tmp_path / "p" / "notebooks" / "nb.ipynb", as_version=4)
    figure = notebook.cells[2]
    figure.source = "#| label: fig-meldingen\nplot()"  # no fig-cap, no fig-alt
    nbformat.write(notebook, tmp_path / "p" / "notebooks" / "nb.ipynb")
    qmd.write_text(QMD.format(title=TITLE, subtitle=SUBTITLE).replace("Zie @fig-meldingen.", ""),
                   encoding="utf-8")
    with pytest.warns(UserWarning, match="no fig-alt"), \
            pytest.raises(RenderError, match=r"PDF/UA-1(.|\n)*fig-alt(.|\n)*missing alt text"):
        render(qmd, formats=("pdf",), prefer="builtin")


def test_pdf_refuses_skipped_heading_levels(tmp_path: Path) -> None:
    qmd = make_project(tmp_path, "---\ntitle: T\n---\n\n# Een\n\n### Drie\n\nTekst.\n")
    with pytest.raises(RenderError, match=r"PDF/UA-1(.|\n)*skipped from heading level 1 to 3"):
        render(qmd, formats=("pdf",), prefer="builtin")


def _filtered(markdown: str, to: str) -> str:
    """Markdown through pandoc with the project's Lua filter (both renderers run it)."""
    return pypandoc.convert_text(markdown, to, format="markdown",
                                 filters=[str(REPO / "reports" / "whitepaper.lua")])


WIDE = ("| Indicator | Claim van de pilot met een lange uitleg die de regel breed maakt | Effect |\n"
        "|:----------|:----------------------------------------------------------------|-------:|\n"
        "| Zorgmeldingen | 80% minder | 0,20 |\n\n: Kerncijfers\n")


def test_filter_gives_tables_automatic_widths_and_a_caption_on_top_in_typst() -> None:
    typ = _filtered(WIDE, "typst")
    assert "columns: 3," in typ and "%," not in typ  # no squeezed percentage widths
    assert re.search(r"#figure\(kind: table, numbering: none, caption: figure\.caption\("
                     r"position: top, \[Kerncijfers\]\)\)\[\s*#table\(", typ)


def test_filter_puts_alt_text_on_typst_images() -> None:
    typ = _filtered('![Figuur 1: Meldingen](a.png){#fig-x alt="Staaf \\"40\\""}\n\n'
                    '![](b.png){fig-alt="Lijn" width="50%"}\n', "typst")
    assert 'image("a.png", alt: "Staaf \\"40\\"")' in typ
    assert 'image("b.png", alt: "Lijn", width: 50%)' in typ


def test_filter_makes_html_tables_accessible() -> None:
    html = _filtered(WIDE, "html5")
    assert html.startswith('<div id="inhoud" tabindex="-1"></div>')  # the skip link's target
    assert re.search(r'<div class="table-scroll"\s+role="group"\s+tabindex="0"\s+'
                     r'aria-label="Kerncijfers">\s*<table role="table">', html)
    # explicit roles and a column name per body cell: a phone shows rows as cards
    assert [" ".join(t.split()) for t in re.findall(r"<th\b[^>]*>", html)] == [
        '<th style="text-align: left;" scope="col" role="columnheader">',
        '<th style="text-align: left;" scope="col" role="columnheader">',
        '<th style="text-align: right;" scope="col" role="columnheader">']
    assert 'role="cell" data-label="Effect">0,20</td>' in html
    assert "<col " not in html  # no fixed column widths


def test_out_dir_and_single_format(tmp_path: Path) -> None:
    qmd = make_project(tmp_path / "p")
    result = render(qmd, formats=("html",), out_dir=tmp_path / "out", prefer="builtin")
    assert set(result.outputs) == {"html"}
    assert result.outputs["html"] == tmp_path / "out" / "doc.html"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["doc.html"]


@pytest.mark.parametrize(
    ("shortcode", "expected"),
    [
        ("{{< embed ../notebooks/nb.ipynb#geen-label >}}", ["doc.qmd", "nb.ipynb", "geen-label"]),
        ("{{< embed ../notebooks/weg.ipynb#summary >}}", ["doc.qmd", "weg.ipynb"]),
        ("{{< meta organisatie.naam >}}", ["doc.qmd", "organisatie.naam"]),
        ("{{< video film.mp4 >}}", ["doc.qmd", "video"]),
        ("Zie @fig-bestaat-niet.", ["doc.qmd", "fig-bestaat-niet"]),
    ],
)
def test_broken_sources_raise_render_error_naming_them(
    tmp_path: Path, shortcode: str, expected: list[str]
) -> None:
    qmd = make_project(tmp_path, f"---\ntitle: T\n---\n\n{shortcode}\n")
    with pytest.raises(RenderError) as info:
        render(qmd, prefer="builtin")
    for part in expected:
        assert part in str(info.value)


def test_cell_without_outputs_is_an_error(tmp_path: Path) -> None:
    qmd = make_project(tmp_path, "{{< embed ../notebooks/nb.ipynb#leeg >}}\n")
    notebook = nbformat.read(tmp_path / "notebooks" / "nb.ipynb", as_version=4)
    notebook.cells.append(new_code_cell("#| label: leeg\nx = 1"))
    nbformat.write(notebook, tmp_path / "notebooks" / "nb.ipynb")
    with pytest.raises(RenderError, match="leeg.*no output"):
        render(qmd, formats=("html",), prefer="builtin")


def test_prefer_quarto_without_quarto_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qmd = make_project(tmp_path)
    monkeypatch.setattr(rendering.shutil, "which", lambda name: None)
    assert not rendering.quarto_available()
    with pytest.raises(RenderError, match="quarto.*not on PATH"):
        render(qmd, prefer="quarto")
    result = render(qmd, formats=("html",), prefer="auto")  # auto falls back to built-in
    assert result.renderer.startswith("builtin")


FAKE_QUARTO = """#!{python}
# Stands in for `quarto` where the real one cannot show an error path: fails, or writes nothing.
import os, sys
if sys.argv[1] == "--version":
    print(os.environ.get("FAKE_QUARTO_VERSION", "1.7.34"))
elif os.environ.get("FAKE_QUARTO") == "fail":
    sys.stderr.write("ERROR: The cell geen-label does not exist in notebook\\n")
    sys.exit(1)
"""


@pytest.fixture
def fake_quarto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "quarto"
    fake.write_text(FAKE_QUARTO.format(python=sys.executable))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return fake


def test_a_failing_quarto_is_a_render_error_with_its_message(
    tmp_path: Path, fake_quarto: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qmd = make_project(tmp_path / "p")
    monkeypatch.setenv("FAKE_QUARTO", "fail")
    with pytest.raises(RenderError, match=r"quarto render .*doc\.qmd --to html(.|\n)*geen-label"):
        render(qmd)  # auto: Quarto, as it is on PATH


def test_an_untested_quarto_version_warns(
    tmp_path: Path, fake_quarto: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qmd = make_project(tmp_path / "p")
    monkeypatch.setenv("FAKE_QUARTO_VERSION", "1.9.38")
    monkeypatch.setenv("FAKE_QUARTO", "fail")
    with pytest.warns(UserWarning, match=r"Quarto 1\.9\.38 is not a version this project is "
                      r"tested with \(1\.7\.x\)"), pytest.raises(RenderError):
        render(qmd, prefer="quarto")


def test_quarto_without_output_is_a_render_error_naming_the_file(
    tmp_path: Path, fake_quarto: Path
) -> None:
    qmd = make_project(tmp_path / "p")
    with pytest.raises(RenderError, match=r"succeeded but .*_output/reports/doc\.html is missing"):
        render(qmd, prefer="quarto")


def test_quarto_refuses_a_document_the_project_does_not_render(
    tmp_path: Path, fake_quarto: Path
) -> None:
    """Quarto would render it without _quarto.yml: no house style, no filter, no Dutch."""
    qmd = make_project(tmp_path / "p")
    other = qmd.with_name("ander.qmd")
    other.write_text("# Ander\n", encoding="utf-8")
    with pytest.raises(RenderError, match=r"project\.render does not list reports/ander\.qmd"):
        render(other, prefer="quarto")
    render(other, formats=("html",), prefer="builtin")  # the built-in renderer does not care


def test_build_folder_holds_one_document_of_the_project(tmp_path: Path) -> None:
    """Every document is in project.render; a build folder gets its own only, without
    rendered files, so that a plain `quarto render` there renders just that document."""
    source = tmp_path / "reports"
    source.mkdir()
    for name in ("whitepaper.qmd", "national.qmd", "whitepaper.lua", "skip-link.html",
                 "whitepaper.html", "whitepaper.typ", "typst-show.typ", "_metadata.yml"):
        (source / name).write_text("x", encoding="utf-8")
    (source / "whitepaper_files").mkdir()
    rendering.copy_sources(source, tmp_path / "build" / "reports", "whitepaper")
    assert sorted(p.name for p in (tmp_path / "build" / "reports").iterdir()) == [
        "skip-link.html", "typst-show.typ", "whitepaper.lua", "whitepaper.qmd"]
    config = yaml.safe_load((REPO / "_quarto.yml").read_text(encoding="utf-8"))
    assert sorted(config["project"]["render"]) == sorted(
        f"reports/{p.name}" for p in (REPO / "reports").glob("*.qmd"))


def test_quarto_project_file_declares_formats_style_and_accessibility() -> None:
    config = yaml.safe_load((REPO / "_quarto.yml").read_text(encoding="utf-8"))
    assert config["project"]["type"] == "default"
    assert config["project"]["output-dir"] == "_output"
    assert config["lang"] == "nl"
    assert config["execute"]["enabled"] is False
    assert config["filters"] == ["quarto", "reports/whitepaper.lua"]
    html, typst = config["format"]["html"], config["format"]["typst"]
    assert html["embed-resources"] is True and html["toc"] is True
    assert html["shift-heading-level-by"] == 1  # the title is the page's one <h1>
    assert typst["papersize"] == "a4" and typst["toc"] is True and typst["keep-typ"] is True
    files = [html["css"], html["include-before-body"], *html["template-partials"],
             *typst["template-partials"], config["filters"][1]]
    assert all((REPO / f).is_file() for f in files), files


def test_environment_yml_pins_the_quarto_series_the_tests_cover() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    pins = [d for d in env["dependencies"] if isinstance(d, str) and d.startswith("quarto")]
    assert pins == [f"quarto={rendering.QUARTO_TESTED[-1]}"]
