"""How the national synthetic set scales: generation, validation, all-region estimates and the
whole `evaluation estimates --all-regions` command at 10,000, 100,000 and 1,000,000 pupils per
school year.

    python benchmarks/national_benchmark.py [--sizes 10000 100000 1000000] [--seed N]
                                            [--out benchmarks/results] [--label NAME]

Each (size, stage) runs in a fresh Python process, so that its peak resident memory
(getrusage ru_maxrss of that process) belongs to that stage alone:

1. generate: `national.national_regions` + `synthetic.generate` (timed: the goal is under two
   minutes for the national set on two cores), then writing the Parquet files and the data
   set's params folder (timed apart).
2. validate: `validation.validate_dir` of the Parquet folder, as every command runs it.
3. estimates: reading the Parquet files (timed apart), then `national.estimates_all_regions`:
   the difference-in-differences of the eight primary indicators for all 42 regions and the
   nation. Its peak memory includes the tables.
4. command: `python -m evaluation estimates --data DIR --all-regions` as a user runs it
   (imports, params, validation, estimates, the printed table); wall seconds from start to exit.
   Goal: under 30 s and 2 GiB on two cores at 1,000,000 pupils, scaling exponent at most 1.0.
   Peak memory: the largest process (`wait4` ru_maxrss, what `/usr/bin/time` reports) and,
   sampled every 0.2 s, the proportional set size (PSS) summed over the command's processes:
   the memory the command holds when worker processes share its pages copy-on-write.

The benchmark measures the `evaluation` package Python imports: run it from another checkout with
`PYTHONPATH=<checkout>` (from inside that checkout) to measure that code the same way.

Printed and written to `benchmarks/results/national_scaling.csv`: wall seconds, peak RSS, pupils
per second (pupils per school year / seconds) and, between consecutive sizes, the scaling
exponent log(t2/t1) / log(n2/n1) (1 = linear) of every stage, the command included. The
machine's load average (1 minute, at the start and the end of each stage) is recorded: other
work on a shared machine slows every stage.
"""

# ruff: noqa: E402  (the BLAS setting below must precede the numpy import)
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one BLAS thread: small fits, and a shared machine

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import pandas as pd

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SIZES = (10_000, 100_000, 1_000_000)
TEMPLATE = ("lekstroom", "2016-2017")  # analysis choices for every region (params defaults)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def worker_generate(pupils: int, seed: int, data_dir: Path) -> dict:
    from evaluation.data.parquet import write_parquet_tables
    from evaluation.data.synthetic import generate
    from evaluation.data.synthetic_national import national_config, national_regions
    from evaluation.params import load_synthetic

    start = time.perf_counter()
    config = national_config(load_synthetic().model_copy(update={"seed": seed}))
    regions = national_regions(seed, pupils)
    tables = generate(regions, config)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    write_parquet_tables(tables, data_dir)
    write_seconds = time.perf_counter() - start
    from evaluation.data.synthetic_national import write_params_dir

    write_params_dir(regions, config, data_dir / "params")  # what the command reads
    return {"stage": "generate", "seconds": seconds, "io_seconds": write_seconds,
            "pupil_years": len(tables["enrolments"]), "schools": len(tables["schools"]),
            "regions": len(regions), "rows": sum(len(t) for t in tables.values()),
            "peak_rss_mb": _peak_rss_mb()}


def worker_estimates(pupils: int, seed: int, data_dir: Path) -> dict:
    from evaluation.data.parquet import read_parquet_tables
    from evaluation.data.synthetic_national import national_regions
    from evaluation.national.estimates import estimates_all_regions
    from evaluation.params import load_params

    start = time.perf_counter()
    tables = read_parquet_tables(data_dir)
    read_seconds = time.perf_counter() - start
    regions = national_regions(seed, pupils)
    template = load_params(*TEMPLATE)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = estimates_all_regions(tables, regions, template, timings=timings)
    seconds = time.perf_counter() - start
    national = out[(out["region"] == "nederland") & (out["indicator"] == "care_reports_per_100")]
    return {"stage": "estimates", "seconds": seconds, "io_seconds": read_seconds,
            "frames_seconds": timings.get("frames"), "models_seconds": timings.get("models"),
            "estimates": int(out["estimate"].notna().sum()), "rows": len(out),
            "pupil_years": len(tables["enrolments"]), "schools": len(tables["schools"]),
            "regions": len(regions),
            "national_care_report_ratio": float(national["estimate"].iloc[0]),
            "peak_rss_mb": _peak_rss_mb()}


def worker_validate(pupils: int, seed: int, data_dir: Path) -> dict:
    from evaluation.data.validation import validate_dir

    start = time.perf_counter()
    result = validate_dir(data_dir)
    seconds = time.perf_counter() - start
    summary = result.summary()
    return {"stage": "validate", "seconds": seconds, "rows": int(summary["read"].sum()),
            "rejected": int(summary["rejected"].sum()), "peak_rss_mb": _peak_rss_mb()}


