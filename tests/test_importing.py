"""`evaluation import`: exports in the conventions schools and providers use come in as the
project's tables; mapping mistakes stop the import with a message naming file and column; bad rows
are quarantined with reasons and line numbers; personal data stays out; nothing is lost."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import hashlib
import io
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evaluation.data.datamodel import TABLES
from evaluation.data.exports import read_source
from evaluation.data.importing import (
    QUARANTINE_DIR,
    REPORT_FILE,
    ImportDataError,
    ImportResult,
    bsn_columns,
    import_command,
    import_data,
)
from evaluation.data.mapping import is_personal_header
from evaluation.data.pseudonymisation import (
    KEY_ENV,
    KEY_FILE_ENV,
    looks_like_bsn_column,
    pseudonymise,
)
from evaluation.data.validation import validate_dir

KEY = "test-hmac-key-" + "9f3b1c7d2e5a4b6c" * 3
OTHER_KEY = "other-hmac-key-" + "0a1b2c3d4e5f6a7b" * 3
EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "import"
# Each example is a whole import (about 0.3 s, most of it validation of all seven tables), so the
# example counts are modest: the file runs in well under a minute.
PROPERTY = settings(max_examples=15, deadline=dt.timedelta(seconds=5),
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True, scope="module")
def hmac_key() -> Iterator[None]:
    """Every test runs with a key in the environment, as a user would (module scope, so the
    hypothesis tests share it); a test that needs no key removes it with monkeypatch."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY)
        mp.delenv(KEY_FILE_ENV, raising=False)
        yield


# --------------------------------------------------------------------------------------------------
# Helpers: small exports and mappings


def csv_text(rows: list[list[str]], sep: str = ",", eol: str = "\n") -> str:
    """CSV as an export writes it; a value holding a line-end character of `eol` is quoted."""
    buf = io.StringIO()
    csv.writer(buf, delimiter=sep, lineterminator=eol).writerows(rows)
    return buf.getvalue()


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def write_mapping(folder: Path, tables: dict) -> Path:
    return write_mapping_with(folder, tables)


def write_mapping_with(folder: Path, tables: dict, **top: object) -> Path:
    """A mapping file with top-level keys besides `tables` (max_unknown_share)."""
    path = folder / "mapping.yml"
    path.write_text(yaml.safe_dump({**top, "tables": tables}, allow_unicode=True,
                                   sort_keys=False), encoding="utf-8")
    return path


SCHOOL_ROWS = [["vestiging", "schoolnaam", "gemeente"],
               ["S1", "Alfa College", "0321"], ["S2", "Beta Lyceum", "GM0356"]]
SCHOOLS_MAP = {"source": "scholen.csv",
               "fields": {"school_id": "vestiging", "name": "schoolnaam",
                          "municipality_code": "gemeente", "region": {"value": "testregio"}}}
ENROL_HEADER = ["leerlingnummer", "BRIN", "schooljaar", "woongemeente", "leerjaar",
                "onderwijstype", "ondersteuning"]
TRACK_CODES = {"VMBO-B": "vmbo", "VMBO-K": "vmbo", "HAVO": "havo", "VWO": "vwo", "PRO": "pro"}


def enrol_map(source: str = "leerlingen.csv", **changes: object) -> dict:
    fields: dict = {
        "student_id": {"column": "leerlingnummer"},
        "school_id": "BRIN",
        "school_year": "schooljaar",
        "residence_municipality_code": {"column": "woongemeente",
                                        "codes": {"Houten": "GM0321", "Nieuwegein": "GM0356"}},
        "grade": "leerjaar",
        "track": {"column": "onderwijstype", "codes": TRACK_CODES},
        "indication": {"column": "ondersteuning", "codes": {"ja": "true", "nee": "false"}},
    }
    for name, spec in changes.items():
        if spec is None:
            fields.pop(name)
        else:
            fields[name] = spec
    return {"source": source, "fields": fields}


def enrol_rows(n: int = 4) -> list[list[str]]:
    tracks = ["HAVO", "VWO", "VMBO-K", "PRO"]
    return [[f"LL-{1000 + i}", "S1" if i % 2 else "S2", "2014-2015",
             "Houten" if i % 3 else "Nieuwegein", str(1 + i % 6), tracks[i % 4],
             "ja" if i % 2 else "nee"] for i in range(n)]


def schools_file(folder: Path) -> Path:
    return write(folder / "scholen.csv", csv_text(SCHOOL_ROWS))


def run(folder: Path, files: list[Path], tables: dict) -> ImportResult:
    return import_data(files, write_mapping(folder, tables))


def run_enrolments(folder: Path, text: str, encoding: str = "utf-8", name: str = "leerlingen.csv",
                   **changes: object) -> ImportResult:
    src = write(folder / name, text, encoding)
    return run(folder, [schools_file(folder), src],
               {"schools": SCHOOLS_MAP, "enrolments": enrol_map(name, **changes)})


def all_output_bytes(folder: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def check_counts(result: ImportResult) -> None:
    for name, t in result.report["tables"].items():
        assert t["read"] == t["accepted"] + t["quarantined"], name
        assert t["accepted"] == len(result.tables[name]), name
        assert t["quarantined"] == len(result.quarantine[name]), name


# --------------------------------------------------------------------------------------------------
# Input conventions


@pytest.mark.parametrize("sep", [",", ";"])
def test_comma_and_semicolon_csv(tmp_path, sep):
    result = run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows(6)], sep))
    e = result.tables["enrolments"]
    assert len(e) == 6 and result.report["tables"]["enrolments"]["quarantined"] == 0
    assert e["grade"].tolist() == [1, 2, 3, 4, 5, 6]
    assert e["track"].astype(str).tolist() == ["havo", "vwo", "vmbo", "pro", "havo", "vwo"]
    assert e["residence_municipality_code"].tolist()[:2] == ["GM0356", "GM0321"]
    assert e["indication"].tolist()[:2] == [False, True]


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_with_and_without_bom(tmp_path, encoding):
    # With a BOM the first header would read '\ufeffleerlingnummer' if it were not stripped.
    result = run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows(3)], ";"), encoding)
    assert len(result.tables["enrolments"]) == 3
    assert result.tables["enrolments"]["student_id"].str.startswith("stu_").all()


