"""How much faster `render --all` is than rendering report by report, measured.

    python benchmarks/render_benchmark.py --reports 4 [--workers 2] [--format html --format pdf]
                                          [--naive-estimates notebook|once] [--skip-naive]

Renders the first N reports of the plan three ways, each phase in a fresh Python process:

1. naive: a loop over the reports; per report the papermill command line once per notebook
   (`python -m papermill`, a new kernel each time), then the renderer. With
   `--naive-estimates notebook` (the default) each notebook computes the estimates it shows
   itself, as a notebook run on its own does; with `once` the loop computes them once per report
   first and passes the file, as `render_report` did before the batch existed.
2. batch cold: `batch.render_all` into an empty output and build folder (worker pool, one warm
   kernel per worker, nothing cached).
3. batch warm: the same again with nothing changed (every report cached): the time a user waits
   for "nothing to do", interpreter start-up included.

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


# --- phases (each runs in its own process) -----------------------------------------------------

def _tasks(args: argparse.Namespace):
    from evaluation.run.plan import last_school_year, plan

    return plan(last_school_year(Path(args.data)), formats=args.formats)[: args.reports]


def phase_naive(args: argparse.Namespace) -> None:
    """The loop a user would write without the batch: papermill per notebook, then render."""
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
            estimates = str(compute_estimates(build, params, tables, REPO / "params"))
        for source in sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb")):
            cmd = [sys.executable, "-m", "papermill", str(source),
                   str(build / "notebooks" / source.name), "--cwd", str(build / "notebooks"),
                   "-p", "region", task.region, "-p", "school_year", task.school_year,
                   "-p", "data_dir", str(Path(args.data).resolve()),
                   "-p", "municipality", task.municipality or "",
                   "-p", "estimates_file", estimates,
                   "-p", "tables_dir", str(build / "tables")]
            subprocess.run(cmd, check=True, capture_output=True)
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
    print(json.dumps({"done": result.count("done"), "cached": result.count("cached")}),
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
        estimates[task.key] = compute_estimates(build, task.params, tables, REPO / "params")

    def papermill_notebooks(build, params, est) -> None:
        for source in sorted((REPO / "notebooks").glob("[0-9][0-9]-*.ipynb")):
            pm.execute_notebook(str(source), str(build / "notebooks" / source.name), parameters={
                "region": params.region.id, "school_year": params.school_year,
                "data_dir": str(data), "params_dir": str(REPO / "params"),
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
                execute_notebooks(build, task.params, data, [], REPO / "params", lambda _m: None,
                                  estimates[task.key], session)
        timings[mode] = round(time.perf_counter() - started, 1)
        if session is not None:
            session.close()
    print(json.dumps({"notebook_seconds": timings, "reports": len(tasks)}), file=sys.stderr)


PHASES = {"naive": phase_naive, "batch": phase_batch, "kernels": phase_kernels}


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
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
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
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.formats = args.formats or ["html", "pdf"]
    sys.path.insert(0, str(REPO))

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
        cold = measure("batch", args, work / "batch")
        rows.append({**cold, "phase": "batch cold"})
        print(rows[-1], flush=True)
        warm = measure("batch", args, work / "batch")
        rows.append({**warm, "phase": "batch warm"})
        print(rows[-1], flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    base = rows[0]["wall_s"] if not args.skip_naive else None
    print(f"\n{args.reports} reports ({', '.join(args.formats)}), {args.workers} worker(s), "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; naive estimates: "
          f"{args.naive_estimates}")
    print(f"{'phase':<12} {'wall (s)':>9} {'peak tree RSS (MB)':>19} {'largest process (MB)':>21}"
          f" {'speed-up':>9}")
    for row in rows:
        ratio = f"{base / row['wall_s']:.1f}x" if base else ""
        row["speedup_vs_naive"] = round(base / row["wall_s"], 2) if base else None
        print(f"{row['phase']:<12} {row['wall_s']:>9.1f} {row['peak_tree_rss_mb']:>19} "
              f"{row['max_single_rss_mb']:>21} {ratio:>9}")
    results = RESULTS_DIR / (f"render_benchmark_{args.reports}reports_{args.workers}workers_"
                             f"{'skip' if args.skip_naive else args.naive_estimates}.json")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps({
        "reports": args.reports, "formats": args.formats, "workers": args.workers,
        "cores": os.cpu_count(), "naive_estimates": args.naive_estimates,
        "load_average_end": os.getloadavg(), "phases": rows,
        "when": time.strftime("%Y-%m-%d %H:%M"),
    }, indent=2))


if __name__ == "__main__":
    main()
