"""Every whitepaper that params/ declares, planned as tasks, run in parallel and incrementally.

`plan` lists one task per report: per region and per municipality of the region, per school year
from the region's first pilot year up to the last school year in the data. Each task renders in
its own build dir and publishes only finished files (`pipeline.build_report`, `pipeline.publish`),
so parallel renders never collide and a failed render never replaces the last good report.

A task re-runs only when something it depends on changed. Its fingerprint hashes the data files,
its merged and validated params (with the comparison schools it borrows from other regions), the
notebooks and report sources, the package (version and source files) and the renderer; the
fingerprint is kept in `.manifest.json` beside the published files. A second run with nothing
changed does no work.

Executors are a registry (`EXECUTORS`): "local" (a pool of worker processes, one per core by
default), "serial" (in this process; for debugging) and "dask" (a dask.distributed cluster).
Every worker keeps one warmed IPython kernel for all the reports it makes (`KernelSession`), so
kernel start-up and imports are paid once per worker, not once per notebook.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import json
import os
import shutil
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import evaluation
from evaluation.dataset import DataSetError, file_hashes, table_files
from evaluation.params import (
    DEFAULT_PARAMS_DIR,
    Params,
    ParamsError,
    Region,
    School,
    load_params,
    load_regions,
    load_synthetic,
    merged_params,
    region_files,
    school_year_of_date,
    school_year_start_year,
)
from evaluation.pipeline import (
    DEFAULT_SOURCES,
    OUTPUT_NAMES,
    KernelSession,
    PipelineError,
    Sources,
    build_report,
    cached_report_data,
    cached_validate_dir,
    publish,
    slug,
    write_synthetic,
)

PACKAGE_DIR = Path(evaluation.__file__).resolve().parent
MANIFEST = ".manifest.json"
LOCK_FILE = ".render-all.lock"
SYNTHETIC_DIR = "synthetic-data"


# --- the plan ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Task:
    """One report: a region or one of its municipalities, in one school year."""

    region: str
    school_year: str
    municipality: str | None  # CBS code; None: the region's own report
    region_name: str
    unit_name: str | None  # municipality name; None: the whole region
    count_by: str  # how a municipality report counts pupils: "school" or "residence"
    formats: tuple[str, ...]
    notebooks: tuple[str, ...]  # sub-steps, in order
    params_hash: str = field(default="", compare=False)
    params: Params | None = field(default=None, compare=False, repr=False)

    @property
    def key(self) -> str:
        """`<region>/[<municipality>/]<school-year>`: the report's folder under the output."""
        unit = f"{slug(self.unit_name)}/" if self.unit_name else ""
        return f"{self.region}/{unit}{self.school_year}"

    @property
    def label(self) -> str:
        return f"{self.region_name}, {self.unit_name or 'hele regio'}, {self.school_year}"


def school_years(first: str, last: str) -> list[str]:
    """`2013-2014` .. `2016-2017`, both included (empty when last comes before first)."""
    return [f"{y}-{y + 1}" for y in range(school_year_start_year(first),
                                          school_year_start_year(last) + 1)]


def last_school_year(data_dir: Path | None, params_dir: Path = DEFAULT_PARAMS_DIR,
                     overrides: Sequence[str] = ()) -> str:
    """The last school year with enrolments in the data (read from the enrolments file only);
    for the synthetic data, `synthetic.last_school_year`."""
    if data_dir is None:
        return load_synthetic(list(overrides), params_dir).last_school_year
    path = table_files(Path(data_dir))["enrolments"]
    if not path.is_file():
        raise DataSetError(f"{path}: file not found (table enrolments is required)")
    if path.suffix == ".parquet":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        column = pq.read_table(path, columns=["school_year"]).column("school_year")
        years = {str(y).strip() for y in pc.unique(column).to_pylist() if y is not None}
    else:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            years = {row.get("school_year", "").strip() for row in csv.DictReader(fh)}
    valid = [y for y in years if len(y) == 9 and y[4] == "-" and y[:4].isdigit()]
    if not valid:
        raise DataSetError(f"{path}: no school_year values (as 2014-2015) to plan reports by")
    return max(valid, key=school_year_start_year)


