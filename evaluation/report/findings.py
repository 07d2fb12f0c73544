"""What the report shows of the estimates: Dutch tables and sentences, after disclosure control.

Every function reads an `EstimateSet` (or its records) and formats; none computes an effect.
Counts pass `disclosure` before they are shown; descriptive values resting on fewer records than
the threshold are withheld with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

from evaluation.analysis import methods
from evaluation.analysis.estimates import EstimateSet
from evaluation.registry import INDICATORS, LEVEL_NAMES, PRIMARY, Indicator
from evaluation.report import formatting as f
from evaluation.report.disclosure import PublishedTable, protect_counts
from evaluation.report.method import method_text
from evaluation.report.per_records import per_records

COMPARISON_ORDER = [methods.BEFORE_AFTER, methods.DID, methods.EVENT_STUDY,
                    methods.ITS, "indicatievrij t.o.v. geïndiceerd"]


def effect(value: float, unit: str) -> str:
    """An effect on its own scale, in Dutch: ratios with two decimals, differences with a sign."""
    if pd.isna(value):
        return f.SUPPRESSED
    if unit in ("rate ratio", "hazard ratio"):
        return f.number(value, 2)
    sign = "+" if value > 0 else "−" if value < 0 else ""
    decimals = 2 if unit == "schaalpunt" else 1
    return f"{sign}{f.number(abs(value), decimals)}"


def interval(low: float, high: float, unit: str) -> str:
    if pd.isna(low) or pd.isna(high):
        return f.SUPPRESSED
    decimals = 2 if unit in ("rate ratio", "hazard ratio", "schaalpunt") else 1
    return f.interval(low, high, decimals)


def summary_effect(row: pd.Series) -> str:
    """An effect with its unit and interval, in words a reader needs no key for:
    "80,0% minder (77,1% tot 81,9% minder)", "−24,0 dagen (−29,0 tot −18,0)"."""
    if pd.isna(row["estimate"]):
        return "–"
    if row["unit"] == "rate ratio":
        return ratio_change_text(row["estimate"], row["ci_low"], row["ci_high"], None)
    unit = {"procentpunt": "procentpunt", "schaalpunt": "schaalpunt", "dagen": "dagen",
            "hazard ratio": "(hazard ratio)"}.get(row["unit"], row["unit"])
    ci = interval(row["ci_low"], row["ci_high"], row["unit"])
    return f"{effect(row['estimate'], row['unit'])} {unit}" + (
        "" if ci == f.SUPPRESSED else f" ({ci})")


UNIT_NAMES = {"rate ratio": "verhouding", "hazard ratio": "verhouding kans per dag",
              "procentpunt": "procentpunt", "schaalpunt": "schaalpunt",
              "per 100 leerlingen": "per 100 leerlingen", "dagen": "dagen"}


def estimates_table(es: EstimateSet, indicator_ids: list[str]) -> pd.DataFrame:
    """Every comparison of the given indicators, formatted."""
    t = es.table[es.table["indicator"].isin(indicator_ids)].copy()
    t["_i"] = t["indicator"].map({k: i for i, k in enumerate(indicator_ids)})
    t["_c"] = t["comparison"].map({k: i for i, k in enumerate(COMPARISON_ORDER)})
    t = t.sort_values(["_i", "_c"])
    level = int(round(100 * (1 - es.params.analysis.alpha)))
    out = pd.DataFrame({
        "Indicator": t["indicator"].map(lambda i: INDICATORS[i].label_nl),
        "Vergelijking": t["comparison"],
        "Effect": [effect(v, u) for v, u in zip(t["estimate"], t["unit"], strict=True)],
        "Schaal": t["unit"].map(UNIT_NAMES),
        f"{level}%-interval": [interval(lo, hi, u) for lo, hi, u in
                               zip(t["ci_low"], t["ci_high"], t["unit"], strict=True)],
        "p": [p_text(p, b) for p, b in zip(t["p_value"], t.get("p_value_bound", np.nan),
                                              strict=True)],
        "p gecorrigeerd": t["p_value_adjusted"].map(
            lambda p: "–" if pd.isna(p) else f.p_value(p)),
    })
    notes = t["note"].fillna("").astype(str)
    if (notes != "").any():
        # Why a comparison has no figure (or no interval): the reader sees the reason.
        out["Toelichting"] = notes.to_numpy()
        none = ((notes != "") & t["estimate"].isna()).to_numpy()
        out.loc[none, ["Effect", f"{level}%-interval", "p"]] = "–"
        out.loc[((notes != "") & t["ci_low"].isna()).to_numpy(), f"{level}%-interval"] = "–"
    return out


def p_text(p: float, bound: float | None) -> str:
    """A p-value as the report prints it; at the floor of a test with few assignments (1 / their
    number) it says so: "0,015 (laagst mogelijk)", a smaller p cannot come out of that test."""
    if pd.notna(p) and pd.notna(bound) and bound >= 0.001 and p <= bound * (1 + 1e-9):
        return f"{f.number(bound, 3)} (laagst mogelijk)"
    return f.p_value(p)


def methods_footnote(es: EstimateSet, indicator_ids: list[str]) -> str:
    """The methods behind a table, once each, as a Markdown list."""
    t = es.table[es.table["indicator"].isin(indicator_ids)]
    t = t[t["method"].fillna("").astype(str) != ""]  # comparisons not estimated have no method
    lines = [f"- *{c}*: {m}." for c, m in
             t[["comparison", "method"]].drop_duplicates("comparison").itertuples(index=False)]
    return "\n".join(lines)


# --- descriptive values per group and period ------------------------------------------------------

def _value(ind: Indicator, rows: pd.DataFrame) -> tuple[float, int]:
    """The indicator's value for a set of records, and the number of records it rests on."""
    if ind.kind == "rate":
        n = int(rows["count"].sum())
        exp = rows["exposure"].sum()
        return (100 * n / exp if exp else np.nan), n
    if ind.kind == "proportion":
        return (100 * rows["success"].mean() if len(rows) else np.nan), len(rows)
    if ind.kind == "duration":
        from evaluation.analysis.survival import median_survival

        if len(rows) == 0:
            return np.nan, 0
        return float(median_survival(rows)["median"].iloc[0]), len(rows)
    return (rows["score"].mean() if len(rows) else np.nan), len(rows)


