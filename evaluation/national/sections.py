"""The Dutch text, tables and figures of the national overview report (`national.build`).

Everything here formats an `Overview` computed once by `national.overview.compute_overview`: the
funnel plots and the regions outside their limits, the regional estimates side by side, the
summary and method text, all with decimal commas and disclosure control; the notebooks in
`notebooks/national/` call these functions and nothing else computes a number.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from evaluation.national.overview import FUNNEL_INDICATORS, SLUGS, Overview
from evaluation.params import Disclosure
from evaluation.registry import INDICATORS
from evaluation.report import formatting as f
from evaluation.report.figure_text import show_figure_with_text

# --- formatting: what the report shows ---------------------------------------------------------


def is_share(indicator: str) -> bool:
    return INDICATORS[indicator].kind == "proportion"


def format_rate(value: float, indicator: str) -> str:
    """A region's value as the report shows it: rates per 100 pupils with two decimals, shares
    as a percentage with one."""
    if pd.isna(value):
        return f.SUPPRESSED
    return f.percent(value / 100, 1) if is_share(indicator) else f.number(value, 2)


def _value_words(indicator: str) -> tuple[str, str, str]:
    """(size noun, count noun, value unit) in Dutch for tables and text."""
    if is_share(indicator):
        return "Trajecten", "Met kenmerk", "% van de trajecten"
    noun = "Zorgmeldingen" if indicator.startswith("care_reports") else "Verwijzingen"
    return "Leerlingen", noun, "per 100 leerlingen"


def funnel_shown(frame: pd.DataFrame, rule: Disclosure, indicator: str) -> pd.DataFrame:
    """`frame` with `shown`: False where the count, the size or (for a share) the records
    without the event fall below the threshold after rounding; such a region is no point of
    the figure and no row of a table, and its rate is withheld. Counts rounded to the base."""
    from evaluation.report.disclosure import round_to_base

    out = frame.copy()
    out.attrs = dict(frame.attrs)
    parts = [out["count"], out["size"]] + ([out["size"] - out["count"]]
                                           if is_share(indicator) else [])
    small = np.zeros(len(out), dtype=bool)
    for s in parts:
        raw = pd.Series(s.to_numpy(float))
        rounded = round_to_base(raw, rule.rounding_base).astype(float)
        small |= ((raw < rule.min_count) | (rounded < rule.min_count)).to_numpy()
    out["shown"] = ~small
    out["count_published"] = round_to_base(out["count"], rule.rounding_base).mask(small)
    out["size_published"] = round_to_base(out["size"], rule.rounding_base).mask(small)
    out["rate_published"] = out["rate"].where(~small)
    return out


def _outside(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["flag"].isin(["high_998", "low_998"])]


def outside_table(overview: Overview, indicator: str) -> pd.DataFrame:
    """The shown regions outside the 99.8% limits, in Dutch: size and count (rounded), the value,
    the 99.8% limits at its size and whether it lies above or below."""
    shown = funnel_shown(overview.funnels[indicator], overview.disclosure, indicator)
    t = _outside(shown[shown["shown"]]).sort_values(["flag", "rate"], ascending=[True, False])
    size_word, count_word, unit = _value_words(indicator)
    value_col = "Aandeel (%)" if is_share(indicator) else "Per 100 leerlingen"
    count_col = f"Aantal {count_word.lower()}"
    return pd.DataFrame({
        "Regio": t["label"].astype(str),
        size_word: t["size_published"].map(f.integer),
        count_col: t["count_published"].map(f.integer),
        value_col: t["rate"].map(lambda v: format_rate(v, indicator)),
        "99,8%-grenzen": [f"{format_rate(lo, indicator)} tot {format_rate(hi, indicator)}"
                          for lo, hi in zip(t["lower_0.998"], t["upper_0.998"], strict=True)],
        "Ligging": t["flag_nl"],
    })


def published_outside(overview: Overview, indicator: str):
    """The outside table's counts as numbers, for `disclosure.check_published`."""
    from evaluation.report.disclosure import PublishedTable

    shown = funnel_shown(overview.funnels[indicator], overview.disclosure, indicator)
    t = _outside(shown[shown["shown"]])
    return PublishedTable(f"funnel-{SLUGS[indicator]}",
                          t[["label", "size_published", "count_published"]].reset_index(
                              drop=True), ["size_published", "count_published"])


