"""What every notebook calls first: validated params and validated data, in one line.

Notebooks stay thin: their parameters cell names the run, `setup` does the rest, and with the
default parameters a notebook runs on its own in Jupyter on the embedded synthetic data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from evaluation.data.reading import as_text
from evaluation.data.validation import (
    ValidationResult,
    require_school_year,
    validate,
    validate_dir,
)
from evaluation.params import DEFAULT_PARAMS_DIR, Params, load_params, load_regions, load_synthetic


def show_table(frame, caption: str, name: str, tables_dir: str = "", empty: str = "") -> None:
    """Show a formatted table in the notebook (and so in the report), and keep a copy for the
    report's Excel workbook when the pipeline gave a `tables_dir`. A table without rows shows
    `empty` instead (why there is nothing to show), when given."""
    import json

    from IPython.display import Markdown, display

    from evaluation.report.figure_text import FIG_META
    from evaluation.report.formatting import markdown_table

    # The caption travels with the output too: in a cell labelled tbl-* it becomes the cell's
    # `#| tbl-cap` after execution (`apply_output_text`), so that the table is numbered.
    meta = {FIG_META: {"tbl-cap": caption}}
    if len(frame) == 0 and empty:
        display(Markdown(f"*{empty}*"), metadata=meta)
        return
    display(Markdown(markdown_table(frame) + f"\n\n: {caption}"), metadata=meta)
    if tables_dir:
        out = Path(tables_dir)
        out.mkdir(parents=True, exist_ok=True)
        frame.astype("string").to_parquet(out / f"{name}.parquet", index=False)
        (out / f"{name}.json").write_text(json.dumps({"name": name, "caption": caption},
                                                     ensure_ascii=False), encoding="utf-8")


def show_figure(fig, note: str, alt: str | None = None) -> None:
    """Show a figure, or, where there was nothing to draw (`fig` is None), the sentence that says
    why: a report on thin data keeps its sections and explains the gaps. `alt`: the figure's alt
    text computed from its data (`report.figure_text`), replacing the cell's typed one."""
    from IPython.display import Markdown, display

    from evaluation.report.figure_text import display_figure, show_figure_with_text

    if fig is None:
        display(Markdown(f"*{note}*"))
        return
    if alt:
        show_figure_with_text(fig, alt)
        return
    display_figure(fig)


def show_text(text: str) -> None:
    """Markdown text (an empty output when there is nothing to say, which the report skips)."""
    from IPython.display import Markdown, display

    display(Markdown(text))


@dataclass
class Run:
    params: Params
    data: ValidationResult
    params_dir: Path
    data_dir: Path | None  # None: synthetic data generated in memory
    estimates_file: Path | None = None
    _estimates: object = None

    @property
    def estimates(self):
        """The run's EstimateSet: computed once per report by the pipeline and read from
        `estimates_file`, or computed here when a notebook runs on its own."""
        if self._estimates is None:
            from evaluation.analysis.estimates import estimate_all, load_estimates

            if self.estimates_file is not None and self.estimates_file.exists():
                self._estimates = load_estimates(self.estimates_file, self.data.tables,
                                                 self.params, self.params_dir)
            else:
                self._estimates = estimate_all(self.data.tables, self.params, self.params_dir)
        return self._estimates


def synthetic_data(params_dir: Path = DEFAULT_PARAMS_DIR,
                   overrides: list[str] | tuple[str, ...] = ()) -> ValidationResult:
    """The embedded synthetic data set for every region in params, through the same validation
    as files."""
    from evaluation.data.synthetic import generate

    tables = generate(load_regions(params_dir), load_synthetic(overrides, params_dir))
    return validate(as_text(tables), {n: f"synthetic:{n}" for n in tables})


def report_data(data_dir: Path, params: Params) -> ValidationResult:
    """The validated data set, narrowed to the schools the report can use
    (`design.candidate_schools`). The pipeline's kernels replace this with a memoised version."""
    from evaluation.analysis.design import candidate_schools

    return validate_dir(data_dir).for_schools(candidate_schools(params))


def setup(region: str, school_year: str, data_dir: str = "", overrides: list[str] | None = None,
          params_dir: str = "", estimates_file: str = "", municipality: str = "") -> Run:
    """Validate the parameters first, then load and validate the data."""
    pdir = Path(params_dir) if params_dir else DEFAULT_PARAMS_DIR
    overrides = list(overrides or [])
    params = load_params(region, school_year, overrides, pdir, municipality or None)
    est = Path(estimates_file) if estimates_file else None
    if data_dir:
        data = report_data(Path(data_dir), params)
        require_school_year(data, params.school_year, data_dir)
        return Run(params, data, pdir, Path(data_dir), est)
    return Run(params, synthetic_data(pdir, overrides), pdir, None, est)
