"""A national synthetic data set: about a million pupils a year in 42 youth-care regions.

The regional data (two regions from params) cannot show how the framework behaves at the scale of
the whole country, nor how regions compare with each other. `national_regions` builds 42 regions
programmatically (fictional municipalities and schools, Lekstroom and Zuid-Kennemerland exactly as
in params), with pilots starting in different years in different regions and some regions never;
`evaluation.data.synthetic.generate` turns them into the tables with the same planted effects and truth
report as the regional data. `estimates_all_regions` then estimates every primary indicator for
every region, and the nation, from analysis frames computed once for the whole country.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from evaluation.params import (
    DEFAULT_PARAMS_DIR,
    Municipality,
    Region,
    School,
    Synthetic,
    load_regions,
)

#: The national set by default: pupils per school year and its five school years.
NATIONAL_PUPILS = 1_000_000
NATIONAL_FIRST_YEAR = "2012-2013"
NATIONAL_LAST_YEAR = "2016-2017"
#: Regions taken from params as they are (real municipalities, their own schools and pilots).
KEPT_REGIONS = ("lekstroom", "zuid-kennemerland")
#: Pupils per generated school location (sets the default number of schools).
PUPILS_PER_SCHOOL = 500
MIN_SCHOOLS_PER_REGION = 4
MIN_PUPILS_PER_SCHOOL = 60
#: Fictional municipality codes start here: CBS codes stay below GM2000, so GM9xxx never collide.
MUNICIPALITY_CODE_START = 9001
#: Spread of region sizes (lognormal sd of pupils) and its clip, relative to the median region:
#: Dutch youth-care regions range from some 60,000 to 900,000 inhabitants.
REGION_SIZE_SD = 0.6
REGION_SIZE_CLIP = (0.25, 4.0)
#: Share of generated regions without any pilot in the data, and of pilot regions in which every
#: school takes part (these compare with other regions' never-treated schools).
NEVER_REGION_SHARE = 0.25
ALL_IN_SHARE = 0.2
#: Comparison schools from other regions for a region without never-treated schools of its own.
MIN_OWN_COMPARISON = 2
MIN_OUTSIDE_COMPARISON = 20
#: Kinds of school location and their shares; the name tells the generator the track mix.
SCHOOL_KINDS = (("College", 0.40), ("Scholengemeenschap", 0.15), ("Lyceum", 0.20),
                ("Vmbo", 0.10), ("Vakcollege", 0.10), ("Praktijkschool", 0.05))


def national_config(config: Synthetic, first_school_year: str = NATIONAL_FIRST_YEAR,
                    last_school_year: str = NATIONAL_LAST_YEAR) -> Synthetic:
    """`config` with the national set's five school years (effects and rates unchanged)."""
    return Synthetic.model_validate({**config.model_dump(), "first_school_year": first_school_year,
                                     "last_school_year": last_school_year})


def default_schools(pupils_per_year: int, n_generated: int = 40, kept_schools: int = 22) -> int:
    """One school location per 500 pupils (2,000 at national scale), at least four in each
    generated region besides the schools of the regions kept from params."""
    return max(round(pupils_per_year / PUPILS_PER_SCHOOL),
               MIN_SCHOOLS_PER_REGION * n_generated + kept_schools)


def _allocate(total: int, weights: np.ndarray, minimum: int) -> np.ndarray:
    """Integers >= minimum summing to `total`, proportional to `weights` (largest remainder)."""
    n = len(weights)
    spare = total - minimum * n
    if spare < 0:
        raise ValueError(f"cannot give {n} parts at least {minimum} each out of {total}")
    share = spare * weights / weights.sum()
    out = np.floor(share).astype(int)
    rest = spare - out.sum()
    out[np.argsort(-(share - out), kind="stable")[:rest]] += 1
    return out + minimum


