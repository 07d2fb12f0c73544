"""Parameters: one schema, validated before anything runs.

Parameters come from `params/defaults.yml`, overlaid by the region's file (`params/<region>.yml`),
by the run (school year) and by `--set key=value` overrides, in that order. The merged mapping is
validated once by `Params`; any unknown key, wrong type or impossible value is a `ParamsError` that
names the dotted key.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

#: A CBS municipality code (GM0353); the data model checks the same pattern.
MUNICIPALITY_CODE = r"GM\d{4}"
DEFAULT_PARAMS_DIR = Path(__file__).resolve().parent.parent / "params"
DEFAULTS_FILE = "defaults.yml"


class ParamsError(ValueError):
    """Invalid parameters; the message names each offending key."""


def _check_school_year(value: str) -> str:
    m = re.fullmatch(r"(\d{4})-(\d{4})", value)
    if not m:
        raise ValueError(f"school year {value!r} must look like 2014-2015")
    first, second = int(m.group(1)), int(m.group(2))
    if second != first + 1:
        raise ValueError(
            f"school year {value!r} is impossible: a school year runs from 1 August of one year "
            f"to 31 July of the next, as {first}-{first + 1}"
        )
    if not 1990 <= first <= 2100:
        raise ValueError(f"school year {value!r} is outside 1990-2100")
    return value


SchoolYear = Annotated[str, AfterValidator(_check_school_year)]
MunicipalityCode = Annotated[str, Field(pattern=f"^{MUNICIPALITY_CODE}$")]


def school_year_start_year(school_year: str) -> int:
    return int(school_year[:4])


def school_year_of_date(date: dt.date) -> str:
    first = date.year if date.month >= 8 else date.year - 1
    return f"{first}-{first + 1}"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Municipality(Strict):
    code: MunicipalityCode
    name: str


class School(Strict):
    id: str = Field(min_length=1)
    name: str
    municipality: MunicipalityCode
    pilot_start: dt.date | None = Field(
        default=None, description="First day of the pilot at this school; empty: no pilot."
    )

    @model_validator(mode="after")
    def _start_of_school_year(self) -> School:
        if self.pilot_start is not None and (self.pilot_start.month, self.pilot_start.day) != (8, 1):
            raise ValueError(
                f"pilot_start {self.pilot_start} of school {self.id}: pilots start on 1 August, "
                "the first day of a school year"
            )
        return self


class Region(Strict):
    id: str = Field(pattern=r"^[a-z0-9-]+$")
    name: str
    title: str
    intro: str
    pupils: int = Field(gt=0, description="Approximate number of secondary-school pupils.")
    municipalities: list[Municipality] = Field(min_length=1)
    schools: list[School] = Field(min_length=1)
    comparison_schools: list[str] = Field(
        default_factory=list,
        description="Schools of other regions used as comparison (ids from their params files).",
    )
    targets: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Goals per indicator and level (pupil, school, municipality, region); "
        "shares as fractions (0.8 = 80%), durations in days, rates per 100 pupils.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Region:
        codes = {m.code for m in self.municipalities}
        ids = [s.id for s in self.schools]
        if len(set(ids)) != len(ids):
            raise ValueError("schools: school ids must be unique")
        for s in self.schools:
            if s.municipality not in codes:
                raise ValueError(
                    f"schools: school {s.id} stands in {s.municipality}, which is not one of the "
                    f"region's municipalities ({', '.join(sorted(codes))})"
                )
        from evaluation.registry import INDICATORS

        for ind_id, per_level in self.targets.items():
            if ind_id not in INDICATORS:
                raise ValueError(
                    f"targets.{ind_id}: unknown indicator; known: {', '.join(INDICATORS)}")
            for level in per_level:
                if level not in INDICATORS[ind_id].levels:
                    raise ValueError(
                        f"targets.{ind_id}.{level}: {ind_id} is reported at "
                        f"{', '.join(INDICATORS[ind_id].levels)}, not at {level!r}")
        own = set(ids) & set(self.comparison_schools)
        if own:
            raise ValueError(
                f"comparison_schools: {', '.join(sorted(own))} belong to the region itself"
            )
        return self

    @property
    def pilot_schools(self) -> list[School]:
        return [s for s in self.schools if s.pilot_start is not None]

    @property
    def first_pilot_year(self) -> str | None:
        starts = [s.pilot_start for s in self.pilot_schools if s.pilot_start]
        return school_year_of_date(min(starts)) if starts else None


class Analysis(Strict):
    baseline_years: int = Field(2, ge=1, le=5, description="School years before the start.")
    alpha: float = Field(0.05, gt=0, lt=0.5, description="Significance level.")
    count_by: Literal["school", "residence"] = Field(
        "school", description="Count pupils by school location or by municipality of residence."
    )
    multiple_testing: Literal["holm", "fdr_bh"] = "holm"
    few_schools: int = Field(
        50, ge=2, description="Below this many schools the comparisons use inference made for "
        "few clusters (jackknife, wild or cluster bootstrap) instead of cluster-robust errors.")
    few_treated: int = Field(
        5, ge=1, description="Below this many pilot (or comparison) schools the "
        "difference-in-differences uses randomisation inference over the schools.")
    bootstrap_draws: int = Field(
        9999, ge=99, le=99999, description="Draws of every bootstrap (and at most this many "
        "reassignments of the randomisation inference).")
    max_reassignments: int = Field(
        999, ge=19, le=99999, description="Randomisation inference: at most this many "
        "reassignments of the pilot (all of them when there are fewer).")
    bootstrap_seed: int = Field(20240901, ge=0, description="Seed of every bootstrap: the same "
                                "report gives the same intervals at every render.")
    duration_horizon_days: int = Field(
        365, ge=30, le=3650, description="Horizon of the restricted mean duration (days).")


class Disclosure(Strict):
    min_count: int = Field(10, ge=1, description="Counts below this are suppressed.")
    rounding_base: int = Field(5, ge=1, description="Published counts are rounded to this base.")


class Effects(Strict):
    """Effects planted by the synthetic generator in pilot schools after their start."""

    care_report_rate_ratio: float = Field(0.2, gt=0, description="80% fewer care reports.")
    signal_to_help_ratio: float = Field(0.5, gt=0, description="Days from signal to help.")
    double_intake_baseline: float = Field(0.30, ge=0, le=1)
    double_intake_pilot: float = Field(0.05, ge=0, le=1)
    school_informed_baseline: float = Field(0.40, ge=0, le=1)
    school_informed_pilot: float = Field(0.85, ge=0, le=1)
    parents_first_meeting_baseline: float = Field(0.45, ge=0, le=1)
    parents_first_meeting_pilot: float = Field(0.80, ge=0, le=1)
    consent_days_ratio: float = Field(0.5, gt=0, description="Days from signal to consent.")
    specialised_referral_rate_ratio: float = Field(
        0.6, gt=0, description="Referrals to specialised care from the school route."
    )
    gp_jggz_referral_rate_ratio: float = Field(1.0, gt=0, description="GP referrals to JGGZ.")
    indication_free_duration_ratio: float = Field(
        0.7, gt=0, description="Length of indication-free relative to indicated trajectories."
    )
    satisfaction_shift: float = Field(0.6, description="Shift of school satisfaction (Likert).")


class Synthetic(Strict):
    seed: int = 20130801
    first_school_year: SchoolYear = "2010-2011"
    last_school_year: SchoolYear = "2016-2017"
    indication_share: float = Field(0.17, ge=0, le=1)
    other_municipality_share: float = Field(
        0.25, ge=0, le=1, description="Pupils living outside their school's municipality."
    )
    care_reports_per_100: float = Field(8.0, gt=0, description="Baseline rate per school year.")
    trajectories_per_100: float = Field(6.0, gt=0, description="Baseline rate per school year.")
    gp_jggz_per_100: float = Field(1.5, gt=0, description="GP referrals to JGGZ per school year.")
    secular_trend: float = Field(0.03, description="Yearly relative change of care demand.")
    school_sd: float = Field(0.25, ge=0, description="Between-school spread (log scale).")
    missing_share: float = Field(0.03, ge=0, le=0.5, description="Share of optional values left empty.")
    effects: Effects = Effects()

    @model_validator(mode="after")
    def _order(self) -> Synthetic:
        if school_year_start_year(self.last_school_year) < school_year_start_year(
            self.first_school_year
        ):
            raise ValueError("last_school_year comes before first_school_year")
        return self


class Report(Strict):
    """Who publishes the report and when: the title page and the colophon say it."""

    formats: list[Literal["html", "pdf"]] = Field(default_factory=lambda: ["html", "pdf"])
    organisation: str = "Evaluatieteam jeugdhulp en onderwijs"
    commissioned_by: str = Field("", description="Opdrachtgever (the colophon omits it if empty).")
    authors: list[str] = Field(default_factory=list,
                               description="Auteurs; empty: the organisation is the author.")
    contact: str = Field("", description="Contact for questions about the report.")
    publication_date: dt.date | None = Field(
        None, description="Publicatiedatum on the title page; empty: the day of rendering.")


# --- costs: amounts with their source (used by evaluation/analysis/costs.py) ----------------------------

EXAMPLE_SOURCE_PREFIX = "voorbeeldwaarde"  # the source of an example value begins with this


class CostItem(Strict):
    """One amount with its unit and where it comes from: a tariff without a source is not shown."""

    value: float = Field(ge=0)
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)


class TrajectoryCosts(Strict):
    """Average cost of one trajectory per level of care (euro per trajectory)."""

    light: CostItem
    specialised: CostItem
    jggz: CostItem
    residential: CostItem


class Costs(Strict):
    """Cost parameters of the pilot and of youth care, per school year, each with its source.

    `example: true` marks example values: every report then says so in its cost section.
    """

    example: bool = Field(description="True while the values are example values, not the "
                                      "region's own tariffs.")
    core_team_hours_per_week: CostItem = Field(
        description="Extra core-team hours per pilot school per school week (hours).")
    hourly_rate: CostItem = Field(description="Cost of one core-team hour (euro per hour).")
    weeks_per_school_year: CostItem = Field(
        description="School weeks in which the core team works (weeks per school year).")
    coordination_per_school_year: CostItem = Field(
        description="Coordination of the pilot for the whole region (euro per school year).")
    intake: CostItem = Field(description="Cost of one intake (euro per intake).")
    trajectory: TrajectoryCosts
    light_replaces_avoided: bool = Field(
        True, description="An avoided heavy trajectory is replaced by a light one, whose cost is "
                          "subtracted from the saving (false: the whole heavy cost is saved).")

    @model_validator(mode="after")
    def _example_sources(self) -> Costs:
        if self.weeks_per_school_year.value > 53:
            raise ValueError("weeks_per_school_year: a school year has at most 53 weeks")
        if not self.example:
            for name, item in self.items().items():
                if item.source.strip().lower().startswith(EXAMPLE_SOURCE_PREFIX):
                    raise ValueError(
                        f"{name}: the source still says it is an example value while example is "
                        "false; give the region's own value and source, or set example: true")
        return self

    def items(self) -> dict[str, CostItem]:
        """Every cost item by its dotted name (trajectory levels as `trajectory.<level>`)."""
        out = {name: getattr(self, name) for name in (
            "core_team_hours_per_week", "hourly_rate", "weeks_per_school_year",
            "coordination_per_school_year", "intake")}
        out.update({f"trajectory.{lv}": getattr(self.trajectory, lv) for lv in
                    ("light", "specialised", "jggz", "residential")})
        return out


class Params(Strict):
    """All parameters of one run: a region, a school year and the analysis choices."""

    region: Region
    school_year: SchoolYear
    municipality: MunicipalityCode | None = Field(
        default=None, description="Report on one municipality of the region (CBS code); "
        "pupils counted by school location or residence as analysis.count_by says.")
    analysis: Analysis = Analysis()
    disclosure: Disclosure = Disclosure()
    synthetic: Synthetic = Synthetic()
    report: Report = Report()
    costs: Costs | None = Field(
        default=None, description="Costs of the pilot and of youth care, each with its source; "
        "empty: the report has no cost section.")

    @model_validator(mode="after")
    def _municipality_in_region(self) -> Params:
        codes = [m.code for m in self.region.municipalities]
        if self.municipality is not None and self.municipality not in codes:
            raise ValueError(f"municipality: {self.municipality} is not a municipality of region "
                             f"{self.region.id} ({', '.join(codes)})")
        return self

    @property
    def municipality_name(self) -> str | None:
        names = {m.code: m.name for m in self.region.municipalities}
        return names.get(self.municipality) if self.municipality else None

    @model_validator(mode="after")
    def _school_year_in_pilot(self) -> Params:
        first = self.region.first_pilot_year
        if first is None:
            raise ValueError(f"region.schools: region {self.region.id} has no pilot school")
        if school_year_start_year(self.school_year) < school_year_start_year(first):
            raise ValueError(
                f"school_year: {self.school_year} comes before the first pilot year {first} of "
                f"region {self.region.id}: there is nothing to evaluate yet"
            )
        return self


# --- loading and merging -------------------------------------------------------------------


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: same
_YAML_CACHE: dict[tuple, Any] = {}  # documents, many times faster


def _read_yaml(path: Path) -> dict[str, Any]:
    """The params file's mapping. A report loads the same few files dozens of times (every
    robustness specification, every notebook): each file is parsed once per process and
    version (its size and modification time), and a copy handed out."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _YAML_CACHE:
        if len(_YAML_CACHE) > 256:
            _YAML_CACHE.clear()
        _YAML_CACHE[key] = _parse_yaml(path)
    return copy.deepcopy(_YAML_CACHE[key])