def value_text(ind: Indicator, value: float) -> str:
    if pd.isna(value):
        return f.SUPPRESSED
    if ind.kind == "proportion":
        return f"{f.number(value, 1)}%"
    if ind.kind == "duration":  # a median is a whole day, or halfway between two
        return f"{f.integer(value) if value == round(value) else f.number(value, 1)} dagen"
    if ind.kind == "scale":
        return f.number(value, 2)
    return f.number(value, 1)


@per_records
def period_values(es: EstimateSet, indicator_id: str) -> pd.DataFrame:
    """Value before and in the report year, for pilot and comparison schools (numbers)."""
    ind = INDICATORS[indicator_id]
    d = es.data[indicator_id]
    rule = es.params.disclosure
    out = []
    pilot = d[d["group"] == "pilot"]
    comp = d[d["group"] == "comparison"]
    # The comparison schools' "before" is the same calendar years as the pilot schools' baseline.
    before_years = sorted(pilot.loc[pilot["period"] == "before", "school_year"].unique())
    groups = (
        ("pilot", pilot[pilot["period"] == "before"], pilot[pilot["period"] == "after"]),
        ("comparison", comp[comp["school_year"].isin(before_years)],
         comp[comp["school_year"] == es.params.school_year]),
    )
    if indicator_id == "indication_free_days":
        # What this indicator compares: trajectories without and with an indication, both at
        # the pilot schools (not pilot against comparison schools: that is trajectory_days).
        free = pilot["indication_free"].astype("boolean")
        groups = tuple((name, pilot[(pilot["period"] == "before") & (free == flag)],
                        pilot[(pilot["period"] == "after") & (free == flag)])
                       for name, flag in (("indication_free", True), ("indicated", False)))
    for group, rows_before, rows_after in groups:
        vb, nb = _value(ind, rows_before)
        va, na = _value(ind, rows_after)
        out.append({"group": group, "before": vb, "n_before": nb, "after": va, "n_after": na})
    frame = pd.DataFrame(out)
    for col, n in (("before", "n_before"), ("after", "n_after")):
        frame.loc[frame[n] < rule.min_count, col] = np.nan
    return frame