def funnel_facts(overview: Overview, indicator: str) -> dict[str, Any]:
    frame = overview.funnels[indicator]
    shown = funnel_shown(frame, overview.disclosure, indicator)
    vis = shown[shown["shown"]]
    corr = overview.corrected[indicator]
    corr_vis = corr[shown["shown"].to_numpy()]
    return {
        "national": frame.attrs["national_rate"], "regions": len(frame), "shown": len(vis),
        "hidden": int((~shown["shown"]).sum()),
        "high_998": int((vis["flag"] == "high_998").sum()),
        "low_998": int((vis["flag"] == "low_998").sum()),
        "between": int(vis["flag"].isin(["high_95", "low_95"]).sum()),
        "inside": int((vis["flag"] == "inside").sum()),
        "phi": float(corr.attrs.get("phi", 1.0)),
        "outside_corrected": int(corr_vis["flag"].isin(["high_998", "low_998"]).sum()),
    }


def _regions_word(n: int) -> str:
    return f.count_noun(n, "regio", "regio's")


def funnel_text(overview: Overview, indicator: str) -> str:
    ind = INDICATORS[indicator]
    x = funnel_facts(overview, indicator)
    national = format_rate(x["national"], indicator)
    unit = "van de trajecten" if is_share(indicator) else "per 100 leerlingen"
    text = (f"In schooljaar {overview.school_year} was het landelijke cijfer {national} {unit} "
            f"({ind.name_nl.lower()}). Van de {_regions_word(x['shown'])} in de figuur liggen "
            f"er {f.integer(x['high_998'] + x['low_998'])} buiten de 99,8%-grenzen: "
            f"{f.integer(x['high_998'])} erboven en {f.integer(x['low_998'])} eronder. Tussen "
            f"de 95%- en de 99,8%-grenzen: {f.integer(x['between'])}; binnen de "
            f"95%-grenzen: {f.integer(x['inside'])}.")
    if x["hidden"]:
        one = x["hidden"] == 1
        text += (f" {_regions_word(x['hidden']).capitalize()} met te kleine aantallen "
                 f"(minder dan {overview.disclosure.min_count}) "
                 f"{'staat' if one else 'staan'} niet in de figuur en de tabel; "
                 f"{'ze telt' if one else 'ze tellen'} wel mee in het landelijke cijfer.")
    if x["phi"] > 1:
        text += (f" Regio's verschillen meer dan toeval verklaart (overdispersiefactor "
                 f"{f.number(x['phi'], 1)}): met grenzen die daarvoor gecorrigeerd zijn, "
                 f"liggen {f.integer(x['outside_corrected'])} van de getoonde regio's buiten "
                 "de 99,8%-grenzen.")
    return text


def funnel_caption(overview: Overview, indicator: str) -> str:
    ind = INDICATORS[indicator]
    what = "aandeel" if is_share(indicator) else "aantal per 100 leerlingen"
    return (f"Trechterdiagram: {ind.name_nl.lower()} per regio ({what}) tegen de omvang van de "
            f"regio, schooljaar {overview.school_year}, met het landelijke cijfer en de 95%- en "
            "99,8%-grenzen (Poisson voor aantallen, binomiaal voor aandelen).")


def funnel_alt(overview: Overview, indicator: str) -> str:
    ind = INDICATORS[indicator]
    x = funnel_facts(overview, indicator)
    size = "het aantal trajecten" if is_share(indicator) else "het aantal leerlingen"
    value = "het aandeel" if is_share(indicator) else "het aantal per 100 leerlingen"
    alt = (f"Trechterdiagram van {ind.name_nl.lower()}, schooljaar {overview.school_year}: "
           f"per regio een punt met {value} op de verticale as tegen {size} op de "
           f"logaritmische horizontale as, een horizontale lijn voor het landelijke cijfer van "
           f"{format_rate(x['national'], indicator)} en trechtervormige 95%- en 99,8%-grenzen "
           f"die smaller worden naarmate de regio groter is. Van de {_regions_word(x['shown'])} "
           f"in de figuur liggen er {f.integer(x['high_998'] + x['low_998'])} buiten de "
           f"99,8%-grenzen ({f.integer(x['high_998'])} erboven, {f.integer(x['low_998'])} "
           f"eronder) en {f.integer(x['between'])} tussen de 95%- en 99,8%-grenzen.")
    if x["hidden"]:
        alt += f" {_regions_word(x['hidden']).capitalize()} met te kleine aantallen ontbreken."
    return alt + " De regio's buiten de 99,8%-grenzen staan in de tabel onder de figuur."


