"""The report's conclusions and limitations, generated from its estimates and data.

Typed conclusions drift from the numbers and tend to argue for the pilot; these are stated in an
evaluator's neutral voice from the same records the tables show: which claims hold, which do
not or could not be tested and why, whether the goals were met, and which limitations apply to
this report (few schools, staggered starts, a borderline or failed pre-trend test, missing values,
example tariffs, synthetic data).
"""

from __future__ import annotations

import pandas as pd

from evaluation.analysis import methods
from evaluation.analysis.estimates import EstimateSet
from evaluation.registry import INDICATORS, PRIMARY
from evaluation.report import formatting as f
from evaluation.report.findings import claim_verdict, progress

#: Verdicts in the order the conclusions discuss them, with the sentence that introduces them.
GROUPS = (
    ("bevestigd", "De gegevens ondersteunen deze claims van de pilot"),
    ("deels bevestigd", "Deze claims worden deels ondersteund: de verbetering is aangetoond, "
                        "maar blijft achter bij wat de claim of het doel van de regio belooft"),
    ("niet aangetoond", "Voor deze claims is geen effect aangetoond"),
    ("tegengesteld aan de claim", "Bij deze claims gaat de verandering de andere kant op"),
    ("niet te scheiden", "Bij deze claims is een effect niet te scheiden van de school zelf, "
                         "omdat er maar één pilotschool is"),
    ("niet te bepalen", "Deze claims konden niet worden getoetst"),
)


def _group(text: str) -> str:
    for key, _ in GROUPS:
        if text.startswith(key):
            return key
    return "niet te bepalen"  # "niet geschat", "niet te bepalen: ..."


def verdicts(es: EstimateSet) -> pd.DataFrame:
    """Per primary indicator: the claim, the verdict and its group, the reason when untested."""
    rows = []
    goals = progress(es)
    for ind_id in PRIMARY:
        ind = INDICATORS[ind_id]
        row = es.get(ind_id, methods.DID)
        text, partly = claim_verdict(es, ind_id, goals)
        rows.append({"indicator": ind_id, "claim": ind.claim_nl, "label": ind.label_nl,
                     "verdict": text, "group": _group(text),
                     "reason": str(row.get("note") or "") if pd.isna(row["estimate"]) else partly})
    return pd.DataFrame(rows)


def conclusions_markdown(es: EstimateSet, goals: pd.DataFrame | None = None) -> str:
    """Conclusions in plain Dutch: per verdict the claims it applies to, then the goals."""
    v = verdicts(es)
    partly = int((v["group"] == "deels bevestigd").sum())
    parts = [f"Van de {len(v)} claims van de pilot die dit rapport toetst, zijn er "
             f"{int((v['group'] == 'bevestigd').sum())} met de gegevens bevestigd"
             + (f" en {partly} deels" if partly else "")
             + " (verschil-in-verschillen ten opzichte van de vergelijkingsscholen, na correctie "
               "voor meervoudig toetsen; de regel staat in de verantwoording)."]
    for key, lead in GROUPS:
        g = v[v["group"] == key]
        if g.empty:
            continue
        items = []
        for r in g.itertuples(index=False):
            why = f" ({r.reason.removeprefix('niet te bepalen: ')})" if r.reason else ""
            items.append(f"- *{r.label}*: {r.claim}{why}.")
        parts.append(f"{lead}:\n\n" + "\n".join(items))
    if goals is not None and not goals.empty and "Doel gehaald" in goals:
        shown = goals[goals["Doel gehaald"].isin(["ja", "nee"])]
        missed = shown[shown["Doel gehaald"] == "nee"]
        text = (f"Van de {len(shown)} doelen waarvoor een stand te geven is, zijn er "
                f"{len(shown) - len(missed)} gehaald")
        if len(missed):
            names = ", ".join(f"{r['Indicator'].lower()} ({r['Niveau']})"
                              for _, r in missed.iterrows())
            text += f"; niet gehaald: {names}"
        parts.append(text + ". Een gemist doel van de regio maakt een aangetoonde verbetering "
                            "'deels bevestigd'; doelen per school of gemeente gaan over de stand "
                            "op die scholen of in die gemeenten, niet over het verschil met "
                            "vergelijkingsscholen.")
    return "\n\n".join(parts)


def unreachable_significance(es: EstimateSet) -> float | None:
    """The smallest p-value the primary comparisons can reach when, with so few pilot schools,
    even it cannot pass the multiple-testing correction (Holm: times the number of claims;
    Benjamini-Hochberg: itself); None when significance is within reach."""
    did = es.table[(es.table["comparison"] == methods.DID) & es.table["primary"]]
    bounds = pd.to_numeric(did["p_value_bound"], errors="coerce").dropna()
    if bounds.empty or len(bounds) < did["estimate"].notna().sum():
        return None
    floor = float(bounds.min())
    factor = len(did) if es.params.analysis.multiple_testing == "holm" else 1
    return floor if floor * factor > es.params.analysis.alpha else None


