"""Audit of published outputs: the last look before a report leaves the building.

Disclosure control (`evaluation.report.disclosure`) protects every table the code knows it publishes;
this audit reads what was actually rendered, whatever route it took, and fails when a file under
the output folder shows:

- identifier: a value of an `id` field of the data model (pupil, report, trajectory, referral,
  respondent), when the data folder is given. school_id is public (schools are named in the
  report) and ids shorter than MIN_ID_LENGTH would match ordinary words and numbers.
- pseudonym: something shaped like a pseudonym even without the data: a few capitals and a run of
  digits (P0001234, CR000001) or a prefix and 16 hex characters (an HMAC pseudonym, stu_3fa9…).
- hmac-key: the pseudonymisation key (EVALUATION_HMAC_KEY or the file in
  EVALUATION_HMAC_KEY_FILE), as given and in its hex and base64 forms.
- bsn: nine digits (or 1234.56.782) that pass the eleven-test of citizen service numbers, as a
  whole token (not inside a longer number or a decimal). Eight-digit numbers are not padded as
  the importer does: compact dates (20130801) would pass the test one time in eleven.
- small-count: in a table, a whole number from 0 to min_count - 1 in a column whose header names a
  count of persons or events (see COUNT_WORDS). Zero counts too: disclosure control suppresses it
  (a published 0 says that nobody in the group had the event, which is itself a disclosure), so
  an unsuppressed 0 shows that a table bypassed it. Suppressed cells show "·" and are skipped.
- unreadable: a file the audit could not read; it cannot vouch for it, so it fails.

Files read: HTML (text, alt/title/aria attributes, tables), PDF (pypdf text, per page and line),
Excel (openpyxl, every cell; blocks of rows as tables) and executed notebooks (*.ipynb: cell
sources and text outputs, Markdown pipe tables and HTML tables among them; images are skipped);
also CSV, Markdown, text and JSON files (a site's search.json repeats the text of every page).
Tables are checked in HTML, Excel, notebooks, CSV and Markdown; a PDF's text has lost its table structure, so
the PDF is checked for identifiers, pseudonyms, the key and BSNs, and its tables through the HTML
rendered from the same source. Script and style elements are searched for identifiers and the key
only: minified code is full of digit runs that would match the patterns by chance.

Findings never repeat what they found: identifiers, keys and numbers are shown as their first two
characters and "…".
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd

from evaluation.data.datamodel import TABLES

MIN_ID_LENGTH = 6
PUBLIC_ID_FIELDS = {"school_id"}  # school locations are named in every report
KEY_ENV, KEY_FILE_ENV = "EVALUATION_HMAC_KEY", "EVALUATION_HMAC_KEY_FILE"
MIN_KEY_LENGTH = 8  # shorter forms of a key would match by chance
SUFFIXES = {".html": "html", ".htm": "html", ".pdf": "pdf", ".xlsx": "xlsx", ".xlsm": "xlsx",
            ".ipynb": "ipynb", ".csv": "csv", ".md": "text", ".txt": "text", ".json": "text"}

# Headers of columns that hold counts of persons or events (case-insensitive, substring).
COUNT_WORDS = ("aantal", "meldingen", "leerlingen", "respondenten", "trajecten", "verwijzingen",
               "intakes", "jongeren", "kinderen", "ouders", "gezinnen", "cliënten", "deelnemers",
               "personen", "scholieren")
COUNT_HEADERS = {"n"}  # whole headers
# A header with one of these names a rate, share, mean or duration, not a count.
NOT_COUNT_WORDS = ("%", "aandeel", "percentage", "gemiddeld", "mediaan", "/", "ratio",
                   "verhouding", "interval", "alfa", "dagen", "duur", "score")
RATE = re.compile(r"\bper\s+[\d.]+")  # "Meldingen per 100 leerlingen" is a rate
# The data-quality annex counts records of the delivered files, not persons in a group: how many
# rows were read, accepted, rejected or left empty. They must be exact so that a reader can check
# read = accepted + rejected, and a record count of a whole file says nothing about a person.
RECORD_COUNT_HEADERS = ("ingelezen", "geaccepteerd", "afgekeurd", "leeg", "rijen")
SCHOOL_YEAR = re.compile(r"\d{4}-\d{4}")
SUPPRESSED = {"·", "–", "-", "—", ""}
INTEGER_CELL = re.compile(r"(\d{1,3}(?:\.\d{3})+|\d+)(?:\s*\(.*\))?")

# P0001234 / CR000001 (the synthetic data's ids), and an HMAC pseudonym: a prefix and 16 hex
# characters (`pseudonymisation.pseudonymise` writes "stu_" + 16 hex). Without a separator the
# prefix is at most 3 letters, so that a longer run of hex (a hash) does not match.
PSEUDONYM = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-Z]{1,3}[-_]?\d{6,12}"
    r"|(?:[A-Za-z]{1,8}[-_]|[A-Za-z]{1,3})[0-9a-fA-F]{16})(?![A-Za-z0-9])")
BSN = re.compile(r"(?<![\w.,])(\d{9}|\d{4}\.\d{2}\.\d{3})(?!\w|[.,]\d)")
TOKEN = re.compile(r"[A-Za-z0-9]+(?:[._-][A-Za-z0-9]+)*")
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._-]+")


class AuditError(ValueError):
    """The audit cannot run as asked (no such folder, no data tables in the data folder)."""


@dataclass(frozen=True)
class Finding:
    """One thing a published file must not show: file, where in it, what, a redacted snippet."""

    file: Path
    location: str
    kind: str
    snippet: str

    def __str__(self) -> str:
        return f"{self.file}: {self.location}: {self.kind}: {self.snippet}"


def redact(value: str) -> str:
    """The first two characters and an ellipsis: enough to find it, too little to reuse it."""
    return value[:2] + "…"


# --- what to look for --------------------------------------------------------------------------


def collect_identifiers(data_dir: Path) -> set[str]:
    """Values of every non-public `id` field of the data model in the CSV or Parquet files of
    `data_dir`, casefolded, ignoring those shorter than MIN_ID_LENGTH."""
    from evaluation.data.reading import table_files

    data_dir = Path(data_dir)
    found: set[str] = set()
    files = {name: path for name, path in table_files(data_dir).items() if path.is_file()}
    if not files:
        raise AuditError(f"--data {data_dir}: none of the data model's files "
                         f"({', '.join(t.filename for t in TABLES.values())}) is there")
    for name, path in files.items():
        table = TABLES[name]
        fields = [f.name for f in table.fields if f.kind == "id" and f.name not in PUBLIC_ID_FIELDS]
        if not fields:
            continue
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            present = pq.read_schema(path).names
            cols = [c for c in fields if c in present]
            frame = (pq.read_table(path, columns=cols).to_pandas().astype("string")
                     .fillna("") if cols else None)
        else:
            header = pd.read_csv(path, nrows=0).columns
            cols = [c for c in fields if c in header]
            frame = (pd.read_csv(path, usecols=cols, dtype=str, keep_default_na=False)
                     if cols else None)
        if frame is None:
            continue
        for col in cols:
            values = pd.Series(frame[col].unique()).astype(str).str.strip()
            found.update(v.casefold() for v in values if len(v) >= MIN_ID_LENGTH)
    return found


def key_forms(key: str | bytes | None = None) -> list[str]:
    """The forms in which a key could leak: as given, hex and base64 of its bytes, and the
    decoded form of a key given as hex or base64. Without `key`, read it from the environment."""
    if key is None:
        key = os.environ.get(KEY_ENV) or None
        path = os.environ.get(KEY_FILE_ENV)
        if key is None and path:
            try:
                key = Path(path).read_bytes()
            except OSError:
                key = None
    if not key:
        return []
    raw = key if isinstance(key, bytes) else key.encode("utf-8")
    text = raw.decode("utf-8", errors="ignore").strip()
    blobs = [raw, raw.strip(), text.encode("utf-8")]
    if re.fullmatch(r"(?:[0-9a-fA-F]{2})+", text):
        blobs.append(bytes.fromhex(text))
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            blobs.append(decode(text.encode("ascii") + b"=" * (-len(text) % 4)))
        except (binascii.Error, ValueError):
            pass
    forms = {text}
    for blob in blobs:
        forms.add(blob.hex())
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            enc = encode(blob).decode("ascii")
            forms.update({enc, enc.rstrip("=")})
    return sorted((f for f in forms if len(f) >= MIN_KEY_LENGTH), key=len, reverse=True)


def eleven_test(digits: str) -> bool:
    """True for a nine-digit number that passes the BSN eleven-test (and is not all zeros)."""
    if len(digits) != 9 or not digits.isdigit() or set(digits) == {"0"}:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True))
    return (total - int(digits[8])) % 11 == 0


@dataclass
class _Rules:
    identifiers: set[str] = field(default_factory=set)
    odd_identifiers: list[str] = field(default_factory=list)  # with characters outside tokens
    keys: list[str] = field(default_factory=list)
    min_count: int = 10


# --- scanning text -----------------------------------------------------------------------------


def _context(text: str, start: int, end: int) -> str:
    """The match redacted, with up to three words either side (any with a digit, or long enough
    to be a code, redacted as well; a word cut by the window is dropped)."""
    left, right = text[max(0, start - 40):start], text[end:end + 40]
    before, after = left.split(), right.split()
    if start > 40 and before and not left[0].isspace():
        before = before[1:]
    if end + 40 < len(text) and after and not right[-1].isspace():
        after = after[:-1]
    mask = re.compile(r"\S*\d\S*|\S{12,}")
    before, after = ([mask.sub(lambda m: redact(m.group()), w) for w in words]
                     for words in (before[-3:], after[:3]))
    out = " ".join(before) + ("" if before and not left[-1].isspace() else " ")
    out += f"[{redact(text[start:end])}]"
    out += ("" if after and not right[0].isspace() else " ") + " ".join(after)
    return out.strip()


def _identifier_spans(text: str, rules: _Rules) -> Iterator[tuple[int, int]]:
    if not rules.identifiers:
        return
    for m in TOKEN.finditer(text):
        token = m.group()
        if token.casefold() in rules.identifiers:
            yield m.span()
            continue
        pieces = [p for p in re.finditer(r"[A-Za-z0-9]+", token)][:12]
        done = False
        for i in range(len(pieces)):
            for j in range(len(pieces) - 1, i - 1, -1):
                if (i, j) == (0, len(pieces) - 1):
                    continue
                a, b = pieces[i].start(), pieces[j].end()
                if token[a:b].casefold() in rules.identifiers:
                    yield m.start() + a, m.start() + b
                    done = True
                    break
            if done:
                break
    for ident in rules.odd_identifiers:
        pattern = rf"(?<![A-Za-z0-9]){re.escape(ident)}(?![A-Za-z0-9])"
        for m in re.finditer(pattern, text, re.IGNORECASE):
            yield m.span()


def scan_text(text: str, rules: _Rules, code: bool = False) -> list[tuple[str, int, int]]:
    """(kind, start, end) of everything in `text` that must not be published.

    code: the text is script or style, searched for identifiers and the key only."""
    text = text.replace("\u00ad", "")
    hits: list[tuple[str, int, int]] = []
    taken: list[tuple[int, int]] = []

    def add(kind: str, start: int, end: int) -> None:
        if not any(start < e and s < end for s, e in taken):
            hits.append((kind, start, end))
            taken.append((start, end))

    for form in rules.keys:  # hex in either case; base64 and the key itself exactly
        flags = re.IGNORECASE if re.fullmatch(r"[0-9a-fA-F]+", form) else 0
        for m in re.finditer(re.escape(form), text, flags):
            add("hmac-key", *m.span())
    for start, end in _identifier_spans(text, rules):
        add("identifier", start, end)
    if code:
        return hits
    for m in PSEUDONYM.finditer(text):
        add("pseudonym", *m.span())
    for m in BSN.finditer(text):
        if eleven_test(m.group(1).replace(".", "")):
            add("bsn", *m.span(1))
    return hits


def _text_findings(path: Path, where: str, text: str, rules: _Rules,
                   code: bool = False) -> list[Finding]:
    clean = text.replace("\u00ad", "")
    return [Finding(path, where, kind, _context(clean, s, e))
            for kind, s, e in scan_text(clean, rules, code)]


# --- tables ------------------------------------------------------------------------------------


@dataclass
class _Table:
    caption: str
    header: list[str]
    rows: list[list[str]]
    where: str  # where the table is, e.g. "table 3" or "sheet 'Blad1'"
    cells: list[list[str]] = field(default_factory=list)  # cell addresses, when known


def _norm(text: str) -> str:
    return " ".join(str(text).replace("\u00ad", "").split()).casefold()


def count_columns(header: Sequence[str]) -> list[int]:
    """Indices of the columns whose header names a count of persons or events.

    A school-year header ("2013-2014") or "Totaal" is a count only in a crosstab: a table whose
    columns, from the first school year on, are two or more school years or "Totaal" and nothing
    else (a table "Indicator | Groep | Vóór | 2014-2015" holds days and shares, not counts).
    """
    names = [_norm(h) for h in header]
    years = [i for i, h in enumerate(names) if SCHOOL_YEAR.fullmatch(h)]
    crosstab = bool(years) and years[0] > 0 and len(names) - years[0] >= 2 and all(
        SCHOOL_YEAR.fullmatch(h) or h == "totaal" for h in names[years[0]:])
    out = []
    for i, h in enumerate(names):
        if any(h.startswith(w) for w in RECORD_COUNT_HEADERS):
            continue
        if crosstab and i >= years[0]:
            out.append(i)
            continue
        if any(w in h for w in NOT_COUNT_WORDS) or RATE.search(h):
            continue
        if h in COUNT_HEADERS or any(w in h for w in COUNT_WORDS):
            out.append(i)
    return out


def _integer(cell: object) -> int | None:
    """The whole number a cell shows ("1.234", "15", "15 (12%)", 15), else None."""
    if isinstance(cell, bool) or cell is None:
        return None
    if isinstance(cell, int):
        return cell
    if isinstance(cell, float):
        return int(cell) if cell.is_integer() else None
    text = " ".join(str(cell).split())
    m = INTEGER_CELL.fullmatch(text)
    return int(m.group(1).replace(".", "")) if m else None


def _short(text: str, n: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: n - 1] + "…"


def table_findings(path: Path, table: _Table, min_count: int) -> list[Finding]:
    """Counts below the threshold in the count columns of one table."""
    found = []
    title = f"{table.where}" + (f" ({_short(table.caption)!r})" if table.caption else "")
    for col in count_columns(table.header):
        for r, row in enumerate(table.rows):
            if col >= len(row) or str(row[col]).strip() in SUPPRESSED:
                continue
            value = _integer(row[col])
            if value is None or value >= min_count:
                continue
            cell = (f", cell {table.cells[r][col]}" if table.cells and col < len(table.cells[r])
                    else "")
            found.append(Finding(
                path, f"{title}, row {r + 1} ({_short(row[0], 30)!r}), column "
                      f"{_short(table.header[col], 30)!r}{cell}",
                "small-count", f"count {value} below the threshold {min_count}"))
    return found


_SEPARATOR = re.compile(r"^\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")


def _pipe_cells(line: str) -> list[str]:
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    return [c.replace("\\|", "|").strip() for c in re.split(r"(?<!\\)\|", body)]


def pipe_tables(text: str, where: str) -> list[_Table]:
    """Markdown pipe tables (as `formatting.markdown_table` writes them) with their captions."""
    lines = text.splitlines()
    out = []
    i = 0
    while i + 1 < len(lines):
        if lines[i].lstrip().startswith("|") and _SEPARATOR.match(lines[i + 1].strip()):
            header = _pipe_cells(lines[i])
            j = i + 2
            rows = []
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                rows.append(_pipe_cells(lines[j]))
                j += 1
            caption = ""
            for k in range(j, min(j + 3, len(lines))):
                if lines[k].startswith(": "):
                    caption = lines[k][2:]
                    break
            out.append(_Table(caption, header, rows, f"{where}, table {len(out) + 1}"))
            i = j
        else:
            i += 1
    return out


# --- HTML --------------------------------------------------------------------------------------


class _HTMLScan(HTMLParser):
    """Visible text (with its line), text-bearing attributes, script text and tables."""

    TEXT_ATTRS = {"alt", "title", "aria-label", "aria-description", "content", "placeholder",
                  "value", "label", "href", "src", "summary"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[tuple[int, str, bool]] = []  # (line, text, is code)
        self.tables: list[_Table] = []
        self._raw: str | None = None
        self._open: list[dict] = []  # tables being read (nested tables stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        line = self.getpos()[0]
        for name, value in attrs:
            if value and name in self.TEXT_ATTRS and not value.lstrip().startswith("data:"):
                self.texts.append((line, value, False))
        if tag in ("script", "style"):
            self._raw = tag
        elif tag == "table":
            self._open.append({"caption": None, "rows": [], "row": None, "cell": None,
                               "thead": False, "heads": [], "th_only": False})
        elif self._open:
            t = self._open[-1]
            if tag == "caption":
                t["caption"] = []
            elif tag == "thead":
                t["thead"] = True
            elif tag == "tr":
                t["row"], t["th_only"] = [], True
            elif tag in ("td", "th") and t["row"] is not None:
                t["cell"] = []
                t["th_only"] = t["th_only"] and tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._raw = None
            return
        if not self._open:
            return
        t = self._open[-1]
        if tag in ("td", "th") and t["cell"] is not None and t["row"] is not None:
            t["row"].append(" ".join("".join(t["cell"]).split()))
            t["cell"] = None
        elif tag == "tr" and t["row"] is not None:
            t["rows"].append(t["row"])
            t["heads"].append(t["thead"] or (t["th_only"] and bool(t["row"])))
            t["row"] = None
        elif tag == "thead":
            t["thead"] = False
        elif tag == "caption" and isinstance(t["caption"], list):
            t["caption"] = " ".join("".join(t["caption"]).split())
        elif tag == "table":
            self._open.pop()
            rows, heads = t["rows"], t["heads"]
            # Leading header rows; without any, the first row is taken for the header.
            n_head = next((i for i, h in enumerate(heads) if not h), len(heads)) or 1
            caption = t["caption"] if isinstance(t["caption"], str) else ""
            if len(rows) > 1:
                self.tables.append(_Table(caption, rows[0], rows[n_head:],
                                          f"table {len(self.tables) + 1}"))

    def handle_data(self, data: str) -> None:
        if not data.strip():
            return
        self.texts.append((self.getpos()[0], data, self._raw is not None))
        if self._open and self._raw is None:
            t = self._open[-1]
            if t["cell"] is not None:
                t["cell"].append(data)
            elif isinstance(t["caption"], list):
                t["caption"].append(data)


def _html_findings(path: Path, html: str, rules: _Rules, where: str = "") -> list[Finding]:
    scan = _HTMLScan()
    scan.feed(html)
    scan.close()
    prefix = f"{where}, " if where else ""
    found = []
    for line, text, code in scan.texts:
        found += _text_findings(path, f"{prefix}line {line}" + (" (script)" if code else ""),
                                text, rules, code)
    for table in scan.tables:
        table.where = prefix + table.where
        found += table_findings(path, table, rules.min_count)
    return found


# --- the file types ----------------------------------------------------------------------------


def _audit_html(path: Path, rules: _Rules) -> list[Finding]:
    return _html_findings(path, path.read_text(encoding="utf-8", errors="replace"), rules)


def _pdf_pages(path: Path) -> list[str]:
    """The text of every page: with PDFium (pypdfium2, about ten times faster than pypdf on a
    whitepaper) where installed, else with pypdf. Soft hyphens removed."""
    try:
        import pypdfium2 as pdfium
    except ImportError:
        pdfium = None
    if pdfium is None:
        from pypdf import PdfReader

        logging.getLogger("pypdf").setLevel(logging.ERROR)
        texts = [page.extract_text() or "" for page in PdfReader(path).pages]
    else:
        texts = []
        doc = pdfium.PdfDocument(str(path))
        try:
            for i in range(len(doc)):
                page = doc[i]
                textpage = page.get_textpage()
                texts.append(textpage.get_text_range())
                textpage.close()
                page.close()
        finally:
            doc.close()
    return [re.sub("[\u00ad\x02\ufffe]", "", t) for t in texts]


def _audit_pdf(path: Path, rules: _Rules) -> list[Finding]:
    found = []
    for p, text in enumerate(_pdf_pages(path), start=1):
        for n, line in enumerate(text.splitlines(), start=1):
            found += _text_findings(path, f"page {p}, line {n}", line, rules)
        # A key broken over two lines: search the page once more without whitespace.
        if not any(f.kind == "hmac-key" and f.location.startswith(f"page {p},") for f in found):
            joined = re.sub(r"\s+", "", text)
            for kind, s, e in scan_text(joined, _Rules(keys=rules.keys), code=True):
                found.append(Finding(path, f"page {p} (across a line break)", kind,
                                     f"[{redact(joined[s:e])}]"))
    return found


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _audit_xlsx(path: Path, rules: _Rules) -> list[Finding]:
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=True, data_only=True)
    found = []
    try:
        for sheet in book.worksheets:
            found += _text_findings(path, f"sheet name {redact(sheet.title)!r}", sheet.title,
                                    rules)
            block: list[tuple[int, tuple]] = []
            rows = list(sheet.iter_rows(values_only=True))
            for r, values in enumerate(rows, start=1):
                for c, value in enumerate(values):
                    if value is not None and str(value).strip():
                        where = f"sheet {sheet.title!r}, cell {_column_letter(c)}{r}"
                        found += _text_findings(path, where, str(value), rules)
                if any(v is not None and str(v).strip() for v in values):
                    block.append((r, values))
                if r == len(rows) or not any(v is not None and str(v).strip() for v in values):
                    found += _xlsx_block(path, sheet.title, block, rules.min_count)
                    block = []
    finally:
        book.close()
    return found


def _xlsx_block(path: Path, sheet: str, block: list[tuple[int, tuple]],
                min_count: int) -> list[Finding]:
    """A block of contiguous non-empty rows as a table whose first row is the header."""
    if len(block) < 2:
        return []
    (r0, header), body = block[0], block[1:]
    if not all(isinstance(h, str) or h is None for h in header):
        return []
    width = len(header)
    table = _Table("", ["" if h is None else str(h) for h in header],
                   [["" if v is None else v for v in values] + [""] * (width - len(values))
                    for _, values in body],
                   f"sheet {sheet!r}, table at row {r0}",
                   [[f"{_column_letter(c)}{r}" for c in range(width)] for r, _ in body])
    return table_findings(path, table, min_count)


def _mime_text(value: object) -> str:
    if isinstance(value, list):
        return "".join(str(v) for v in value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _audit_ipynb(path: Path, rules: _Rules) -> list[Finding]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    found = []
    for i, cell in enumerate(nb.get("cells", []), start=1):
        source = _mime_text(cell.get("source", ""))
        found += _text_findings(path, f"cell {i} (source)", source, rules)
        if cell.get("cell_type") == "markdown":
            for table in pipe_tables(source, f"cell {i} (source)"):
                found += table_findings(path, table, rules.min_count)
        for j, out in enumerate(cell.get("outputs", []), start=1):
            where = f"cell {i}, output {j}"
            kind = out.get("output_type")
            if kind == "stream":
                found += _text_findings(path, where, _mime_text(out.get("text", "")), rules)
            elif kind == "error":
                text = ANSI.sub("", "\n".join(out.get("traceback", [])))
                found += _text_findings(path, where, text, rules)
            for mime, value in (out.get("data") or {}).items():
                if mime.startswith("image/") and mime != "image/svg+xml":
                    continue
                text = _mime_text(value)
                if mime == "text/html" or mime == "image/svg+xml":
                    found += _html_findings(path, text, rules, f"{where} ({mime})")
                    continue
                found += _text_findings(path, f"{where} ({mime})", text, rules)
                if mime == "text/markdown":
                    for table in pipe_tables(text, f"{where} ({mime})"):
                        found += table_findings(path, table, rules.min_count)
    return found


def _audit_text(path: Path, rules: _Rules) -> list[Finding]:
    """Markdown, plain text and JSON (a site's search index repeats every page's text)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    found = []
    for n, line in enumerate(text.splitlines(), start=1):
        found += _text_findings(path, f"line {n}", line, rules)
    for table in pipe_tables(text, "file"):
        found += table_findings(path, table, rules.min_count)
    return found


