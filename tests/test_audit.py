"""The output audit: a clean report passes; an identifier from the data, a pseudonym, the HMAC
key, a citizen service number or a count below the threshold in a count column makes it fail,
naming the file; the data-quality annex's exact record counts do not.

Small HTML, PDF (Typst), Excel and notebook files are written here; one real report is rendered
once for the module (about a minute).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import shutil
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import typst

from evaluation.report.audit import (
    audit,
    audit_command,
    count_columns,
    eleven_test,
    key_forms,
    pipe_tables,
    redact,
)
from evaluation.run.pipeline import render_report

VALID_BSN = "123456782"  # passes the eleven-test; a textbook example, nobody's number
INVALID_BSN = "123456789"
PSEUDONYM = "P3f9a0c4b2d1e8f70"  # prefix + 16 hex characters, as an HMAC pseudonym looks


def _html(body: str) -> str:
    return f"<!doctype html><html lang='nl'><body>{body}</body></html>"


def _table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<table><caption>{caption}</caption><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table>")


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _kinds(found) -> list[str]:
    return sorted(f.kind for f in found)


@pytest.fixture
def no_key(monkeypatch):
    monkeypatch.delenv("EVALUATION_HMAC_KEY", raising=False)
    monkeypatch.delenv("EVALUATION_HMAC_KEY_FILE", raising=False)


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A tiny data folder: identifiers of several id fields, a short one and a public school id."""
    folder = tmp_path / "data"
    folder.mkdir()
    pd.DataFrame({"student_id": ["Q7781234", "Q7781235"], "school_id": ["SCHOOL77", "SCHOOL77"],
                  "school_year": ["2014-2015"] * 2, "residence_municipality_code": ["GM0356"] * 2,
                  "grade": [1, 2], "track": ["vwo", "havo"], "indication": [False, True]}
                 ).to_csv(folder / "enrolments.csv", index=False)
    pd.DataFrame({"trajectory_id": ["TRJ-000042", "T1"], "student_id": ["Q7781234"] * 2,
                  "school_id": ["SCHOOL77"] * 2}).to_csv(folder / "trajectories.csv", index=False)
    return folder


# --- the rules ---------------------------------------------------------------------------------


def test_eleven_test():
    assert eleven_test(VALID_BSN)
    assert not eleven_test(INVALID_BSN)
    assert not eleven_test("000000000")
    assert not eleven_test("12345678")


def test_count_columns_follow_the_vocabulary():
    header = ["School", "Meldingen vóór", "Per 100 leerlingen", "Aandeel leerlingen", "Items",
              "Respondenten", "n", "Aantal trajecten", "Duur (dagen)", "Leerlingen per school",
              "Meldingen per 1.000 leerlingen", "Gemiddeld aantal intakes"]
    assert [header[i] for i in count_columns(header)] == [
        "Meldingen vóór", "Respondenten", "n", "Aantal trajecten", "Leerlingen per school"]
    crosstab = ["Verwijzer", "2013-2014", "2014-2015", "Totaal"]
    assert count_columns(crosstab) == [1, 2, 3]
    # One school year beside other columns is an indicator table, not a crosstab of counts.
    assert count_columns(["Indicator", "Groep", "Vóór", "2014-2015"]) == []
    # The data-quality annex counts records of the files, not persons in a group.
    assert count_columns(["Tabel", "Ingelezen", "Geaccepteerd", "Afgekeurd"]) == []
    assert count_columns(["Tabel", "Veld", "Leeg", "Aandeel leeg", "Rijen"]) == []


def test_key_forms_cover_hex_and_base64(no_key):
    key = secrets.token_bytes(32)
    forms = key_forms(key.hex())
    assert key.hex() in forms
    assert base64.b64encode(key).decode() in forms
    assert base64.urlsafe_b64encode(key).decode().rstrip("=") in forms
    assert key_forms() == []
    assert "short" not in key_forms("short")  # forms under 8 characters would match by chance


def test_pipe_tables_are_read_with_their_caption():
    md = "Tekst.\n\n| A | Aantal |\n| :-- | --: |\n| x | 3 |\n| y \\| z | 12 |\n\n: Kop\n"
    [table] = pipe_tables(md, "cell 1")
    assert table.header == ["A", "Aantal"] and table.caption == "Kop"
    assert table.rows == [["x", "3"], ["y | z", "12"]]


