"""The numbers of the national overview report, computed once per school year.

`compute_overview` validates nothing and formats nothing: from the validated tables it computes the
funnels of the key indicators, the estimates of every primary indicator for every region and the
nation, the regions' facts, data quality and colophon, and keeps them in an `Overview` that the
sections (`evaluation.national.sections`) format and the notebooks show.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evaluation.params import Disclosure, Params, Region
from evaluation.registry import INDICATORS, PRIMARY
from evaluation.report import formatting as f
from evaluation.run.pipeline import PipelineError


class NationalReportError(PipelineError):
    """The national report could not be made; the message says why and what to do."""


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
    from evaluation.national.estimates import estimates_all_regions, national_frames
    from evaluation.national.funnel import funnel_frame, region_counts
    from evaluation.report.provenance import colophon

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
        from evaluation.data.datamodel import TABLES

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

    from evaluation.report.provenance import _grouped

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
    from evaluation.data.synthetic_national import national_data
    from evaluation.params import load_params

    data = national_data(scale)
    year = choose_school_year(school_year or None, data_school_years(data.tables))
    first = min((r for r in data.regions if r.first_pilot_year),
                key=lambda r: r.first_pilot_year)
    params = load_params("lekstroom" if any(r.id == "lekstroom" for r in data.regions)
                         else first.id, year)
    return compute_overview(data.tables, data.regions, params, year, log=lambda _m: None)


