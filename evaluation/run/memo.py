"""What a worker (and its notebooks) keeps in memory between reports.

A worker makes many reports from the same data files: it reads and validates them once. The key
is the files' names, sizes and modification times, so a changed file is re-read; callers hand
out copies, so that no caller can change what the next one gets. A report's estimates are
computed once per report; where its notebooks run in the same process, they receive the frames
the estimates were computed from instead of rebuilding them from the estimates file.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

_MEMO: OrderedDict[tuple, Any] = OrderedDict()
_MEMO_SIZE = 4
_in_use = False  # set by `warm_kernel`: notebooks of this process read the memo


def _memo(key: tuple, make: Callable[[], Any]) -> Any:
    if key in _MEMO:
        _MEMO.move_to_end(key)
    else:
        _MEMO[key] = make()
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    return _MEMO[key]


def _dir_signature(data_dir: Path) -> tuple:
    data_dir = Path(data_dir).resolve()
    files = sorted(p for p in data_dir.iterdir() if p.is_file()) if data_dir.is_dir() else []
    return (str(data_dir), *((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files))


def estimates_key(path: Path, params: Any, params_dir: Path) -> tuple:
    """The memo key of a report's estimates file (its size and time: a new file, a new key)."""
    stat = Path(path).stat()
    return ("estimates", str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns,
            params.model_dump_json(), str(params_dir))


def remember_estimates(path: Path, es: Any, params_dir: Path) -> None:
    """After `path` was written from `es`: what `load_estimates(path, ...)` would rebuild, for
    the notebooks of this process (the table as read back from the file, the frames as
    computed; tested equal to rebuilt ones). Nothing when no notebook runs here."""
    if _in_use:
        import pandas as pd

        _memo(estimates_key(path, es.params, params_dir),
              lambda: replace(es, table=pd.read_parquet(path)))


def remembered(path: Path, params: Any, params_dir: Path) -> Any | None:
    """The estimate set remembered for `path`, if any."""
    return _MEMO.get(estimates_key(path, params, params_dir)) if _in_use else None