def test_windows_1252_with_accents(tmp_path):
    rows = [["vestiging", "schoolnaam", "gemeente"], ["S1", "Café École", "0321"],
            ["S2", "Ëlster Lyceum", "356"]]
    src = write(tmp_path / "scholen.csv", csv_text(rows, ";").replace("\n", "\r\n"), "cp1252")
    result = run(tmp_path, [src], {"schools": SCHOOLS_MAP})
    s = result.tables["schools"]
    assert s["name"].tolist() == ["Café École", "Ëlster Lyceum"]
    assert s["municipality_code"].tolist() == ["GM0321", "GM0356"]


def test_decimal_commas(tmp_path):
    rows = enrol_rows(3)
    rows[0][4] = "3,0"   # a whole number written with a decimal comma
    rows[1][4] = "2,5"   # not a whole number: quarantined
    rows[2][4] = " 4 "
    result = run_enrolments(tmp_path, csv_text([ENROL_HEADER, *rows], ";"))
    assert result.tables["enrolments"]["grade"].tolist() == [3, 4]
    q = result.quarantine["enrolments"]
    assert q["grade"].tolist() == ["2,5"] and q["_codes"].tolist() == ["grade: not_integer"]


def care_files(folder: Path, dates: list[str]) -> tuple[list[Path], dict]:
    rows = [["meldingnummer", "leerlingnummer", "BRIN", "datum melding"]]
    rows += [[f"M{i}", f"LL-{i}", "S1", d] for i, d in enumerate(dates)]
    src = write(folder / "meldingen.csv", csv_text(rows, ";"))
    tables = {"schools": SCHOOLS_MAP,
              "care_reports": {"source": "meldingen.csv",
                               "fields": {"report_id": "meldingnummer",
                                          "student_id": "leerlingnummer", "school_id": "BRIN",
                                          "report_date": "datum melding"}}}
    return [schools_file(folder), src], tables


def test_dutch_and_iso_dates(tmp_path):
    dates = ["24-11-2014", "3-2-15", "05/01/2015", "2015-03-09", "9.3.2015", "1-9-14",
             "2015-4-7", "29-02-2016", "2014-10-06 00:00:00"]
    files, tables = care_files(tmp_path, dates)
    result = run(tmp_path, files, tables)
    got = result.tables["care_reports"]["report_date"].dt.strftime("%Y-%m-%d").tolist()
    assert got == ["2014-11-24", "2015-02-03", "2015-01-05", "2015-03-09", "2015-03-09",
                   "2014-09-01", "2015-04-07", "2016-02-29", "2014-10-06"]


def test_unreadable_dates_are_quarantined_not_crashed(tmp_path):
    dates = ["31-02-2015", "gisteren", "2015-13-01", "1-1-1800", "12-2015", "2015-03-09"]
    files, tables = care_files(tmp_path, dates)
    result = run(tmp_path, files, tables)
    assert len(result.tables["care_reports"]) == 1
    q = result.quarantine["care_reports"]
    assert q["report_date"].tolist() == dates[:5]  # the source values as given
    assert (q["_codes"] == "report_date: bad_date").all()
    assert q["_row"].tolist() == [2, 3, 4, 5, 6]


def workbook(path: Path, sheets: dict[str, list[list[object]]]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)
    for name, rows in sheets.items():
        ws = wb.create_sheet(name)
        for row in rows:
            ws.append(row)
    wb.save(path)
    return path


def typed_enrol_rows() -> list[list[object]]:
    # Excel cells are typed: numbers, text; a grade typed as a number, a year as text.
    return [ENROL_HEADER, [1001, "S1", "2014-2015", "Houten", 1, "HAVO", "ja"],
            [1002, "S2", "2014/2015", "Nieuwegein", 2.0, "VWO", "nee"]]


def test_xlsx_one_sheet_per_table(tmp_path):
    src = workbook(tmp_path / "export.xlsx", {
        "Uitleg": [["Export van de leerlingadministratie"]],
        "schools": SCHOOL_ROWS,
        "enrolments": typed_enrol_rows(),
    })
    schools = dict(SCHOOLS_MAP, source="export.xlsx")
    result = run(tmp_path, [src], {"schools": schools, "enrolments": enrol_map("export.xlsx")})
    e = result.tables["enrolments"]
    assert len(result.tables["schools"]) == 2 and len(e) == 2
    assert e["grade"].tolist() == [1, 2]
    assert e["school_year"].tolist() == ["2014-2015", "2014-2015"]
    assert result.report["tables"]["enrolments"]["sources"] == ["export.xlsx#enrolments"]


@pytest.mark.parametrize("how", ["hash", "key"])
def test_xlsx_named_sheet(tmp_path, how):
    rows = typed_enrol_rows() + [[1003, "S1", "2014-2015", "Houten", 9, "PRO", "ja"]]
    src = workbook(tmp_path / "leerlingen.xlsx", {"Blad1": [["leeg"]], "Blad2": rows})
    spec = enrol_map("leerlingen.xlsx#Blad2") if how == "hash" else \
        {**enrol_map("leerlingen.xlsx"), "sheet": "Blad2"}
    result = run(tmp_path, [schools_file(tmp_path), src],
                 {"schools": SCHOOLS_MAP, "enrolments": spec})
    assert len(result.tables["enrolments"]) == 2
    q = result.quarantine["enrolments"]
    assert q["_file"].tolist() == ["leerlingen.xlsx#Blad2"] and q["_row"].tolist() == [4]


