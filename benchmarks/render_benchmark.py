"""How much faster `render --all` is than rendering report by report, and how close it comes
to the floor, measured.

    python benchmarks/render_benchmark.py --reports 4 [--workers 2] [--format html --format pdf]
                                          [--naive-estimates notebook|once] [--skip-naive]
                                          [--code DIR] [--label NAME]

Renders the first N reports of the plan in these phases, each in a fresh Python process:

1. naive: a loop over the reports; per report the papermill command line once per notebook
   (`python -m papermill`, a new kernel each time; the captions each notebook computed written
   into its cells, as the pipeline does), then the renderer. No workbook and no audit: the batch
   makes both, so this favours the loop. With `--naive-estimates notebook` (the default) each
   notebook computes the estimates it shows itself, as a notebook run on its own does; with
   `once` the loop computes them once per report first and passes the file.
2. floor: the pure work of the N reports in one warm process (package imported, data validated,
   the notebooks' IPython shell (or, for code before it, a kernel) started and warmed, one report
   made untimed first), every step of every report
   timed; the floor is their sum divided by the workers: what a batch would take with no
   start-up, no waiting and perfect balance. Printed with the breakdown per step and notebook.
3. batch cold: `batch.render_all` into an empty output and build folder (worker pool, one warm
   kernel per worker, nothing cached).
4. batch warm: the same again with nothing changed (every report cached): the time a user waits
   for "nothing to do", interpreter start-up included.

The goals (issue 17): batch cold at least 10 times faster than naive and at most 1.5 times the
floor. `--code DIR` measures the package, notebooks and params of another checkout (a git
worktree of an earlier commit) with this same script, so that before and after run side by
side; `--label` names the results file.

`--kernels` measures instead where the batch saves on notebooks: the notebooks of the N reports
run by papermill (a new kernel per notebook), in one reused kernel, and in one reused kernel
warmed once (package imported, data and estimate frames memoised).

Wall time is measured around each phase's process. Peak memory is the largest sum of the resident
memory of the phase's process tree (psutil, sampled every 0.2 s), and the largest single process
as the kernel reports it (getrusage ru_maxrss of self and children). Results are printed and
written to `benchmarks/results/render_benchmark_*.json`. The load average of the machine is
recorded too: other work on the machine slows every phase.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"
# The checkout whose package, notebooks and params are measured (--code: e.g. a worktree of an
# earlier commit, to measure before and after side by side with this same script).
CODE = Path(os.environ.get("RENDER_BENCHMARK_CODE", REPO)).resolve()


# --- phases (each runs in its own process) -----------------------------------------------------

def _tasks(args: argparse.Namespace):
    from evaluation.run.plan import last_school_year, plan

    return plan(last_school_year(Path(args.data)), formats=args.formats)[: args.reports]


def phase_naive(args: argparse.Namespace) -> None:
    """The loop a user would write without the batch: papermill per notebook, then render (no
    workbook and no publication audit: the batch does both, so this favours the loop)."""
    from evaluation.report.figure_text import apply_output_text
    from evaluation.report.rendering import render
    from evaluation.run.pipeline import (
        DOCUMENT,
        compute_estimates,
        prepare_build_dir,
        publish,
        report_dir,
    )

    root = Path(args.root)
    tables = None
    for task in _tasks(args):
        params = task.params
        build = report_dir(root / "build", params).resolve()
        prepare_build_dir(build, params)
        estimates = ""
        if args.naive_estimates == "once":
            from evaluation.data.validation import validate_dir

            tables = tables or validate_dir(Path(args.data)).tables
            estimates = str(compute_estimates(build, params, tables, CODE / "params"))
        for source in sorted((CODE / "notebooks").glob("[0-9][0-9]-*.ipynb")):
            cmd = [sys.executable, "-m", "papermill", str(source),
                   str(build / "notebooks" / source.name), "--cwd", str(build / "notebooks"),
                   "-p", "region", task.region, "-p", "school_year", task.school_year,
                   "-p", "data_dir", str(Path(args.data).resolve()),
                   "-p", "municipality", task.municipality or "",
                   "-p", "estimates_file", estimates,
                   "-p", "tables_dir", str(build / "tables")]
            subprocess.run(cmd, check=True, capture_output=True)
            # The captions the notebook computed, into its cells (else nothing is numbered).
            apply_output_text(build / "notebooks" / source.name)
        result = render(build / "reports" / f"{DOCUMENT}.qmd", formats=list(task.formats),
                        out_dir=build / "_render", prefer="builtin")
        publish(result.outputs, report_dir(root / "output", params))


def phase_batch(args: argparse.Namespace) -> None:
    """`render --all` on the first N reports of the plan."""
    from evaluation.run.batch import render_all

    root = Path(args.root)
    keys = {t.key for t in _tasks(args)}
    result = render_all(formats=args.formats, workers=args.workers, data_dir=Path(args.data),
                        output_root=root / "output", build_root=root / "build",
                        renderer="builtin", select=lambda t: t.key in keys, progress=False)
    failed = result.failed
    if failed:
        raise SystemExit(f"{len(failed)} report(s) failed: {failed[0].error}")
    stages: dict[str, float] = {}
    for r in result.results:
        for stage, seconds in getattr(r, "stages", {}).items():
            stages[stage] = round(stages.get(stage, 0.0) + seconds, 2)
    print(json.dumps({"done": result.count("done"), "cached": result.count("cached"),
                      "stage_seconds": stages}), file=sys.stderr)


def phase_floor(args: argparse.Namespace) -> None:
    """The pure work of the N reports, measured in one warm process: the package imported, the
    data read and validated, one kernel started and warmed, and one report made untimed first
    (lazy imports, memoised narrowing). Then every report's steps are timed: narrowing the
    data, estimates, each notebook, rendering, workbook, audit, publishing."""
    from evaluation.run.executors import Context, Job, render_task
    from evaluation.run.manifest import fingerprint, shared_inputs
    from evaluation.run.pipeline import KernelSession, cached_validate_dir

    root, data = Path(args.root), Path(args.data).resolve()
    tasks = _tasks(args)
    started = time.perf_counter()
    # All of each report's work in this one process: no robustness analysis ahead in a child
    # (it would run on the other core and leave the floor short of the work).
    os.environ["EVALUATION_AHEAD"] = "0"
    cached_validate_dir(data)
    try:  # where the batch's workers run the notebooks in their own process, so does the floor
        from evaluation.run.inprocess import InProcessSession

        session = InProcessSession()
    except ImportError:  # code from before that: a warm kernel
        session = KernelSession(warm=True)
    (getattr(session, "start", None) or session._start)()
    params_dir = (CODE / "params").resolve()
    ctx = Context(data, params_dir, (), root / "output", root / "build", "builtin")
    warm_ctx = Context(data, params_dir, (), root / "warm-output", root / "warm-build", "builtin")
    shared = shared_inputs(data, "builtin", ctx.sources)

    def job(task, context=ctx):
        return Job(task, context, fingerprint(task, shared))

    render_task(job(tasks[0], warm_ctx), session, lambda _m: None)
    warm_up = time.perf_counter() - started
    per_report = []
    for task in tasks:
        t0 = time.perf_counter()
        result = render_task(job(task), session, lambda _m: None)
        per_report.append({"report": task.key, "seconds": round(time.perf_counter() - t0, 2),
                           "stages": getattr(result, "stages", {})})
    session.close()
    total = sum(r["seconds"] for r in per_report)
    print(json.dumps({"warm_up_s": round(warm_up, 1), "reports": per_report,
                      "work_s": round(total, 2), "floor_s": round(total / args.workers, 2)}),
          file=sys.stderr)


def phase_kernels(args: argparse.Namespace) -> None:
    """Only the notebooks of the first N reports, three ways: papermill (a new kernel per
    notebook), one reused kernel, one reused and warmed kernel (`pipeline.warm_kernel`). The
    estimates are computed beforehand and not timed."""
    import papermill as pm

    from evaluation.data.validation import validate_dir
    from evaluation.run.pipeline import (
        KernelSession,
        compute_estimates,
        execute_notebooks,
        prepare_build_dir,
        report_dir,
    )

    root, data = Path(args.root), Path(args.data).resolve()
    tables = validate_dir(data).tables
    tasks = _tasks(args)
    estimates = {}
    for task in tasks:
        build = report_dir(root / "estimates", task.params).resolve()
        build.mkdir(parents=True)
        estimates[task.key] = compute_estimates(build, task.params, tables, CODE / "params")

    def papermill_notebooks(build, params, est) -> None:
        for source in sorted((CODE / "notebooks").glob("[0-9][0-9]-*.ipynb")):
            pm.execute_notebook(str(source), str(build / "notebooks" / source.name), parameters={
                "region": params.region.id, "school_year": params.school_year,
                "data_dir": str(data), "params_dir": str(CODE / "params"),
                "estimates_file": str(est), "municipality": params.municipality or "",
                "tables_dir": str(build / "tables")}, cwd=str(build / "notebooks"),
                progress_bar=False, log_output=False)

    timings = {}
    for mode in ("papermill", "reused", "reused+warm"):
        session = None if mode == "papermill" else KernelSession(warm=mode == "reused+warm")
        started = time.perf_counter()
        for task in tasks:
            build = report_dir(root / mode, task.params).resolve()
            prepare_build_dir(build, task.params)
            if session is None:
                papermill_notebooks(build, task.params, estimates[task.key])
            else:
                execute_notebooks(build, task.params, data, [], CODE / "params", lambda _m: None,
                                  estimates[task.key], session)
        timings[mode] = round(time.perf_counter() - started, 1)
        if session is not None:
            session.close()
    print(json.dumps({"notebook_seconds": timings, "reports": len(tasks)}), file=sys.stderr)


PHASES = {"naive": phase_naive, "batch": phase_batch, "kernels": phase_kernels,
          "floor": phase_floor}


# --- measuring ---------------------------------------------------------------------------------

def _tree_rss(pid: int) -> int:
    import psutil

    try:
        proc = psutil.Process(pid)
        procs = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(phase: str, args: argparse.Namespace, root: Path) -> dict:
    """Run one phase in a fresh process; wall time and peak memory."""
    cmd = [sys.executable, __file__, "--phase", phase, "--root", str(root), "--data", args.data,
           "--reports", str(args.reports), "--workers", str(args.workers),
           "--naive-estimates", args.naive_estimates, *(["--kernels"] if args.kernels else []),
           *[x for f in args.formats for x in ("--format", f)]]
    peak = [0]
    started = time.perf_counter()
    env = {**os.environ, "RENDER_BENCHMARK_CODE": str(CODE),
           "PYTHONPATH": os.pathsep.join([str(CODE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, cwd=CODE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    stop = threading.Event()

    def sample() -> None:
        try:
            import psutil  # noqa: F401
        except ImportError:
            return
        while not stop.is_set():
            peak[0] = max(peak[0], _tree_rss(proc.pid))
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - started
    stop.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"phase {phase} failed (exit {proc.returncode}):\n{err[-3000:]}")
    usage = json.loads(out.strip().splitlines()[-1])
    detail = [line for line in err.splitlines() if line.startswith("{")]
    return {"phase": phase, "wall_s": round(wall, 2), "peak_tree_rss_mb": round(peak[0] / 1e6),
            "max_single_rss_mb": usage["max_single_rss_mb"],
            "detail": json.loads(detail[-1]) if detail else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=int, default=4, help="number of reports (default 4)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--format", dest="formats", action="append",
                        choices=["html", "pdf"], help="default: html and pdf")
    parser.add_argument("--naive-estimates", choices=["notebook", "once"], default="notebook")
    parser.add_argument("--skip-naive", action="store_true", help="only the batch phases")
    parser.add_argument("--kernels", action="store_true",
                        help="instead: time only the notebooks, papermill against reused kernels")
    parser.add_argument("--data", help="data folder (default: the synthetic data, written once)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    parser.add_argument("--code", help="measure the package, notebooks and params of this checkout "
                        "(e.g. a git worktree of an earlier commit; default: this one)")
    parser.add_argument("--label", default="", help="suffix of the results file (e.g. before)")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.formats = args.formats or ["html", "pdf"]
    global CODE
    if args.code:
        CODE = Path(args.code).resolve()
        os.environ["RENDER_BENCHMARK_CODE"] = str(CODE)
    sys.path.insert(0, str(CODE))

    if args.phase:  # inside a measured process
        PHASES[args.phase](args)
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        print(json.dumps({"max_single_rss_mb": round(max(self_rss, child_rss) / 1024)}))
        return

    work = Path(tempfile.mkdtemp(prefix="render-benchmark-"))
    try:
        if args.data is None:
            from evaluation.run.pipeline import write_synthetic

            args.data = str(work / "data")
            write_synthetic(Path(args.data))
        if args.kernels:
            row = measure("kernels", args, work / "kernels")
            print(row["detail"], flush=True)
            return
        rows = []
        if not args.skip_naive:
            rows.append(measure("naive", args, work / "naive"))
            print(rows[-1], flush=True)
        rows.append(measure("floor", args, work / "floor"))
        print(rows[-1], flush=True)
        cold = measure("batch", args, work / "batch")
        rows.append({**cold, "phase": "batch cold"})
        print(rows[-1], flush=True)
        warm = measure("batch", args, work / "batch")
        rows.append({**warm, "phase": "batch warm"})
        print(rows[-1], flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    report(args, rows)


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=CODE, text=True,
                              capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def report(args: argparse.Namespace, rows: list[dict]) -> None:
    """Print the phases, the floor with its breakdown per stage, and the two ratios; write the
    JSON results."""
    by = {r["phase"]: r for r in rows}
    base = by["naive"]["wall_s"] if "naive" in by else None
    floor = by["floor"]["detail"]
    floor_s = floor["floor_s"]
    cold_s = by["batch cold"]["wall_s"]
    load = os.getloadavg()
    print(f"\n{args.reports} reports ({', '.join(args.formats)}), {args.workers} worker(s), "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; "
          f"naive estimates: {args.naive_estimates}; code {CODE} at {_commit()}")
    print(f"{'phase':<12} {'wall (s)':>9} {'peak tree RSS (MB)':>19} {'largest process (MB)':>21}"
          f" {'speed-up':>9}")
    for row in rows:  # the floor phase is a measurement (warm-up and reports in a row), no run
        timed = base and row["phase"] != "floor"
        ratio = f"{base / row['wall_s']:.1f}x" if timed else ""
        row["speedup_vs_naive"] = round(base / row["wall_s"], 2) if timed else None
        print(f"{row['phase']:<12} {row['wall_s']:>9.1f} {row['peak_tree_rss_mb']:>19} "
              f"{row['max_single_rss_mb']:>21} {ratio:>9}")
    stages: dict[str, float] = {}
    for rep in floor["reports"]:
        for stage, sec in rep["stages"].items():
            if not stage.startswith("notebook "):
                stages[stage] = stages.get(stage, 0.0) + sec
    notebooks: dict[str, float] = {}
    for rep in floor["reports"]:
        for stage, sec in rep["stages"].items():
            if stage.startswith("notebook "):
                notebooks[stage[9:]] = notebooks.get(stage[9:], 0.0) + sec
    print(f"\nfloor: {floor['work_s']:.1f} s of pure work for {len(floor['reports'])} reports in "
          f"one warm process / {args.workers} workers = {floor_s:.1f} s "
          f"(warm-up, not counted: {floor['warm_up_s']:.1f} s)")
    for rep in floor["reports"]:
        print(f"  {rep['report']:<32} {rep['seconds']:6.1f} s")
    print("  per stage, summed over the reports: "
          + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items()))
    print("  notebooks: " + ", ".join(f"{k} {v:.1f}" for k, v in notebooks.items()))
    print(f"batch cold / floor: {cold_s / floor_s:.2f}x (goal at most 1.5x)")
    if base:
        print(f"naive / batch cold: {base / cold_s:.2f}x (goal at least 10x)")
    results = RESULTS_DIR / (f"render_benchmark_{args.reports}reports_{args.workers}workers_"
                             f"{'skip' if args.skip_naive else args.naive_estimates}"
                             f"{'_' + args.label if args.label else ''}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({
        "reports": args.reports, "formats": args.formats, "workers": args.workers,
        "cores": os.cpu_count(), "naive_estimates": args.naive_estimates,
        "code": str(CODE), "commit": _commit(), "load_average_end": load, "phases": rows,
        "floor_s": floor_s, "stage_seconds": stages, "notebook_seconds": notebooks,
        "cold_over_floor": round(cold_s / floor_s, 2),
        "naive_over_cold": round(base / cold_s, 2) if base else None,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }, indent=2))
    print(f"written: {results}")


if __name__ == "__main__":
    main()