def takeaway_markdown(es: EstimateSet, synthetic: bool = False) -> str:
    """What the reader should take away, in one paragraph of everyday words: on how many claims
    the pilot does what it promised, where only partly, what could not be tested."""
    v = verdicts(es)
    n = len(v)

    def names(group: str) -> str:
        return ", ".join(r.label.lower() for r in v[v["group"] == group].itertuples(index=False))

    counts = {key: int((v["group"] == key).sum()) for key, _ in GROUPS}
    parts = []
    if counts["bevestigd"]:
        parts.append(f"op {counts['bevestigd']} van de {n} getoetste punten doet de pilot "
                     f"aantoonbaar wat hij beloofde ({names('bevestigd')})")
    if counts["deels bevestigd"]:
        parts.append(f"op {counts['deels bevestigd']} gaat het aantoonbaar de goede kant op, "
                     f"maar niet zo ver als beloofd of als de regio zich ten doel stelde "
                     f"({names('deels bevestigd')})")
    if counts["niet aangetoond"]:
        parts.append(f"op {counts['niet aangetoond']} is geen effect aangetoond "
                     f"({names('niet aangetoond')})")
    if counts["tegengesteld aan de claim"]:
        parts.append(f"op {counts['tegengesteld aan de claim']} gaat het de andere kant op "
                     f"({names('tegengesteld aan de claim')})")
    untested = counts["niet te bepalen"] + counts["niet te scheiden"]
    if untested:
        parts.append(f"{untested} {'kon' if untested == 1 else 'konden'} niet worden getoetst "
                     f"({', '.join(x for x in (names('niet te bepalen'), names('niet te scheiden')) if x)})")
    if parts and "getoetste punten" not in parts[0] and parts[0].startswith("op "):
        k = parts[0].split()[1]
        parts[0] = parts[0].replace(f"op {k} ", f"op alle {n} getoetste punten " if int(k) == n
                                    else f"op {k} van de {n} getoetste punten ", 1)
    body = f.join_and(parts, "; ") if parts else "geen claim kon worden getoetst"
    text = f"**Wat dit betekent.** {body[:1].upper()}{body[1:]}."
    bound = unreachable_significance(es)
    if bound is not None and counts["niet aangetoond"]:
        n_pilot = int((es.design["group"] == "pilot").sum())
        text += (f" Met {f.count_noun(n_pilot, 'pilotschool', 'pilotscholen')} kan dit rapport "
                 f"na correctie voor meervoudig toetsen geen effect aantonen, hoe groot ook: de "
                 f"kleinst mogelijke p-waarde is {f.p_value(bound)}. De richting en grootte van "
                 f"de veranderingen staan in de tabel hierboven; een rapport over meer scholen "
                 f"(de hele regio) kan ze wel toetsen.")
    if synthetic:
        text += (" Omdat de gegevens synthetisch zijn, zeggen deze uitkomsten niets over de echte "
                 "pilot; ze tonen wat de evaluatie zal laten zien.")
    return (text + " Waarom, en wat de uitkomsten begrenst, staat in [Conclusies](#sec-conclusies) "
            "en [Beperkingen](#sec-beperkingen).")


