"""Estimates for every region and the nation, side by side (`estimates --all-regions`).

The analysis frames are computed once for the whole country and sliced per region; each region
gets the difference-in-differences its own report shows, the nation the same models with
inference for many schools.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from evaluation.analysis import methods
from evaluation.params import (
    Params,
    Region,
    School,
    school_year_of_date,
)

# --- estimates for every region and the nation ---------------------------------------------------

NATIONAL_ID = "nederland"
NATIONAL_NAME = "Nederland"
NO_PILOT = "geen pilot in deze regio"
ESTIMATE_COLUMNS = ["region", "region_name", "level", "school_year", "first_pilot_year",
                    "n_pilot_schools", "n_comparison_schools", "comparison_group", "indicator",
                    "name", "primary", "unit", "method", "comparison", "estimate", "ci_low",
                    "ci_high", "p_value", "p_value_adjusted", "significant", "n", "n_clusters",
                    "mde", "better", "note", "inference", "draws", "p_value_bound"]


def _lean_tables(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The tables with enrolments cut to the pupils that have a trajectory.

    Trajectory indicators need the enrolments only for the residence of those pupils (a merge on
    student and school year) and for the last school year (the extraction date): merging 300,000
    trajectories with a few hundred thousand rows instead of five million makes their analysis
    frames ten times faster, with identical results. One row of the last school year is kept so
    that the extraction date cannot change.
    """
    e = tables["enrolments"]
    keep = e["student_id"].isin(tables["trajectories"]["student_id"].unique()).to_numpy().copy()
    if len(e):
        keep[int(np.argmax((e["school_year"] == e["school_year"].max()).to_numpy()))] = True
    return {**tables, "enrolments": e[keep]}


def national_frames(tables: Mapping[str, pd.DataFrame], indicators: Sequence[str]
                    ) -> dict[str, pd.DataFrame]:
    """The analysis frame of each indicator for the whole country, computed once.

    Every region's slice of these frames equals the frame computed on that region's tables
    (tests/test_national.py checks it), so the frames need not be computed 42 times. They are
    computed in this process: a forked process computing half of them saved about 3 s of 8 at a
    million pupils but held some 600 MB more at the peak (the 2 GiB goal of issue 17).
    """
    return _frames(tables, indicators)


def _frames(tables: Mapping[str, pd.DataFrame], indicators: Sequence[str]
            ) -> dict[str, pd.DataFrame]:
    from evaluation.analysis.indicators import analysis_frame

    rates = [i for i in indicators if i.endswith("_per_100")]
    # The pieces indicators share (pupils per cell, trajectories with their pupils' residence)
    # are made once per table set, as `indicators.analysis_frames` does.
    memo: dict = {}
    out = {i: analysis_frame(i, tables, memo) for i in rates}
    if len(rates) < len(indicators):
        lean, memo = _lean_tables(tables), {}
        out.update({i: analysis_frame(i, lean, memo) for i in indicators if i not in rates})
    return out


def region_design(region: Region, school_year: str, schools_by_id: Mapping[str, School]
                  ) -> pd.DataFrame:
    """`design.school_design` for a region report (no municipality), from schools in memory.

    The same rule: the region's schools that started by the report year are pilot schools; its
    other schools and the listed comparison schools of other regions that had not started by the
    end of the report year are comparison schools. `design.school_design` reads the schools of
    other regions from the params files, which the 42 generated regions do not have.
    """
    year = int(school_year[:4])
    rows = []
    candidates = [(s, True) for s in region.schools] + [
        (schools_by_id[s], False) for s in region.comparison_schools]
    for school, own in candidates:
        start = school.pilot_start
        start_year = start.year if start else None
        if own and start_year is not None and start_year <= year:
            group = "pilot"
        elif start_year is None or start_year > year:
            group = "comparison"
        else:
            continue
        rows.append({
            "school_id": school.id, "school_name": school.name,
            "municipality_code": school.municipality, "own_region": own, "group": group,
            "pilot_start": pd.Timestamp(start) if start else pd.NaT,
            "cohort": school_year_of_date(start) if start and group == "pilot" else None,
        })
    out = pd.DataFrame(rows)
    out["group"] = pd.Categorical(out["group"], categories=["pilot", "comparison"])
    return out


