"""One table decides how each kind of indicator is compared: which comparisons it gets, which model
fits them, on which scale the effect is stated and which inference gives its interval.

The comparisons (`evaluation.analysis.comparisons`), the report's estimates, the robustness run and
the national estimates all read this table; none of them chooses a method by itself. The inference
names come from the fixed vocabulary of `evaluation.analysis.fixed_effects.INFERENCE`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The comparisons, by the Dutch name the report gives them.
BEFORE_AFTER = "voor/na (pilotscholen)"
DID = "verschil-in-verschillen"
EVENT_STUDY = "gespreide start (event study)"
ITS = "onderbroken tijdreeks"
INDICATION_FREE = "indicatievrij t.o.v. geïndiceerd"

#: How the report names each inference (appended to the model in the `method` column).
INFERENCE_TEXT = {
    "cluster_jackknife": "cluster-jackknife over scholen (CRV3)",
    "wild_bootstrap": "wild cluster bootstrap over scholen",
    "cluster_robust": "clustergecorrigeerd",
}
#: Added where cluster-robust errors are used because there are schools enough (the nation).
MANY_SCHOOLS = " (CRV1, ruim voldoende scholen)"


@dataclass(frozen=True)
class KindMethods:
    """How indicators of one kind (rate, proportion, duration, scale) are compared."""

    model: str                # "poisson", "ols" or "cox" (`fixed_effects`)
    outcome: str              # the record column the model explains
    scale: float              # the effect times this is what the report states (100: points)
    unit: str                 # scale of the before/after and difference-in-differences effects
    event_study_unit: str     # scale of the event study's average effect
    before_after: str         # the model in words, before/after at the pilot schools
    did: str                  # the model in words, difference-in-differences
    few_schools: str          # inference with the few schools of a region or municipality
    many_schools: str         # inference with the schools of the whole country
    comparisons: tuple[str, ...]


METHODS: dict[str, KindMethods] = {
    "rate": KindMethods(
        "poisson", "count", 1.0, "rate ratio", "per 100 leerlingen",
        "Poisson-regressie, schoolvaste effecten, leerlingen als blootstelling",
        "Poisson-regressie, school- en schooljaarvaste effecten",
        "cluster_jackknife", "cluster_robust", (BEFORE_AFTER, DID, EVENT_STUDY, ITS)),
    "proportion": KindMethods(
        "ols", "success", 100.0, "procentpunt", "procentpunt",
        "lineair kansmodel, schoolvaste effecten",
        "lineair kansmodel, school- en schooljaarvaste effecten",
        "wild_bootstrap", "cluster_robust", (BEFORE_AFTER, DID, EVENT_STUDY)),
    "duration": KindMethods(
        "cox", "days", 1.0, "hazard ratio", "dagen",
        "Cox-regressie gestratificeerd naar school (lopende trajecten gecensureerd)",
        "Cox-regressie met schooljaar, gestratificeerd naar school",
        "cluster_robust", "cluster_robust", (BEFORE_AFTER, DID, EVENT_STUDY)),
    "scale": KindMethods(
        "ols", "score", 1.0, "schaalpunt", "schaalpunt",
        "lineaire regressie, schoolvaste effecten",
        "lineaire regressie, school- en schooljaarvaste effecten",
        "wild_bootstrap", "cluster_robust", (BEFORE_AFTER, DID, EVENT_STUDY)),
}

#: Indicators compared otherwise than their kind says.
INDICATOR_COMPARISONS = {"indication_free_days": (INDICATION_FREE,)}

#: The effect scale of each kind (before/after and difference-in-differences).
UNITS = {kind: m.unit for kind, m in METHODS.items()}
EVENT_STUDY_UNITS = {kind: m.event_study_unit for kind, m in METHODS.items()}


def comparisons_of(indicator_id: str, kind: str) -> tuple[str, ...]:
    """The comparisons an indicator gets, in the order the report shows them."""
    return INDICATOR_COMPARISONS.get(indicator_id, METHODS[kind].comparisons)


def inference_of(kind: str, many_schools: bool = False) -> str:
    """The inference of a kind's before/after and difference-in-differences."""
    m = METHODS[kind]
    return m.many_schools if many_schools else m.few_schools


def inference_text(inference: str, many_schools: bool = False) -> str:
    return INFERENCE_TEXT[inference] + (MANY_SCHOOLS if many_schools else "")