def key_figures(es: EstimateSet) -> tuple[pd.DataFrame, PublishedTable]:
    """Management summary: per primary indicator, the claim, before and after at the pilot
    schools, the difference-in-differences effect and whether it holds after correction."""
    rows, raw = [], []
    level = int(round(100 * (1 - es.params.analysis.alpha)))
    goals = progress(es)
    for ind_id in PRIMARY:
        ind = INDICATORS[ind_id]
        pv = period_values(es, ind_id).set_index("group")
        did = es.get(ind_id, methods.DID)
        rows.append({
            "Indicator": ind.label_nl,
            "Claim van de pilot": ind.claim_nl,
            "Pilotscholen vóór": value_text(ind, pv.loc["pilot", "before"]),
            f"Pilotscholen {es.params.school_year}": value_text(ind, pv.loc["pilot", "after"]),
            f"Effect ({level}%-interval)": "–" if pd.isna(did["estimate"]) else
            summary_effect(did),
            "Conclusie": claim_verdict(es, ind_id, goals)[0],
        })
        raw.append({"indicator": ind_id, "n_before": int(pv.loc["pilot", "n_before"]),
                    "n_after": int(pv.loc["pilot", "n_after"])})
    counts = protect_counts(pd.DataFrame(raw), ["n_before", "n_after"], es.params.disclosure)
    return pd.DataFrame(rows), PublishedTable("key_figures_n", counts, ["n_before", "n_after"],
                                              "aantallen achter de kerncijfers")


def improved(ind: Indicator, row: pd.Series) -> bool | None:
    """Did the indicator move in its direction of improvement? None: 'unchanged' indicators."""
    null = 1.0 if row["unit"] in ("rate ratio", "hazard ratio") else 0.0
    if ind.better == "unchanged":
        return None
    # For durations a hazard ratio above 1 means sooner, i.e. shorter.
    lower_is_better = ind.better == "lower"
    if row["unit"] == "hazard ratio":
        return row["estimate"] > null
    return (row["estimate"] < null) == lower_is_better


def verdict(ind: Indicator, row: pd.Series) -> str:
    """One Dutch phrase: confirmed, opposite, or not shown (at the adjusted level if primary)."""
    if pd.isna(row["estimate"]):
        note = str(row.get("note") or "")
        return note if note.startswith("niet te bepalen") else "niet geschat (te weinig gegevens)"
    if str(row.get("note") or "").startswith("niet te scheiden"):
        return "niet te scheiden van de school zelf (één pilotschool)"
    sig = bool(row["significant"])
    if ind.better == "unchanged":
        return ("verandert niet aantoonbaar" if not sig
                else "verandert wel (tegen de verwachting in)")
    if not sig:
        return "niet aangetoond"
    return "bevestigd" if improved(ind, row) else "tegengesteld aan de claim"


VERDICT_RULE = (
    "Een claim heet *bevestigd* als het verschil-in-verschillen met de vergelijkingsscholen "
    "statistisch significant is na correctie voor meervoudig toetsen, in de richting die de "
    "claim noemt, en de pilotscholen ook halen wat de claim of het regionale doel belooft "
    "(een genoemde omvang, zoals 80% minder, valt binnen of voorbij het interval; een genoemde "
    "eindstand, zoals geen dubbele intakes meer, is bereikt; het doel van de regio voor die "
    "indicator is gehaald). Schiet een significante verbetering daarin tekort, dan is de claim "
    "*deels bevestigd*; de reden staat erbij. Is het verschil niet significant, dan is een "
    "effect *niet aangetoond*; gaat het significant de andere kant op, dan is het "
    "*tegengesteld aan de claim*. Met één pilotschool is een effect niet te scheiden van de "
    "school zelf.")


