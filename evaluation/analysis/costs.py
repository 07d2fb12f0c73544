"""Costs and avoided costs of the pilot: what the core teams cost, what the estimated effects save.

Municipalities that invest in schools want to know who pays what and whether it pays off (the
NJi point on (cost-)effectiveness). This module turns the difference-in-differences estimates
into money for the report year:

* pilot costs: core-team hours per pilot school, priced at an hourly rate over the school weeks,
  plus the region's coordination costs;
* avoided referrals to heavier care: the pilot schools' report-year referrals divided by the rate
  ratio give the counterfactual count; the difference is priced at the average cost of a heavy
  trajectory (mix of specialised, JGGZ and residential care) minus a light trajectory that takes
  its place (in the pilot, help stays light where possible; it is not free);
* avoided double intakes: the difference in percentage points times the report-year trajectories,
  one intake saved per avoided double intake.

Shorter trajectories are not expressed in money, see `NOT_MONETISED`.

The interval propagates only the estimation uncertainty (parametric bootstrap from the estimates'
confidence intervals: log scale for the rate ratio, normal for the difference, fixed seed); the
tariffs are taken as given. Example tariffs are labelled as such wherever they are shown: they
must never pass for real tariffs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml
from scipy import stats

from evaluation.analysis.methods import DID
from evaluation.params import (  # noqa: F401  (CostItem, TrajectoryCosts: re-exported)
    DEFAULT_PARAMS_DIR,
    CostItem,
    Costs,
    Disclosure,
    TrajectoryCosts,
)

if TYPE_CHECKING:

    from evaluation.analysis.estimates import EstimateSet

REFERRALS = "specialised_referrals_per_100"
DOUBLE_INTAKE = "double_intake_share"
DURATION = "trajectory_days"
HEAVY = ("specialised", "jggz", "residential")  # the levels the referral indicator counts
EXAMPLE_COSTS_FILE = DEFAULT_PARAMS_DIR / "examples" / "costs.yml"
LEVEL_NAMES = {"light": "licht", "specialised": "specialistisch", "jggz": "JGGZ",
               "residential": "verblijf"}
NOT_MONETISED = (
    "Kortere trajecten zijn niet in geld uitgedrukt: de tarieven gelden per traject, zodat een "
    "korter traject alleen geld bespaart waar per tijdseenheid wordt betaald, en een deel van "
    "de kortere mediane duur komt juist doordat "
    "zware trajecten zijn vermeden, die hierboven al zijn meegeteld."
)


# --- parameters ---------------------------------------------------------------------------------


def load_costs(path: Path = EXAMPLE_COSTS_FILE) -> Costs:
    """The `costs:` mapping of a YAML file, validated (the example file by default)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    return Costs.model_validate(data.get("costs", data))


def costs_of(params: Any) -> Costs:
    """The run's cost parameters; the example values where params carry none."""
    costs = getattr(params, "costs", None)
    return costs if costs is not None else load_costs()


# --- computation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ranged:
    """A figure with its interval (low/high NaN where there is none; high inf: unbounded)."""

    point: float
    low: float = math.nan
    high: float = math.nan


@dataclass
class CostBenefit:
    """Costs and avoided costs of one report year, with the inputs they rest on."""

    region: str
    school_year: str
    example: bool
    alpha: float
    draws: int
    seed: int
    costs: Costs
    # inputs from the data and the estimates
    pilot_schools: float  # school equivalents (a residence report counts a share of each school)
    coordination_share: float
    pupils: int
    observed_referrals: int
    trajectories: int
    rate_ratio: Ranged
    double_intake_pp: Ranged
    mix: dict[str, float]
    # results
    core_team_costs: float
    coordination_costs: float
    pilot_costs: float
    saving_per_trajectory: float
    avoided_referrals: Ranged
    avoided_double_intakes: Ranged
    referral_savings: Ranged
    intake_savings: Ranged
    avoided_costs: Ranged
    net: Ranged
    net_per_pupil: Ranged
    cost_per_avoided: Ranged
    break_even: float
    mix_origin: str = ""  # where the level mix comes from, in Dutch
    disclosure: Disclosure = field(default_factory=Disclosure)  # rule for counts in the notes
    withheld: str = ""  # why the avoided costs are not computed ('' when they are)
    notes: list[str] = field(default_factory=list)
    #: the pilot's effect on trajectory length (not priced; stated beside the balance)
    duration_effect: Ranged = field(default_factory=lambda: Ranged(math.nan, math.nan, math.nan))

    @property
    def level(self) -> int:
        """Confidence level in percent, as the report states it."""
        return int(round(100 * (1 - self.alpha)))