def national_regions(seed: int, pupils_per_year: int = NATIONAL_PUPILS, n_regions: int = 42,
                     n_municipalities: int = 340, n_schools: int | None = None,
                     first_school_year: str = NATIONAL_FIRST_YEAR,
                     last_school_year: str = NATIONAL_LAST_YEAR,
                     params_dir: Path = DEFAULT_PARAMS_DIR) -> list[Region]:
    """The regions of the national synthetic set, deterministic for `seed`.

    Lekstroom and Zuid-Kennemerland come from `params_dir` unchanged (CBS municipality codes,
    schools, pilot starts, comparison schools), their pupils scaled by pupils_per_year / 1,000,000
    (never below 60 a school). The other regions are fictional: codes GM9001.., names "Gemeente
    017", schools "V0001".. with a kind in the name (College, Lyceum, Vmbo, ...), sizes lognormal.
    About a quarter of them never start a pilot; the others start in one of the school years from
    the third on (two baseline years), some schools a year later, some never; in a fifth every
    school takes part, and those list never-treated schools of other regions as comparison.
    `n_schools` defaults to one per 500 pupils (at least four per region).
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed & (2**64 - 1), 0x4E4C]))
    kept = [r for r in load_regions(params_dir) if r.id in KEPT_REGIONS]
    n_gen = n_regions - len(kept)
    if n_gen < 1:
        raise ValueError(f"n_regions must exceed the {len(kept)} regions kept from params")
    kept_schools = sum(len(r.schools) for r in kept)
    if n_schools is None:
        n_schools = default_schools(pupils_per_year, n_gen, kept_schools)
    y0, y1 = int(first_school_year[:4]), int(last_school_year[:4])
    factor = pupils_per_year / NATIONAL_PUPILS

    kept_pupils = [max(round(r.pupils * factor), MIN_PUPILS_PER_SCHOOL * len(r.schools))
                   for r in kept]
    size = np.clip(np.exp(rng.normal(0.0, REGION_SIZE_SD, n_gen)), *REGION_SIZE_CLIP)
    pupils = _allocate(max(pupils_per_year - sum(kept_pupils), n_gen * MIN_PUPILS_PER_SCHOOL
                           * MIN_SCHOOLS_PER_REGION), size, 0)
    gen_schools = n_schools - kept_schools
    schools_per = _allocate(gen_schools, pupils.astype(float), MIN_SCHOOLS_PER_REGION)
    munis_per = _allocate(n_municipalities - sum(len(r.municipalities) for r in kept),
                          pupils.astype(float) ** 0.8, 1)
    # Practical-education schools (220 pupils) only where schools are large enough to hold one.
    kinds = [k for k, _ in SCHOOL_KINDS]
    kind_p = np.array([p for _, p in SCHOOL_KINDS])
    if pupils_per_year / n_schools < 2 * 220:
        kind_p[kinds.index("Praktijkschool")] = 0.0
    kind_p = kind_p / kind_p.sum()

    pilot_years = list(range(y0 + 2, y1 + 1)) or [y1]
    regions: list[Region] = []
    muni_no, school_no = 0, 0
    never_by_region: dict[str, list[str]] = {}
    for k in range(n_gen):
        m_weight = np.exp(rng.normal(0.0, 0.8, munis_per[k]))
        m_weight[0] *= 3.0  # the regional centre
        municipalities = [Municipality(code=f"GM{MUNICIPALITY_CODE_START + muni_no + i}",
                                       name=f"Gemeente {muni_no + i + 1:03d}")
                          for i in range(munis_per[k])]
        muni_no += munis_per[k]
        n_s = int(schools_per[k])
        where = rng.choice(munis_per[k], size=n_s, p=m_weight / m_weight.sum())
        where[0] = 0
        kind = rng.choice(len(kinds), size=n_s, p=kind_p)
        # Pilot starts: never, or a first wave in one year and a second wave a year later.
        starts: list[int | None] = [None] * n_s
        if rng.random() >= NEVER_REGION_SHARE:
            first = int(rng.choice(pilot_years))
            all_in = rng.random() < ALL_IN_SHARE
            wave = rng.random(n_s) < (1.0 if all_in else rng.uniform(0.3, 0.8))
            wave[rng.integers(n_s)] = True
            later = rng.random(n_s) < (1.0 if all_in else 0.5)
            for i in range(n_s):
                if wave[i]:
                    starts[i] = first
                elif later[i] and first + 1 <= y1:
                    starts[i] = first + 1
                elif all_in:
                    starts[i] = first
        rid = f"regio-{k + 1:02d}"
        schools = [School(id=f"V{school_no + i + 1:04d}",
                          name=f"{kinds[kind[i]]} {school_no + i + 1:04d}",
                          municipality=municipalities[where[i]].code,
                          pilot_start=dt.date(starts[i], 8, 1) if starts[i] else None)
                   for i in range(n_s)]
        school_no += n_s
        never_by_region[rid] = [s.id for s in schools if s.pilot_start is None]
        name = f"Regio {k + 1:02d}"
        regions.append(Region(
            id=rid, name=name,
            title=f"Evaluatie pilots jeugdhulp & voortgezet onderwijs {name.lower()}",
            intro=f"{name} is een fictieve jeugdregio in de landelijke synthetische dataset.",
            pupils=int(pupils[k]), municipalities=municipalities, schools=schools))
    for r in kept:
        never_by_region[r.id] = [s.id for s in r.schools if s.pilot_start is None]

    # A pilot region with fewer than two never-treated schools of its own (too few for
    # school-clustered inference) also compares with those of the next regions (in a fixed
    # order), at least MIN_OUTSIDE_COMPARISON schools.
    ids = [r.id for r in regions]
    out = []
    for k, r in enumerate(regions):
        if r.pilot_schools and len(never_by_region[r.id]) < MIN_OWN_COMPARISON:
            listed: list[str] = []
            for j in range(1, len(ids)):
                listed += never_by_region[ids[(k + j) % len(ids)]]
                if len(listed) >= MIN_OUTSIDE_COMPARISON:
                    break
            r = r.model_copy(update={"comparison_schools": listed})
        out.append(r)
    kept = [r.model_copy(update={"pupils": p}) for r, p in zip(kept, kept_pupils, strict=True)]
    return sorted(out + kept, key=lambda r: r.id)


# --- the national data set on disk --------------------------------------------------------------

TRUTH_FILE = "truth.json"
PARAMS_SUBDIR = "params"


def parse_scale(scale: str | int) -> int:
    """Pupils per school year from `--scale`: "national" (1,000,000) or a whole number."""
    if isinstance(scale, int):
        pupils = scale
    elif str(scale).strip().lower() in ("national", "nationaal"):
        pupils = NATIONAL_PUPILS
    else:
        text = str(scale).strip().replace("_", "").replace(".", "")
        if not text.isdigit():
            raise ValueError(f"--scale {scale!r}: write 'national' or a number of pupils per "
                             "school year, for example 20000")
        pupils = int(text)
    if pupils < 10_000:
        raise ValueError(f"--scale {scale}: at least 10000 pupils per school year (42 regions "
                         "with four schools each need some pupils)")
    return pupils


@dataclass(frozen=True)
class NationalSet:
    """The national synthetic data: regions, generator settings and tables."""

    regions: list[Region]
    config: Synthetic
    pupils_per_year: int
    tables: dict[str, pd.DataFrame]


def national_data(scale: str | int = "national", overrides: Sequence[str] = (),
                  params_dir: Path = DEFAULT_PARAMS_DIR) -> NationalSet:
    """Regions and tables of the national set; the seed and rates come from the synthetic
    params (`--set synthetic.seed=...` as for the regional set), the years are the national
    set's five."""
    from evaluation.data.synthetic import generate
    from evaluation.params import load_synthetic

    pupils = parse_scale(scale)
    config = national_config(load_synthetic(list(overrides), params_dir))
    regions = national_regions(config.seed, pupils, first_school_year=config.first_school_year,
                               last_school_year=config.last_school_year, params_dir=params_dir)
    return NationalSet(regions, config, pupils, generate(regions, config))