def _parse_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise ParamsError(f"{path}: params file not found") from None
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: must hold a mapping of keys to values")
    return data


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Overlay `overlay` on `base`: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict[str, Any]:
    """`analysis.alpha=0.01` -> {"analysis": {"alpha": 0.01}}; the value is read as YAML."""
    if "=" not in text:
        raise ParamsError(f"--set {text!r}: write key=value, for example analysis.alpha=0.01")
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ParamsError(f"--set {text!r}: the key is empty")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    nested: dict[str, Any] = {}
    cursor = nested
    parts = key.split(".")
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    return nested


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid parameters ({source}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            # Model-level checks name their key as a "key: message" prefix.
            m = re.match(r"^([a-z_][\w.]*): (.*)$", msg, flags=re.S)
            if m:
                key = m.group(1) if key == "(top level)" else f"{key}.{m.group(1)}"
                msg = m.group(2)
        value = err.get("input")
        shown = "" if err["type"] in ("missing",) or isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"  {key}: {msg}{shown}")
    return "\n".join(lines)


def region_files(params_dir: Path = DEFAULT_PARAMS_DIR) -> dict[str, Path]:
    """Region id -> params file, for every region declared in `params_dir`."""
    return {
        p.stem: p for p in sorted(params_dir.glob("*.yml")) if p.name != DEFAULTS_FILE
    }