def shortfalls(es: EstimateSet, ind_id: str, goals: pd.DataFrame | None = None) -> list[str]:
    """What a significant improvement leaves of the claim or the region's goal, in words:
    a claimed size the interval does not reach, a claimed end state not reached, a missed goal."""
    ind = INDICATORS[ind_id]
    did = es.get(ind_id, methods.DID)
    out = []
    if ind.claim_change is not None and did["unit"] == "rate ratio":
        claimed = 1 + ind.claim_change
        if ind.better == "lower" and did["ci_low"] > claimed:
            out.append(f"de daling ({f.number(100 * (1 - did['ci_high']), 0)}% tot "
                       f"{f.number(100 * (1 - did['ci_low']), 0)}%) blijft onder de "
                       f"{f.number(-100 * ind.claim_change, 0)}% van de claim")
    if ind.claim_level is not None:
        after = period_values(es, ind_id).set_index("group").loc["pilot", "after"]
        level = 100 * ind.claim_level if ind.kind == "proportion" else ind.claim_level
        if pd.notna(after) and not meets(ind, after, level):
            out.append(f"nog {value_text(ind, after)} in {es.params.school_year}, waar de claim "
                       f"{value_text(ind, level)} belooft")
    goals = progress(es) if goals is None else goals
    if goals.empty:  # a region without targets
        return out
    region = goals[(goals["indicator"] == ind_id) & (goals["level"] == "region")]
    for r in region.itertuples(index=False):
        if pd.notna(r.value) and not bool(r.met):
            out.append(f"regionaal doel ({value_text(ind, r.target)}) niet gehaald: "
                       f"{value_text(ind, r.value)}")
    return out


def claim_verdict(es: EstimateSet, ind_id: str, goals: pd.DataFrame | None = None
                  ) -> tuple[str, str]:
    """The verdict on a claim (`VERDICT_RULE`) and, for "deels bevestigd", why only partly."""
    ind = INDICATORS[ind_id]
    text = verdict(ind, es.get(ind_id, methods.DID))
    if text != "bevestigd":
        return text, ""
    short = shortfalls(es, ind_id, goals)
    return ("deels bevestigd", "; ".join(short)) if short else (text, "")


def summary_sentences(es: EstimateSet) -> str:
    """Plain Dutch summary of the primary indicators, every number from the estimates."""
    did = es.table[(es.table["comparison"] == methods.DID) & es.table["primary"]]
    confirmed = [INDICATORS[r["indicator"]] for _, r in did.iterrows()
                 if verdict(INDICATORS[r["indicator"]], r) == "bevestigd"]
    estimated = int(did["estimate"].notna().sum())
    n_pilot = int((es.design["group"] == "pilot").sum())
    n_comp = int((es.design["group"] == "comparison").sum())
    method = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}[es.params.analysis.multiple_testing]
    unit = (f"gemeente {es.params.municipality_name}" if es.params.municipality_name
            else f"regio {es.params.region.name}")
    text = (f"In schooljaar {es.params.school_year} {'werkte' if n_pilot == 1 else 'werkten'} "
            f"{f.count_noun(n_pilot, 'school', 'scholen')} in {unit} volgens de pilot; "
            f"{f.count_noun(n_comp, 'vergelijkingsschool', 'vergelijkingsscholen')} "
            f"{'werkte' if n_comp == 1 else 'werkten'} (nog) niet zo. ")
    if estimated == 0:
        return text + (f"Geen van de {len(did)} hoofdindicatoren kon met vergelijkingsscholen "
                       "worden vergeleken; hieronder staat per indicator waarom.")
    of = (f"Van de {len(did)} hoofdindicatoren" if estimated == len(did) else
          f"Van de {len(did)} hoofdindicatoren konden er {estimated} met vergelijkingsscholen "
          f"worden vergeleken; daarvan")
    return text + (f"{of} tonen er **{len(confirmed)}** een verbetering die standhoudt na "
                   f"correctie voor meervoudig toetsen ({method}).")


# --- goals and progress ---------------------------------------------------------------------------

def _unit_values(ind: Indicator, rows: pd.DataFrame, by: str) -> pd.DataFrame:
    parts = []
    for key, g in rows.groupby(by, observed=True):
        v, n = _value(ind, g)
        parts.append({by: key, "value": v, "n": n})
    return pd.DataFrame(parts, columns=[by, "value", "n"])


def meets(ind: Indicator, value: float, target: float) -> bool:
    return value <= target if ind.better == "lower" else value >= target


