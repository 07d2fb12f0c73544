"""How the national synthetic set scales: generation and all-region estimates at 10,000, 100,000
and 1,000,000 pupils per school year.

    python benchmarks/national_benchmark.py [--sizes 10000 100000 1000000] [--seed N]
                                            [--out benchmarks/results]

Each (size, stage) runs in a fresh Python process, so that its peak resident memory
(getrusage ru_maxrss of that process) belongs to that stage alone:

1. generate: `national.national_regions` + `synthetic.generate` (timed: the goal is under two
   minutes for the national set on two cores), then writing the Parquet files (timed apart).
2. estimates: reading the Parquet files (timed apart), then `national.estimates_all_regions`:
   the difference-in-differences of the eight primary indicators for all 42 regions and the
   nation (goal: under 60 s and 4 GiB at national scale). Its peak memory includes the tables.

Printed and written to `benchmarks/results/national_scaling.csv`: wall seconds, peak RSS, pupils
per second (pupils per school year / seconds) and, between consecutive sizes, the scaling
exponent log(t2/t1) / log(n2/n1) (1 = linear). The machine's load average is recorded: other
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


def _run_worker(stage: str, pupils: int, seed: int, data_dir: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", stage, "--pupils",
           str(pupils), "--seed", str(seed), "--data", str(data_dir)]
    load = os.getloadavg()[0]
    wall = time.perf_counter()
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(pupils_per_year=pupils, process_seconds=time.perf_counter() - wall,
                  load_average=load, cpus=os.cpu_count())
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
    parser.add_argument("--worker", choices=["generate", "estimates"], help=argparse.SUPPRESS)
    parser.add_argument("--pupils", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        fn = worker_generate if args.worker == "generate" else worker_estimates
        print(json.dumps(fn(args.pupils, args.seed, args.data)))
        return 0

    results = []
    for pupils in args.sizes:
        with tempfile.TemporaryDirectory(prefix=f"national{pupils}_") as tmp:
            for stage in ("generate", "estimates"):
                r = _run_worker(stage, pupils, args.seed, Path(tmp))
                results.append(r)
                print(f"{pupils:>9,} pupils/year  {stage:<9}  {r['seconds']:7.1f} s  "
                      f"(+{r['io_seconds']:.1f} s Parquet {'write' if stage == 'generate' else 'read'})"
                      f"  peak RSS {r['peak_rss_mb']:7.0f} MB  "
                      f"{r['pupils_per_second']:>9,.0f} pupils/s  load {r['load_average']:.1f}",
                      flush=True)
    frame = pd.DataFrame(results)
    cols = ["pupils_per_year", "stage", "seconds", "peak_rss_mb", "pupils_per_second",
            "io_seconds", "frames_seconds", "models_seconds", "pupil_years", "schools",
            "regions", "rows", "estimates", "national_care_report_ratio", "process_seconds",
            "load_average", "cpus"]
    frame = frame[[c for c in cols if c in frame.columns]]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "national_scaling.csv"
    frame.to_csv(path, index=False)
    exps = scaling(frame)
    if not exps.empty:
        print("\nScaling exponent (seconds ~ pupils^b; 1 = linear):")
        print(exps.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"\nwritten: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
