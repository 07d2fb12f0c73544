"""One table decides how each kind of indicator is compared: which comparisons it gets, which model
fits them, on which scale the effect is stated and which inference gives its interval.

The comparisons (`evaluation.analysis.comparisons`), the report's estimates, the robustness run,
the national estimates and the method section of the report all read this module; none of them
chooses a method by itself.

Inference policy (`inference_for`), one rule for every primary comparison:

* many schools (at least `analysis.few_schools`, default 50: the nation): cluster-robust (CRV1);
* fewer schools: the few-cluster method of the model, cluster jackknife (CRV3, t(G-1)) for
  Poisson, Cox, the time series and the event study, the wild cluster bootstrap for linear models,
  the cluster bootstrap for medians of durations;
* a difference-in-differences with fewer than `analysis.few_treated` (default 5) pilot or
  comparison schools: randomisation inference that reassigns the pilot over the schools
  (cluster-robust and wild-bootstrap tests over-reject badly with one or two treated clusters:
  Conley & Taber 2011; MacKinnon & Webb 2017, 2018);
* a before/after comparison of fewer than `analysis.few_treated` pilot schools (there is no one
  to reassign the pilot to): the cluster jackknife for every kind, whose t(G-1) interval is as
  wide as two or three schools warrant; a wild or ordinary bootstrap over two schools has only a
  handful of distinct draws and gives intervals that are either absurd or far too narrow.
  With one pilot school there is no interval, and the comparison is reported as not estimated.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The comparisons, by the Dutch name the report gives them.
BEFORE_AFTER = "voor/na (pilotscholen)"
DID = "verschil-in-verschillen"
DID_HAZARD = "verschil-in-verschillen, hazard ratio (technisch)"
EVENT_STUDY = "gespreide start (event study)"
ITS = "onderbroken tijdreeks"
INDICATION_FREE = "indicatievrij t.o.v. geïndiceerd"

#: The fixed vocabulary of `inference`, with the words the report uses for each.
INFERENCE = {
    "cluster_robust": "clustergecorrigeerde standaardfouten (CRV1)",
    "cluster_jackknife": "cluster-jackknife over scholen (CRV3, t-verdeling met G-1 "
                         "vrijheidsgraden)",
    "wild_bootstrap": "wild cluster bootstrap over scholen (Webb-gewichten, interval door "
                      "testinversie)",
    "cluster_bootstrap": "clusterbootstrap over scholen (scholen getrokken binnen pilot- en "
                         "vergelijkingsgroep, percentielinterval)",
    "randomisation": "randomisatie-inferentie (de pilot opnieuw toegewezen over de scholen)",
}
#: Methods that draw: their records carry `draws` and a p-value floor.
DRAWING = ("wild_bootstrap", "cluster_bootstrap", "randomisation")


@dataclass(frozen=True)
class KindMethods:
    """How indicators of one kind (rate, proportion, duration, scale) are compared."""

    model: str                # "poisson", "ols" or "median" (durations in days)
    outcome: str              # the record column the model explains
    scale: float              # the effect times this is what the report states (100: points)
    unit: str                 # scale of the before/after and difference-in-differences effects
    event_study_unit: str     # scale of the event study's average effect
    before_after: str         # the model in words, before/after at the pilot schools
    did: str                  # the model in words, difference-in-differences
    few_schools: str          # inference with the few schools of a region or municipality
    comparisons: tuple[str, ...]


METHODS: dict[str, KindMethods] = {
    "rate": KindMethods(
        "poisson", "count", 1.0, "rate ratio", "per 100 leerlingen",
        "Poisson-regressie, schoolvaste effecten, leerlingen als blootstelling",
        "Poisson-regressie, school- en schooljaarvaste effecten",
        "cluster_jackknife", (BEFORE_AFTER, DID, EVENT_STUDY, ITS)),
    "proportion": KindMethods(
        "ols", "success", 100.0, "procentpunt", "procentpunt",
        "lineair kansmodel, schoolvaste effecten",
        "lineair kansmodel, school- en schooljaarvaste effecten",
        "wild_bootstrap", (BEFORE_AFTER, DID, EVENT_STUDY)),
    "duration": KindMethods(
        "median", "days", 1.0, "dagen", "dagen",
        "mediane duur (Kaplan-Meier, lopende trajecten gecensureerd), na min vóór",
        "verschil-in-verschillen van de mediane duur (Kaplan-Meier, lopende trajecten "
        "gecensureerd)",
        "cluster_bootstrap", (BEFORE_AFTER, DID, DID_HAZARD, EVENT_STUDY)),
    "scale": KindMethods(
        "ols", "score", 1.0, "schaalpunt", "schaalpunt",
        "lineaire regressie, schoolvaste effecten",
        "lineaire regressie, school- en schooljaarvaste effecten",
        "wild_bootstrap", (BEFORE_AFTER, DID, EVENT_STUDY)),
}

#: The secondary, technical comparison of durations: a Cox model (hazard ratio, above 1 sooner).
HAZARD_METHOD = "Cox-regressie met schooljaar, gestratificeerd naar school"
EVENT_STUDY_METHOD = ("groep-tijdeffecten (Callaway & Sant'Anna), vergeleken met nog niet "
                      "gestarte scholen")
ITS_METHOD = "Poisson-model van maandaantallen met kalendermaanden, trend en niveaubreuk"
INDICATION_FREE_METHOD = "Cox-regressie gestratificeerd naar zorgniveau"

#: Indicators compared otherwise than their kind says.
INDICATOR_COMPARISONS = {"indication_free_days": (INDICATION_FREE,)}

#: The effect scale of each kind (before/after and difference-in-differences).
UNITS = {kind: m.unit for kind, m in METHODS.items()}
EVENT_STUDY_UNITS = {kind: m.event_study_unit for kind, m in METHODS.items()}


def comparisons_of(indicator_id: str, kind: str) -> tuple[str, ...]:
    """The comparisons an indicator gets, in the order the report shows them."""
    return INDICATOR_COMPARISONS.get(indicator_id, METHODS[kind].comparisons)


def unit_of(kind: str, comparison: str) -> str:
    """The scale a comparison of a kind is stated on."""
    if comparison in (DID_HAZARD, INDICATION_FREE):
        return "hazard ratio"
    if comparison == ITS:
        return "rate ratio"
    return EVENT_STUDY_UNITS[kind] if comparison == EVENT_STUDY else UNITS[kind]


def inference_for(kind: str, comparison: str, n_schools: int, n_pilot: int, n_comparison: int,
                  few_schools: int = 50, few_treated: int = 5) -> str:
    """The inference of one comparison, by the numbers of schools (see the module docstring)."""
    if n_schools >= few_schools:
        return "cluster_robust"
    if comparison == DID and min(n_pilot, n_comparison) < few_treated:
        return "randomisation"
    if comparison == BEFORE_AFTER and n_pilot < few_treated:
        return "cluster_jackknife"
    if comparison in (BEFORE_AFTER, DID):
        return METHODS[kind].few_schools
    return "cluster_jackknife"  # Cox (hazard ratio), time series, event study


def inference_text(inference: str) -> str:
    return INFERENCE[inference]
