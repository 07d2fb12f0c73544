"""The care-report theme as the report shows it: Dutch sentences and the per-school table, after
disclosure control. The numbers come from `evaluation.analysis.care_reports.analyse` and the
estimate set."""

from __future__ import annotations

import pandas as pd

from evaluation.analysis.care_reports import INDICATOR, CareReportAnalysis


def _change(rr: float) -> str:
    """A rate ratio as a Dutch change: 0.2 -> '80,0% minder'."""
    from evaluation.report import formatting

    pct = formatting.percent(abs(1 - rr))
    return f"{pct} minder" if rr < 1 else f"{pct} meer"


def _p_text(p: float) -> str:
    from evaluation.report import formatting as f

    return f.p_value(p) if p < 0.001 else "= " + f.p_value(p)


def summary_markdown(a: CareReportAnalysis, es) -> str:
    """Key findings in plain Dutch; every number computed from `a` and the estimate set `es`.
    On thin data (no pupils of pilot schools in the report year, no year before the start, no
    comparison schools) it says what could not be determined instead of showing empty figures."""
    from evaluation.analysis.methods import BEFORE_AFTER, DID
    from evaluation.report import formatting as f
    from evaluation.report.disclosure import round_to_base

    rule = a.params.disclosure
    year = a.params.school_year
    gy = a.group_years
    pilot = gy[gy["group"] == "pilot"]
    base = a.yearly[(a.yearly["group"] == "pilot") & (a.yearly["post"] == False)]  # noqa: E712
    now = pilot[pilot["school_year"] == year]
    now_years = a.yearly[(a.yearly["school_year"] == year) & (a.yearly["pupils"] > 0)]
    n_pilot = int(now_years.loc[now_years["group"] == "pilot", "school_id"].nunique())
    n_comp = int(now_years.loc[now_years["group"] == "comparison", "school_id"].nunique())
    if n_pilot == 0:
        return (f"In schooljaar {year} staan geen leerlingen van pilotscholen in de gegevens; "
                "het aantal zorgmeldingen op de pilotscholen is daarom niet te bepalen.")
    before_rate = (100 * base["count"].sum() / base["pupils"].sum() if base["pupils"].sum()
                   else float("nan"))
    now_rate = float(100 * now["count"].sum() / now["pupils"].sum())
    pupils_now = int(round_to_base(now["pupils"], rule.rounding_base).sum())
    level = int(100 * (1 - a.params.analysis.alpha))
    did, pooled = es.get(INDICATOR, DID), es.get(INDICATOR, BEFORE_AFTER)
    sig = ("statistisch significant, ook na correctie voor meervoudig toetsen"
           if did["significant"] else "statistisch niet significant na correctie voor "
           "meervoudig toetsen")
    did_text = None
    if pd.isna(did["estimate"]):
        note = str(did.get("note") or "niet geschat: te weinig scholen of waarnemingen")
        did_text = ("Een vergelijking met de vergelijkingsscholen (verschil-in-verschillen) is "
                    f"{note}.")
    elif did["estimate"] >= 1:
        did_text = (f"Gecorrigeerd voor de ontwikkeling op de vergelijkingsscholen "
                    f"(verschil-in-verschillen) is de verhouding {f.number(did['estimate'], 2)} "
                    f"({level}%-betrouwbaarheidsinterval "
                    f"{f.interval(did['ci_low'], did['ci_high'])}; gecorrigeerde p "
                    f"{_p_text(did['p_value_adjusted'])}): geen daling; dit verschil is {sig}.")
    compared = (f"Zij worden vergeleken met "
                f"**{f.count_noun(n_comp, 'vergelijkingsschool', 'vergelijkingsscholen')}** "
                "zonder pilot." if n_comp else
                "Van vergelijkingsscholen zonder pilot zijn in dat jaar geen gegevens.")
    # Rates resting on fewer reports than the disclosure threshold are not published.
    few = f"minder dan {rule.min_count} meldingen: niet gepubliceerd"
    now_text = (f"**{f.number(now_rate)} per 100 leerlingen**" if now["count"].sum()
                >= rule.min_count else f"te weinig om te publiceren ({few})")
    if pd.isna(before_rate):
        change = (f"Over de schooljaren vóór de start van de pilot zijn geen gegevens, dus een "
                  f"vergelijking vóór/na is niet te maken. Zorgmeldingen in {year}: "
                  f"{now_text}.")
    elif min(base["count"].sum(), now["count"].sum()) < rule.min_count:
        change = (f"Op de pilotscholen waren er te weinig zorgmeldingen om het aantal per 100 "
                  f"leerlingen vóór de start en in {year} te publiceren ({few})"
                  + (f"; voor/na: {_change(pooled['estimate'])}, {level}%-betrouwbaarheids"
                     f"interval {f.interval(1 - pooled['ci_high'], 1 - pooled['ci_low'], 1, pct=True)}"
                     " minder" if pd.notna(pooled["estimate"]) else "") + ".")
    else:
        change = (
            f"Op de pilotscholen {'daalde' if now_rate < before_rate else 'steeg'} het aantal "
            f"zorgmeldingen van **{f.number(before_rate)} per 100 leerlingen** per schooljaar "
            f"vóór de start naar **{f.number(now_rate)} per 100 leerlingen** in {year}"
            + (f" (voor/na: {_change(pooled['estimate'])}, {level}%-betrouwbaarheidsinterval "
               f"{f.interval(1 - pooled['ci_high'], 1 - pooled['ci_low'], 1, pct=True)} minder)"
               if pd.notna(pooled["estimate"]) else "") + ".")
    return (
        f"In schooljaar {year} {'werkte' if n_pilot == 1 else 'werkten'} "
        f"**{f.count_noun(n_pilot, 'school', 'scholen')}** met een kernteam, "
        f"met samen ongeveer {f.integer(pupils_now)} leerlingen. {compared}"
        f"\n\n{change}\n\n"
        + (did_text or (
            f"Gecorrigeerd voor de ontwikkeling op de vergelijkingsscholen (verschil-in-verschillen) "
            f"is dat **{_change(did['estimate'])}** zorgmeldingen "
            f"({level}%-betrouwbaarheidsinterval {f.interval(1 - did['ci_high'], 1 - did['ci_low'], 1, pct=True)} "
            f"minder; gecorrigeerde p {_p_text(did['p_value_adjusted'])}); "
            f"dit verschil is {sig}."
        ))
    )


def school_table(a: CareReportAnalysis) -> pd.DataFrame:
    """Per pilot school: counts and rates before and after, with the rate ratio; publishable."""
    from evaluation.report import formatting as f
    from evaluation.report.disclosure import protect_counts

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
