"""The national overview report: every region side by side (`evaluation render --national`).

One report per school year: a funnel plot per key indicator (each region's rate against its size,
with 95% and 99.8% control limits around the national rate, `evaluation.funnel`), the regional
difference-in-differences estimates with their intervals side by side (`national.estimates_all_regions`),
a data-quality annex and a colophon. Same house style, disclosure control, publication audit and
accessibility as the regional whitepapers.

The heavy work runs once, in this process: the data are validated (rejected rows are counted in
the annex, never silently dropped), and the funnels and estimates computed and kept in the build
folder (`overview.pkl`); the notebooks in `notebooks/national/` only format and draw them, so the
same numbers reach HTML, PDF and workbook. Figures get alt text and captions computed from the
data: a notebook attaches them to the figure's output (`show_figure`) and `apply_figure_text`
writes them into the cell's `fig-alt`/`fig-cap` options of the executed notebook, which is what
Quarto and the built-in renderer read.

Layout: data without `--data` in `<build_root>/national-data/` (generated once per scale, seed and
package version), the build in `<build_root>/national/<school-year>/`, the outputs in
`<output_root>/national/<school-year>/national.{html,pdf,xlsx}`.
"""

from __future__ import annotations

import datetime as dt
import json
import pickle
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from evaluation import formatting as f
from evaluation.params import DEFAULT_PARAMS_DIR, Disclosure, Params, Region
from evaluation.pipeline import PipelineError
from evaluation.registry import INDICATORS, PRIMARY

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO / "notebooks" / "national"
DOCUMENT = "national"
NATIONAL_DIR = "national"
OUTPUT_NAMES = {"html": f"{DOCUMENT}.html", "pdf": f"{DOCUMENT}.pdf", "xlsx": f"{DOCUMENT}.xlsx"}
TITLE = "Jeugdhulp in het voortgezet onderwijs: landelijk overzicht"
DEFAULT_SCALE = 60_000  # pupils per school year of the synthetic set made without --data
DATA_SUBDIR = "national-data"
DATA_KEY_FILE = ".national-data.json"
OVERVIEW_FILE = "overview.pkl"
#: The key indicators of the funnel plots: the primary rates and shares.
FUNNEL_INDICATORS = tuple(i for i in PRIMARY if INDICATORS[i].kind in ("rate", "proportion"))
#: Short, stable names for cell labels in the notebooks and sections of national.qmd.
SLUGS = {
    "care_reports_per_100": "care-reports",
    "days_signal_to_help": "days-signal",
    "double_intake_share": "double-intake",
    "school_informed_share": "school-informed",
    "parents_first_meeting_share": "parents-first",
    "days_to_consent": "days-consent",
    "specialised_referrals_per_100": "referrals",
    "school_satisfaction": "school-satisfaction",
}


class NationalReportError(PipelineError):
    """The national report could not be made; the message says why and what to do."""


# --- inputs -------------------------------------------------------------------------------------


def resolve_params_dir(data_dir: Path | None, params_dir: Path | None) -> Path:
    """The data folder's own `params/` (as `national.write_national` writes it) when present,
    else `params_dir`, else the repository's params/."""
    from evaluation.national import PARAMS_SUBDIR

    if data_dir is not None and (Path(data_dir) / PARAMS_SUBDIR / "defaults.yml").is_file():
        return Path(data_dir) / PARAMS_SUBDIR
    return Path(params_dir) if params_dir is not None else DEFAULT_PARAMS_DIR


def _synthetic_overrides(overrides: Sequence[str]) -> list[str]:
    return sorted(o for o in overrides if o.strip().startswith("synthetic."))


