"""The project files a report is made from, and the names of what it writes.

At the bottom of the run stage: the pipeline, the plan and the manifest all read these.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS_DIR = REPO / "notebooks"
REPORTS_DIR = REPO / "reports"
QUARTO_FILE = REPO / "_quarto.yml"
DOCUMENT = "whitepaper"
OUTPUT_NAMES = {"html": f"{DOCUMENT}.html", "pdf": f"{DOCUMENT}.pdf", "xlsx": f"{DOCUMENT}.xlsx"}


@dataclass(frozen=True)
class Sources:
    """The project files a report is made from. Tests and benchmarks point these at a copy (a
    notebook made to fail, say) without touching the repository."""

    quarto_file: Path = QUARTO_FILE
    reports_dir: Path = REPORTS_DIR
    notebooks_dir: Path = NOTEBOOKS_DIR

    def notebooks(self) -> list[Path]:
        return sorted(self.notebooks_dir.glob("[0-9][0-9]-*.ipynb"))

    def files(self) -> list[Path]:
        """Every file whose change changes a report (for the batch's cache)."""
        from evaluation.report.rendering import generated_files

        generated = generated_files(self.reports_dir)
        reports = [p for p in self.reports_dir.rglob("*") if p.is_file()
                   and not generated & set(p.relative_to(self.reports_dir).parts)]
        return [self.quarto_file, *sorted(reports), *self.notebooks()]


DEFAULT_SOURCES = Sources()
