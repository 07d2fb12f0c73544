"""Test support for the two renderers (not a test module): finding Quarto, the reports that a test
session renders once and shares (conftest.py's `shared_reports`), and what of a rendered HTML page
or PDF the comparison of the two renderers looks at.

Quarto is not a Python package: tests that need it skip with the install command where it is
missing, and fail instead when QUARTO_REQUIRED=1 (as in CI, where a skip would hide a missing
install step).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
from pypdf import PdfReader

QUARTO_INSTALL = ("../shared/tools/quarto/install.sh PREFIX && export PATH=PREFIX/bin:$PATH "
                  "(or Quarto 1.7 from quarto.org, or `conda env create -f environment.yml`)")
RENDERERS = ("builtin", "quarto")
KINDS = ("region", "municipality", "national")
NATIONAL_SCALE = 20_000  # pupils a year: a small national data set, every region in it


def require_quarto() -> str:
    """The `quarto` command; skip without it, or fail where CI requires it (QUARTO_REQUIRED=1)."""
    quarto = shutil.which("quarto")
    if quarto is None:
        message = f"Quarto is not on PATH; install it with: {QUARTO_INSTALL}"
        if os.environ.get("QUARTO_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return quarto


class SharedReports:
    """The region report (Lekstroom 2014-2015), a municipality report (Vianen 2014-2015) and the
    national overview, each built once (notebooks executed once) and rendered by both renderers
    from the same build folder, so that they differ in nothing but the renderer.

    The region and the national overview go through the pipeline with the built-in renderer and
    are rendered again by Quarto; the municipality reports (Vianen and Lopik) go through
    `render --all` with Quarto, two workers at once, and Vianen is rendered again by the built-in
    renderer. Seconds per step are kept in `seconds`."""

    def __init__(self, data_dir: Path, root: Path) -> None:
        self.data_dir, self.root = data_dir, root
        self.outputs: dict[tuple[str, str], dict[str, Path]] = {}
        self.builds: dict[str, Path] = {}
        self.batch = None  # the BatchResult of the municipality run
        self.seconds: dict[str, float] = {}

    def get(self, kind: str, renderer: str) -> dict[str, Path]:
        """{"html": ..., "pdf": ...} of `kind` rendered by `renderer`."""
        if renderer == "quarto":
            require_quarto()
        if (kind, renderer) not in self.outputs:
            if kind not in self.builds:
                getattr(self, f"_build_{kind}")()
            if (kind, renderer) not in self.outputs:
                self._rerender(kind, renderer)
        return self.outputs[(kind, renderer)]

    def _timed(self, what: str, make):
        started = time.perf_counter()
        result = make()
        self.seconds[what] = round(time.perf_counter() - started, 1)
        return result

    def _rerender(self, kind: str, renderer: str) -> None:
        from evaluation.report.rendering import render

        build = self.builds[kind]
        qmd = build / "reports" / ("national.qmd" if kind == "national" else "whitepaper.qmd")
        result = self._timed(f"{kind} render {renderer}", lambda: render(
            qmd, out_dir=self.root / kind / f"by-{renderer}", prefer=renderer))
        self.outputs[(kind, renderer)] = result.outputs

    def _build_region(self) -> None:
        from evaluation.params import load_params
        from evaluation.run.pipeline import render_report, report_dir

        root = self.root / "region"
        result = self._timed("region pipeline builtin", lambda: render_report(
            "lekstroom", "2014-2015", data_dir=self.data_dir, output_root=root / "_output",
            build_root=root / "_build", formats=["html", "pdf"], renderer="builtin",
            log=lambda _m: None))
        self.outputs[("region", "builtin")] = result.outputs
        self.builds["region"] = report_dir(root / "_build", load_params("lekstroom", "2014-2015"))

    def _build_municipality(self) -> None:
        from evaluation.run.batch import render_all

        root = self.root / "municipality"
        renderer = "quarto" if shutil.which("quarto") else "builtin"
        self.batch = self._timed(f"municipality batch {renderer} (2 reports, 2 workers)",
                                 lambda: render_all(
            executor="local", workers=2, data_dir=self.data_dir, output_root=root / "_output",
            build_root=root / "_build", renderer=renderer, formats=["html", "pdf"],
            select=lambda t: t.school_year == "2014-2015" and t.unit_name in ("Lopik", "Vianen"),
            progress=False))
        failed = [f"{r.key}: {r.error}" for r in self.batch.results if r.status != "done"]
        assert not failed, failed
        out = root / "_output" / "lekstroom" / "vianen" / "2014-2015"
        self.outputs[("municipality", renderer)] = {
            "html": out / "whitepaper.html", "pdf": out / "whitepaper.pdf"}
        self.builds["municipality"] = root / "_build" / "lekstroom" / "vianen" / "2014-2015"

    def _build_national(self) -> None:
        from evaluation.data.synthetic_national import write_national
        from evaluation.national.build import render_national

        root = self.root / "national"
        data = root / "data"
        write_national(data, NATIONAL_SCALE, "csv")
        result = self._timed("national pipeline builtin", lambda: render_national(
            None, data_dir=data, formats=["html", "pdf"], output_root=root / "_output",
            build_root=root / "_build", renderer="builtin", log=lambda _m: None))
        self.outputs[("national", "builtin")] = result.outputs
        self.builds["national"] = root / "_build" / "national" / result.school_year


# ------------------------------------------------------------------------- what is compared

def normalise(text: str) -> str:
    """Whitespace collapsed (no-break spaces too), as a reader sees it."""
    return " ".join(text.replace("\u00a0", " ").replace("\u2060", "").split())


class Page(HTMLParser):
    """The reader-visible structure of a rendered HTML report: title block, headings with their
    numbers, the table of contents, tables cell by cell, figures and cross-references."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title_block: list[tuple[str, str]] = []  # (class, text) of the title header
        self.headings: list[tuple[int, str]] = []
        self.toc: list[str] = []
        self.tables: list[dict] = []  # {"caption": str, "rows": [[cell, ...], ...]}
        self.images: list[str] = []  # alt texts
        self.captions: list[str] = []  # figure captions
        self.xrefs: list[tuple[str, str]] = []  # (href, text) of links to figures and tables
        self.renderer = ""  # the colophon's renderer
        self._open: list[tuple[str, str, dict]] = []  # (tag, role, attrs) being collected
        self._text: dict[int, list[str]] = {}
        self._in_header = self._in_toc = False
        self._float_caption = ""

    def _collect(self, tag: str, role: str, attrs: dict) -> None:
        self._open.append((tag, role, attrs))
        self._text[len(self._open)] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = {k: v or "" for k, v in attrs}
        classes = attr.get("class", "").split()
        if tag == "header" and attr.get("id") == "title-block-header":
            self._in_header = True
        if tag == "nav" and attr.get("id") == "TOC":
            self._in_toc = True
        if tag == "img":
            self.images.append(normalise(attr.get("alt", "")))
        elif tag == "table":
            # Quarto captions a numbered table in its float's <figcaption>, pandoc in <caption>
            self.tables.append({"caption": self._float_caption, "rows": []})
            self._float_caption = ""
        if tag == "figure":
            self._float_caption = ""
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        if self._in_header and tag in ("h1", "p"):
            self._collect(tag, "title", attr)
        elif re.fullmatch(r"h[1-6]", tag) and not self._in_header:
            self._collect(tag, "heading", attr)
        elif tag in ("th", "td"):
            self._collect(tag, "cell", attr)
        elif tag == "caption":
            self._collect(tag, "caption", attr)
        elif tag == "figcaption":
            self._collect(tag, "figcaption", attr)
        elif tag == "a" and self._in_toc:
            self._collect(tag, "toc", attr)
        elif tag == "a" and re.match(r"#(fig|tbl)-", attr.get("href", "")):
            self._collect(tag, "xref", attr)
        elif tag == "span" and "renderer" in classes:
            self._collect(tag, "renderer", attr)

    def handle_endtag(self, tag: str) -> None:
        if tag == "header":
            self._in_header = False
        if tag == "nav":
            self._in_toc = False
        if tag == "figure":
            self._float_caption = ""
        if not self._open or self._open[-1][0] != tag:
            return
        _, role, attr = self._open.pop()
        text = normalise("".join(self._text.pop(len(self._open) + 1)))
        if role == "title":
            self.title_block.append(((attr.get("class") or tag).split()[0], text))
        elif role == "heading":
            self.headings.append((int(tag[1]), text))
        elif role == "cell" and self.tables:
            self.tables[-1]["rows"][-1].append(text)
        elif role == "caption" and self.tables:
            self.tables[-1]["caption"] = text
        elif role == "figcaption" and re.match(r"Tabel \d+:", text):
            self._float_caption = text  # the table of this float follows
        elif role == "figcaption":
            self.captions.append(text)
        elif role == "toc":
            self.toc.append(text)
        elif role == "xref":
            self.xrefs.append((attr["href"], text))
        elif role == "renderer":
            self.renderer = text

    def handle_data(self, data: str) -> None:
        for depth in self._text:
            self._text[depth].append(data)


