"""Monte Carlo checks of the report's estimators on synthetic data with known planted effects.

    python benchmarks/simulation.py --reps 200 --null-reps 100 --few-reps 400 [--jobs 2]
                                    [--region lekstroom --school-year 2014-2015]

1. Coverage. For `reps` synthetic data sets (seeds 1..reps, default effects) every estimate whose
   true value on its own scale follows from the generator is compared with that value: share of
   95% intervals that cover it (with a 95% Clopper-Pearson Monte Carlo interval for that share),
   mean estimate, bias and mean interval width. The project's goal: difference-in-differences
   intervals cover 93-97%.
2. False positives. For `null_reps` data sets with every planted pilot effect set to none, the
   share of data sets in which any primary indicator is significant after the multiple-testing
   correction (column `significant`, difference-in-differences), and per indicator the share
   significant before and after the correction.

The truths (derived from `evaluation/data/synthetic.py`, see `known_truths`):

* care_reports_per_100, DiD (rate ratio): `care_report_rate_ratio`; the pilot multiplies every
  pupil's care-report rate from the school's start on.
* specialised_referrals_per_100, DiD (rate ratio): min(0.30 * r, 1) / 0.30 with
  r = `specialised_referral_rate_ratio` (= r for r <= 1/0.30). The pilot multiplies the chance that
  a trajectory is referred on (SCHOOL_REFERRAL_SHARE = 0.30); the trajectory rate itself has no
  pilot effect, every referral goes to a heavy level (specialised, jggz or residential, all
  counted) and falls in the school year of its trajectory's signal, whose enrolment decides both
  school and pilot status.
* double_intake_share, school_informed_share, parents_first_meeting_share, DiD and event study
  (percentage points): 100 * (pilot - baseline) probability; constant probabilities, missing
  values completely at random.
* days_signal_to_help, event study (days): SIGNAL_TO_HELP_DAYS * (signal_to_help_ratio - 1).
* days_to_consent, event study (days): (PARENT_CONTACT_DAYS + CONSENT_DAYS) * (consent_days_ratio
  - 1). The event study exists only when no record is censored; other data sets are skipped.
* care_reports_per_100 and specialised_referrals_per_100, event study (difference per 100 pupils):
  no single truth. Computed per data set ("conditional" truth) from the generator's school effects
  (`synthetic.truth`) and the enrolled pupils: the expected counterfactual rate of each treated
  school year times (ratio - 1), averaged as the "simple" aggregation of `att_gt` does. Pupil
  frailty is integrated out (mean 1).

3. Few treated schools (`--few-reps`). A panel of ten schools without any effect, one or two of
   them pilot schools, a school-year shock common to each school's pupils and schools that differ
   in noise (`few_school_panel`): how often each inference rejects the true null at 5%: CRV1,
   the wild cluster bootstrap, the cluster jackknife (CRV3) and randomisation inference. What
   the report's policy (`evaluation.analysis.methods`) rests on: with fewer than five pilot schools
   only the randomisation test keeps its size.

The difference-in-differences of durations is in days, the change in the Kaplan-Meier median;
its truth is `synthetic.median_days_truth` (the planted scaling applied to the generator's own
waiting-time distributions, by a seeded simulation of two million waits).

Not covered: hazard ratios (durations are gamma with a scaled mean, which is not a proportional
hazards model, so no exact hazard ratio exists) and satisfaction scales (a latent shift cut into
five categories has no exact value on the score scale). Before/after and the interrupted time
series are not checked: the secular trend makes before/after biased on purpose.

Truths involving waiting times and school-route referrals are exact only for report years before
the last synthetic school year: help that starts after the extraction date is not in the data.

Results are printed and written to `benchmarks/results/simulation.csv` (summaries) and
`benchmarks/results/simulation_replicates.csv` (one row per data set and estimate).
"""

# ruff: noqa: E402  (the BLAS setting below must precede the numpy import)
from __future__ import annotations

import os

if __name__ == "__main__":
    # Before numpy loads: one BLAS thread per process. The models are many small least-squares
    # fits, for which multithreaded OpenBLAS is slower, and the processes already use the cores.
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "1")