def _cached_last_school_year(data_dir: Path, build_root: Path) -> str:
    """`last_school_year`, remembered per enrolments file (size and time): reading a large file
    would dominate a run with nothing to do."""
    path = table_files(data_dir)["enrolments"]
    cache = build_root / ".last-school-year.json"
    if not path.is_file():
        return last_school_year(data_dir)  # which says what is missing
    stat = path.stat()
    key = f"{path}:{stat.st_size}:{stat.st_mtime_ns}"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        known = json.loads(cache.read_text(encoding="utf-8"))
        if known.get("key") == key:
            return known["last"]
    last = last_school_year(data_dir)
    with contextlib.suppress(OSError):
        cache.write_text(json.dumps({"key": key, "last": last}), encoding="utf-8")
    return last


def _params_hash(params: Params, schools: dict[str, School]) -> str:
    """The report's params as validated, plus the comparison schools it takes from other regions'
    files: a change to another region's own schools or texts leaves this report alone."""
    borrowed = [schools[s].model_dump(mode="json") for s in params.region.comparison_schools
                if s in schools]
    text = json.dumps({"params": params.model_dump(mode="json"), "comparison": borrowed},
                      sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _validated(merged: dict[str, Any], region: str, school_year: str, overrides: Sequence[str],
               params_dir: Path, municipality: str | None) -> Params:
    """`load_params` for one report of a region whose files were read and checked once already:
    the same schema on the same merged mapping, without re-reading every YAML file per report
    (which made planning slow). Errors go through `load_params` for its messages."""
    data = {**merged, "school_year": school_year}
    if municipality is not None:
        data["municipality"] = municipality
    try:
        return Params.model_validate(data)
    except ValidationError:
        return load_params(region, school_year, list(overrides), params_dir, municipality)


def task_for(params: Params, formats: Sequence[str] | None, schools: dict[str, School],
             sources: Sources = DEFAULT_SOURCES) -> Task:
    return Task(params.region.id, params.school_year, params.municipality, params.region.name,
                params.municipality_name, params.analysis.count_by,
                tuple(formats or params.report.formats),
                tuple(p.name for p in sources.notebooks()), _params_hash(params, schools), params)


def first_report_year(region: Region, municipality: str | None, count_by: str) -> str | None:
    """The first school year with something to evaluate: the first pilot year of the region, or
    of the municipality's own schools when a municipality report counts pupils by school
    location (a municipality whose schools have no pilot yet has no pilot group; pupils counted
    by residence may attend any pilot school of the region)."""
    if municipality is None or count_by != "school":
        return region.first_pilot_year
    starts = [s.pilot_start for s in region.pilot_schools
              if s.municipality == municipality and s.pilot_start]
    return school_year_of_date(min(starts)) if starts else None


def plan(last_year: str, params_dir: Path = DEFAULT_PARAMS_DIR, region: str | None = None,
         school_year: str | None = None, formats: Sequence[str] | None = None,
         overrides: Sequence[str] = (), sources: Sources = DEFAULT_SOURCES) -> list[Task]:
    """Every report params/ declares up to `last_year`: per region (or only `region`), for the
    region and each of its municipalities, per school year from the first year with a pilot to
    evaluate (`first_report_year`; or only `school_year`). Reads the params files only; each
    task's params are validated. Ordered by region, school year, then region before its
    municipalities."""
    files = region_files(params_dir)
    if region is not None and region not in files:
        raise ParamsError(f"region {region!r}: no params/{region}.yml "
                          f"(known regions: {', '.join(files) or 'none'})")
    regions = load_regions(params_dir)
    schools = {s.id: s for r in regions for s in r.schools}
    tasks = []
    for reg in regions:
        if (region is not None and reg.id != region) or reg.first_pilot_year is None:
            continue
        merged = merged_params(reg.id, None, list(overrides), params_dir)
        # The region's report in its first pilot year, with every check load_params makes.
        base = load_params(reg.id, reg.first_pilot_year, list(overrides), params_dir)
        count_by = base.analysis.count_by
        for year in school_years(reg.first_pilot_year, last_year):
            if school_year is not None and year != school_year:
                continue
            for code in [None, *(m.code for m in reg.municipalities)]:
                first = first_report_year(reg, code, count_by)
                if first is None or school_year_start_year(year) < school_year_start_year(first):
                    continue
                params = _validated(merged, reg.id, year, overrides, params_dir, code)
                tasks.append(task_for(params, formats, schools, sources))
    if not tasks:
        which = f"region {region}" if region else "any region"
        year = f"school year {school_year}" if school_year else "any school year"
        raise ParamsError(f"no report to render for {which} and {year}: reports start at the "
                          f"first pilot year and end at the data's last school year "
                          f"({last_year})")
    return tasks


# --- what a task depends on --------------------------------------------------------------------

def _hash_files(paths: Sequence[Path], root: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        name = str(path.relative_to(root)) if root else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# Modules that only orchestrate runs: changing them changes no report, so no re-render.
NOT_IN_REPORTS = {"batch.py", "site.py", "cli.py", "__main__.py"}


def package_hash() -> str:
    """The package version and its source files: a code change that can change a report
    re-renders every report (which code a report uses is not tracked finer than that)."""
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".typ",
                   ".css", ".yml", ".json", ".csv") and "__pycache__" not in p.parts
                   and p.relative_to(PACKAGE_DIR).as_posix() not in NOT_IN_REPORTS)
    return f"{evaluation.__version__}:{_hash_files(files, PACKAGE_DIR)}"