def national_region(regions: Sequence[Region]) -> Region:
    """All schools and municipalities of the country as one region (the national level)."""
    return Region(id=NATIONAL_ID, name=NATIONAL_NAME, title=f"Landelijk overzicht {NATIONAL_NAME}",
                  intro="Alle regio's samen.", pupils=sum(r.pupils for r in regions),
                  municipalities=[m for r in regions for m in r.municipalities],
                  schools=[s for r in regions for s in r.schools])


def region_params(template: Params, region: Region, school_year: str) -> Params:
    """`template`'s analysis, disclosure and report choices for another region and year."""
    data = template.model_dump(exclude={"region", "school_year", "municipality"})
    return Params.model_validate({**data, "region": region.model_dump(),
                                  "school_year": school_year})


@dataclass(frozen=True)
class _Unit:
    """One evaluated unit: a region or the nation, with its params and design."""

    region: Region
    level: str
    params: Params | None
    design: pd.DataFrame | None
    comparison_group: str


def _comparison_group(design: pd.DataFrame) -> str:
    comp = design[design["group"] == "comparison"]
    own, other = bool(comp["own_region"].any()), bool((~comp["own_region"]).any())
    return {(True, False): "eigen regio", (False, True): "andere regio's",
            (True, True): "eigen regio en andere regio's"}.get((own, other), "geen")