# --- small files of each kind ------------------------------------------------------------------


def test_html_findings_of_each_kind(tmp_path, data_dir, no_key):
    out = tmp_path / "out"
    clean = _write(out / "a", "clean.html", _html(
        "<p>In 2014-2015 waren er 1.234 meldingen; GM0356 en school SCHOOL77; 15,4% en T1.</p>"
        + _table("Meldingen per school", ["School", "Meldingen", "Per 100 leerlingen"],
                 [["A", "15", "2"], ["B", "·", "·"], ["Totaal", "1.845", "3,1"]])))
    assert audit(out, data_dir) == []
    bad = _write(out / "b", "bad.html", _html(
        "<p>Leerling Q7781234 (traject TRJ-000042) en "
        f"<img alt='pseudoniem {PSEUDONYM}' src='data:image/png;base64,AAAA'> "
        "<span title='stu_3fa9c0d4b2e1f807'>ook</span> "
        f"met BSN {VALID_BSN[:4]}.{VALID_BSN[4:6]}.{VALID_BSN[6:]}; geen BSN: {INVALID_BSN}.</p>"
        + _table("Meldingen per school", ["School", "Meldingen"], [["A", "3"], ["B", "0"]])))
    found = audit(out, data_dir)
    assert {f.file for f in found} == {bad} and clean not in {f.file for f in found}
    assert _kinds(found) == ["bsn", "identifier", "identifier", "pseudonym", "pseudonym",
                             "small-count", "small-count"]
    text = "\n".join(str(x) for x in found)
    for secret in ("Q7781234", "TRJ-000042", PSEUDONYM, "1234.56.782"):
        assert secret not in text
    small = [x for x in found if x.kind == "small-count"]
    assert "'Meldingen'" in small[0].location and "row 1 ('A')" in small[0].location


def test_pdf_findings_name_page_and_line(tmp_path, data_dir, no_key):
    out = tmp_path / "out"
    out.mkdir()
    source = (f"#set page(width: 14cm, height: auto)\nRapport.\n\nLeerling Q7781235 en "
              f"{PSEUDONYM}.\n\nBSN {VALID_BSN}.").encode()
    typst.compile(source, output=str(out / "report.pdf"))
    found = audit(out, data_dir)
    assert _kinds(found) == ["bsn", "identifier", "pseudonym"]
    assert all(f.file == out / "report.pdf" and f.location.startswith("page 1, line")
               for f in found)


def test_pdf_audit_finds_the_same_with_pdfium_and_with_pypdf(tmp_path, data_dir, no_key,
                                                           monkeypatch):
    import sys

    pytest.importorskip("pypdfium2")
    out = tmp_path / "out"
    out.mkdir()
    source = (f"#set page(width: 10cm, height: auto)\nRapport over de pilot.\n\nLeerling "
              f"Q7781235 en {PSEUDONYM} op school.\n\n#pagebreak()\nBSN {VALID_BSN}, en "
              f"leerling Q7781236.").encode()
    typst.compile(source, output=str(out / "report.pdf"))
    with_pdfium = audit(out, data_dir)
    monkeypatch.setitem(sys.modules, "pypdfium2", None)   # as on a machine without it
    with_pypdf = audit(out, data_dir)
    assert [(f.location, f.kind) for f in with_pdfium] == [(f.location, f.kind)
                                                          for f in with_pypdf]
    assert {f.location.split(",")[0] for f in with_pdfium} == {"page 1", "page 2"}


def test_excel_small_count_and_identifier(tmp_path, data_dir, no_key):
    out = tmp_path / "out"
    out.mkdir()
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Meldingen"
    for row in (["School", "Aantal leerlingen", "Aandeel"], ["A", 25, 0.5], ["B", 3, 0.1],
                ["C", "·", None], [], ["Opmerking", "Q7781234"]):
        sheet.append(row)
    book.save(out / "tabellen.xlsx")
    found = audit(out, data_dir)
    assert _kinds(found) == ["identifier", "small-count"]
    small = next(f for f in found if f.kind == "small-count")
    assert "cell B3" in small.location and "'Aantal leerlingen'" in small.location
    ident = next(f for f in found if f.kind == "identifier")
    assert "cell B6" in ident.location and "Q7781234" not in str(ident)


