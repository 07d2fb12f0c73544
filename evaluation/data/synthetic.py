"""Synthetic record-level data with known, planted pilot effects.

The framework must run, be tested and be demonstrated without real (sensitive) data, and the
statistics must be checked against a known truth. `generate` builds every table of the data model
for the schools of the given regions; `truth` says what was planted, so that an analysis of the
synthetic data can be compared with the right answer.

The generator is deterministic for `Synthetic.seed`: each table draws from its own random stream
(spawned from one SeedSequence), so a change in one table does not shift the numbers of another.
Everything is vectorised over pupils and rows (loops run over schools and school years only), so a
million pupils take seconds, not hours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from evaluation.data.datamodel import CHANNELS, LEVELS, REFERRERS, ROLES, ROUTES, TABLES, TRACKS
from evaluation.params import Region, Synthetic

# One random stream per step, in a fixed order: append new streams at the end only, so that
# existing tables keep their numbers.
STREAMS = (
    "schools",
    "enrolments",
    "care_reports",
    "trajectories",
    "referrals",
    "parent_involvement",
    "survey_responses",
)

# --- assumptions of the generator (stated in `truth`) ------------------------------------------

#: Grades a pupil of each track passes through (practical education: 4, 5 or 6).
TRACK_GRADES = {"pro": 6, "vmbo": 4, "havo": 5, "vwo": 6}
PRO_LAST_GRADE = (np.array([4, 5, 6]), np.array([0.2, 0.4, 0.4]))
#: Relative chance of an indication by track (pro pupils nearly all have one); scaled per region
#: so that the share of pupils with an indication matches `indication_share`.
INDICATION_WEIGHT = {"pro": 6.0, "vmbo": 1.5, "havo": 0.45, "vwo": 0.3}
#: Rate ratios for pupils with an indication (relative to pupils without).
INDICATION_RATE_RATIO = {"care_reports": 2.5, "trajectories": 3.0, "external_referrals": 2.0}
#: Pupil frailty: gamma with mean 1, shared by all events of a pupil (repeated events cluster).
FRAILTY_SHAPE = 2.0
PRO_SCHOOL_PUPILS = 220
SCHOOL_PUPILS_RANGE = (0.4, 1.9)  # relative to the mean of the region's other schools
CHANNEL_SHARES = (0.35, 0.30, 0.15, 0.12, 0.08)
SIGNAL_TO_HELP_DAYS = 60.0  # mean, regular route; gamma with shape 2
SIGNAL_TO_HELP_SHAPE = 2.0
EXTRA_INTAKES = 0.25  # double intakes: 2 + Poisson(0.25) intakes
SCHOOL_REFERRAL_SHARE = 0.30  # trajectories referred on to heavier care (regular route)
SCHOOL_REFERRAL_LEVELS = {"specialised": 0.50, "jggz": 0.38, "residential": 0.12}
INDICATION_FREE_SHARE = {"kernteam": 0.80, "regular": 0.15}
DURATION_DAYS = {"light": 120.0, "specialised": 240.0, "jggz": 210.0, "residential": 330.0}
DURATION_SHAPE = 1.5
PARENT_CONTACT_DAYS = 10.0  # mean days from signal to first parent contact (regular route)
CONSENT_DAYS = 25.0  # mean days from first parent contact to consent (regular route)
#: Referrals outside the school care route: rate per 100 pupil-years and destination shares.
EXTERNAL_REFERRALS = {
    "youth_doctor": (0.4, {"light": 0.5, "specialised": 0.3, "jggz": 0.2}),
    "district_team": (0.8, {"light": 0.5, "specialised": 0.35, "jggz": 0.15}),
    "certified_institution": (0.15, {"specialised": 0.6, "residential": 0.4}),
}
#: Survey: respondents per school and year (inclusive range) and the items of each role.
SURVEY_RESPONDENTS = {"school": (10, 20), "parent": (20, 40), "pupil": (30, 60),
                      "professional": (5, 15)}
SURVEY_ITEMS = {
    "school": ("sat_collaboration", "sat_speed", "sat_feedback", "sat_reachability",
               "sat_expertise", "sat_overall"),
    "parent": ("sat_speed", "sat_reachability", "sat_involvement", "sat_overall"),
    "pupil": ("sat_speed", "sat_reachability", "sat_listened", "sat_overall"),
    "professional": ("sat_collaboration", "sat_speed", "sat_feedback", "sat_reachability",
                     "sat_overall"),
}
SURVEY_ROLE_MEAN = {"school": 2.8, "parent": 3.4, "pupil": 3.3, "professional": 3.1}
SURVEY_ITEM_OFFSET = {"sat_speed": -0.3, "sat_feedback": -0.2, "sat_expertise": 0.2,
                      "sat_overall": 0.1, "sat_listened": 0.1}
SURVEY_SHIFTED_ROLES = ("school", "professional")
SURVEY_SD = {"school_year": 0.15, "respondent": 0.6, "answer": 0.7}

_NAT = np.datetime64("NaT", "D")


# --- schools ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Schools:
    """School-level inputs and latent effects, one array entry per school."""

    ids: np.ndarray
    names: np.ndarray
    municipality: np.ndarray  # global municipality index
    region: np.ndarray  # region index
    pilot_year: np.ndarray  # first school year of the pilot (large when none)
    pupils: np.ndarray  # target number of pupils per school year
    track_mix: np.ndarray  # (schools, tracks): shares of the intake
    growth: np.ndarray  # yearly relative change of the intake
    care_effect: np.ndarray  # school multiplier of the care-report rate (mean 1)
    trajectory_effect: np.ndarray  # school multiplier of the trajectory rate (mean 1)


@dataclass(frozen=True)
class _Municipalities:
    codes: np.ndarray  # global index -> code
    offset: np.ndarray  # per region: first global index
    count: np.ndarray  # per region: number of municipalities


def _years(config: Synthetic) -> np.ndarray:
    return np.arange(int(config.first_school_year[:4]), int(config.last_school_year[:4]) + 1)


def _year_labels(years: np.ndarray) -> np.ndarray:
    return np.array([f"{y}-{y + 1}" for y in years])


def _extraction_date(config: Synthetic) -> np.datetime64:
    """Data are extracted at the end of the last school year: later events have not happened."""
    return np.datetime64(f"{int(config.last_school_year[:4]) + 1}-07-31", "D")


def _track_mix(name: str) -> np.ndarray:
    """Track shares of the intake, guessed from the school's name (as Dutch names tell)."""
    low = name.lower()
    if "praktijk" in low:
        mix = (1.0, 0.0, 0.0, 0.0)
    elif any(w in low for w in ("vmbo", "mavo", "vakcollege", "vakschool")):
        mix = (0.0, 1.0, 0.0, 0.0)
    elif any(w in low for w in ("lyceum", "atheneum", "gymnasium")):
        mix = (0.0, 0.0, 0.45, 0.55)
    else:
        mix = (0.02, 0.50, 0.26, 0.22)
    return np.array(mix) / sum(mix)