def test_xlsx_without_sheet_name_is_a_clear_error(tmp_path):
    src = workbook(tmp_path / "leerlingen.xlsx", {"Blad1": [["x"]], "Blad2": typed_enrol_rows()})
    with pytest.raises(ImportDataError, match=r"leerlingen.xlsx: has sheets Blad1, Blad2"):
        run(tmp_path, [schools_file(tmp_path), src],
            {"schools": SCHOOLS_MAP, "enrolments": enrol_map("leerlingen.xlsx")})


def test_parquet(tmp_path):
    frame = pd.DataFrame({
        "meldingnummer": [1, 2, 3],
        "leerlingnummer": ["LL-1", "LL-2", "LL-3"],
        "BRIN": ["S1", "S2", "S1"],
        "datum melding": pd.to_datetime(["2014-10-06", "2015-02-03", None]),
    })
    src = tmp_path / "meldingen.parquet"
    frame.to_parquet(src)
    _, tables = care_files(tmp_path, [])
    tables["care_reports"]["source"] = "meldingen.parquet"
    result = run(tmp_path, [schools_file(tmp_path), src], tables)
    c = result.tables["care_reports"]
    assert c["report_date"].dt.strftime("%Y-%m-%d").tolist() == ["2014-10-06", "2015-02-03"]
    q = result.quarantine["care_reports"]
    assert q["_row"].tolist() == [3] and q["_codes"].tolist() == ["report_date: missing_required"]


# --------------------------------------------------------------------------------------------------
# Mapping errors: nothing is imported, the message names file and column


def test_unmapped_required_field(tmp_path):
    with pytest.raises(ImportDataError) as exc:
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows()]), school_year=None)
    assert ("tables.enrolments: required field 'school_year' is not mapped (source "
            "leerlingen.csv)") in str(exc.value)


def test_an_optional_field_the_export_lacks_may_stay_unmapped(tmp_path):
    result = run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows()]), grade=None,
                            indication=None)
    e = result.tables["enrolments"]
    assert len(e) == 4 and e["grade"].isna().all() and e["indication"].isna().all()


def test_many_unknown_codes_stop_the_import_listing_every_value_with_its_count(tmp_path):
    rows = enrol_rows(10)
    for i, code in enumerate(["MAVO", "VMBO-T", "LWOO", "ISK", "VSO", "Atheneum", "MAVO"]):
        rows[i][5] = code
    with pytest.raises(ImportDataError) as exc:
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *rows]))
    message = str(exc.value)
    assert message.startswith("leerlingen.csv: column 'onderwijstype' (for enrolments.track)")
    assert "7 of 10 rows (70%) are unknown, more than the 5% (max_unknown_share)" in message
    assert ("'MAVO' (2), 'VMBO-T' (1), 'LWOO' (1), 'ISK' (1), 'VSO' (1), 'Atheneum' (1)"
            in message)


def test_a_few_unknown_codes_are_quarantined_row_by_row(tmp_path):
    rows = enrol_rows(40)
    rows[5][5] = "LWOO"      # line 7: an unknown track
    rows[9][1] = "S7"        # line 11: a school that is not in the schools file
    result = run_enrolments(tmp_path, csv_text([ENROL_HEADER, *rows]))
    check_counts(result)
    q = result.quarantine["enrolments"].set_index("_row")
    assert q["_codes"].to_dict() == {7: "track: unknown_code", 11: "school_id: unknown_reference"}
    assert q.loc[7, "_reasons"] == "onderwijstype 'LWOO' staat niet onder codes in de mapping"
    assert q.loc[7, "track"] == "LWOO" and q.loc[7, "_file"] == "leerlingen.csv"
    assert len(result.tables["enrolments"]) == 38
    reasons = {(r["field"], r["reason"]): r["rows"] for r in result.report["reasons"]}
    assert reasons == {("track", "unknown_code"): 1, ("school_id", "unknown_reference"): 1}


def test_the_share_that_stops_an_import_is_a_parameter(tmp_path):
    rows = enrol_rows(30)
    for r in rows[:3]:
        r[5] = "LWOO"  # 10% of the rows
    with pytest.raises(ImportDataError, match="3 of 30 rows"):
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *rows]))
    src = write(tmp_path / "leerlingen.csv", csv_text([ENROL_HEADER, *rows]))
    result = import_data([schools_file(tmp_path), src], write_mapping_with(
        tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()}, max_unknown_share="20%"))
    assert result.report["tables"]["enrolments"]["quarantined"] == 3
    # The command line's --max-unknown-share wins over the mapping's.
    with pytest.raises(ImportDataError, match="more than the 5%"):
        import_data([schools_file(tmp_path), src], tmp_path / "mapping.yml",
                    max_unknown_share=0.05)


def test_many_unknown_references_stop_the_import(tmp_path):
    rows = enrol_rows(10)
    for r in rows[:4]:
        r[1] = "X1"
    with pytest.raises(ImportDataError) as exc:
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *rows]))
    assert ("column 'BRIN' (for enrolments.school_id) refers to values that table schools does "
            "not hold: 4 of 10 rows (40%) are unknown") in str(exc.value)
    assert "'X1' (4)" in str(exc.value)


def test_mapping_to_a_field_not_in_the_data_model(tmp_path):
    with pytest.raises(ImportDataError, match="table enrolments has no field 'postcode'"):
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows()]), postcode="woongemeente")