def html_page(path: Path) -> Page:
    page = Page()
    page.feed(Path(path).read_text(encoding="utf-8"))
    return page


RENDERER_SENTENCE = re.compile(r"Opgemaakt met .*? en Typst [\d.]+\.")


def pdf_text(path: Path) -> str:
    """The PDF's text in reading order, whitespace collapsed, the renderer's sentence left out."""
    reader = PdfReader(path)
    text = normalise(" ".join(page.extract_text() for page in reader.pages))
    return RENDERER_SENTENCE.sub("Opgemaakt met …", text)


def struct_types(path: Path) -> list[str]:
    """Structure types (/H1, /Table, /Figure, ...) of a tagged PDF, in document order."""
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

    walk(PdfReader(path).trailer["/Root"].get("/StructTreeRoot"))
    return types


def alt_texts(path: Path) -> list[str]:
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


def outline(path: Path) -> list[str]:
    """The PDF's bookmarks (its table of contents), flattened."""
    titles: list[str] = []

    def walk(items: list) -> None:
        for item in items:
            if isinstance(item, list):
                walk(item)
            else:
                titles.append(normalise(item.title))

    walk(PdfReader(path).outline)
    return titles


def pdf_ua(path: Path) -> dict:
    """What makes the PDF a tagged PDF/UA-1 document in Dutch."""
    root = PdfReader(path).trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode("utf-8") if "/Metadata" in root else ""
    return {
        "marked": bool(root.get("/MarkInfo", {}).get("/Marked", False)),
        "lang": str(root.get("/Lang", "")),
        "display_title": bool(root.get("/ViewerPreferences", {}).get("/DisplayDocTitle", False)),
        "pdfua": bool(re.search(r"<pdfuaid:part>1</pdfuaid:part>|pdfuaid:part=\"1\"", xmp)),
    }
