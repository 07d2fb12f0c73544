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
A worker of the local pool runs its reports' notebooks in its own IPython shell
(`inprocess.InProcessSession`: its imports, validated data and estimate frames serve them
too), and is forked from a fork server that imported and warmed that shell once
(`preload`; spawned where there is no fork server); the serial and Dask executors keep one
warmed IPython kernel per worker (`KernelSession`). Start-up and imports are paid once per
run or per worker, not once per notebook.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluation.data.reading import DataSetError
from evaluation.params import (
    DEFAULT_PARAMS_DIR,
    load_regions,
    load_synthetic,
)
from evaluation.run.executors import (
    EXECUTORS,
    Context,
    Event,
    ExecOptions,
    Job,
    TaskResult,
    start_pool_server,
)
from evaluation.run.manifest import (
    fingerprint,
    is_current,
    package_hash,
    read_manifest,
    shared_inputs,
)
from evaluation.run.pipeline import (
    PipelineError,
    cached_validate_dir,
    sharing_validated,
    write_synthetic,
)
from evaluation.run.plan import Task, _cached_last_school_year, last_school_year, plan
from evaluation.run.sources import DEFAULT_SOURCES, Sources

LOCK_FILE = ".render-all.lock"
SYNTHETIC_DIR = "synthetic-data"


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


def longest_first(jobs: list[Job], output_root: Path) -> list[Job]:
    """The jobs in the order a pool finishes soonest: the longest first (the time of the last
    render, from its manifest), so that no long report starts last while the other workers
    idle. Without a last time a report counts as long: a region's (more schools, more
    comparisons) before a municipality's, and among municipalities the one with more of the
    region's schools; otherwise the plan's order."""
    def expected(job: Job) -> tuple[float, float]:
        manifest = read_manifest(output_root / job.task.key) or {}
        seconds = manifest.get("seconds")
        if isinstance(seconds, int | float) and seconds > 0:
            return (0.0, -float(seconds))
        params = job.task.params
        if params is None or params.municipality is None:
            return (-2.0, 0.0)
        own = sum(s.municipality == params.municipality for s in params.region.schools)
        return (-1.0, -float(own))

    return sorted(jobs, key=expected)  # stable: ties keep the plan's order


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
    from evaluation.report.site import write_index

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
            if executor == "local":  # its workers warm up while this process validates the data
                start_pool_server()
            try:  # unreadable data fails the run once, not every report
                cached_validate_dir(data)
            except DataSetError as exc:
                raise PipelineError(str(exc)) from None
            n = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
            jobs = longest_first(jobs, output_root)
            # The workers (and their kernels) read the validated data instead of validating
            # it again (not on a cluster: its workers may not see this build folder).
            sharing = (sharing_validated(data, build_root) if executor == "local"
                       else contextlib.nullcontext())
            with sharing, _Display(len(tasks), len(results), console, progress) as display:
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