def test_notebook_outputs_are_audited(tmp_path, data_dir, no_key):
    out = tmp_path / "out"
    md = "| Verwijzer | 2013-2014 | Totaal |\n| :-- | --: | --: |\n| huisarts | 4 | 40 |"
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "metadata": {}, "execution_count": 1, "source": "x = 1",
         "outputs": [
             {"output_type": "stream", "name": "stdout", "text": "leerling Q7781234\n"},
             {"output_type": "display_data", "metadata": {},
              "data": {"text/markdown": md, "text/plain": "<Markdown>",
                       "image/png": base64.b64encode(b"Q7781235 " + VALID_BSN.encode()).decode()}},
         ]}]}
    _write(out, "03-referrals.ipynb", json.dumps(nb))
    found = audit(out, data_dir)
    assert _kinds(found) == ["identifier", "small-count"]
    assert all(f.file.name == "03-referrals.ipynb" for f in found)


def test_csv_and_markdown_files_are_audited(tmp_path, no_key):
    out = tmp_path / "out"
    _write(out, "tabel.csv", "Gemeente,Aantal jongeren,Aandeel\nA,120,0.4\nB,2,0.1\n")
    _write(out, "index.md", f"# Index\n\nZie {PSEUDONYM}.\n")
    found = audit(out)
    assert [(f.kind, f.file.name) for f in found] == [("pseudonym", "index.md"),
                                                     ("small-count", "tabel.csv")]


def test_the_key_is_found_in_its_forms_and_never_printed(tmp_path, monkeypatch, capsys):
    key = secrets.token_hex(32)
    monkeypatch.setenv("EVALUATION_HMAC_KEY", key)
    out = tmp_path / "out"
    b64 = base64.b64encode(bytes.fromhex(key)).decode()
    _write(out, "r.html", _html(f"<p>sleutel {key.upper()}</p><p>{b64}</p>"))
    found = audit(out)
    assert _kinds(found) == ["hmac-key", "hmac-key"]
    assert audit_command(out, None, 10) == 1
    printed = capsys.readouterr()
    assert key not in printed.out + printed.err and b64[:10] not in printed.out + printed.err
    monkeypatch.delenv("EVALUATION_HMAC_KEY")
    keyfile = tmp_path / "key.bin"
    keyfile.write_text(key + "\n", encoding="utf-8")
    monkeypatch.setenv("EVALUATION_HMAC_KEY_FILE", str(keyfile))
    assert _kinds(audit(out)) == ["hmac-key", "hmac-key"]


def test_audit_command_exit_codes(tmp_path, data_dir, no_key, capsys):
    out = tmp_path / "out"
    assert audit_command(out, None, 10) == 2  # no such folder
    out.mkdir()
    assert audit_command(out, None, 10) == 2  # nothing to audit
    _write(out, "r.html", _html("<p>Niets bijzonders.</p>"))
    assert audit_command(out, data_dir, 10) == 0
    assert audit_command(out, tmp_path / "nodata", 10) == 2  # --data without the model's files
    _write(out, "s.html", _html(f"<p>{PSEUDONYM}</p>"))
    assert audit_command(out, None, 10) == 1
    assert "s.html" in capsys.readouterr().out


def test_an_unreadable_file_fails_the_audit(tmp_path, no_key):
    out = tmp_path / "out"
    _write(out, "broken.pdf", "not a pdf")
    [finding] = audit(out)
    assert finding.kind == "unreadable" and finding.file.name == "broken.pdf"


def test_redact_keeps_two_characters():
    assert redact("P0038509") == "P0…"


# --- one real report ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory, synthetic_dir):
    """The Lekstroom whitepaper 2014-2015 rendered once; (result, output folder, data folder)."""
    root = tmp_path_factory.mktemp("audit-report")
    result = render_report("lekstroom", "2014-2015", data_dir=synthetic_dir,
                           output_root=root / "_output", build_root=root / "_build",
                           renderer="builtin", log=lambda _m: None)
    return result, root / "_output", synthetic_dir


@pytest.fixture
def copy_of_html(report, tmp_path):
    """Plant something in a copy of the rendered HTML; returns (output folder, changed file)."""
    src = report[0].outputs["html"]

    def plant(change) -> tuple[Path, Path]:
        out = tmp_path / "_output"
        target = out / "lekstroom" / "2014-2015" / "whitepaper.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        html = src.read_text(encoding="utf-8")
        changed = change(html)
        assert changed != html, "nothing was planted"
        target.write_text(changed, encoding="utf-8")
        return out, target

    return plant


