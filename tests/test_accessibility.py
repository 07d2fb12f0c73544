"""Accessibility of the HTML whitepaper: WCAG 2.1 level AA, as Dutch public bodies must publish.

One real report (Lekstroom 2014-2015 on the synthetic data), from each renderer: the built-in one
and Quarto (tests/renderers.py; the Quarto case skips without Quarto, or fails where
QUARTO_REQUIRED=1). The structural checks read its HTML directly; the full check runs axe-core's WCAG 2.0/2.1 A and AA
rules in headless Chromium (tests/a11y/axe-check.mjs) and requires zero violations.

The browser check needs `node`, Chromium (Debian's package `chromium`) and the Node packages of
tests/a11y (`npm ci --prefix tests/a11y`); without them it is skipped, or fails when
A11Y_REQUIRED=1 is set (as in CI, where a skip would hide a missing install step).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from renderers import RENDERERS

A11Y = Path(__file__).resolve().parent / "a11y"
SCRIPT = A11Y / "axe-check.mjs"
INSTALL = ("apt-get install -y chromium && npm ci --prefix tests/a11y "
           "(and nodejs/npm if node is missing)")


@pytest.fixture(scope="module", params=RENDERERS)
def report(request: pytest.FixtureRequest, shared_reports) -> Path:
    """The region report's HTML from each renderer (rendered once per session, shared)."""
    return shared_reports.get("region", request.param)["html"]


