"""Write the example exports in this folder: a fictional municipal delivery for `evaluation import`
(no real persons, schools or pupil numbers). Run from the repository root:

    python examples/import/make_examples.py

The files are shaped like what school and youth-care administrations deliver, problems included,
so that the import has something to do and shows that it gets through in one run:

- scholen.csv: UTF-8 with BOM, commas, CBS numbers without `GM`, a telephone column left out.
- leerlingen.csv: Windows-1252, semicolons, CRLF; a title line and a blank line above the header
  and a totals line at the end (`header_row`, `footer_rows` in the mapping); a name column and a
  column of citizen service numbers under the innocent header `kenmerk` (both left out: the BSN
  column is reported as a warning, never read); a pupil enrolled twice in one year, a school
  code nobody knows and a track without a code (quarantined row by row); no column for the
  indication for extra support (an optional field the export does not have).
- zorgmeldingen.xlsx: an Excel export with two title rows above the header and a totals row,
  on the sheet named in the mapping; typed dates and text dates.
- trajecten.parquet: without the level of care and the indication-free flag (optional fields
  the provider did not deliver); one end date before its start date; a few signals dated in a
  school year without enrolments (a plausibility warning).
- verwijzingen.csv: semicolons and short Dutch dates (d-m-yy).

Two school years (2013-2014 and 2014-2015) of three pilot schools of regio Lekstroom: one that
started in 2013, two that started in 2014 (so the second year has a year before their start); no
comparison schools, no parent involvement and no survey: the whitepaper says what it could
therefore not determine.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd

HERE = Path(__file__).resolve().parent
SEED = 20141001
# BRIN + location number in the exports -> school ids of params/lekstroom.yml (see mapping.yml).
SCHOOLS = {"99XA00": ("Lekdal College", "0356", 2013), "99XD00": ("Merwedekanaal Lyceum",
                                                                  "356", 2014),
           "99XE00": ("Praktijkschool De Wiers", "0356", 2014)}
YEARS = ("2013-2014", "2014-2015")
PUPILS_PER_SCHOOL = 70
TRACKS = ("VMBO-B", "VMBO-K", "VMBO-T", "MAVO", "HAVO", "VWO", "PRO")
TOWNS = ("Nieuwegein", "Nieuwegein", "Nieuwegein", "Houten", "IJsselstein", "Vianen")
REPORTERS = ("zorgcoördinator", "mentor", "SMW", "leerplicht", "jeugdarts")


def bsn(i: int) -> str:
    """A fictional number that passes the eleven-test of citizen service numbers."""
    weights = (9, 8, 7, 6, 5, 4, 3, 2)
    while True:
        head = f"{(123_457 + i * 7_919) % 100_000_000:08d}"
        last = sum(int(d) * w for d, w in zip(head, weights, strict=True)) % 11
        if last < 10 and head[0] != "0":
            return head + str(last)
        i += 1_000


def pupils(rng: np.random.Generator) -> pd.DataFrame:
    """Every pupil of the three schools in both years (the same pupil one grade up)."""
    rows = []
    number = 100_100
    for brin in SCHOOLS:
        for _ in range(PUPILS_PER_SCHOOL):
            number += 1
            grade = int(rng.integers(1, 6))
            track = TRACKS[6] if brin == "99XE00" else str(rng.choice(TRACKS[:6]))
            town = str(rng.choice(TOWNS))
            for k, year in enumerate(YEARS):
                rows.append({"leerlingnummer": str(number), "roepnaam": f"Leerling {number}",
                             "achternaam": "Voorbeeld", "kenmerk": bsn(number), "BRIN": brin,
                             "schooljaar": year, "woonplaats": town, "leerjaar": grade + k,
                             "onderwijstype": track, "opmerking": ""})
    return pd.DataFrame(rows)


def write_pupils(frame: pd.DataFrame, path: Path) -> None:
    frame = frame.copy()
    frame.loc[3, "opmerking"] = "geëvalueerd in café-overleg"
    extra = [frame.iloc[10].to_dict(),                               # enrolled twice that year
             {**frame.iloc[20].to_dict(), "leerlingnummer": "100999", "BRIN": "99ZZ00",
              "kenmerk": bsn(100_999)},                               # a school nobody knows
             {**frame.iloc[30].to_dict(), "leerlingnummer": "100998", "onderwijstype": "LWOO",
              "kenmerk": bsn(100_998)}]                               # a track without a code
    frame = pd.concat([frame, pd.DataFrame(extra)], ignore_index=True)
    body = frame.to_csv(sep=";", index=False, lineterminator="\r\n")
    text = ("Leerlingenoverzicht voortgezet onderwijs gemeente Nieuwegein;;;;;;;;;\r\n"
            "\r\n" + body + f"Totaal aantal inschrijvingen: {len(frame)};;;;;;;;;\r\n")
    path.write_bytes(text.encode("cp1252"))


def school_year_dates(rng: np.random.Generator, year: str, n: int) -> list[dt.date]:
    start = dt.date(int(year[:4]), 8, 20)
    days = rng.integers(0, 320, size=n)
    return [start + dt.timedelta(days=int(d)) for d in days]


def care_reports(rng: np.random.Generator, enrolled: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (brin, year), g in enrolled.groupby(["BRIN", "schooljaar"]):
        started = SCHOOLS[brin][2] <= int(year[:4])
        n = int(rng.poisson(len(g) * (0.03 if started else 0.09)))
        who = g.sample(n, replace=True, random_state=int(rng.integers(1e9)))
        for pupil, day in zip(who["leerlingnummer"], school_year_dates(rng, year, n),
                              strict=True):
            rows.append({"BRIN": brin, "leerlingnummer": int(pupil), "datum melding": day,
                         "melder": str(rng.choice(REPORTERS))})
    frame = pd.DataFrame(rows).sort_values("datum melding").reset_index(drop=True)
    frame.insert(0, "meldingnummer", [f"M{i + 1:04d}" for i in range(len(frame))])
    return frame


def write_workbook(frame: pd.DataFrame, path: Path) -> None:
    wb = openpyxl.Workbook()
    info = wb.active
    info.title = "Toelichting"
    info.append(["Export zorgmeldingen, fictief voorbeeld"])
    ws = wb.create_sheet("Meldingen")
    ws.append(["Zorgmeldingen scholen voortgezet onderwijs, schooljaren 2013-2014 en 2014-2015"])
    ws.append(["Aangemaakt op 3-11-2015 door het registratiesysteem"])
    ws.append(["meldingnummer", "leerlingnummer", "BRIN", "datum melding", "melder"])
    for i, r in enumerate(frame.to_dict(orient="records")):
        # Some dates typed as text, as a user who edited the sheet would.
        date = r["datum melding"]
        day = f"{date.day}-{date.month}-{date.year}" if i % 7 == 3 else dt.datetime.combine(
            date, dt.time())
        ws.append([r["meldingnummer"], r["leerlingnummer"], r["BRIN"], day, r["melder"]])
    ws.append(["Totaal", None, None, None, len(frame)])
    wb.save(path)


def trajectories(rng: np.random.Generator, enrolled: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for (brin, year), g in enrolled.groupby(["BRIN", "schooljaar"]):
        started = SCHOOLS[brin][2] <= int(year[:4])
        n = int(rng.poisson(len(g) * 0.08))
        who = g.sample(n, replace=True, random_state=int(rng.integers(1e9)))
        for pupil, signal in zip(who["leerlingnummer"], school_year_dates(rng, year, n),
                                 strict=True):
            wait = int(rng.gamma(2, 15 if started else 30))
            start = signal + dt.timedelta(days=wait)
            length = int(rng.gamma(1.5, 80))
            end = start + dt.timedelta(days=length)
            rows.append({"leerlingnummer": pupil, "BRIN": brin, "datum signaal": signal,
                         "datum eerste intake": signal + dt.timedelta(days=wait // 2),
                         "aantal intakes": 1 if started or rng.random() > 0.3 else 2,
                         "startdatum traject": start,
                         "einddatum traject": end if end < dt.date(2015, 7, 1) else None,
                         "route": "Kernteam" if started else "Regulier",
                         "school geïnformeerd": "ja" if started and rng.random() < 0.85
                         or rng.random() < 0.4 else "nee"})
    frame = pd.DataFrame(rows).sort_values("datum signaal").reset_index(drop=True)
    frame.insert(0, "trajectnummer", [f"T-{i + 1:03d}" for i in range(len(frame))])
    # An end date before its start (a typing error), and signals a year too early (the pupil
    # was not yet in the delivery), for the quarantine and the plausibility warnings.
    frame.loc[5, "einddatum traject"] = frame.loc[5, "startdatum traject"] - dt.timedelta(days=40)
    for i in (8, 9, 10):
        for col in ("datum signaal", "datum eerste intake", "startdatum traject"):
            frame.loc[i, col] = frame.loc[i, col] - dt.timedelta(days=365)
    return frame


def referrals(rng: np.random.Generator, traj: pd.DataFrame, enrolled: pd.DataFrame) -> str:
    lines = ["verwijsnummer;trajectnummer;leerlingnummer;BRIN;verwijsdatum;verwijzer;niveau"]
    k = 0
    for r in traj.itertuples(index=False):
        if rng.random() < 0.3:
            k += 1
            day = r[6] + dt.timedelta(days=10)
            level = str(rng.choice(["Specialistisch", "JGGZ", "Licht"]))
            lines.append(f"V-{k:04d};{r[0]};{r[1]};{r[2]};{day.day}-{day.month}-{day:%y};"
                         f"kernteam;{level}")
    gp = enrolled.sample(12, random_state=int(rng.integers(1e9)))
    for r in gp.itertuples(index=False):
        k += 1
        day = school_year_dates(rng, r.schooljaar, 1)[0]
        lines.append(f"V-{k:04d};;{r.leerlingnummer};{r.BRIN};{day.day}-{day.month}-{day:%y};"
                     "huisarts;JGGZ")
    return "\n".join(lines) + "\n"


def main() -> None:
    rng = np.random.default_rng(SEED)
    schools = "BRIN,schoolnaam,gemeentecode,telefoon\n" + "".join(
        f"{brin},{name},{code},\n" for brin, (name, code, _) in SCHOOLS.items())
    (HERE / "scholen.csv").write_bytes(schools.encode("utf-8-sig"))
    enrolled = pupils(rng)
    write_pupils(enrolled, HERE / "leerlingen.csv")
    write_workbook(care_reports(rng, enrolled), HERE / "zorgmeldingen.xlsx")
    traj = trajectories(rng, enrolled)
    traj.assign(**{"aantal intakes": traj["aantal intakes"].astype("Int64")}).to_parquet(
        HERE / "trajecten.parquet", index=False)
    (HERE / "verwijzingen.csv").write_text(referrals(rng, traj, enrolled), encoding="utf-8")


if __name__ == "__main__":
    main()