def national_truth(regions: Sequence[Region], config: Synthetic,
                   pupils_per_year: int) -> dict[str, Any]:
    """`synthetic.truth` for the national set, plus its regions (pupils, pilot starts and
    comparison group), as JSON-ready data."""
    from evaluation.data.synthetic import truth

    out = truth(list(regions), config)
    out["national"] = {
        "pupils_per_year": pupils_per_year,
        "regions": [{
            "region": r.id, "name": r.name, "pupils_per_year": r.pupils,
            "municipalities": len(r.municipalities), "schools": len(r.schools),
            "pilot_start_years": sorted({s.pilot_start.year for s in r.pilot_schools
                                         if s.pilot_start}),
            "never_treated_schools": sum(s.pilot_start is None for s in r.schools),
            "comparison_schools_elsewhere": len(r.comparison_schools),
        } for r in regions],
    }
    return out


def write_params_dir(regions: Sequence[Region], config: Synthetic, out_dir: Path,
                     params_dir: Path = DEFAULT_PARAMS_DIR) -> list[Path]:
    """A params folder for the national set: `defaults.yml` (from `params_dir`, with the
    national set's synthetic settings) and one YAML file per region, so that every command that
    takes `--params-dir` (report, estimates, batch) runs on any of the 42 regions."""
    import yaml

    from evaluation.params import DEFAULTS_FILE, _read_yaml

    out_dir.mkdir(parents=True, exist_ok=True)
    defaults = _read_yaml(params_dir / DEFAULTS_FILE)
    defaults["synthetic"] = config.model_dump(mode="json")
    written = [out_dir / DEFAULTS_FILE]
    header = ("# Generated by evaluation.data.synthetic_national for the national synthetic data set "
              f"(seed {config.seed}).\n")
    written[0].write_text(header + yaml.safe_dump(defaults, allow_unicode=True, sort_keys=False),
                          encoding="utf-8")
    for r in regions:
        path = out_dir / f"{r.id}.yml"
        body = {"region": r.model_dump(mode="json", exclude_defaults=True)}
        path.write_text(header + yaml.safe_dump(body, allow_unicode=True, sort_keys=False,
                                                width=100), encoding="utf-8")
        written.append(path)
    return written


def write_national(out_dir: Path, scale: str | int = "national", fmt: str = "csv",
                   overrides: Sequence[str] = (), params_dir: Path = DEFAULT_PARAMS_DIR
                   ) -> list[Path]:
    """Generate the national set and write it: the tables (CSV as `dataset.write_tables`, or
    Parquet), `truth.json` and a `params/` folder with the 42 regions. Returns the files."""
    from evaluation.data.parquet import write_parquet_tables
    from evaluation.data.reading import write_tables

    if fmt not in ("csv", "parquet"):
        raise ValueError(f"--format {fmt!r}: choose csv or parquet")
    data = national_data(scale, overrides, params_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = (write_parquet_tables(data.tables, out_dir) if fmt == "parquet"
               else write_tables(data.tables, out_dir))
    truth_path = out_dir / TRUTH_FILE
    truth_path.write_text(json.dumps(national_truth(data.regions, data.config,
                                                    data.pupils_per_year),
                                     indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    written.append(truth_path)
    from evaluation.data.synthetic import write_marker

    written.append(write_marker(out_dir, data.config, "landelijk"))
    written += write_params_dir(data.regions, data.config, out_dir / PARAMS_SUBDIR, params_dir)
    return written


