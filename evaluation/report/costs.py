"""Costs and savings as the report shows them: euros with a decimal comma, counts after disclosure
control, the tariffs with their sources and the balance figure. The numbers come from
`evaluation.analysis.costs.cost_benefit`."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import pandas as pd

from evaluation.analysis.costs import ITEM_NAMES, LEVEL_NAMES, NOT_MONETISED, CostBenefit, Ranged
from evaluation.params import EXAMPLE_SOURCE_PREFIX
from evaluation.report import formatting as f

if TYPE_CHECKING:
    import matplotlib.pyplot as plt


def euro(x: float) -> str:
    """`1234567.4` -> `€ 1.234.567` (whole euros; a true minus sign after the euro sign)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return f.SUPPRESSED
    if math.isinf(x):
        return "onbegrensd"
    return f"€ {f.integer(x)}"


def _published_count(cb: CostBenefit, n: int) -> str:
    """A count as published: rounded to the base, withheld below the threshold."""
    from evaluation.report.disclosure import round_to_base

    rule = cb.disclosure
    rounded = int(round_to_base(pd.Series([n]), rule.rounding_base).iloc[0])
    if n < rule.min_count or rounded < rule.min_count:
        return f.SUPPRESSED
    return f.integer(rounded)


def _interval(r: Ranged, fmt) -> str:
    if math.isnan(r.low) or math.isnan(r.high):
        return ""
    return f"{fmt(r.low)} tot {fmt(r.high)}"


def _amount(x: float) -> str:
    return f.number(x, 0 if float(x).is_integer() else 2)


def _count(x: float) -> str:
    return f.number(x, 0)


def example_warning(cb: CostBenefit) -> str:
    """The visible warning every cost section with example values must carry ('' otherwise)."""
    if not cb.example:
        return ""
    return ("**Let op: voorbeeldtarieven.** De bedragen rusten op voorbeeldwaarden, te vervangen "
            "door de eigen tarieven van de regio; het zijn geen werkelijke tarieven.")


def cost_caption(cb: CostBenefit) -> str:
    """Table caption; names the example tariffs when they are used."""
    text = (f"Kosten van de pilot en vermeden kosten, schooljaar {cb.school_year} "
            f"({cb.level}%-interval: onzekerheid van de geschatte effecten)")
    if cb.example:
        text += " — VOORBEELDTARIEVEN, te vervangen door de eigen tarieven van de regio"
    return text


def _duration_note(cb: CostBenefit) -> list[str]:
    hr = cb.duration_effect
    if not math.isfinite(hr.point):
        return []
    return [f"Effect op de mediane duur van trajecten (verschil-in-verschillen): "
            f"{f.number(hr.point, 0)} dagen ({f.number(hr.low, 0)} tot {f.number(hr.high, 0)}; "
            f"negatief: korter)."]


def cost_notes(cb: CostBenefit) -> str:
    """Notes under the cost table: warning, method, assumptions and the sources of the tariffs."""
    mix = ", ".join(f"{LEVEL_NAMES[lv]} {f.percent(v, 0)}" for lv, v in cb.mix.items() if v > 0)
    # Example tariffs are announced once, at the head of the section (`example_warning`), and
    # each tariff's source stands in the inputs table: neither is repeated here.
    lines = [
        f"Het interval geeft alleen de onzekerheid van de geschatte effecten weer "
        f"(parametrische bootstrap, {f.integer(cb.draws)} trekkingen uit de intervallen van de "
        "verschil-in-verschillenschattingen: op logschaal voor de verhouding van de aantallen, "
        "normaal voor het "
        "verschil in procentpunten, onafhankelijk van elkaar); de tarieven zijn als vast gegeven "
        "genomen.",
        f"Vermeden trajecten zwaardere zorg zijn geprijsd naar de {cb.mix_origin} ({mix})"
        + (", min de kosten van een licht traject dat ervoor in de plaats komt."
           if cb.costs.light_replaces_avoided else "."),
        "Per vermeden dubbele intake is één intake bespaard (een ondergrens).",
        *cb.notes,
        *_duration_note(cb),
        NOT_MONETISED,
    ]
    return "\n\n".join(lines)