def _municipalities(regions: list[Region]) -> _Municipalities:
    codes = [m.code for r in regions for m in r.municipalities]
    count = np.array([len(r.municipalities) for r in regions])
    offset = np.concatenate([[0], np.cumsum(count)[:-1]])
    return _Municipalities(np.array(codes), offset, count)


def _schools(regions: list[Region], config: Synthetic, rng: np.random.Generator) -> _Schools:
    """School sizes (lognormal, practical education small) and school random effects."""
    munis = _municipalities(regions)
    ids, names, muni, region, pilot, pupils, mix = [], [], [], [], [], [], []
    for r_idx, r in enumerate(regions):
        local = {m.code: i for i, m in enumerate(r.municipalities)}
        pro = np.array(["praktijk" in s.name.lower() for s in r.schools])
        size = np.exp(rng.normal(np.log(850), 0.35, len(r.schools)))
        size[pro] = PRO_SCHOOL_PUPILS * np.exp(rng.normal(0, 0.15, pro.sum()))
        rest = max(r.pupils - size[pro].sum(), 0.0)
        bounds = np.array(SCHOOL_PUPILS_RANGE) * rest / max((~pro).sum(), 1)
        for _ in range(10 if (~pro).any() else 0):  # scale to the region's total, within bounds
            size[~pro] = np.clip(size[~pro] * rest / size[~pro].sum(), *bounds)
        for s, n in zip(r.schools, size, strict=True):
            ids.append(s.id)
            names.append(s.name)
            muni.append(munis.offset[r_idx] + local[s.municipality])
            region.append(r_idx)
            pilot.append(s.pilot_start.year if s.pilot_start else 10_000)
            pupils.append(n)
            mix.append(_track_mix(s.name))
    n_schools = len(ids)
    sd = config.school_sd
    z1, z2 = rng.standard_normal(n_schools), rng.standard_normal(n_schools)
    return _Schools(
        ids=np.array(ids),
        names=np.array(names),
        municipality=np.array(muni),
        region=np.array(region),
        pilot_year=np.array(pilot),
        pupils=np.array(pupils),
        track_mix=np.array(mix),
        growth=rng.normal(0.0, 0.015, n_schools),
        care_effect=np.exp(sd * z1 - sd**2 / 2),
        trajectory_effect=np.exp(sd * (0.6 * z1 + 0.8 * z2) - sd**2 / 2),
    )


# --- pupils and enrolments --------------------------------------------------------------------


@dataclass(frozen=True)
class _PupilYears:
    """One entry per enrolment (pupil x school year), plus per-pupil attributes."""

    pupil: np.ndarray  # index into the per-pupil arrays
    school: np.ndarray
    year: np.ndarray
    grade: np.ndarray
    ids: np.ndarray  # per pupil: the pseudonym
    number: np.ndarray  # per pupil: the number inside the pseudonym (for sorting)
    track: np.ndarray  # per pupil
    indication: np.ndarray  # per pupil
    residence: np.ndarray  # per pupil: global municipality index
    frailty: np.ndarray  # per pupil


