"""The site index `_output/index.html`: every published report, working relative links, Dutch and
accessible."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from evaluation.report.site import collect, index_html, write_index

A11Y = Path(__file__).resolve().parent / "a11y"

REPORTS = [  # (key, region, region name, unit, count_by, year, formats)
    ("lekstroom/2013-2014", "lekstroom", "Lekstroom", None, "school", "2013-2014",
     ("html", "pdf", "xlsx")),
    ("lekstroom/2014-2015", "lekstroom", "Lekstroom", None, "school", "2014-2015",
     ("html", "pdf", "xlsx")),
    ("lekstroom/lopik/2014-2015", "lekstroom", "Lekstroom", "Lopik", "school", "2014-2015",
     ("html", "xlsx")),
    ("lekstroom/ijsselstein/2014-2015", "lekstroom", "Lekstroom", "IJsselstein", "school",
     "2014-2015", ("html", "pdf", "xlsx")),
    ("zuid-kennemerland/haarlem/2016-2017", "zuid-kennemerland", "Zuid-Kennemerland", "Haarlem",
     "residence", "2016-2017", ("html", "pdf", "xlsx")),
]
NAMES = {"html": "whitepaper.html", "pdf": "whitepaper.pdf", "xlsx": "whitepaper.xlsx"}


@pytest.fixture
def output(tmp_path) -> Path:
    root = tmp_path / "_output"
    for key, region, name, unit, count_by, year, kinds in REPORTS:
        folder = root / key
        folder.mkdir(parents=True)
        for kind in kinds:
            (folder / NAMES[kind]).write_bytes(b"x" * 2048)
        (folder / ".manifest.json").write_text(json.dumps({
            "key": key, "region": region, "region_name": name, "title": f"Evaluatie {name}",
            "municipality": None, "unit_name": unit, "count_by": count_by, "school_year": year,
            "outputs": {k: NAMES[k] for k in kinds},
        }), encoding="utf-8")
    # A report folder without a manifest (a render that never finished) is not listed.
    (root / "lekstroom/vianen/2014-2015").mkdir(parents=True)
    (root / "lekstroom/vianen/2014-2015/whitepaper.html").write_text("half")
    return root


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self.lang = None
        self.tags: list[str] = []
        self._heading: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "html":
            self.lang = attrs.get("lang")
        if tag == "a":
            self.links.append(attrs["href"])
        if re.fullmatch(r"h[1-6]", tag):
            self._heading, self._text = tag, ""

    def handle_endtag(self, tag):
        if tag == self._heading:
            self.headings.append((tag, self._text.strip()))
            self._heading = None

    def handle_data(self, data):
        if self._heading:
            self._text += data


def _page(path: Path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def test_index_lists_every_report_with_working_relative_links(output):
    index = write_index(output)
    assert index == output / "index.html"
    page = _page(index)
    files = [href for href in page.links if not href.startswith("#")]
    expected = {f"{key}/{NAMES[k]}" for key, *_, kinds in REPORTS for k in kinds}
    assert set(files) == expected
    for href in files:
        assert not href.startswith(("/", "file:", "http")), href
        assert (output / unquote(href)).is_file(), href
    assert "vianen" not in index.read_text(encoding="utf-8")
    for anchor in (h[1:] for h in page.links if h.startswith("#")):
        assert f'id="{anchor}"' in index.read_text(encoding="utf-8")


def test_index_is_dutch_with_headings_per_region_and_municipality(output):
    text = write_index(output).read_text(encoding="utf-8")
    page = _page(output / "index.html")
    assert page.lang == "nl"
    assert page.headings[0][0] == "h1" and page.tags.count("h1") == 1
    h2 = [t for h, t in page.headings if h == "h2"]
    h3 = [t for h, t in page.headings if h == "h3"]
    assert "Regio Lekstroom" in h2 and "Regio Zuid-Kennemerland" in h2
    assert h3[:3] == ["Hele regio", "Gemeente IJsselstein", "Gemeente Lopik"]
    assert "Gemeente Haarlem" in h3
    # Real tables: caption, column headers and the school year as row header.
    assert text.count("<table>") == 4 and text.count("<caption>") == 4
    assert '<th scope="col">Schooljaar</th>' in text
    assert '<th scope="row">2013-2014</th>' in text
    # Link texts name the report for screen readers; a missing format is said in words.
    assert "Webpagina<span class=\"visually-hidden\"> van de whitepaper Lekstroom, Lopik, " \
           "schooljaar 2014-2015</span>" in text
    assert "niet gemaakt" in text
    assert "tellen leerlingen naar hun woongemeente" in text
    # Self-contained: no external style sheets, scripts or images.
    assert not re.search(r"<link|<script|<img|https?://", text)


def test_index_without_reports_says_so(tmp_path):
    assert "nog geen rapporten" in write_index(tmp_path / "empty").read_text(encoding="utf-8")
    assert collect(tmp_path / "empty") == []


def test_index_colours_meet_contrast_requirements():
    from evaluation.report.site import CSS

    def luminance(hex_colour: str) -> float:
        rgb = [int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    def ratio(a: str, b: str) -> float:
        la, lb = sorted((luminance(a), luminance(b)), reverse=True)
        return (la + 0.05) / (lb + 0.05)

    colours = set(re.findall(r"color: (#[0-9a-f]{6})", CSS))
    assert colours
    for colour in colours:  # every text colour on the white page and the header cells
        assert ratio(colour, "#ffffff") >= 4.5, colour
        assert ratio(colour, "#e8eef5") >= 4.5, colour


def test_index_html_is_escaped(output):
    text = index_html([{"region": "x", "region_name": "<b>R</b>", "school_year": "2014-2015",
                        "unit_name": None, "files": {}, "title": "T & co"}], output)
    assert "<b>R</b>" not in text and "&lt;b&gt;R&lt;/b&gt;" in text and "T &amp; co" in text


def test_index_passes_axe(output):
    """WCAG 2.1 AA and axe's best practices; skipped without the tools only where they are not
    required (CI sets A11Y_REQUIRED=1, so that a missing install step fails)."""
    from test_accessibility import require_tools

    node, chromium = require_tools()
    index = write_index(output)
    done = subprocess.run([node, str(A11Y / "axe-check.mjs"), str(index), "--tags",
                           "best-practice"], capture_output=True, text=True, timeout=180,
                          env={**os.environ, "CHROMIUM": chromium})
    if done.returncode == 2:
        pytest.fail(f"axe could not run: {done.stderr[-1000:]}")
    result = json.loads(done.stdout)
    assert result["violations"] == [], json.dumps(result["violations"], indent=1)[:2000]