def renderer_id(renderer: str) -> str:
    """Which renderer `renderer` ("auto", "quarto", "builtin") resolves to, with versions."""
    from evaluation.rendering import renderer_name

    return renderer_name(renderer)


def shared_inputs(data_dir: Path, renderer: str, sources: Sources = DEFAULT_SOURCES
                  ) -> dict[str, str]:
    """The hashes every task of a run shares (computed once per run)."""
    data = file_hashes(Path(data_dir))
    return {
        "data": hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
        "sources": _hash_files(sources.files()),
        "package": package_hash(),
        "renderer": renderer_id(renderer),
    }


def fingerprint(task: Task, shared: dict[str, str]) -> dict[str, str]:
    return {**shared, "params": task.params_hash}


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(task: Task, fp: dict[str, str], output_root: Path) -> bool:
    """Published, with the same fingerprint, in every format asked for (and the workbook)."""
    out_dir = output_root / task.key
    manifest = read_manifest(out_dir)
    if manifest is None or manifest.get("fingerprint") != fp:
        return False
    outputs = manifest.get("outputs", {})
    return all(kind in outputs and (out_dir / outputs[kind]).is_file()
               for kind in (*task.formats, "xlsx"))


def write_manifest(task: Task, fp: dict[str, str], out_dir: Path, outputs: dict[str, Path],
                   renderer: str, seconds: float) -> Path:
    """Written last, atomically: its presence with this fingerprint means "up to date"."""
    params = task.params
    data = {
        "key": task.key, "region": task.region, "region_name": task.region_name,
        "title": params.region.title if params else task.region_name,
        "municipality": task.municipality, "unit_name": task.unit_name,
        "count_by": task.count_by, "school_year": task.school_year,
        "outputs": {kind: Path(p).name for kind, p in outputs.items()},
        "renderer": renderer, "fingerprint": fp,
        "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
    }
    path = out_dir / MANIFEST
    tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def record_single_render(params: Params, data_dir: Path, overrides: Sequence[str],
                         params_dir: Path, renderer: str, formats: Sequence[str],
                         used_renderer: str, out_dir: Path, seconds: float) -> None:
    """Called by `pipeline.render_report`: a single render leaves the same manifest as a batch,
    so that `render --all` afterwards does not redo it."""
    schools = {s.id: s for r in load_regions(params_dir) for s in r.schools}
    task = task_for(params, formats, schools)
    outputs = {k: out_dir / name for k, name in OUTPUT_NAMES.items()
               if (k in formats or k == "xlsx") and (out_dir / name).is_file()}
    write_manifest(task, fingerprint(task, shared_inputs(data_dir, renderer)), out_dir, outputs,
                   used_renderer, seconds)


# --- running one task (in a worker) ------------------------------------------------------------

