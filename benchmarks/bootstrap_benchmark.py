"""What the bootstrap draws cost per report: a region's estimates with 999 and with 9,999 draws.

    python benchmarks/bootstrap_benchmark.py [--region lekstroom] [--school-year 2014-2015]
                                             [--draws 999 9999] [--repeat 3] [--code DIR]
                                             [--label NAME]

The goal (issue 17): 9,999 draws cost no more per report than 999 did before the draws were
vectorised. Each draw count runs in a fresh process (one BLAS thread, as a batch worker has) that
reads and validates the synthetic data once, warms up with one untimed run, then times
`estimate_all` (every comparison of every indicator, the main analysis's bootstraps at the given
draws) and `robustness` (its alternatives at most 999 draws, as in the report) `--repeat` times;
the fastest run counts (the others measure the machine's noise). With `--code` the package of
another checkout is measured (e.g. a git worktree of an earlier commit), so that before and after
run side by side with this script. Printed, and written to
`benchmarks/results/bootstrap_benchmark[_LABEL].json`: seconds per draw count and stage, the
ratio to 999 draws, and the load average.
"""

# ruff: noqa: E402  (the BLAS setting below must precede the numpy import)
from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "benchmarks" / "results"


def measure(code: Path, data: Path, region: str, school_year: str, draws: int,
            repeat: int) -> dict:
    """In this (fresh) process: the fastest of `repeat` runs of each stage."""
    sys.path.insert(0, str(code))
    from evaluation.analysis.estimates import estimate_all
    from evaluation.analysis.robustness import robustness
    from evaluation.data.validation import validate_dir
    from evaluation.params import load_params

    params_dir = code / "params"
    overrides = [f"analysis.bootstrap_draws={draws}"]
    params = load_params(region, school_year, overrides, params_dir)
    tables = validate_dir(data).tables
    es = estimate_all(tables, params, params_dir)       # warm-up (imports, caches)
    times: dict[str, list[float]] = {"estimates": [], "robustness": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        es = estimate_all(tables, params, params_dir)
        t1 = time.perf_counter()
        robustness(tables, region, school_year, params_dir, tuple(overrides))
        t2 = time.perf_counter()
        times["estimates"].append(t1 - t0)
        times["robustness"].append(t2 - t1)
    boot = es.table[es.table["draws"].fillna(0) >= draws]
    return {"draws": draws, **{k: round(min(v), 3) for k, v in times.items()},
            "runs": {k: [round(x, 3) for x in v] for k, v in times.items()},
            "bootstrapped_estimates": int(len(boot))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="lekstroom")
    parser.add_argument("--school-year", default="2014-2015")
    parser.add_argument("--draws", type=int, nargs="+", default=[999, 9999])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--code", default=str(REPO), help="checkout to measure (default: this)")
    parser.add_argument("--label", default="", help="suffix of the results file")
    parser.add_argument("--data", help="synthetic data folder (default: written once)")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    code = Path(args.code).resolve()

    if args.child is not None:
        print(json.dumps(measure(code, Path(args.data), args.region, args.school_year,
                                 args.child, args.repeat)))
        return

    with tempfile.TemporaryDirectory(prefix="bootstrap-benchmark-") as tmp:
        data = Path(args.data) if args.data else Path(tmp) / "data"
        if not args.data:
            sys.path.insert(0, str(code))
            from evaluation.run.pipeline import write_synthetic

            write_synthetic(data, (), code / "params")
        rows = []
        env = {**os.environ, "PYTHONPATH": str(code)}
        for draws in args.draws:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(draws), "--data", str(data),
                 "--region", args.region, "--school-year", args.school_year,
                 "--repeat", str(args.repeat), "--code", str(code)],
                cwd=code, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise SystemExit(f"draws {draws} failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, text=True,
                            capture_output=True).stdout.strip()
    load = os.getloadavg()
    print(f"\n{args.region} {args.school_year}, code {code} at {commit}, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; fastest of {args.repeat} runs")
    print(f"{'draws':>6} {'estimates (s)':>14} {'robustness (s)':>15} {'together (s)':>13} "
          f"{'bootstrapped':>13}")
    base = rows[0]["estimates"] + rows[0]["robustness"]
    for r in rows:
        both = r["estimates"] + r["robustness"]
        r["together"] = round(both, 3)
        r["ratio_to_first"] = round(both / base, 2)
        print(f"{r['draws']:>6} {r['estimates']:>14.2f} {r['robustness']:>15.2f} {both:>13.2f} "
              f"{r['bootstrapped_estimates']:>13}  ({r['ratio_to_first']:.2f}x)")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out_file = RESULTS_DIR / f"bootstrap_benchmark{'_' + args.label if args.label else ''}.json"
    out_file.write_text(json.dumps({
        "region": args.region, "school_year": args.school_year, "code": str(code),
        "commit": commit, "load_average_end": load, "rows": rows,
        "when": time.strftime("%Y-%m-%d %H:%M")}, indent=2))
    print(f"written: {out_file}")


if __name__ == "__main__":
    main()
