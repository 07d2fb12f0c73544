"""The indicator registry: every indicator the pilot claims to move, defined once.

Names and units in Dutch (for readers) and English (for code and an English edition), the
direction of improvement, the levels at which it is reported, the theme notebook that shows it and
whether it belongs to the primary family (multiple-testing correction runs over that family).
Targets per level come from params (`region.targets`), never from code.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Kind = Literal["rate", "proportion", "duration", "scale"]
Level = Literal["pupil", "school", "municipality", "region"]
LEVELS: tuple[Level, ...] = ("pupil", "school", "municipality", "region")
LEVEL_NAMES = {"pupil": "leerling/gezin", "school": "school", "municipality": "gemeente",
               "region": "regio"}


@dataclass(frozen=True)
class Indicator:
    id: str
    name_nl: str
    name_en: str
    unit_nl: str
    unit_en: str
    kind: Kind
    better: Literal["lower", "higher", "unchanged"]
    theme: str
    primary: bool
    claim_nl: str
    levels: tuple[Level, ...] = ("school", "municipality", "region")
    short_nl: str = ""  # a short name for table rows; the full name where empty
    # What the claim promises beyond a direction, where it names it: a relative change of a rate
    # ("80% minder" is -0.80) or an end state of a share ("geen dubbele intakes meer" is 0.0).
    # A significant improvement that falls short of it is "deels bevestigd".
    claim_change: float | None = None
    claim_level: float | None = None

    @property
    def label_nl(self) -> str:
        return self.short_nl or self.name_nl

    @property
    def effect_scale(self) -> str:
        """How a comparison is expressed: ratio scales for counts and durations."""
        return {"rate": "rate ratio", "proportion": "difference in percentage points",
                "duration": "hazard ratio", "scale": "difference in scale points"}[self.kind]


INDICATORS: dict[str, Indicator] = {
    i.id: i
    for i in (
        Indicator("care_reports_per_100", "Zorgmeldingen per 100 leerlingen",
                  "Care reports per 100 pupils", "per 100 leerlingen per schooljaar",
                  "per 100 pupils per school year", "rate", "lower", "care_reports", True,
                  "80% minder zorgmeldingen vanuit de pilotscholen"),
        Indicator("days_signal_to_help", "Dagen van signaal tot start hulp",
                  "Days from signal to start of help", "dagen", "days", "duration", "lower",
                  "care_routes", True, "kortere en snellere zorgroutes",
                  ("pupil", "school", "municipality", "region")),
        Indicator("trajectory_days", "Duur van trajecten", "Length of trajectories", "dagen",
                  "days", "duration", "lower", "care_routes", False,
                  "kortere zorgroutes (lopende trajecten tellen mee als gecensureerd)",
                  ("pupil", "school", "municipality", "region")),
        Indicator("double_intake_share", "Aandeel trajecten met dubbele intake",
                  "Share of trajectories with more than one intake", "% van de trajecten",
                  "% of trajectories", "proportion", "lower", "care_routes", True,
                  "geen dubbele intakes meer"),
        Indicator("school_informed_share", "Aandeel trajecten met terugkoppeling aan school",
                  "Share of trajectories with the school informed", "% van de trajecten",
                  "% of trajectories", "proportion", "higher", "care_routes", True,
                  "de school blijft betrokken; terugkoppeling raakt niet meer zoek"),
        Indicator("parents_first_meeting_share", "Aandeel met ouders bij het eerste gesprek",
                  "Share with parents at the first meeting", "% van de trajecten",
                  "% of trajectories", "proportion", "higher", "parent_involvement", True,
                  "ouders meer en eerder betrokken", ("pupil", "school", "municipality", "region")),
        Indicator("days_to_consent", "Dagen van signaal tot toestemming ouders",
                  "Days from signal to parental consent", "dagen", "days", "duration", "lower",
                  "parent_involvement", True, "ouders werken sneller mee",
                  ("pupil", "school", "municipality", "region")),
        Indicator("specialised_referrals_per_100",
                  "Verwijzingen naar specialistische zorg vanuit school per 100 leerlingen",
                  "School-route referrals to specialised care per 100 pupils",
                  "per 100 leerlingen per schooljaar", "per 100 pupils per school year", "rate",
                  "lower", "referrals", True, "minder verwijzingen naar zwaardere jeugdhulp"),
        Indicator("gp_jggz_referrals_per_100", "Verwijzingen door de huisarts naar de JGGZ per "
                  "100 leerlingen", "GP referrals to youth mental-health care per 100 pupils",
                  "per 100 leerlingen per schooljaar", "per 100 pupils per school year", "rate",
                  "unchanged", "referrals", False,
                  "verwijzingen van de huisarts naar de JGGZ blijven bestaan"),
        Indicator("indication_free_days", "Duur indicatievrije t.o.v. geïndiceerde trajecten",
                  "Length of indication-free versus indicated trajectories", "dagen", "days",
                  "duration", "lower", "care_routes", False,
                  "indicatievrije trajecten zijn korter dan geïndiceerde",
                  ("pupil", "region")),
        Indicator("school_satisfaction", "Tevredenheid van scholen over de samenwerking",
                  "School satisfaction with the collaboration", "schaalscore 1-5",
                  "scale score 1-5", "scale", "higher", "satisfaction", True,
                  "scholen tevreden over de samenwerking met de jeugdhulp"),
        Indicator("professional_satisfaction", "Tevredenheid van professionals",
                  "Professional satisfaction", "schaalscore 1-5", "scale score 1-5", "scale",
                  "higher", "satisfaction", False,
                  "professionals van eerste en tweede lijn leren van elkaar"),
        Indicator("parent_satisfaction", "Tevredenheid van ouders", "Parent satisfaction",
                  "schaalscore 1-5", "scale score 1-5", "scale", "higher", "satisfaction", False,
                  "ouders tevreden over de hulp"),
    )
}

_SHORT = {
    "care_reports_per_100": "Zorgmeldingen",
    "days_signal_to_help": "Signaal tot hulp",
    "trajectory_days": "Duur traject",
    "double_intake_share": "Dubbele intake",
    "school_informed_share": "Terugkoppeling school",
    "parents_first_meeting_share": "Ouders bij 1e gesprek",
    "days_to_consent": "Tijd tot toestemming",
    "specialised_referrals_per_100": "Verwijzingen zwaardere zorg",
    "gp_jggz_referrals_per_100": "Huisarts naar JGGZ",
    "indication_free_days": "Indicatievrij vs. geïndiceerd",
    "school_satisfaction": "Tevredenheid scholen",
    "professional_satisfaction": "Tevredenheid professionals",
    "parent_satisfaction": "Tevredenheid ouders",
}
_CLAIMED = {"care_reports_per_100": {"claim_change": -0.80},
            "double_intake_share": {"claim_level": 0.0}}
INDICATORS = {k: replace(v, short_nl=_SHORT[k], **_CLAIMED.get(k, {}))
              for k, v in INDICATORS.items()}

PRIMARY = tuple(i.id for i in INDICATORS.values() if i.primary)


def indicator(indicator_id: str) -> Indicator:
    try:
        return INDICATORS[indicator_id]
    except KeyError:
        raise KeyError(f"unknown indicator {indicator_id!r}; known: {', '.join(INDICATORS)}") from None
