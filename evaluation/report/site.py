"""The site index `_output/index.html`: every published whitepaper by region, municipality and
school year, with links to its HTML, PDF and Excel workbook.

Built from the `.manifest.json` files beside the published reports, so it lists what is actually
there (also reports of earlier runs) and links only files that exist. One self-contained page in
Dutch for readers who are not programmers: `lang="nl"`, a heading per region and per area, a
table per area with the school year as row header, link texts that name the report for screen
readers, file sizes, and colours well above the WCAG AA contrast ratios.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from pathlib import Path
from typing import Any

from evaluation.labels import dutch_date
from evaluation.report.formatting import slug

INDEX = "index.html"
MANIFEST = ".manifest.json"
TITLE = "Evaluatierapporten jeugdhulp en voortgezet onderwijs"
KINDS = (("html", "Webpagina", "HTML"), ("pdf", "PDF", "PDF"), ("xlsx", "Excel", "Excel"))
NATIONAL_KIND = "national"  # manifest "kind" of the national overview (evaluation.national.build)

CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
  line-height: 1.5; color: #1a1a1a; background: #ffffff; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1rem 3rem; }
h1 { font-size: 1.9rem; line-height: 1.2; margin: 0.5rem 0 1rem; }
h2 { font-size: 1.45rem; margin: 2.5rem 0 0.5rem; border-bottom: 2px solid #1f4e79;
  padding-bottom: 0.2rem; }
h3 { font-size: 1.15rem; margin: 1.5rem 0 0.4rem; }
a { color: #0b4f8a; text-decoration: underline; text-underline-offset: 0.15em; }
a:visited { color: #5a2a82; }
a:hover { color: #062f55; text-decoration-thickness: 2px; }
a:focus-visible, .skip:focus { outline: 3px solid #b34700; outline-offset: 2px; }
.skip { position: absolute; left: -999rem; }
.skip:focus { position: static; display: inline-block; margin: 0.5rem; padding: 0.3rem 0.6rem;
  background: #ffffff; }
table { border-collapse: collapse; margin: 0.3rem 0 1rem; min-width: 60%; }
caption { text-align: left; font-weight: 600; padding: 0.2rem 0; }
th, td { border: 1px solid #767676; padding: 0.35rem 0.7rem; text-align: left;
  vertical-align: top; }
thead th { background: #e8eef5; }
tbody th { font-weight: 600; white-space: nowrap; }
.size, .missing, .note { color: #4a4a4a; }
.size { font-size: 0.9em; }
.visually-hidden { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px;
  overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0; }
nav ul { padding-left: 1.2rem; }
footer { max-width: 60rem; margin: 0 auto; padding: 0 1rem 2rem; font-size: 0.9rem; color: #4a4a4a; }
@media print { .skip { display: none; } a { color: #000000; } }
"""


def collect(output_root: Path) -> list[dict[str, Any]]:
    """The manifests of every published report under `output_root`, with its files that exist."""
    entries = []
    for path in sorted(Path(output_root).rglob(MANIFEST)):
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        files = {kind: path.parent / name for kind, name in manifest.get("outputs", {}).items()
                 if (path.parent / name).is_file()}
        if files:
            entries.append({**manifest, "dir": path.parent, "files": files})
    return entries


def _size(path: Path) -> str:
    n = path.stat().st_size
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f} MB".replace(".", ",")
    return f"{max(1, round(n / 1000))} kB"


def _unit_heading(entry: dict[str, Any]) -> str:
    return f"Gemeente {entry['unit_name']}" if entry.get("unit_name") else "Hele regio"


def _counting(entries: list[dict[str, Any]]) -> str:
    ways = {e.get("count_by") for e in entries if e.get("unit_name")}
    texts = {"school": "leerlingen naar de vestigingsgemeente van hun school",
             "residence": "leerlingen naar hun woongemeente"}
    known = [texts[w] for w in sorted(w for w in ways if w in texts)]
    return f"De rapporten per gemeente tellen {' of '.join(known)}." if known else ""


def _cell(entry: dict[str, Any], kind: str, word: str, format_name: str, root: Path) -> str:
    path = entry["files"].get(kind)
    if path is None:
        return '<td class="missing">niet gemaakt</td>'
    href = html.escape(os.path.relpath(path, root).replace(os.sep, "/"), quote=True)
    if entry.get("kind") == NATIONAL_KIND:
        what = f"van het landelijk overzicht, schooljaar {entry['school_year']}"
    else:
        what = (f"van de whitepaper {entry.get('region_name', entry['region'])}, "
                f"{entry.get('unit_name') or 'hele regio'}, schooljaar {entry['school_year']}")
    return (f'<td><a href="{href}">{word}<span class="visually-hidden"> '
            f"{html.escape(what)}</span></a> "
            f'<span class="size">({format_name}, {_size(path)})</span></td>')