def progress(es: EstimateSet, municipality_of: dict[str, str] | None = None) -> pd.DataFrame:
    """Progress against every target in params, per indicator and level (numbers)."""
    rule = es.params.disclosure
    out = []
    for ind_id, per_level in es.params.region.targets.items():
        ind = INDICATORS[ind_id]
        d = es.data[ind_id]
        now = d[(d["group"] == "pilot") & (d["school_year"] == es.params.school_year)]
        before = d[(d["group"] == "pilot") & (d["period"] == "before")]
        for level, target in per_level.items():
            shown_target = 100 * target if ind.kind == "proportion" else target
            row = {"indicator": ind_id, "level": level, "target": shown_target}
            if level == "region":
                vb, _ = _value(ind, before)
                va, n = _value(ind, now)
                row.update(before=vb, value=va, n=n, met=meets(ind, va, shown_target),
                           units_met=np.nan, units=np.nan)
            elif level == "pupil":
                # A norm per pupil: the share of records in the report year that met it.
                ok = now["days"] <= target if ind.kind == "duration" else None
                share = 100 * float(ok.mean()) if ok is not None and len(now) else np.nan
                row.update(before=np.nan, value=share, n=len(now), met=np.nan,
                           units_met=np.nan, units=np.nan)
            else:
                by = "school_id" if level == "school" else "residence_code"
                if level == "municipality" and es.params.analysis.count_by == "school":
                    muni = es.design.set_index("school_id")["municipality_code"]
                    now = now.assign(municipality=now["school_id"].map(muni))
                    by = "municipality"
                every = _unit_values(ind, now, by)
                uv = every[every["n"] >= rule.min_count]
                met = uv["value"].map(lambda v, i=ind, t=shown_target: meets(i, v, t))
                row.update(before=np.nan, value=np.nan, n=int(uv["n"].sum()), met=np.nan,
                           units_met=int(met.sum()), units=len(uv),
                           units_withheld=len(every) - len(uv))
            if row["n"] < rule.min_count:
                row["value"] = np.nan
            out.append(row)
    return pd.DataFrame(out)


def progress_table(es: EstimateSet) -> pd.DataFrame:
    p = progress(es)
    rows = []
    for r in p.itertuples(index=False):
        ind = INDICATORS[r.indicator]
        if r.level == "pupil":
            status = f"{f.number(r.value, 1)}% van de trajecten binnen de norm" \
                if pd.notna(r.value) else f.SUPPRESSED
            target = f"norm per traject: {value_text(ind, r.target)}"
            current = status
            before = "–"
            reached = "–"
        elif r.level == "region":
            target, before = value_text(ind, r.target), value_text(ind, r.before)
            current = value_text(ind, r.value)
            reached = f.SUPPRESSED if pd.isna(r.value) else ("ja" if r.met else "nee")
        else:
            unit = "scholen" if r.level == "school" else "gemeenten"
            target, before = value_text(ind, r.target), "–"
            current = (f"{int(r.units_met)} van {int(r.units)} {unit} halen het doel"
                       if r.units else f.SUPPRESSED)
            withheld = int(getattr(r, "units_withheld", 0) or 0)
            if withheld:  # say what the count leaves out, and why
                word = unit if withheld > 1 else {"scholen": "school"}.get(unit, "gemeente")
                current += f" ({withheld} {word} niet getoond wegens kleine aantallen)"
            reached = "ja" if r.units and r.units_met == r.units else "nee"
        level = LEVEL_NAMES[r.level]
        if r.level == "region" and es.params.municipality_name:
            level = f"regio (hier: gemeente {es.params.municipality_name})"
        rows.append({"Indicator": ind.label_nl, "Niveau": level, "Doel": target,
                     "Vóór de pilot": before, f"Stand {es.params.school_year}": current,
                     "Doel gehaald": reached})
    return pd.DataFrame(rows)


def wilson(successes: int, n: int, alpha: float) -> tuple[float, float]:
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return float(low), float(high)


GROUP_NAMES = {"pilot": "Pilotscholen", "comparison": "Vergelijkingsscholen",
               "indication_free": "Indicatievrije trajecten (pilotscholen)",
               "indicated": "Geïndiceerde trajecten (pilotscholen)"}


def period_table(es: EstimateSet, indicator_ids: list[str]) -> pd.DataFrame:
    """Before and report-year values per group, with Wilson intervals for shares."""
    rows = []
    alpha = es.params.analysis.alpha
    for ind_id in indicator_ids:
        ind = INDICATORS[ind_id]
        pv = period_values(es, ind_id)
        for r in pv.itertuples(index=False):
            before, after = value_text(ind, r.before), value_text(ind, r.after)
            if ind.kind == "proportion" and pd.notna(r.after):
                lo, hi = wilson(round(r.after * r.n_after / 100), r.n_after, alpha)
                after += f" ({f.interval(lo, hi, 1, pct=True)})"
            rows.append({"Indicator": ind.label_nl, "Groep": GROUP_NAMES[r.group],
                         "Vóór": before, es.params.school_year: after})
    return pd.DataFrame(rows)


