"""Durations in days: Kaplan-Meier medians and restricted means per group and period, their
before/after and difference-in-differences, with a cluster bootstrap over schools.

Readers think in days ("the median wait fell from 50 to 25 days"), not in hazard ratios, and a
hazard ratio has no single true value when waits shrink proportionally. So the primary effect on a
duration is the change in the median in days: at the pilot schools (after minus before) and beyond
the change at the comparison schools (difference-in-differences). Ongoing trajectories are censored
(Kaplan-Meier), never dropped.

The interval resamples schools with replacement within the pilot and the comparison group (a
school keeps all its records, in both periods), `draws` times with a fixed seed. Nothing loops over
draws or records: per cell (group x period) the events and exits are counted per school and
distinct day once, and a draw is a row of school weights, so all draws of a cell are one matrix
product (draws x schools) @ (schools x days) followed by cumulative sums.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Cells of the comparisons: the pilot schools before and after, the comparison schools in the
#: same school years.
PILOT_BEFORE, PILOT_AFTER, COMPARISON_BEFORE, COMPARISON_AFTER = range(4)
CELL_NAMES = {PILOT_BEFORE: ("pilot", "before"), PILOT_AFTER: ("pilot", "after"),
              COMPARISON_BEFORE: ("comparison", "before"),
              COMPARISON_AFTER: ("comparison", "after")}
_BATCH = 2000  # draws per matrix product: bounds memory at draws x distinct days


def cells(data: pd.DataFrame, school_year: str) -> np.ndarray:
    """The cell of each record (-1: in no cell). Pilot schools: their own baseline years and the
    report year once started (`period`, `treated` of `comparisons.with_design`); comparison
    schools: the school years that are a baseline year of some pilot school, and the report
    year."""
    period = data["period"].astype("string")
    pilot = (data["group"] == "pilot").to_numpy()
    before = (period == "before").fillna(False).to_numpy()
    after = ((period == "after") & (data["treated"] == 1)).fillna(False).to_numpy()
    baseline_years = set(data.loc[pilot & before, "school_year"])
    year = data["school_year"].to_numpy()
    comp_before = ~pilot & np.isin(year, list(baseline_years))
    comp_after = ~pilot & (year == school_year)
    out = np.full(len(data), -1)
    out[pilot & before] = PILOT_BEFORE
    out[pilot & after] = PILOT_AFTER
    out[comp_before] = COMPARISON_BEFORE
    out[comp_after] = COMPARISON_AFTER
    return out


def _cell_counts(days: np.ndarray, event: np.ndarray, school: np.ndarray, n_schools: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct days, and per school and day the events (d) and exits from the risk set (c)."""
    times, t_idx = np.unique(days, return_inverse=True)
    cell = np.asarray(school) * len(times) + t_idx
    size = n_schools * len(times)
    d = np.bincount(cell, weights=event, minlength=size).reshape(n_schools, len(times))
    c = np.bincount(cell, minlength=size).astype(float).reshape(n_schools, len(times))
    return times, d, c


def km_median(times: np.ndarray, surv: np.ndarray) -> np.ndarray:
    """The median of each row of Kaplan-Meier curves `surv` over `times`: the first day the curve
    is at or below one half, and where it is exactly one half until a later day, the midpoint of
    the two (as R's survival package does; without censoring this is the ordinary median of an
    even number of values). NaN where the curve never reaches one half."""
    surv = np.atleast_2d(surv)
    if surv.shape[1] == 0:  # no event days at all
        return np.full(len(surv), np.nan)
    at_or_below = surv <= 0.5 + 1e-12
    below = surv < 0.5 - 1e-12
    first = at_or_below.argmax(axis=1)
    after = below.argmax(axis=1)
    flat = ~below[np.arange(len(surv)), first] & below.any(axis=1)
    median = np.where(flat, (times[first] + times[after]) / 2, times[first])
    return np.where(at_or_below.any(axis=1), median, np.nan)