def _in_body(text: str):
    return lambda html: html.replace("</body>", f"<p>{text}</p></body>", 1)


def _table_html(html: str, caption_start: str) -> tuple[int, int]:
    """Start and end of the table whose caption begins with `caption_start`."""
    for m in re.finditer(r"<table.*?</table>", html, re.S):
        cap = re.search(r"<caption[^>]*>(.*?)</caption>", m.group(), re.S)
        text = re.sub(r"^Tabel \d+:\s*", "", " ".join(cap.group(1).split())) if cap else ""
        if cap and text.startswith(caption_start):
            return m.span()
    raise AssertionError(f"no table captioned {caption_start!r}")


def test_the_clean_report_and_its_notebooks_pass(report, tmp_path, monkeypatch):
    result, output, data = report
    monkeypatch.setenv("EVALUATION_HMAC_KEY", secrets.token_hex(32))
    names = {p.name for p in output.rglob("*") if p.is_file()}
    assert {"whitepaper.html", "whitepaper.pdf"} <= names  # and the Excel workbook, if made
    assert audit(output, data) == []
    # The executed notebooks, published beside the report.
    published = tmp_path / "_output" / "lekstroom" / "2014-2015"
    shutil.copytree(result.outputs["html"].parent, published)
    (published / "notebooks").mkdir()
    for notebook in result.notebooks:
        shutil.copy2(notebook, published / "notebooks" / notebook.name)
    assert len(list(published.glob("notebooks/*.ipynb"))) >= 8
    assert audit(tmp_path / "_output", data) == []


def test_an_identifier_from_the_data_fails_the_report(report, copy_of_html, no_key):
    data = report[2]
    student = pd.read_csv(data / "enrolments.csv", dtype=str, nrows=1)["student_id"][0]
    trajectory = pd.read_csv(data / "trajectories.csv", dtype=str, nrows=1)["trajectory_id"][0]
    out, target = copy_of_html(_in_body(f"Leerling {student}, traject {trajectory}."))
    found = audit(out, data)
    assert [f.kind for f in found] == ["identifier", "identifier"]
    assert all(f.file == target for f in found)
    assert student not in "\n".join(map(str, found))


@pytest.mark.parametrize(("planted", "kind"), [
    (f"Pseudoniem {PSEUDONYM}.", "pseudonym"),
    (f"BSN {VALID_BSN}.", "bsn"),
])
def test_a_pseudonym_or_bsn_fails_the_report(report, copy_of_html, no_key, planted, kind):
    out, target = copy_of_html(_in_body(planted))
    found = audit(out, report[2])
    assert [(f.kind, f.file) for f in found] == [(kind, target)]


def test_the_key_fails_the_report(report, copy_of_html, monkeypatch):
    key = secrets.token_hex(32)
    monkeypatch.setenv("EVALUATION_HMAC_KEY", key)
    out, target = copy_of_html(_in_body(f"Sleutel: {key}"))
    found = audit(out)
    assert [(f.kind, f.file) for f in found] == [("hmac-key", target)]
    assert key[:3] not in found[0].snippet


def test_a_small_count_in_a_count_column_fails_the_report(report, copy_of_html, no_key):
    def plant(html: str) -> str:
        start, end = _table_html(html, "Verwijzingen van leerlingen")
        table = re.sub(r"(<td[^>]*>)\d[\d.]*(</td>)", r"\g<1>3\g<2>", html[start:end], count=1)
        return html[:start] + table + html[end:]

    out, target = copy_of_html(plant)
    found = audit(out, report[2])
    assert [(f.kind, f.file) for f in found] == [("small-count", target)]
    assert re.search(r"column '\d{4}-\d{4}'", found[0].location)
    assert "Verwijzingen van leerlingen" in found[0].location


def test_the_data_quality_annex_record_counts_are_exempt(report, copy_of_html, no_key):
    def plant(html: str) -> str:
        for caption in ("Rijen per tabel", "Lege waarden"):
            start, end = _table_html(html, caption)
            table = re.sub(r"(<td[^>]*text-align: right;[^>]*>)[\d.]+(</td>)", r"\g<1>3\g<2>",
                           html[start:end])
            html = html[:start] + table + html[end:]
        return html

    out, _ = copy_of_html(plant)
    assert audit(out, report[2]) == []
