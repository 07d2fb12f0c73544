"""Why an imported row was set aside, in plain words and in the export's own terms.

The quarantine file is read by whoever fixes the export: they know its column headers and its
values, not the project's field names or reason codes. Each reason names the source column and
the value as the export holds it ("datum signaal '31-13-14' is geen datum"), and where two fields
disagree, both ("einddatum traject 01-01-2014 ligt vóór startdatum traject 10-03-2014").
Identifiers are never shown (they are pseudonymised in the quarantine file too), nor a BSN.

All wording is vectorised: a national import can quarantine thousands of rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.data.datamodel import TABLES
from evaluation.data.pseudonymisation import is_bsn

BSN_SHOWN = "[BSN verwijderd]"
#: What a referenced table holds, for "verwijst naar een ... die er niet is".
REFERENCED = {"schools": "school", "trajectories": "traject"}

#: Reason code -> wording; {col}/{v} the column and value, {ocol}/{ov} the other field's.
WORDING = {
    "missing_required": "{col}: verplichte waarde ontbreekt",
    "bad_format": "{col} {v} heeft niet de vereiste vorm",
    "bad_school_year": "{col} {v} is geen schooljaar (schrijf 2014-2015: twee opeenvolgende "
                       "jaren)",
    "bad_date": "{col} {v} is geen datum",
    "not_integer": "{col} {v} is geen geheel getal",
    "out_of_range": "{col} {v} ligt buiten {range}",
    "bad_boolean": "{col} {v} is geen ja of nee",
    "unknown_value": "{col} {v} is geen toegestane waarde",
    "duplicate_key": "{col} komt al eerder voor (de eerste rij is overgenomen)",
    "date_order": "{col} {v} ligt vóór {ocol} {ov}",
    "unknown_reference": "{col} {v} verwijst naar een {ref} die er niet is (of die zelf in "
                         "quarantaine staat)",
    "unknown_code": "{col} {v} staat niet onder codes in de mapping",
    "field_count": "rij heeft meer of minder velden dan de kop",
}


def explain(problems: pd.DataFrame, table: str, columns: dict[str, str], raw: pd.DataFrame,
            hidden: set[str]) -> pd.Series:
    """The plain-words reason of each problem.

    problems: one row per problem with `pos` (position in `raw`), `field`, `reason` and `other`
    (the field a date disagrees with, else empty); columns: project field -> source header;
    raw: the source values per field; hidden: fields whose values are not shown (identifiers).
    A value that is a BSN is never shown either.
    """
    if problems.empty:
        return pd.Series(dtype="string")
    t = TABLES[table]
    pos = problems["pos"].to_numpy(dtype=np.int64)

    def column(fields: pd.Series) -> pd.Series:
        parts = fields.fillna("").astype(str).str.split("+")
        return parts.map(lambda fs: " en ".join(columns.get(f, f) for f in fs))

    def value(fields: pd.Series, quote: bool = True) -> pd.Series:
        out = pd.Series("", index=problems.index, dtype="string")
        for f in fields.dropna().unique():
            if f not in raw or f in hidden:
                continue
            sel = (fields == f).to_numpy()
            v = raw[f].to_numpy(dtype=object)[pos[sel]]
            shown = pd.Series(v, dtype="string").fillna("").str.strip()
            shown = shown.mask(is_bsn(shown), BSN_SHOWN)
            out[sel] = (("'" + shown + "'") if quote else shown).to_numpy()
        return out

    def value_range(fields: pd.Series) -> pd.Series:
        limits = {f.name: f"{f.minimum:g} tot en met {f.maximum:g}" for f in t.fields
                  if f.minimum is not None and f.maximum is not None}
        return fields.map(lambda f: limits.get(f, "het toegestane bereik"))

    ref = {fk.fields[0]: REFERENCED.get(fk.ref_table, fk.ref_table) for fk in t.foreign_keys}
    other = problems["other"].fillna("") if "other" in problems else \
        pd.Series("", index=problems.index)
    dates = problems["reason"].isin(["date_order", "out_of_range"]).to_numpy()
    parts = {"col": column(problems["field"]),
             "v": value(problems["field"]).where(~dates, value(problems["field"], False)),
             "ocol": column(other), "ov": value(other.where(other != ""), False),
             "range": value_range(problems["field"]),
             "ref": problems["field"].map(lambda f: ref.get(f, "rij"))}
    out = pd.Series("", index=problems.index, dtype="string")
    for reason, template in WORDING.items():
        sel = (problems["reason"] == reason).to_numpy()
        if not sel.any():
            continue
        text = pd.Series(template, index=problems.index[sel], dtype="string")
        for key, series in parts.items():
            if "{" + key + "}" in template:
                text = _fill(text, key, series[sel])
        out[sel] = text.str.replace(r"\s+", " ", regex=True).str.strip().to_numpy()
    return out


def _fill(text: pd.Series, key: str, values: pd.Series) -> pd.Series:
    """Put `values` (aligned) where `{key}` stands in each text: split on the placeholder and
    join, which pandas does per column, not per row."""
    head_tail = text.str.split("{" + key + "}", n=1, expand=True, regex=False)
    return head_tail[0] + values.fillna("").astype("string") + head_tail[1]
