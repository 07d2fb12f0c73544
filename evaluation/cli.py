"""The `evaluation` command line: a thin layer over the package's Python API."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evaluation.data.reading import DataSetError
from evaluation.params import DEFAULT_PARAMS_DIR, ParamsError

SET_HELP = ("override a parameter for this run, as key=value with dotted keys for nested ones "
            "(for example --set analysis.alpha=0.01); repeatable; checked like the params files")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=SET_HELP)
    p.add_argument("--params-dir", type=Path, default=DEFAULT_PARAMS_DIR,
                   help="folder with defaults.yml and one YAML file per region (default: "
                        "%(default)s, or DIR/params when --data DIR carries its own params)")


def _add_run(p: argparse.ArgumentParser, data: bool = True) -> None:
    """The arguments that name one run: region, school year and, optionally, data and unit."""
    p.add_argument("--region", required=True, help="region id, the name of its params file")
    p.add_argument("--school-year", required=True, help="school year, as 2014-2015")
    if data:
        p.add_argument("--data", type=Path,
                       help="folder with the CSV files (default: the synthetic data)")
        p.add_argument("--municipality",
                       help="one municipality of the region (CBS code or name); pupils are counted "
                            "by school location or residence as analysis.count_by says")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluation",
        description="Evaluate youth care in secondary schools and render whitepapers per region "
                    "and school year.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="make or describe the embedded synthetic data",
                          description="Make or describe the synthetic data set.")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    syn = dsub.add_parser(
        "synthetic", help="write the synthetic data set as CSV files",
        description="Write a realistic synthetic data set for every region in params/ (one CSV "
                    "file per table, plus data_dictionary.csv). The same seed gives the same "
                    "data; the planted effects are in the params under synthetic.effects.")
    syn.add_argument("--out", type=Path, required=True, help="folder to write the CSV files to")
    syn.add_argument("--seed", type=int, help="random seed (default: synthetic.seed in params)")
    syn.add_argument("--scale", help="national (about 1,000,000 pupils a school year in 42 "
                     "regions) or a number of pupils per school year (at least 10000); default: "
                     "the regions in params/")
    syn.add_argument("--format", choices=["csv", "parquet"], default="csv",
                     help="file format of the tables (default: %(default)s)")
    _add_common(syn)
    truth = dsub.add_parser(
        "truth", help="print the effects planted in the synthetic data, as JSON",
        description="Print the effects the synthetic generator plants (the known truth that the "
                    "estimators must recover), as JSON.")
    truth.add_argument("--seed", type=int, help="random seed (default: synthetic.seed in params)")
    _add_common(truth)

    val = sub.add_parser(
        "validate", help="check a data folder and list every problem",
        description="Check every table in a data folder against the data model: types, allowed "
                    "values, date order and keys. Prints each problem with file, row and field; "
                    "exits with status 1 if any row would be rejected.")
    val.add_argument("data_dir", type=Path, metavar="DIR", help="folder with the CSV files")
    val.add_argument("--max-problems", type=int, default=1000,
                     help="print at most this many problems (default: %(default)s)")
    val.add_argument("--problems-csv", type=Path, help="also write every problem to this CSV file")

    par = sub.add_parser(
        "params", help="print the merged, validated parameters of a run",
        description="Merge defaults.yml, the region's file and --set overrides, validate them and "
                    "print the result as YAML.")
    _add_run(par, data=False)
    _add_common(par)

    est = sub.add_parser(
        "estimates", help="print every estimate of a region and school year",
        description="Compute every indicator the pilot claims to move, for each comparison "
                    "(before/after, difference-in-differences, event study, interrupted time "
                    "series): estimate, interval, p-value and the p-value adjusted across the "
                    "primary indicators. These are the figures the whitepaper shows.")
    est.add_argument("--region", help="region id, the name of its params file")
    est.add_argument("--school-year",
                     help="school year, as 2014-2015 (with --all-regions default: the last in "
                          "the data)")
    est.add_argument("--data", type=Path,
                     help="folder with the data tables, CSV or Parquet (default: the synthetic "
                          "data)")
    est.add_argument("--municipality",
                     help="one municipality of the region (CBS code or name); pupils are counted "
                          "by school location or residence as analysis.count_by says")
    est.add_argument("--all-regions", action="store_true",
                     help="every region in the data's params (DIR/params when the data set has "
                          "one, else --params-dir) and the national level: the "
                          "difference-in-differences of every primary indicator")
    est.add_argument("--costs", action="store_true",
                     help="also compute costs and savings from the cost params (json: an object "
                          "with 'estimates' and 'costs')")
    est.add_argument("--format", choices=["json", "table"], default="table",
                     help="json: one record per indicator and comparison; table: for reading")
    _add_common(est)

    rob = sub.add_parser(
        "robustness", help="re-estimate the primary indicators under reasonable alternatives",
        description="Re-estimate every primary indicator under a declared set of alternatives "
                    "(baseline window, comparison group, counting by school or residence, "
                    "leaving out the first pilot year, leaving out one school at a time, "
                    "estimator): one row per indicator and specification, with whether the "
                    "conclusion holds.")
    _add_run(rob)
    rob.add_argument("--format", choices=["json", "table"], default="table")
    _add_common(rob)

    did = sub.add_parser(
        "did", help="staggered difference-in-differences on a panel of your own",
        description="Group-time average treatment effects (Callaway & Sant'Anna, outcome "
                    "regression without covariates) on a long panel in a CSV file, aggregated to "
                    "one overall effect, per cohort and per event time. A cohort of 0 or empty "
                    "means never treated.")
    did.add_argument("--panel", type=Path, required=True, help="CSV file, one row per unit and time")
    did.add_argument("--unit", required=True, help="column identifying the unit")
    did.add_argument("--time", required=True, help="column with the period (whole numbers)")
    did.add_argument("--cohort", required=True, help="column with the first treated period")
    did.add_argument("--outcome", required=True, help="column with the numeric outcome")
    did.add_argument("--control", choices=["never_treated", "not_yet_treated"],
                     default="never_treated", help="comparison group (default: %(default)s)")
    did.add_argument("--format", choices=["json", "table"], default="table")

    aud = sub.add_parser(
        "audit", help="check rendered reports for anything personal or too small",
        description="Read every rendered HTML, PDF and Excel file (and executed notebook) under a "
                    "folder and exit non-zero if it finds a pupil or trajectory identifier, a "
                    "pseudonym, the HMAC key, a BSN-like number, or a published count below the "
                    "disclosure threshold.")
    aud.add_argument("output_dir", type=Path, metavar="DIR", help="folder with rendered reports")
    aud.add_argument("--data", type=Path, help="data folder whose identifiers must not appear")
    aud.add_argument("--min-count", type=int,
                     help="disclosure threshold (default: disclosure.min_count in params)")
    _add_common(aud)

    ctx = sub.add_parser(
        "context", help="regional context from CBS open data",
        description="Regional context from the national statistics office (CBS StatLine).")
    csub = ctx.add_subparsers(dest="context_command", required=True, metavar="SUBCOMMAND")
    ref = csub.add_parser(
        "refresh", help="download CBS tables into the local cache (needs internet)",
        description="Download CBS open-data tables on youth care per municipality into the local "
                    "cache. Renders read only the cache and never need the network; without "
                    "network this command fails and leaves the cache as it was.")
    ref.add_argument("--cache", type=Path, help="cache folder (default: data/cbs)")
    ref.add_argument("--table", action="append", default=[], help="CBS table id (repeatable; "
                     "default: 85098NED)")
    ref.add_argument("--region", help="only the municipalities of this region (params file)")
    ref.add_argument("--params-dir", type=Path, default=DEFAULT_PARAMS_DIR,
                     help="folder with the params files (default: %(default)s)")

    imp = sub.add_parser(
        "import", help="turn school and care exports into the project's tables",
        description="Read exports (CSV with comma or semicolon, UTF-8 or Windows-1252, Excel, "
                    "Parquet), map their columns and codes with a mapping file, pseudonymise "
                    "identifiers with a keyed hash (key from EVALUATION_HMAC_KEY or "
                    "EVALUATION_HMAC_KEY_FILE), validate, and write the project's CSV tables. Rows "
                    "that fail go to DIR/quarantine with their reason; nothing is dropped silently.")
    imp.add_argument("sources", type=Path, nargs="+", metavar="SOURCE", help="export files")
    imp.add_argument("--mapping", type=Path, required=True, help="mapping YAML file")
    imp.add_argument("--out", type=Path, required=True, help="folder for the project's tables")
    imp.add_argument("--max-unknown-share", type=float, metavar="SHARE",
                     help="stop when more than this share of a column's rows has a code or "
                          "reference that is unknown (default: max_unknown_share in the mapping, "
                          "else 0.05); below it such rows go to quarantine")

    ren = sub.add_parser(
        "render", help="render whitepapers: one (--region, --school-year) or all (--all)",
        description="Execute the analysis notebooks for a region (or one of its municipalities) "
                    "and school year and render the whitepaper as HTML and PDF, with its tables "
                    "as an Excel workbook, into _output/<region>/[<municipality>/]<school-year>/. "
                    "With --all: every report params/ declares (per region and municipality, "
                    "per school year from the first pilot year), in parallel, re-rendering only "
                    "reports whose inputs changed, plus the site index _output/index.html. "
                    "Uses Quarto when it is installed, otherwise the built-in renderer "
                    "(pandoc + Typst).")
    ren.add_argument("--national", action="store_true",
                     help="the national overview of all regions for --school-year (default: the "
                          "last in the data): funnel plots and the regional estimates side by "
                          "side (without --data: a synthetic national data set)")
    ren.add_argument("--all", action="store_true", dest="all_",
                     help="every report params/ declares (narrow with --region / --school-year)")
    ren.add_argument("--region", help="region id, the name of its params file")
    ren.add_argument("--school-year", help="school year, as 2014-2015")
    ren.add_argument("--data", type=Path,
                     help="folder with the data tables (default: the synthetic data)")
    ren.add_argument("--municipality",
                     help="one municipality of the region (CBS code or name); pupils are counted "
                          "by school location or residence as analysis.count_by says")
    ren.add_argument("--executor", choices=["local", "serial", "dask"], default="local",
                     help="with --all: local worker processes, serial, or a Dask cluster "
                          "(default: %(default)s)")
    ren.add_argument("--scheduler", metavar="ADDRESS",
                     help="with --executor dask: the scheduler address, as tcp://host:8786")
    ren.add_argument("--workers", type=int,
                     help="with --all --executor local: worker processes (default: one per core)")
    ren.add_argument("--force", action="store_true",
                     help="with --all: re-render reports even when nothing they depend on changed")
    ren.add_argument("--build-dir", type=Path, default=Path("_build"),
                     help="folder for build directories and the cache (default: %(default)s)")
    ren.add_argument("--format", choices=["html", "pdf"], action="append", dest="formats",
                     help="render only this format (repeatable; default: params report.formats)")
    ren.add_argument("--output", type=Path, default=Path("_output"),
                     help="folder for finished reports (default: %(default)s)")
    ren.add_argument("--renderer", choices=["auto", "quarto", "builtin"], default="auto",
                     help="auto: Quarto when on PATH, else built-in (default: %(default)s)")
    _add_common(ren)
    return parser


def _synthetic_overrides(args: argparse.Namespace) -> list[str]:
    extra = [f"synthetic.seed={args.seed}"] if getattr(args, "seed", None) is not None else []
    return list(args.overrides) + extra


def cmd_data(args: argparse.Namespace) -> int:
    from evaluation.params import load_regions, load_synthetic

    overrides = _synthetic_overrides(args)
    if args.data_command == "synthetic":
        if args.scale:
            from evaluation.data.synthetic_national import write_national

            written = write_national(args.out, args.scale, args.format, overrides, args.params_dir)
        elif args.format == "parquet":
            from evaluation.data.parquet import write_parquet_tables
            from evaluation.data.synthetic import generate, write_marker

            config = load_synthetic(overrides, args.params_dir)
            tables = generate(load_regions(args.params_dir), config)
            written = [*write_parquet_tables(tables, args.out), write_marker(args.out, config)]
        else:
            from evaluation.run.pipeline import write_synthetic

            written = write_synthetic(args.out, overrides, args.params_dir)
        print(f"wrote {len(written)} files to {args.out}")
        return 0
    from evaluation.data.synthetic import truth

    print(json.dumps(truth(load_regions(args.params_dir), load_synthetic(overrides, args.params_dir)),
                     indent=2, ensure_ascii=False, default=str))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from evaluation.data.validation import format_problem, validate_dir

    result = validate_dir(args.data_dir)
    problems = result.problems
    for _, row in problems.head(args.max_problems).iterrows():
        print(format_problem(row))
    if len(problems) > args.max_problems:
        print(f"... and {len(problems) - args.max_problems} more problems "
              "(use --problems-csv FILE to get them all)")
    if args.problems_csv:
        problems.to_csv(args.problems_csv, index=False)
    print()
    print(result.summary().to_string(index=False))
    if result.absent:
        print(f"\nnot supplied (read as empty): {', '.join(result.absent)}")
    if result.ok:
        print("\nall rows valid")
        return 0
    print(f"\n{len(problems)} problem(s); {int(result.summary()['rejected'].sum())} row(s) "
          "would be rejected")
    return 1


def cmd_params(args: argparse.Namespace) -> int:
    from evaluation.params import load_params
    from evaluation.report.provenance import params_yaml

    print(params_yaml(load_params(args.region, args.school_year, args.overrides, args.params_dir)),
          end="")
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from evaluation.run.pipeline import PipelineError, render_report

    if args.national:
        if args.all_ or args.region or args.municipality:
            raise PipelineError("render --national makes the overview of all regions: leave out "
                                "--all, --region and --municipality")
        from evaluation.national.build import render_national

        result = render_national(args.school_year, data_dir=args.data, overrides=args.overrides,
                                 formats=args.formats, output_root=args.output,
                                 build_root=args.build_dir, params_dir=args.params_dir,
                                 renderer=args.renderer)
        return _published(result, args.output)
    if args.all_:
        from evaluation.run.batch import render_all_command

        if args.municipality:
            raise PipelineError("render --all makes every municipality report already; "
                                "--municipality names one report (leave out --all)")
        return render_all_command(args.region, args.school_year, True, args.formats,
                                  args.executor, args.scheduler, args.workers, args.data,
                                  args.overrides, args.output, args.params_dir, args.renderer,
                                  args.build_dir, args.force)
    missing = [flag for flag, value in (("--region", args.region),
                                        ("--school-year", args.school_year)) if not value]
    if missing:
        raise PipelineError(f"render needs {' and '.join(missing)} for one report, or --all "
                            "for every report params/ declares")
    from evaluation.run.inprocess import InProcessSession

    # The notebooks run in this process (its imports and data serve them; the robustness
    # analysis starts ahead on the other core) instead of a kernel of their own.
    with InProcessSession() as session:
        result = render_report(args.region, args.school_year, data_dir=args.data,
                               overrides=args.overrides, formats=args.formats,
                               output_root=args.output, params_dir=args.params_dir,
                               renderer=args.renderer, municipality=args.municipality,
                               build_root=args.build_dir, session=session)
    return _published(result, args.output)


def _published(result, output_root: Path) -> int:
    """Say which renderer made the report and where its files are; refresh the site index."""
    from evaluation.report.site import write_index

    print(f"renderer: {result.renderer}")
    for fmt, path in result.outputs.items():
        print(f"{fmt}: {path}")
    print(f"site index: {write_index(output_root)}")
    return 0


def cmd_estimates(args: argparse.Namespace) -> int:
    from evaluation.run.pipeline import PipelineError

    if args.all_regions:
        if args.region or args.municipality or args.costs:
            raise PipelineError("--all-regions estimates every region: leave out --region, "
                                "--municipality and --costs")
        return _estimates_all_regions(args)
    missing = [flag for flag, value in (("--region", args.region),
                                        ("--school-year", args.school_year)) if not value]
    if missing:
        raise PipelineError(f"estimates needs {' and '.join(missing)} (or --all-regions)")
    return _estimates_one(args)


def _estimates_all_regions(args: argparse.Namespace) -> int:
    """Every region of a (national) data set side by side, plus the nation."""
    from evaluation.data.validation import validate_dir
    from evaluation.national.estimates import estimates_all_regions
    from evaluation.params import load_params, load_regions

    if args.data is None:
        raise DataSetError("--all-regions needs --data DIR (a data set such as "
                           "`evaluation data synthetic --scale national --out DIR` writes)")
    params_dir = args.params_dir  # the data set's own params when it has them (see main)
    checked = validate_dir(args.data)
    rejected = int(checked.summary()["rejected"].sum())
    if rejected:
        print(f"data: {rejected} row(s) rejected and left out of the estimates (run `evaluation "
              f"validate {args.data}` for each reason)", file=sys.stderr)
    regions = load_regions(params_dir)
    if not regions:
        raise ParamsError(f"{params_dir}: no region params files")
    years = sorted(checked.tables["enrolments"]["school_year"].dropna().astype(str).unique())
    year = args.school_year or years[-1]
    if year not in years:
        raise DataSetError(f"school year {year} is not in the data in {args.data} "
                           f"({years[0]} to {years[-1]})")
    template = load_params(regions[0].id, year, args.overrides, params_dir)
    table = estimates_all_regions(checked.tables, regions, template, school_year=year)
    if args.format == "json":
        print(json.dumps(table.astype(object).where(table.notna(), None).to_dict(orient="records"),
                         indent=2, ensure_ascii=False, default=str))
        return 0
    show = table[["region", "indicator", "estimate", "ci_low", "ci_high", "p_value_adjusted",
                  "n_pilot_schools", "n_comparison_schools", "note"]].copy()
    for col in ("estimate", "ci_low", "ci_high"):
        show[col] = show[col].map(lambda v: "" if pd_isna(v) else f"{v:.3f}")
    show["p_value_adjusted"] = show["p_value_adjusted"].map(
        lambda v: "" if pd_isna(v) else ("<0.001" if v < 0.001 else f"{v:.3f}"))
    show["note"] = show["note"].fillna("").astype(str).str.slice(0, 40)
    print(f"Difference-in-differences per region and for the nation, school year {year} "
          f"({len(regions)} regions; alpha {template.analysis.alpha}, "
          f"{template.analysis.multiple_testing} correction within each region)")
    print(show.to_string(index=False))
    return 0


def pd_isna(value: object) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def _estimates_one(args: argparse.Namespace) -> int:
    from evaluation.analysis.estimates import estimate_all, format_table, to_records
    from evaluation.report.notebook import setup

    run = setup(args.region, args.school_year, str(args.data or ""), args.overrides,
                str(args.params_dir), municipality=args.municipality or "")
    es = estimate_all(run.data.tables, run.params, run.params_dir)
    cb = None
    if args.costs:
        from evaluation.analysis.costs import cost_benefit, costs_of

        cb = cost_benefit(es, costs_of(run.params), tables=run.data.tables)
    if args.format == "json":
        out = to_records(es)
        if cb is not None:
            from evaluation.analysis.costs import cost_records

            out = {"estimates": out, "costs": cost_records(cb)}
        print(json.dumps(out, indent=2, ensure_ascii=False, default=str))
    else:
        print(format_table(es))
        if cb is not None:
            from evaluation.report.costs import cost_sentence, cost_table

            print()
            print(cost_sentence(cb))
            print(cost_table(cb).to_string(index=False))
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    from evaluation.analysis.robustness import robustness, robustness_summary
    from evaluation.report.notebook import setup

    run = setup(args.region, args.school_year, str(args.data or ""), args.overrides,
                str(args.params_dir), municipality=args.municipality or "")
    table = robustness(run.data.tables, args.region, args.school_year, run.params_dir,
                       tuple(args.overrides), run.params.municipality)
    if args.format == "json":
        records = table.astype(object).where(table.notna(), None).to_dict(orient="records")
        print(json.dumps(records, indent=2, ensure_ascii=False, default=str))
    else:
        print(table.round(3).to_string(index=False))
        print()
        for row in robustness_summary(table).itertuples(index=False):
            print(f"{row.indicator}: {row.sentence}")
    return 0


def cmd_did(args: argparse.Namespace) -> int:
    from evaluation.analysis.staggered import StaggeredInputError, did_from_csv

    try:
        result = did_from_csv(args.panel, args.unit, args.time, args.cohort, args.outcome,
                              args.control)
    except (StaggeredInputError, FileNotFoundError) as exc:
        print(f"error: {args.panel}: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(result, indent=2))
        return 0
    import pandas as pd

    print("Group-time average treatment effects")
    print(pd.DataFrame(result["group_time"]).round(4).to_string(index=False))
    agg = result["aggregations"]
    print("\nOverall (simple):", {k: round(v, 4) for k, v in agg["simple"].items()})
    print("\nPer cohort")
    print(pd.DataFrame(agg["cohort"]).round(4).to_string(index=False))
    print("\nPer event time")
    print(pd.DataFrame(agg["event_time"]).round(4).to_string(index=False))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    from evaluation.report.audit import audit_command

    min_count = args.min_count
    if min_count is None:
        from evaluation.params import Disclosure, _read_yaml, deep_merge, parse_override

        merged = _read_yaml(args.params_dir / "defaults.yml")
        for text in args.overrides:
            merged = deep_merge(merged, parse_override(text))
        min_count = Disclosure.model_validate(merged.get("disclosure", {})).min_count
    return audit_command(args.output_dir, args.data, min_count)


def cmd_context(args: argparse.Namespace) -> int:
    from evaluation.data.context import DEFAULT_CACHE_DIR, context_refresh_command

    municipalities = None
    if args.region:
        from evaluation.params import load_regions

        regions = {r.id: r for r in load_regions(args.params_dir)}
        if args.region not in regions:
            raise ParamsError(f"region {args.region!r}: not in {args.params_dir}")
        municipalities = [m.code for m in regions[args.region].municipalities]
    return context_refresh_command(args.cache or DEFAULT_CACHE_DIR, args.table, municipalities)


def cmd_import(args: argparse.Namespace) -> int:
    from evaluation.data.importing import import_command

    return import_command(args.sources, args.mapping, args.out, args.max_unknown_share)


COMMANDS = {"audit": cmd_audit, "context": cmd_context, "import": cmd_import, "data": cmd_data, "validate": cmd_validate, "params": cmd_params, "render": cmd_render,
            "estimates": cmd_estimates, "did": cmd_did, "robustness": cmd_robustness}


def _use_the_datas_params(args: argparse.Namespace) -> None:
    """A data set that carries its own params (`DIR/params/`, as the national generator writes
    it) is read with them unless --params-dir names others: its regions are not in params/."""
    data = getattr(args, "data", None)
    if (data is not None and getattr(args, "params_dir", None) == DEFAULT_PARAMS_DIR
            and (Path(data) / "params" / "defaults.yml").is_file()):
        args.params_dir = Path(data) / "params"


def main(argv: list[str] | None = None) -> int:
    from evaluation.run.pipeline import PipelineError

    args = build_parser().parse_args(argv)
    _use_the_datas_params(args)
    try:
        return COMMANDS[args.command](args)
    except (ParamsError, DataSetError, PipelineError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