def merged_params(
    region: str,
    school_year: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    params_dir: Path = DEFAULT_PARAMS_DIR,
    municipality: str | None = None,
) -> dict[str, Any]:
    """The merged, not yet validated, parameters of one run."""
    files = region_files(params_dir)
    if region not in files:
        known = ", ".join(files) or "none"
        raise ParamsError(f"region {region!r}: no params/{region}.yml (known regions: {known})")
    merged = _read_yaml(params_dir / DEFAULTS_FILE)
    merged = deep_merge(merged, _read_yaml(files[region]))
    if school_year is not None:
        merged["school_year"] = school_year
    if municipality is not None:
        merged["municipality"] = municipality
    for text in overrides:
        merged = deep_merge(merged, parse_override(text))
    return merged


def load_params(
    region: str,
    school_year: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    params_dir: Path = DEFAULT_PARAMS_DIR,
    municipality: str | None = None,
) -> Params:
    """Merge and validate the parameters of one run; raise ParamsError naming each bad key.

    `municipality` may be a CBS code or a municipality name of the region."""
    if municipality is not None and not re.fullmatch(MUNICIPALITY_CODE, municipality):
        municipality = _municipality_code(region, municipality, params_dir)
    merged = merged_params(region, school_year, overrides, params_dir, municipality)
    try:
        params = Params.model_validate(merged)
    except ValidationError as exc:
        source = f"{params_dir / DEFAULTS_FILE}, {region_files(params_dir)[region]}"
        if overrides:
            source += ", --set " + " ".join(overrides)
        raise ParamsError(_format_errors(exc, source)) from None
    _check_comparison_schools(params, params_dir)
    return params


