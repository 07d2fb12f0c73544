"""Real exports in one run: a title above the header and totals below the data, every problem of
every file reported at once, unknown codes quarantined row by row, optional fields an export lacks
left empty, reasons in the export's own words, plausibility warnings; and the example delivery in
examples/import, imported in one pass and rendered into a whitepaper."""

from __future__ import annotations

import html
import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml

from evaluation.cli import main
from evaluation.data.importing import REPORT_FILE, ImportDataError, import_command, import_data
from evaluation.data.pseudonymisation import KEY_ENV, KEY_FILE_ENV

KEY = "test-hmac-key-" + "5e6f7a8b9c0d1e2f" * 3
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "import"
SCHOOLS = "vestiging;schoolnaam;gemeente\nS1;Alfa College;0321\nS2;Beta Lyceum;356\n"
ENROL_FIELDS = {"student_id": "leerlingnummer", "school_id": "vestiging",
                "school_year": "schooljaar", "residence_municipality_code": "gemeente"}


@pytest.fixture(autouse=True)
def hmac_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def mapping(folder: Path, tables: dict, **top: object) -> Path:
    path = folder / "mapping.yml"
    path.write_text(yaml.safe_dump({**top, "tables": tables}, allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")
    return path


def schools(folder: Path) -> tuple[Path, dict]:
    path = folder / "scholen.csv"
    path.write_text(SCHOOLS, encoding="utf-8")
    return path, {"source": "scholen.csv", "fields": {
        "school_id": "vestiging", "name": "schoolnaam", "municipality_code": "gemeente",
        "region": {"value": "testregio"}}}


def pupils_csv(n: int) -> list[str]:
    return [f"{1000 + i};S{1 + i % 2};2014-2015;{'Houten' if i % 2 else 'Nieuwegein'}"
            for i in range(n)]


def test_a_title_above_the_header_and_a_totals_line_are_skipped_and_counted(tmp_path):
    lines = ["Leerlingen per 1 oktober 2014;;;", "", "leerlingnummer;vestiging;schooljaar;gemeente",
             *pupils_csv(6), "Totaal;;;6"]
    src = tmp_path / "leerlingen.csv"
    src.write_text("\n".join(lines) + "\n", encoding="cp1252")
    school_file, school_map = schools(tmp_path)
    result = import_data([school_file, src], mapping(tmp_path, {
        "schools": school_map,
        "enrolments": {"source": "leerlingen.csv", "header_row": 3, "footer_rows": 1,
                       "fields": {**ENROL_FIELDS, "residence_municipality_code": {
                           "column": "gemeente",
                           "codes": {"Houten": "GM0321", "Nieuwegein": "GM0356"}}}}}))
    t = result.report["tables"]["enrolments"]
    assert (t["read"], t["accepted"], t["quarantined"]) == (6, 6, 0)
    assert (t["rows_above_header"], t["footer_rows"], t["blank_rows"]) == (1, 1, 0)
    assert result.tables["enrolments"]["school_year"].tolist() == ["2014-2015"] * 6


def test_header_row_and_footer_rows_per_excel_sheet(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Leerlingen"
    ws.append(["Export leerlingadministratie"])
    ws.append(["Aangemaakt 3-11-2014"])
    ws.append(["leerlingnummer", "vestiging", "schooljaar", "gemeente"])
    for i in range(4):
        ws.append([1000 + i, "S1", "2014-2015", "321"])
    ws.append([1009, "S9", "2014-2015", "321"])     # row 8: a school nobody knows
    ws.append(["Totaal", None, None, 5])
    wb.save(tmp_path / "export.xlsx")
    school_file, school_map = schools(tmp_path)
    result = import_data([school_file, tmp_path / "export.xlsx"], mapping(tmp_path, {
        "schools": school_map,
        "enrolments": {"source": [{"file": "export.xlsx", "sheet": "Leerlingen",
                                   "header_row": 3, "footer_rows": 1}],
                       "fields": ENROL_FIELDS}}))
    q = result.quarantine["enrolments"]
    assert q[["_file", "_row"]].values.tolist() == [["export.xlsx#Leerlingen", 8]]
    assert q["_reasons"].tolist() == [
        "vestiging 'S9' verwijst naar een school die er niet is (of die zelf in quarantaine "
        "staat)"]
    t = result.report["tables"]["enrolments"]
    assert (t["read"], t["rows_above_header"], t["footer_rows"]) == (5, 2, 1)


def test_a_missing_header_row_gets_a_hint_where_the_header_is(tmp_path):
    src = tmp_path / "leerlingen.csv"
    src.write_text("\n".join(["Overzicht;;;", "leerlingnummer;vestiging;schooljaar;gemeente",
                              *pupils_csv(3)]) + "\n", encoding="utf-8")
    school_file, school_map = schools(tmp_path)
    with pytest.raises(ImportDataError) as exc:
        import_data([school_file, src], mapping(tmp_path, {
            "schools": school_map, "enrolments": {"source": "leerlingen.csv",
                                                  "fields": ENROL_FIELDS}}))
    assert ("column names stand on line 2: add `header_row: 2` under tables.enrolments"
            in str(exc.value))


def test_every_problem_of_every_file_in_one_run(tmp_path, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    school_file, school_map = schools(tmp_path)
    enrol = tmp_path / "leerlingen.csv"
    enrol.write_text("leerlingnummer;vestiging;schooljaar;achternaam\n1001;S1;2014-2015;X\n",
                     encoding="utf-8")
    (tmp_path / "meldingen.xlsx").write_bytes(b"this is no workbook")
    bsns = ["111222333", "123456782", "192837461"]  # they pass the eleven-test
    traj = tmp_path / "trajecten.csv"
    traj.write_text("nummer;kenmerk;vestiging;signaal;start\n" + "".join(
        f"T{i};{b};S1;1-10-2014;1-11-2014\n" for i, b in enumerate(bsns)), encoding="utf-8")
    with pytest.raises(ImportDataError) as exc:
        import_data([school_file, enrol, tmp_path / "meldingen.xlsx", traj], mapping(tmp_path, {
            "schools": school_map,
            "enrolments": {"source": "leerlingen.csv", "fields": {
                **ENROL_FIELDS, "grade": "achternaam"}},
            "care_reports": {"source": "meldingen.xlsx", "fields": {
                "report_id": "nr", "student_id": "ll", "school_id": "vestiging",
                "report_date": "datum"}},
            "trajectories": {"source": "trajecten.csv", "fields": {
                "trajectory_id": "nummer", "student_id": {"column": "kenmerk"},
                "school_id": "vestiging", "signal_date": "signaal", "start_date": "start",
                "level": "zwaarte"}}}))
    problems = exc.value.problems
    text = "\n".join(problems)
    assert "column 'achternaam' holds personal data" in text           # the mapping
    assert "no pseudonymisation key" in text                           # the key
    assert "meldingen.xlsx: cannot be read as an Excel workbook" in text  # an unreadable file
    assert "leerlingen.csv: column 'gemeente'" in text                 # a missing column
    assert "trajecten.csv: column 'zwaarte'" in text                   # ... in another file
    assert "trajecten.csv: column 'kenmerk' holds citizen service numbers" in text
    assert not any(b in text for b in bsns)


def test_reasons_name_both_fields_where_two_dates_disagree(tmp_path):
    school_file, school_map = schools(tmp_path)
    enrol = tmp_path / "leerlingen.csv"
    enrol.write_text("leerlingnummer;vestiging;schooljaar;gemeente\n1001;S1;2013-2014;321\n",
                     encoding="utf-8")
    traj = tmp_path / "trajecten.csv"
    traj.write_text("nummer;ll;vestiging;datum signaal;startdatum;einddatum\n"
                    "T1;1001;S1;3-2-2014;10-03-2014;01-01-2014\n"
                    "T2;1001;S1;3-2-2014;10-03-2014;1-6-14\n", encoding="utf-8")
    result = import_data([school_file, enrol, traj], mapping(tmp_path, {
        "schools": school_map,
        "enrolments": {"source": "leerlingen.csv", "fields": ENROL_FIELDS},
        "trajectories": {"source": "trajecten.csv", "fields": {
            "trajectory_id": "nummer", "student_id": "ll", "school_id": "vestiging",
            "signal_date": "datum signaal", "start_date": "startdatum",
            "end_date": "einddatum"}}}))
    q = result.quarantine["trajectories"]
    assert q["_reasons"].tolist() == ["einddatum 01-01-2014 ligt vóór startdatum 10-03-2014"]
    assert q["_codes"].tolist() == ["end_date: date_order"]
    # Fields the export does not have stay empty; nobody had to invent them.
    t = result.tables["trajectories"]
    assert len(t) == 1 and t["level"].isna().all() and t["indication_free"].isna().all()
    assert result.report["tables"]["trajectories"]["fields_not_mapped"] == [
        "first_intake_date", "n_intakes", "route", "level", "indication_free",
        "school_informed"]
    assert result.tables["enrolments"]["indication"].isna().all()


def test_a_constant_for_an_optional_field_is_a_warning(tmp_path):
    school_file, school_map = schools(tmp_path)
    enrol = tmp_path / "leerlingen.csv"
    enrol.write_text("leerlingnummer;vestiging;schooljaar;gemeente\n1001;S1;2014-2015;321\n",
                     encoding="utf-8")
    result = import_data([school_file, enrol], mapping(tmp_path, {
        "schools": school_map,
        "enrolments": {"source": "leerlingen.csv",
                       "fields": {**ENROL_FIELDS, "indication": {"value": "false"}}}}))
    assert {"kind": "constant_value", "table": "enrolments", "field": "indication"} in \
        result.report["warnings"]


def test_plausibility_warnings_go_into_the_import_report(tmp_path, capsys):
    school_file, school_map = schools(tmp_path)
    enrol = tmp_path / "leerlingen.csv"
    enrol.write_text("leerlingnummer;vestiging;schooljaar;gemeente\n"
                     "1001;S1;2014-2015;321\n1002;S2;2014-2015;321\n", encoding="utf-8")
    traj = tmp_path / "trajecten.csv"
    traj.write_text("nummer;ll;vestiging;signaal;start\nT1;1001;S1;3-2-2015;10-3-2015\n"
                    "T2;1001;S1;3-2-2013;10-3-2013\n", encoding="utf-8")
    out = tmp_path / "out"
    code = import_command([school_file, enrol, traj], mapping(tmp_path, {
        "schools": school_map,
        "enrolments": {"source": "leerlingen.csv", "fields": ENROL_FIELDS},
        "trajectories": {"source": "trajecten.csv", "fields": {
            "trajectory_id": "nummer", "student_id": "ll", "school_id": "vestiging",
            "signal_date": "signaal", "start_date": "start"}}}), out)
    assert code == 0  # warnings reject nothing
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    checks = {(w["check"], w["table"]): (w["rows"], w["detail"]) for w in report["warnings"]
              if w["kind"] == "plausibility"}
    assert checks[("outside_school_years", "trajectories")] == (1, ["2012-2013"])
    assert checks[("school_without_care_records", "enrolments")] == (1, ["S2"])
    printed = capsys.readouterr().out
    assert "trajectories.signal_date: 1 row(s) dated in a school year without enrolments" in printed


# --------------------------------------------------------------------------------------------------
# The example delivery: imported in one pass, rendered into a whitepaper


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The example folder imported once, with the exit status and what was printed."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY)
        out = tmp_path_factory.mktemp("example") / "data"
        sources = sorted(p for p in EXAMPLES.iterdir()
                         if p.suffix in (".csv", ".xlsx", ".parquet"))
        printed = io.StringIO()
        with redirect_stdout(printed):
            code = import_command(sources, EXAMPLES / "mapping.yml", out)
    return code, out, printed.getvalue()


def test_the_example_delivery_imports_in_one_pass(example):
    code, out, printed = example
    assert code == 1  # rows quarantined, the data set written all the same
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    t = report["tables"]
    assert (t["enrolments"]["rows_above_header"], t["enrolments"]["footer_rows"]) == (1, 1)
    assert (t["care_reports"]["rows_above_header"], t["care_reports"]["footer_rows"]) == (2, 1)
    reasons = {(r["table"], r["field"], r["reason"]) for r in report["reasons"]}
    assert reasons == {("enrolments", "school_id", "unknown_code"),
                       ("enrolments", "track", "unknown_code"),
                       ("enrolments", "student_id+school_year", "duplicate_key"),
                       ("trajectories", "end_date", "date_order")}
    for name, table in t.items():
        assert table["read"] == table["accepted"] + table["quarantined"], name
    assert {"kind": "bsn_column_not_imported", "file": "leerlingen.csv",
            "column": "kenmerk"} in report["warnings"]
    assert any(w.get("check") == "outside_school_years" for w in report["warnings"])
    assert "indication" in t["enrolments"]["fields_not_mapped"]
    assert {"level", "indication_free"} <= set(t["trajectories"]["fields_not_mapped"])
    q = pd.read_csv(out / "quarantine" / "enrolments.csv", dtype=str)
    assert "BRIN '99ZZ00' staat niet onder codes in de mapping" in q["_reasons"].tolist()
    written = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    leerlingen = (EXAMPLES / "leerlingen.csv").read_text(encoding="cp1252").splitlines()
    bsn = leerlingen[3].split(";")[3]
    assert len(bsn) == 9 and bsn.encode() not in written
    assert b"Voorbeeld" not in written and b"100101" not in written


def test_the_example_delivery_renders_a_whitepaper_that_says_what_is_missing(example, tmp_path,
                                                                              capsys):
    _, data, _ = example
    code = main(["render", "--region", "lekstroom", "--school-year", "2014-2015", "--data",
                 str(data), "--format", "html", "--renderer", "builtin", "--build-dir",
                 str(tmp_path / "_build"), "--output", str(tmp_path / "_output")])
    assert code == 0, capsys.readouterr().err[-2000:]
    raw = (tmp_path / "_output" / "lekstroom" / "2014-2015" / "whitepaper.html").read_text(
        encoding="utf-8")
    words = re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", raw)))
    for text in ("Onvolledige gegevens.",
                 "Er zijn geen gegevens over ouderbetrokkenheid aangeleverd.",
                 "In de bron ontbreekt het zorgniveau van trajecten.",
                 "Er zijn geen gegevens van vergelijkingsscholen over schooljaar 2014-2015.",
                 "niet te bepalen: veld ontbreekt in de bron",
                 "gedateerd in een schooljaar zonder inschrijvingen",
                 "code staat niet in de mapping van de import"):
        assert text in words, text