def _audit_csv(path: Path, rules: _Rules) -> list[Finding]:
    """A published table as CSV: every line's text, and its count columns."""
    found = _audit_text(path, rules)
    with path.open(newline="", encoding="utf-8", errors="replace") as fh:
        rows = list(csv.reader(fh))
    if len(rows) > 1:
        found += table_findings(path, _Table("", rows[0], rows[1:], "table"), rules.min_count)
    return found


AUDITORS = {"html": _audit_html, "pdf": _audit_pdf, "xlsx": _audit_xlsx, "ipynb": _audit_ipynb,
            "csv": _audit_csv, "text": _audit_text}


def published_files(output_dir: Path) -> list[Path]:
    """The files the audit reads under `output_dir` (hidden files and folders skipped: they are
    the renderer's temporary copies, never published)."""
    return sorted(p for p in Path(output_dir).rglob("*")
                  if p.is_file() and p.suffix.lower() in SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(output_dir).parts))


def audit_file(path: Path, rules: _Rules) -> list[Finding]:
    try:
        return AUDITORS[SUFFIXES[path.suffix.lower()]](path, rules)
    except Exception as exc:  # any failure to read means: not vouched for
        return [Finding(path, "whole file", "unreadable", f"{type(exc).__name__}: "
                        + _short(str(exc), 80))]


