"""The method section, written from the estimate records of the report.

Which model and which inference each comparison used, over how many schools and with how many
draws, is read from the records the analysis wrote (`method`, `inference`, `n_clusters`, `draws`)
and from the settings that chose them, so that text and computation cannot disagree: change the
inference settings and the text follows.
"""

from __future__ import annotations

import pandas as pd

from evaluation.analysis import methods
from evaluation.analysis.estimates import EstimateSet
from evaluation.report import formatting as f

KIND_WORDS = {"rate": "aantallen per 100 leerlingen", "proportion": "aandelen",
              "duration": "doorlooptijden", "scale": "tevredenheidsscores"}
COMPARISON_WORDS = {
    methods.BEFORE_AFTER: "Voor/na op de pilotscholen",
    methods.DID: "Verschil-in-verschillen",
    methods.DID_HAZARD: "Doorlooptijden, technische maat (bijlage)",
    methods.EVENT_STUDY: "Gespreide start",
    methods.ITS: "Onderbroken tijdreeks",
    methods.INDICATION_FREE: "Indicatievrije tegenover geïndiceerde trajecten",
}
ORDER = list(COMPARISON_WORDS)


def _schools(values: pd.Series) -> str:
    lo, hi = int(values.min()), int(values.max())
    return f.count_noun(hi, "school", "scholen") if lo == hi else f"{lo} tot {hi} scholen"


def _group_line(rows: pd.DataFrame, kinds: dict[str, str]) -> str:
    """One part of a bullet: the indicator kinds, the model and inference in words, the schools."""
    kind_names = sorted({KIND_WORDS[kinds[i]] for i in rows["indicator"]},
                        key=list(KIND_WORDS.values()).index)
    text = f"{' en '.join(kind_names)}: {rows['method'].iloc[0]} ({_schools(rows['n_clusters'])}"
    draws = rows["draws"].dropna()
    if len(draws):
        lo, hi = int(draws.min()), int(draws.max())
        word = ("toewijzingen" if rows["inference"].iloc[0] == "randomisation"
                else "trekkingen")
        text += f", {f.integer(hi)} {word}" if lo == hi else \
            f", {f.integer(lo)} tot {f.integer(hi)} {word}"
    return text + ")"


def comparison_list(es: EstimateSet) -> str:
    """Per comparison that produced estimates: per kind of indicator the model and the inference
    it used, as a Markdown list."""
    from evaluation.registry import INDICATORS

    t = es.table[es.table["estimate"].notna() & (es.table["method"] != "")]
    kinds = {i: INDICATORS[i].kind for i in es.table["indicator"].unique()}
    lines = []
    for comparison in ORDER:
        rows = t[t["comparison"] == comparison]
        if rows.empty:
            continue
        parts = [_group_line(g, kinds) for _, g in rows.groupby(["method", "inference"],
                                                                sort=False, dropna=False)]
        lines.append(f"- *{COMPARISON_WORDS[comparison]}* — " + "; ".join(parts) + ".")
    return "\n".join(lines)


def policy_text(es: EstimateSet) -> str:
    """The inference policy in words, with the settings of this report."""
    a = es.params.analysis
    t = es.table
    used = set(t.loc[t["estimate"].notna(), "inference"].dropna())
    level = int(round(100 * (1 - a.alpha)))
    text = (f"Leerlingen van één school delen de werkwijze van die school; daarom houdt elke "
            f"onzekerheidsmarge rekening met samenhang binnen scholen. Met minder dan "
            f"{f.integer(a.few_schools)} scholen zijn gewone clustergecorrigeerde standaardfouten "
            f"(CRV1) te klein; dan komen intervallen en p-waarden uit methoden die voor weinig "
            f"scholen gemaakt zijn: een cluster-jackknife (elke school één keer weggelaten, "
            f"t-verdeling), een wild cluster bootstrap of een clusterbootstrap over scholen. ")
    if "cluster_robust" in used:
        text += ("Waar genoeg scholen meedoen, zijn clustergecorrigeerde standaardfouten (CRV1) "
                 "gebruikt. ")
    if used & {"wild_bootstrap", "cluster_bootstrap"}:
        text += (f"Elke bootstrap gebruikt {f.integer(a.bootstrap_draws)} trekkingen met een vaste "
                 f"startwaarde, zodat het rapport bij elke opbouw dezelfde intervallen geeft; een "
                 f"p-waarde kleiner dan 1 gedeeld door het aantal trekkingen is niet te "
                 f"onderscheiden en staat als een bovengrens. ")
    text += (f"Met minder dan {f.integer(a.few_treated)} pilot- of vergelijkingsscholen is ook dat "
             f"niet betrouwbaar; dan vergelijken we het verschil-in-verschillen met de verschillen "
             f"die ontstaan als de pilot in de berekening aan andere scholen wordt toegewezen "
             f"(randomisatie-inferentie, ten hoogste {f.integer(a.max_reassignments)} "
             f"toewijzingen). De kleinste haalbare p-waarde is dan 1 gedeeld door het aantal "
             f"toewijzingen; met één pilotschool is een effect niet te scheiden van de school "
             f"zelf en geven we geen oordeel. Een voor/na-vergelijking van minder dan "
             f"{f.integer(a.few_treated)} pilotscholen heeft geen scholen om de pilot aan toe te "
             f"wijzen; daar komt het interval uit de cluster-jackknife, die zo breed is als "
             f"twee of drie scholen rechtvaardigen (met één pilotschool: geen interval, geen "
             f"schatting). ")
    text += (f"Doorlooptijden vergelijken we als verschil in de mediane duur in dagen volgens "
             f"Kaplan-Meier, waarin lopende trajecten meetellen als nog niet afgerond; de hazard "
             f"ratio van een Cox-model staat alleen als technische maat in de bijlage. Alle "
             f"intervallen zijn {level}%-betrouwbaarheidsintervallen.")
    return text


def method_text(es: EstimateSet) -> str:
    """The generated part of the method section: the policy, then per comparison what ran."""
    listing = comparison_list(es)
    return policy_text(es) + ("\n\n**Gebruikte modellen per vergelijking.**\n\n" + listing
                              if listing else "")