def _id_strings(prefix: str, numbers: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded identifiers, vectorised ("P" and 12 -> "P0000012")."""
    return np.char.add(prefix, np.char.zfill(numbers.astype(str), width))


def _calibrate(weights: np.ndarray, target: float) -> float:
    """The factor c with mean(min(1, c * weights)) == target (bisection; weights > 0)."""
    if target <= 0:
        return 0.0
    lo, hi = 0.0, 1.0 / max(weights.min(), 1e-9)
    for _ in range(60):
        mid = (lo + hi) / 2
        if np.minimum(1.0, mid * weights).mean() < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _pupils(schools: _Schools, munis: _Municipalities, config: Synthetic,
            rng: np.random.Generator) -> _PupilYears:
    """Cohorts enter grade 1 each year and move up one grade a year until their track ends."""
    years = _years(config)
    y0, y1 = int(years[0]), int(years[-1])
    intake_years = np.arange(y0 - max(TRACK_GRADES.values()) + 1, y1 + 1)
    mean_grades = np.array([TRACK_GRADES[t] for t in TRACKS], dtype=float)
    mean_grades[TRACKS.index("pro")] = float(PRO_LAST_GRADE[0] @ PRO_LAST_GRADE[1])
    centre = (y0 + y1) / 2

    school_of, intake = [], []
    for s in range(len(schools.ids)):
        per_year = schools.pupils[s] / float(schools.track_mix[s] @ mean_grades)
        expected = per_year * (1 + schools.growth[s]) ** (intake_years - centre)
        counts = rng.poisson(expected)
        school_of.append(np.full(counts.sum(), s))
        intake.append(np.repeat(intake_years, counts))
    school = np.concatenate(school_of)
    intake_year = np.concatenate(intake)
    n = len(school)

    cum = np.cumsum(schools.track_mix, axis=1)[school]
    track = np.minimum((rng.random(n)[:, None] > cum).sum(axis=1), len(TRACKS) - 1)
    last_grade = np.array([TRACK_GRADES[t] for t in TRACKS])[track]
    is_pro = track == TRACKS.index("pro")
    last_grade[is_pro] = rng.choice(PRO_LAST_GRADE[0], size=is_pro.sum(), p=PRO_LAST_GRADE[1])

    first = np.maximum(intake_year, y0)
    last = np.minimum(intake_year + last_grade - 1, y1)
    keep = last >= first
    school, intake_year, track, first, last = (a[keep] for a in (school, intake_year, track,
                                                                   first, last))
    n = len(school)
    n_years = last - first + 1

    # Indication: more in pro and vmbo, calibrated per region to the configured share.
    region = schools.region[school]
    weight = np.array([INDICATION_WEIGHT[t] for t in TRACKS])[track]
    p_ind = np.zeros(n)
    for r in np.unique(region):
        sel = region == r
        c = _calibrate(np.repeat(weight[sel], n_years[sel]), config.indication_share)
        p_ind[sel] = np.minimum(1.0, c * weight[sel])
    indication = rng.random(n) < p_ind

    # Residence: some pupils live in another municipality of the same region.
    own = schools.municipality[school]
    offset, count = munis.offset[region], munis.count[region]
    other = (rng.random(n) < config.other_municipality_share) & (count > 1)
    step = 1 + np.floor(rng.random(n) * np.maximum(count - 1, 1)).astype(int)
    residence = np.where(other, offset + (own - offset + step) % count, own)

    frailty = rng.gamma(FRAILTY_SHAPE, 1 / FRAILTY_SHAPE, n)
    number = rng.permutation(n) + 1
    ids = _id_strings("P", number, max(7, len(str(n))))

    pupil = np.repeat(np.arange(n), n_years)
    starts = np.repeat(np.cumsum(n_years) - n_years, n_years)
    year = first[pupil] + (np.arange(len(pupil)) - starts)
    return _PupilYears(
        pupil=pupil,
        school=school[pupil],
        year=year,
        grade=year - intake_year[pupil] + 1,
        ids=ids,
        number=number,
        track=track,
        indication=indication,
        residence=residence,
        frailty=frailty,
    )


# --- dates --------------------------------------------------------------------------------------


def _calendar(year: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """Days of school year `year` and the relative chance of an event on each day.

    kind "school": events made at school (few in weekends and holidays, almost none in the
    summer holiday, fewer in late December); kind "open": events outside school (GP and others:
    weekdays, somewhat fewer in the summer and at Christmas).
    """
    days = np.arange(np.datetime64(f"{year}-08-01"), np.datetime64(f"{year + 1}-08-01"))
    month = days.astype("datetime64[M]").astype(int) % 12 + 1
    dom = (days - days.astype("datetime64[M]")).astype(int) + 1
    weekday = (days.astype(int) + 3) % 7  # 0 = Monday (1970-01-01 was a Thursday)
    md = month * 100 + dom
    w = np.ones(len(days))
    if kind == "school":
        w[(md >= 822) & (md <= 831)] = 0.4  # first days of the school year
        w[(md >= 1015) & (md <= 1023)] = 0.3  # autumn holiday
        w[(md >= 1214) & (md <= 1220)] = 0.6  # last week before Christmas
        w[(md >= 1221) | (md <= 103)] = 0.05  # Christmas holiday
        w[(md >= 218) & (md <= 226)] = 0.3  # spring holiday
        w[(md >= 427) & (md <= 505)] = 0.3  # May holiday
        w[(md >= 701) & (md <= 710)] = 0.25  # last weeks: exams are done
        w[(md >= 711) & (md <= 731)] = 0.02  # summer holiday
        w[(md >= 801) & (md <= 821)] = 0.02
        w[weekday >= 5] *= 0.03
    else:
        w[(month == 7) | (month == 8)] = 0.6
        w[(md >= 1224) | (md <= 101)] = 0.4
        w[weekday >= 5] *= 0.05
    return days, w / w.sum()


def _sample_dates(rng: np.random.Generator, year: np.ndarray, kind: str) -> np.ndarray:
    """A date within the school year of each row, with the calendar's seasonality."""
    out = np.full(len(year), _NAT)
    for y in np.unique(year):
        sel = year == y
        days, p = _calendar(int(y), kind)
        out[sel] = days[rng.choice(len(days), size=int(sel.sum()), p=p)]
    return out


def _year_end(year: np.ndarray) -> np.ndarray:
    """31 July ending school year `year` (its first calendar year)."""
    august = ((year + 1 - 1970) * 12 + 7).astype("datetime64[M]")
    return august.astype("datetime64[D]") - np.timedelta64(1, "D")


def _days(values: np.ndarray) -> np.ndarray:
    return np.rint(values).astype("int64").astype("timedelta64[D]")


# --- helpers to build the output tables ---------------------------------------------------------


def _categorical(codes: np.ndarray, allowed: tuple[str, ...]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes.astype(int), categories=list(allowed))


def _masked(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    return rng.random(n) < share


def _frame(name: str, columns: dict[str, Any]) -> pd.DataFrame:
    """The table in the data model's column order and dtypes."""
    table = TABLES[name]
    if set(columns) != set(table.columns):
        raise AssertionError(f"{name}: columns {sorted(columns)} != {sorted(table.columns)}")
    out = {}
    for f in table.fields:
        values = columns[f.name]
        if f.kind == "int":
            data = np.asarray(values[0] if isinstance(values, tuple) else values)
            mask = values[1] if isinstance(values, tuple) else np.zeros(len(data), bool)
            out[f.name] = pd.arrays.IntegerArray(data.astype("int32"), mask)
        elif f.kind == "bool":
            data = np.asarray(values[0] if isinstance(values, tuple) else values)
            mask = values[1] if isinstance(values, tuple) else np.zeros(len(data), bool)
            out[f.name] = pd.arrays.BooleanArray(data.astype(bool), mask)
        elif f.kind == "date":
            out[f.name] = np.asarray(values).astype("datetime64[s]")
        else:
            out[f.name] = values
    df = pd.DataFrame(out)
    return df.astype(table.dtypes)


def _sort_ids(prefix: str, order: np.ndarray) -> np.ndarray:
    """Sequential identifiers for rows taken in `order` (returned in row order)."""
    n = len(order)
    numbers = np.empty(n, dtype=np.int64)
    numbers[order] = np.arange(1, n + 1)
    return _id_strings(prefix, numbers, max(6, len(str(n))))


# --- the tables --------------------------------------------------------------------------------


def _indication_ratio(indication: np.ndarray, ratio: float, share: float) -> np.ndarray:
    """Rate multiplier for indication, normalised so that the pupil mean stays 1."""
    return np.where(indication, ratio, 1.0) / (1 + share * (ratio - 1))


@dataclass(frozen=True)
class _Trajectories:
    row: np.ndarray  # enrolment row of the pupil at the signal
    signal: np.ndarray
    intake: np.ndarray
    start: np.ndarray
    pilot: np.ndarray
    referred: np.ndarray
    level: np.ndarray  # code into LEVELS
    ids: np.ndarray


def generate(regions: list[Region], config: Synthetic) -> dict[str, pd.DataFrame]:
    """Every table of the data model, for the schools of `regions`, with the planted effects."""
    seed = np.random.SeedSequence(config.seed & (2**64 - 1))
    rngs = dict(zip(STREAMS, (np.random.default_rng(s) for s in seed.spawn(len(STREAMS))),
                    strict=True))
    eff = config.effects
    years = _years(config)
    y0 = int(years[0])
    labels = _year_labels(years)
    extraction = _extraction_date(config)
    munis = _municipalities(regions)
    schools = _schools(regions, config, rngs["schools"])
    py = _pupils(schools, munis, config, rngs["enrolments"])
    share = config.indication_share

    tables: dict[str, pd.DataFrame] = {}
    tables["schools"] = _frame("schools", {
        "school_id": schools.ids,
        "name": schools.names,
        "municipality_code": munis.codes[schools.municipality],
        "region": np.array([r.id for r in regions])[schools.region],
    })

    order = np.lexsort((py.number[py.pupil], py.school, py.year))
    tables["enrolments"] = _frame("enrolments", {
        "student_id": py.ids[py.pupil[order]],
        "school_id": schools.ids[py.school[order]],
        "school_year": labels[py.year[order] - y0],
        "residence_municipality_code": munis.codes[py.residence[py.pupil[order]]],
        "grade": py.grade[order],
        "track": _categorical(py.track[py.pupil[order]], TRACKS),
        "indication": py.indication[py.pupil[order]],
    })

    trend = (1 + config.secular_trend) ** (py.year - y0)
    pilot = py.year >= schools.pilot_year[py.school]
    indication = py.indication[py.pupil]
    frailty = py.frailty[py.pupil]

    # Care reports.
    rng = rngs["care_reports"]
    lam = (config.care_reports_per_100 / 100 * schools.care_effect[py.school] * trend * frailty
           * _indication_ratio(indication, INDICATION_RATE_RATIO["care_reports"], share)
           * np.where(pilot, eff.care_report_rate_ratio, 1.0))
    row = np.repeat(np.arange(len(lam)), rng.poisson(lam))
    date = _sample_dates(rng, py.year[row], "school")
    channel = rng.choice(len(CHANNELS), size=len(row), p=CHANNEL_SHARES)
    channel[_masked(rng, len(row), config.missing_share)] = -1
    order = np.lexsort((py.number[py.pupil[row]], date))
    tables["care_reports"] = _frame("care_reports", {
        "report_id": _sort_ids("CR", order)[order],
        "student_id": py.ids[py.pupil[row]][order],
        "school_id": schools.ids[py.school[row]][order],
        "report_date": date[order],
        "channel": _categorical(channel[order], CHANNELS),
    })

    traj = _trajectories(py, schools, config, rngs["trajectories"], trend, pilot, tables)
    tables["referrals"] = _referrals(py, schools, config, rngs["referrals"], trend, pilot, traj)
    tables["parent_involvement"] = _parent_involvement(config, rngs["parent_involvement"], traj,
                                                       extraction)
    tables["survey_responses"] = _survey(schools, config, rngs["survey_responses"], labels)
    return {name: tables[name] for name in TABLES}


def _trajectories(py: _PupilYears, schools: _Schools, config: Synthetic,
                  rng: np.random.Generator, trend: np.ndarray, pilot: np.ndarray,
                  tables: dict[str, pd.DataFrame]) -> _Trajectories:
    """Care trajectories: timing, route, level and outcome; adds the table to `tables`."""
    eff = config.effects
    extraction = _extraction_date(config)
    lam = (config.trajectories_per_100 / 100 * schools.trajectory_effect[py.school] * trend
           * py.frailty[py.pupil]
           * _indication_ratio(py.indication[py.pupil], INDICATION_RATE_RATIO["trajectories"],
                               config.indication_share))
    row = np.repeat(np.arange(len(lam)), rng.poisson(lam))
    n = len(row)
    in_pilot = pilot[row]
    signal = _sample_dates(rng, py.year[row], "school")
    wait = rng.gamma(SIGNAL_TO_HELP_SHAPE, SIGNAL_TO_HELP_DAYS / SIGNAL_TO_HELP_SHAPE, n)
    wait *= np.where(in_pilot, eff.signal_to_help_ratio, 1.0)
    start = signal + _days(wait)
    intake = signal + _days(wait * rng.beta(2.0, 3.0, n))
    double = rng.random(n) < np.where(in_pilot, eff.double_intake_pilot, eff.double_intake_baseline)
    n_intakes = np.where(double, np.minimum(2 + rng.poisson(EXTRA_INTAKES, n), 20), 1)

    p_ref = SCHOOL_REFERRAL_SHARE * np.where(in_pilot, eff.specialised_referral_rate_ratio, 1.0)
    referred = rng.random(n) < np.minimum(p_ref, 1.0)
    heavy = np.array([LEVELS.index(lv) for lv in SCHOOL_REFERRAL_LEVELS])
    level = np.where(referred, heavy[rng.choice(len(heavy), size=n,
                                                p=list(SCHOOL_REFERRAL_LEVELS.values()))],
                     LEVELS.index("light"))
    route = np.where(in_pilot, ROUTES.index("kernteam"), ROUTES.index("regular"))
    free = rng.random(n) < np.where(in_pilot, INDICATION_FREE_SHARE["kernteam"],
                                    INDICATION_FREE_SHARE["regular"])
    mean_duration = np.array([DURATION_DAYS[lv] for lv in LEVELS])[level]
    mean_duration *= np.where(free, eff.indication_free_duration_ratio, 1.0)
    duration = np.maximum(rng.gamma(DURATION_SHAPE, mean_duration / DURATION_SHAPE), 1.0)
    end = start + _days(duration)
    informed = rng.random(n) < np.where(in_pilot, eff.school_informed_pilot,
                                        eff.school_informed_baseline)
    miss_intake, miss_n, miss_informed = (_masked(rng, n, config.missing_share) for _ in range(3))

    # Help that has not started by the extraction date is not in the data; help still running
    # then is ongoing (no end date).
    keep = start <= extraction
    end = np.where(end <= extraction, end, _NAT)
    order = np.lexsort((py.number[py.pupil[row]], signal))
    order = order[keep[order]]
    ids_sorted = _id_strings("TR", np.arange(1, len(order) + 1), max(6, len(str(len(order)))))
    tables["trajectories"] = _frame("trajectories", {
        "trajectory_id": ids_sorted,
        "student_id": py.ids[py.pupil[row[order]]],
        "school_id": schools.ids[py.school[row[order]]],
        "signal_date": signal[order],
        "first_intake_date": np.where(miss_intake, _NAT, intake)[order],
        "n_intakes": (n_intakes[order], miss_n[order]),
        "start_date": start[order],
        "end_date": end[order],
        "route": _categorical(route[order], ROUTES),
        "level": _categorical(level[order], LEVELS),
        "indication_free": free[order],
        "school_informed": (informed[order], miss_informed[order]),
    })
    return _Trajectories(row=row[order], signal=signal[order], intake=intake[order],
                         start=start[order], pilot=in_pilot[order], referred=referred[order],
                         level=level[order], ids=ids_sorted)


def _referrals(py: _PupilYears, schools: _Schools, config: Synthetic, rng: np.random.Generator,
               trend: np.ndarray, pilot: np.ndarray, traj: _Trajectories) -> pd.DataFrame:
    """Referrals from the school route (with trajectory) and from elsewhere (without)."""
    eff = config.effects
    extraction = _extraction_date(config)
    # From the school route: between the first intake and the start of the heavier help,
    # within the school year of the signal (so the pupil's school is known).
    sel = np.flatnonzero(traj.referred)
    span = (traj.start[sel] - traj.intake[sel]).astype(float)
    date = traj.intake[sel] + _days(span * rng.beta(2.0, 2.0, len(sel)))
    date = np.minimum(np.minimum(date, _year_end(py.year[traj.row[sel]])), extraction)
    rows = [traj.row[sel]]
    dates = [date]
    referrer = [np.full(len(sel), REFERRERS.index("school"))]
    level = [traj.level[sel]]
    trajectory = [traj.ids[sel]]

    # Outside the school route: GP to JGGZ and a few others, per pupil-year.
    base = (trend * py.frailty[py.pupil]
            * _indication_ratio(py.indication[py.pupil], INDICATION_RATE_RATIO["external_referrals"],
                                config.indication_share))
    sources = {"gp": (config.gp_jggz_per_100, {"jggz": 1.0}), **EXTERNAL_REFERRALS}
    for who, (per_100, destinations) in sources.items():
        lam = per_100 / 100 * base
        if who == "gp":
            lam = lam * np.where(pilot, eff.gp_jggz_referral_rate_ratio, 1.0)
        row = np.repeat(np.arange(len(lam)), rng.poisson(lam))
        dest = np.array([LEVELS.index(lv) for lv in destinations])
        rows.append(row)
        dates.append(_sample_dates(rng, py.year[row], "open"))
        referrer.append(np.full(len(row), REFERRERS.index(who)))
        level.append(dest[rng.choice(len(dest), size=len(row), p=list(destinations.values()))])
        trajectory.append(np.full(len(row), None, dtype=object))

    row, date, who, dest = (np.concatenate(a) for a in (rows, dates, referrer, level))
    trajectory_id = np.concatenate([a.astype(object) for a in trajectory])
    order = np.lexsort((py.number[py.pupil[row]], date))
    return _frame("referrals", {
        "referral_id": _sort_ids("RF", order)[order],
        "trajectory_id": pd.array(trajectory_id[order], dtype="string"),
        "student_id": py.ids[py.pupil[row[order]]],
        "school_id": schools.ids[py.school[row[order]]],
        "referral_date": date[order],
        "referrer": _categorical(who[order], REFERRERS),
        "destination_level": _categorical(dest[order], LEVELS),
    })


def _parent_involvement(config: Synthetic, rng: np.random.Generator, traj: _Trajectories,
                        extraction: np.datetime64) -> pd.DataFrame:
    """One row per trajectory: parents contacted and consenting sooner in the pilot."""
    eff = config.effects
    n = len(traj.ids)
    ratio = np.where(traj.pilot, eff.consent_days_ratio, 1.0)
    contact = traj.signal + _days(rng.gamma(1.5, PARENT_CONTACT_DAYS / 1.5, n) * ratio)
    consent = contact + _days(rng.gamma(2.0, CONSENT_DAYS / 2.0, n) * ratio)
    present = rng.random(n) < np.where(traj.pilot, eff.parents_first_meeting_pilot,
                                       eff.parents_first_meeting_baseline)
    miss_contact, miss_consent, miss_present = (_masked(rng, n, config.missing_share)
                                                for _ in range(3))
    contact = np.where(miss_contact | (contact > extraction), _NAT, contact)
    consent = np.where(miss_consent | (consent > extraction), _NAT, consent)
    return _frame("parent_involvement", {
        "trajectory_id": traj.ids,
        "first_parent_contact_date": contact,
        "consent_date": consent,
        "parents_at_first_meeting": (present, miss_present),
    })


def _survey(schools: _Schools, config: Synthetic, rng: np.random.Generator,
            labels: np.ndarray) -> pd.DataFrame:
    """Satisfaction surveys per school and year: a latent normal score cut into 1..5."""
    n_schools, n_years, n_roles = len(schools.ids), len(labels), len(ROLES)
    y0 = int(labels[0][:4])
    school, year, role = (a.ravel() for a in np.meshgrid(
        np.arange(n_schools), np.arange(n_years), np.arange(n_roles), indexing="ij"))
    lo = np.array([SURVEY_RESPONDENTS[r][0] for r in ROLES])[role]
    hi = np.array([SURVEY_RESPONDENTS[r][1] for r in ROLES])[role]
    context = np.repeat(np.arange(len(role)), rng.integers(lo, hi + 1))
    n_resp = len(context)
    respondent_effect = rng.normal(0.0, SURVEY_SD["respondent"], n_resp)
    school_year_effect = rng.normal(0.0, SURVEY_SD["school_year"], (n_schools, n_years))

    all_items = sorted({i for items in SURVEY_ITEMS.values() for i in items})
    width = max(len(v) for v in SURVEY_ITEMS.values())
    item_table = np.full((n_roles, width), -1)
    n_items = np.zeros(n_roles, dtype=int)
    for r_idx, r in enumerate(ROLES):
        codes = [all_items.index(i) for i in SURVEY_ITEMS[r]]
        item_table[r_idx, : len(codes)] = codes
        n_items[r_idx] = len(codes)
    resp_role = role[context]
    resp = np.repeat(np.arange(n_resp), n_items[resp_role])
    starts = np.repeat(np.cumsum(n_items[resp_role]) - n_items[resp_role], n_items[resp_role])
    item = item_table[resp_role[resp], np.arange(len(resp)) - starts]

    c = context[resp]
    pilot = (y0 + year[c]) >= schools.pilot_year[school[c]]
    shifted = np.isin(role[c], [ROLES.index(r) for r in SURVEY_SHIFTED_ROLES])
    role_mean = np.array([SURVEY_ROLE_MEAN[r] for r in ROLES])
    item_offset = np.array([SURVEY_ITEM_OFFSET.get(i, 0.0) for i in all_items])
    latent = (role_mean[role[c]] + item_offset[item] + school_year_effect[school[c], year[c]]
              + respondent_effect[resp] + rng.normal(0.0, SURVEY_SD["answer"], len(resp))
              + np.where(pilot & shifted, config.effects.satisfaction_shift, 0.0))
    value = np.digitize(latent, [1.5, 2.5, 3.5, 4.5]) + 1
    missing = _masked(rng, len(resp), config.missing_share)
    ids = _id_strings("RS", np.arange(1, n_resp + 1), max(6, len(str(n_resp))))
    return _frame("survey_responses", {
        "respondent_id": ids[resp],
        "respondent_role": _categorical(role[c], ROLES),
        "school_id": schools.ids[school[c]],
        "school_year": labels[year[c]],
        "item": np.array(all_items)[item],
        "value": (value, missing),
    })


# --- the truth ---------------------------------------------------------------------------------

EFFECT_DESCRIPTIONS = {
    "care_report_rate_ratio": "care_reports: rate of care reports per pupil at pilot schools from "
                              "their pilot start on, relative to without the pilot (0.2 = 80% fewer)",
    "signal_to_help_ratio": "trajectories: mean days from signal_date to start_date at pilot "
                            "schools from their start (kernteam route), relative to the regular route",
    "double_intake_baseline": "trajectories: probability of n_intakes > 1 (double intake) in the "
                              "regular route",
    "double_intake_pilot": "trajectories: probability of n_intakes > 1 in the kernteam route",
    "school_informed_baseline": "trajectories: probability school_informed is true, regular route",
    "school_informed_pilot": "trajectories: probability school_informed is true, kernteam route",
    "parents_first_meeting_baseline": "parent_involvement: probability parents_at_first_meeting, "
                                      "regular route",
    "parents_first_meeting_pilot": "parent_involvement: probability parents_at_first_meeting, "
                                   "kernteam route",
    "consent_days_ratio": "parent_involvement: mean days from signal to first parent contact and "
                          "from first contact to consent (so from signal to consent) in the "
                          "kernteam route, relative to the regular route",
    "specialised_referral_rate_ratio": "referrals (referrer school) and trajectories.level: "
                                       "probability that a trajectory is referred on to "
                                       "specialised, jggz or residential care, pilot relative to "
                                       "regular",
    "gp_jggz_referral_rate_ratio": "referrals (referrer gp, destination jggz, no trajectory): "
                                   "rate per pupil at pilot schools from their start, relative to "
                                   "without the pilot (1.0 = unchanged)",
    "indication_free_duration_ratio": "trajectories: mean days from start_date to end_date of "
                                      "indication-free trajectories relative to indicated ones of "
                                      "the same level (ongoing trajectories are censored)",
    "satisfaction_shift": "survey_responses: shift of the latent satisfaction score (Likert "
                          "points before cutting into 1..5) of school and professional "
                          "respondents at pilot schools from their start",
}


def median_days_truth(config: Synthetic, n: int = 2_000_000) -> dict[str, dict[str, float]]:
    """The planted median durations in whole days (as the data record them), regular route and
    kernteam route, for the waits whose only pilot effect is a scaling: days from signal to help
    and from signal to parental consent. The difference is what the difference-in-differences of
    medians estimates (the comparison schools keep the regular route). By simulation with a fixed
    seed, so the same at every call."""
    rng = np.random.default_rng(20240901)
    eff = config.effects
    wait = rng.gamma(SIGNAL_TO_HELP_SHAPE, SIGNAL_TO_HELP_DAYS / SIGNAL_TO_HELP_SHAPE, n)
    contact = rng.gamma(1.5, PARENT_CONTACT_DAYS / 1.5, n)
    consent = rng.gamma(2.0, CONSENT_DAYS / 2.0, n)

    def median(values: np.ndarray) -> float:
        return float(np.quantile(values, 0.5, method="inverted_cdf"))

    out = {}
    for indicator, days in (
            ("days_signal_to_help", lambda r: np.rint(wait * r)),
            ("days_to_consent", lambda r: np.rint(contact * r) + np.rint(consent * r))):
        ratio = (eff.signal_to_help_ratio if indicator == "days_signal_to_help"
                 else eff.consent_days_ratio)
        regular, pilot = median(days(1.0)), median(days(ratio))
        out[indicator] = {"regular": regular, "pilot": pilot, "change": pilot - regular}
    return out


def truth(regions: list[Region], config: Synthetic) -> dict[str, Any]:
    """What the generator planted, as JSON-ready data: the answer an analysis should recover."""
    seed = np.random.SeedSequence(config.seed & (2**64 - 1))
    schools = _schools(regions, config, np.random.default_rng(seed.spawn(len(STREAMS))[0]))
    effects = config.effects.model_dump()
    school_rows = []
    for i, s in enumerate(s for r in regions for s in r.schools):
        school_rows.append({
            "school_id": s.id,
            "region": regions[int(schools.region[i])].id,
            "pilot_start": s.pilot_start.isoformat() if s.pilot_start else None,
            "pupils_per_year": round(float(schools.pupils[i])),
            "track_mix": {t: round(float(schools.track_mix[i, j]), 3) for j, t in enumerate(TRACKS)},
            "care_report_school_effect": round(float(schools.care_effect[i]), 4),
            "trajectory_school_effect": round(float(schools.trajectory_effect[i]), 4),
        })
    years = _years(config)
    return {
        "seed": config.seed,
        "school_years": [str(y) for y in _year_labels(years)],
        "extraction_date": str(_extraction_date(config)),
        "pilot": "A school is in the pilot in every school year from its pilot_start on; "
                 "its trajectories then follow the kernteam route.",
        "effects": {k: {"value": v, "description": EFFECT_DESCRIPTIONS.get(k, "")}
                    for k, v in effects.items()},
        "baseline": {
            "care_reports_per_100": config.care_reports_per_100,
            "trajectories_per_100": config.trajectories_per_100,
            "gp_jggz_per_100": config.gp_jggz_per_100,
            "other_referrals_per_100": {k: v[0] for k, v in EXTERNAL_REFERRALS.items()},
            "indication_share": config.indication_share,
            "other_municipality_share": config.other_municipality_share,
            "indication_rate_ratio": dict(INDICATION_RATE_RATIO),
            "signal_to_help_days_mean": SIGNAL_TO_HELP_DAYS,
            "duration_days_mean": dict(DURATION_DAYS),
            "school_referral_share": SCHOOL_REFERRAL_SHARE,
            "indication_free_share": dict(INDICATION_FREE_SHARE),
            "parent_contact_days_mean": PARENT_CONTACT_DAYS,
            "consent_days_mean": CONSENT_DAYS,
            "missing_share": config.missing_share,
            "rates": "per 100 pupils per school year, averaged over pupils; times the school "
                     "effect (lognormal, mean 1, sd school_sd on the log scale), the secular "
                     "trend and a pupil frailty (gamma, mean 1)",
        },
        "median_days": median_days_truth(config),
        "secular_trend": {
            "value": config.secular_trend,
            "description": "rates are multiplied by (1 + secular_trend) ** (years since "
                           f"{config.first_school_year})",
        },
        "school_sd": config.school_sd,
        "schools": school_rows,
    }


# --- the marker that says a data folder is synthetic --------------------------------------------

MARKER = "SYNTHETIC.json"


def write_marker(out_dir, config: Synthetic, kind: str = "regionaal") -> Any:
    """Write `SYNTHETIC.json` beside generated tables: a report made from them must say that its
    numbers describe no real pupils (title page, summary, colophon). Returns the file."""
    import json
    from pathlib import Path

    path = Path(out_dir) / MARKER
    path.write_text(json.dumps({"synthetic": True, "kind": kind, "seed": config.seed},
                               indent=1), encoding="utf-8")
    return path


def marker(data_dir) -> dict | None:
    """The marker of a synthetic data folder, or None (real data, or no folder)."""
    import json
    from pathlib import Path

    if data_dir is None:
        return None
    path = Path(data_dir) / MARKER
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"synthetic": True}  # a damaged marker still says "synthetic": safer to say so
    return found if isinstance(found, dict) and found.get("synthetic") else None