def recommendations_markdown(es: EstimateSet, trends: pd.DataFrame | None = None,
                             synthetic: bool = False) -> str:
    """Recommendations that follow from this report's own results and gaps, in the evaluator's
    voice: what to follow up, and what the next evaluation needs to answer more firmly. None
    argues for or against the pilot."""
    p, a = es.params, es.params.analysis
    v = verdicts(es)
    n_pilot = int((es.design["group"] == "pilot").sum())
    n_comp = int((es.design["group"] == "comparison").sum())
    items = []
    partly = v[v["group"] == "deels bevestigd"]
    if not partly.empty:
        items.append("**Volg wat achterblijft.** Bij "
                     + f.join_and(r.label.lower() for r in partly.itertuples(index=False))
                     + " gaat het de goede kant op, maar niet zo ver als beloofd of als de regio "
                       "zich ten doel stelde; bespreek met scholen en jeugdhulp waarom, en volg "
                       "deze indicatoren in het volgende schooljaar.")
    not_shown = v[v["group"].isin(["niet aangetoond", "tegengesteld aan de claim"])]
    if not not_shown.empty:
        items.append("**Kijk opnieuw naar wat niet is aangetoond.** Voor "
                     + f.join_and(r.label.lower() for r in not_shown.itertuples(index=False))
                     + " laten de gegevens geen verbetering zien; ga na of de werkwijze daar "
                       "anders uitpakt dan bedoeld, of dat de meting het effect niet vangt.")
    untested = v[v["group"].isin(["niet te bepalen", "niet te scheiden"])]
    if not untested.empty:
        items.append("**Maak toetsen mogelijk.** "
                     + f.join_and(r.label for r in untested.itertuples(index=False))
                     + " " + ("kon" if len(untested) == 1 else "konden")
                     + " niet worden getoetst (zie de redenen hierboven); lever de ontbrekende "
                       "gegevens aan of voeg vergelijkingsscholen toe.")
    if n_pilot < a.few_treated or n_comp < a.few_treated:
        items.append(f"**Meer scholen in de vergelijking.** Met {n_pilot} pilot- en {n_comp} "
                     f"vergelijkingsscholen zijn alleen grote effecten aan te tonen; een "
                     f"evaluatie over meer scholen of meer jaren geeft een steviger oordeel.")
    flagged = _flagged_trends(trends)
    if not flagged.empty:
        items.append("**Controleer de vergelijkingsscholen.** Bij "
                     + f.join_and(r["Indicator"].lower() for _, r in flagged.iterrows())
                     + " liepen de groepen vóór de start niet gelijk op; kies zo mogelijk "
                       "vergelijkingsscholen die vóór de start meer op de pilotscholen leken.")
    if not _missing_shares(es).empty:
        items.append("**Vul de registratie aan.** Bij een deel van de trajecten ontbreken "
                     "gegevens (zie Beperkingen); volledige registratie maakt de volgende "
                     "evaluatie betrouwbaarder.")
    if p.costs is not None and p.costs.example:
        items.append("**Gebruik de eigen tarieven.** De kosten en baten rusten op "
                     "voorbeeldtarieven; met de tarieven van de regio wordt het saldo een "
                     "schatting in plaats van een rekenvoorbeeld.")
    if synthetic:
        items.append("**Herhaal de evaluatie met echte gegevens.** Dit rapport toont de werkwijze "
                     "op synthetische gegevens; pas met de registraties van scholen en jeugdhulp "
                     "zegt het iets over de pilot.")
    if not items:
        items.append("**Blijf volgen.** De claims zijn bevestigd; volg de indicatoren jaarlijks "
                     "om te zien of het effect standhoudt.")
    return "\n".join(f"- {item}" for item in items)


def _flagged_trends(trends: pd.DataFrame | None) -> pd.DataFrame:
    """Rows of the parallel-trends table whose pre-start test signals (possibly) unequal trends."""
    if trends is None or trends.empty or not {"Opmerking", "Toets vóórperiode (p)"} <= set(trends):
        return pd.DataFrame()
    note = trends["Opmerking"].astype(str)
    return trends[note.str.contains("aanwijzing voor ongelijke") & ~note.str.startswith("geen")]


def _missing_shares(es: EstimateSet, above: float = 0.05) -> pd.Series:
    """Per primary indicator the share of records without a value, where it exceeds `above`."""
    did = es.table[(es.table["comparison"] == methods.DID) & es.table["primary"]]
    share = (did["n_missing"] / (did["n"] + did["n_missing"])).set_axis(did["indicator"])
    return share[share > above]


def _rounded_count(es: EstimateSet, n: int) -> str:
    """A count as the report publishes it: rounded to the base, withheld below the minimum."""
    from evaluation.report.disclosure import round_to_base

    rule = es.params.disclosure
    if n < rule.min_count:
        return f"minder dan {rule.min_count}"
    return f"ongeveer {f.integer(int(round_to_base(pd.Series([n]), rule.rounding_base).iloc[0]))}"


def groups_compared(es: EstimateSet) -> pd.DataFrame:
    """Pilot and comparison schools side by side before the start: how many schools, how large,
    and where each primary indicator stood. Differences in level are no objection to the
    comparison; the reader should see them (a limitation of a design without a lottery)."""
    from evaluation.report.findings import period_values, value_text

    design = es.design
    counts = design["group"].value_counts()
    d = es.data["care_reports_per_100"]
    before_years = sorted(d.loc[(d["group"] == "pilot") & (d["period"] == "before"),
                                "school_year"].unique())
    base = d[((d["group"] == "pilot") & (d["period"] == "before"))
             | ((d["group"] == "comparison") & d["school_year"].isin(before_years))]
    per_school = (base.groupby(["group", "school_id", "school_year"], observed=True)["exposure"]
                  .sum().groupby(level="group", observed=True).mean())
    rows = [{"Kenmerk": "Aantal scholen",
             **{label: f.integer(counts.get(g, 0)) for g, label in _GROUP_COLUMNS}},
            {"Kenmerk": "Leerlingen per school (gemiddeld, vóór de start)",
             **{label: f.integer(round(per_school[g], -1)) if g in per_school else f.SUPPRESSED
                for g, label in _GROUP_COLUMNS}}]
    for ind_id in PRIMARY:
        ind = INDICATORS[ind_id]
        pv = period_values(es, ind_id).set_index("group")
        rows.append({"Kenmerk": f"{ind.label_nl}, vóór de start",
                     **{label: value_text(ind, pv.loc[g, "before"]) if g in pv.index
                        else f.SUPPRESSED for g, label in _GROUP_COLUMNS}})
    return pd.DataFrame(rows)