def _did(es: EstimateSet, indicator_id: str) -> Ranged:
    try:
        row = es.get(indicator_id, DID)
    except KeyError:
        return Ranged(math.nan, math.nan, math.nan)
    return Ranged(float(row["estimate"]), float(row["ci_low"]), float(row["ci_high"]))


def _after(es: EstimateSet, indicator_id: str) -> pd.DataFrame:
    """The pilot schools' records of the report year (`period == "after"`)."""
    if indicator_id not in es.data:
        raise KeyError(f"cost_benefit needs the records of {indicator_id}; estimate it too")
    d = es.data[indicator_id]
    return d[(d["group"] == "pilot") & (d["period"] == "after").fillna(False)]


def referral_mix(tables: Mapping[str, pd.DataFrame], es: EstimateSet) -> dict[str, float]:
    """Shares of specialised, JGGZ and residential care among the pilot schools' school-route
    referrals in their baseline years: the referrals the pilot avoids would have followed the
    pattern of before the start."""
    from evaluation.data.datamodel import school_year_of

    d = es.data[REFERRALS]
    cells = d.loc[(d["group"] == "pilot") & (d["period"] == "before").fillna(False),
                  ["school_id", "school_year"]].drop_duplicates()
    r = tables["referrals"]
    r = r[(r["referrer"] == "school").to_numpy() & r["destination_level"].isin(HEAVY).to_numpy()]
    r = r.assign(school_year=school_year_of(r["referral_date"]).astype("string"),
                 school_id=r["school_id"].astype("string"))
    cells = cells.astype({"school_id": "string", "school_year": "string"})
    r = r.merge(cells, on=["school_id", "school_year"], how="inner")
    counts = r["destination_level"].astype("string").value_counts()
    total = float(sum(counts.get(lv, 0) for lv in HEAVY))
    if total == 0:
        return {"specialised": 1.0, "jggz": 0.0, "residential": 0.0}
    return {lv: float(counts.get(lv, 0)) / total for lv in HEAVY}


def _attribution(es: EstimateSet, after: pd.DataFrame,
                 tables: Mapping[str, pd.DataFrame] | None) -> tuple[float, float]:
    """Pilot schools (in school equivalents) and share of the coordination costs that belong to
    the report's unit. A region report carries every pilot school and all coordination; a
    municipality report the part of its pupils, so that costs and savings concern the same
    pupils."""
    schools = es.design.loc[es.design["group"] == "pilot", "school_id"].astype("string")
    if es.params.municipality is None:
        return float(len(schools)), 1.0
    if tables is None:
        raise ValueError("a municipality report needs tables=... to attribute the pilot costs to "
                         "the municipality's pupils")
    enr = tables["enrolments"]
    enr = enr[(enr["school_year"].astype("string") == es.params.school_year).to_numpy()]
    total = enr.groupby(enr["school_id"].astype("string"), observed=True).size()
    unit = after.groupby(after["school_id"].astype("string"), observed=True)["exposure"].sum() \
        if "exposure" in after else pd.Series(dtype=float)
    shares = (unit.reindex(schools).fillna(0) / total.reindex(schools)).fillna(0).clip(0, 1)
    year = int(es.params.school_year[:4])
    region_pilots = [s.id for s in es.params.region.pilot_schools
                     if s.pilot_start is not None and s.pilot_start.year <= year]
    region_total = float(total.reindex(region_pilots).fillna(0).sum())
    coordination = float(unit.sum()) / region_total if region_total > 0 else 0.0
    return float(shares.sum()), min(coordination, 1.0)


