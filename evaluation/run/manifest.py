"""What a report depends on, and the manifest that records it beside the published files.

A task re-runs only when something it depends on changed. Its fingerprint hashes the data files,
its merged and validated params (with the comparison schools it borrows from other regions), the
notebooks and report sources, the package (version and source files) and the renderer; the
fingerprint is kept in `.manifest.json` beside the published files, by `render --all` and by a
single `render` alike.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import evaluation
from evaluation.data.reading import file_hashes
from evaluation.params import (
    Params,
    load_regions,
)
from evaluation.run.plan import Task, task_for
from evaluation.run.sources import DEFAULT_SOURCES, OUTPUT_NAMES, Sources

PACKAGE_DIR = Path(evaluation.__file__).resolve().parent
MANIFEST = ".manifest.json"


# --- what a task depends on --------------------------------------------------------------------

def _hash_files(paths: Sequence[Path], root: Path | None = None) -> str:
    digest = hashlib.sha256()
    for path in paths:
        name = str(path.relative_to(root)) if root else path.name
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


# Modules that only orchestrate runs: changing them changes no report, so no re-render.
NOT_IN_REPORTS = {"run/batch.py", "report/site.py", "cli.py", "__main__.py"}


def package_hash() -> str:
    """The package version and its source files: a code change that can change a report
    re-renders every report (which code a report uses is not tracked finer than that)."""
    files = sorted(p for p in PACKAGE_DIR.rglob("*") if p.is_file() and p.suffix in (".py", ".typ",
                   ".css", ".yml", ".json", ".csv") and "__pycache__" not in p.parts
                   and p.relative_to(PACKAGE_DIR).as_posix() not in NOT_IN_REPORTS)
    return f"{evaluation.__version__}:{_hash_files(files, PACKAGE_DIR)}"


def renderer_id(renderer: str) -> str:
    """Which renderer `renderer` ("auto", "quarto", "builtin") resolves to, with versions."""
    from evaluation.report.rendering import renderer_name

    return renderer_name(renderer)


def shared_inputs(data_dir: Path, renderer: str, sources: Sources = DEFAULT_SOURCES
                  ) -> dict[str, str]:
    """The hashes every task of a run shares (computed once per run)."""
    data = file_hashes(Path(data_dir))
    return {
        "data": hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest(),
        "sources": _hash_files(sources.files()),
        "package": package_hash(),
        "renderer": renderer_id(renderer),
    }


def fingerprint(task: Task, shared: dict[str, str]) -> dict[str, str]:
    return {**shared, "params": task.params_hash}


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(task: Task, fp: dict[str, str], output_root: Path) -> bool:
    """Published, with the same fingerprint, in every format asked for (and the workbook)."""
    out_dir = output_root / task.key
    manifest = read_manifest(out_dir)
    if manifest is None or manifest.get("fingerprint") != fp:
        return False
    outputs = manifest.get("outputs", {})
    return all(kind in outputs and (out_dir / outputs[kind]).is_file()
               for kind in (*task.formats, "xlsx"))


def write_manifest(task: Task, fp: dict[str, str], out_dir: Path, outputs: dict[str, Path],
                   renderer: str, seconds: float) -> Path:
    """Written last, atomically: its presence with this fingerprint means "up to date"."""
    params = task.params
    data = {
        "key": task.key, "region": task.region, "region_name": task.region_name,
        "title": params.region.title if params else task.region_name,
        "municipality": task.municipality, "unit_name": task.unit_name,
        "count_by": task.count_by, "school_year": task.school_year,
        "outputs": {kind: Path(p).name for kind, p in outputs.items()},
        "renderer": renderer, "fingerprint": fp,
        "finished": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "seconds": round(seconds, 1),
    }
    path = out_dir / MANIFEST
    tmp = path.with_name(f"{MANIFEST}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def record_single_render(params: Params, data_dir: Path, overrides: Sequence[str],
                         params_dir: Path, renderer: str, formats: Sequence[str],
                         used_renderer: str, out_dir: Path, seconds: float) -> None:
    """Called by `pipeline.render_report`: a single render leaves the same manifest as a batch,
    so that `render --all` afterwards does not redo it."""
    schools = {s.id: s for r in load_regions(params_dir) for s in r.schools}
    task = task_for(params, formats, schools)
    outputs = {k: out_dir / name for k, name in OUTPUT_NAMES.items()
               if (k in formats or k == "xlsx") and (out_dir / name).is_file()}
    write_manifest(task, fingerprint(task, shared_inputs(data_dir, renderer)), out_dir, outputs,
                   used_renderer, seconds)
