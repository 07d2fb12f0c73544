"""The national overview report: every region side by side (`evaluation render --national`).

One report per school year: a funnel plot per key indicator (each region's rate against its size,
with 95% and 99.8% control limits around the national rate, `evaluation.national.funnel`), the regional
difference-in-differences estimates with their intervals side by side (`national.estimates_all_regions`),
a data-quality annex and a colophon. Same house style, disclosure control, publication audit and
accessibility as the regional whitepapers.

The heavy work runs once, in this process: the data are validated (rejected rows are counted in
the annex, never silently dropped), and the funnels and estimates computed and kept in the build
folder (`overview.pkl`); the notebooks in `notebooks/national/` only format and draw them, so the
same numbers reach HTML, PDF and workbook; their Dutch text, tables and figures come from
`national_sections`. Figures get alt text and captions computed from the
data: a notebook attaches them to the figure's output (`show_figure`) and `apply_output_text`
writes them into the cell's `fig-alt`/`fig-cap` options of the executed notebook, which is what
Quarto and the built-in renderer read.

Layout: data without `--data` in `<build_root>/national-data/` (generated once per scale, seed and
package version), the build in `<build_root>/national/<school-year>/`, the outputs in
`<output_root>/national/<school-year>/national.{html,pdf,xlsx}`.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from evaluation.national.overview import (
    FUNNEL_INDICATORS,
    NationalReportError,
    Overview,
    choose_school_year,
    compute_overview,
    data_school_years,
    save_overview,
)
from evaluation.params import DEFAULT_PARAMS_DIR, Params, Region
from evaluation.report.figure_text import apply_output_text
from evaluation.report.workbook import TABLE_ORDER_FILE

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO / "notebooks" / "national"
DOCUMENT = "national"
NATIONAL_DIR = "national"
OUTPUT_NAMES = {"html": f"{DOCUMENT}.html", "pdf": f"{DOCUMENT}.pdf", "xlsx": f"{DOCUMENT}.xlsx"}
TITLE = "Jeugdhulp in het voortgezet onderwijs: landelijk overzicht"
DEFAULT_SCALE = 60_000  # pupils per school year of the synthetic set made without --data
DATA_SUBDIR = "national-data"
DATA_KEY_FILE = ".national-data.json"
OVERVIEW_FILE = "overview.pkl"



# --- inputs -------------------------------------------------------------------------------------


def resolve_params_dir(data_dir: Path | None, params_dir: Path | None) -> Path:
    """The data folder's own `params/` (as `national.write_national` writes it) when present,
    else `params_dir`, else the repository's params/."""
    from evaluation.data.synthetic_national import PARAMS_SUBDIR

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
    from evaluation.data.synthetic_national import write_national
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


# --- the pipeline ---------------------------------------------------------------------------------


def notebooks(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    return sorted(Path(notebooks_dir).glob("[0-9][0-9]-*.ipynb"))


def report_metadata(overview: Overview, today: dt.date | None = None) -> dict[str, Any]:
    from evaluation.labels import dutch_date

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
    from evaluation.report.rendering import copy_sources

    if build.exists():
        shutil.rmtree(build)
    (build / "notebooks" / NATIONAL_DIR).mkdir(parents=True)
    shutil.copy2(quarto_file, build / "_quarto.yml")
    copy_sources(reports_dir, build / "reports", DOCUMENT)
    meta = {**report_metadata(overview), "author": organisation}
    (build / "reports" / "_metadata.yml").write_text(
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")


def audit_national(outputs: Mapping[str, Path], data_dir: Path, params: Params) -> None:
    """The publication audit of every output (HTML, PDF, workbook) against the data's
    identifiers (CSV or Parquet) and the disclosure threshold, before anything is published."""
    from evaluation.run import pipeline

    pipeline.audit_outputs(dict(outputs), Path(data_dir), params)


def write_manifest(dest: Path, school_year: str, outputs: Mapping[str, Path], renderer: str,
                   seconds: float) -> Path:
    """`.manifest.json` beside the published files, so that `site.write_index` lists the
    national overview (kind "national") above the regions."""
    import os

    from evaluation.national.estimates import NATIONAL_ID, NATIONAL_NAME
    from evaluation.report.site import MANIFEST, NATIONAL_KIND

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
    from evaluation.data.reading import DataSetError
    from evaluation.national.estimates import NATIONAL_ID, national_region, region_params
    from evaluation.params import ParamsError, load_regions
    from evaluation.report.disclosure import check_published
    from evaluation.report.rendering import RenderError, render
    from evaluation.report.workbook import write_workbook
    from evaluation.run import pipeline

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
        rejected = pipeline.log_rejected(checked, data_dir, log)
        year = choose_school_year(school_year, data_school_years(checked.tables))
        params = template_params(regions, year, overrides, pdir)
        formats = list(formats or params.report.formats)
        overview = compute_overview(checked.tables, regions, params, year, checked, data_dir,
                                    log)
        from evaluation.national.sections import published_outside

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
            apply_output_text(target)
            new = [p for p in tables_dir.glob("*.json") if p.stem not in order
                   and p.name != TABLE_ORDER_FILE] if tables_dir.is_dir() else []
            order += [p.stem for p in sorted(new, key=lambda p: (p.stat().st_mtime_ns, p.name))]
            executed.append(target)
    if order:
        (tables_dir / TABLE_ORDER_FILE).write_text(json.dumps(order), encoding="utf-8")
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
                                     nat_params, document=build / "reports" / f"{DOCUMENT}.qmd")
    log("  audit")
    audit_national(outputs, data_dir, params)
    dest = Path(output_root) / NATIONAL_DIR / year
    placed = pipeline.publish(outputs, dest, OUTPUT_NAMES)
    write_manifest(dest, year, placed, result.renderer, time.perf_counter() - started)
    log(f"national {year}: published to {dest} with {result.renderer} "
        f"({time.perf_counter() - started:.1f} s)")
    return pipeline.ReportResult(NATIONAL_ID, year, result.renderer, placed, executed, rejected)
