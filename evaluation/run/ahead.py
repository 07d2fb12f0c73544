"""The robustness analysis of a report, started ahead in a forked child of the worker.

The robustness notebook (the report's last) refits the main analysis under a dozen alternative
specifications: the largest piece of a report's work, and one that depends only on the data and
the report's estimates. A worker that runs its notebooks in its own process forks a child as soon
as the estimates are made; the child computes exactly the call the notebook will make (same
function, same inputs: a copy of the worker's memory) while the worker runs the other notebooks,
and the notebook takes its result. Where a core is free (a single report, the last report of a
batch) the two run side by side; where none is, nothing is lost. If the child fails or its result
is missing, the notebook computes the analysis itself, as before.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from pathlib import Path
from typing import Any

_PENDING: dict[tuple, tuple[int, Path]] = {}


def robustness_key(region: str, school_year: str, params_dir: Path,
                   base_overrides: tuple[str, ...], municipality: str | None,
                   indicators: tuple[str, ...], es: Any) -> tuple:
    """What identifies one `robustness(...)` call (the tables are the report's own)."""
    return (region, school_year, str(Path(params_dir).resolve()), tuple(base_overrides),
            municipality, tuple(indicators),
            None if es is None else es.params.model_dump_json())


def start_robustness(build: Path, tables: dict, params: Any, params_dir: Path,
                     overrides: tuple[str, ...], es: Any) -> None:
    """Fork a child that computes the report's robustness analysis into the build folder."""
    from evaluation.analysis.robustness import PRIMARY, robustness

    discard()
    if not hasattr(os, "fork") or os.environ.get("EVALUATION_AHEAD") == "0":
        return  # no fork (Windows), or switched off: the notebook computes it
    key = robustness_key(params.region.id, params.school_year, params_dir, tuple(overrides),
                         params.municipality, tuple(PRIMARY), es)
    path = build / ".robustness-ahead.pickle"
    path.unlink(missing_ok=True)
    pid = os.fork()
    if pid == 0:  # the child: compute, write, leave without running the parent's clean-up
        code = 1
        try:
            result = robustness(tables, params.region.id, params.school_year, params_dir,
                                tuple(overrides), params.municipality, estimates=es)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                pickle.dump(result, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
            code = 0
        finally:
            os._exit(code)
    _PENDING[key] = (pid, path)


def taken(key: tuple) -> Any | None:
    """The result computed ahead for `key` (waiting for its child), or None: none was started,
    or the child failed."""
    entry = _PENDING.pop(key, None)
    if entry is None:
        return None
    pid, path = entry
    try:
        _, status = os.waitpid(pid, 0)
    except BaseException:  # the cell's time ran out while waiting: the child goes too
        _kill(pid)
        raise
    try:
        if os.waitstatus_to_exitcode(status) != 0:
            return None
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError):
        return None
    finally:
        path.unlink(missing_ok=True)


def discard() -> None:
    """Stop every child whose result nobody took (a report that failed before its notebook)."""
    while _PENDING:
        _, (pid, path) = _PENDING.popitem()
        _kill(pid)
        path.unlink(missing_ok=True)


def _kill(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(pid, 0)


def taking(compute: Any) -> Any:
    """`robustness` that first takes a result computed ahead for the same call."""
    from evaluation.analysis.robustness import PRIMARY
    from evaluation.params import DEFAULT_PARAMS_DIR

    def robustness(tables, region, school_year, params_dir=DEFAULT_PARAMS_DIR,
                   base_overrides=(), municipality=None, indicators=PRIMARY, estimates=None):
        done = taken(robustness_key(region, school_year, params_dir, tuple(base_overrides),
                                    municipality, tuple(indicators), estimates))
        if done is not None:
            return done
        return compute(tables, region, school_year, params_dir, base_overrides, municipality,
                       indicators, estimates)

    return robustness