def mde_table(es: EstimateSet) -> pd.DataFrame:
    """The minimum detectable effect (80% power) of each primary difference-in-differences."""
    t = es.table[(es.table["comparison"] == methods.DID) & es.table["primary"]]
    rows = []
    for r in t.itertuples(index=False):
        ind = INDICATORS[r.indicator]
        if pd.isna(r.mde):
            rows.append({"Indicator": ind.label_nl, "Kleinste aantoonbare effect":
                         r.note if isinstance(r.note, str) and r.note else f.SUPPRESSED})
            continue
        if r.unit == "rate ratio":
            text = f"{f.percent(1 - r.mde, 0)} minder"
        elif r.unit == "hazard ratio":
            text = f"hazard ratio {f.number(1 / r.mde, 2)}"
        else:
            text = f"{f.number(r.mde, 1 if r.unit in ('procentpunt', 'dagen') else 2)} {r.unit}"
        rows.append({"Indicator": ind.label_nl, "Kleinste aantoonbare effect": text})
    return pd.DataFrame(rows)


REFERRERS_NL = {"school": "school/kernteam", "gp": "huisarts", "youth_doctor": "jeugdarts",
                "district_team": "wijkteam", "certified_institution": "gecertificeerde instelling"}


def referrals_by_referrer(es: EstimateSet, tables: dict[str, pd.DataFrame]) -> PublishedTable:
    """Referrals of the pilot schools' pupils by referrer and school year, protected as a
    crosstab with totals (secondary suppression)."""
    from evaluation.data.datamodel import school_year_of
    from evaluation.report.disclosure import protect_crosstab

    pilot = set(es.design.loc[es.design["group"] == "pilot", "school_id"])
    r = tables["referrals"]
    r = r[r["school_id"].isin(pilot).to_numpy()].assign(
        school_year=lambda d: school_year_of(d["referral_date"]))
    r = r[r["school_year"].isin(es.years)]
    counts = pd.crosstab(r["referrer"].map(REFERRERS_NL), r["school_year"])
    counts.index.name = "Verwijzer"
    counts.columns.name = None
    safe = protect_crosstab(counts, es.params.disclosure)
    return PublishedTable("referrals_by_referrer", safe, [str(c) for c in safe.columns],
                          "Verwijzingen van leerlingen van pilotscholen naar verwijzer en "
                          "schooljaar")


def crosstab_markdown(table: PublishedTable) -> pd.DataFrame:
    frame = table.frame.copy()
    out = frame.apply(lambda c: c.map(lambda v: f.SUPPRESSED if pd.isna(v) else f.integer(v)))
    return out.reset_index()


def _change_text(ind: Indicator, row: pd.Series, level: int) -> str:
    ci = f"{level}%-interval {interval(row['ci_low'], row['ci_high'], row['unit'])}"
    if row["unit"] == "hazard ratio":
        return (f"een {effect(row['estimate'], row['unit'])} keer zo grote kans per dag "
                f"({ci}; boven 1 betekent sneller)")
    if row["unit"] == "rate ratio":  # a change in percent, its interval in percent too
        return ratio_change_text(row["estimate"], row["ci_low"], row["ci_high"], level)
    return f"{effect(row['estimate'], row['unit'])} {row['unit']} ({ci})"


def ratio_change_text(ratio: float, low: float, high: float, level: int | None) -> str:
    """A rate ratio as a change in percent with its interval on the same scale:
    "43,4% minder (95%-interval 29,0% tot 55,0% minder)"; an interval across 1 says both ways;
    without `level` (a table whose header names it) the interval stands alone."""
    def change(r: float) -> str:
        return f"{f.percent(abs(1 - r))} {'minder' if r < 1 else 'meer'}"

    text = change(ratio)
    if pd.isna(low) or pd.isna(high):
        return text
    if high < 1:
        ci = f"{f.percent(1 - high)} tot {f.percent(1 - low)} minder"
    elif low > 1:
        ci = f"{f.percent(low - 1)} tot {f.percent(high - 1)} meer"
    else:
        ci = f"van {change(low)} tot {change(high)}"
    return f"{text} ({ci})" if level is None else f"{text} ({level}%-interval {ci})"