def _quantiles(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def cost_benefit(es: EstimateSet, costs: Costs, draws: int = 2000, seed: int = 0,
                 tables: Mapping[str, pd.DataFrame] | None = None,
                 mix: Mapping[str, float] | None = None) -> CostBenefit:
    """Pilot costs against the costs its estimated effects avoid, for the report year.

    `tables` (the validated data) gives the level mix of the avoided referrals and, in a
    municipality report, the share of each school's pupils; `mix` overrides the level mix
    (default without tables: every avoided trajectory priced as specialised care).
    """
    params = es.params
    alpha = params.analysis.alpha
    z = float(stats.norm.ppf(1 - alpha / 2))
    notes: list[str] = []

    ref_after = _after(es, REFERRALS)
    observed = int(ref_after["count"].sum())
    pupils = int(ref_after["exposure"].sum())
    trajectories = int(len(_after(es, DOUBLE_INTAKE))) if DOUBLE_INTAKE in es.data else 0

    mix_origin = "opgegeven verdeling"
    if mix is None:
        if tables is not None:
            mix = referral_mix(tables, es)
            mix_origin = "verdeling van de verwijzingen vóór de start"
        else:
            mix = {"specialised": 1.0, "jggz": 0.0, "residential": 0.0}
            mix_origin = "aanname"
            notes.append("Alle vermeden trajecten zijn geprijsd als specialistische zorg "
                         "(verdeling over zorgniveaus onbekend).")
    mix = {lv: float(mix.get(lv, 0.0)) for lv in HEAVY}
    total_mix = sum(mix.values())
    if total_mix <= 0:
        raise ValueError("mix: the shares of the heavy care levels must add up to more than 0")
    mix = {lv: v / total_mix for lv, v in mix.items()}

    # Pilot costs: known amounts, no sampling uncertainty.
    schools, coord_share = _attribution(es, ref_after, tables)
    core = (schools * costs.core_team_hours_per_week.value * costs.weeks_per_school_year.value
            * costs.hourly_rate.value)
    coordination = coord_share * costs.coordination_per_school_year.value
    pilot = core + coordination

    heavy_cost = sum(mix[lv] * getattr(costs.trajectory, lv).value for lv in HEAVY)
    saving = heavy_cost - (costs.trajectory.light.value if costs.light_replaces_avoided else 0.0)

    rr = _did(es, REFERRALS)
    dd = _did(es, DOUBLE_INTAKE)
    # The avoided numbers give the report year's counts away (observed = avoided / (1/RR - 1)):
    # below the disclosure threshold they are withheld, as the counts themselves would be.
    rule = params.disclosure
    if math.isnan(rr.point):
        withheld = ("het effect op de verwijzingen naar zwaardere zorg is niet geschat (te weinig "
                    "gegevens)")
    elif observed < rule.min_count:
        withheld = ("de pilotscholen hebben in het rapportjaar te weinig verwijzingen naar "
                    "zwaardere zorg om ervan af te leiden bedragen te publiceren")
    else:
        withheld = ""
    if withheld:
        rr = Ranged(math.nan, math.nan, math.nan)
    if trajectories < rule.min_count:
        dd = Ranged(math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    normal = rng.standard_normal((draws, 2))

    # Avoided referrals: counterfactual count observed / RR, minus what was observed.
    se_log = (math.log(rr.high) - math.log(rr.low)) / (2 * z) if rr.low > 0 else math.nan
    rr_draws = np.exp(math.log(rr.point) + se_log * normal[:, 0]) if rr.point > 0 else \
        np.full(draws, math.nan)
    avoided_ref = observed * (1 / rr.point - 1) if rr.point > 0 else math.nan
    avoided_ref_draws = observed * (1 / rr_draws - 1)

    # Avoided double intakes: percentage points times the report-year trajectories.
    if math.isnan(dd.point):
        avoided_di, avoided_di_draws = 0.0, np.zeros(draws)
        notes.append("Dubbele intakes zijn niet meegeteld: het effect is niet geschat of rust "
                     "op te weinig trajecten.")
    else:
        se_dd = (dd.high - dd.low) / (2 * z)
        avoided_di = -dd.point / 100 * trajectories
        avoided_di_draws = -(dd.point + se_dd * normal[:, 1]) / 100 * trajectories

    ref_sav_draws = avoided_ref_draws * saving
    int_sav_draws = avoided_di_draws * costs.intake.value
    avoided_draws = ref_sav_draws + int_sav_draws
    net_draws = avoided_draws - pilot

    def ranged(point: float, sample: np.ndarray) -> Ranged:
        if math.isnan(point) or np.isnan(sample).any():
            return Ranged(math.nan, math.nan, math.nan)
        return Ranged(point, *_quantiles(sample, alpha))

    avoided_ref_r = ranged(avoided_ref, avoided_ref_draws)
    ref_sav = avoided_ref * saving
    int_sav = avoided_di * costs.intake.value
    net = ref_sav + int_sav - pilot
    # Cost per avoided trajectory falls as avoided trajectories rise: its interval follows from
    # theirs, unbounded where no trajectory might be avoided at all.
    cost_per = Ranged(
        pilot / avoided_ref if avoided_ref > 0 else math.inf,
        pilot / avoided_ref_r.high if avoided_ref_r.high > 0 else math.inf,
        pilot / avoided_ref_r.low if avoided_ref_r.low > 0 else math.inf,
    ) if not math.isnan(avoided_ref) else Ranged(math.nan, math.nan, math.nan)

    if withheld:
        notes.append(f"De vermeden kosten zijn niet berekend: {withheld}.")

    return CostBenefit(
        region=params.region.id, school_year=params.school_year, example=costs.example,
        alpha=alpha, draws=draws, seed=seed, costs=costs, pilot_schools=schools,
        coordination_share=coord_share, pupils=pupils, observed_referrals=observed,
        trajectories=trajectories, rate_ratio=rr, double_intake_pp=dd, mix=mix,
        core_team_costs=core, coordination_costs=coordination, pilot_costs=pilot,
        saving_per_trajectory=saving,
        avoided_referrals=avoided_ref_r,
        avoided_double_intakes=ranged(avoided_di, avoided_di_draws),
        referral_savings=ranged(ref_sav, ref_sav_draws),
        intake_savings=ranged(int_sav, int_sav_draws),
        avoided_costs=ranged(ref_sav + int_sav, avoided_draws),
        net=ranged(net, net_draws),
        net_per_pupil=ranged(net / pupils if pupils else math.nan,
                             net_draws / pupils if pupils else np.full(draws, math.nan)),
        cost_per_avoided=cost_per,
        break_even=pilot / saving if saving > 0 else math.inf,
        mix_origin=mix_origin, disclosure=rule, withheld=withheld, notes=notes,
        duration_effect=_did(es, DURATION),
    )


#: Dutch names of the cost items, for the tables and the JSON records.
ITEM_NAMES = {
    "core_team_hours_per_week": "uren kernteam per school per week",
    "hourly_rate": "uurtarief",
    "weeks_per_school_year": "weken per schooljaar",
    "coordination_per_school_year": "coördinatie per schooljaar",
    "intake": "kosten van een intake",
    "trajectory.light": "traject lichte hulp",
    "trajectory.specialised": "traject specialistische zorg",
    "trajectory.jggz": "traject JGGZ",
    "trajectory.residential": "traject verblijf",
}


# --- records for JSON ---------------------------------------------------------------------------


def _json(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def cost_records(cb: CostBenefit) -> list[dict]:
    """JSON-ready records (results, then the tariffs used) for `estimates --format json` and the
    Excel export; counts of pupils and records are not included, only estimated figures."""
    base = {"region": cb.region, "school_year": cb.school_year, "example": cb.example}
    results = [
        ("pilot_costs", "Kosten pilot per schooljaar", Ranged(cb.pilot_costs), "euro"),
        ("saving_per_trajectory", "Besparing per vermeden traject",
         Ranged(cb.saving_per_trajectory), "euro"),
        ("avoided_referrals", "Vermeden trajecten zwaardere zorg", cb.avoided_referrals,
         "trajecten"),
        ("referral_savings", "Vermeden kosten zwaardere zorg", cb.referral_savings, "euro"),
        ("avoided_double_intakes", "Vermeden dubbele intakes", cb.avoided_double_intakes,
         "intakes"),
        ("intake_savings", "Vermeden kosten dubbele intakes", cb.intake_savings, "euro"),
        ("avoided_costs", "Vermeden kosten totaal", cb.avoided_costs, "euro"),
        ("net", "Saldo (vermeden kosten min kosten pilot)", cb.net, "euro"),
        ("net_per_pupil", "Saldo per leerling", cb.net_per_pupil, "euro per leerling"),
        ("cost_per_avoided", "Kosten pilot per vermeden traject zwaardere zorg",
         cb.cost_per_avoided, "euro per traject"),
        ("break_even", "Omslagpunt (vermeden trajecten)", Ranged(cb.break_even), "trajecten"),
    ]
    out = [{**base, "kind": "result", "item": key, "label": label, "value": _json(r.point),
            "ci_low": _json(r.low), "ci_high": _json(r.high), "unit": unit, "source": None}
           for key, label, r, unit in results]
    out += [{**base, "kind": "input", "item": key, "label": ITEM_NAMES[key],
             "value": item.value, "ci_low": None, "ci_high": None, "unit": item.unit,
             "source": item.source} for key, item in cb.costs.items().items()]
    return out
