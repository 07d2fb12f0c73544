"""Rendering: the built-in renderer (pandoc + Typst) on a small project that mirrors a build dir."""

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
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from pypdf import PdfReader

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
    shutil.copy(REPO / "_quarto.yml", root / "_quarto.yml")
    for name in ("whitepaper.css", "typst-template.typ"):
        shutil.copy(REPO / "reports" / name, root / "reports" / name)
    (root / "reports" / "_metadata.yml").write_text(
        "subtitle: Overschreven door de front matter\ndate: 31 juli 2014\n"
        "author: [Regio Lekstroom]\n", encoding="utf-8")
    nbformat.write(_notebook(), root / "notebooks" / "nb.ipynb")
    qmd = root / "reports" / "doc.qmd"
    qmd.write_text(qmd_text or QMD.format(title=TITLE, subtitle=SUBTITLE), encoding="utf-8")
    return qmd


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> rendering.RenderResult:
    qmd = make_project(tmp_path_factory.mktemp("project"))
    return render(qmd, prefer="builtin")


def _pdf_text(path: Path) -> str:
    return " ".join(" ".join(page.extract_text() for page in PdfReader(path).pages).split())


def _html_text(path: Path) -> str:
    """Visible text: tags dropped, whitespace collapsed, entities left alone."""
    return " ".join(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")).split())


def _alt_texts(path: Path) -> list[str]:
    """/Alt entries of the tagged PDF's structure tree (what screen readers announce)."""
    found: list[str] = []

    def walk(node: object) -> None:
        node = node.get_object() if hasattr(node, "get_object") else node
        if isinstance(node, dict):
            if "/Alt" in node:
                found.append(str(node["/Alt"]))
            walk(node.get("/K"))
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(PdfReader(path).trailer["/Root"].get("/StructTreeRoot"))
    return found


def test_builtin_renders_html_and_pdf_next_to_the_qmd(rendered: rendering.RenderResult) -> None:
    assert rendered.renderer.startswith("builtin (pandoc 3")
    assert "typst" in rendered.renderer
    html, pdf = rendered.outputs["html"], rendered.outputs["pdf"]
    assert html.name == "doc.html" and pdf.name == "doc.pdf"
    assert html.parent.name == "reports" and html.stat().st_size > 0
    assert pdf.read_bytes().startswith(b"%PDF")
    assert not (html.parent / "doc_files").exists()  # intermediates cleaned up


def test_html_and_pdf_show_the_same_numbers_title_and_captions(
    rendered: rendering.RenderResult,
) -> None:
    html = _html_text(rendered.outputs["html"])
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


def test_html_is_dutch_accessible_and_self_contained(rendered: rendering.RenderResult) -> None:
    html = rendered.outputs["html"].read_text(encoding="utf-8")
    assert '<html xmlns="http://www.w3.org/1999/xhtml" lang="nl"' in html or '<html lang="nl"' in html
    assert re.findall(r"<th[ >]", html) and "<thead>" in html
    headers = re.findall(r"<th[^>]*>([^<]*)</th>", html)
    assert headers == ["School", "Meldingen", "Aandeel"]
    images = re.findall(r"<img [^>]*>", html)
    assert len(images) == 1
    assert f'alt="{ALT}"' in images[0]
    assert re.search(r'src="data:image/png;base64,', images[0])
    assert not re.search(r'(src|href)="(?!data:|#)', html)  # nothing loaded from files or web
    assert "--wp-accent" in html  # whitepaper.css is inlined
    assert '<h1 class="title">' in html and 'class="subtitle"' in html
    assert 'id="fig-meldingen"' in html and 'href="#fig-meldingen"' in html


def test_html_has_landmarks_a_skip_link_and_an_outline(rendered: rendering.RenderResult) -> None:
    html = rendered.outputs["html"].read_text(encoding="utf-8")
    body = html[html.index("<body>"):]
    # Skip link first, then the title <header> and the contents <nav>, then <main> (WCAG 2.4.1).
    assert body.index('<a class="skip-link" href="#inhoud">') < body.index("<header") \
        < body.index("<nav") < body.index('<main id="inhoud">') < body.index("</main>")
    assert html.count("<main") == 1
    main = body[body.index("<main"):body.index("</main>")]
    assert "Samenvatting" in main and "<figure" in main and "<table" in main
    # The title is the one <h1>; "# Samenvatting" is <h2>, "## Zorgmeldingen" <h3>, both in the
    # table of contents (toc-depth counts Markdown levels).
    assert re.findall(r"<h([1-6])", html) == ["1", "2", "2", "3"]
    assert re.search(r'<h2 [^>]*id="samenvatting"', html)
    assert re.search(r'<h3 [^>]*id="zorgmeldingen"', html)
    assert 'href="#samenvatting"' in html and 'href="#zorgmeldingen"' in html


def test_html_tables_have_scoped_headers_and_scroll_on_their_own(
    rendered: rendering.RenderResult,
) -> None:
    html = rendered.outputs["html"].read_text(encoding="utf-8")
    left, right = ('<th scope="col" style="text-align: left;">',
                   '<th scope="col" style="text-align: right;">')
    assert re.findall(r"<th\b[^>]*>", html) == [left, right, right]  # School|Meldingen|Aandeel
    wrapper = re.search(r'<div class="table-scroll" role="group" tabindex="0" '
                        r'aria-labelledby="([\w-]+)">\s*<table', html)
    assert wrapper, "table not wrapped in a focusable, named scroll container"
    assert f'<caption id="{wrapper.group(1)}">' in html


def test_pdf_is_a4_titled_and_tags_the_figure_with_alt_text(
    rendered: rendering.RenderResult,
) -> None:
    reader = PdfReader(rendered.outputs["pdf"])
    width, height = (float(v) for v in reader.pages[0].mediabox[2:])
    assert (round(width), round(height)) == (595, 842)  # A4 in points
    assert reader.metadata.title == TITLE
    assert ALT in _alt_texts(rendered.outputs["pdf"])
    assert "Samenvatting" in reader.pages[-1].extract_text()


def _struct_types(path: Path) -> list[str]:
    types: list[str] = []

    def walk(node: object) -> None:
        node = node.get_object() if hasattr(node, "get_object") else node
        if isinstance(node, dict):
            if "/S" in node:
                types.append(str(node["/S"]))
            walk(node.get("/K"))
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(PdfReader(path).trailer["/Root"]["/StructTreeRoot"])
    return types


def test_pdf_is_tagged_pdf_ua_1(rendered: rendering.RenderResult) -> None:
    reader = PdfReader(rendered.outputs["pdf"])
    root = reader.trailer["/Root"]
    assert bool(root["/MarkInfo"]["/Marked"]) and root["/Lang"] == "nl"
    assert bool(root["/ViewerPreferences"]["/DisplayDocTitle"])
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8")
    assert re.search(r"<pdfuaid:part>1</pdfuaid:part>|pdfuaid:part=\"1\"", xmp)  # PDF/UA-1
    types = _struct_types(rendered.outputs["pdf"])
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


def test_wide_tables_get_automatic_column_widths_in_typst() -> None:
    source = ("#table(\n  columns: (19.57%, 28.99%, 6.52%),\n  align: (left,left,right,),\n"
              "#table(\n  columns: 2,\n#image(\"a.png\", width: 50%)\n")
    fixed = rendering._auto_column_widths(source)
    assert "columns: 3," in fixed and "columns: 2," in fixed and "width: 50%" in fixed
    assert "%," not in fixed.split("#image")[0]


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
# Stands in for `quarto`: records its calls, writes outputs where Quarto would (output-dir).
import os, sys
from pathlib import Path
with open({log!r}, "a") as log:
    log.write(os.getcwd() + " " + " ".join(sys.argv[1:]) + "\\n")
if sys.argv[1] == "--version":
    print("1.6.40")
elif "--fail" in os.environ.get("FAKE_QUARTO", ""):
    sys.stderr.write("ERROR: The cell geen-label does not exist in notebook\\n")
    sys.exit(1)
else:
    qmd, to = Path(sys.argv[2]), sys.argv[4]
    out = Path("_output") / qmd.parent.name / (qmd.stem + (".pdf" if to == "typst" else ".html"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("rendered by fake quarto: " + to)
"""


def test_quarto_path_runs_in_the_project_and_collects_from_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qmd = make_project(tmp_path / "p")
    bindir, log = tmp_path / "bin", tmp_path / "calls.log"
    bindir.mkdir()
    fake = bindir / "quarto"
    fake.write_text(FAKE_QUARTO.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    result = render(qmd, out_dir=tmp_path / "out")  # auto picks Quarto when it is on PATH
    assert result.renderer == "quarto 1.6.40"
    assert result.outputs["pdf"].read_text() == "rendered by fake quarto: typst"
    assert result.outputs["html"] == tmp_path / "out" / "doc.html"
    calls = log.read_text().splitlines()
    assert calls[0] == f"{tmp_path / 'p'} render {qmd} --to html"
    assert calls[1] == f"{tmp_path / 'p'} render {qmd} --to typst"
    monkeypatch.setenv("FAKE_QUARTO", "--fail")
    with pytest.raises(RenderError, match=r"quarto render .*doc\.qmd(.|\n)*geen-label"):
        render(qmd, prefer="quarto")


def test_quarto_renders_the_same_document(tmp_path: Path) -> None:
    if shutil.which("quarto") is None:
        pytest.skip("quarto is not on PATH (it cannot be installed here); built-in renderer "
                    "tested above")
    qmd = make_project(tmp_path)
    result = render(qmd, prefer="quarto")
    assert result.renderer.startswith("quarto")
    html = result.outputs["html"].read_text(encoding="utf-8")
    assert "12,5%" in html and ALT in html
    assert "12,5%" in _pdf_text(result.outputs["pdf"])


def test_quarto_project_file_declares_formats_language_and_output_dir() -> None:
    config = yaml.safe_load((REPO / "_quarto.yml").read_text(encoding="utf-8"))
    assert config["project"]["type"] == "default"
    assert config["project"]["output-dir"] == "_output"
    assert config["project"]["render"] == ["reports/whitepaper.qmd"]
    assert config["lang"] == "nl"
    assert config["execute"]["enabled"] is False
    html, typst = config["format"]["html"], config["format"]["typst"]
    assert html["embed-resources"] is True and html["toc"] is True
    assert (REPO / html["css"]).is_file()
    assert typst["papersize"] == "a4" and typst["toc"] is True