def _tree_pss_mb(pid: int) -> float:
    """PSS of a process and its descendants (Linux), in MB; 0 where /proc cannot be read."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) / 1024
                    break
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def run_command(data_dir: Path) -> dict:
    """`evaluation estimates --data DIR --all-regions` in a fresh process, as a user runs it."""
    import threading

    cmd = [sys.executable, "-m", "evaluation", "estimates", "--data", str(data_dir),
           "--all-regions"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    peak = [0.0]
    with tempfile.TemporaryFile() as out_file, tempfile.TemporaryFile() as err_file:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out_file, stderr=err_file, env=env)
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.2):
                peak[0] = max(peak[0], _tree_pss_mb(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # wait4: this process's own usage (its largest process), not that of earlier stages
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{err.decode()[-2000:]}")
    lines = out.decode().splitlines()
    return {"stage": "command", "seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_pss_mb": peak[0], "rows": sum(1 for line in lines if line.strip()) - 2}


def _run_worker(stage: str, pupils: int, seed: int, data_dir: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, "--pupils",
           str(pupils), "--seed", str(seed), "--data", str(data_dir)]
    load = os.getloadavg()[0]
    wall = time.perf_counter()
    if stage == "command":
        result = run_command(data_dir)
    else:
        done = subprocess.run(cmd, check=True, capture_output=True, text=True)
        result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(pupils_per_year=pupils, process_seconds=time.perf_counter() - wall,
                  load_average=load, load_average_end=os.getloadavg()[0], cpus=os.cpu_count())
    result["pupils_per_second"] = pupils / result["seconds"]
    return result


def scaling(results: pd.DataFrame) -> pd.DataFrame:
    """The exponent b in seconds ~ pupils^b between consecutive sizes, per stage."""
    rows = []
    for stage, g in results.sort_values("pupils_per_year").groupby("stage", sort=False):
        g = g.reset_index(drop=True)
        for i in range(1, len(g)):
            n0, n1 = g.loc[i - 1, "pupils_per_year"], g.loc[i, "pupils_per_year"]
            t0, t1 = g.loc[i - 1, "seconds"], g.loc[i, "seconds"]
            rows.append({"stage": stage, "from": int(n0), "to": int(n1),
                         "time_ratio": t1 / t0, "exponent": math.log(t1 / t0) / math.log(n1 / n0)})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="pupils per school year (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=20130801)
    parser.add_argument("--out", type=Path, default=RESULTS_DIR)
    parser.add_argument("--label", default="",
                        help="a name for the code measured (before, after), in the CSV file")
    parser.add_argument("--worker", choices=list(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--pupils", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args.pupils, args.seed, args.data)))
        return 0

    results = []
    for pupils in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"national{pupils}_") as tmp:
            for stage in STAGES:
                r = _run_worker(stage, pupils, args.seed, Path(tmp))
                r["code"] = args.label
                results.append(r)
                io = {"generate": "Parquet write", "estimates": "Parquet read"}.get(stage)
                extra = (f"(+{r['io_seconds']:.1f} s {io})" if io else
                         f"(frames/models in estimates; PSS {r['peak_pss_mb']:.0f} MB)"
                         if stage == "command" else "")
                print(f"{pupils:>9,} pupils/year  {stage:<9}  {r['seconds']:7.1f} s  "
                      f"peak RSS {r['peak_rss_mb']:7.0f} MB  "
                      f"{r['pupils_per_second']:>9,.0f} pupils/s  "
                      f"load {r['load_average']:.1f}-{r['load_average_end']:.1f}  {extra}",
                      flush=True)
    frame = pd.DataFrame(results)
    cols = ["code", "pupils_per_year", "stage", "seconds", "peak_rss_mb", "peak_pss_mb",
            "pupils_per_second", "io_seconds", "frames_seconds", "models_seconds", "pupil_years",
            "schools", "regions", "rows", "rejected", "estimates", "national_care_report_ratio",
            "process_seconds", "load_average", "load_average_end", "cpus"]
    frame = frame[[c for c in cols if c in frame.columns]]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "national_scaling.csv"
    exps = scaling(frame)
    if not exps.empty:
        print("\nScaling exponent (seconds ~ pupils^b; 1 = linear):")
        print(exps.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        command = exps[exps["stage"] == "command"]
        if not command.empty:
            whole = scaling(frame[frame["pupils_per_year"].isin(
                [frame["pupils_per_year"].min(), frame["pupils_per_year"].max()])])
            b = whole.loc[whole["stage"] == "command", "exponent"].iloc[0]
            print(f"\ncommand (evaluation estimates --all-regions), "
                  f"{frame['pupils_per_year'].min():,} to {frame['pupils_per_year'].max():,} "
                  f"pupils: exponent {b:.2f} (goal: at most 1.0)")
        frame = frame.merge(exps.rename(columns={"to": "pupils_per_year",
                                                 "exponent": "exponent_from_previous"})
                            [["stage", "pupils_per_year", "exponent_from_previous"]],
                            on=["stage", "pupils_per_year"], how="left")
    frame.to_csv(path, index=False)
    print(f"\nwritten: {path}")
    return 0


WORKERS = {"generate": worker_generate, "validate": worker_validate,
           "estimates": worker_estimates}
STAGES = ("generate", "validate", "estimates", "command")


if __name__ == "__main__":
    sys.exit(main())
