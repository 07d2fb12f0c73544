"""Randomisation inference for a difference-in-differences with few pilot (or comparison) schools.

With one or two treated schools, cluster-robust and wild-bootstrap tests reject a true null far
too often: the treated school's own level is confounded with the pilot (Conley & Taber 2011;
MacKinnon & Webb 2017, 2018). What stays valid is to ask how unusual the estimate is among the
estimates obtained when the pilot is reassigned to other schools (Fisher's randomisation test,
with the pilots' start years carried over). Its p-value is exact under the sharp null of no effect
when schools are exchangeable, and cannot fall below 1/(number of assignments): with one pilot
school among six that floor is 1/6, and the report says the effect cannot be separated from the
school itself.

The interval follows Conley & Taber: the estimation error is taken from placebo estimates, in
which the pilot is assigned to comparison schools and estimated on the comparison schools alone
(the real pilot schools left out, so their effect cannot leak into the placebo "controls"):
(est - upper quantile, est - lower quantile). It is given only when there are at least
2/alpha - 1 such placebo assignments; otherwise there is none.

Every assignment is enumerated when there are at most `max_assignments`; otherwise as many are
drawn at random (seeded), the observed assignment always counted once.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable
from itertools import combinations

import numpy as np
import pandas as pd


class _Reassigner:
    """`reassigned` for many assignments of the same records: the school codes, years and report
    year are found once, each assignment costs a few vectorised array operations."""

    def __init__(self, data: pd.DataFrame, starts: list[pd.Timestamp], school_year: str,
                 baseline_years: int) -> None:
        self.data = data
        self.codes, self.schools = pd.factorize(data["school_id"], sort=True)
        self.year = data["year"].to_numpy(dtype=float)
        self.report_year = (data["school_year"] == school_year).to_numpy()
        self.starts = pd.DatetimeIndex(starts)
        self.start_year = self.starts.year.to_numpy(dtype=float)
        self.position = {school: i for i, school in enumerate(self.schools)}
        self.baseline_years = baseline_years

    def start_years(self, assignments: list[list[str]]) -> np.ndarray:
        """Records x assignments: the start year of the record's school when the pilot is at
        those schools (NaN: not a pilot school then)."""
        start_year = np.full((len(self.schools), len(assignments)), np.nan)
        rows = np.array([[self.position[p] for p in pilots] for pilots in assignments])
        start_year[rows, np.arange(len(assignments))[:, None]] = self.start_year[None, :]
        return start_year[self.codes]

    def __call__(self, pilots: list[str]) -> pd.DataFrame:
        idx = self.schools.get_indexer(pilots)
        start_year = np.full(len(self.schools), np.nan)
        start_year[idx] = self.starts.year
        start = np.full(len(self.schools), np.datetime64("NaT"), dtype="datetime64[ns]")
        start[idx] = self.starts.to_numpy(dtype="datetime64[ns]")
        sy = start_year[self.codes]
        pilot = ~np.isnan(sy)
        with np.errstate(invalid="ignore"):
            treated = pilot & (self.year >= sy)
            before = pilot & (self.year < sy) & (self.year >= sy - self.baseline_years)
        after = pilot & self.report_year
        period = np.where(before, 0, np.where(after, 1, -1)).astype(np.int8)
        return self.data.assign(
            group=pd.Categorical.from_codes(pilot.astype(np.int8), ["comparison", "pilot"]),
            pilot_start=start[self.codes], treated=treated.astype("int64"),
            period=pd.Categorical.from_codes(period, ["before", "after"]))


_PLACEBOS: OrderedDict[tuple, list[float]] = OrderedDict()


def _remembered(key: tuple, make: Callable[[], list[float]], size: int = 64) -> list[float]:
    """The placebo estimates of `key`, computed once (a copy handed out)."""
    if key not in _PLACEBOS:
        _PLACEBOS[key] = make()
        while len(_PLACEBOS) > size:
            _PLACEBOS.popitem(last=False)
    _PLACEBOS.move_to_end(key)
    return list(_PLACEBOS[key])


def _fingerprint(records: pd.DataFrame) -> tuple:
    """Records the same in every column, type and order, as a key."""
    hashed = pd.util.hash_pandas_object(records, index=False).to_numpy()
    return (tuple(records.columns), tuple(map(str, records.dtypes)), len(records),
            hashlib.sha256(hashed.tobytes()).hexdigest())


def reassigned(data: pd.DataFrame, pilots: list[str], starts: list[pd.Timestamp],
               school_year: str, baseline_years: int) -> pd.DataFrame:
    """The records with the pilot moved to the schools `pilots` (starting in `starts`): group,
    pilot_start, treated and period as `comparisons.with_design` sets them."""
    return _Reassigner(data, starts, school_year, baseline_years)(pilots)


def _assignments(schools: list[str], pilots: list[str], max_assignments: int, seed: int
                 ) -> list[tuple[int, ...]]:
    """Index tuples of pilot sets, the observed one first. Every indicator of a report (and
    every robustness specification) asks for the same sets: they are made once."""
    return list(_assignments_of(tuple(schools), tuple(pilots), max_assignments, seed))


@functools.lru_cache(maxsize=256)
def _assignments_of(schools: tuple[str, ...], pilots: tuple[str, ...], max_assignments: int,
                    seed: int) -> tuple[tuple[int, ...], ...]:
    G, k = len(schools), len(pilots)
    observed = tuple(sorted(schools.index(p) for p in pilots))
    if math.comb(G, k) <= max_assignments:
        rest = [a for a in combinations(range(G), k) if a != observed]
        return (observed, *rest)
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.random((max_assignments, G)).argsort(axis=1)[:, :k], axis=1)
    drawn = {tuple(int(i) for i in row) for row in np.unique(picks, axis=0)}
    drawn.discard(observed)
    return (observed, *sorted(drawn))


def randomisation_inference(data: pd.DataFrame, statistic: Callable[[pd.DataFrame], float],
                            school_year: str, baseline_years: int, alpha: float = 0.05,
                            max_assignments: int = 999, seed: int = 0,
                            batch_statistic: Callable[[pd.DataFrame, np.ndarray], np.ndarray]
                            | None = None, statistic_key: tuple | None = None) -> dict:
    """Estimate, Conley-Taber interval and randomisation p-value of `statistic` (a function of the
    records on an additive scale: the log of a ratio, a difference in points or days).

    `batch_statistic(records, start_years)`, when given, computes the statistic for many
    assignments at once from the start year of each record's school under each assignment
    (records x assignments, NaN for a school without the pilot; returns NaN where an assignment
    cannot be fitted): a few matrix products replace a refit per assignment. It must equal
    `statistic` of the reassigned records.

    `statistic_key`, when given, names what the statistic computes (model, outcome, settings):
    the placebo estimates are then remembered per statistic and comparison records, so that the
    robustness specifications that leave the comparison schools as they are (and the report's
    own estimate) compute them once.

    Returns estimate, ci_low, ci_high (NaN when too few placebo assignments), p_value,
    p_value_bound (1 / assignments), draws (assignments used), n_pilot, n_comparison."""
    schools = sorted(data["school_id"].unique())
    first = data.drop_duplicates("school_id").set_index("school_id")
    pilots = sorted(first.index[first["group"] == "pilot"])
    starts = [first.loc[p, "pilot_start"] for p in pilots]
    if not pilots or len(pilots) == len(schools):
        raise ValueError("randomisation: needs pilot and comparison schools")
    observed = float(statistic(data))
    if not np.isfinite(observed):
        raise ValueError("randomisation: the estimate is not defined")

    def value_of(reassign: _Reassigner, chosen: list[str]) -> float:
        try:
            with np.errstate(all="ignore"):
                return float(statistic(reassign(chosen)))
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError):
            return np.nan  # an assignment the model cannot fit (no years before its start)

    def values_of(reassign: _Reassigner, assignments: list[list[str]]) -> np.ndarray:
        if batch_statistic is not None:
            out = []
            for start in range(0, len(assignments), 256):  # bounded memory: records x 256
                batch = reassign.start_years(assignments[start:start + 256])
                with np.errstate(all="ignore"):
                    out.append(np.asarray(batch_statistic(reassign.data, batch), float))
            return np.concatenate(out) if out else np.array([])
        return np.array([value_of(reassign, chosen) for chosen in assignments])

    everyone = _Reassigner(data, starts, school_year, baseline_years)
    others = [[schools[i] for i in a]
              for a in _assignments(schools, pilots, max_assignments, seed)[1:]]
    values = np.r_[observed, values_of(everyone, others)]
    values = values[np.isfinite(values)]
    p = float(np.mean(np.abs(values) >= abs(observed) * (1 - 1e-9)))
    low = high = np.nan
    placebo: list[float] = []
    comparison = [s for s in schools if s not in set(pilots)]
    needed = math.ceil(2 / alpha) - 1
    if len(comparison) > len(pilots) and math.comb(len(comparison), len(pilots)) >= needed:
        records = data[~data["school_id"].isin(pilots)]

        def placebos() -> list[float]:
            controls = _Reassigner(records, starts, school_year, baseline_years)
            chosen = [[comparison[i] for i in a]
                      for a in _assignments(comparison, comparison[:len(pilots)],
                                            max_assignments, seed)]
            return [float(v) for v in values_of(controls, chosen) if np.isfinite(v)]

        placebo = (placebos() if statistic_key is None else _remembered(
            (statistic_key, _fingerprint(records), tuple(map(str, starts)), school_year,
             baseline_years, max_assignments, seed), placebos))
    if len(placebo) >= needed:
        q_low, q_high = np.quantile(np.asarray(placebo), [alpha / 2, 1 - alpha / 2])
        low, high = observed - q_high, observed - q_low
    return {"estimate": observed, "ci_low": float(low), "ci_high": float(high), "p_value": p,
            "p_value_bound": 1.0 / len(values), "draws": len(values),
            "n_pilot": len(pilots), "n_comparison": len(schools) - len(pilots),
            "n_placebo": len(placebo)}