def test_unknown_table_and_keys(tmp_path):
    tables = {"leerlingen": enrol_map(), "schools": {**SCHOOLS_MAP, "bron": "x"}}
    with pytest.raises(ImportDataError) as exc:
        run(tmp_path, [schools_file(tmp_path)], tables)
    assert "tables.leerlingen: unknown table" in str(exc.value)
    assert "tables.schools: unknown key(s) bron" in str(exc.value)


@pytest.mark.parametrize("header", ["naam", "Achternaam", "voornaam leerling", "adres", "Straat",
                                    "postcode", "geboortedatum", "telefoonnummer", "email",
                                    "E-mail ouder", "opmerking", "Toelichting", "notitie"])
def test_personal_data_columns_cannot_be_mapped(tmp_path, header):
    rows = [[*ENROL_HEADER, header], *[[*r, "x"] for r in enrol_rows()]]
    with pytest.raises(ImportDataError) as exc:
        run_enrolments(tmp_path, csv_text(rows), school_id={"column": header})
    assert f"column {header!r} holds personal data" in str(exc.value)


def test_school_names_are_not_personal_data():
    assert not is_personal_header("schoolnaam")
    assert not is_personal_header("Naam vestiging")
    assert not is_personal_header("naam", "schools", "name")
    assert is_personal_header("naam", "enrolments", "student_id")
    assert is_personal_header("achternaam", "schools", "name")


def test_missing_column_lists_the_headers(tmp_path):
    with pytest.raises(ImportDataError) as exc:
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows()]),
                       grade={"column": "klas"})
    assert "leerlingen.csv: column 'klas' (for enrolments.grade) not found" in str(exc.value)
    assert "'leerjaar'" in str(exc.value)


def test_reference_to_a_table_not_supplied(tmp_path):
    src = write(tmp_path / "leerlingen.csv", csv_text([ENROL_HEADER, *enrol_rows()]))
    with pytest.raises(ImportDataError, match="refers to table schools, which the mapping"):
        run(tmp_path, [src], {"enrolments": enrol_map()})


def test_headers_match_ignoring_case_and_spaces(tmp_path):
    header = ["LeerlingNummer", " brin ", "School  jaar", "woongemeente", "leerjaar",
              "onderwijstype", "ondersteuning"]
    result = run_enrolments(tmp_path, csv_text([header, *enrol_rows()]),
                            school_year="school jaar")
    assert len(result.tables["enrolments"]) == 4


def test_mapping_error_writes_nothing(tmp_path, capsys):
    src = write(tmp_path / "leerlingen.csv", csv_text([ENROL_HEADER, *enrol_rows()]))
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP,
                                       "enrolments": enrol_map(school_year=None)})
    out = tmp_path / "out"
    code = import_command([schools_file(tmp_path), src], mapping, out)
    assert code == 2 and not out.exists()
    assert "required field 'school_year' is not mapped" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------------
# Quarantine, counts and report

MESSY = (
    "leerlingnummer,BRIN,schooljaar,woongemeente,leerjaar,onderwijstype,ondersteuning,opmerking\n"
    "LL-1,S1,2014-2015,Houten,1,HAVO,ja,\n"            # line 2: good
    "LL-2,S1,2014-2015,Houten,9,HAVO,ja,\n"            # line 3: grade out of range
    "\n"                                               # line 4: blank
    'LL-3,S1,2014-2015,Houten,2,VWO,nee,"twee\nregels"\n'   # lines 5-6: good
    "LL-4,S9,2014-2015,Houten,2,VWO,nee,\n"            # line 7: unknown school
    "LL-5,S1,2014-2016,Houten,2,VWO,nee,\n"            # line 8: not a school year
    "LL-1,S1,2014-2015,Nieuwegein,3,VWO,nee,\n"        # line 9: duplicate key
    "LL-6,S1,2014-2015,Houten,2\n"                     # line 10: too few fields
    'LL-7,S2,14/15,Nieuwegein,"3,0",PRO,ja,\n'         # line 11: good after conversion
    "LL-8,,2014-2015,Houten,1,HAVO,nee,\n"             # line 12: school missing
)


def test_bad_rows_are_quarantined_with_reasons_and_lines(tmp_path):
    result = run_enrolments(tmp_path, MESSY)
    e = result.tables["enrolments"]
    assert len(e) == 3 and e["grade"].tolist() == [1, 2, 3]
    assert e["school_year"].tolist() == ["2014-2015"] * 3
    q = result.quarantine["enrolments"].set_index("_row")
    assert q.index.tolist() == [3, 7, 8, 9, 10, 12]
    assert q["_codes"].to_dict() == {
        3: "grade: out_of_range",
        7: "school_id: unknown_reference",
        8: "school_year: bad_school_year",
        9: "student_id+school_year: duplicate_key",
        10: "_row: field_count",
        12: "school_id: missing_required",
    }
    # The same reasons in plain words, in the export's own column names and values; an
    # identifier's value is never shown.
    assert q["_reasons"].to_dict() == {
        3: "leerjaar 9 ligt buiten 1 tot en met 6",
        7: "BRIN 'S9' verwijst naar een school die er niet is (of die zelf in quarantaine staat)",
        8: "schooljaar '2014-2016' is geen schooljaar (schrijf 2014-2015: twee opeenvolgende "
           "jaren)",
        9: "leerlingnummer en schooljaar komt al eerder voor (de eerste rij is overgenomen)",
        10: "rij heeft meer of minder velden dan de kop",
        12: "BRIN: verplichte waarde ontbreekt",
    }
    assert (q["_file"] == "leerlingen.csv").all()
    # Source values as given, except identifiers, which are pseudonymised there too.
    assert q.loc[3, "grade"] == "9" and q.loc[8, "school_year"] == "2014-2016"
    assert q.loc[7, "school_id"] == "S9" and q.loc[9, "residence_municipality_code"] == "Nieuwegein"
    assert q["student_id"].str.fullmatch(r"stu_[0-9a-f]{16}").all()
    assert q.loc[9, "student_id"] == e["student_id"][0]  # the duplicate of LL-1
    report = result.report["tables"]["enrolments"]
    assert (report["read"], report["accepted"], report["quarantined"], report["blank_rows"]) == \
        (9, 3, 6, 1)