def _municipality_code(region: str, name: str, params_dir: Path) -> str:
    raw = _read_yaml(region_files(params_dir)[region]).get("region", {})
    by_name = {str(m.get("name", "")).lower(): m.get("code") for m in raw.get("municipalities", [])}
    if name.lower() not in by_name:
        raise ParamsError(f"municipality {name!r}: not a municipality of region {region} "
                          f"(known: {', '.join(sorted(by_name))})")
    return by_name[name.lower()]


def load_regions(params_dir: Path = DEFAULT_PARAMS_DIR) -> list[Region]:
    """Every region declared in `params_dir`, validated (used by the synthetic generator)."""
    regions = []
    for rid, path in region_files(params_dir).items():
        raw = _read_yaml(path).get("region")
        try:
            regions.append(Region.model_validate(raw))
        except ValidationError as exc:
            raise ParamsError(_format_errors(exc, str(path)).replace("\n  ", "\n  region.")) from None
        if regions[-1].id != rid:
            raise ParamsError(f"{path}: region.id is {regions[-1].id!r}, expected {rid!r}")
    return regions


def load_synthetic(
    overrides: list[str] | tuple[str, ...] = (), params_dir: Path = DEFAULT_PARAMS_DIR
) -> Synthetic:
    """The synthetic-data settings from the defaults, with `--set synthetic.x=...` overrides."""
    merged = _read_yaml(params_dir / DEFAULTS_FILE)
    for text in overrides:
        merged = deep_merge(merged, parse_override(text))
    try:
        return Synthetic.model_validate(merged.get("synthetic", {}))
    except ValidationError as exc:
        raise ParamsError(
            _format_errors(exc, str(params_dir / DEFAULTS_FILE)).replace("\n  ", "\n  synthetic.")
        ) from None


def _check_comparison_schools(params: Params, params_dir: Path) -> None:
    known = {s.id for r in load_regions(params_dir) for s in r.schools}
    unknown = [s for s in params.region.comparison_schools if s not in known]
    if unknown:
        raise ParamsError(
            "invalid parameters:\n  region.comparison_schools: "
            f"{', '.join(unknown)} are not schools of any region in {params_dir}"
        )


def comparison_schools(params: Params, params_dir: Path = DEFAULT_PARAMS_DIR) -> list[School]:
    """The comparison schools (from other regions' params), with their own pilot starts."""
    by_id = {s.id: s for r in load_regions(params_dir) for s in r.schools}
    return [by_id[s] for s in params.region.comparison_schools]
