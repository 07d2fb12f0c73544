"""The evaluation design: which schools are pilot schools, which compare, and from when.

The design comes from params (a researcher may move a start date or the comparison group for one
run); the data only say what happened at each school.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from evaluation.params import DEFAULT_PARAMS_DIR, Params, comparison_schools, school_year_of_date


def candidate_schools(params: Params) -> set[str]:
    """Every school a report of this region can use: its own and its declared comparison
    schools (`school_design` picks from these), so the rows of all others can be left out."""
    return {s.id for s in params.region.schools} | set(params.region.comparison_schools)


def school_design(params: Params, params_dir: Path = DEFAULT_PARAMS_DIR) -> pd.DataFrame:
    """One row per school in the evaluation: group (pilot / comparison), pilot start and cohort.

    Pilot schools are the region's schools whose pilot started by the report's school year (in a
    municipality report counted by school location: those standing in the municipality).
    Comparison schools are the region's other schools and the declared comparison schools of
    other regions that had not started a pilot by the end of the report's school year
    (not-yet-treated), so that no already-treated school serves as a control.
    """
    year = int(params.school_year[:4])
    rows = []
    candidates = [(s, True) for s in params.region.schools] + [
        (s, False) for s in comparison_schools(params, params_dir)
    ]
    for school, own in candidates:
        start = school.pilot_start
        start_year = start.year if start else None
        if own and start_year is not None and start_year <= year:
            group = "pilot"
            if (params.municipality and params.analysis.count_by == "school"
                    and school.municipality != params.municipality):
                continue  # a municipality report by school location: only its own schools
        elif start_year is None or start_year > year:
            group = "comparison"
        else:
            continue  # started elsewhere before or during the report year: not a clean control
        rows.append({
            "school_id": school.id,
            "school_name": school.name,
            "municipality_code": school.municipality,
            "own_region": own,
            "group": group,
            "pilot_start": pd.Timestamp(start) if start else pd.NaT,
            "cohort": school_year_of_date(start) if start and group == "pilot" else None,
        })
    out = pd.DataFrame(rows)
    out["group"] = pd.Categorical(out["group"], categories=["pilot", "comparison"])
    return out


def analysis_years(params: Params, design: pd.DataFrame) -> list[str]:
    """School years in the analysis: `baseline_years` before the first start up to the report year."""
    first = int(design.loc[design["group"] == "pilot", "pilot_start"].min().year)
    last = int(params.school_year[:4])
    start = first - params.analysis.baseline_years
    return [f"{y}-{y + 1}" for y in range(start, last + 1)]
