"""Whether a comparison can be estimated from the data at hand, and if not, why, in Dutch.

Real evaluations start from thin data: a table the care provider could not deliver, a field an
export does not have, a region without comparison schools, no school year before the pilot
started. Instead of failing (or fitting a model to nothing), each comparison that cannot be
estimated becomes a record with a `note` that says what is missing; the report shows that note.

`source_gap` looks at the tables (a table without rows, a field without any value), `design_gap`
at the records of one comparison (which schools and school years are there).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evaluation.analysis import methods
from evaluation.registry import Indicator

#: Notes, in the words of the report. Every one starts with "niet te bepalen".
FIELD_MISSING = "niet te bepalen: veld ontbreekt in de bron"
NOT_DELIVERED = "niet te bepalen: er zijn geen {what} aangeleverd"
NO_RECORDS = "niet te bepalen: geen waarnemingen voor deze indicator in de gegevens"
NO_PILOT_DATA = ("niet te bepalen: geen gegevens van pilotscholen in schooljaar {year}")
NO_BASELINE = ("niet te bepalen: de gegevens hebben geen schooljaar vóór de start van de pilot "
               "op een pilotschool")
NO_COMPARISON = "niet te bepalen: geen vergelijkingsscholen in de gegevens"
ONE_COMPARISON = ("niet te bepalen: gegevens van maar één vergelijkingsschool (minstens twee "
                  "nodig)")
ONE_PILOT = "niet te bepalen: gegevens van maar één pilotschool (minstens twee nodig)"

#: What a table holds, as the note names it ("er zijn geen ... aangeleverd").
TABLE_WORDS = {
    "care_reports": "zorgmeldingen",
    "trajectories": "trajecten",
    "referrals": "verwijzingen",
    "parent_involvement": "gegevens over ouderbetrokkenheid",
    "survey_responses": "antwoorden op de tevredenheidsvragenlijst",
    "enrolments": "inschrijvingen",
}

#: The tables and fields each indicator rests on (beyond keys and dates every row has). A field
#: an export may lack (the data dictionary marks it optional) makes the indicator impossible
#: when it is empty in every row.
SOURCES: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "care_reports_per_100": (("care_reports", ()),),
    "specialised_referrals_per_100": (("referrals", ()),),
    "gp_jggz_referrals_per_100": (("referrals", ()),),
    "days_signal_to_help": (("trajectories", ()),),
    "trajectory_days": (("trajectories", ("end_date",)),),
    "indication_free_days": (("trajectories", ("end_date", "indication_free", "level")),),
    "double_intake_share": (("trajectories", ("n_intakes",)),),
    "school_informed_share": (("trajectories", ("school_informed",)),),
    "parents_first_meeting_share": (("trajectories", ()),
                                    ("parent_involvement", ("parents_at_first_meeting",))),
    "days_to_consent": (("trajectories", ()), ("parent_involvement", ("consent_date",))),
    "school_satisfaction": (("survey_responses", ("value",)),),
    "professional_satisfaction": (("survey_responses", ("value",)),),
    "parent_satisfaction": (("survey_responses", ("value",)),),
}


def source_gap(indicator_id: str, tables: dict[str, pd.DataFrame]) -> str | None:
    """Why no comparison of the indicator can be estimated from these tables: a table without
    rows, or a field without a value in any row. None when the sources are there."""
    for table, fields in SOURCES.get(indicator_id, ()):
        frame = tables.get(table)
        if frame is None or len(frame) == 0:
            return NOT_DELIVERED.format(what=TABLE_WORDS[table])
        if any(f in frame and not frame[f].notna().any() for f in fields):
            return FIELD_MISSING
    return None


def design_gap(ind: Indicator, comparison: str, data: pd.DataFrame, school_year: str
               ) -> str | None:
    """Why this comparison cannot be estimated from these records (an indicator's analysis frame
    with its design columns), or None when the schools and school years it needs are there."""
    if len(data) == 0:
        return NO_RECORDS
    # Masks over the columns it needs, not filtered copies of the whole frame: this runs for
    # every comparison of every indicator and robustness specification.
    pilot = _mask(data["group"] == "pilot")
    now = pilot & _mask(data["school_year"] == school_year)
    if ind.kind == "rate":
        now &= _mask(data["exposure"] > 0)
    if not now.any():
        return NO_PILOT_DATA.format(year=school_year)
    if comparison == methods.INDICATION_FREE:
        return None
    if comparison == methods.BEFORE_AFTER:
        if not (pilot & _mask(data["period"] == "before")).any():
            return NO_BASELINE
        schools = data["school_id"][pilot & data["period"].notna().to_numpy()].nunique()
        return ONE_PILOT if schools < 2 else None
    if not (pilot & _mask(data["treated"] == 0)).any():
        return NO_BASELINE
    if comparison == methods.ITS:
        return None
    comparison_schools = data["school_id"][_mask(data["group"] == "comparison")].nunique()
    if comparison_schools == 0:
        return NO_COMPARISON
    if comparison_schools < 2:
        return ONE_COMPARISON
    return None


def _mask(condition: pd.Series) -> np.ndarray:
    """A comparison's result as a plain boolean array, a missing value as False."""
    return condition.fillna(False).to_numpy(dtype=bool)