def test_counts_hold_and_report_is_right(tmp_path, capsys):
    src = write(tmp_path / "leerlingen.csv", MESSY)
    schools = schools_file(tmp_path)
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()})
    out = tmp_path / "out"
    code = import_command([schools, src], mapping, out)
    assert code == 1
    printed = capsys.readouterr().out
    assert "enrolments     9         3            6" in printed
    assert "not supplied" in printed and "opmerking" in printed

    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    assert set(report) >= {"created", "sources", "tables", "reasons"}
    created = dt.datetime.fromisoformat(report["created"])
    assert abs((dt.datetime.now(dt.UTC) - created).total_seconds()) < 300
    assert report["sources"] == [
        {"file": "scholen.csv", "sha256": hashlib.sha256(schools.read_bytes()).hexdigest()},
        {"file": "leerlingen.csv", "sha256": hashlib.sha256(src.read_bytes()).hexdigest()},
    ]
    assert set(report["tables"]) == set(TABLES)
    for name, t in report["tables"].items():
        assert t["read"] == t["accepted"] + t["quarantined"]
        assert t["supplied"] == (name in ("schools", "enrolments"))
        written = pd.read_csv(out / TABLES[name].filename, dtype=str)
        assert len(written) == t["accepted"]
        assert list(written.columns) == TABLES[name].columns
        assert len(pd.read_csv(out / QUARANTINE_DIR / f"{name}.csv")) == t["quarantined"]
    assert report["not_supplied"] == ["care_reports", "trajectories", "referrals",
                                      "parent_involvement", "survey_responses"]
    reasons = {(r["table"], r["field"], r["reason"]): r["rows"] for r in report["reasons"]}
    assert reasons == {("enrolments", "grade", "out_of_range"): 1,
                       ("enrolments", "school_id", "unknown_reference"): 1,
                       ("enrolments", "school_year", "bad_school_year"): 1,
                       ("enrolments", "student_id+school_year", "duplicate_key"): 1,
                       ("enrolments", "school_id", "missing_required"): 1,
                       ("enrolments", "_row", "field_count"): 1}
    assert report["ignored_columns"] == [{"file": "leerlingen.csv", "columns": ["opmerking"]}]
    # No identifiers and no values of ignored columns in the report.
    text = json.dumps(report)
    assert "LL-" not in text and "stu_" not in text and "regels" not in text


def test_output_is_a_valid_data_set(tmp_path):
    src = write(tmp_path / "leerlingen.csv", MESSY)
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()})
    out = tmp_path / "out"
    import_command([schools_file(tmp_path), src], mapping, out)
    check = validate_dir(out)
    assert check.ok
    assert check.summary().set_index("table").loc["enrolments", "accepted"] == 3


def test_clean_import_exits_zero(tmp_path, capsys):
    src = write(tmp_path / "leerlingen.csv", csv_text([ENROL_HEADER, *enrol_rows(5)], ";"))
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()})
    assert import_command([schools_file(tmp_path), src], mapping, tmp_path / "out") == 0
    assert "quarantined" in capsys.readouterr().out
    assert pd.read_csv(tmp_path / "out" / QUARANTINE_DIR / "enrolments.csv").empty


def test_several_sources_for_one_table(tmp_path):
    a = write(tmp_path / "school_a.csv", csv_text([ENROL_HEADER, *enrol_rows(3)]))
    rows = enrol_rows(6)[3:]
    rows[1][4] = "0"
    b = write(tmp_path / "school_b.csv", csv_text([ENROL_HEADER, *rows], ";"), "cp1252")
    spec = {**enrol_map(), "source": ["school_a.csv", "school_b.csv"]}
    result = run(tmp_path, [schools_file(tmp_path), a, b],
                 {"schools": SCHOOLS_MAP, "enrolments": spec})
    check_counts(result)
    q = result.quarantine["enrolments"]
    assert q[["_file", "_row"]].values.tolist() == [["school_b.csv", 3]]
    assert result.report["tables"]["enrolments"]["read"] == 6


def test_out_dir_may_not_overwrite_a_source(tmp_path):
    src = write(tmp_path / "enrolments.csv", csv_text([ENROL_HEADER, *enrol_rows()]))
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP,
                                       "enrolments": enrol_map("enrolments.csv")})
    assert import_command([schools_file(tmp_path), src], mapping, tmp_path) == 2
    assert src.read_text().startswith("leerlingnummer")


def test_example_exports(tmp_path, capsys):
    sources = sorted(p for p in EXAMPLES.iterdir()
                     if p.suffix in (".csv", ".xlsx", ".parquet"))
    out = tmp_path / "out"
    assert import_command(sources, EXAMPLES / "mapping.yml", out) == 1
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    counts = {n: (t["read"], t["accepted"], t["quarantined"]) for n, t in report["tables"].items()}
    assert counts == {"schools": (3, 3, 0), "enrolments": (423, 420, 3),
                      "care_reports": (19, 19, 0), "trajectories": (35, 34, 1),
                      "referrals": (23, 23, 0), "parent_involvement": (0, 0, 0),
                      "survey_responses": (0, 0, 0)}
    assert validate_dir(out).ok
    ignored = {i["file"]: i["columns"] for i in report["ignored_columns"]}
    assert ignored["leerlingen.csv"] == ["roepnaam", "achternaam", "kenmerk", "opmerking"]
    written = all_output_bytes(out)
    for value in (b"Leerling 100101", b"Voorbeeld", b"100103", b"T-001", b"V-0001", b"M0001"):
        assert value not in written