import argparse
import multiprocessing
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from evaluation.analysis import methods
from evaluation.analysis.estimates import EstimateSet, estimate_all
from evaluation.data import synthetic
from evaluation.params import Params, Region, Synthetic, load_params, load_regions, load_synthetic
from evaluation.registry import PRIMARY
from evaluation.report.provenance import git_commit

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DID = methods.DID
EVENT_STUDY = methods.EVENT_STUDY
SHORT = {DID: "DiD", EVENT_STUDY: "event study", methods.BEFORE_AFTER: "before/after",
         methods.ITS: "ITS"}
LEVEL = 0.95  # of the Monte Carlo interval of a coverage or rate

#: Indicators with a known truth for at least one of DiD / event study.
COVERAGE_INDICATORS = (
    "care_reports_per_100",
    "specialised_referrals_per_100",
    "double_intake_share",
    "school_informed_share",
    "parents_first_meeting_share",
    "days_signal_to_help",
    "days_to_consent",
)
PROPORTIONS = {
    "double_intake_share": ("double_intake_pilot", "double_intake_baseline"),
    "school_informed_share": ("school_informed_pilot", "school_informed_baseline"),
    "parents_first_meeting_share": ("parents_first_meeting_pilot",
                                    "parents_first_meeting_baseline"),
}
#: Rate indicators: (base rate per 100 attribute of Synthetic, extra factor on it, school effect
#: in `synthetic.truth`, key of INDICATION_RATE_RATIO).
RATES = {
    "care_reports_per_100": ("care_reports_per_100", 1.0, "care_report_school_effect",
                             "care_reports"),
    "specialised_referrals_per_100": ("trajectories_per_100", synthetic.SCHOOL_REFERRAL_SHARE,
                                      "trajectory_school_effect", "trajectories"),
}
#: Pilot effects and their "no effect" value; the proportions' pilot values take the baseline.
NULL_RATIOS = ("care_report_rate_ratio", "signal_to_help_ratio", "consent_days_ratio",
               "specialised_referral_rate_ratio")


# --- truths -----------------------------------------------------------------------------------


def referral_ratio(config: Synthetic) -> float:
    """True DiD rate ratio of school-route referrals to heavier care."""
    share = synthetic.SCHOOL_REFERRAL_SHARE
    return min(share * config.effects.specialised_referral_rate_ratio, 1.0) / share


def rate_ratio(indicator: str, config: Synthetic) -> float:
    if indicator == "care_reports_per_100":
        return config.effects.care_report_rate_ratio
    return referral_ratio(config)


def known_truths(config: Synthetic) -> dict[tuple[str, str], float]:
    """(indicator, comparison) -> true value on the comparison's scale, from the params alone."""
    e = config.effects
    out = {(ind, DID): rate_ratio(ind, config) for ind in RATES}
    for ind, (pilot, base) in PROPORTIONS.items():
        diff = 100 * (getattr(e, pilot) - getattr(e, base))
        out[(ind, DID)] = diff
        out[(ind, EVENT_STUDY)] = diff
    for ind, median in synthetic.median_days_truth(config).items():
        out[(ind, DID)] = median["change"]
    out[("days_signal_to_help", EVENT_STUDY)] = (
        synthetic.SIGNAL_TO_HELP_DAYS * (e.signal_to_help_ratio - 1))
    out[("days_to_consent", EVENT_STUDY)] = (
        (synthetic.PARENT_CONTACT_DAYS + synthetic.CONSENT_DAYS) * (e.consent_days_ratio - 1))
    return out


