"""Run: making reports, one or all of them.

The project files a report is made from (`sources`), one report's pipeline: params, estimates,
notebooks executed in a warm kernel, rendering, audit and atomic publication (`pipeline`); and
`render --all`: the plan of every report params declare (`plan`), the manifest that makes a
second run do only what changed (`manifest`), the executors that run tasks in parallel locally or
on a Dask cluster (`executors`) and the run as a whole with its progress and summary (`batch`).

May import: every stage below it (params, registry, labels, data, analysis, report) and this
subpackage; never national or the command line.
"""
