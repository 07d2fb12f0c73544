"""Where the tasks of a batch run: a registry of executors (`EXECUTORS`).

"local" (a pool of worker processes, one per core by default), "serial" (in this process; for
debugging) and "dask" (a dask.distributed cluster whose workers read the data from shared storage).
A worker of the local pool runs its reports' notebooks in its own IPython shell
(`inprocess.InProcessSession`: its imports, validated data and estimate frames serve them
too), and is forked from a fork server that imported and warmed that shell once
(`preload`; spawned where there is no fork server); the serial and Dask executors keep one
warmed IPython kernel per worker (`KernelSession`). Start-up and imports are paid once per
run or per worker, not once per notebook.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluation.data.reading import DataSetError
from evaluation.params import (
    ParamsError,
    load_params,
)
from evaluation.run.inprocess import InProcessSession
from evaluation.run.manifest import write_manifest
from evaluation.run.pipeline import (
    KernelSession,
    PipelineError,
    build_report,
    cached_report_data,
    publish,
)
from evaluation.run.plan import Task
from evaluation.run.sources import DEFAULT_SOURCES, OUTPUT_NAMES, Sources

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
    stages: dict[str, float] = field(default_factory=dict)  # wall time per step of the report


class TaskFailed(RuntimeError):
    """Raised on a cluster so that the scheduler retries the task once."""


_local = threading.local()  # per worker thread: its kernel and where to send progress
_events: Any = None  # the local pool's queue of (task key, step) messages


_in_process = False  # a local pool worker: its notebooks run in its own process


def _session(log_dir: Path) -> KernelSession | InProcessSession:
    """This worker's notebook session: in a local pool worker the notebooks run in the worker
    itself (its imports, data and memoised frames serve them too; no second process per
    worker); elsewhere (this process, a Dask thread) in a kernel of their own."""
    if getattr(_local, "session", None) is None:
        if _in_process:
            _local.session = InProcessSession()
        else:
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
    data_seconds = time.time() - started
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
                      outputs={k: str(v) for k, v in placed.items()},
                      stages={"data": round(data_seconds, 3), **built.seconds})


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


def _init_worker(queue: Any, environ: dict[str, str] | None = None,
                 one_blas_thread: bool = False) -> None:
    """Pool worker start: take the environment of the run (a worker forked from the fork server
    has the server's, from when it started), remember the progress queue, run the notebooks in
    this process (unless EVALUATION_NOTEBOOKS=kernel), and close the session when the worker ends
    (multiprocessing skips atexit in its workers; Finalize runs)."""
    from multiprocessing.util import Finalize

    global _events, _in_process
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if one_blas_thread:  # BLAS read its thread count when the fork server imported numpy
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1)
    _events = queue
    _in_process = os.environ.get("EVALUATION_NOTEBOOKS") != "kernel"
    Finalize(None, close_session, exitpriority=10)


PRELOAD = "evaluation.run.preload"  # what the fork server imports (and so warms) once
_server_failed = False  # the fork server could not start here: spawn


def pool_context() -> Any:
    """The start method of the local pool's workers: forked from a fork server that imported and
    warmed the worker's shell once (`preload`), where the platform has one and
    EVALUATION_FORKSERVER is not 0; otherwise spawned, each importing and warming itself. Never a
    plain fork of this process, which may hold threads (rich's display, ZeroMQ)."""
    import multiprocessing

    if (os.environ.get("EVALUATION_FORKSERVER") != "0" and not _server_failed
            and "forkserver" in multiprocessing.get_all_start_methods()):
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload([PRELOAD])  # takes effect when the server starts
        return context
    return multiprocessing.get_context("spawn")


def start_pool_server() -> None:
    """Start the fork server now, so that it warms up while this process still plans and
    validates; the pool's workers are then forked from it warm. Nothing to do for spawn, or
    when the server runs already; where it cannot start (no Unix sockets, say) the pool spawns."""
    global _server_failed

    context = pool_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        try:
            forkserver.ensure_running()
        except OSError:
            _server_failed = True


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
    import queue as queue_mod
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    mp = pool_context()
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
                initargs=(events, dict(os.environ), options.workers > 1)) as pool:
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