class _Page(HTMLParser):
    """The parts of an HTML page that the structural checks look at."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lang: str | None = None
        self.title = ""
        self.headings: list[tuple[int, str]] = []  # (level, text)
        self.images: list[dict[str, str | None]] = []
        self.tables: list[dict] = []  # {"th": [attrs...], "th_text": [...], "caption": str}
        self.ids: set[str] = set()
        self.links: list[str] = []  # href values
        self.landmarks: list[str] = []  # main, header, nav (direct or by role)
        self.first_link: str | None = None
        self._stack: list[str] = []  # open elements whose text we collect
        self._text: list[str] = []
        self._cell: dict | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if attr.get("id"):
            self.ids.add(attr["id"])
        if tag == "html":
            self.lang = attr.get("lang")
        elif tag in ("main", "header", "nav") or attr.get("role") == "main":
            self.landmarks.append("main" if attr.get("role") == "main" else tag)
        if tag == "a" and attr.get("href") is not None:
            self.links.append(attr["href"])
            if self.first_link is None:
                self.first_link = attr["href"]
        if tag == "img":
            self.images.append(attr)
        elif tag == "table":
            self.tables.append({"th": [], "th_text": [], "caption": ""})
        elif tag == "th" and self.tables:
            self.tables[-1]["th"].append(attr)
        if tag in ("title", "h1", "h2", "h3", "h4", "h5", "h6", "th", "caption"):
            self._stack.append(tag)
            self._text = []

    def handle_endtag(self, tag: str) -> None:
        if self._stack and tag == self._stack[-1]:
            self._stack.pop()
            text = " ".join("".join(self._text).split())
            if tag == "title":
                self.title = text
            elif tag == "th":
                self.tables[-1]["th_text"].append(text)
            elif tag == "caption":
                self.tables[-1]["caption"] = text
            else:
                self.headings.append((int(tag[1]), text))

    def handle_data(self, data: str) -> None:
        if self._stack:
            self._text.append(data)


@pytest.fixture(scope="module")
def page(report: Path) -> _Page:
    parsed = _Page()
    parsed.feed(report.read_text(encoding="utf-8"))
    return parsed


# --------------------------------------------------------------------- structure (no browser)

def test_page_is_dutch_and_titled(page: _Page) -> None:
    assert page.lang == "nl"  # 3.1.1 language of page
    assert "Lekstroom" in page.title and "jeugdhulp" in page.title.lower()  # 2.4.2 page titled


def test_every_image_has_alt_text(page: _Page) -> None:
    assert page.images, "the report has figures"
    missing = [img.get("src", "")[:60] for img in page.images if not (img.get("alt") or "").strip()]
    assert not missing, f"images without alt text (1.1.1): {missing}"


def test_every_table_has_scoped_column_headers(page: _Page) -> None:
    assert page.tables, "the report has tables"
    for number, table in enumerate(page.tables, 1):
        where = f"table {number} ({table['caption'] or 'no caption'})"
        assert table["th"], f"{where} has no header cells (1.3.1)"
        assert all(th.get("scope") == "col" for th in table["th"]), where
        assert all(table["th_text"]), f"{where} has an empty header cell"


def test_headings_form_an_outline_without_skipped_levels(page: _Page) -> None:
    levels = [level for level, _ in page.headings]
    assert levels[0] == 1 and levels.count(1) == 1, page.headings  # the title, once
    skips = [(a, b) for a, b in zip(page.headings, page.headings[1:], strict=False)
             if b[0] > a[0] + 1]
    assert not skips, f"heading levels skipped (1.3.1, 2.4.6): {skips}"
    assert all(text for _, text in page.headings), "empty heading"


def test_landmarks_and_skip_link(page: _Page) -> None:
    assert page.landmarks.count("main") == 1, page.landmarks
    assert "nav" in page.landmarks and "header" in page.landmarks
    assert page.first_link == "#inhoud" and "inhoud" in page.ids  # 2.4.1 bypass blocks


def test_in_page_links_resolve(page: _Page) -> None:
    broken = sorted({href for href in page.links
                     if href.startswith("#") and href[1:] not in page.ids})
    assert not broken, f"links to missing anchors: {broken}"


# ------------------------------------------------------------------- axe-core in Chromium

def _tools() -> tuple[str | None, str | None, list[str]]:
    node = shutil.which("node")
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    chromium = chromium if Path(chromium).is_file() else None
    missing = [name for name, found in (
        ("node", node), ("chromium", chromium),
        ("tests/a11y/node_modules", (A11Y / "node_modules" / "axe-core").is_dir()
         and (A11Y / "node_modules" / "playwright-core").is_dir()),
    ) if not found]
    return node, chromium, missing


def require_tools() -> tuple[str, str]:
    """node and chromium for axe; skip without them, fail where CI requires them
    (A11Y_REQUIRED=1, so that a missing install step cannot hide behind a skip)."""
    node, chromium, missing = _tools()
    if missing:
        message = f"axe check needs {', '.join(missing)}; install with: {INSTALL}"
        if os.environ.get("A11Y_REQUIRED") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return node, chromium


def _axe(path: Path) -> tuple[int, dict, str]:
    node, chromium = require_tools()
    proc = subprocess.run([node, str(SCRIPT), str(path)], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "CHROMIUM": chromium}, check=False)
    if proc.returncode not in (0, 1):
        pytest.fail(f"axe-check could not run (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _describe(violations: list[dict]) -> str:
    lines = [f"{len(violations)} WCAG violation(s):"]
    for v in violations:
        lines.append(f"- {v['id']} ({v['impact']}): {v['help']} <{v['helpUrl']}>")
        for node in v["nodes"][:5]:
            lines.append(f"    at {' '.join(map(str, node['target']))}: {node['html'][:160]}")
        if len(v["nodes"]) > 5:
            lines.append(f"    ... and {len(v['nodes']) - 5} more")
    return "\n".join(lines)


def test_axe_finds_no_wcag_2_1_aa_violations(report: Path) -> None:
    status, result, _ = _axe(report)
    assert result["tags"] == ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
    assert result["passes"] > 10  # axe really ran its rules over the page
    assert status == 0 and not result["violations"], _describe(result["violations"])


def test_axe_check_reports_violations(tmp_path: Path) -> None:
    """The check is no rubber stamp: a page with known faults fails with those rules named."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="x.png"><p style="color:#bbb">grijs</p>'
                   "<table><tr><td>1</td></tr></table></body></html>", encoding="utf-8")
    status, result, _ = _axe(bad)
    assert status == 1
    assert {"image-alt", "html-has-lang", "document-title", "color-contrast"} <= {
        v["id"] for v in result["violations"]}
