"""The record-level data model: one declaration per table, used by the loader, the validator,
the synthetic generator and the data dictionary alike, so that they can never disagree.

All tables are pseudonymised: identifiers are opaque strings, never names or citizen numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

from evaluation.params import MUNICIPALITY_CODE

Kind = Literal["id", "text", "code", "category", "date", "int", "bool", "school_year"]

TRACKS = ("pro", "vmbo", "havo", "vwo")
CHANNELS = ("care_coordinator", "mentor", "school_social_work", "attendance_officer", "youth_health")
ROUTES = ("kernteam", "regular")
LEVELS = ("light", "specialised", "jggz", "residential")
REFERRERS = ("school", "gp", "youth_doctor", "district_team", "certified_institution")
ROLES = ("school", "parent", "pupil", "professional")
SCHOOL_YEAR = r"\d{4}-\d{4}"


@dataclass(frozen=True)
class Field:
    """One column: its kind decides how it is parsed; the rest how it is checked.

    `required=False`: the value may be empty, and a source may lack the field altogether (many
    exports do not have it); it stays empty then, never guessed, and the indicators that need it
    say that they cannot be determined (`evaluation.analysis.feasibility`)."""

    name: str
    kind: Kind
    description: str
    required: bool = True
    allowed: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None

    @property
    def dtype(self) -> object:
        """The pandas dtype of the parsed column (nullable where the field may be empty)."""
        if self.kind == "category":
            return pd.CategoricalDtype(list(self.allowed or ()))
        if self.kind == "date":
            return "datetime64[s]"
        if self.kind == "int":
            return "Int32"
        if self.kind == "bool":
            return "boolean"
        return "string"


@dataclass(frozen=True)
class ForeignKey:
    """Values of `fields` must exist as `ref_fields` in table `ref_table` (empty values excepted)."""

    fields: tuple[str, ...]
    ref_table: str
    ref_fields: tuple[str, ...]


@dataclass(frozen=True)
class Table:
    name: str
    description: str
    fields: tuple[Field, ...]
    key: tuple[str, ...]
    foreign_keys: tuple[ForeignKey, ...] = ()
    # Pairs (earlier, later): where both are present, earlier <= later.
    date_order: tuple[tuple[str, str], ...] = ()
    # The file name within a data directory.
    file: str = field(default="")

    @property
    def filename(self) -> str:
        return self.file or f"{self.name}.csv"

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"table {self.name!r} has no field {name!r}")

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def dtypes(self) -> dict[str, object]:
        return {f.name: f.dtype for f in self.fields}


SCHOOLS = Table(
    name="schools",
    description="School locations (vestigingen) with the municipality where they stand.",
    fields=(
        Field("school_id", "id", "School location identifier (pseudonymous or BRIN + location)."),
        Field("name", "text", "Name of the school location."),
        Field("municipality_code", "code", "CBS code of the municipality of the location.",
              pattern=MUNICIPALITY_CODE),
        Field("region", "code", "Youth-care region the location belongs to (params file name)."),
    ),
    key=("school_id",),
)

ENROLMENTS = Table(
    name="enrolments",
    description="One row per pupil per school year: where the pupil is enrolled and lives.",
    fields=(
        Field("student_id", "id", "Pseudonymous pupil identifier."),
        Field("school_id", "id", "School location of enrolment."),
        Field("school_year", "school_year", "School year, 1 August to 31 July, as 2014-2015.",
              pattern=SCHOOL_YEAR),
        Field("residence_municipality_code", "code", "CBS code of the municipality of residence.",
              pattern=MUNICIPALITY_CODE),
        Field("grade", "int", "Year of secondary school (leerjaar), 1 to 6.", required=False,
              minimum=1, maximum=6),
        Field("track", "category", "Educational track.", required=False, allowed=TRACKS),
        Field("indication", "bool", "Pupil has an indication for extra support (true/false).",
              required=False),
    ),
    key=("student_id", "school_year"),
    foreign_keys=(ForeignKey(("school_id",), "schools", ("school_id",)),),
)

CARE_REPORTS = Table(
    name="care_reports",
    description="Care reports (zorgmeldingen) from a school to youth care.",
    fields=(
        Field("report_id", "id", "Care report identifier."),
        Field("student_id", "id", "Pseudonymous pupil identifier."),
        Field("school_id", "id", "School location that made the report."),
        Field("report_date", "date", "Date of the report (YYYY-MM-DD)."),
        Field("channel", "category", "Who at school made the report.", required=False,
              allowed=CHANNELS),
    ),
    key=("report_id",),
    foreign_keys=(ForeignKey(("school_id",), "schools", ("school_id",)),),
)

TRAJECTORIES = Table(
    name="trajectories",
    description="Care trajectories (zorgroutes): from the first signal to the end of help.",
    fields=(
        Field("trajectory_id", "id", "Trajectory identifier."),
        Field("student_id", "id", "Pseudonymous pupil identifier."),
        Field("school_id", "id", "School location of the pupil when the signal came."),
        Field("signal_date", "date", "Date of the first signal of a problem."),
        Field("first_intake_date", "date", "Date of the first intake.", required=False),
        Field("n_intakes", "int", "Number of intakes in the trajectory (more than 1 = double intake).",
              required=False, minimum=1, maximum=20),
        Field("start_date", "date", "Date the help started."),
        Field("end_date", "date", "Date the help ended; empty while ongoing.", required=False),
        Field("route", "category", "Care route: kernteam in school or the regular route.",
              required=False, allowed=ROUTES),
        Field("level", "category", "Level of care.", required=False, allowed=LEVELS),
        Field("indication_free", "bool", "Help without a formal indication (true/false).",
              required=False),
        Field("school_informed", "bool", "School informed of the outcome (true/false).",
              required=False),
    ),
    key=("trajectory_id",),
    foreign_keys=(ForeignKey(("school_id",), "schools", ("school_id",)),),
    date_order=(("signal_date", "first_intake_date"), ("signal_date", "start_date"),
                ("first_intake_date", "start_date"), ("start_date", "end_date")),
)

REFERRALS = Table(
    name="referrals",
    description="Referrals (verwijzingen) to youth care, from the school route or elsewhere.",
    fields=(
        Field("referral_id", "id", "Referral identifier."),
        Field("trajectory_id", "id", "Trajectory the referral belongs to; empty for referrals "
              "outside a school care trajectory (for example by the GP).", required=False),
        Field("student_id", "id", "Pseudonymous pupil identifier."),
        Field("school_id", "id", "School location of the pupil at the referral date."),
        Field("referral_date", "date", "Date of the referral."),
        Field("referrer", "category", "Who referred.", allowed=REFERRERS),
        Field("destination_level", "category", "Level of care referred to.", allowed=LEVELS),
    ),
    key=("referral_id",),
    foreign_keys=(ForeignKey(("school_id",), "schools", ("school_id",)),
                  ForeignKey(("trajectory_id",), "trajectories", ("trajectory_id",))),
)

PARENT_INVOLVEMENT = Table(
    name="parent_involvement",
    description="Parent involvement (ouderbetrokkenheid) per trajectory.",
    fields=(
        Field("trajectory_id", "id", "Trajectory identifier."),
        Field("first_parent_contact_date", "date", "Date of the first contact with parents.",
              required=False),
        Field("consent_date", "date", "Date parents consented to the help.", required=False),
        Field("parents_at_first_meeting", "bool", "Parents present at the first meeting.",
              required=False),
    ),
    key=("trajectory_id",),
    foreign_keys=(ForeignKey(("trajectory_id",), "trajectories", ("trajectory_id",)),),
    date_order=(("first_parent_contact_date", "consent_date"),),
)

SURVEY_RESPONSES = Table(
    name="survey_responses",
    description="Satisfaction survey answers, one row per respondent and item (Likert 1-5).",
    fields=(
        Field("respondent_id", "id", "Pseudonymous respondent identifier."),
        Field("respondent_role", "category", "Role of the respondent.", allowed=ROLES),
        Field("school_id", "id", "School location the answer is about."),
        Field("school_year", "school_year", "School year of the survey.", pattern=SCHOOL_YEAR),
        Field("item", "code", "Survey item code."),
        Field("value", "int", "Answer on a 1-5 scale (5 = most satisfied).", required=False,
              minimum=1, maximum=5),
    ),
    key=("respondent_id", "school_year", "item"),
    foreign_keys=(ForeignKey(("school_id",), "schools", ("school_id",)),),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (SCHOOLS, ENROLMENTS, CARE_REPORTS, TRAJECTORIES, REFERRALS, PARENT_INVOLVEMENT,
              SURVEY_RESPONSES)
}


def data_dictionary() -> pd.DataFrame:
    """The data model as a table, written next to every data set so that a reader of the CSV
    files knows what each column holds without reading code."""
    rows = [
        {
            "table": t.name,
            "file": t.filename,
            "field": f.name,
            "type": f.kind,
            "required": f.required,
            "key": f.name in t.key,
            "allowed_values": "|".join(f.allowed) if f.allowed else "",
            "minimum": f.minimum,
            "maximum": f.maximum,
            "description": f.description,
        }
        for t in TABLES.values()
        for f in t.fields
    ]
    return pd.DataFrame(rows)


def school_year_of(dates: pd.Series) -> pd.Series:
    """School year ("2014-2015") of each date; the school year runs 1 August to 31 July."""
    d = pd.to_datetime(dates)
    start = d.dt.year - (d.dt.month < 8).astype("Int64")
    out = start.astype("string") + "-" + (start + 1).astype("string")
    return out.where(d.notna())


def school_year_start(school_year: str) -> pd.Timestamp:
    """1 August of the school year's first calendar year."""
    return pd.Timestamp(int(school_year[:4]), 8, 1)
