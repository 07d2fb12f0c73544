"""Time the robustness run of one region and school year (goal: under 60 s on 2 cores).

    python benchmarks/robustness_benchmark.py [--region lekstroom] [--school-year 2014-2015]

Prints wall time, CPU time, peak memory and the number of specifications; measures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from evaluation.analysis.robustness import robustness
from evaluation.report.notebook import setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--region", default="lekstroom")
    parser.add_argument("--school-year", default="2014-2015")
    args = parser.parse_args()
    run = setup(args.region, args.school_year)
    wall, cpu = time.perf_counter(), time.process_time()
    table = robustness(run.data.tables, args.region, args.school_year, run.params_dir)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"robustness {args.region} {args.school_year}: {len(table)} specifications x "
          f"indicators, wall {wall:.1f} s, cpu {cpu:.1f} s, peak RSS {peak:.0f} MiB, "
          f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