def funnel_plot(overview: Overview, indicator: str):
    """The funnel figure of the shown regions, around the national rate of all regions; the size
    axis gets ticks at 1, 2 and 5 times powers of ten."""
    from matplotlib.ticker import LogLocator

    from evaluation.national.funnel import funnel_figure

    shown = funnel_shown(overview.funnels[indicator], overview.disclosure, indicator)
    vis = shown[shown["shown"]].copy()
    attrs = dict(overview.funnels[indicator].attrs)
    vis.attrs = attrs
    many = len(_outside(vis)) > 8
    if is_share(indicator):
        fig = funnel_figure(vis, xlabel="Aantal trajecten (logaritmische schaal)",
                            ylabel="Aandeel (%)", annotate_flagged=not many)
    else:
        fig = funnel_figure(vis, xlabel="Aantal leerlingen (logaritmische schaal)",
                            ylabel="Per 100 leerlingen", annotate_flagged=not many)
    ax = fig.axes[0]
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    return fig


# --- regional estimates side by side ----------------------------------------------------------


def _effect_null(unit: str) -> float:
    return 1.0 if unit in ("rate ratio", "hazard ratio") else 0.0


def estimate_rows(overview: Overview, indicator: str) -> pd.DataFrame:
    """The nation first, then the regions with a pilot by the school year, sorted by name."""
    e = overview.estimates
    e = e[(e["indicator"] == indicator) & (e["note"].fillna("") != _no_pilot())]
    nat = e[e["level"] == "nationaal"]
    reg = e[e["level"] != "nationaal"].sort_values("region_name")
    return pd.concat([nat, reg], ignore_index=True)


def _no_pilot() -> str:
    from evaluation.national.estimates import NO_PILOT

    return NO_PILOT


def estimates_table(overview: Overview, indicator: str) -> pd.DataFrame:
    """Dutch table: per region (and the nation) the difference-in-differences effect, its
    interval, the adjusted p-value, pilot and comparison schools and the comparison group."""
    from evaluation.report.findings import effect, interval

    t = estimate_rows(overview, indicator)
    level = round(100 * (1 - overview.alpha))
    notes = []
    for _, row in t.iterrows():
        note = str(row["note"]) if pd.notna(row["note"]) and row["note"] else ""
        if not note and pd.notna(row["estimate"]) and pd.isna(row["ci_low"]):
            note = "geen interval: te weinig scholen"
        notes.append(note)
    return pd.DataFrame({
        "Regio": t["region_name"].astype(str),
        "Start pilot": t["first_pilot_year"].fillna("").astype(str),
        "Pilotscholen": t["n_pilot_schools"].map(lambda v: f.integer(v)),
        "Vergelijkingsscholen": t["n_comparison_schools"].map(lambda v: f.integer(v)),
        "Vergelijkingsgroep": t["comparison_group"].fillna("").astype(str),
        "Effect": [effect(v, u) for v, u in zip(t["estimate"], t["unit"], strict=True)],
        f"{level}%-interval": [interval(lo, hi, u) for lo, hi, u in
                               zip(t["ci_low"], t["ci_high"], t["unit"], strict=True)],
        "p (gecorrigeerd)": t["p_value_adjusted"].map(f.p_value),
        "Opmerking": notes,
    })


def _scale_words(unit: str) -> str:
    from evaluation.report.findings import UNIT_NAMES

    return UNIT_NAMES.get(unit, unit)


def _forest_counts(overview: Overview, indicator: str) -> dict[str, int]:
    t = estimate_rows(overview, indicator)
    reg = t[(t["level"] != "nationaal") & t["ci_low"].notna() & t["ci_high"].notna()]
    if reg.empty:
        return {"regions": 0, "better": 0, "worse": 0, "unclear": 0}
    unit = str(reg["unit"].iloc[0])
    null = _effect_null(unit)
    above, below = reg["ci_low"] > null, reg["ci_high"] < null
    # For durations a hazard ratio above 1 means sooner, i.e. shorter (presentation.improved).
    better_is_lower = INDICATORS[indicator].better == "lower" and unit != "hazard ratio"
    better = int((below if better_is_lower else above).sum())
    worse = int((above if better_is_lower else below).sum())
    return {"regions": len(reg), "better": better, "worse": worse,
            "unclear": len(reg) - better - worse}