_GROUP_COLUMNS = (("pilot", "Pilotscholen"), ("comparison", "Vergelijkingsscholen"))


def limitations_markdown(es: EstimateSet, trends: pd.DataFrame | None = None,
                         synthetic: bool = False) -> str:
    """The limitations that apply to this report, each from its data."""
    p = es.params
    a = p.analysis
    design = es.design
    n_pilot = int((design["group"] == "pilot").sum())
    n_comp = int((design["group"] == "comparison").sum())
    items = []
    if synthetic:
        items.append("**Synthetische gegevens.** De cijfers beschrijven geen echte leerlingen; ze "
                     "tonen hoe de evaluatie werkt.")
    items.append(
        f"**Geen loting.** De {n_pilot} pilotscholen zijn niet door loting gekozen; de "
        f"{n_comp} vergelijkingsscholen zijn scholen in de regio die (nog) niet met de nieuwe "
        f"werkwijze werkten. Het verschil-in-verschillen neemt aan dat beide groepen zonder "
        f"pilot dezelfde ontwikkeling hadden gehad; verschillen in niveau vóór de start zijn "
        f"geen bezwaar, verschillen in ontwikkeling wel.")
    cohorts = sorted(design.loc[design["group"] == "pilot", "cohort"].dropna().unique())
    if len(cohorts) > 1:
        items.append(f"**Gespreide start.** Pilotscholen begonnen in {len(cohorts)} verschillende "
                     f"schooljaren ({', '.join(cohorts)}); scholen die later begonnen, tellen "
                     f"tot hun start mee als vergelijking. De analyse per startjaar (hoofdstuk "
                     f"Robuustheid) controleert of dat de uitkomst vertekent.")
    if n_pilot < a.few_treated or n_comp < a.few_treated or n_pilot + n_comp < a.few_schools:
        items.append(
            f"**Weinig scholen.** Met {n_pilot + n_comp} scholen zijn de onzekerheidsmarges "
            f"berekend met methoden voor weinig scholen"
            + (f"; met minder dan {a.few_treated} pilot- of vergelijkingsscholen is de "
               f"kleinst haalbare p-waarde begrensd door het aantal mogelijke toewijzingen"
               if min(n_pilot, n_comp) < a.few_treated else "")
            + ". Kleine effecten zijn met zo weinig scholen niet aan te tonen (zie het "
              "kleinste aantoonbare effect in de verantwoording).")
    flagged = _flagged_trends(trends)
    if not flagged.empty:
        names = "; ".join(f"{r['Indicator'].lower()} (p = {r['Toets vóórperiode (p)']})"
                          for _, r in flagged.iterrows())
        items.append(f"**Trends vóór de start.** Bij {names} ontwikkelden pilot- en "
                     f"vergelijkingsscholen zich vóór de start (mogelijk) verschillend; het "
                     f"effect op die indicatoren is met voorzichtigheid te lezen.")
    gaps = _missing_shares(es)
    if not gaps.empty:
        names = "; ".join(f"{INDICATORS[ind].label_nl.lower()} ({f.percent(s, 0)} zonder waarde)"
                          for ind, s in gaps.items())
        items.append(f"**Ontbrekende waarden.** Bij {names} ontbreekt een deel van de gegevens; "
                     f"die trajecten tellen niet mee. Als ze ontbreken om redenen die met de "
                     f"uitkomst samenhangen, kan dat de schatting vertekenen.")
    sat = es.data.get("school_satisfaction")
    if sat is not None and len(sat):
        now = sat[sat["school_year"] == p.school_year]
        n_now = int(len(now))
        items.append(
            "**Vragenlijsten.** De tevredenheid berust op wie de vragenlijst invulde"
            + (f" (in {p.school_year} {_rounded_count(es, n_now)} antwoorden van scholen)"
               if n_now else "")
            + "; wie niet antwoordde, telt niet mee. Antwoorden tevreden scholen vaker, dan is "
              "de tevredenheid overschat; omdat hetzelfde op vergelijkingsscholen geldt, raakt "
              "dat het verschil tussen beide minder.")
    if p.costs is not None and p.costs.example:
        items.append("**Voorbeeldtarieven.** De kosten en baten zijn berekend met "
                     "voorbeeldtarieven, niet met de tarieven van de regio; het saldo is een "
                     "rekenvoorbeeld.")
    return "\n".join(f"- {item}" for item in items)