@dataclass(frozen=True)
class Context:
    """Where a run reads and writes; absolute paths, so that any worker (on a cluster: any
    machine with the same shared storage) finds its inputs by path."""

    data_dir: Path
    params_dir: Path
    overrides: tuple[str, ...]
    output_root: Path
    build_root: Path
    renderer: str
    sources: Sources = DEFAULT_SOURCES


@dataclass(frozen=True)
class Job:
    task: Task
    context: Context
    fingerprint: dict[str, str]


@dataclass
class TaskResult:
    key: str
    label: str
    status: str  # "done", "cached" or "failed"
    seconds: float = 0.0
    error: str = ""
    renderer: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    worker: str = ""


class TaskFailed(RuntimeError):
    """Raised on a cluster so that the scheduler retries the task once."""


_local = threading.local()  # per worker thread: its kernel and where to send progress
_events: Any = None  # the local pool's queue of (task key, step) messages


def _session(log_dir: Path) -> KernelSession:
    if getattr(_local, "session", None) is None:
        log = log_dir / f"kernel-{socket.gethostname()}-{os.getpid()}.log"
        _local.session = KernelSession(log_file=log)
    return _local.session


def close_session() -> None:
    session = getattr(_local, "session", None)
    if session is not None:
        session.close()
        _local.session = None


def _step(key: str, text: str) -> None:
    if _events is not None:
        with contextlib.suppress(Exception):
            _events.put((key, text.strip()))


def render_task(job: Job, session: KernelSession, log: Callable[[str], None]) -> TaskResult:
    """Build, publish and record one report (raises on failure)."""
    task, ctx = job.task, job.context
    started = time.time()
    params = task.params or load_params(task.region, task.school_year, list(ctx.overrides),
                                        ctx.params_dir, task.municipality)
    tables = cached_report_data(ctx.data_dir, params).tables
    built = build_report(params, ctx.data_dir, tables, ctx.overrides, ctx.params_dir,
                         task.formats, ctx.build_root, ctx.renderer, log, session, ctx.sources)
    out_dir = ctx.output_root / task.key
    placed = publish(built.outputs, out_dir)
    for kind, name in OUTPUT_NAMES.items():  # one folder holds one version of the report
        if kind not in placed:
            (out_dir / name).unlink(missing_ok=True)
    seconds = time.time() - started
    write_manifest(task, job.fingerprint, out_dir, placed, built.renderer, seconds)
    return TaskResult(task.key, task.label, "done", seconds, renderer=built.renderer,
                      outputs={k: str(v) for k, v in placed.items()})


def run_task(job: Job) -> TaskResult:
    """One task in a worker: never raises; a failure is a result, so the others go on."""
    started = time.time()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    _step(job.task.key, "start")
    logs = job.context.build_root / "logs"
    try:
        # Small units make statsmodels warn (perfect separation, ...); keep that out of the
        # progress display, in a log per report.
        with warnings.catch_warnings(record=True) as caught:
            result = render_task(job, _session(logs), lambda m: _step(job.task.key, m))
    except Exception as exc:  # noqa: BLE001  any failure of one report is reported, not raised
        detail = str(exc) if isinstance(exc, PipelineError | ParamsError | DataSetError) else (
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-3)}")
        return TaskResult(job.task.key, job.task.label, "failed", time.time() - started,
                          detail.strip(), worker=worker)
    if caught:
        logs.mkdir(parents=True, exist_ok=True)
        (logs / f"{job.task.key.replace('/', '_')}.warnings.log").write_text(
            "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno)
                    for w in caught), encoding="utf-8")
    result.worker = worker
    return result


# --- executors ---------------------------------------------------------------------------------

@dataclass
class Event:
    kind: str  # "start", "step" or "finish"
    key: str
    text: str = ""
    result: TaskResult | None = None


Emit = Callable[[Event], None]


@dataclass(frozen=True)
class ExecOptions:
    workers: int
    scheduler: str | None = None


def _failed(job: Job, message: str) -> TaskResult:
    return TaskResult(job.task.key, job.task.label, "failed", error=message)


def run_serial(jobs: list[Job], options: ExecOptions, emit: Emit) -> list[TaskResult]:
    """In this process, one after another (one kernel for all): for debugging and small runs."""
    global _events

    class _Direct:
        def put(self, item: tuple[str, str]) -> None:
            emit(Event("step", *item))

    results = []
    _events = _Direct()
    try:
        for job in jobs:
            emit(Event("start", job.task.key))
            result = run_task(job)
            results.append(result)
            emit(Event("finish", job.task.key, result=result))
    finally:
        _events = None
        close_session()
    return results