def theme_summary(es: EstimateSet, indicator_ids: list[str]) -> str:
    """One Dutch paragraph per indicator: what changed at the pilot schools, how sure we are."""
    level = int(round(100 * (1 - es.params.analysis.alpha)))
    parts = []
    for ind_id in indicator_ids:
        ind = INDICATORS[ind_id]
        rows = es.table[es.table["indicator"] == ind_id]
        if rows.empty or rows["estimate"].isna().all() and (
                rows["note"].nunique() <= 1 or not (rows["comparison"] == methods.DID).any()):
            note = (rows["note"].dropna().astype(str).iloc[0]
                    if not rows.empty and rows["note"].notna().any() else "")
            parts.append(f"**{ind.name_nl}** ({note or 'niet geschat: te weinig gegevens'}).")
            continue
        if ind_id == "indication_free_days":
            row = es.table[es.table["indicator"] == ind_id].iloc[0]
            parts.append(f"**{ind.name_nl}.** Op de pilotscholen eindigen indicatievrije trajecten "
                         f"{'sneller' if row['estimate'] > 1 else 'niet sneller'} dan geïndiceerde "
                         f"trajecten van hetzelfde zorgniveau: {_change_text(ind, row, level)}.")
            continue
        pv = period_values(es, ind_id).set_index("group")
        row = es.get(ind_id, methods.DID)
        if pd.notna(row["estimate"]):
            parts.append(
                f"**{ind.name_nl}** ({verdict(ind, row)}). Op de pilotscholen "
                f"{value_text(ind, pv.loc['pilot', 'before'])} vóór de start en "
                f"{value_text(ind, pv.loc['pilot', 'after'])} in {es.params.school_year}; op de "
                f"vergelijkingsscholen {value_text(ind, pv.loc['comparison', 'before'])} en "
                f"{value_text(ind, pv.loc['comparison', 'after'])}. Verschil-in-verschillen: "
                f"{_change_text(ind, row, level)}.")
            continue
        # No comparison with comparison schools: say why, and what the pilot schools show.
        text = (f"**{ind.name_nl}** (vergelijking met vergelijkingsscholen "
                f"{verdict(ind, row)}). Op de pilotscholen "
                f"{value_text(ind, pv.loc['pilot', 'before'])} vóór de start en "
                f"{value_text(ind, pv.loc['pilot', 'after'])} in {es.params.school_year}.")
        ba = rows[rows["comparison"] == methods.BEFORE_AFTER]
        if len(ba) and pd.notna(ba["estimate"].iloc[0]):
            text += (f" Voor/na op de pilotscholen, zonder vergelijking met andere scholen: "
                     f"{_change_text(ind, ba.iloc[0], level)}.")
        parts.append(text)
    return "\n\n".join(parts)


def scale_reliability(tables: dict[str, pd.DataFrame], params) -> pd.DataFrame:
    """Cronbach's alpha per respondent role in the report year, with its interval."""
    from evaluation.analysis.scales import cronbach_alpha_ci, pivot_items
    from evaluation.report.disclosure import round_to_base

    roles = {"school": "scholen", "professional": "professionals", "parent": "ouders",
             "pupil": "leerlingen"}
    s = tables["survey_responses"]
    s = s[s["school_year"] == params.school_year]
    rows = []
    for role, name in roles.items():
        wide = pivot_items(s[s["respondent_role"] == role])
        n = len(wide)
        if n < params.disclosure.min_count:
            rows.append({"Rol": name, "Respondenten": f.SUPPRESSED, "Items": str(wide.shape[1]),
                         "Cronbachs alfa": f.SUPPRESSED})
            continue
        a, lo, hi = cronbach_alpha_ci(wide, alpha=params.analysis.alpha)
        rows.append({"Rol": name,
                     "Respondenten": f.integer(int(round_to_base(pd.Series([n]),
                                                                 params.disclosure.rounding_base)[0])),
                     "Items": str(wide.shape[1]),
                     "Cronbachs alfa": f"{f.number(a, 2)} ({f.interval(lo, hi)})"})
    return pd.DataFrame(rows)


