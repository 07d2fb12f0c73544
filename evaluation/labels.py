"""Reader-facing Dutch labels, kept in one place so that code stays English and an English
edition remains possible.

Definitions like the indicator registry and params: every stage may read them, and they import
nothing from the package."""

import datetime as dt

GROUPS = {"pilot": "Pilotscholen", "comparison": "Vergelijkingsscholen"}

TABLE_NAMES = {
    "schools": "Scholen",
    "enrolments": "Inschrijvingen",
    "care_reports": "Zorgmeldingen",
    "trajectories": "Trajecten",
    "referrals": "Verwijzingen",
    "parent_involvement": "Ouderbetrokkenheid",
    "survey_responses": "Tevredenheidsonderzoek",
}

REASONS = {
    "missing_required": "verplichte waarde ontbreekt",
    "bad_format": "waarde heeft niet de vereiste vorm",
    "bad_school_year": "geen geldig schooljaar",
    "bad_date": "geen geldige datum",
    "not_integer": "geen geheel getal",
    "out_of_range": "getal buiten het toegestane bereik",
    "bad_boolean": "geen ja/nee-waarde",
    "unknown_value": "waarde niet toegestaan",
    "duplicate_key": "sleutel komt meer dan eens voor",
    "date_order": "datum ligt vóór een datum die eraan vooraf moet gaan",
    "unknown_reference": "verwijst naar een onbekende of afgekeurde rij",
    "field_count": "rij heeft meer of minder velden dan de kop",
    "unknown_code": "code staat niet in de mapping van de import",
}

#: Fields of the data model as a reader names them (the data-quality annex shows no code names).
FIELD_NAMES = {
    "school_id": "school", "name": "naam", "municipality_code": "gemeente", "region": "regio",
    "student_id": "leerling", "school_year": "schooljaar",
    "residence_municipality_code": "woongemeente", "grade": "leerjaar", "track": "onderwijstype",
    "indication": "indicatie extra ondersteuning", "report_id": "melding",
    "report_date": "datum melding", "channel": "melder", "trajectory_id": "traject",
    "signal_date": "datum signaal", "first_intake_date": "datum eerste intake",
    "n_intakes": "aantal intakes", "start_date": "startdatum hulp", "end_date": "einddatum hulp",
    "route": "zorgroute", "level": "zorgniveau", "indication_free": "indicatievrij",
    "school_informed": "school geïnformeerd", "referral_id": "verwijzing",
    "referral_date": "datum verwijzing", "referrer": "verwijzer",
    "destination_level": "zorgniveau verwijzing",
    "first_parent_contact_date": "eerste contact met ouders", "consent_date": "datum toestemming",
    "parents_at_first_meeting": "ouders bij eerste gesprek", "respondent_id": "respondent",
    "respondent_role": "rol respondent", "item": "vraag", "value": "antwoord", "_row": "hele rij",
}


def field_name(field: str) -> str:
    """A field (or a key of several, joined by +) in the reader's words."""
    return " + ".join(FIELD_NAMES.get(f, f) for f in str(field).split("+"))


MONTH = "Maand"
SCHOOL_YEAR = "Schooljaar"
RATE_PER_100 = "Zorgmeldingen per 100 leerlingen"

MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
          "september", "oktober", "november", "december")


def dutch_date(day: dt.date) -> str:
    """4 december 2026."""
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"