def _init_worker(queue: Any) -> None:
    """Pool worker start: remember the progress queue and close the kernel when the worker ends
    (multiprocessing skips atexit in its workers; Finalize runs)."""
    from multiprocessing.util import Finalize

    global _events
    _events = queue
    Finalize(None, close_session, exitpriority=10)


@contextlib.contextmanager
def _single_threaded_numerics(on: bool) -> Iterator[None]:
    """Workers (and their kernels) inherit one BLAS thread each: N workers on N cores, not N x N
    threads fighting over them."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {n: os.environ.get(n) for n in names}
    if on:
        for n in names:
            os.environ.setdefault(n, "1")
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def run_local(jobs: list[Job], options: ExecOptions, emit: Emit) -> list[TaskResult]:
    """A pool of worker processes on this machine. At most one task per worker is in flight, so
    that "running" is exact; a worker that dies fails only the tasks it was running."""
    import multiprocessing
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    mp = multiprocessing.get_context("spawn")  # no fork of a process with threads (rich, zmq)
    events = mp.Queue()
    results: list[TaskResult] = []
    pending = list(jobs)

    def drain() -> None:
        while True:
            try:
                key, text = events.get_nowait()
            except (queue_mod.Empty, OSError, ValueError):
                return
            if text != "start":
                emit(Event("step", key, text))

    while pending:
        running: dict[Future, Job] = {}
        broken = False
        with _single_threaded_numerics(options.workers > 1), ProcessPoolExecutor(
                max_workers=options.workers, mp_context=mp, initializer=_init_worker,
                initargs=(events,)) as pool:
            while (pending or running) and not broken:
                while pending and len(running) < options.workers:
                    job = pending.pop(0)
                    running[pool.submit(run_task, job)] = job
                    emit(Event("start", job.task.key))
                finished, _ = wait(running, timeout=0.25, return_when=FIRST_COMPLETED)
                drain()
                for future in finished:
                    job = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        broken = True
                        result = _failed(job, "the worker process died (out of memory?) while "
                                              "making this report")
                    except Exception as exc:  # noqa: BLE001  e.g. a result that cannot be pickled
                        result = _failed(job, f"{type(exc).__name__}: {exc}")
                    results.append(result)
                    emit(Event("finish", job.task.key, result=result))
            for job in running.values():  # their pool broke under them
                result = _failed(job, "the worker pool broke while making this report")
                results.append(result)
                emit(Event("finish", job.task.key, result=result))
    drain()
    return results


def _dask_task(job: Job) -> TaskResult:
    """On a Dask worker: raise on failure, so that the scheduler retries the task once."""
    result = run_task(job)
    if result.status == "failed":
        raise TaskFailed(result.error)
    return result


def run_dask(jobs: list[Job], options: ExecOptions, emit: Emit) -> list[TaskResult]:
    """The same tasks on a dask.distributed cluster: one function call per task, inputs read by
    path from shared storage (only the small Job travels through the scheduler), each task
    retried once when it fails."""
    try:
        from distributed import Client, as_completed
    except ImportError:
        raise PipelineError("--executor dask needs the dask and distributed packages "
                            "(pip install dask distributed)") from None
    if not options.scheduler:
        raise PipelineError("--executor dask needs --scheduler ADDRESS (as tcp://host:8786)")
    results = []
    stamp = f"{os.getpid()}-{time.time_ns()}"
    with Client(options.scheduler, timeout="30s") as client:
        slots = max(1, sum(client.nthreads().values()))
        futures = {}
        for job in jobs:
            future = client.submit(_dask_task, job, key=f"render-{job.task.key}-{stamp}",
                                   retries=1, pure=False)
            futures[future] = job
        for job in jobs[:slots]:
            emit(Event("start", job.task.key))
        started = min(slots, len(jobs))
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # noqa: BLE001  TaskFailed after its retry, or a lost worker
                result = _failed(job, str(exc) if isinstance(exc, TaskFailed)
                                 else f"{type(exc).__name__}: {exc}")
            results.append(result)
            emit(Event("finish", job.task.key, result=result))
            if started < len(jobs):
                emit(Event("start", jobs[started].task.key))
                started += 1
    return results


Executor = Callable[[list[Job], ExecOptions, Emit], list[TaskResult]]
EXECUTORS: dict[str, Executor] = {"local": run_local, "serial": run_serial, "dask": run_dask}


# --- a whole run -------------------------------------------------------------------------------

@dataclass
class BatchResult:
    results: list[TaskResult]
    index: Path | None
    seconds: float

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[TaskResult]:
        return [r for r in self.results if r.status == "failed"]


@contextlib.contextmanager
def _run_lock(build_root: Path) -> Iterator[None]:
    """One `render --all` at a time per build folder: two would rebuild the same dirs."""
    build_root.mkdir(parents=True, exist_ok=True)
    with open(build_root / LOCK_FILE, "w") as fh:
        try:
            import fcntl
        except ImportError:  # Windows: no lock
            yield
            return
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise PipelineError(f"another `render --all` is running with build folder "
                                f"{build_root}; wait for it to finish") from None
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_synthetic(build_root: Path, overrides: Sequence[str], params_dir: Path) -> Path:
    """The synthetic data set as files, regenerated only when what it is generated from (every
    region's params, the synthetic settings, the package) changed; same files, same hashes."""
    out = build_root / SYNTHETIC_DIR
    key = hashlib.sha256(json.dumps({
        "regions": [r.model_dump(mode="json") for r in load_regions(params_dir)],
        "synthetic": load_synthetic(list(overrides), params_dir).model_dump(mode="json"),
        "package": package_hash(),
    }, sort_keys=True).encode()).hexdigest()
    stamp = out / ".key"
    if stamp.is_file() and stamp.read_text() == key:
        return out
    tmp = build_root / f".{SYNTHETIC_DIR}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_synthetic(tmp, overrides, params_dir)
    (tmp / ".key").write_text(key)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return out


class _Display:
    """The rich progress bar: done, running, cached and failed, and the step of each running
    report."""

    def __init__(self, total: int, cached: int, console: Any, enabled: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self.counts = {"done": 0, "running": 0, "cached": cached, "failed": 0}
        self.labels: dict[str, str] = {}
        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                                 disable=not enabled, transient=False)
        self.bar = self.progress.add_task(self._text(), total=total, completed=cached)
        self.rows: dict[str, Any] = {}

    def _text(self) -> str:
        c = self.counts
        return (f"reports: [green]{c['done']} done[/] · [cyan]{c['running']} running[/] · "
                f"{c['cached']} cached · [red]{c['failed']} failed[/]")

    def __enter__(self) -> _Display:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if event.kind == "start":
            self.counts["running"] += 1
            self.rows[event.key] = self.progress.add_task(f"  {event.key}: starting", total=None)
        elif event.kind == "step" and event.key in self.rows:
            self.progress.update(self.rows[event.key],
                                 description=f"  {event.key}: {event.text[:60]}")
        elif event.kind == "finish" and event.result is not None:
            self.counts["running"] = max(0, self.counts["running"] - 1)
            self.counts[event.result.status] += 1
            row = self.rows.pop(event.key, None)
            if row is not None:
                self.progress.remove_task(row)
            self.progress.advance(self.bar)
        self.progress.update(self.bar, description=self._text())


def render_all(
    region: str | None = None,
    school_year: str | None = None,
    formats: Sequence[str] | None = None,
    executor: str = "local",
    scheduler: str | None = None,
    workers: int | None = None,
    data_dir: Path | None = None,
    overrides: Sequence[str] = (),
    output_root: Path = Path("_output"),
    params_dir: Path = DEFAULT_PARAMS_DIR,
    renderer: str = "auto",
    build_root: Path = Path("_build"),
    force: bool = False,
    select: Callable[[Task], bool] | None = None,
    sources: Sources = DEFAULT_SOURCES,
    console: Any = None,
    progress: bool = True,
) -> BatchResult:
    """Render every planned report whose inputs changed (all of them with `force`), then write
    the site index. `select` narrows the plan (tests, benchmarks)."""
    from evaluation.site import write_index

    if executor not in EXECUTORS:
        raise PipelineError(f"unknown executor {executor!r} (known: {', '.join(EXECUTORS)})")
    started = time.time()
    output_root, build_root = Path(output_root).resolve(), Path(build_root).resolve()
    params_dir = Path(params_dir).resolve()
    with _run_lock(build_root):
        if data_dir is None:
            data = ensure_synthetic(build_root, overrides, params_dir)
            last = last_school_year(None, params_dir, overrides)
        else:
            data = Path(data_dir).resolve()
            last = _cached_last_school_year(data, build_root)
        tasks = plan(last, params_dir, region, school_year, formats, overrides, sources)
        tasks = [t for t in tasks if select is None or select(t)]
        ctx = Context(data, params_dir, tuple(overrides), output_root, build_root, renderer,
                      sources)
        shared = shared_inputs(data, renderer, sources)
        jobs, results = [], []
        for task in tasks:
            fp = fingerprint(task, shared)
            if not force and is_current(task, fp, output_root):
                results.append(TaskResult(task.key, task.label, "cached"))
            else:
                jobs.append(Job(task, ctx, fp))
        if jobs:
            try:  # unreadable data fails the run once, not every report
                cached_validate_dir(data)
            except DataSetError as exc:
                raise PipelineError(str(exc)) from None
            n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
            with _Display(len(tasks), len(results), console, progress) as display:
                results += EXECUTORS[executor](jobs, ExecOptions(n, scheduler), display)
        index = write_index(output_root)
    order = {t.key: i for i, t in enumerate(tasks)}
    results.sort(key=lambda r: order.get(r.key, len(order)))
    return BatchResult(results, index, time.time() - started)


def print_summary(batch: BatchResult, console: Any) -> None:
    """The reports that did work (or failed) as a table, then the totals."""
    from rich.table import Table

    worked = [r for r in batch.results if r.status != "cached"]
    cached = batch.count("cached")
    if not worked:
        console.print(f"Nothing to do: all {cached} reports are up to date "
                      f"({batch.seconds:.1f} s). Site index: {batch.index}")
        return
    table = Table(title="render --all", title_justify="left")
    table.add_column("report", no_wrap=True)
    table.add_column("status")
    table.add_column("time", justify="right")
    if batch.failed:
        table.add_column("error", overflow="fold")
    style = {"done": "green", "failed": "bold red"}
    for r in worked:
        row = [r.key, f"[{style[r.status]}]{r.status}[/]", f"{r.seconds:.0f} s"]
        table.add_row(*row, *([r.error.splitlines()[0] if r.error else ""] if batch.failed
                              else []))
    console.print(table)
    renderers = sorted({r.renderer for r in worked if r.renderer})
    if renderers:
        console.print(f"renderer: {', '.join(renderers)}", highlight=False)
    console.print(f"{batch.count('done')} rendered, {cached} up to date (cached), "
                  f"{len(batch.failed)} failed, in {batch.seconds:.0f} s. Site index: "
                  f"{batch.index}", highlight=False)
    for r in batch.failed:
        console.print(f"[red]failed[/] {r.key}: {r.error}", highlight=False)
    if batch.failed:
        console.print("The last good output of each failed report is left in place.")


def render_all_command(region: str | None, school_year: str | None, all_: bool,
                       formats: Sequence[str] | None, executor: str, scheduler: str | None,
                       workers: int | None, data_dir: Path | None, overrides: Sequence[str],
                       output_root: Path, params_dir: Path, renderer: str,
                       build_root: Path = Path("_build"), force: bool = False) -> int:
    """`evaluation render --all`: 0 when every report is up to date or rendered, 1 when any
    failed; ParamsError / DataSetError / PipelineError propagate (the CLI prints them, exit 2)."""
    from rich.console import Console

    if not all_ and region is None:
        raise PipelineError("render --all renders every report; to narrow it, add --region "
                            "and/or --school-year")
    console = Console()
    batch = render_all(region, school_year, formats, executor, scheduler, workers, data_dir,
                       overrides, output_root, params_dir, renderer, build_root, force,
                       console=console)
    print_summary(batch, console)
    return 1 if batch.failed else 0
