"""Write the example exports in this folder: fictional data for `evaluation import` (no real
persons, schools or pupil numbers). Run from the repository root:

    python examples/import/make_examples.py

The files show what exports look like in practice: a UTF-8 CSV with BOM (scholen.csv), a Windows-1252
CSV with semicolons and columns with personal data that the import leaves out (leerlingen.csv), an
Excel workbook whose sheet is named in the mapping (zorgmeldingen.xlsx), a Parquet file
(trajecten.parquet) and a CSV with short Dutch dates (verwijzingen.csv). A few rows are wrong on
purpose, so the import has something to quarantine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd

HERE = Path(__file__).resolve().parent

SCHOOLS = """\
BRIN,schoolnaam,gemeentecode,telefoon
99XA00,Lekdal College,0356,
99XB00,Oude Dijk Scholengemeenschap,321,
99XC00,Hollandse IJssel College,0353,
"""

# Columns roepnaam, achternaam, postcode and opmerking are personal data: the mapping leaves them
# out and the import report lists them by header only. All values are invented.
PUPILS = """\
leerlingnummer;roepnaam;achternaam;postcode;BRIN;schooljaar;woonplaats;leerjaar;onderwijstype;ondersteuning;opmerking
100101;Leerling A;Voorbeeld;0000 AA;99XA00;2014-2015;Nieuwegein;1;HAVO;nee;
100102;Leerling B;Voorbeeld;0000 AA;99XA00;2014-2015;Nieuwegein;2;VWO;nee;
100103;Leerling C;Voorbeeld;0000 AB;99XA00;2014-2015;Houten;3;VMBO-K;ja;geëvalueerd in café-overleg
100104;Leerling D;Voorbeeld;0000 AB;99XB00;2014/2015;Houten;1;VMBO-B;ja;
100105;Leerling E;Voorbeeld;0000 AC;99XB00;2014-2015;Houten;4;HAVO;nee;
100106;Leerling F;Voorbeeld;0000 AC;99XB00;2014-2015;IJsselstein;7;VWO;nee;leerjaar klopt niet
100107;Leerling G;Voorbeeld;0000 AD;99XC00;2014-2015;IJsselstein;2;PRO;ja;

100108;Leerling H;Voorbeeld;0000 AD;99XC00;2014-2015;Nieuwegein;3;VMBO-T;nee;
"""

REFERRALS = """\
verwijsnummer;trajectnummer;leerlingnummer;BRIN;verwijsdatum;verwijzer;niveau
V-0001;T-01;100103;99XA00;12-1-15;kernteam;Specialistisch
V-0002;;100105;99XB00;3-2-15;huisarts;JGGZ
V-0003;T-02;100104;99XB00;20-11-14;jeugdarts;Licht
V-0004;T-03;100107;99XC00;31-13-14;wijkteam;Licht
"""


def write_workbook(path: Path) -> None:
    wb = openpyxl.Workbook()
    info = wb.active
    info.title = "Toelichting"
    info.append(["Export zorgmeldingen, fictief voorbeeld"])
    ws = wb.create_sheet("Meldingen")
    ws.append(["meldingnummer", "leerlingnummer", "BRIN", "datum melding", "melder"])
    ws.append(["M1", 100103, "99XA00", dt.datetime(2014, 10, 6), "zorgcoördinator"])
    ws.append(["M2", 100104, "99XB00", dt.datetime(2014, 11, 17), "mentor"])
    ws.append(["M3", 100107, "99XC00", "3-2-2015", "SMW"])
    ws.append(["M4", 100105, "99XB00", "31-02-2015", "mentor"])
    ws.append(["M5", 100101, "99XA00", dt.datetime(2015, 3, 9), None])
    wb.save(path)


def write_parquet(path: Path) -> None:
    d = dt.date
    frame = pd.DataFrame({
        "trajectnummer": ["T-01", "T-02", "T-03"],
        "leerlingnummer": ["100103", "100104", "100107"],
        "BRIN": ["99XA00", "99XB00", "99XC00"],
        "datum signaal": [d(2014, 10, 6), d(2014, 11, 17), d(2015, 2, 3)],
        "datum eerste intake": [d(2014, 10, 20), None, d(2015, 2, 16)],
        "aantal intakes": pd.array([1, None, 2], dtype="Int64"),
        "startdatum traject": [d(2014, 11, 3), d(2014, 12, 1), d(2015, 3, 2)],
        "einddatum traject": [d(2015, 4, 24), None, None],
        "route": ["Kernteam", "Kernteam", "Regulier"],
        "zwaarte": ["Specialistisch", "Licht", "Licht"],
        "vrij toegankelijk": ["ja", "ja", "nee"],
        "school geïnformeerd": ["ja", "nee", None],
    })
    frame.to_parquet(path, index=False)


def main() -> None:
    (HERE / "scholen.csv").write_bytes(SCHOOLS.encode("utf-8-sig"))
    (HERE / "leerlingen.csv").write_bytes(PUPILS.replace("\n", "\r\n").encode("cp1252"))
    (HERE / "verwijzingen.csv").write_bytes(REFERRALS.encode("utf-8"))
    write_workbook(HERE / "zorgmeldingen.xlsx")
    write_parquet(HERE / "trajecten.parquet")


if __name__ == "__main__":
    main()