def rate_event_study_truth(indicator: str, tables: dict[str, pd.DataFrame], es: EstimateSet,
                           regions: list[Region], config: Synthetic) -> float:
    """The event study's target (per 100 pupils) for a rate in this data set.

    ATT(g, t) = mean over the schools of cohort g of (ratio - 1) * expected counterfactual rate in
    year t, that rate from the generator's own formula with pupil frailty at its mean 1; then
    averaged over post-treatment cells with cohort-size weights, as `att_gt`'s "simple" summary.
    """
    per_100_attr, factor, effect_key, ratio_key = RATES[indicator]
    per_100 = getattr(config, per_100_attr) * factor
    ratio = synthetic.INDICATION_RATE_RATIO[ratio_key]
    school_effect = pd.Series({s["school_id"]: s[effect_key]
                               for s in synthetic.truth(regions, config)["schools"]})
    design = es.design
    e = tables["enrolments"]
    e = e[e["school_id"].isin(design["school_id"]) & e["school_year"].isin(es.years)]
    year = e["school_year"].str.slice(0, 4).astype("int64").to_numpy()
    indication = e["indication"].to_numpy(dtype=bool)
    y0 = int(config.first_school_year[:4])
    lam = (per_100 / 100 * school_effect.reindex(e["school_id"].astype(str)).to_numpy()
           * (1 + config.secular_trend) ** (year - y0)
           * synthetic._indication_ratio(indication, ratio, config.indication_share))
    cells = (pd.DataFrame({"school_id": e["school_id"].astype(str).to_numpy(), "year": year,
                           "lam": lam})
             .groupby(["school_id", "year"]).agg(lam=("lam", "sum"), pupils=("lam", "size"))
             .reset_index())
    cells["rate0"] = 100 * cells["lam"] / cells["pupils"]
    start = design.assign(cohort=design["pilot_start"].dt.year.where(design["group"] == "pilot"))
    cohort = start.set_index(design["school_id"].astype(str))["cohort"].fillna(0).astype("int64")
    cohort[cohort > cells["year"].max()] = 0
    cells["cohort"] = cohort.reindex(cells["school_id"]).to_numpy()
    post = cells[(cells["cohort"] > 0) & (cells["year"] >= cells["cohort"])]
    att = (rate_ratio(indicator, config) - 1) * post.groupby(["cohort", "year"])["rate0"].mean()
    size = cohort[cohort > 0].value_counts()
    weight = size.reindex(att.index.get_level_values("cohort")).to_numpy(dtype=float)
    return float(np.sum(weight * att.to_numpy()) / weight.sum())


# --- one data set -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    seed: int
    overrides: tuple[str, ...]
    region: str
    school_year: str
    indicators: tuple[str, ...]
    rate_truths: bool  # compute the conditional event-study truths of rates


@lru_cache(maxsize=1)
def _regions() -> list[Region]:
    return load_regions()


@lru_cache(maxsize=4)
def _params(region: str, school_year: str) -> Params:
    return load_params(region, school_year)