# --------------------------------------------------------------------------------------------------
# Personal data


def valid_bsns(n: int) -> list[str]:
    """n distinct valid BSNs (eleven-test); every third starts with a zero and is written with 8
    digits, as a spreadsheet shows it."""
    weights = [9, 8, 7, 6, 5, 4, 3, 2]
    out: list[str] = []
    i = 1
    while len(out) < n:
        head = f"0{(i * 7919) % 10_000_000:07d}" if len(out) % 3 == 0 else \
            f"{(i * 15_485_863) % 100_000_000:08d}"
        i += 1
        last = sum(int(d) * w for d, w in zip(head, weights, strict=True)) % 11
        if last < 10 and head.strip("0"):
            bsn = (head + str(last)).lstrip("0") if head[0] == "0" else head + str(last)
            if len(bsn) >= 8 and bsn not in out:
                out.append(bsn)
    return out


def test_unmapped_bsn_column_is_left_out_with_a_warning_not_refused(tmp_path, capsys):
    bsns = valid_bsns(6)
    header = [*ENROL_HEADER, "kenmerk"]  # an extra column under an innocent header
    rows = [[*r, b] for r, b in zip(enrol_rows(6), bsns, strict=True)]
    src = write(tmp_path / "leerlingen.csv", csv_text([header, *rows]))
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()})
    out = tmp_path / "out"
    assert import_command([schools_file(tmp_path), src], mapping, out) == 0
    printed = capsys.readouterr().out
    assert ("leerlingen.csv: column 'kenmerk' holds citizen service numbers (BSN); not imported"
            in printed)
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    assert {"kind": "bsn_column_not_imported", "file": "leerlingen.csv",
            "column": "kenmerk"} in report["warnings"]
    written = all_output_bytes(out)
    assert not any(b.encode() in written for b in bsns) and len(
        pd.read_csv(out / "enrolments.csv")) == 6


@pytest.mark.parametrize("where", ["mapped", "mapped_as_code"])
def test_bsn_column_mapped_without_pseudonymise_is_refused(tmp_path, where):
    bsns = valid_bsns(6)
    rows = enrol_rows(6)
    if where == "mapped":  # the pupil number column holds BSNs
        for r, b in zip(rows, bsns, strict=True):
            r[0] = b
        header, changes = ENROL_HEADER, {}
    else:
        header = [*ENROL_HEADER, "x"]
        rows = [[*r, b] for r, b in zip(rows, bsns, strict=True)]
        changes = {"student_id": {"column": "x"}}
    with pytest.raises(ImportDataError) as exc:
        run_enrolments(tmp_path, csv_text([header, *rows]), **changes)
    message = str(exc.value)
    assert "leerlingen.csv: column" in message and "citizen service numbers (BSN)" in message
    assert "pseudonymise: true" in message
    assert not any(b in message for b in bsns)


def test_bsn_columns_agrees_with_looks_like_bsn_column():
    bsns = valid_bsns(6)
    frame = pd.DataFrame({0: bsns, 1: [*bsns[:3], "1", "2", "3"], 2: [*bsns[:2], *"abcd"],
                          3: [None] * 6, 4: [bsns[0], None, None, None, None, " "]},
                         dtype="string")
    expected = [i for i in frame if looks_like_bsn_column(frame[i])]
    assert bsn_columns(frame) == expected == [0, 1, 4]


def test_bsn_column_accepted_when_marked_pseudonymise(tmp_path):
    bsns = valid_bsns(8)
    assert any(len(b) == 8 for b in bsns)
    rows = enrol_rows(8)
    for r, b in zip(rows, bsns, strict=True):
        r[0] = b
    rows[3][4] = "8"  # one bad row: its BSN must not reach the quarantine either
    src = write(tmp_path / "leerlingen.csv", csv_text([ENROL_HEADER, *rows]))
    mapping = write_mapping(tmp_path, {
        "schools": SCHOOLS_MAP,
        "enrolments": enrol_map(student_id={"column": "leerlingnummer", "pseudonymise": "true"})})
    out = tmp_path / "out"
    assert import_command([schools_file(tmp_path), src], mapping, out) == 1
    e = pd.read_csv(out / "enrolments.csv", dtype=str)
    assert len(e) == 7 and e["student_id"].str.fullmatch(r"stu_[0-9a-f]{16}").all()
    written = all_output_bytes(out)
    for b in bsns:
        assert b.encode() not in written and b.zfill(9).encode() not in written


def test_the_key_never_appears_in_any_output(tmp_path, capsys):
    src = write(tmp_path / "leerlingen.csv", MESSY)
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()})
    out = tmp_path / "out"
    import_command([schools_file(tmp_path), src], mapping, out)
    captured = capsys.readouterr()
    key = KEY.encode()
    forms = [key, key.hex().encode(), key.hex().upper().encode(), base64.b64encode(key),
             base64.urlsafe_b64encode(key), base64.b64encode(key).rstrip(b"="),
             base64.b32encode(key), KEY[:24].encode()]
    haystack = all_output_bytes(out) + captured.out.encode() + captured.err.encode()
    for form in forms:
        assert form not in haystack


