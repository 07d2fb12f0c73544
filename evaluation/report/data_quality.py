"""Theme: data quality. What was read, what was accepted, what was rejected and why.

These are counts of records, not of groups of pupils, and are shown exactly: the reader must be
able to check that read = accepted + rejected for every table.
"""

from __future__ import annotations

import pandas as pd

from evaluation import labels
from evaluation.data.validation import ValidationResult
from evaluation.report import formatting as f


def summary_markdown(v: ValidationResult) -> str:
    s = v.summary()
    read, acc, rej = int(s["read"].sum()), int(s["accepted"].sum()), int(s["rejected"].sum())
    supplied = int(s["supplied"].sum())
    tables = (f"{len(s)} tabellen" if supplied == len(s) else
              f"{supplied} van de {len(s)} tabellen (niet aangeleverd: "
              f"{', '.join(s.loc[~s['supplied'], 'table'].map(labels.TABLE_NAMES).str.lower())})")
    text = (f"Er zijn {f.integer(read)} rijen ingelezen uit {tables}; "
            f"{f.integer(acc)} zijn geaccepteerd en {f.integer(rej)} afgekeurd "
            f"({f.percent(rej / read if read else 0, 2)}).")
    if rej == 0:
        text += " Geen enkele rij is afgekeurd."
    else:
        text += (" Afgekeurde rijen tellen niet mee in de analyses; ze zijn met hun reden "
                 "bewaard en hieronder geteld.")
    return text


def counts_table(v: ValidationResult) -> pd.DataFrame:
    s = v.summary()
    return pd.DataFrame({
        "Tabel": s["table"].map(labels.TABLE_NAMES),
        "Ingelezen": s["read"].map(f.integer).where(s["supplied"], "niet aangeleverd"),
        "Geaccepteerd": s["accepted"].map(f.integer),
        "Afgekeurd": s["rejected"].map(f.integer),
    })


def reasons_table(v: ValidationResult) -> pd.DataFrame | None:
    r = v.reasons()
    if r.empty:
        return None
    return pd.DataFrame({
        "Tabel": r["table"].map(labels.TABLE_NAMES),
        "Veld": r["field"].map(labels.field_name),
        "Reden": r["reason"].map(labels.REASONS),
        "Rijen": r["rows"].map(f.integer),
    })


def missing_table(v: ValidationResult) -> pd.DataFrame:
    m = v.missing()
    return pd.DataFrame({
        "Tabel": m["table"].map(labels.TABLE_NAMES),
        "Veld (optioneel)": m["field"].map(labels.field_name),
        "Leeg": m["missing"].map(f.integer),
        "Aandeel leeg": m["share"].map(lambda x: f.percent(x, 1)),
    })


#: The plausibility checks (`evaluation.data.plausibility`) in the words of the annex.
CHECKS = {
    "outside_school_years": "gedateerd in een schooljaar zonder inschrijvingen",
    "school_without_care_records": "school met leerlingen maar zonder zorgmeldingen, trajecten "
                                   "of verwijzingen",
    "empty_month": "maand zonder registraties in een reeks die ze verder wel heeft",
}
DATE_WORDS = {"report_date": "datum van de melding", "signal_date": "datum van het signaal",
              "referral_date": "datum van de verwijzing", "school_id": "school"}


def plausibility_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The plausibility warnings (rejecting nothing) as the annex lists them: what, in which
    table, how many rows, and which school years, schools (by name) or months."""
    from evaluation.data.plausibility import plausibility

    w = plausibility(tables)
    names = tables["schools"].set_index("school_id")["name"].astype(str).to_dict()

    def detail(row: pd.Series) -> str:
        items = row["detail"]
        if row["check"] == "school_without_care_records":
            items = [names.get(i, i) for i in items]  # school names are public
        elif row["check"] == "empty_month":
            items = [f"{labels.MONTHS[int(m[5:7]) - 1]} {m[:4]}" for m in items]
        shown = ", ".join(items[:8])
        return shown + (f" en {len(items) - 8} meer" if len(items) > 8 else "")

    return pd.DataFrame({
        "Tabel": w["table"].map(labels.TABLE_NAMES),
        "Waarschuwing": w["check"].map(CHECKS),
        "Rijen": [f.integer(n) if n and c != "school_without_care_records" else "–"
                  for n, c in zip(w["rows"], w["check"], strict=True)],
        "Betreft": [detail(r) for _, r in w.iterrows()],  # a handful of warnings
    })


IMPORT_REPORT = "import_report.json"


def import_counts(data_dir) -> pd.DataFrame | None:
    """Rows read, accepted and quarantined per table at import (`evaluation import`), when the data
    came in that way; None otherwise."""
    import json
    from pathlib import Path

    if data_dir is None or not (Path(data_dir) / IMPORT_REPORT).exists():
        return None
    report = json.loads((Path(data_dir) / IMPORT_REPORT).read_text(encoding="utf-8"))
    rows = [{
        "Tabel": labels.TABLE_NAMES.get(name, name),
        "Bron": ", ".join(t.get("sources", [])) or "niet aangeleverd",
        "Ingelezen": f.integer(t.get("read", 0)),
        "Geaccepteerd": f.integer(t.get("accepted", 0)),
        "Apart gezet": f.integer(t.get("quarantined", 0)),
    } for name, t in report.get("tables", {}).items()]
    return pd.DataFrame(rows)


def import_reasons(data_dir) -> pd.DataFrame | None:
    import json
    from pathlib import Path

    if data_dir is None or not (Path(data_dir) / IMPORT_REPORT).exists():
        return None
    report = json.loads((Path(data_dir) / IMPORT_REPORT).read_text(encoding="utf-8"))
    reasons = report.get("reasons", [])
    if not reasons:
        return None
    return pd.DataFrame([{
        "Tabel": labels.TABLE_NAMES.get(r["table"], r["table"]),
        "Veld": labels.field_name(r["field"]),
        "Reden": labels.REASONS.get(r["reason"], r["reason"]),
        "Rijen": f.integer(r["rows"]),
    } for r in reasons])
