"""Provenance for the colophon: which data, which parameters, which code, when."""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
from pathlib import Path

import pandas as pd
import yaml

import evaluation
from evaluation.data.reading import file_hashes
from evaluation.params import Params

REPO = Path(__file__).resolve().parents[2]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + (" (met lokale wijzigingen)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "onbekend"


def _grouped(digest: str, size: int = 16) -> str:
    """A long hash in groups, so that it wraps in a narrow column of a PDF."""
    return " ".join(digest[i:i + size] for i in range(0, len(digest), size))


def params_yaml(params: Params) -> str:
    return yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False, allow_unicode=True)


def params_hash(params: Params) -> str:
    return hashlib.sha256(params_yaml(params).encode()).hexdigest()


SYNTHETIC_NOTE = ("**Let op: synthetische gegevens.** Alle cijfers in dit rapport zijn berekend "
                  "op gegevens die door de software zijn gemaakt om de werkwijze te tonen; ze "
                  "beschrijven geen echte leerlingen, scholen of trajecten.")


def synthetic_note(data_dir: Path | None) -> str:
    """The summary's first words when the data are synthetic (generated in memory, or a folder
    with the generator's marker); empty for real data."""
    from evaluation.data.synthetic import marker

    return SYNTHETIC_NOTE if data_dir is None or marker(data_dir) else ""


def _table_name(file_name: str) -> str:
    """A data file by the Dutch name of its table ("Zorgmeldingen"), not its file name."""
    from evaluation.labels import TABLE_NAMES

    stem = Path(file_name).name.split(".")[0]
    return TABLE_NAMES.get(stem, stem.replace("_", " "))


def colophon(params: Params, data_dir: Path | None) -> pd.DataFrame:
    """One row per fact, in Dutch, for the report's colophon."""
    r = params.report
    now = dt.datetime.now().astimezone()
    rows = [
        *([("Opdrachtgever", r.commissioned_by)] if r.commissioned_by else []),
        ("Uitgevoerd door", r.organisation),
        *([("Auteurs", ", ".join(r.authors))] if r.authors else []),
        *([("Contact", r.contact)] if r.contact else []),
        ("Publicatiedatum", (r.publication_date or now.date()).isoformat()),
        ("Pakketversie", evaluation.__version__),
        ("Git-commit", git_commit()),
        ("Gegenereerd op", now.strftime("%Y-%m-%d %H:%M %Z")),
        ("Parameters (SHA-256)", _grouped(params_hash(params))),
        ("Parameters", "alle gebruikte waarden staan in het werkboek bij dit rapport "
                       "(tabblad Parameters)"),
    ]
    from evaluation.data.synthetic import marker

    found = marker(data_dir)
    if data_dir is None or found:
        seed = found.get("seed", params.synthetic.seed) if found else params.synthetic.seed
        rows.append(("Gegevens", f"synthetisch: gemaakt door de software van het project "
                                 f"(startwaarde {seed}); geen echte leerlingen"))
    if data_dir is not None:
        rows += [(f"Gegevens: {_table_name(name)} (SHA-256)", _grouped(digest))
                 for name, digest in file_hashes(data_dir).items()]
    return pd.DataFrame(rows, columns=["Gegeven", "Waarde"])