def test_raw_identifiers_and_ignored_values_never_written(tmp_path):
    rows = [["meldingnummer", "leerlingnummer", "BRIN", "datum melding", "naam", "toelichting"],
            ["MLD-1", "LLN-9001", "S1", "01-10-2014", "Jan Fictief", "belde moeder"],
            ["MLD-2", "LLN-9002", "S1", "32-10-2014", "Piet Fictief", "zie dossier"]]
    _, tables = care_files(tmp_path, [])
    src = write(tmp_path / "meldingen.csv", csv_text(rows, ";"))
    out = tmp_path / "out"
    code = import_command([schools_file(tmp_path), src], write_mapping(tmp_path, tables), out)
    assert code == 1  # MLD-2 is quarantined, pseudonymised
    written = all_output_bytes(out)
    for raw in (b"MLD-", b"LLN-", b"Fictief", b"moeder", b"dossier"):
        assert raw not in written
    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    assert report["ignored_columns"] == [{"file": "meldingen.csv",
                                          "columns": ["naam", "toelichting"]}]


def test_same_key_same_pseudonym_other_key_other(tmp_path, monkeypatch):
    text = csv_text([ENROL_HEADER, *enrol_rows(4)])
    first = run_enrolments(tmp_path, text).tables["enrolments"]["student_id"]
    again = run_enrolments(tmp_path, text).tables["enrolments"]["student_id"]
    assert first.tolist() == again.tolist()
    expected = pseudonymise(pd.Series([r[0] for r in enrol_rows(4)]), KEY.encode(), "stu_")
    assert first.tolist() == expected.tolist()
    monkeypatch.setenv(KEY_ENV, OTHER_KEY)
    other = run_enrolments(tmp_path, text).tables["enrolments"]["student_id"]
    assert not set(other) & set(first)


def test_same_pupil_links_across_tables_and_formats(tmp_path):
    src = workbook(tmp_path / "export.xlsx", {"schools": SCHOOL_ROWS,
                                             "enrolments": typed_enrol_rows()})
    files, tables = care_files(tmp_path, ["01-10-2014"])
    write(files[1], csv_text([["meldingnummer", "leerlingnummer", "BRIN", "datum melding"],
                              ["M1", "1001", "S1", "01-10-2014"]]))
    tables["schools"] = dict(SCHOOLS_MAP, source="export.xlsx")
    tables["enrolments"] = enrol_map("export.xlsx")
    result = run(tmp_path, [src, files[1]], tables)
    pupil = result.tables["care_reports"]["student_id"][0]
    assert pupil == result.tables["enrolments"]["student_id"][0]