def ensure_synthetic(build_root: Path, scale: int = DEFAULT_SCALE, overrides: Sequence[str] = (),
                     params_dir: Path = DEFAULT_PARAMS_DIR,
                     log: Callable[[str], None] = print) -> Path:
    """The national synthetic set (Parquet) in `<build_root>/national-data`, generated only when
    its key (scale, seed and other synthetic settings, package version) changed."""
    import evaluation
    from evaluation.national import write_national
    from evaluation.params import load_synthetic

    out = Path(build_root) / DATA_SUBDIR
    config = load_synthetic(_synthetic_overrides(overrides), params_dir)
    key = {"scale": int(scale), "seed": config.seed, "version": evaluation.__version__,
           "synthetic": config.model_dump(mode="json"),
           "overrides": _synthetic_overrides(overrides)}
    key_file = out / DATA_KEY_FILE
    if key_file.is_file():
        try:
            if json.loads(key_file.read_text(encoding="utf-8")) == key:
                return out
        except ValueError:
            pass
    log(f"no --data given: generating the national synthetic set ({int(scale):,} pupils per "
        f"school year) in {out}")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    write_national(tmp, int(scale), "parquet", _synthetic_overrides(overrides), params_dir)
    (tmp / DATA_KEY_FILE).write_text(json.dumps(key, indent=1), encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def data_school_years(tables: Mapping[str, pd.DataFrame]) -> list[str]:
    return sorted(str(y) for y in tables["enrolments"]["school_year"].dropna().unique())


def choose_school_year(requested: str | None, years: Sequence[str]) -> str:
    """The requested school year, or the last in the data; a year outside the data is an error
    that says which years there are."""
    if not years:
        raise NationalReportError("the data hold no enrolments, so no school year to report on")
    if requested is None:
        return years[-1]
    if requested not in years:
        raise NationalReportError(
            f"school year {requested} is not in the data: the enrolments cover "
            f"{years[0]} to {years[-1]} ({', '.join(years)}); choose one of those with "
            "--school-year")
    return requested


def template_params(regions: Sequence[Region], school_year: str, overrides: Sequence[str],
                    params_dir: Path) -> Params:
    """Analysis, disclosure and report choices of the run (defaults.yml plus --set), validated
    through the region that started first (params need a region with a pilot by that year)."""
    from evaluation.params import ParamsError, load_params, school_year_start_year

    started = [r for r in regions if r.first_pilot_year is not None]
    if not started:
        raise NationalReportError(f"no region in {params_dir} has a pilot school: nothing to "
                                  "evaluate")
    first = min(started, key=lambda r: school_year_start_year(r.first_pilot_year))
    if school_year_start_year(school_year) < school_year_start_year(first.first_pilot_year):
        raise NationalReportError(
            f"school year {school_year}: no region ran a pilot yet (the first started in "
            f"{first.first_pilot_year}); choose a later school year")
    try:
        return load_params(first.id, school_year, list(overrides), params_dir)
    except ParamsError as exc:
        raise NationalReportError(str(exc)) from None


# --- the overview: everything the report shows, computed once ----------------------------------


@dataclass
class Overview:
    """The numbers of one national report (raw, unformatted; formatting and disclosure control
    happen where they are shown)."""

    school_year: str
    years: list[str]
    regions: pd.DataFrame  # region, name, schools, pupils, first_pilot_year, pilot_schools, active
    funnels: dict[str, pd.DataFrame]  # indicator -> funnel.funnel_frame (attrs kept)
    corrected: dict[str, pd.DataFrame]  # the same with overdispersion-corrected limits
    estimates: pd.DataFrame  # national.estimates_all_regions
    quality: dict[str, pd.DataFrame]  # summary, reasons, missing (ValidationResult's)
    colophon: pd.DataFrame
    disclosure: Disclosure
    alpha: float
    multiple_testing: str
    baseline_years: int
    extra: dict[str, Any] = field(default_factory=dict)


class StoredValidation:
    """The parts of a `ValidationResult` that `data_quality` reads, from an Overview."""

    def __init__(self, quality: Mapping[str, pd.DataFrame]) -> None:
        self._q = quality

    def summary(self) -> pd.DataFrame:
        return self._q["summary"].copy()

    def reasons(self) -> pd.DataFrame:
        return self._q["reasons"].copy()

    def missing(self) -> pd.DataFrame:
        return self._q["missing"].copy()


def region_table(tables: Mapping[str, pd.DataFrame], regions: Sequence[Region],
                 school_year: str) -> pd.DataFrame:
    """Per region: schools and pupils enrolled in the school year, pilot start, pilot schools by
    then and whether a pilot runs (the rule of `estimates_all_regions`)."""
    e = tables["enrolments"]
    e = e[e["school_year"] == school_year]
    region_of = {s.id: r.id for r in regions for s in r.schools}
    by_region = e.assign(region=e["school_id"].astype(str).map(region_of)).groupby("region")
    pupils = by_region.size()
    schools = by_region["school_id"].nunique()
    year = int(school_year[:4])
    rows = []
    for r in regions:
        started = [s for s in r.schools if s.pilot_start and s.pilot_start.year <= year]
        rows.append({"region": r.id, "name": r.name, "schools": int(schools.get(r.id, 0)),
                     "pupils": int(pupils.get(r.id, 0)),
                     "first_pilot_year": r.first_pilot_year if started else None,
                     "pilot_schools": len(started), "active": bool(started)})
    return pd.DataFrame(rows)


def compute_overview(tables: Mapping[str, pd.DataFrame], regions: Sequence[Region],
                     params: Params, school_year: str, validation: Any = None,
                     data_dir: Path | None = None, log: Callable[[str], None] = print
                     ) -> Overview:
    """Funnels of the key indicators, estimates of every primary indicator for every region and
    the nation, the regions' facts, data quality and colophon."""
    from evaluation.funnel import funnel_frame, region_counts
    from evaluation.national import estimates_all_regions, national_frames
    from evaluation.provenance import colophon

    clock = time.perf_counter()
    frames = national_frames(tables, list(FUNNEL_INDICATORS))
    names = {s.id: r.name for r in regions for s in r.schools}
    funnels, corrected = {}, {}
    for ind in FUNNEL_INDICATORS:
        counts = region_counts(frames[ind], names, school_year)
        kind = "poisson" if INDICATORS[ind].kind == "rate" else "binomial"
        funnels[ind] = funnel_frame(counts["count"], counts["size"], counts["region"], kind=kind,
                                    per=100.0)
        corrected[ind] = funnel_frame(counts["count"], counts["size"], counts["region"],
                                      kind=kind, per=100.0, overdispersion=True)
    del frames
    log(f"  funnels ({time.perf_counter() - clock:.1f} s)")
    clock = time.perf_counter()
    estimates = estimates_all_regions(tables, regions, params, school_year=school_year)
    log(f"  estimates for {len(regions)} regions and the nation "
        f"({time.perf_counter() - clock:.1f} s)")
    if validation is not None:
        quality = {"summary": validation.summary(), "reasons": validation.reasons(),
                   "missing": validation.missing()}
    else:
        from evaluation.datamodel import TABLES

        quality = {"summary": pd.DataFrame({
            "table": list(TABLES), "file": [t.filename for t in TABLES.values()],
            "read": [len(tables[n]) for n in TABLES], "accepted": [len(tables[n]) for n in TABLES],
            "rejected": 0}),
            "reasons": pd.DataFrame(columns=["table", "field", "reason", "rows"]),
            "missing": pd.DataFrame(columns=["table", "field", "missing", "share"])}
    col = colophon(params, data_dir)
    col = col[col["Gegeven"] != "Parameters (SHA-256)"]
    extra_rows = pd.DataFrame([
        ("Parameters (SHA-256)", _params_hash_national(params)),
        ("Regio's in de parameters", f.integer(len(regions))),
    ], columns=["Gegeven", "Waarde"])
    col = pd.concat([col.iloc[:2], extra_rows, col.iloc[2:]], ignore_index=True)
    return Overview(
        school_year=school_year, years=data_school_years(tables),
        regions=region_table(tables, regions, school_year), funnels=funnels, corrected=corrected,
        estimates=estimates, quality=quality, colophon=col, disclosure=params.disclosure,
        alpha=params.analysis.alpha, multiple_testing=params.analysis.multiple_testing,
        baseline_years=params.analysis.baseline_years)


def _params_hash_national(params: Params) -> str:
    """The hash of the settings the national report uses (not of the region that carried them)."""
    import hashlib

    from evaluation.provenance import _grouped

    data = params.model_dump(mode="json", include={"analysis", "disclosure", "report",
                                                   "synthetic"})
    digest = hashlib.sha256(yaml.safe_dump(data, sort_keys=True).encode()).hexdigest()
    return _grouped(digest)


def save_overview(overview: Overview, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        pickle.dump(overview, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_overview(path: str | Path) -> Overview:
    """The overview the pipeline computed (a file in this run's own build folder)."""
    with open(path, "rb") as fh:
        return pickle.load(fh)  # noqa: S301  written by save_overview in this build


def demo_overview(school_year: str = "", scale: int = 20_000) -> Overview:
    """An overview of a small national set generated in memory: what a notebook shows when it
    runs on its own in Jupyter."""
    from evaluation.national import national_data
    from evaluation.params import load_params

    data = national_data(scale)
    year = choose_school_year(school_year or None, data_school_years(data.tables))
    first = min((r for r in data.regions if r.first_pilot_year),
                key=lambda r: r.first_pilot_year)
    params = load_params("lekstroom" if any(r.id == "lekstroom" for r in data.regions)
                         else first.id, year)
    return compute_overview(data.tables, data.regions, params, year, log=lambda _m: None)


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
    from evaluation.disclosure import round_to_base

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
    from evaluation.disclosure import PublishedTable

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

    from evaluation.funnel import funnel_figure

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
    from evaluation.national import NO_PILOT

    return NO_PILOT


def estimates_table(overview: Overview, indicator: str) -> pd.DataFrame:
    """Dutch table: per region (and the nation) the difference-in-differences effect, its
    interval, the adjusted p-value, pilot and comparison schools and the comparison group."""
    from evaluation.presentation import effect, interval

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
    from evaluation.presentation import UNIT_NAMES

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
    from evaluation.presentation import effect, interval

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
    from evaluation.presentation import effect

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

    from evaluation.plots import PALETTE, decimal_comma, house_style

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
    from evaluation.disclosure import round_to_base

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
    from evaluation.presentation import effect, interval

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

FIG_META = "evaluation/figure"  # key of the output metadata that carries fig-alt and fig-cap


def show_figure(fig, alt: str, caption: str) -> None:
    """Display a figure and attach its alt text and caption to the output, for
    `apply_figure_text` to write into the cell's options after execution."""
    import matplotlib.pyplot as plt
    from IPython.display import display

    display(fig, metadata={FIG_META: {"fig-alt": alt, "fig-cap": caption}})
    plt.close(fig)


def apply_figure_text(nb_path: Path) -> int:
    """Write the alt text and caption each figure output carries into its cell's `#| fig-alt`
    and `#| fig-cap` options (the executed notebook; both renderers read the options there).
    Returns the number of cells changed."""
    import nbformat

    nb = nbformat.read(nb_path, as_version=4)
    changed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        texts = [o.get("metadata", {}).get(FIG_META) for o in cell.get("outputs", [])
                 if o.get("output_type") == "display_data"]
        texts = [t for t in texts if t]
        if not texts:
            continue
        lines = cell.source.splitlines()
        head = [ln for ln in lines if ln.startswith("#|")]
        body = lines[len(head):]
        head = [ln for ln in head if not ln.startswith(("#| fig-alt:", "#| fig-cap:"))]
        for key in ("fig-cap", "fig-alt"):
            values = [t[key] for t in texts]
            value = values[0] if len(values) == 1 else values
            head.append(f"#| {key}: {json.dumps(value, ensure_ascii=False)}")
        cell.source = "\n".join(head + body)
        changed += 1
    nbformat.write(nb, nb_path)
    return changed


# --- the pipeline ---------------------------------------------------------------------------------


def notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(Path(notebooks_dir).glob("[0-9][0-9]-*.ipynb"))


def report_metadata(overview: Overview, today: dt.date | None = None) -> dict[str, Any]:
    from evaluation.pipeline import dutch_date

    return {
        "title": TITLE,
        "subtitle": f"Schooljaar {overview.school_year}",
        "date": dutch_date(today or dt.date.today()),
        "lang": "nl",
        "school-year": overview.school_year,
        "confidence-level": round(100 * (1 - overview.alpha)),
        "disclosure-min": overview.disclosure.min_count,
        "disclosure-base": overview.disclosure.rounding_base,
        "baseline-years": overview.baseline_years,
        "regions": len(overview.regions),
    }


def prepare_build(build: Path, overview: Overview, organisation: str,
                  quarto_file: Path, reports_dir: Path) -> None:
    """A fresh build folder: the project files the renderer reads, this run's metadata."""
    if build.exists():
        shutil.rmtree(build)
    (build / "notebooks" / NATIONAL_DIR).mkdir(parents=True)
    shutil.copy2(quarto_file, build / "_quarto.yml")
    shutil.copytree(reports_dir, build / "reports",
                    ignore=shutil.ignore_patterns("_metadata.yml", "*_files", "*.html", "*.pdf"))
    meta = {**report_metadata(overview), "author": organisation}
    (build / "reports" / "_metadata.yml").write_text(
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")


def audit_national(outputs: Mapping[str, Path], data_dir: Path, params: Params) -> None:
    """The publication audit of every output (HTML, PDF, workbook) against the data's
    identifiers (CSV or Parquet) and the disclosure threshold, before anything is published."""
    from evaluation import pipeline

    pipeline.audit_outputs(dict(outputs), Path(data_dir), params)


def write_manifest(dest: Path, school_year: str, outputs: Mapping[str, Path], renderer: str,
                   seconds: float) -> Path:
    """`.manifest.json` beside the published files, so that `site.write_index` lists the
    national overview (kind "national") above the regions."""
    import os

    from evaluation.national import NATIONAL_ID, NATIONAL_NAME
    from evaluation.site import MANIFEST, NATIONAL_KIND

    data = {"key": f"{NATIONAL_DIR}/{school_year}", "kind": NATIONAL_KIND, "region": NATIONAL_ID,
            "region_name": NATIONAL_NAME, "title": TITLE, "school_year": school_year,
            "outputs": {kind: Path(p).name for kind, p in outputs.items()},
            "renderer": renderer,
            "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
            "seconds": round(seconds, 1)}
    path = dest / MANIFEST
    tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def render_national(
    school_year: str | None,
    data_dir: Path | None = None,
    overrides: Sequence[str] = (),
    formats: Sequence[str] | None = None,
    output_root: Path = Path("_output"),
    build_root: Path = Path("_build"),
    params_dir: Path | None = None,
    renderer: str = "auto",
    log: Callable[[str], None] = print,
    scale: int = DEFAULT_SCALE,
):
    """Make the national overview (HTML and/or PDF, plus an Excel workbook of its tables) for a
    school year (default: the last in the data) and publish it to
    `<output_root>/national/<school-year>/`. Returns a `pipeline.ReportResult` (region
    "nederland"; `renderer` says which renderer ran). Errors are `pipeline.PipelineError`
    (`NationalReportError` is one) with a message that says what to do."""
    from evaluation import pipeline
    from evaluation.dataset import DataSetError
    from evaluation.disclosure import check_published
    from evaluation.excel import write_workbook
    from evaluation.national import NATIONAL_ID, national_region, region_params
    from evaluation.params import ParamsError, load_regions
    from evaluation.rendering import RenderError, render

    started = time.perf_counter()
    try:
        pdir = resolve_params_dir(data_dir, params_dir)
        if data_dir is None:
            pdir = resolve_params_dir(None, params_dir)
            data_dir = ensure_synthetic(build_root, scale, overrides, pdir, log)
            pdir = resolve_params_dir(data_dir, params_dir)
        data_dir = Path(data_dir)
        regions = load_regions(pdir)
        log(f"national overview: data {data_dir}, params {pdir} ({len(regions)} regions)")
        try:
            checked = pipeline.cached_validate_dir(data_dir)
        except DataSetError as exc:
            raise NationalReportError(str(exc)) from None
        rejected = int(checked.summary()["rejected"].sum())
        if rejected:
            log(f"data: {rejected} row(s) rejected; they are counted in the data-quality annex "
                f"(run `evaluation validate {data_dir}` for each reason)")
        year = choose_school_year(school_year, data_school_years(checked.tables))
        params = template_params(regions, year, overrides, pdir)
        formats = list(formats or params.report.formats)
        overview = compute_overview(checked.tables, regions, params, year, checked, data_dir,
                                    log)
        check_published([published_outside(overview, i) for i in FUNNEL_INDICATORS],
                        params.disclosure)
    except (ParamsError, NationalReportError) as exc:
        raise NationalReportError(str(exc)) from None

    build = (Path(build_root) / NATIONAL_DIR / year).resolve()
    prepare_build(build, overview, params.report.organisation, pipeline.QUARTO_FILE,
                  pipeline.REPORTS_DIR)
    overview_file = save_overview(overview, build / OVERVIEW_FILE)
    tables_dir = build / "tables"
    log(f"national {year}: executing notebooks in {build}")
    executed = []
    order: list[str] = []
    with pipeline.KernelSession(log_file=build / "kernel.log", warm=False) as session:
        for source in notebooks():
            log(f"  notebook {source.name}")
            target = build / "notebooks" / NATIONAL_DIR / source.name
            session.execute(source, target, {
                "school_year": year,
                "overview_file": str(overview_file),
                "tables_dir": str(tables_dir),
            }, cwd=target.parent)
            apply_figure_text(target)
            new = [p for p in tables_dir.glob("*.json") if p.stem not in order
                   and p.name != pipeline.TABLE_ORDER_FILE] if tables_dir.is_dir() else []
            order += [p.stem for p in sorted(new, key=lambda p: (p.stat().st_mtime_ns, p.name))]
            executed.append(target)
    if order:
        (tables_dir / pipeline.TABLE_ORDER_FILE).write_text(json.dumps(order), encoding="utf-8")
    log("  rendering")
    try:
        result = render(build / "reports" / f"{DOCUMENT}.qmd", formats=formats,
                        out_dir=build / "_render", prefer=renderer)
    except RenderError as exc:
        raise pipeline.PipelineError(f"rendering failed: {exc}") from None
    outputs = dict(result.outputs)
    nat_params = region_params(params, national_region(regions), year)
    nat_params = nat_params.model_copy(update={"region": nat_params.region.model_copy(
        update={"title": TITLE, "name": "Nederland (alle regio's)"})})
    outputs["xlsx"] = write_workbook(tables_dir, None, build / "_render" / OUTPUT_NAMES["xlsx"],
                                     nat_params)
    log("  audit")
    audit_national(outputs, data_dir, params)
    dest = Path(output_root) / NATIONAL_DIR / year
    placed = pipeline.publish(outputs, dest, OUTPUT_NAMES)
    write_manifest(dest, year, placed, result.renderer, time.perf_counter() - started)
    log(f"national {year}: published to {dest} with {result.renderer} "
        f"({time.perf_counter() - started:.1f} s)")
    return pipeline.ReportResult(NATIONAL_ID, year, result.renderer, placed, executed, rejected)
