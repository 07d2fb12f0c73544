"""The pipeline of one report: validate params -> validate data -> execute notebooks -> render.

Each report is built in its own directory (`_build/<region>/<school-year>/`) that mirrors the
repository layout (`_quarto.yml`, `reports/`, `notebooks/`), so that parallel renders never share
files; only finished outputs are moved into `_output/`, by an atomic rename, so a failed render
never replaces the last good report.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from evaluation.dataset import DataSetError, write_tables
from evaluation.params import DEFAULT_PARAMS_DIR, Params, load_params, load_regions, load_synthetic
from evaluation.provenance import params_yaml

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS_DIR = REPO / "notebooks"
REPORTS_DIR = REPO / "reports"
QUARTO_FILE = REPO / "_quarto.yml"
DOCUMENT = "whitepaper"

MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus",
          "september", "oktober", "november", "december")


class PipelineError(RuntimeError):
    """A report could not be made; the message says which step and which file."""


@dataclass
class ReportResult:
    region: str
    school_year: str
    renderer: str
    outputs: dict[str, Path]
    notebooks: list[Path] = field(default_factory=list)
    rejected_rows: int = 0


def dutch_date(day: dt.date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]} {day.year}"


def unit_slug(params: Params) -> str | None:
    """Folder name of a municipality report (None for the region's own report)."""
    name = params.municipality_name
    return None if name is None else re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def report_dir(root: Path, params: Params) -> Path:
    """`<root>/<region>/[<municipality>/]<school-year>`: the same layout for builds and outputs."""
    slug = unit_slug(params)
    base = root / params.region.id
    return (base / slug if slug else base) / params.school_year


def report_metadata(params: Params, today: dt.date | None = None) -> dict:
    """Metadata for the document: title page and every params value the prose refers to."""
    today = today or dt.date.today()
    if params.municipality_name:
        counted = ("leerlingen naar woongemeente" if params.analysis.count_by == "residence"
                   else "scholen naar vestigingsgemeente")
        subtitle = (f"Gemeente {params.municipality_name} ({counted}), "
                    f"schooljaar {params.school_year}")
    else:
        subtitle = f"Schooljaar {params.school_year}"
    return {
        "title": params.region.title,
        "subtitle": subtitle,
        "date": dutch_date(today),
        "author": params.report.organisation,
        "lang": "nl",
        "intro": params.region.intro,
        "region-name": params.region.name,
        "school-year": params.school_year,
        "baseline-years": params.analysis.baseline_years,
        "confidence-level": round(100 * (1 - params.analysis.alpha)),
        "disclosure-min": params.disclosure.min_count,
        "disclosure-base": params.disclosure.rounding_base,
    }


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))


def write_synthetic(out_dir: Path, overrides: Sequence[str] = (),
                    params_dir: Path = DEFAULT_PARAMS_DIR) -> list[Path]:
    """Generate the synthetic data set for every region in params and write it as CSV files."""
    from evaluation.synthetic import generate

    tables = generate(load_regions(params_dir), load_synthetic(list(overrides), params_dir))
    return write_tables(tables, out_dir)