def _km_summaries(times: np.ndarray, D: np.ndarray, C: np.ndarray, horizon: float | None,
                  total: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Median and restricted mean up to `horizon` of the Kaplan-Meier curve of each row of the
    weighted events D and exits C (rows: draws). Median: the first day the curve is at or below
    one half (NaN when it never is, as with `survival.median_survival`). `total`: the weight of
    each row's records when D and C hold only the first days (a truncated curve)."""
    if total is None:
        at_risk = np.cumsum(C[:, ::-1], axis=1)[:, ::-1]
    else:  # at risk on a day: all records less those that left before it
        at_risk = total[:, None] - np.cumsum(C, axis=1) + C
    with np.errstate(divide="ignore", invalid="ignore"):
        hazard = np.where(at_risk > 0, D / at_risk, 0.0)
    surv = np.cumprod(1.0 - hazard, axis=1)
    median = km_median(times, surv)
    if horizon is None:
        return median, np.full(len(median), np.nan)
    # Restricted mean: area under the step curve from 0 to the horizon.
    edges = np.minimum(np.r_[0.0, times], horizon)
    widths = np.diff(np.r_[edges, horizon])            # len(times) + 1 intervals
    steps = np.column_stack([np.ones(len(surv)), surv])
    rmst = (steps * widths[None, :]).sum(axis=1)
    return median, rmst


def summaries(data: pd.DataFrame, school_year: str, horizon: float) -> pd.DataFrame:
    """Per cell: records, events, median and restricted mean (days). For tables and tests."""
    cell = cells(data, school_year)
    rows = []
    for k, (group, period) in CELL_NAMES.items():
        sel = (cell == k) & data["days"].notna().to_numpy()
        if not sel.any():
            continue
        days = data.loc[sel, "days"].to_numpy(float)
        event = data.loc[sel, "event"].to_numpy(float)
        times, d, c = _cell_counts(days, event, np.zeros(len(days), int), 1)
        median, rmst = _km_summaries(times, d, c, horizon)
        rows.append({"group": group, "period": period, "n": int(sel.sum()),
                     "events": int(event.sum()), "median": float(median[0]),
                     "restricted_mean": float(rmst[0])})
    return pd.DataFrame(rows, columns=["group", "period", "n", "events", "median",
                                       "restricted_mean"])


def change(data: pd.DataFrame, school_year: str, design: str = "did", statistic: str = "median",
           draws: int = 0, seed: int = 0, horizon: float = 365.0,
           jackknife: bool = False) -> dict:
    """The change in days of a duration: after minus before at the pilot schools
    (`design="before_after"`) or that minus the same change at the comparison schools
    (`design="did"`), of the median or the restricted mean (`statistic`).

    Returns estimate and, with `draws`, the cluster-bootstrap replicates (`replicates`, NaN where a
    median is not reached in a draw), and with `jackknife` the estimates with each school left out
    in turn (`leave_one_out`, NaN where a cell is left empty). Raises ValueError when a cell is empty or its median is
    not reached."""
    cell = cells(data, school_year)
    keep = (cell >= 0) & data["days"].notna().to_numpy()
    if design == "before_after":
        keep &= cell <= PILOT_AFTER
    needed = (PILOT_BEFORE, PILOT_AFTER) + (() if design == "before_after"
                                            else (COMPARISON_BEFORE, COMPARISON_AFTER))
    cell = cell[keep]
    if not all((cell == k).any() for k in needed):
        raise ValueError("durations: a group or period without records")
    school_codes, schools = pd.factorize(data.loc[keep, "school_id"], sort=True)
    n_s = len(schools)
    days = data.loc[keep, "days"].to_numpy(float)
    event = data.loc[keep, "event"].to_numpy(float)
    pilot_school = np.zeros(n_s, bool)
    pilot_school[school_codes[np.isin(cell, (PILOT_BEFORE, PILOT_AFTER))]] = True
    sign = {PILOT_BEFORE: -1.0, PILOT_AFTER: 1.0, COMPARISON_BEFORE: 1.0, COMPARISON_AFTER: -1.0}
    parts = {k: _cell_counts(days[cell == k], event[cell == k], school_codes[cell == k], n_s)
             for k in needed}
    pick = 0 if statistic == "median" else 1

    def combine(weights: np.ndarray, cut: dict[int, int] | None = None) -> np.ndarray:
        """The statistic for each row of school weights. With `cut`, medians use each cell's
        first days only (up to where the full-sample curve is down to a quarter): the draws'
        medians lie there, and what lies beyond costs most of the work. A draw whose median is
        not reached within the cut is recomputed in full."""
        out = np.zeros(len(weights))
        for k, (times, d, c) in parts.items():
            if cut is None or pick == 1:
                value = _km_summaries(times, weights @ d, weights @ c, horizon)[pick]
            else:
                j = cut[k]
                value = _km_summaries(times[:j], weights @ d[:, :j], weights @ c[:, :j],
                                      None, weights @ c.sum(axis=1))[0]
                redo = np.flatnonzero(np.isnan(value))
                if len(redo):
                    value[redo] = _km_summaries(times, weights[redo] @ d, weights[redo] @ c,
                                                None)[0]
            out += sign[k] * value
        return out

    def cut_of(times: np.ndarray, d: np.ndarray, c: np.ndarray) -> int:
        surv = np.cumprod(1 - np.where(c.sum(0)[::-1].cumsum()[::-1] > 0, d.sum(0) / np.maximum(
            c.sum(0)[::-1].cumsum()[::-1], 1e-300), 0.0))
        below = np.flatnonzero(surv <= 0.25)
        return int(below[0]) + 1 if len(below) else len(times)

    estimate = float(combine(np.ones((1, n_s)))[0])
    if not np.isfinite(estimate):
        raise ValueError("durations: the median is not reached in some group or period")
    out = {"estimate": estimate, "n_clusters": n_s, "n_pilot": int(pilot_school.sum()),
           "n_comparison": int((~pilot_school).sum())}
    if jackknife:
        with np.errstate(all="ignore"):
            out["leave_one_out"] = combine(np.ones((n_s, n_s)) - np.eye(n_s))
    if draws:
        rng = np.random.default_rng(seed)
        cuts = {k: cut_of(*parts[k]) for k in parts}
        reps = []
        for start in range(0, draws, _BATCH):
            b = min(_BATCH, draws - start)
            weights = np.zeros((b, n_s))
            for members in (np.flatnonzero(pilot_school), np.flatnonzero(~pilot_school)):
                if len(members):
                    weights[:, members] = rng.multinomial(
                        len(members), np.full(len(members), 1 / len(members)), size=b)
            reps.append(combine(weights, cuts))
        out["replicates"] = np.concatenate(reps)
    return out


def did_medians(data: pd.DataFrame, school_year: str, start_years: np.ndarray,
                baseline_years: int) -> np.ndarray:
    """The difference-in-differences of medians (`change(..., "did")`) for many assignments of
    the pilot at once, as randomisation inference needs. `start_years`: records x assignments,
    the start year of the record's school under each assignment (NaN: no pilot there).

    The records are counted once per school and school year (a block); an assignment only decides
    which blocks form which cell, so each cell of every assignment is one product (assignments x
    blocks) @ (blocks x days). NaN where a cell is empty or its median not reached."""
    block, first = _blocks(data)
    year = data["year"].to_numpy(float)[first]
    report = (data["school_year"] == school_year).to_numpy()[first]
    sy = start_years[first]                                   # blocks x assignments
    pilot = ~np.isnan(sy)
    with np.errstate(invalid="ignore"):
        before = pilot & (year[:, None] < sy) & (year[:, None] >= sy - baseline_years)
        after = pilot & report[:, None] & (year[:, None] >= sy)
    years = np.unique(year)
    # comparison schools in the school years that are a baseline year of some pilot school
    baseline_of = (before[None, :, :] & (year[None, :, None] == years[:, None, None])).any(1)
    comp_before = ~pilot & baseline_of[np.searchsorted(years, year)]
    comp_after = ~pilot & report[:, None]
    ok = data["days"].notna().to_numpy()
    times, d, c = _cell_counts(data.loc[ok, "days"].to_numpy(float),
                               data.loc[ok, "event"].to_numpy(float), block[ok], len(first))
    out = np.zeros(sy.shape[1])
    for member, sign in ((after, 1.0), (before, -1.0), (comp_after, -1.0),
                         (comp_before, 1.0)):
        w = member.T.astype(float)                            # assignments x blocks
        median = _km_summaries(times, w @ d, w @ c, None)[0]
        median[(w @ c).sum(axis=1) == 0] = np.nan
        out += sign * median
    return out


def _blocks(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each record's block (school and school year) and the first record of each block."""
    codes = pd.factorize(pd.MultiIndex.from_arrays(
        [data["school_id"].astype(str), data["school_year"].astype(str)]))[0]
    _, first = np.unique(codes, return_index=True)
    return codes, first


def bootstrap_result(estimate: float, replicates: np.ndarray, alpha: float
                     ) -> tuple[float, float, float, float]:
    """Percentile interval and two-sided p-value (H0: no change) of cluster-bootstrap replicates:
    (low, high, p, p_floor). The p-value is twice the smaller tail share at zero, never below
    1/draws (the floor is returned so that a report can say "< floor")."""
    draws = len(replicates)
    ok = replicates[np.isfinite(replicates)]
    floor = 1.0 / draws
    if len(ok) < (1 - alpha / 4) * draws:  # too many draws without a median: no interval
        return np.nan, np.nan, np.nan, floor
    low, high = np.quantile(ok, [alpha / 2, 1 - alpha / 2])
    tail = min(np.mean(ok <= 0), np.mean(ok >= 0))
    p = float(min(1.0, max(2 * tail, floor)))
    return float(low), float(high), p, floor