def method_facts(es: EstimateSet) -> str:
    """The facts of the design that the method section states, computed from the run."""
    p = es.params
    n_pilot = int((es.design["group"] == "pilot").sum())
    n_comp = int((es.design["group"] == "comparison").sum())
    cohorts = ", ".join(sorted(es.design["cohort"].dropna().unique()))
    method = {"holm": "Holm", "fdr_bh": "Benjamini-Hochberg"}[p.analysis.multiple_testing]
    with_data = pd.concat([d[["school_id", "group"]] for d in es.data.values()]
                          ).drop_duplicates("school_id") if es.data else pd.DataFrame(
        columns=["school_id", "group"])
    d_pilot = int((with_data["group"] == "pilot").sum())
    d_comp = int((with_data["group"] == "comparison").sum())
    covered = ("" if (d_pilot, d_comp) == (n_pilot, n_comp) else
               f" Gegevens waren er van {d_pilot} van de {n_pilot} pilotscholen en {d_comp} van "
               f"de {n_comp} vergelijkingsscholen.")
    return (
        f"De analyse gebruikt de schooljaren {es.years[0]} tot en met {es.years[-1]}: "
        f"{n_pilot} pilotscholen (start in {cohorts}) en {n_comp} vergelijkingsscholen."
        f"{covered} "
        f"De {len(PRIMARY)} hoofdindicatoren vormen per vergelijking één familie; hun p-waarden "
        f"zijn gecorrigeerd volgens {method} bij een significantieniveau van "
        f"{f.number(p.analysis.alpha, 2)}.\n\n{method_text(es)}\n\n"
        f"De tabel hieronder geeft per hoofdindicator het kleinste effect dat met deze aantallen "
        f"met 80% zekerheid wordt aangetoond."
    )


def robustness_table(robust: pd.DataFrame) -> pd.DataFrame:
    """Per primary indicator: in how many specifications the conclusion holds, in plain Dutch."""
    from evaluation.analysis.robustness import robustness_summary

    summary = robustness_summary(robust)
    return pd.DataFrame({
        "Indicator": summary["indicator"].map(lambda i: INDICATORS[i].label_nl),
        "Specificaties": [f"{int(x)} van {int(y)}" for x, y in
                          zip(summary["n_holds"], summary["n_specifications"], strict=True)],
        "Conclusie": summary["sentence"],
    })


def parallel_trends_table(tables: dict[str, pd.DataFrame], params, params_dir,
                          es: EstimateSet | None = None) -> pd.DataFrame:
    """Per primary indicator: the joint test of the pre-period effects (bootstrap p) and the
    breakdown value M̄: how many times the largest pre-period change the bias after the start
    may be before the conclusion no longer holds. Where the comparison with comparison schools
    could not be determined (`es`), its reason instead."""
    from evaluation.analysis.robustness import parallel_trends

    rows = []
    # The report's own records per indicator, when its estimates were made with these params.
    frames = (es.data if es is not None
              and es.params.model_dump_json() == params.model_dump_json() else {})
    for ind_id in PRIMARY:
        ind = INDICATORS[ind_id]
        none = {"Indicator": ind.label_nl, "Toets vóórperiode (p)": "–", "Breekpunt M̄": "–"}
        note = str(es.get(ind_id, methods.DID)["note"] or "") if es is not None else ""
        if note.startswith("niet te bepalen"):
            rows.append({**none, "Opmerking": note})
            continue
        try:
            r = parallel_trends(tables, params, params_dir, ind_id, frames.get(ind_id))
        except ValueError:
            rows.append({**none, "Opmerking": "niet van toepassing (lopende duren)"
                         if ind.kind == "duration" else "niet te bepalen: te weinig gegevens"})
            continue
        p = r["wald_p_bootstrap"]
        rows.append({
            "Indicator": ind.label_nl,
            "Toets vóórperiode (p)": f.p_value(p),
            "Breekpunt M̄": f.number(r["breakdown_mbar"], 1),
            "Opmerking": ("niet te bepalen: te weinig schooljaren vóór de start" if pd.isna(p)
                          else "aanwijzing voor ongelijke trends vóór de start"
                          if p < params.analysis.alpha
                          else "zwakke aanwijzing voor ongelijke trends vóór de start"
                          if p < 2 * params.analysis.alpha  # borderline: said, not hidden
                          else "geen aanwijzing voor ongelijke trends"),
        })
    return pd.DataFrame(rows)