def make_rules(data_dir: Path | None = None, min_count: int = 10,
               key: str | bytes | None = None) -> _Rules:
    identifiers = collect_identifiers(data_dir) if data_dir is not None else set()
    odd = sorted(i for i in identifiers if not TOKEN_CHARS.fullmatch(i))
    return _Rules(identifiers, odd, key_forms(key), min_count)


def audit(output_dir: Path, data_dir: Path | None = None, min_count: int = 10,
          key: str | bytes | None = None, files: Iterable[Path] | None = None) -> list[Finding]:
    """Every finding in the published files under `output_dir` (see the module docstring).

    data_dir: the data folder, to search for its identifiers; key: the HMAC key (default: from
    EVALUATION_HMAC_KEY or EVALUATION_HMAC_KEY_FILE); files: audit these instead of every file.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise AuditError(f"{output_dir}: no such folder")
    rules = make_rules(data_dir, min_count, key)
    found: list[Finding] = []
    for path in files if files is not None else published_files(output_dir):
        found += audit_file(Path(path), rules)
    return found


def audit_command(output_dir: Path, data_dir: Path | None, min_count: int) -> int:
    """`evaluation audit`: print every finding; 0 when clean, 1 with findings, 2 when the audit
    could not run (no folder, nothing to audit, no data tables in --data)."""
    try:
        files = published_files(output_dir) if Path(output_dir).is_dir() else []
        if Path(output_dir).is_dir() and not files:
            raise AuditError(f"{output_dir}: no HTML, PDF, Excel, notebook or text files "
                             "to audit")
        found = audit(output_dir, data_dir, min_count, files=files)
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for finding in found:
        print(finding)
    if found:
        print(f"audit: {len(found)} finding(s) in {len({f.file for f in found})} of "
              f"{len(files)} file(s)", file=sys.stderr)
        return 1
    searched = ["pseudonyms", "BSNs", f"counts below {min_count}"]
    searched += ["identifiers from the data"] if data_dir is not None else []
    searched += ["the HMAC key"] if key_forms() else []
    print(f"audit: {len(files)} file(s) clean (searched for {', '.join(searched)})")
    return 0