def cost_table(cb: CostBenefit) -> pd.DataFrame:
    """The cost section's table, formatted in Dutch; caption and notes in `attrs`."""
    c = cb.costs
    interval = f"{cb.level}%-interval"
    schools = (f.integer(cb.pilot_schools) if float(cb.pilot_schools).is_integer()
               else f.number(cb.pilot_schools, 1))
    rows = [
        ("Kosten pilot per schooljaar", euro(cb.pilot_costs), "",
         f"{schools} scholen × {_amount(c.core_team_hours_per_week.value)} uur per week × "
         f"{f.integer(c.weeks_per_school_year.value)} weken × {euro(c.hourly_rate.value)} per uur"
         f" + coördinatie {euro(cb.coordination_costs)}"),
        ("Vermeden trajecten zwaardere zorg (aantal)", _count(cb.avoided_referrals.point),
         _interval(cb.avoided_referrals, _count),
         f"{_published_count(cb, cb.observed_referrals)} verwijzingen in {cb.school_year}, "
         f"effect {f.percent(abs(1 - cb.rate_ratio.point), 0)} "
         f"{'minder' if cb.rate_ratio.point < 1 else 'meer'}: zonder pilot naar schatting "
         f"{_count(cb.observed_referrals / cb.rate_ratio.point) if cb.rate_ratio.point > 0 else f.SUPPRESSED}"),
        ("Besparing per vermeden traject", euro(cb.saving_per_trajectory), "",
         "gemiddelde kosten zwaardere zorg" + (" min een licht traject"
                                              if c.light_replaces_avoided else "")),
        ("Vermeden kosten zwaardere zorg", euro(cb.referral_savings.point),
         _interval(cb.referral_savings, euro), ""),
        ("Vermeden dubbele intakes (aantal)", _count(cb.avoided_double_intakes.point),
         _interval(cb.avoided_double_intakes, _count),
         f"{_published_count(cb, cb.trajectories)} trajecten × "
         f"{f.number(-cb.double_intake_pp.point, 1)} procentpunt minder dubbele intakes"),
        ("Vermeden kosten dubbele intakes", euro(cb.intake_savings.point),
         _interval(cb.intake_savings, euro), f"{euro(c.intake.value)} per intake"),
        ("Vermeden kosten totaal", euro(cb.avoided_costs.point),
         _interval(cb.avoided_costs, euro), ""),
        ("Saldo (vermeden kosten min kosten pilot)", euro(cb.net.point),
         _interval(cb.net, euro), "positief: de pilot bespaart meer dan hij kost"
         if math.isfinite(cb.net.point) else "niet te bepalen: de vermeden kosten zijn niet "
         "berekend"),
        ("Saldo per leerling", euro(cb.net_per_pupil.point), _interval(cb.net_per_pupil, euro),
         f"{_published_count(cb, cb.pupils)} leerlingen op de pilotscholen"),
        ("Kosten pilot per vermeden traject zwaardere zorg", euro(cb.cost_per_avoided.point),
         _interval(cb.cost_per_avoided, euro), ""),
        ("Omslagpunt: vermeden trajecten nodig om de pilot terug te verdienen",
         _count(math.ceil(cb.break_even)) if math.isfinite(cb.break_even) else "onbegrensd", "",
         "kosten pilot gedeeld door de besparing per vermeden traject"),
    ]
    table = pd.DataFrame(rows, columns=["Post", "Waarde", interval, "Toelichting"])
    table.attrs["caption"] = cost_caption(cb)
    table.attrs["notes"] = cost_notes(cb)
    return table


def _source(source: str, example: bool) -> str:
    """A tariff's source as the inputs table gives it: with example values, which the caption
    and the section's warning announce once, without the repeated 'voorbeeldwaarde, te vervangen
    door ...' (what the value stands for, in brackets in the params, is kept)."""
    if not example or not source.startswith(EXAMPLE_SOURCE_PREFIX):
        return source
    inner = re.search(r"\((.*)\)\s*$", source, flags=re.S)
    return f"voorbeeld: {' '.join(inner.group(1).split())}" if inner else "voorbeeld"


def cost_inputs_table(cb: CostBenefit) -> pd.DataFrame:
    """Every tariff used, with its unit and source: the reader sees where each amount comes from."""
    rows = [(ITEM_NAMES[k], _amount(v.value), v.unit, _source(v.source, cb.example))
            for k, v in cb.costs.items().items()]
    table = pd.DataFrame(rows, columns=["Post", "Waarde", "Eenheid", "Bron"])
    table.attrs["caption"] = ("Gebruikte tarieven en hun bron"
                              + (" — VOORBEELDTARIEVEN" if cb.example else ""))
    return table


def cost_sentence(cb: CostBenefit, tag: bool = True) -> str:
    """One Dutch sentence: the balance with its interval; `tag=False` where the example
    warning stands right before it."""
    tag = " (voorbeeldtarieven)" if cb.example and tag else ""
    n = cb.net
    if math.isnan(n.point):
        return (f"Het saldo van kosten en vermeden kosten van de pilot in schooljaar "
                f"{cb.school_year} is niet berekend{tag}: "
                f"{cb.withheld or 'het effect is niet geschat'}.")
    after = (f"{tag}: {cb.level}%-interval {euro(n.low)} tot {euro(n.high)}, "
             f"{euro(cb.net_per_pupil.point)} per leerling")
    if n.low > 0:
        body = f"bespaart de pilot naar schatting {euro(n.point)} meer aan zorgkosten dan hij kost"
    elif n.high < 0:
        body = (f"kost de pilot naar schatting {euro(-n.point)} meer dan hij aan zorgkosten "
                "bespaart")
    else:
        body = (f"is het saldo van vermeden zorgkosten en kosten van de pilot {euro(n.point)}, "
                "niet aantoonbaar positief of negatief")
    return f"In schooljaar {cb.school_year} {body}{after}."


