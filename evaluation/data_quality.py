"""Theme: data quality. What was read, what was accepted, what was rejected and why.

These are counts of records, not of groups of pupils, and are shown exactly: the reader must be
able to check that read = accepted + rejected for every table.
"""

from __future__ import annotations

import pandas as pd

from evaluation import formatting as f
from evaluation import labels
from evaluation.validation import ValidationResult


def summary_markdown(v: ValidationResult) -> str:
    s = v.summary()
    read, acc, rej = int(s["read"].sum()), int(s["accepted"].sum()), int(s["rejected"].sum())
    text = (f"Er zijn {f.integer(read)} rijen ingelezen uit {len(s)} tabellen; "
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
        "Ingelezen": s["read"].map(f.integer),
        "Geaccepteerd": s["accepted"].map(f.integer),
        "Afgekeurd": s["rejected"].map(f.integer),
    })


def reasons_table(v: ValidationResult) -> pd.DataFrame | None:
    r = v.reasons()
    if r.empty:
        return None
    return pd.DataFrame({
        "Tabel": r["table"].map(labels.TABLE_NAMES),
        "Veld": r["field"],
        "Reden": r["reason"].map(labels.REASONS),
        "Rijen": r["rows"].map(f.integer),
    })


def missing_table(v: ValidationResult) -> pd.DataFrame:
    m = v.missing()
    return pd.DataFrame({
        "Tabel": m["table"].map(labels.TABLE_NAMES),
        "Veld (optioneel)": m["field"],
        "Leeg": m["missing"].map(f.integer),
        "Aandeel leeg": m["share"].map(lambda x: f.percent(x, 1)),
    })
