"""What the data cover, in Dutch: which tables, fields, schools and school years a report could use,
and why something could not be shown.

Real evaluations start from thin data: a region without comparison schools, a year with few
records, a table the care provider could not deliver. The report then still appears; these
sentences say what is missing and what could therefore not be estimated. The estimates carry the
reason per comparison (`evaluation.analysis.feasibility`); this module words the whole.
"""

from __future__ import annotations

import pandas as pd

from evaluation.analysis.estimates import EstimateSet
from evaluation.analysis.feasibility import TABLE_WORDS
from evaluation.data.plausibility import absent_fields
from evaluation.data.validation import ValidationResult
from evaluation.registry import INDICATORS

#: Optional fields as a reader would name what is missing ("... ontbreekt in de bron").
FIELD_WORDS = {
    ("enrolments", "grade"): "het leerjaar van leerlingen",
    ("enrolments", "track"): "het onderwijstype van leerlingen",
    ("enrolments", "indication"): "of een leerling een indicatie voor extra ondersteuning heeft",
    ("care_reports", "channel"): "wie op school een zorgmelding deed",
    ("trajectories", "first_intake_date"): "de datum van de eerste intake",
    ("trajectories", "n_intakes"): "het aantal intakes per traject",
    ("trajectories", "end_date"): "de einddatum van trajecten",
    ("trajectories", "route"): "de zorgroute (kernteam of regulier)",
    ("trajectories", "level"): "het zorgniveau van trajecten",
    ("trajectories", "indication_free"): "of een traject indicatievrij was",
    ("trajectories", "school_informed"): "of de school over de uitkomst is geïnformeerd",
    ("referrals", "trajectory_id"): "bij welk traject een verwijzing hoort",
    ("parent_involvement", "first_parent_contact_date"): "de datum van het eerste contact met "
                                                         "ouders",
    ("parent_involvement", "consent_date"): "de datum van toestemming van ouders",
    ("parent_involvement", "parents_at_first_meeting"): "of ouders bij het eerste gesprek waren",
    ("survey_responses", "value"): "de antwoorden op de vragenlijst",
}
PREFIX = "niet te bepalen: "


def reason(note: str) -> str:
    """A note without its 'niet te bepalen:' head, as the rest of a sentence."""
    return note[len(PREFIX):] if note.startswith(PREFIX) else note


def indicator_gap(es: EstimateSet, indicator_id: str) -> str | None:
    """The note that every comparison of an indicator shares when none could be estimated (a
    table not delivered, a field missing): one reason for the whole indicator. None otherwise."""
    rows = es.for_indicator(indicator_id)
    if rows.empty or rows["estimate"].notna().any():
        return None
    notes = rows["note"].fillna("").unique()
    return notes[0] if len(notes) == 1 and notes[0] else None


def figure_note(es: EstimateSet, indicator_id: str) -> str:
    """Why a figure of the indicator is not shown, as a sentence."""
    gap = indicator_gap(es, indicator_id)
    if gap and gap.startswith(PREFIX):
        return f"Geen figuur: {reason(gap)}."
    return ("Geen figuur: te weinig waarnemingen per groep en periode om te tonen (kleine "
            "aantallen worden niet gepubliceerd).")


def theme_gap(es: EstimateSet, indicator_ids: list[str]) -> str | None:
    """One sentence when no indicator of a theme could be estimated for one shared reason."""
    gaps = {indicator_gap(es, i) for i in indicator_ids}
    if len(gaps) != 1 or None in gaps:
        return None
    gap = gaps.pop()
    names = ", ".join(INDICATORS[i].label_nl.lower() for i in indicator_ids)
    return (f"**Niet te bepalen.** {reason(gap)[:1].upper()}{reason(gap)[1:]}; daarom is voor "
            f"dit thema ({names}) niets te schatten of te tonen.")


def _unit_pupils(v: ValidationResult, es: EstimateSet) -> int:
    """Pupils of the report's unit in the report year (pilot schools; in a municipality report
    counted by residence, the pupils living there)."""
    p = es.params
    e = v.tables["enrolments"]
    e = e[(e["school_year"] == p.school_year).to_numpy()]
    pilot = set(es.design.loc[es.design["group"] == "pilot", "school_id"])
    e = e[e["school_id"].isin(pilot).to_numpy()]
    if p.municipality and p.analysis.count_by == "residence":
        e = e[(e["residence_municipality_code"] == p.municipality).fillna(False).to_numpy()]
    return len(e)