def euro_rounded(values: tuple[float, ...]) -> tuple[str, ...]:
    """Amounts rounded on one shared scale, as a summary gives them:
    (608787, 112000, 1310000) -> ("0,6 mln", "0,1 mln", "1,3 mln")."""
    top = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if top >= 1e6:
        return tuple(f"{f.number(v / 1e6, 1)} mln" for v in values)
    if top >= 1e4:
        return tuple(f"{f.integer(round(v / 1e3))} duizend" for v in values)
    return tuple(f.integer(round(v)) for v in values)


def balance_sentence(cb: CostBenefit) -> str:
    """The cost balance in the summary's words: rounded, with its margin, and whether the
    tariffs are examples ("≈ € 0,6 mln, marge € 0,1 tot 1,3 mln, op voorbeeldtarieven")."""
    n = cb.net
    tariffs = "op voorbeeldtarieven" if cb.example else "op de tarieven van de regio"
    if math.isnan(n.point):
        return (f"**Geld.** Het saldo van vermeden zorgkosten en kosten van de pilot is niet "
                f"berekend: {cb.withheld or 'het effect is niet geschat'}.")
    point, low, high = euro_rounded((n.point, n.low, n.high))
    margin = f"marge € {low} tot {high}" if math.isfinite(n.low) else "zonder marge"
    if n.low > 0:
        verdict = "De pilot bespaart naar schatting meer aan zorgkosten dan hij kost"
    elif n.high < 0:
        verdict = "De pilot kost naar schatting meer dan hij aan zorgkosten bespaart"
    else:
        verdict = ("Of de pilot meer bespaart dan hij kost, is niet aan te tonen: de marge "
                   "loopt van verlies tot winst")
    return (f"**Geld.** {verdict}: saldo ≈ € {point} in schooljaar {cb.school_year} "
            f"({margin}, {tariffs}; zie [Kosten en baten](#sec-kosten)).")


def cost_figure(cb: CostBenefit) -> plt.Figure:
    """Bars: pilot costs against avoided costs (by source, total with its interval)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    from evaluation.report.plots import PALETTE, house_style

    house_style()
    scale, unit = (1e6, "miljoen euro") if max(cb.pilot_costs, abs(cb.avoided_costs.point)
                                               if math.isfinite(cb.avoided_costs.point)
                                               else 0) >= 1e6 else (1e3, "duizend euro")
    fig, ax = plt.subplots()
    ax.bar(0, cb.pilot_costs / scale, color=PALETTE[3], label="Kosten pilot", width=0.6)
    ref = cb.referral_savings.point / scale
    intake = cb.intake_savings.point / scale
    if math.isfinite(ref):
        ax.bar(1, ref, color=PALETTE[0], label="Vermeden: zwaardere zorg", width=0.6)
        ax.bar(1, intake, bottom=ref, color=PALETTE[2], label="Vermeden: dubbele intakes",
               width=0.6)
        total = cb.avoided_costs
        if math.isfinite(total.low) and math.isfinite(total.high):
            # Centred on the interval, not the point: a bootstrap interval need not contain it.
            ax.errorbar(1, (total.low + total.high) / 2 / scale,
                        yerr=abs(total.high - total.low) / 2 / scale, fmt="none",
                        color="0.15", capsize=8, linewidth=1.5,
                        label=f"{cb.level}%-interval vermeden kosten")
    ax.set_xticks([0, 1], ["Kosten pilot", "Vermeden kosten"])
    ax.set_xlim(-0.7, 1.7)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_ylabel(f"Per schooljaar ({unit})")
    ax.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 5, 10]))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f.number(v, 1)))
    for x, value in ((0, cb.pilot_costs), (1, cb.avoided_costs.point)):
        if math.isfinite(value):
            ax.annotate(euro(value), (x, value / scale), xytext=(-30 if x else 0, 4),
                        textcoords="offset points", ha="right" if x else "center",
                        va="bottom", fontsize=9)
    title = f"Kosten en vermeden kosten, schooljaar {cb.school_year}"
    if cb.example:
        title += "\nVOORBEELDTARIEVEN — geen werkelijke tarieven"
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=9, frameon=False)
    fig.tight_layout()
    return fig
