"""The numbers of a region's and a municipality's report as computed before the speed work of
issue 17 (commit 2602757), so that tests can show that the faster code gives the same numbers.

    PYTHONPATH=<checkout of 2602757> python tests/speed_reference.py   # writes the JSON file

`outputs` computes, from the validated synthetic data, every estimate (`estimate_all`) and every
robustness specification of the report cases below; `tests/test_speed_equivalence.py` compares
the current code's outputs with `speed_reference.json`.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "speed_reference.json"
CASES = (("lekstroom", "2014-2015", None), ("lekstroom", "2014-2015", "Houten"))
NUMBERS = ["estimate", "ci_low", "ci_high", "p_value", "p_value_adjusted", "mde"]
KEYS = {"estimates": ["indicator", "comparison"], "robustness": ["indicator", "specification"]}


def case_key(region: str, school_year: str, municipality: str | None) -> str:
    return f"{region}/{municipality or '-'}/{school_year}"


def records(frame: pd.DataFrame, kind: str) -> list[dict]:
    cols = KEYS[kind] + [c for c in NUMBERS if c in frame] + [
        c for c in ("unit", "n", "n_clusters", "draws", "holds", "note") if c in frame]
    out = frame[cols].sort_values(KEYS[kind]).astype(object)
    return out.where(out.notna(), None).to_dict(orient="records")


def outputs(tables: dict, params_dir: Path, reuse_estimates: bool = False) -> dict:
    """{case: {"estimates": [...], "robustness": [...]}} for every case."""
    from evaluation.analysis.estimates import estimate_all
    from evaluation.analysis.robustness import robustness
    from evaluation.params import load_params

    result = {}
    for region, school_year, municipality in CASES:
        params = load_params(region, school_year, [], params_dir, municipality)
        es = estimate_all(tables, params, params_dir)
        extra = {"estimates": es} if reuse_estimates else {}
        rob = robustness(tables, region, school_year, params_dir, (), params.municipality,
                         **extra)
        result[case_key(region, school_year, municipality)] = {
            "estimates": records(es.table, "estimates"),
            "robustness": records(rob, "robustness")}
    return result


def validated_synthetic() -> dict:
    """The embedded synthetic data set, written as CSV and validated as a report reads it."""
    from evaluation.data.reading import write_tables
    from evaluation.data.synthetic import generate
    from evaluation.data.validation import validate_dir
    from evaluation.params import load_regions, load_synthetic

    with tempfile.TemporaryDirectory() as tmp:
        write_tables(generate(load_regions(), load_synthetic()), Path(tmp))
        return validate_dir(Path(tmp)).tables


def compare(got: dict, expected: dict, atol: float = 1e-10) -> list[str]:
    """Differences between two `outputs` results, as readable lines (empty: the same)."""
    problems = []
    for case, parts in expected.items():
        for kind, rows in parts.items():
            mine = {tuple(r[k] for k in KEYS[kind]): r for r in got[case][kind]}
            theirs = {tuple(r[k] for k in KEYS[kind]): r for r in rows}
            if set(mine) != set(theirs):
                problems.append(f"{case} {kind}: rows differ: {set(mine) ^ set(theirs)}")
                continue
            for key, row in theirs.items():
                for col, value in row.items():
                    new = mine[key].get(col)
                    if isinstance(value, float) or isinstance(new, float):
                        a = np.nan if value is None else float(value)
                        b = np.nan if new is None else float(new)
                        same = (np.isnan(a) and np.isnan(b)) or abs(a - b) <= atol * max(
                            1.0, abs(a))
                    else:
                        same = value == new
                    if not same:
                        problems.append(f"{case} {kind} {key} {col}: {value!r} -> {new!r}")
    return problems


if __name__ == "__main__":
    import evaluation

    params_dir = Path(evaluation.__file__).resolve().parent.parent / "params"
    REFERENCE.write_text(json.dumps(outputs(validated_synthetic(), params_dir), indent=1,
                                    ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {REFERENCE} with {evaluation.__file__}", file=sys.stderr)