def replicate(task: Task) -> pd.DataFrame:
    """Generate one data set and estimate; one row per (indicator, comparison), with the truth
    where it is known (DiD and event study only).

    A failure is returned as one row with `error` set, so that one bad seed does not stop a run.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            config = load_synthetic([*task.overrides, f"synthetic.seed={task.seed}"])
            regions = _regions()
            tables = synthetic.generate(regions, config)
            es = estimate_all(tables, _params(task.region, task.school_year),
                              indicators=list(task.indicators))
            t = es.table[["indicator", "comparison", "unit", "primary", "estimate", "ci_low", "ci_high",
                   "p_value", "p_value_adjusted", "significant"]].reset_index(drop=True)
            truths = known_truths(config)
            t["truth"] = [truths.get((i, c), np.nan)
                          for i, c in zip(t["indicator"], t["comparison"], strict=True)]
            t["truth_kind"] = np.where(t["truth"].notna(), "exact", "")
            if task.rate_truths:
                for ind in RATES:
                    sel = (t["indicator"] == ind) & (t["comparison"] == EVENT_STUDY)
                    if sel.any():
                        t.loc[sel, "truth"] = rate_event_study_truth(ind, tables, es, regions,
                                                                     config)
                        t.loc[sel, "truth_kind"] = "conditional"
            t["error"] = ""
    except Exception as exc:  # recorded and reported; the run goes on
        t = pd.DataFrame({"error": [f"{type(exc).__name__}: {exc}"]})
    t.insert(0, "seed", task.seed)
    return t


BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """One BLAS thread in processes started inside the block (unless the caller chose)."""
    saved = {v: os.environ.get(v) for v in BLAS_THREADS}
    for v in BLAS_THREADS:
        os.environ.setdefault(v, "1")
    try:
        yield
    finally:
        for v, value in saved.items():
            if value is None:
                os.environ.pop(v, None)
            else:
                os.environ[v] = value


def run(tasks: Sequence[Task], jobs: int | None) -> pd.DataFrame:
    """Every task, in parallel over `jobs` processes (1: in this process).

    Workers are spawned, not forked, so that they load numpy with one BLAS thread each (with
    several threads per process the small fits run several times slower). A spawned worker
    imports this module by name: run as a script that is automatic; an importer must have
    `benchmarks/` on sys.path (as tests/test_simulation.py does).
    """
    jobs = jobs or os.cpu_count() or 1
    if jobs == 1 or len(tasks) == 1:
        frames = [replicate(t) for t in tasks]
    else:
        spawn = multiprocessing.get_context("spawn")
        with _one_blas_thread(), ProcessPoolExecutor(max_workers=jobs, mp_context=spawn) as pool:
            frames = list(pool.map(replicate, tasks, chunksize=1))
    out = pd.concat(frames, ignore_index=True)
    if "error" not in out:
        out["error"] = ""
    out["error"] = out["error"].fillna("")
    return out


def _share_interval(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (np.nan, np.nan)
    low, high = proportion_confint(k, n, alpha=1 - LEVEL, method="beta")
    return float(low), float(high)


# --- 1. coverage --------------------------------------------------------------------------------


@dataclass
class CoverageResult:
    summary: pd.DataFrame  # one row per (indicator, comparison) with a truth
    replicates: pd.DataFrame  # one row per data set and estimate
    failed: list[str]  # "seed: error" of data sets that could not be analysed
    seconds: float


def coverage(reps: int, jobs: int | None = None, region: str = "lekstroom",
             school_year: str = "2014-2015", indicators: Iterable[str] = COVERAGE_INDICATORS,
             first_seed: int = 1, overrides: Sequence[str] = (),
             rate_truths: bool = True) -> CoverageResult:
    """Coverage of the 95% intervals of DiD and event study where the truth is known."""
    t0 = time.perf_counter()
    tasks = [Task(seed, tuple(overrides), region, school_year, tuple(indicators), rate_truths)
             for seed in range(first_seed, first_seed + reps)]
    reps_table = run(tasks, jobs)
    failed = _failures(reps_table)
    ok = reps_table[(reps_table["error"] == "") & reps_table["truth"].notna()].copy()
    ok["covered"] = (ok["ci_low"] <= ok["truth"]) & (ok["truth"] <= ok["ci_high"])
    ok["width"] = ok["ci_high"] - ok["ci_low"]
    ok["log_error"] = np.where(ok["unit"].str.contains("ratio"),
                               np.log(ok["estimate"].clip(lower=1e-300))
                               - np.log(ok["truth"].clip(lower=1e-300)), np.nan)
    rows = []
    for (ind, comp), g in ok.groupby(["indicator", "comparison"], sort=False):
        g = g[np.isfinite(g["ci_low"]) & np.isfinite(g["ci_high"])]
        k, n = int(g["covered"].sum()), len(g)
        low, high = _share_interval(k, n)
        rows.append({
            "indicator": ind, "comparison": comp, "unit": g["unit"].iloc[0],
            "truth_kind": g["truth_kind"].iloc[0], "reps": n,
            "truth": g["truth"].mean(), "coverage": k / n if n else np.nan,
            "coverage_low": low, "coverage_high": high,
            "miss_below": int((g["ci_high"] < g["truth"]).sum()),
            "miss_above": int((g["ci_low"] > g["truth"]).sum()),
            "mean_estimate": g["estimate"].mean(), "bias": (g["estimate"] - g["truth"]).mean(),
            "bias_log": g["log_error"].mean(), "sd_estimate": g["estimate"].std(),
            "mean_ci_width": g["width"].mean(),
        })
    summary = pd.DataFrame(rows)
    return CoverageResult(summary, reps_table, failed, time.perf_counter() - t0)


# --- 2. false positives -------------------------------------------------------------------------


def null_overrides(base: Synthetic | None = None) -> tuple[str, ...]:
    """Overrides that remove every planted pilot effect (indication-free durations stay: that
    is no pilot effect but a difference between trajectories)."""
    e = (base or load_synthetic()).effects
    out = [f"synthetic.effects.{name}=1.0" for name in NULL_RATIOS]
    for pilot, baseline in PROPORTIONS.values():
        out.append(f"synthetic.effects.{pilot}={getattr(e, baseline)!r}")
    out.append("synthetic.effects.satisfaction_shift=0.0")
    return tuple(out)


@dataclass
class NullResult:
    reps: int  # data sets analysed
    any_significant: float  # share of data sets with any primary DiD significant (adjusted)
    any_interval: tuple[float, float]  # 95% Monte Carlo interval of that share
    per_indicator: pd.DataFrame  # DiD: share significant unadjusted / adjusted, per indicator
    per_comparison: pd.DataFrame  # share with any primary significant (adjusted), per comparison
    replicates: pd.DataFrame
    failed: list[str]
    seconds: float
    alpha: float


def false_positives(reps: int, jobs: int | None = None, region: str = "lekstroom",
                    school_year: str = "2014-2015", indicators: Iterable[str] = PRIMARY,
                    first_seed: int = 1) -> NullResult:
    """Significance under no effect at all, over `reps` data sets.

    The multiple-testing family is the primary indicators among `indicators`: pass all of PRIMARY
    (the default) for the report's family-wise error rate.
    """
    t0 = time.perf_counter()
    alpha = _params(region, school_year).analysis.alpha
    tasks = [Task(seed, null_overrides(), region, school_year, tuple(indicators), False)
             for seed in range(first_seed, first_seed + reps)]
    reps_table = run(tasks, jobs)
    failed = _failures(reps_table)
    ok = reps_table[(reps_table["error"] == "") & reps_table["primary"].fillna(False).astype(bool)]
    ok = ok.assign(significant=ok["significant"].astype(bool),
                   unadjusted=ok["p_value"] < alpha)
    n = int(ok["seed"].nunique())

    per_comp = []
    for comp, g in ok.groupby("comparison", sort=False):
        k = int(g.groupby("seed")["significant"].any().sum())
        m = int(g["seed"].nunique())
        per_comp.append({"comparison": comp, "reps": m, "any_significant": k / m,
                         "any_low": _share_interval(k, m)[0],
                         "any_high": _share_interval(k, m)[1]})
    per_comparison = pd.DataFrame(per_comp)

    did = ok[ok["comparison"] == DID]
    k_any = int(did.groupby("seed")["significant"].any().sum())
    m_any = int(did["seed"].nunique())
    rows = []
    for ind, g in did.groupby("indicator", sort=False):
        m = len(g)
        ku, ka = int(g["unadjusted"].sum()), int(g["significant"].sum())
        rows.append({"indicator": ind, "comparison": DID, "reps": m,
                     "significant_unadjusted": ku / m,
                     "unadjusted_low": _share_interval(ku, m)[0],
                     "unadjusted_high": _share_interval(ku, m)[1],
                     "significant_adjusted": ka / m,
                     "adjusted_low": _share_interval(ka, m)[0],
                     "adjusted_high": _share_interval(ka, m)[1]})
    return NullResult(
        reps=n, any_significant=k_any / m_any if m_any else np.nan,
        any_interval=_share_interval(k_any, m_any), per_indicator=pd.DataFrame(rows),
        per_comparison=per_comparison, replicates=reps_table, failed=failed,
        seconds=time.perf_counter() - t0, alpha=alpha)


# --- 3. few treated schools ---------------------------------------------------------------------


FEW_METHODS = ("cluster_robust", "wild_bootstrap", "cluster_jackknife", "randomisation")


def few_school_panel(rng: np.random.Generator, n_schools: int, treated: int, pupils: int = 20
                     ) -> pd.DataFrame:
    """Four school years, the last two after the start at the first `treated` schools, and no
    effect: a school effect, a common trend, a shock per school and year shared by its pupils and
    schools that differ in noise. The design columns are those of `comparisons.with_design`."""
    school = np.repeat(np.arange(n_schools), 4 * pupils)
    year = np.tile(np.repeat(np.arange(4), pupils), n_schools)
    shock = rng.normal(0, 0.6, (n_schools, 4))
    noise = rng.uniform(0.5, 2.0, n_schools)
    y = (rng.normal(0, 1, n_schools)[school] + 0.2 * year + shock[school, year]
         + rng.normal(0, 1, len(school)) * noise[school])
    pilot = school < treated
    names = np.array([f"S{s:02d}" for s in range(n_schools)])
    years = np.array([f"{2014 + v}-{2015 + v}" for v in range(4)])
    return pd.DataFrame({
        "school_id": names[school], "school_year": years[year], "year": 2014 + year, "y": y,
        "group": np.where(pilot, "pilot", "comparison"),
        "pilot_start": pd.to_datetime(np.where(pilot, "2016-08-01", None)),
        "treated": (pilot & (year >= 2)).astype("int64"),
    })


def few_school_p_values(d: pd.DataFrame, draws: int = 999, seed: int = 0) -> dict[str, float]:
    """The p-value of each of `FEW_METHODS` for the difference-in-differences of `d`."""
    from evaluation.analysis.fixed_effects import ols_point, ols_twfe
    from evaluation.analysis.randomisation import randomisation_inference

    y, treated = d["y"].to_numpy(), d["treated"].to_numpy()
    school, year = d["school_id"].to_numpy(), d["school_year"].to_numpy()
    out = {m: ols_twfe(y, treated, school, year, inference=m, B=draws, seed=seed)[3]
           for m in FEW_METHODS[:3]}
    res = randomisation_inference(
        d, lambda x: ols_point(x["y"].to_numpy(), x["treated"].to_numpy(),
                               x["school_id"].to_numpy(), x["school_year"].to_numpy()),
        d["school_year"].max(), baseline_years=2, max_assignments=draws, seed=seed)
    out["randomisation"] = res["p_value"]
    return out


def few_school_size(reps: int, n_schools: int = 10, treated: Sequence[int] = (1, 2),
                    alpha: float = 0.05, seed: int = 20240901) -> pd.DataFrame:
    """Share of `reps` null panels in which each method rejects at `alpha`, per number of treated
    schools, with its Monte Carlo interval."""
    rows = []
    for k in treated:
        rng = np.random.default_rng([seed, k])
        rejected = {m: 0 for m in FEW_METHODS}
        for _ in range(reps):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = few_school_p_values(few_school_panel(rng, n_schools, k))
            for m in FEW_METHODS:
                rejected[m] += bool(np.isfinite(p[m]) and p[m] < alpha)
        for m in FEW_METHODS:
            low, high = _share_interval(rejected[m], reps)
            rows.append({"indicator": "(null panel)", "comparison": DID, "method": m,
                         "schools": n_schools, "treated": k, "reps": reps,
                         "rejection": rejected[m] / reps, "rejection_low": low,
                         "rejection_high": high})
    return pd.DataFrame(rows)


def format_few(table: pd.DataFrame) -> str:
    lines = [f"{'treated':>7} {'method':18} {'rejects':>8} {'MC 95% interval':>16}"]
    for r in table.itertuples(index=False):
        lines.append(f"{r.treated:7d} {r.method:18} {_pct(r.rejection):>8} "
                     f"{_pct(r.rejection_low):>7}-{_pct(r.rejection_high).strip():<8}")
    return "\n".join(lines)


def _failures(table: pd.DataFrame) -> list[str]:
    bad = table[table["error"] != ""].drop_duplicates("seed")
    return [f"{s}: {e}" for s, e in zip(bad["seed"], bad["error"], strict=True)]


# --- output -------------------------------------------------------------------------------------


def _pct(x: float) -> str:
    return "   n/a" if not np.isfinite(x) else f"{100 * x:5.1f}%"


def format_coverage(res: CoverageResult) -> str:
    lines = [f"{'indicator':31} {'comparison':11} {'unit':18} {'n':>4} {'truth':>8} "
             f"{'coverage':>8} {'MC 95% interval':>16} {'mean est':>9} {'bias':>8} "
             f"{'CI width':>9}"]
    for r in res.summary.itertuples(index=False):
        truth = f"{r.truth:8.3f}" + ("*" if r.truth_kind == "conditional" else " ")
        lines.append(
            f"{r.indicator:31} {SHORT.get(r.comparison, r.comparison):11} {r.unit:18} {r.reps:4d} {truth}"
            f"{_pct(r.coverage):>8} {_pct(r.coverage_low):>7}-{_pct(r.coverage_high).strip():<8}"
            f" {r.mean_estimate:9.3f} {r.bias:8.3f} {r.mean_ci_width:9.3f}")
    lines.append("* conditional truth: computed per data set (mean shown); see the module docstring")
    return "\n".join(lines)


def format_null(res: NullResult) -> str:
    lo, hi = res.any_interval
    lines = [f"data sets with any primary indicator significant (DiD, {res.alpha:g}, adjusted): "
             f"{_pct(res.any_significant).strip()} (MC 95% interval {_pct(lo).strip()}-"
             f"{_pct(hi).strip()}, n = {res.reps})",
             f"{'indicator':31} {'unadjusted':>10} {'MC 95% interval':>16} {'adjusted':>9} "
             f"{'MC 95% interval':>16}"]
    for r in res.per_indicator.itertuples(index=False):
        lines.append(f"{r.indicator:31} {_pct(r.significant_unadjusted):>10} "
                     f"{_pct(r.unadjusted_low):>7}-{_pct(r.unadjusted_high).strip():<8} "
                     f"{_pct(r.significant_adjusted):>9} "
                     f"{_pct(r.adjusted_low):>7}-{_pct(r.adjusted_high).strip():<8}")
    lines.append("any primary significant (adjusted), per comparison (for reference: before/after "
                 "and the time series also pick up the secular trend):")
    for r in res.per_comparison.itertuples(index=False):
        lines.append(f"  {r.comparison:35} {_pct(r.any_significant)} "
                     f"({_pct(r.any_low).strip()}-{_pct(r.any_high).strip()})")
    return "\n".join(lines)


def write_results(cov: CoverageResult | None, null: NullResult | None, out_dir: Path,
                  few: pd.DataFrame | None = None) -> list[Path]:
    """Summaries to simulation.csv (column `check`), every replicate to simulation_replicates.csv."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summaries, replicates = [], []
    if few is not None:
        summaries.append(few.assign(check="few_treated_size"))
    if cov is not None:
        summaries.append(cov.summary.assign(check="coverage"))
        replicates.append(cov.replicates.assign(check="coverage"))
    if null is not None:
        summaries.append(null.per_indicator.assign(check="false_positive"))
        summaries.append(null.per_comparison.assign(check="false_positive_any",
                                                    indicator="(any primary)"))
        replicates.append(null.replicates.assign(check="false_positive"))
    written = []
    for frame, path in zip((summaries, replicates), (out_dir / "simulation.csv",
                                                     out_dir / "simulation_replicates.csv"),
                           strict=True):
        if not frame:
            continue
        table = pd.concat(frame, ignore_index=True)
        table.insert(0, "check", table.pop("check"))
        table.to_csv(path, index=False)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200, help="data sets for coverage (default 200)")
    ap.add_argument("--null-reps", type=int, default=100,
                    help="data sets without effects for the false-positive rate (default 100)")
    ap.add_argument("--few-reps", type=int, default=400,
                    help="null panels of ten schools per number of treated schools (default 400)")
    ap.add_argument("--jobs", type=int, default=None, help="processes (default: all cores)")
    ap.add_argument("--region", default="lekstroom")
    ap.add_argument("--school-year", default="2014-2015")
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR, help="folder for the CSV files")
    args = ap.parse_args(argv)
    jobs = args.jobs or os.cpu_count() or 1
    config = load_synthetic()
    print(f"region {args.region}, school year {args.school_year}, {jobs} processes, "
          f"seeds from {args.first_seed}, code {git_commit()}")
    if args.school_year == config.last_school_year:
        print("note: the report year is the last synthetic year; truths for waiting times and "
              "referrals are approximate there (help starting after extraction is left out)")
    t0 = time.perf_counter()
    cov = null = None
    if args.reps > 0:
        cov = coverage(args.reps, jobs, args.region, args.school_year,
                       first_seed=args.first_seed)
        print(f"\n1. Coverage of 95% intervals, {args.reps} data sets (goal for DiD: 93-97%)"
              f" - {cov.seconds:.0f} s")
        print(format_coverage(cov))
        for f in cov.failed:
            print(f"  failed seed {f}")
    if args.null_reps > 0:
        null = false_positives(args.null_reps, jobs, args.region, args.school_year,
                               first_seed=args.first_seed)
        print(f"\n2. False positives without any planted effect, {args.null_reps} data sets "
              f"- {null.seconds:.0f} s")
        print(format_null(null))
        for f in null.failed:
            print(f"  failed seed {f}")
    few = None
    if args.few_reps > 0:
        t1 = time.perf_counter()
        few = few_school_size(args.few_reps)
        print(f"\n3. Rejections of a true null with one or two pilot schools among ten, "
              f"{args.few_reps} panels each (nominal 5%) - {time.perf_counter() - t1:.0f} s")
        print(format_few(few))
    if cov is not None or null is not None or few is not None:
        paths = write_results(cov, null, args.out, few)
        print("\nwritten: " + ", ".join(str(p) for p in paths))
    print(f"total wall time {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