def estimates_text(overview: Overview, indicator: str) -> str:
    from evaluation.report.findings import effect, interval

    ind = INDICATORS[indicator]
    t = estimate_rows(overview, indicator)
    nat = t[t["level"] == "nationaal"]
    c = _forest_counts(overview, indicator)
    level = round(100 * (1 - overview.alpha))
    parts = []
    if not nat.empty and pd.notna(nat["estimate"].iloc[0]):
        n = nat.iloc[0]
        parts.append(f"Landelijk is het effect op {ind.name_nl.lower()} "
                     f"{effect(n['estimate'], n['unit'])} ({_scale_words(n['unit'])}; "
                     f"{level}%-interval {interval(n['ci_low'], n['ci_high'], n['unit'])}).")
    parts.append(f"Van de {_regions_word(c['regions'])} met een interval ligt dat bij "
                 f"{f.integer(c['better'])} geheel aan de gunstige kant van geen effect, bij "
                 f"{f.integer(c['worse'])} geheel aan de ongunstige kant en bij "
                 f"{f.integer(c['unclear'])} omvat het geen effect.")
    return " ".join(parts)


def forest_caption(overview: Overview, indicator: str) -> str:
    level = round(100 * (1 - overview.alpha))
    return (f"Effect van de pilot op {INDICATORS[indicator].name_nl.lower()} per regio en "
            f"landelijk (verschil-in-verschillen), met {level}%-interval, schooljaar "
            f"{overview.school_year}.")


def forest_alt(overview: Overview, indicator: str) -> str:
    from evaluation.report.findings import effect

    t = estimate_rows(overview, indicator)
    c = _forest_counts(overview, indicator)
    nat = t[t["level"] == "nationaal"]
    unit = str(t["unit"].iloc[0]) if len(t) else ""
    null = f.number(_effect_null(unit), 0)
    national = (f" Het landelijke effect, bovenaan als ruit, is "
                f"{effect(nat['estimate'].iloc[0], unit)}."
                if not nat.empty and pd.notna(nat["estimate"].iloc[0]) else "")
    return (f"Bosdiagram van het effect op {INDICATORS[indicator].name_nl.lower()}: per regio "
            f"een punt met een horizontale lijn voor het interval, op een as in "
            f"{_scale_words(unit)}, met een verticale lijn bij geen effect ({null}).{national} "
            f"Bij {f.integer(c['better'])} van de {_regions_word(c['regions'])} ligt het hele "
            f"interval aan de gunstige kant, bij {f.integer(c['worse'])} aan de ongunstige kant, "
            f"bij {f.integer(c['unclear'])} omvat het geen effect. De getallen staan in de "
            "tabel onder de figuur.")


def forest_plot(overview: Overview, indicator: str):
    """Point estimates with intervals, one row per region, the nation on top (a diamond)."""
    import matplotlib.pyplot as plt

    from evaluation.report.plots import PALETTE, decimal_comma, house_style

    house_style()
    t = estimate_rows(overview, indicator)
    t = t[t["estimate"].notna()].reset_index(drop=True)
    unit = str(t["unit"].iloc[0]) if len(t) else ""
    ratio = unit in ("rate ratio", "hazard ratio")
    n = len(t)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.24 * n + 1.4)))
    ys = np.arange(n)[::-1]
    nat = (t["level"] == "nationaal").to_numpy()
    lo = t["ci_low"].to_numpy(float)
    hi = t["ci_high"].to_numpy(float)
    est = t["estimate"].to_numpy(float)
    has = ~np.isnan(lo) & ~np.isnan(hi)
    ax.hlines(ys[has], lo[has], hi[has], color="0.35", linewidth=1.2)
    ax.scatter(est[~nat], ys[~nat], color=PALETTE[0], s=22, zorder=3, label="Regio")
    ax.scatter(est[nat], ys[nat], color=PALETTE[3], marker="D", s=50, zorder=4,
               label="Landelijk")
    ax.axvline(_effect_null(unit), color="black", linewidth=1)
    ax.set_yticks(ys)
    ax.set_yticklabels(t["region_name"].astype(str), fontsize=8)
    ax.set_ylim(-0.8, n - 0.2)
    if ratio:
        from matplotlib.ticker import LogLocator

        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
    decimal_comma(ax, 2 if ratio else 1, axis="x")
    ax.set_xlabel(f"Effect ({_scale_words(unit)})")
    ax.grid(axis="y", visible=False)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
              frameon=False)
    fig.tight_layout()
    return fig