def test_missing_key_stops_the_import(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(KEY_ENV)
    src = write(tmp_path / "leerlingen.csv", csv_text([ENROL_HEADER, *enrol_rows()]))
    mapping = write_mapping(tmp_path, {"schools": SCHOOLS_MAP, "enrolments": enrol_map()})
    out = tmp_path / "out"
    assert import_command([schools_file(tmp_path), src], mapping, out) == 2
    assert "secrets.token_hex(32)" in capsys.readouterr().err and not out.exists()


def test_identifiers_cannot_be_left_unpseudonymised(tmp_path):
    with pytest.raises(ImportDataError, match="always pseudonymised"):
        run_enrolments(tmp_path, csv_text([ENROL_HEADER, *enrol_rows()]),
                       student_id={"column": "leerlingnummer", "pseudonymise": "false"})


# --------------------------------------------------------------------------------------------------
# Malformed files: a clear error or quarantined rows, never a crash, a hang or a lost row


def test_empty_and_header_only_files(tmp_path):
    for name, text in [("leeg.csv", ""), ("spaties.csv", " \n\n  \n")]:
        with pytest.raises(ImportDataError, match=f"{name}: the file is empty"):
            read_source(write(tmp_path / name, text))
    result = run_enrolments(tmp_path, ";".join(ENROL_HEADER) + "\n")
    assert result.report["tables"]["enrolments"]["read"] == 0
    check_counts(result)


@pytest.mark.parametrize("data, message", [
    (b"a,b\n\x00\x01,2\n", "NUL bytes"),
    (b"\x81\x8d\x8f\x90\x9d\xff\xfe", "neither UTF-8 nor Windows-1252"),
])
def test_binary_csv_is_a_clear_error(tmp_path, data, message):
    path = tmp_path / "x.csv"
    path.write_bytes(data)
    with pytest.raises(ImportDataError, match=message):
        read_source(path)


@pytest.mark.parametrize("suffix", [".xlsx", ".parquet", ".xls", ".json"])
def test_damaged_or_unknown_files_are_clear_errors(tmp_path, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(ImportDataError, match=r"x\."):
        read_source(path, table="enrolments")


def test_huge_cells_and_odd_unicode(tmp_path):
    rows = enrol_rows(4)
    header = [*ENROL_HEADER, "opmerking"]
    rows[3][4] = "3\u200b"  # a zero-width space after the digit: not a number
    body = [[*rows[0], "x" * 300_000], [*rows[1], "\u202e\u0301\u200b🙂𝕏\ufeff"],
            [*rows[2], "é" * 10], [*rows[3], "\U0001f600" * 1000]]
    result = run_enrolments(tmp_path, csv_text([header, *body], ";"))
    check_counts(result)
    assert len(result.tables["enrolments"]) == 3
    assert result.quarantine["enrolments"]["_codes"].tolist() == ["grade: not_integer"]


cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=12)


# Without codes, so that random values reach validation instead of stopping the import.
PLAIN = enrol_map(residence_municipality_code="woongemeente", track="onderwijstype",
                  indication="ondersteuning")


def import_rows(rows: list[list[str]], sep: str, header: list[str] | None = None,
                raw: bytes | None = None) -> ImportResult | None:
    """Import schools plus an enrolments file made of `rows` (mapping without codes); None when
    refused with a clear ImportDataError (the only other outcome allowed)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = raw if raw is not None else \
            csv_text([header or ENROL_HEADER, *rows], sep, "\r\n").encode("utf-8")
        (folder / "leerlingen.csv").write_bytes(data)
        try:
            return run(folder, [schools_file(folder), folder / "leerlingen.csv"],
                       {"schools": SCHOOLS_MAP, "enrolments": PLAIN})
        except ImportDataError as exc:
            assert str(exc)
            return None


@given(st.binary(max_size=400))
@settings(PROPERTY, max_examples=25)
def test_random_bytes(data):
    result = import_rows([], ",", raw=data)
    if result is not None:
        check_counts(result)


@given(st.binary(max_size=300), st.sampled_from([".xlsx", ".parquet"]))
@settings(max_examples=20, deadline=dt.timedelta(seconds=5))
def test_random_bytes_as_workbook_or_parquet(data, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"x{suffix}"
        path.write_bytes(data)
        with pytest.raises(ImportDataError):
            read_source(path, table="enrolments")


def record_starts(rows: list[list[str]]) -> list[int]:
    """The line where each record starts in a file written by csv_text (header on line 1)."""
    starts, line = [], 2
    for r in rows:
        starts.append(line)
        line += 1 + sum(c.replace("\r\n", "\n").replace("\r", "\n").count("\n") for c in r)
    return starts


structured = st.sampled_from(["", " ", "LL-1", "S1", "S2", "2014-2015", "GM0321", "3", "havo",
                              "ja", "x,y", "a;b", '"', "\n", "a\r\nb", "\r"])


@given(st.lists(st.lists(st.one_of(cell, structured), min_size=0, max_size=9), max_size=14),
       st.sampled_from([",", ";"]))
@PROPERTY
def test_ragged_rows_random_cells_and_line_numbers(rows, sep):
    result = import_rows(rows, sep)
    if result is None:
        return
    check_counts(result)
    t = result.report["tables"]["enrolments"]
    assert t["read"] + t["blank_rows"] == len(rows)
    # A record with any visible character is never taken for a blank line.
    assert t["read"] >= sum(any(c.strip() for c in r) for r in rows)
    q = result.quarantine["enrolments"]
    assert q["_reasons"].notna().all() and (q["_reasons"] != "").all()
    # Each quarantined record is named by the line where it starts, quoted line breaks counted;
    # every record with a number of fields other than the header's is quarantined as such.
    starts = record_starts(rows)
    assert set(q["_row"]) <= set(starts)
    reasons = dict(zip(q["_row"], q["_codes"], strict=True))
    for line, r in zip(starts, rows, strict=True):
        if len(r) != len(ENROL_HEADER) and any(c.strip() for c in r):
            assert reasons[line] == "_row: field_count"


dutch_or_iso = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2060, 12, 31)).flatmap(
    lambda d: st.sampled_from([d.strftime("%d-%m-%Y"), f"{d.day}-{d.month}-{d:%y}",
                               d.strftime("%d/%m/%Y"), d.isoformat()]).map(lambda s: (s, d)))
grades = st.one_of(
    st.integers(1, 6).flatmap(lambda g: st.sampled_from([str(g), f"{g},0", f" {g} ", f"{g}.0"])
                              .map(lambda s: (s, g))),
    st.sampled_from(["0", "7", "2,5", "1,2,3", "1.234,5", "-1", "drie", "", "1e400", "nan"])
    .map(lambda s: (s, None)),
)


@given(st.lists(st.one_of(dutch_or_iso, cell.map(lambda s: (s, None))), min_size=1, max_size=12),
       st.lists(st.one_of(grades, cell.map(lambda s: (s, None))), min_size=1, max_size=12))
@PROPERTY
def test_random_strings_in_date_and_number_columns(dates, values):
    """Dates in care_reports, grades in enrolments, in one import: a well-formed value is always
    accepted as the right day or number; anything else is accepted or quarantined, never lost."""
    care = [["meldingnummer", "leerlingnummer", "BRIN", "datum melding"]]
    care += [[f"M{i}", f"LL-{i}", "S1", d] for i, (d, _) in enumerate(dates)]
    pupils = [[f"LL-{i}", "S1", "2014-2015", "GM0321", text, "havo", "ja"]
              for i, (text, _) in enumerate(values)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files, tables = care_files(folder, [])
        write(files[1], csv_text(care, ";", "\r\n"))
        files.append(write(folder / "leerlingen.csv", csv_text([ENROL_HEADER, *pupils], ";",
                                                                  "\r\n")))
        result = run(folder, files, {**tables, "enrolments": PLAIN})
    check_counts(result)

    accepted = result.tables["care_reports"]
    ids = pseudonymise(pd.Series([f"M{i}" for i in range(len(dates))]), KEY.encode(), "rep_")
    got = dict(zip(accepted["report_id"], accepted["report_date"], strict=True))
    quarantined = set(result.quarantine["care_reports"]["report_id"])
    assert set(got) | quarantined == set(ids) and not set(got) & quarantined
    for pid, (text, date) in zip(ids, dates, strict=True):
        if date is not None:
            assert got[pid].date() == date, text
        elif text.strip() == "":
            assert pid in quarantined

    q = result.quarantine["enrolments"]
    reasons = dict(zip(q["_row"], q["_codes"], strict=True))
    grade = iter(result.tables["enrolments"]["grade"])
    for line, (text, expected) in zip(record_starts(pupils), values, strict=True):
        if expected is not None:
            assert line not in reasons and next(grade) == expected, text
        elif line in reasons:
            assert reasons[line].startswith("grade: "), (text, reasons[line])
        else:  # accepted: an empty cell (grade is optional) or a grade read from the text
            value = next(grade)
            assert (pd.isna(value) and text.strip() == "") or 1 <= value <= 6, text
