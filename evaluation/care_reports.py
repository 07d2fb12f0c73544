"""Theme: care reports (zorgmeldingen) from schools, before and after the pilot start.

The pilot claims 80% fewer care reports from pilot schools. Three views, from simple to robust:
per school before/after (score intervals for two Poisson rates), pooled before/after (Poisson GLM
with school fixed effects), and difference-in-differences against comparison schools (Poisson GLM
with school and school-year fixed effects), both with standard errors clustered by school. Only
the last separates the pilot from the trend that all schools share.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from evaluation.design import analysis_years, school_design
from evaluation.indicators import care_reports_per_month, care_reports_per_school_year
from evaluation.params import DEFAULT_PARAMS_DIR, Params
from evaluation.statistics import Estimate, poisson_effect, rate_ratio_per_unit

INDICATOR = "care_reports_per_100"


@dataclass
class CareReportAnalysis:
    design: pd.DataFrame        # schools with group and pilot start
    yearly: pd.DataFrame        # school x school year: pupils, reports, rate, group, post
    per_school: pd.DataFrame    # pilot school: before/after counts, rate ratio and interval
    group_years: pd.DataFrame   # group x school year: pupils, reports, rate per 100
    monthly: pd.DataFrame       # group x month: pupils, reports, rate per 100 pupils per year
    pooled: Estimate
    did: Estimate
    params: Params

    @property
    def estimates(self) -> list[Estimate]:
        return [self.pooled, self.did]


def analyse(tables: dict[str, pd.DataFrame], params: Params,
            params_dir: Path = DEFAULT_PARAMS_DIR) -> CareReportAnalysis:
    """Compute every care-report figure of the report for one region and school year."""
    design = school_design(params, params_dir)
    years = analysis_years(params, design)
    report_year = params.school_year
    alpha = params.analysis.alpha

    yearly = care_reports_per_school_year(tables).merge(design, on="school_id", how="inner")
    yearly = yearly[yearly["school_year"].isin(years)].copy()
    start_year = yearly["pilot_start"].dt.year
    year = yearly["school_year"].str.slice(0, 4).astype(int)
    yearly["treated"] = (yearly["group"] == "pilot") & (year >= start_year)
    # Before: the baseline years before each school's own start; after: the report year.
    before = (year < start_year) & (year >= start_year - params.analysis.baseline_years)
    after = yearly["school_year"] == report_year
    yearly["post"] = pd.NA
    yearly.loc[before.fillna(False), "post"] = False
    yearly.loc[after & (yearly["group"] == "pilot"), "post"] = True
    yearly = yearly.rename(columns={"reports": "count"}).assign(exposure=lambda d: d["pupils"])

    ba = yearly[(yearly["group"] == "pilot") & yearly["post"].notna()].copy()
    ba["post"] = ba["post"].astype(bool)
    per_school = rate_ratio_per_unit(ba, "school_id", alpha).merge(
        design[["school_id", "school_name", "cohort"]], on="school_id")

    rr, low, high, p = poisson_effect(ba.assign(post=ba["post"].astype(int)), "post",
                                      ["school_id"], "school_id", alpha)
    pooled = Estimate(INDICATOR, "voor/na pilotscholen", "Poisson GLM, schoolvaste effecten, "
                      "clustergecorrigeerde standaardfouten", "rate ratio", rr, low, high, p,
                      n=int(ba["count"].sum()), n_clusters=int(ba["school_id"].nunique()))

    did_panel = yearly.assign(treated=yearly["treated"].astype(int))
    rr, low, high, p = poisson_effect(did_panel, "treated", ["school_id", "school_year"],
                                      "school_id", alpha)
    did = Estimate(INDICATOR, "verschil-in-verschillen t.o.v. vergelijkingsscholen",
                   "Poisson GLM, school- en schooljaarvaste effecten, clustergecorrigeerde "
                   "standaardfouten", "rate ratio", rr, low, high, p,
                   n=int(did_panel["count"].sum()), n_clusters=int(did_panel["school_id"].nunique()))

    group_years = (yearly.groupby(["group", "school_year"], observed=True)[["pupils", "count"]]
                   .sum().reset_index())
    group_years["rate_per_100"] = 100 * group_years["count"] / group_years["pupils"]

    monthly = care_reports_per_month(tables).merge(design[["school_id", "group"]], on="school_id")
    monthly = monthly[monthly["school_year"].isin(years)]
    monthly = (monthly.groupby(["group", "month"], observed=True)[["pupils", "reports"]].sum()
               .reset_index())
    # Per 100 pupils per year, so that months compare with the yearly rate.
    monthly["rate_per_100"] = 1200 * monthly["reports"] / monthly["pupils"]

    return CareReportAnalysis(design, yearly, per_school, group_years, monthly, pooled, did, params)


# --- presentation: what the report shows, after disclosure control -----------------------------

def _change(rr: float) -> str:
    """A rate ratio as a Dutch change: 0.2 -> '80,0% minder'."""
    from evaluation import formatting

    pct = formatting.percent(abs(1 - rr))
    return f"{pct} minder" if rr < 1 else f"{pct} meer"


def summary_markdown(a: CareReportAnalysis) -> str:
    """Key findings in plain Dutch; every number computed from `a`."""
    from evaluation import formatting as f
    from evaluation.disclosure import round_to_base

    rule = a.params.disclosure
    gy = a.group_years
    pilot = gy[gy["group"] == "pilot"]
    base = a.yearly[(a.yearly["group"] == "pilot") & (a.yearly["post"] == False)]  # noqa: E712
    before_rate = 100 * base["count"].sum() / base["pupils"].sum()
    now = pilot[pilot["school_year"] == a.params.school_year]
    now_rate = float(100 * now["count"].sum() / now["pupils"].sum())
    n_pilot = int((a.design["group"] == "pilot").sum())
    n_comp = int((a.design["group"] == "comparison").sum())
    pupils_now = int(round_to_base(now["pupils"], rule.rounding_base).sum())
    level = int(100 * (1 - a.params.analysis.alpha))
    did, pooled = a.did, a.pooled
    sig = "statistisch significant" if did.p_value < a.params.analysis.alpha else \
        "statistisch niet significant"
    return (
        f"In schooljaar {a.params.school_year} werkten **{n_pilot} scholen** met een kernteam, "
        f"met samen ongeveer {f.integer(pupils_now)} leerlingen. Zij worden vergeleken met "
        f"**{n_comp} vergelijkingsscholen** zonder pilot.\n\n"
        f"Op de pilotscholen daalde het aantal zorgmeldingen van "
        f"**{f.number(before_rate)} per 100 leerlingen** per schooljaar vóór de start naar "
        f"**{f.number(now_rate)} per 100 leerlingen** in {a.params.school_year} "
        f"(voor/na: {_change(pooled.estimate)}, {level}%-betrouwbaarheidsinterval "
        f"{f.interval(1 - pooled.ci_high, 1 - pooled.ci_low, 1, pct=True)} minder).\n\n"
        f"Gecorrigeerd voor de ontwikkeling op de vergelijkingsscholen (verschil-in-verschillen) "
        f"is dat **{_change(did.estimate)}** zorgmeldingen "
        f"({level}%-betrouwbaarheidsinterval {f.interval(1 - did.ci_high, 1 - did.ci_low, 1, pct=True)} "
        f"minder; p {f.p_value(did.p_value) if did.p_value < 0.001 else '= ' + f.p_value(did.p_value)}); "
        f"dit verschil is {sig}."
    )


def school_table(a: CareReportAnalysis) -> pd.DataFrame:
    """Per pilot school: counts and rates before and after, with the rate ratio; publishable."""
    from evaluation import formatting as f
    from evaluation.disclosure import protect_counts

    rule = a.params.disclosure
    t = a.per_school.copy()
    t["rate_before"] = 100 * t["count_before"] / t["exposure_before"]
    t["rate_after"] = 100 * t["count_after"] / t["exposure_after"]
    safe = protect_counts(t, ["count_before", "count_after"], rule,
                          derived={"rate_before": "count_before", "rate_after": "count_after",
                                   "rate_ratio": "count_after", "ci_low": "count_after",
                                   "ci_high": "count_after"}, with_total=False)
    safe = safe.sort_values(["cohort", "school_name"])
    level = int(100 * (1 - a.params.analysis.alpha))
    return pd.DataFrame({
        "School": safe["school_name"],
        "Start": safe["cohort"],
        "Meldingen vóór": safe["count_before"].map(f.integer),
        "Per 100 vóór": safe["rate_before"].map(f.number),
        f"Meldingen {a.params.school_year}": safe["count_after"].map(f.integer),
        "Per 100 na": safe["rate_after"].map(f.number),
        "Na/vóór": safe["rate_ratio"].map(lambda v: f.number(v, 2)),
        f"{level}%-interval": [f.interval(lo, hi) if pd.notna(lo) else f.SUPPRESSED
                               for lo, hi in zip(safe["ci_low"], safe["ci_high"], strict=True)],
    })


def estimates_table(a: CareReportAnalysis) -> pd.DataFrame:
    """The pooled and difference-in-differences estimates, formatted."""
    from evaluation import formatting as f

    level = int(100 * (1 - a.params.analysis.alpha))
    return pd.DataFrame({
        "Vergelijking": [e.comparison for e in a.estimates],
        "Methode": [e.method for e in a.estimates],
        "Verhouding (rate ratio)": [f.number(e.estimate, 2) for e in a.estimates],
        f"{level}%-interval": [f.interval(e.ci_low, e.ci_high) for e in a.estimates],
        "p-waarde": [f.p_value(e.p_value) for e in a.estimates],
        "Scholen": [f.integer(e.n_clusters) for e in a.estimates],
    })