def _school_positions(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    return {str(k): v for k, v in frame.groupby("school_id", observed=True).indices.items()}


@dataclass(frozen=True)
class _Shared:
    """What every unit's models read: the national frames and each school's rows in them."""

    ids: list[str]
    frames: dict[str, pd.DataFrame]
    positions: dict[str, dict[str, np.ndarray]]
    year: str


def _unit_estimates(unit: _Unit, shared: _Shared) -> pd.DataFrame:
    """One unit's rows: the difference-in-differences of every indicator on the unit's slice of
    the national frames, Holm/BH within the unit, and the minimum detectable effects."""
    from evaluation.analysis import comparisons
    from evaluation.analysis.design import analysis_years
    from evaluation.analysis.estimates import _guarded, adjust, minimum_detectable_effect
    from evaluation.registry import INDICATORS

    r, ids = unit.region, shared.ids
    head = {"region": r.id, "region_name": r.name, "level": unit.level,
            "school_year": shared.year, "first_pilot_year": r.first_pilot_year,
            "comparison_group": unit.comparison_group}
    if unit.params is None:
        return pd.DataFrame([{**head, "indicator": i, "comparison": methods.DID, "note": NO_PILOT,
                              "n_pilot_schools": 0, "n_comparison_schools": 0} for i in ids])
    params, design = unit.params, unit.design
    years = analysis_years(params, design)
    schools = design["school_id"].tolist()
    many = unit.level == "nationaal"  # the nation: cluster-robust errors (thousands of schools)
    rows = []
    for ind_id in ids:
        ind = INDICATORS[ind_id]
        frame, pos = shared.frames[ind_id], shared.positions[ind_id]
        idx = [pos[s] for s in schools if s in pos]
        take = np.sort(np.concatenate(idx)) if idx else np.array([], dtype=int)
        data = comparisons.with_design(frame.iloc[take], design, params, years)
        est = _guarded(lambda ind=ind, data=data, params=params, many=many:
                       comparisons.difference_in_differences(ind, data, params, many),
                       ind, methods.DID, data, params)
        rows.append({**head, **est.to_dict(), "name": ind.name_nl, "primary": ind.primary,
                     "better": ind.better,
                     "n_pilot_schools": int((design["group"] == "pilot").sum()),
                     "n_comparison_schools": int((design["group"] == "comparison").sum())})
    gc.freeze()  # statsmodels' Holm runs gc.collect(): skip the big tables held in memory
    try:
        t = adjust(pd.DataFrame(rows), params.analysis.multiple_testing, params.analysis.alpha)
    finally:
        gc.unfreeze()
    t["mde"] = [minimum_detectable_effect(row, params.analysis.alpha)
                if pd.notna(row["estimate"]) else np.nan for _, row in t.iterrows()]
    return t


#: Most worker processes for the units' models (each holds its own model temporaries).
MAX_WORKERS = 4
_SHARED: tuple[Sequence[_Unit], _Shared] | None = None  # set in the parent before forking


def _workers(requested: int | None) -> int:
    """Processes for the units' models: `requested`, else the usable cores (at most
    MAX_WORKERS); one where processes cannot be forked (the frames are shared, not copied)."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        return 1
    if requested is None:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count() or 1)
        requested = min(cores, MAX_WORKERS)
    return max(1, int(requested))


def _unit_in_worker(k: int) -> pd.DataFrame:
    assert _SHARED is not None
    units, shared = _SHARED
    return _unit_estimates(units[k], shared)


def _one_thread() -> None:
    """A worker's numerical libraries use one thread: the processes are the parallelism."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _in_processes(units: Sequence[_Unit], shared: _Shared, workers: int) -> list[pd.DataFrame]:
    """`_unit_estimates` of every unit in `workers` forked processes, which read the parent's
    frames copy-on-write; the largest units (the nation first) start first, so that no process
    waits long for the other at the end. Same rows, in the order of `units`."""
    import multiprocessing as mp

    global _SHARED

    def size(k: int) -> float:
        u = units[k]
        return -1.0 if u.design is None else float("inf") if u.level == "nationaal" else len(
            u.design)

    order = sorted(range(len(units)), key=size, reverse=True)
    _SHARED = (units, shared)
    gc.collect()
    gc.freeze()  # objects made so far stay out of the workers' collections: fewer copied pages
    try:
        with mp.get_context("fork").Pool(workers, initializer=_one_thread) as pool:
            done = dict(zip(order, pool.imap(_unit_in_worker, order), strict=True))
    finally:
        gc.unfreeze()
        _SHARED = None
    return [done[k] for k in range(len(units))]


def estimates_all_regions(tables: Mapping[str, pd.DataFrame], regions: Sequence[Region],
                          params_template: Params, indicators: Sequence[str] | None = None,
                          school_year: str | None = None, national: bool = True,
                          timings: dict[str, float] | None = None,
                          workers: int | None = None) -> pd.DataFrame:
    """The difference-in-differences of every primary indicator (or of `indicators`) for every
    region, and for the nation: one row per (region, indicator).

    Each region compares its own pilot schools with its own schools that had not started by the
    report year, plus the comparison schools its Region lists (for a region in which every school
    takes part: never-treated schools of other regions, see `national_regions`). The analysis
    frames are computed once for the whole country and sliced per region; the models are
    `comparisons.difference_in_differences` per region (what that region's own report shows)
    and for the nation with the inference `methods` gives many schools. Analysis, disclosure and the
    multiple-testing method come from `params_template` (Holm or BH within each region). The
    report year defaults to the last school year in the data; a region without any pilot school
    by then gets one row per indicator with a note and no estimate.

    `workers`: processes for the units' models (default: the usable cores, at most
    MAX_WORKERS; 1 runs them in this process). The rows are the same either way.
    """
    from evaluation.registry import PRIMARY

    ids = list(indicators or PRIMARY)
    year = school_year or str(tables["enrolments"]["school_year"].max())
    clock = time.perf_counter()
    frames = national_frames(tables, ids)
    positions = {i: _school_positions(f) for i, f in frames.items()}
    if timings is not None:
        timings["frames"] = time.perf_counter() - clock

    by_id = {s.id: s for r in regions for s in r.schools}
    units = []
    for r in regions:
        started = [s for s in r.schools if s.pilot_start and s.pilot_start.year <= int(year[:4])]
        if not started:
            units.append(_Unit(r, "regio", None, None, "geen"))
            continue
        design = region_design(r, year, by_id)
        units.append(_Unit(r, "regio", region_params(params_template, r, year), design,
                           _comparison_group(design)))
    if national:
        nat = national_region(regions)
        design = region_design(nat, year, by_id)
        units.append(_Unit(nat, "nationaal", region_params(params_template, nat, year), design,
                           "alle niet (of nog niet) gestarte scholen"))

    clock = time.perf_counter()
    shared = _Shared(ids, frames, positions, year)
    n = min(_workers(workers), sum(u.params is not None for u in units))
    tables_out = (_in_processes(units, shared, n) if n > 1
                  else [_unit_estimates(unit, shared) for unit in units])
    if timings is not None:
        timings["models"] = time.perf_counter() - clock
    out = pd.concat(tables_out, ignore_index=True)
    for col in ESTIMATE_COLUMNS:
        if col not in out:
            out[col] = np.nan
    return out[ESTIMATE_COLUMNS]