# --- summary, method ----------------------------------------------------------------------------


def summary_markdown(overview: Overview) -> str:
    r = overview.regions
    rule = overview.disclosure
    from evaluation.report.disclosure import round_to_base

    pupils = int(round_to_base(pd.Series([r["pupils"].sum()]), rule.rounding_base).iloc[0])
    active = r[r["active"]]
    by_start = active.groupby("first_pilot_year").size().sort_index()
    starts = ", ".join(f"{f.integer(n)} in {y}" for y, n in by_start.items())
    text = (f"Dit overzicht zet {_regions_word(len(r))} naast elkaar in schooljaar "
            f"{overview.school_year}. Samen telden zij {f.integer(pupils)} leerlingen op "
            f"{f.integer(int(r['schools'].sum()))} scholen voor voortgezet onderwijs. ")
    if active.empty:
        text += "Geen enkele regio werkte in dat schooljaar met de pilot."
    else:
        text += (f"In {_regions_word(len(active))} werkte in dat schooljaar minstens één school "
                 f"met de pilot ({f.integer(int(active['pilot_schools'].sum()))} scholen); de "
                 f"eerste begon in schooljaar {by_start.index[0]}. Naar startjaar van de eerste "
                 f"school: {starts}. {_regions_word(len(r) - len(active)).capitalize()} "
                 f"{'had' if len(r) - len(active) == 1 else 'hadden'} nog geen pilot.")
    return text


def key_figures(overview: Overview) -> pd.DataFrame:
    """Per key indicator: the national value, regions above and below the 99.8% limits and the
    national effect with its interval."""
    from evaluation.report.findings import effect, interval

    level = round(100 * (1 - overview.alpha))
    rows = []
    e = overview.estimates
    for ind in FUNNEL_INDICATORS:
        x = funnel_facts(overview, ind)
        nat = e[(e["indicator"] == ind) & (e["level"] == "nationaal")]
        n = nat.iloc[0] if len(nat) else None
        rows.append({
            "Indicator": INDICATORS[ind].label_nl,
            "Landelijk cijfer": format_rate(x["national"], ind)
            + ("" if is_share(ind) else " per 100"),
            "Boven 99,8%-grens": f.integer(x["high_998"]),
            "Onder 99,8%-grens": f.integer(x["low_998"]),
            "Landelijk effect": effect(n["estimate"], n["unit"]) if n is not None else f.SUPPRESSED,
            f"{level}%-interval": (interval(n["ci_low"], n["ci_high"], n["unit"])
                                   if n is not None else f.SUPPRESSED),
        })
    return pd.DataFrame(rows)


def method_markdown(overview: Overview) -> str:
    e = overview.estimates
    reg = e[(e["level"] != "nationaal") & (e["note"].fillna("") != _no_pilot())]
    groups = reg.drop_duplicates("region")["comparison_group"].value_counts()
    listed = "; ".join(f"{g}: {_regions_word(int(n))}" for g, n in groups.items())
    method = "Holm" if overview.multiple_testing == "holm" else "Benjamini-Hochberg"
    return (f"Per regio met een pilot vergelijkt de evaluatie de pilotscholen met "
            f"vergelijkingsscholen (verschil-in-verschillen met school- en schooljaarvaste "
            f"effecten, de {f.integer(overview.baseline_years)} schooljaren vóór de start als "
            f"basis). Vergelijkingsgroep per regio: {listed}. Een regio waarin alle scholen "
            f"meedoen, vergelijkt met scholen uit andere regio's die nooit begonnen. De "
            f"p-waarden zijn binnen elke regio gecorrigeerd voor meervoudig toetsen ({method}); "
            f"het landelijke effect gebruikt alle scholen die (nog) niet begonnen als "
            f"vergelijking.")


# --- figures with computed alt text -----------------------------------------------------------

def show_figure(fig, alt: str, caption: str) -> None:
    """Display a figure with its computed alt text and caption (`report.figure_text`)."""
    show_figure_with_text(fig, alt, caption)