def data_gaps(v: ValidationResult, es: EstimateSet) -> list[str]:
    """What the report's data lack, each as a Dutch sentence (none when nothing is missing)."""
    p = es.params
    out = []
    for name, words in TABLE_WORDS.items():
        if name != "enrolments" and not len(v.tables[name]):
            out.append(f"Er zijn geen {words} aangeleverd.")
    for table, field in absent_fields(v.tables):
        if (table, field) in FIELD_WORDS:
            what = FIELD_WORDS[(table, field)]
            out.append(f"In de bron ontbreekt {what}.")
    e = v.tables["enrolments"]
    # unique() first: a set over a whole column iterates it value by value
    now = set(e.loc[(e["school_year"] == p.school_year).to_numpy(), "school_id"].astype(str)
              .unique())
    no_pupils = bool(p.municipality_name) and _unit_pupils(v, es) == 0
    for group, plural in (("pilot", "pilotscholen"), ("comparison", "vergelijkingsscholen")):
        if group == "pilot" and no_pupils:
            continue  # said below, for the municipality
        ids = set(es.design.loc[es.design["group"] == group, "school_id"])
        lacking = len(ids - now)
        if lacking == len(ids) and ids:
            out.append(f"Er zijn geen gegevens van {plural} over schooljaar {p.school_year}.")
        elif lacking:
            out.append(f"Van {lacking} van de {len(ids)} {plural} zijn geen gegevens over "
                       f"schooljaar {p.school_year}.")
    if no_pupils:
        how = (f"die in gemeente {p.municipality_name} wonen"
               if p.analysis.count_by == "residence"
               else f"van de pilotscholen in gemeente {p.municipality_name}")
        out.append(f"In de gegevens staan voor schooljaar {p.school_year} geen leerlingen "
                   f"{how}.")
    years = sorted(set(e["school_year"].dropna().astype(str).unique()) & set(es.years))
    pilot = es.design[(es.design["group"] == "pilot") & es.design["school_id"].isin(now)]
    first = e.groupby("school_id")["school_year"].min()
    before = pilot["school_id"].map(first) < pilot["cohort"]
    if len(years) == 1:
        out.append(f"De gegevens beslaan alleen schooljaar {years[0]}: er is geen eerder "
                   "schooljaar om mee te vergelijken.")
    elif years and len(pilot) and not before.any():
        out.append(f"De gegevens beginnen in schooljaar {years[0]}, toen de pilot op elke "
                   "pilotschool met gegevens al liep: een vergelijking met de situatie vóór de "
                   "start is niet mogelijk.")
    return out


def coverage_markdown(v: ValidationResult, es: EstimateSet) -> str:
    """A paragraph for the summary when the data are incomplete; empty when they are not."""
    gaps = data_gaps(v, es)
    if not gaps:
        return ""
    n, total = int(es.table["estimate"].isna().sum()), len(es.table)
    items = "\n".join(f"- {g}" for g in gaps)
    done = ("Daardoor is geen enkele vergelijking te bepalen" if n == total else
            f"Daardoor {'is' if n == 1 else 'zijn'} {n} van de {total} vergelijkingen niet te "
            "bepalen; de andere rusten op de gegevens die er wel zijn")
    return (f"**Onvolledige gegevens.** De gegevens voor dit rapport zijn niet compleet:\n\n"
            f"{items}\n\n{done}. Bij elke vergelijking die niet te bepalen is, staat waarom; de "
            "bijlage over datakwaliteit telt wat er wel is aangeleverd.")


def missing_estimates(es: EstimateSet) -> pd.DataFrame:
    """Per reason: how many comparisons of which indicators could not be estimated."""
    t = es.table[es.table["estimate"].isna()]
    if t.empty:
        return pd.DataFrame(columns=["Reden", "Vergelijkingen", "Indicatoren"])
    rows = []
    for note, g in t.groupby(t["note"].fillna(""), sort=False):
        names = ", ".join(dict.fromkeys(INDICATORS[i].label_nl for i in g["indicator"]))
        rows.append({"Reden": reason(note) or "onbekend", "Vergelijkingen": str(len(g)),
                     "Indicatoren": names})
    return pd.DataFrame(rows)