def _year_table(caption: str, rows: list[dict[str, Any]], root: Path) -> str:
    """A table of reports, one row per school year, with a link per format (caption: HTML)."""
    head = "".join(f'<th scope="col">{word}</th>' for _, word, _ in KINDS)
    body = "".join(f'<tr><th scope="row">{html.escape(e["school_year"])}</th>'
                   + "".join(_cell(e, kind, word, fmt, root) for kind, word, fmt in KINDS)
                   + "</tr>" for e in rows)
    return (f"<table><caption>{caption}</caption><thead><tr><th scope=\"col\">Schooljaar</th>"
            f"{head}</tr></thead><tbody>{body}</tbody></table>")


def index_html(entries: list[dict[str, Any]], root: Path, now: dt.datetime | None = None) -> str:
    """The index page for `entries` (from `collect`), with links relative to `root`."""
    now = now or dt.datetime.now().astimezone()
    regions: dict[str, list[dict[str, Any]]] = {}
    national = sorted((e for e in entries if e.get("kind") == NATIONAL_KIND),
                      key=lambda e: e["school_year"])
    for e in entries:
        if e.get("kind") != NATIONAL_KIND:
            regions.setdefault(e["region"], []).append(e)
    parts = [
        "<!doctype html>", '<html lang="nl">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{TITLE}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        '<a class="skip" href="#inhoud">Naar de inhoud</a>',
        '<main id="inhoud">', f"<h1>{TITLE}</h1>",
        "<p>Evaluaties van de pilots met jeugdhulp in het voortgezet onderwijs: per regio, per "
        "gemeente van de regio en per schooljaar. Elk rapport is er als webpagina, als PDF om af "
        "te drukken en met alle tabellen en schattingen in een Excel-bestand.</p>",
    ]
    if national:  # the national overviews (evaluation render --national) before the regions
        parts.append('<section aria-labelledby="landelijk">')
        parts.append('<h2 id="landelijk">Landelijk overzicht</h2>')
        parts.append("<p>Alle regio's naast elkaar, per schooljaar.</p>")
        parts.append(_year_table("Landelijke overzichten per schooljaar", national, root))
        parts.append("</section>")
    if not regions and not national:
        parts.append("<p>Er zijn nog geen rapporten gepubliceerd.</p>")
    elif regions:
        parts.append('<nav aria-label="Regio\'s"><h2 id="regios">Regio\'s</h2><ul>')
        for rid, items in sorted(regions.items(), key=lambda kv: kv[1][0].get("region_name", "")):
            parts.append(f'<li><a href="#regio-{html.escape(rid)}">Regio '
                         f"{html.escape(items[0].get('region_name', rid))}</a></li>")
        parts.append("</ul></nav>")
    for rid, items in sorted(regions.items(), key=lambda kv: kv[1][0].get("region_name", "")):
        name = html.escape(items[0].get("region_name", rid))
        parts.append(f'<section aria-labelledby="regio-{html.escape(rid)}">')
        parts.append(f'<h2 id="regio-{html.escape(rid)}">Regio {name}</h2>')
        if items[0].get("title"):
            parts.append(f'<p>{html.escape(items[0]["title"])}.</p>')
        counting = _counting(items)
        if counting:
            parts.append(f'<p class="note">{counting}</p>')
        units: dict[str, list[dict[str, Any]]] = {}
        for e in items:
            units.setdefault(e.get("unit_name") or "", []).append(e)
        for unit in sorted(units, key=lambda u: (u != "", u)):
            rows = sorted(units[unit], key=lambda e: e["school_year"])
            heading = _unit_heading(rows[0])
            anchor = html.escape(f"{rid}-{slug(unit) if unit else 'regio'}")
            parts.append(f'<h3 id="{anchor}">{html.escape(heading)}</h3>')
            which = f"gemeente {unit}" if unit else "hele regio"
            parts.append(_year_table(f"Rapporten {html.escape(which)}, regio {name}, per "
                                     "schooljaar", rows, root))
        parts.append("</section>")
    stamp = f"{dutch_date(now.date())}, {now:%H:%M}"
    parts += ["</main>", f"<footer><p>Deze pagina is bijgewerkt op {stamp}. Aantallen in de "
              "rapporten zijn afgerond; kleine aantallen worden niet gepubliceerd.</p></footer>",
              "</body>", "</html>", ""]
    return "\n".join(parts)


def write_index(output_root: Path) -> Path:
    """Write `<output_root>/index.html` (atomically) and return its path."""
    root = Path(output_root)
    root.mkdir(parents=True, exist_ok=True)
    text = index_html(collect(root), root)
    target = root / INDEX
    tmp = target.with_name(f".{INDEX}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target