def prepare_build_dir(build: Path, params: Params) -> None:
    """A fresh copy of the project files the renderer reads, plus this run's metadata."""
    if build.exists():
        shutil.rmtree(build)
    (build / "notebooks").mkdir(parents=True)
    shutil.copy2(QUARTO_FILE, build / "_quarto.yml")
    shutil.copytree(REPORTS_DIR, build / "reports",
                    ignore=shutil.ignore_patterns("_metadata.yml", "*_files", "*.html", "*.pdf"))
    meta = report_metadata(params)
    (build / "reports" / "_metadata.yml").write_text(
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (build / "params.yml").write_text(params_yaml(params), encoding="utf-8")


def compute_estimates(build: Path, params: Params, tables: dict, params_dir: Path) -> Path:
    """Every estimate of the report, once: the notebooks read them instead of refitting."""
    from evaluation.estimates import estimate_all, save_estimates

    path = build / "estimates.parquet"
    save_estimates(estimate_all(tables, params, params_dir), path)
    return path


def execute_notebooks(build: Path, params: Params, data_dir: Path, overrides: Sequence[str],
                      params_dir: Path, log: Callable[[str], None],
                      estimates_file: Path | None = None) -> list[Path]:
    import papermill as pm

    done = []
    for source in notebooks():
        target = build / "notebooks" / source.name
        log(f"  notebook {source.name}")
        try:
            pm.execute_notebook(
                str(source), str(target),
                parameters={
                    "region": params.region.id,
                    "school_year": params.school_year,
                    "data_dir": str(data_dir.resolve()),
                    "overrides": list(overrides),
                    "params_dir": str(params_dir.resolve()),
                    "estimates_file": str(estimates_file) if estimates_file else "",
                    "municipality": params.municipality or "",
                    "tables_dir": str(build / "tables"),
                },
                kernel_name="python3", cwd=str(build / "notebooks"), progress_bar=False,
            )
        except pm.PapermillExecutionError as exc:
            raise PipelineError(
                f"notebook {source.name} failed in cell {exc.exec_count} ({exc.ename}: {exc.evalue}); "
                f"the executed notebook with the error is {target}"
            ) from None
        done.append(target)
    return done


def publish(outputs: dict[str, Path], dest_dir: Path) -> dict[str, Path]:
    """Move finished outputs into place: copy beside the target, then rename atomically."""
    dest_dir.mkdir(parents=True, exist_ok=True)
    placed = {}
    for fmt, src in outputs.items():
        target = dest_dir / f"{DOCUMENT}.{ 'html' if fmt == 'html' else 'pdf'}"
        tmp = target.with_name(f".{target.name}.tmp")
        shutil.copy2(src, tmp)
        os.replace(tmp, target)
        placed[fmt] = target
    return placed


def render_report(
    region: str,
    school_year: str,
    data_dir: Path | None = None,
    overrides: Sequence[str] = (),
    formats: Sequence[str] | None = None,
    output_root: Path = Path("_output"),
    build_root: Path = Path("_build"),
    params_dir: Path = DEFAULT_PARAMS_DIR,
    renderer: str = "auto",
    log: Callable[[str], None] = print,
    municipality: str | None = None,
) -> ReportResult:
    """Make one whitepaper (HTML and/or PDF) for a region, or one of its municipalities, and a
    school year."""
    from evaluation.rendering import RenderError, render
    from evaluation.validation import validate_dir

    # Parameters are validated before anything runs.
    params = load_params(region, school_year, list(overrides), params_dir, municipality)
    formats = list(formats or params.report.formats)
    build = report_dir(build_root, params).resolve()

    if data_dir is None:
        data_dir = build_root / "synthetic-data"
        log(f"no --data given: generating the synthetic data set in {data_dir}")
        write_synthetic(data_dir, overrides, params_dir)
    try:
        checked = validate_dir(data_dir)
    except DataSetError as exc:
        raise PipelineError(str(exc)) from None
    rejected = int(checked.summary()["rejected"].sum())
    if rejected:
        log(f"data: {rejected} row(s) rejected; they are counted in the data-quality annex "
            f"(run `evaluation validate {data_dir}` for each reason)")

    prepare_build_dir(build, params)
    log(f"report {region} {params.municipality_name or ''} {school_year}: executing notebooks in "
        f"{build}")
    log("  estimates")
    estimates_file = compute_estimates(build, params, checked.tables, params_dir)
    executed = execute_notebooks(build, params, data_dir, overrides, params_dir, log,
                                 estimates_file)
    try:
        result = render(build / "reports" / f"{DOCUMENT}.qmd", formats=formats,
                        out_dir=build / "_render", prefer=renderer)
    except RenderError as exc:
        raise PipelineError(f"rendering failed: {exc}") from None
    # Nothing personal and no small cell may leave the build folder: audit before publishing.
    from evaluation.audit import audit

    findings = audit(build / "_render", data_dir=data_dir, min_count=params.disclosure.min_count,
                     files=list(result.outputs.values()))
    if findings:
        listed = "\n".join(f"  {f.file}: {f.location}: {f.kind}: {f.snippet}" for f in findings[:20])
        raise PipelineError(f"the output audit found {len(findings)} problem(s); the report was "
                            f"not published:\n{listed}")
    placed = publish(result.outputs, report_dir(output_root, params))
    return ReportResult(region, school_year, result.renderer, placed, executed, rejected)
