"""The pipeline of one report: validate params -> validate data -> execute notebooks -> render.

Each report is built in its own directory (`_build/<region>/[<municipality>/]<school-year>/`) that
mirrors the repository layout (`_quarto.yml`, `reports/`, `notebooks/`), so that parallel renders
never share files (Quarto races on shared files such as site_libs and `<doc>_files`); only
finished outputs are moved into `_output/`, by an atomic rename, so a failed render never
replaces the last good report.

Notebooks run in one reused IPython shell rather than a fresh kernel per notebook as papermill
would: starting a kernel and importing pandas, statsmodels and matplotlib costs seconds that are
the same for every notebook. The `evaluation render` command and the batch's workers run them
in their own process (`inprocess.InProcessSession`: the imports, the validated data and the
report's estimate frames are already there, and the robustness analysis starts ahead in a
forked child, `ahead`); elsewhere (`KernelSession`) in one kernel warmed once (`warm_kernel`). Either way the namespace is
reset before each notebook, so that a notebook never sees another's variables.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import hashlib
import json
import os
import pickle
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from evaluation.data.reading import DataSetError, write_tables
from evaluation.data.validation import require_school_year
from evaluation.labels import dutch_date
from evaluation.params import DEFAULT_PARAMS_DIR, Params, load_params, load_regions, load_synthetic
from evaluation.report.figure_text import apply_output_text
from evaluation.report.formatting import slug
from evaluation.report.provenance import params_yaml
from evaluation.report.workbook import TABLE_ORDER_FILE
from evaluation.run import ahead, memo
from evaluation.run.memo import _MEMO, _dir_signature, _memo  # noqa: F401  (_MEMO: tests)
from evaluation.run.sources import (  # noqa: F401  (REPO, QUARTO_FILE: re-exported)
    DEFAULT_SOURCES,
    DOCUMENT,
    NOTEBOOKS_DIR,
    OUTPUT_NAMES,
    QUARTO_FILE,
    REPO,
    REPORTS_DIR,
    Sources,
)

CELL_TIMEOUT = 1800  # seconds; a cell that runs longer is stuck, not slow

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


def unit_slug(params: Params) -> str | None:
    """Folder name of a municipality report (None for the region's own report)."""
    name = params.municipality_name
    return None if name is None else slug(name)


def report_dir(root: Path, params: Params) -> Path:
    """`<root>/<region>/[<municipality>/]<school-year>`: the same layout for builds and outputs."""
    unit = unit_slug(params)
    base = root / params.region.id
    return (base / unit if unit else base) / params.school_year


def report_metadata(params: Params, today: dt.date | None = None,
                    synthetic: dict | None = None) -> dict:
    """Metadata for the document: title page and every params value the prose refers to. With
    `synthetic` (the data folder's marker) the title page and the summary say so."""
    today = params.report.publication_date or today or dt.date.today()
    if params.municipality_name:
        counted = ("leerlingen naar woongemeente" if params.analysis.count_by == "residence"
                   else "scholen naar vestigingsgemeente")
        subtitle = (f"Gemeente {params.municipality_name} ({counted}), "
                    f"schooljaar {params.school_year}")
    else:
        subtitle = f"Schooljaar {params.school_year}"
    if synthetic:
        subtitle += " — synthetische gegevens, geen echte leerlingen"
    return {
        "title": params.region.title,
        "subtitle": subtitle,
        "date": dutch_date(today),
        "author": ", ".join(params.report.authors) or params.report.organisation,
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
    return DEFAULT_SOURCES.notebooks()


def write_synthetic(out_dir: Path, overrides: Sequence[str] = (),
                    params_dir: Path = DEFAULT_PARAMS_DIR) -> list[Path]:
    """Generate the synthetic data set for every region in params and write it as CSV files."""
    from evaluation.data.synthetic import generate, write_marker

    config = load_synthetic(list(overrides), params_dir)
    tables = generate(load_regions(params_dir), config)
    return [*write_tables(tables, out_dir), write_marker(out_dir, config)]


# --- memoised inputs (`memo`) -----------------------------------------------------------------

SHARED_VALIDATION_ENV = "EVALUATION_SHARED_VALIDATION"


def _shared_file(data_dir: Path, folder: Path) -> Path:
    key = hashlib.sha256(repr(_dir_signature(data_dir)).encode()).hexdigest()[:32]
    return Path(folder) / f"{key}.pickle"


@contextlib.contextmanager
def sharing_validated(data_dir: Path, build_root: Path) -> Iterator[Path]:
    """While open, the processes started from this one (a batch's workers and their kernels)
    read the data as this process validated it, from a file in the build folder, instead of
    each validating it again: one validation per batch. The file is written afresh by every
    batch (never reused across runs, so never stale) and found by the data files' signature."""
    folder = Path(build_root) / ".validated"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.pickle"):
        old.unlink(missing_ok=True)
    path = _shared_file(data_dir, folder)
    result = _memo(("validate", *_dir_signature(data_dir)),
                   lambda: _validated(Path(data_dir)))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    saved = os.environ.get(SHARED_VALIDATION_ENV)
    os.environ[SHARED_VALIDATION_ENV] = str(folder)
    try:
        yield path
    finally:
        if saved is None:
            os.environ.pop(SHARED_VALIDATION_ENV, None)
        else:
            os.environ[SHARED_VALIDATION_ENV] = saved


def _validated(data_dir: Path):
    """The validated data: from the batch's shared file when there is one for these files,
    else validated here."""
    from evaluation.data.validation import validate_dir

    folder = os.environ.get(SHARED_VALIDATION_ENV)
    if folder:
        path = _shared_file(data_dir, Path(folder))
        try:
            with open(path, "rb") as fh:
                return pickle.load(fh)
        except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
            pass  # not shared (or unreadable): validate here
    return validate_dir(Path(data_dir))


def cached_validate_dir(data_dir: Path):
    """`validation.validate_dir`, read once per process for unchanged files (a deep copy)."""
    result = _memo(("validate", *_dir_signature(data_dir)), lambda: _validated(Path(data_dir)))
    return copy.deepcopy(result)


def cached_report_data(data_dir: Path, params: Params):
    """`notebook.report_data` read once per process for unchanged files and the same schools:
    the data set is validated once, narrowed per report, and a copy of the narrowed (small)
    result handed out."""
    from evaluation.analysis.design import candidate_schools

    signature = _dir_signature(data_dir)
    schools = frozenset(candidate_schools(params))

    def narrowed():
        whole = _memo(("validate", *signature), lambda: _validated(Path(data_dir)))
        return whole.for_schools(schools)

    return copy.deepcopy(_memo(("report-data", schools, *signature), narrowed))


def warm_kernel() -> None:
    """Run once in a fresh kernel: import the package and memoise reading the data and rebuilding
    the report's estimate frames, which every notebook of a report repeats (seconds each).

    The memoised functions return copies and key on file metadata and the params, so a notebook
    sees exactly what it would have computed itself."""
    import importlib
    import pkgutil

    import matplotlib.pyplot  # noqa: F401  (the slowest import of the notebooks)

    import evaluation
    import evaluation.analysis.estimates as estimates
    import evaluation.analysis.robustness as robustness
    import evaluation.report.notebook as notebook

    skip = {"evaluation.cli", "evaluation.__main__", "evaluation.run.batch",
            "evaluation.run.preload", "evaluation.report.site", "evaluation.report.workbook",
            "evaluation.run.pipeline"}
    for module in pkgutil.walk_packages(evaluation.__path__, "evaluation."):
        if module.name not in skip:
            try:
                importlib.import_module(module.name)
            except Exception:  # noqa: BLE001  a broken module fails in the notebook that uses it
                pass

    notebook.validate_dir = cached_validate_dir
    notebook.report_data = cached_report_data
    original = estimates.load_estimates

    def load_estimates(path, tables, params, params_dir=DEFAULT_PARAMS_DIR):
        es = _memo(memo.estimates_key(path, params, params_dir),
                   lambda: original(path, tables, params, params_dir))
        return replace(es, table=es.table.copy(), design=es.design.copy(), years=list(es.years),
                       data={k: v.copy() for k, v in es.data.items()})

    estimates.load_estimates = load_estimates
    memo._in_use = True
    robustness.robustness = ahead.taking(robustness.robustness)  # a result computed ahead
    # What is in memory now (modules, their tables) stays for the kernel's life: keep it out of
    # the collections that IPython's reset runs before every notebook (a tenth of a second each
    # over a heap this size).
    import gc

    gc.collect()
    gc.freeze()


# --- executing notebooks ---------------------------------------------------------------------

class KernelSession:
    """One IPython kernel that executes notebook after notebook.

    Papermill starts a kernel per notebook; here the kernel is started (and warmed) once and its
    namespace reset before each notebook. Parameters are injected as papermill does
    (`parameterize_notebook`: an `injected-parameters` cell after the `parameters` cell), so the
    executed notebooks look the same to the renderer and to readers.
    """

    def __init__(self, kernel_name: str = "python3", warm: bool = True,
                 log_file: Path | None = None, timeout: int = CELL_TIMEOUT) -> None:
        self.kernel_name, self.warm, self.log_file, self.timeout = (kernel_name, warm, log_file,
                                                                    timeout)
        self._km = None
        self._client = None
        self._log = None
        self._warming: str | None = None  # msg id of a warm-up still running in the kernel

    def __enter__(self) -> KernelSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self._client is not None

    def start(self, wait: bool = True) -> None:
        """Start (and warm) the kernel now rather than at the first notebook. With `wait=False`
        the warm-up runs in the kernel while this process goes on (a report computes its
        estimates meanwhile: on two cores the two overlap); the first notebook waits for it."""
        from jupyter_client.manager import AsyncKernelManager
        from nbclient import NotebookClient
        from nbclient.util import run_sync
        from nbformat.v4 import new_notebook

        km = AsyncKernelManager(kernel_name=self.kernel_name)
        extra = {}
        if self.log_file is not None:  # the kernel's own chatter, out of the progress display
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self.log_file, "ab")  # noqa: SIM115  closed in close()
            extra = {"stdout": self._log, "stderr": self._log}
        # In-memory history: parallel kernels must not share (and lock) one SQLite file.
        run_sync(km.start_kernel)(extra_arguments=["--HistoryManager.hist_file=:memory:"],
                                  **extra)
        self._km = km
        client = NotebookClient(new_notebook(), km=km, kernel_name=self.kernel_name,
                                timeout=self.timeout, startup_timeout=120)
        client.start_new_kernel_client()
        self._client = client
        if self.warm:
            code = "from evaluation.run.pipeline import warm_kernel as _w; _w(); del _w"
            if wait:
                self._hidden(code)
            else:
                self._warming = client.kc.execute(code, silent=True, store_history=False,
                                                  allow_stdin=False)

    def _warmed(self) -> None:
        """Wait for a warm-up started with `start(wait=False)`; its outputs are left unread
        (every later request reads only the messages that answer it)."""
        from nbclient.util import run_sync

        msg_id, self._warming = self._warming, None
        if msg_id is None:
            return
        deadline = time.monotonic() + self.timeout
        reply: dict = {}
        while reply.get("parent_header", {}).get("msg_id") != msg_id:  # skip older replies
            # (get_shell_msg raises queue.Empty at the deadline: the kernel is stuck)
            reply = run_sync(self._client.kc.get_shell_msg)(
                timeout=max(deadline - time.monotonic(), 0.001))
        content = reply.get("content", {})
        if content.get("status") != "ok":
            raise PipelineError(f"the kernel could not run its set-up code: "
                                f"{content.get('ename')}: {content.get('evalue')}")

    def _hidden(self, code: str) -> None:
        """Run code in the kernel without recording it in any notebook."""
        from nbclient.util import run_sync

        self._warmed()

        reply = run_sync(self._client.kc.execute_interactive)(
            code, silent=True, store_history=False, allow_stdin=False, timeout=self.timeout,
            output_hook=lambda _msg: None)
        content = reply.get("content", {})
        if content.get("status") != "ok":
            raise PipelineError(f"the kernel could not run its set-up code: "
                                f"{content.get('ename')}: {content.get('evalue')}")

    def execute(self, source: Path, target: Path, parameters: dict[str, Any], cwd: Path) -> Path:
        """Execute `source` with `parameters` in `cwd`, write it to `target`; on a failing cell
        the notebook with the error is still written, and PipelineError names the cell."""
        import nbformat
        from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        nb = parameterize_notebook(load_notebook_node(str(source)), parameters,
                                   kernel_name=self.kernel_name, language="python")
        if self._client is None:
            self.start()
        # chdir first: the previous notebook's folder may be gone (a report made again), and
        # IPython's reset asks for the current directory.
        self._hidden(f"import os as _os; _os.chdir({str(cwd)!r}); del _os\n"
                     "get_ipython().reset(new_session=True)\n"
                     "import matplotlib.pyplot as _plt; _plt.close('all'); del _plt")
        self._client.nb = nb
        try:
            self._client.execute()
        except CellExecutionError as exc:
            nbformat.write(nb, target)
            cell = next((c for c in nb.cells if any(o.get("output_type") == "error"
                                                    for o in c.get("outputs", []))), None)
            count = cell.get("execution_count") if cell is not None else "?"
            raise PipelineError(
                f"notebook {source.name} failed in cell {count} ({exc.ename}: {exc.evalue}); "
                f"the executed notebook with the error is {target}") from None
        except (DeadKernelError, CellTimeoutError, RuntimeError) as exc:
            nbformat.write(nb, target)
            self.close()  # the next notebook gets a fresh kernel
            raise PipelineError(f"notebook {source.name}: the kernel died or a cell ran longer "
                                f"than {self.timeout} s ({type(exc).__name__}: {exc}); the "
                                f"executed part is in {target}") from None
        nbformat.write(nb, target)
        return target

    def close(self) -> None:
        from nbclient.util import run_sync

        if self._client is not None and self._client.kc is not None:
            self._client.kc.stop_channels()
        if self._km is not None:
            try:
                run_sync(self._km.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001  already gone
                pass
        if self._log is not None:
            self._log.close()
        self._km = self._client = self._log = self._warming = None


def prepare_build_dir(build: Path, params: Params, sources: Sources = DEFAULT_SOURCES,
                      data_dir: Path | None = None) -> None:
    """A fresh copy of the project files the renderer reads, plus this run's metadata."""
    from evaluation.data.synthetic import marker
    from evaluation.report.rendering import copy_sources

    if build.exists():
        shutil.rmtree(build)
    (build / "notebooks").mkdir(parents=True)
    shutil.copy2(sources.quarto_file, build / "_quarto.yml")
    copy_sources(sources.reports_dir, build / "reports", DOCUMENT)
    meta = report_metadata(params, synthetic=marker(data_dir))
    (build / "reports" / "_metadata.yml").write_text(
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (build / "params.yml").write_text(params_yaml(params), encoding="utf-8")


def compute_estimates(build: Path, params: Params, tables: dict, params_dir: Path) -> Path:
    """Every estimate of the report, once: the notebooks read them instead of refitting."""
    from evaluation.analysis.estimates import estimate_all, save_estimates

    path = build / "estimates.parquet"
    es = estimate_all(tables, params, params_dir)
    save_estimates(es, path)
    memo.remember_estimates(path, es, params_dir)  # for notebooks run in this process
    return path


def execute_notebooks(build: Path, params: Params, data_dir: Path, overrides: Sequence[str],
                      params_dir: Path, log: Callable[[str], None],
                      estimates_file: Path | None = None, session: KernelSession | None = None,
                      sources: Sources = DEFAULT_SOURCES,
                      seconds: dict[str, float] | None = None) -> list[Path]:
    """Execute every notebook of the report in `session` (or in a kernel of its own), in order;
    also record the order of the tables they keep for the Excel workbook, and in `seconds` the
    wall time of each notebook."""
    if session is None:
        with KernelSession(log_file=build / "kernel.log") as own:
            return execute_notebooks(build, params, data_dir, overrides, params_dir, log,
                                     estimates_file, own, sources, seconds)
    tables_dir = build / "tables"
    order: list[str] = []
    done = []
    for source in sources.notebooks():
        log(f"  notebook {source.name}")
        started = time.perf_counter()
        target = build / "notebooks" / source.name
        session.execute(source, target, {
            "region": params.region.id,
            "school_year": params.school_year,
            "data_dir": str(Path(data_dir).resolve()),
            "overrides": list(overrides),
            "params_dir": str(Path(params_dir).resolve()),
            "estimates_file": str(estimates_file) if estimates_file else "",
            "municipality": params.municipality or "",
            "tables_dir": str(tables_dir),
        }, cwd=build / "notebooks")
        apply_output_text(target)  # the alt texts the notebook computed, into the cell options
        new = [p for p in tables_dir.glob("*.json") if p.stem not in order
               and p.name != TABLE_ORDER_FILE] if tables_dir.is_dir() else []
        order += [p.stem for p in sorted(new, key=lambda p: (p.stat().st_mtime_ns, p.name))]
        done.append(target)
        if seconds is not None:
            seconds[source.stem] = round(time.perf_counter() - started, 3)
    if order:
        (tables_dir / TABLE_ORDER_FILE).write_text(json.dumps(order), encoding="utf-8")
    return done


@dataclass
class BuiltReport:
    """A report finished in its build dir, not yet published."""

    params: Params
    build: Path
    renderer: str
    outputs: dict[str, Path]  # "html" / "pdf" / "xlsx" -> file in the build dir
    notebooks: list[Path]
    seconds: dict[str, float] = field(default_factory=dict)  # wall time per stage


def build_report(params: Params, data_dir: Path, tables: dict, overrides: Sequence[str],
                 params_dir: Path, formats: Sequence[str], build_root: Path, renderer: str,
                 log: Callable[[str], None] = print, session: KernelSession | None = None,
                 sources: Sources = DEFAULT_SOURCES) -> BuiltReport:
    """Estimates, notebooks, rendering and the Excel workbook of one report, in its own build
    dir; `tables` are the validated data (the estimates are computed from them)."""
    from evaluation.report.rendering import RenderError, render
    from evaluation.report.workbook import write_workbook

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = round(seconds.get(stage, 0.0) + now - clock, 3)
        clock = now

    build = report_dir(build_root, params).resolve()
    prepare_build_dir(build, params, sources, data_dir)
    log(f"report {params.region.id} {params.municipality_name or ''} {params.school_year}: "
        f"executing notebooks in {build}")
    own = session is None
    if own:
        session = KernelSession(log_file=build / "kernel.log")
    try:
        if not session.started:  # the kernel warms up while the estimates are computed
            session.start(wait=False)
        log("  estimates")
        lap("prepare")
        estimates_file = compute_estimates(build, params, tables, params_dir)
        if getattr(session, "in_process", False):  # the robustness analysis ahead, forked
            es = memo.remembered(estimates_file, params, params_dir)
            if es is not None:
                ahead.start_robustness(build, tables, params, params_dir, tuple(overrides), es)
        lap("estimates")
        per_notebook: dict[str, float] = {}
        executed = execute_notebooks(build, params, data_dir, overrides, params_dir, log,
                                     estimates_file, session, sources, per_notebook)
    finally:
        if own:
            session.close()
    lap("notebooks")
    seconds.update({f"notebook {k}": v for k, v in per_notebook.items()})
    log("  rendering")
    try:
        result = render(build / "reports" / f"{DOCUMENT}.qmd", formats=list(formats),
                        out_dir=build / "_render", prefer=renderer)
    except RenderError as exc:
        raise PipelineError(f"rendering failed: {exc}") from None
    lap("render")
    outputs = dict(result.outputs)
    outputs["xlsx"] = write_workbook(build / "tables", estimates_file,
                                     build / "_render" / OUTPUT_NAMES["xlsx"], params,
                                     document=build / "reports" / f"{DOCUMENT}.qmd")
    lap("workbook")
    log("  audit")
    audit_outputs(outputs, Path(data_dir), params)
    lap("audit")
    return BuiltReport(params, build, result.renderer, outputs, executed, seconds)


def audit_outputs(outputs: dict[str, Path], data_dir: Path, params: Params) -> None:
    """Nothing personal and no small cell may leave the build folder: audit every output (HTML,
    PDF, workbook) before anything is published. The audit's rules (the data's identifiers) are
    read once per process for unchanged data."""
    from evaluation.report.audit import audit_file, make_rules

    min_count = params.disclosure.min_count
    rules = _memo(("audit", min_count, *_dir_signature(data_dir)),
                  lambda: make_rules(data_dir, min_count))
    findings = [f for path in outputs.values() for f in audit_file(Path(path), rules)]
    if findings:
        listed = "\n".join(f"  {f.file}: {f.location}: {f.kind}: {f.snippet}"
                           for f in findings[:20])
        raise PipelineError(f"the output audit found {len(findings)} problem(s); the report was "
                            f"not published:\n{listed}")


def publish(outputs: dict[str, Path], dest_dir: Path,
            names: dict[str, str] | None = None) -> dict[str, Path]:
    """Move finished outputs into place: copy each beside its target first, then rename them
    (atomic per file), so readers never see a half-written file and a copy that fails (a full
    disk) leaves every earlier output as it was. `names`: file name per kind (default: the
    whitepaper's, OUTPUT_NAMES)."""
    names = OUTPUT_NAMES if names is None else names
    dest_dir.mkdir(parents=True, exist_ok=True)
    staged = {}
    try:
        for kind, src in outputs.items():
            target = dest_dir / names.get(kind, Path(src).name)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            shutil.copy2(src, tmp)
            staged[kind] = (tmp, target)
    except BaseException:
        for tmp, _ in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    for tmp, target in staged.values():
        os.replace(tmp, target)
    return {kind: target for kind, (_, target) in staged.items()}


def log_rejected(checked, data_dir: Path, log: Callable[[str], None]) -> int:
    """Say how many rows validation rejected (the report's annex counts them with reasons);
    returns that number."""
    rejected = int(checked.summary()["rejected"].sum())
    if rejected:
        log(f"data: {rejected} row(s) rejected; they are counted in the data-quality annex "
            f"(run `evaluation validate {data_dir}` for each reason)")
    return rejected


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
    session: Any = None,
) -> ReportResult:
    """Make one whitepaper (HTML and/or PDF, plus its Excel workbook) for a region, or one of its
    municipalities, and a school year. Always renders; `evaluation.run.batch` renders many reports
    and skips those whose inputs did not change. `session`: where the notebooks run (default: a
    kernel of their own; the command line passes an `inprocess.InProcessSession`)."""
    # Parameters are validated before anything runs.
    params = load_params(region, school_year, list(overrides), params_dir, municipality)
    formats = list(formats or params.report.formats)
    if data_dir is None:
        data_dir = build_root / "synthetic-data"
        log(f"no --data given: generating the synthetic data set in {data_dir}")
        write_synthetic(data_dir, overrides, params_dir)
    try:
        checked = cached_report_data(data_dir, params)
        require_school_year(checked, params.school_year, data_dir)
    except DataSetError as exc:
        raise PipelineError(str(exc)) from None
    rejected = log_rejected(checked, data_dir, log)
    started = time.time()
    with sharing_validated(Path(data_dir), build_root):  # the kernel reads, not re-validates
        built = build_report(params, Path(data_dir), checked.tables, overrides, params_dir,
                             formats, build_root, renderer, log, session)
    dest = report_dir(output_root, params)
    placed = publish(built.outputs, dest)
    try:  # lets a later `render --all` see that this report is up to date
        from evaluation.run.manifest import record_single_render

        record_single_render(params, Path(data_dir), overrides, params_dir, renderer, formats,
                             built.renderer, dest, time.time() - started)
    except Exception as exc:  # noqa: BLE001  the report itself is published and fine
        log(f"note: could not record the cache manifest ({exc})")
    return ReportResult(region, school_year, built.renderer, placed, built.notebooks, rejected)
