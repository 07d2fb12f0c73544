"""Render a Quarto whitepaper to HTML and PDF, with Quarto or with a small built-in fallback.

Both renderers read the same project files and give the same report:

- ``_quarto.yml``: formats and their options, the Lua filter (``reports/whitepaper.lua``: table
  column widths, image alt text in Typst, accessible HTML tables, the renderer in the colophon), the
  Typst template partials (``reports/typst-template.typ``, ``typst-show.typ``: the house style) and
  the HTML css, title block and skip link;
- the PDF is always compiled by the project's Typst (the ``typst`` wheel) as tagged PDF/UA-1. Quarto
  1.7 and 1.8 bring Typst 0.13, which cannot tag, so Quarto writes the Typst source (``keep-typ``)
  and this module compiles it, as the built-in renderer does with pandoc's.

Quarto (1.7 tested; see README) is used when it is on PATH. The built-in renderer drives the same
engines Quarto uses (pandoc from the pypandoc-binary wheel, Typst from the typst wheel) and supports
the subset of Quarto the reports use: YAML metadata from ``_quarto.yml``, ``_metadata.yml`` and
front matter; ``filters``, ``template-partials`` (Typst), ``css`` and ``include-before-body``; the
``embed``, ``meta`` and ``pagebreak`` shortcodes; ``fig-cap``/``fig-alt``/``tbl-cap`` cell options;
and ``@fig-``/``@tbl-`` cross-references. Anything else is an error rather than a silently different
report.

The output is accessible (WCAG 2.1 AA, tests/test_accessibility.py): the HTML has landmarks, a skip
link, one <h1>, scoped table headers and tables that scroll on their own; the PDF is tagged and
checked by Typst against PDF/UA-1.
"""

from __future__ import annotations

import base64
import functools
import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nbformat
import pypandoc
import typst
import yaml

from evaluation.report.figure_text import FIG_META

__all__ = ["RenderError", "RenderResult", "copy_sources", "generated_files", "quarto_available",
           "quarto_version", "render", "renderer_name"]

FORMATS = {"html": ("html", ".html"), "pdf": ("typst", ".pdf")}  # ours -> (Quarto format, suffix)
# Tagged PDF that Typst checks against PDF/UA-1 (ISO 14289-1) while it writes it: document title,
# language, alt text on every image, headings without skipped levels, table header cells.
PDF_STANDARDS = ["ua-1"]
# Quarto versions the project is tested with (CI: 1.7.34 from ../shared/tools/quarto); others
# render with a warning. README, section Rendering, says what changes from 1.8 on.
QUARTO_TESTED = ("1.7",)
# Options for the renderer, not document metadata for pandoc's template.
_NOT_METADATA = {"project", "format", "execute", "css", "toc", "toc-depth", "number-sections",
                 "filters", "template-partials", "include-before-body", "keep-typ",
                 "shift-heading-level-by", "date-format", "format-links", "title-block-style",
                 "toc-location", "embed-resources", "notebook-links"}
_SHORTCODE = re.compile(r"\{\{\{<(.*?)>\}\}\}|\{\{<\s*(.*?)\s*>\}\}")
_XREF = re.compile(r"\[@((?:fig|tbl)-[\w-]*\w)\]|(?<![\w.@])@((?:fig|tbl)-[\w-]*\w)")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_PRETTY = {"fig": "Figuur", "tbl": "Tabel"}  # Quarto's Dutch crossref titles (lang: nl)


@dataclass
class RenderResult:
    renderer: str  # "quarto X + typst Y" or "builtin (pandoc X + typst Y)", see renderer_name
    outputs: dict[str, Path]  # "html" -> file, "pdf" -> file


class RenderError(RuntimeError):
    """Rendering failed; the message names the file or command and ends with its stderr tail."""


def quarto_available() -> bool:
    return shutil.which("quarto") is not None


def render(
    qmd: Path,
    formats: Sequence[str] = ("html", "pdf"),
    out_dir: Path | None = None,
    prefer: str = "auto",
) -> RenderResult:
    """Render ``qmd`` to ``<out_dir>/<stem>.html`` / ``.pdf``.

    ``prefer``: "auto" (Quarto when on PATH, else built-in), "quarto" or "builtin".
    """
    qmd = Path(qmd).resolve()
    if not qmd.is_file():
        raise RenderError(f"document not found: {qmd}")
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or prefer not in ("auto", "quarto", "builtin"):
        raise ValueError(f"formats must be among {sorted(FORMATS)} and prefer auto/quarto/builtin; "
                         f"got formats={list(formats)}, prefer={prefer!r}")
    out_dir = Path(out_dir).resolve() if out_dir else qmd.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    if prefer == "quarto" or (prefer == "auto" and quarto_available()):
        return _render_quarto(qmd, formats, out_dir)
    return _render_builtin(qmd, formats, out_dir)


# ------------------------------------------------------------------------------ build folders

def generated_files(reports_dir: Path) -> set[str]:
    """Names that rendering writes into a reports folder, per document ``<stem>.qmd``:
    ``<stem>.html``, ``.pdf``, ``.typ`` and ``<stem>_files``; and the pipeline's _metadata.yml."""
    stems = [p.stem for p in Path(reports_dir).glob("*.qmd")]
    return {"_metadata.yml", *(f"{stem}{end}" for stem in stems
                               for end in (".html", ".pdf", ".typ", "_files"))}


def copy_sources(reports_dir: Path, dest: Path, document: str) -> None:
    """Copy a reports folder into a build folder for one document (``<document>.qmd``): its
    sources without generated files and without the project's other documents, so that a plain
    ``quarto render`` in the build folder renders just this one."""
    reports_dir = Path(reports_dir)
    skip = generated_files(reports_dir) | {p.name for p in reports_dir.glob("*.qmd")
                                           if p.stem != document}
    shutil.copytree(reports_dir, dest, ignore=lambda folder, names: [
        n for n in names if Path(folder) == reports_dir and n in skip])


# --------------------------------------------------------------------------------------- Quarto

def quarto_version(quarto: str | None = None) -> str:
    """The version `quarto --version` reports ("1.7.34"), or "" without Quarto."""
    quarto = quarto or shutil.which("quarto")
    return _quarto_version(quarto) if quarto else ""


@functools.lru_cache(maxsize=4)
def _quarto_version(quarto: str) -> str:
    return _run([quarto, "--version"], cwd=Path.cwd(), what="quarto --version").strip()


def renderer_name(prefer: str = "auto", formats: Sequence[str] = ("html", "pdf")) -> str:
    """What `render(..., prefer=prefer)` will use, with versions (as RenderResult.renderer)."""
    if prefer == "quarto" or (prefer == "auto" and quarto_available()):
        name = f"quarto {quarto_version() or '(not on PATH)'}"
        return name + (f" + typst {version('typst')}" if "pdf" in formats else "")
    return f"builtin (pandoc {pypandoc.get_pandoc_version()} + typst {version('typst')})"


def _render_quarto(qmd: Path, formats: Sequence[str], out_dir: Path) -> RenderResult:
    quarto = shutil.which("quarto")
    if quarto is None:
        raise RenderError("prefer='quarto' but the `quarto` command is not on PATH; install Quarto "
                          "(quarto.org, or conda-forge: see environment.yml) or use "
                          "prefer='builtin'/'auto'")
    project = _project_dir(qmd)
    config = _load_yaml(project / "_quarto.yml")
    _check_in_project(qmd, project, config)
    found = quarto_version(quarto)
    if not found.startswith(tuple(f"{v}." for v in QUARTO_TESTED)):
        warnings.warn(f"Quarto {found} is not a version this project is tested with "
                      f"({', '.join(QUARTO_TESTED)}.x); the report may differ from the built-in "
                      "renderer's (see README, Rendering)", stacklevel=3)
    output_dir = project / (config.get("project") or {}).get("output-dir", ".")
    outputs: dict[str, Path] = {}
    for fmt in formats:
        to, suffix = FORMATS[fmt]
        produced = output_dir / qmd.relative_to(project).with_suffix(suffix)
        typ = qmd.with_suffix(".typ")
        for stale in (produced, typ):
            stale.unlink(missing_ok=True)
        # keep-typ: the PDF is compiled again below, by the project's Typst, as tagged PDF/UA-1
        extra = ["-M", "keep-typ:true"] if fmt == "pdf" else []
        _run([quarto, "render", str(qmd), "--to", to, *extra], cwd=project,
             what=f"quarto render {qmd} --to {to}")
        if not produced.is_file():
            raise RenderError(f"quarto render {qmd} --to {to} succeeded but {produced} is missing")
        target = out_dir / f"{qmd.stem}{suffix}"
        if fmt == "pdf":
            if not typ.is_file():
                raise RenderError(f"quarto render {qmd} --to typst kept no Typst source {typ}")
            _compile_typst(typ, target, project, qmd, f"Quarto's Typst source {typ}")
        elif produced.resolve() != target.resolve():
            shutil.copy2(produced, target)
        outputs[fmt] = target
    return RenderResult(renderer_name("quarto", formats), outputs)


def _check_in_project(qmd: Path, project: Path, config: dict) -> None:
    """Quarto renders a document that ``project.render`` does not list on its own, without the
    project's _quarto.yml (no house style, no filter, other output folder): refuse that."""
    if not (project / "_quarto.yml").is_file():
        return
    listed = _as_list((config.get("project") or {}).get("render"))
    relative = qmd.relative_to(project)
    if listed and not any(relative.match(str(pattern).lstrip("/")) for pattern in listed
                          if not str(pattern).startswith("!")):
        raise RenderError(f"{project / '_quarto.yml'}: project.render does not list {relative}, "
                          "so Quarto would render it without the project's options; add it")


# ------------------------------------------------------------------------------------- built-in

# The built-in renderer's pandoc template for Typst, in the order of Quarto's own (definitions,
# the typst-template partial, header includes, the typst-show partial, body), so that the
# template-partials of _quarto.yml give the same document with both renderers. Captions of the
# built-in renderer carry their number ("Figuur 1: ..."), so Typst must not number figures again.
_TYPST_TEMPLATE = """\
#let horizontalrule = line(start: (25%, 0%), end: (75%, 0%))
#show terms.item: it => block(breakable: false)[
  #text(weight: "bold")[#it.term]
  #block(inset: (left: 1.5em, top: -0.4em))[#it.description]
]
$if(highlighting-definitions)$
$highlighting-definitions$
$endif$
#set figure(numbering: none)

$typst-template.typ()$

$for(header-includes)$
$header-includes$
$endfor$

$typst-show.typ()$

$for(include-before)$
$include-before$
$endfor$

$body$

$for(include-after)$
$include-after$
$endfor$
"""
_PARTIALS = ("typst-template.typ", "typst-show.typ")


def _render_builtin(qmd: Path, formats: Sequence[str], out_dir: Path) -> RenderResult:
    project = _project_dir(qmd)
    front, body = _split_front_matter(qmd)
    # Quarto's precedence: front matter > directory _metadata.yml > project _quarto.yml.
    meta: dict[str, Any] = {}
    for source, base in ((project / "_quarto.yml", project),
                         (qmd.parent / "_metadata.yml", qmd.parent), (None, qmd.parent)):
        layer = front if source is None else _load_yaml(source)
        meta = _merge(meta, _resolve_paths(layer, base))
    work = out_dir / f"{qmd.stem}_files"  # figures + intermediates; removed after success
    shutil.rmtree(work, ignore_errors=True)  # no stale figures from an earlier run
    work.mkdir()
    expander = _Expander(qmd, project, meta, work)
    (work / f"{qmd.stem}.md").write_text(expander.expand(body), encoding="utf-8")
    # The formats' pandoc runs side by side (separate processes, separate intermediate files):
    # where a core is free (a single report, or the last report of a batch) HTML and PDF take
    # the time of the slower one instead of both.
    with ThreadPoolExecutor(max_workers=max(1, len(formats))) as pool:
        running = {fmt: pool.submit(_builtin_format, qmd, fmt, meta, work, out_dir)
                   for fmt in formats}
        outputs = {fmt: future.result() for fmt, future in running.items()}
    shutil.rmtree(work, ignore_errors=True)
    return RenderResult(renderer_name("builtin"), outputs)


def _builtin_format(qmd: Path, fmt: str, meta: dict, work: Path, out_dir: Path) -> Path:
    """Run pandoc (and Typst for PDF) with the options Quarto would take from the metadata."""
    quarto_fmt, suffix = FORMATS[fmt]
    fmt_opts = meta["format"].get(quarto_fmt) if isinstance(meta.get("format"), dict) else None
    opts = _merge(meta, fmt_opts if isinstance(fmt_opts, dict) else {})
    doc_meta = {k: v for k, v in opts.items() if k not in _NOT_METADATA}
    if quarto_fmt == "typst" and opts.get("number-sections") and "section-numbering" not in opts:
        doc_meta["section-numbering"] = "1.1.a"  # Quarto's default numbering scheme for Typst
    doc_meta.setdefault("pagetitle", opts.get("title") or qmd.stem)
    meta_file = work / f"metadata-{fmt}.yml"
    meta_file.write_text(yaml.safe_dump(doc_meta, allow_unicode=True), encoding="utf-8")
    args = [pypandoc.get_pandoc_path(), f"{qmd.stem}.md", "--from=markdown", "--standalone",
            f"--metadata-file={meta_file.name}"]
    args += [f"--lua-filter={f}" for f in _filters(opts, qmd)]
    # toc-depth counts Markdown levels, as in Quarto, also when headings are shifted.
    shift = int(opts.get("shift-heading-level-by", 0)) if fmt == "html" else 0
    if opts.get("toc"):
        args += ["--toc", f"--toc-depth={int(opts.get('toc-depth', 3)) + shift}"]
    target = out_dir / f"{qmd.stem}{suffix}"
    what = f"pandoc {qmd} -> {fmt} (intermediates kept in {work})"
    if fmt == "html":
        css = opts.get("css") or []
        args += ["--to=html5", "--embed-resources", f"--output={target}",
                 f"--template={_html_template(work).name}"]
        args += [f"--css={c}" for c in _as_list(css)]
        args += [f"--include-before-body={f}" for f in _as_list(opts.get("include-before-body"))]
        args += ["--number-sections"] if opts.get("number-sections") else []
        args += [f"--shift-heading-level-by={shift}"] if shift else []
        _run(args, cwd=work, what=what)
        return target
    typ = work / f"{qmd.stem}.typ"
    args += ["--to=typst", f"--output={typ.name}"]
    args += [f"--template={_typst_template(opts, work).name}"] \
        if _as_list(opts.get("template-partials")) else []
    _run(args, cwd=work, what=what)
    _compile_typst(typ, target, work, qmd, typ)
    return target


def _typst_template(opts: dict, work: Path) -> Path:
    """The built-in Typst template beside copies of the declared template partials."""
    partials = {Path(p).name: Path(p) for p in _as_list(opts.get("template-partials"))}
    missing = [name for name in _PARTIALS if name not in partials]
    if missing:
        raise RenderError(f"template-partials must name {' and '.join(_PARTIALS)} (the built-in "
                          f"renderer's Typst template includes both); missing: {missing}")
    for name, path in partials.items():
        if not path.is_file():
            raise RenderError(f"template partial {path} not found")
        shutil.copy2(path, work / name)
    template = work / "whitepaper-template.typ"
    template.write_text(_TYPST_TEMPLATE, encoding="utf-8")
    return template


def _compile_typst(typ: Path, target: Path, root: Path, qmd: Path, what: object) -> None:
    """Typst source to tagged PDF/UA-1 with the project's Typst (the typst wheel)."""
    try:
        typst.compile(str(typ), output=str(target), root=str(root), pdf_standards=PDF_STANDARDS)
    except RuntimeError as exc:  # typst.TypstError and other compiler failures
        message = str(getattr(exc, "message", exc))
        detail = "\n".join([message, str(getattr(exc, "diagnostic", "")),
                            *getattr(exc, "hints", [])])
        why = (" The PDF must conform to PDF/UA-1 (accessible PDF): give every figure fig-alt "
               "text and let heading levels go up one at a time (# then ##, never # then ###)."
               if "PDF/UA" in detail else "")
        raise RenderError(f"typst failed compiling {what} (from {qmd}); intermediates kept in "
                          f"{typ.parent}.{why}\n{_tail(detail)}") from exc


def _filters(opts: dict, qmd: Path) -> list[str]:
    """The Lua filters of ``filters`` (Quarto's own, "quarto", is not a file)."""
    found = []
    for entry in _as_list(opts.get("filters")):
        path = entry.get("path") if isinstance(entry, dict) else entry
        if path == "quarto":
            continue
        if not isinstance(path, str) or not path.endswith(".lua") or not Path(path).is_file():
            raise RenderError(f"{qmd}: filter {entry!r} is not a Lua filter file the built-in "
                              "renderer can run")
        found.append(path)
    return found


class _Expander:
    """Expands Quarto shortcodes and cross-references into plain pandoc Markdown."""

    def __init__(self, qmd: Path, project: Path, meta: dict, work: Path) -> None:
        self.qmd, self.project, self.meta, self.work = qmd, project, meta, work
        self.numbers: dict[str, int] = {}  # "fig-x" -> 1, numbered in order of appearance
        self._notebooks: dict[Path, Any] = {}

    def expand(self, body: str) -> str:
        return _XREF.sub(self._xref, _SHORTCODE.sub(self._shortcode, body))

    def _shortcode(self, match: re.Match[str]) -> str:
        if match.group(1) is not None:  # {{{< x >}}} is Quarto's escape for a literal {{< x >}}
            return "{{<" + match.group(1) + ">}}"
        name, _, rest = match.group(2).partition(" ")
        if name == "embed":
            return self._embed(rest.strip())
        if name == "meta":
            return self._meta(rest.strip())
        if name == "pagebreak":
            return ('\n\n```{=html}\n<div style="page-break-after: always;"></div>\n```\n\n'
                    "```{=typst}\n#pagebreak()\n```\n\n")
        raise RenderError(f"{self.qmd}: shortcode {{{{< {match.group(2)} >}}}} is not supported "
                          "by the built-in renderer (supported: embed, meta, pagebreak)")

    def _meta(self, key: str) -> str:
        value: Any = self.meta
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise RenderError(f"{self.qmd}: {{{{< meta {key} >}}}} has no value in the front "
                                  "matter, _metadata.yml or _quarto.yml")
            value = value[part]
        return ", ".join(map(str, value)) if isinstance(value, list) else str(value)

    def _embed(self, spec: str) -> str:
        address, *options = spec.split()
        echo = "echo=true" in options
        path, hashmark, ids = address.partition("#")
        if not hashmark or not ids:
            raise RenderError(f"{self.qmd}: embed {address!r} needs a cell: NOTEBOOK.ipynb#LABEL")
        nb_path = self.project / path.lstrip("/") if path.startswith("/") else self.qmd.parent / path
        if not nb_path.is_file():
            raise RenderError(f"{self.qmd}: embedded notebook {path} not found ({nb_path})")
        notebook = self._notebooks.get(nb_path)
        if notebook is None:  # a notebook is embedded cell by cell: read it once
            try:
                notebook = nbformat.read(nb_path, as_version=4)
            except Exception as exc:
                raise RenderError(f"{self.qmd}: cannot read notebook {nb_path}: {exc}") from exc
            self._notebooks[nb_path] = notebook
        return "\n\n".join(self._cell(notebook, nb_path, label, echo) for label in ids.split(","))

    def _cell(self, notebook: Any, nb_path: Path, label: str, echo: bool) -> str:
        for cell in notebook.cells:
            if cell.cell_type != "code":
                continue
            options = _cell_options(cell, nb_path)
            if label in (cell.get("id"), options.get("label")) or label in cell.metadata.get("tags", []):
                break
        else:
            raise RenderError(f"{self.qmd}: notebook {nb_path} has no cell with label, id or tag "
                              f"{label!r}")
        kind = label.split("-", 1)[0]
        if kind in _PRETTY:
            self.numbers[label] = sum(k.startswith(kind) for k in self.numbers) + 1
        parts = [f"```python\n{_strip_options(cell.source)}\n```"] if echo else []
        images = 0
        for output in cell.outputs:
            kind_ = output.output_type
            data = output.get("data", {})
            if kind_ == "error":
                raise RenderError(f"{self.qmd}: cell {label!r} of {nb_path} ended in an error: "
                                  f"{output.ename}: {output.evalue}")
            if kind_ == "stream" and output.name == "stdout":
                parts.append(f"```\n{output.text.rstrip()}\n```")
            elif "text/markdown" in data:
                parts.append(self._table_caption(
                    data["text/markdown"], label, options, _has_table(cell.outputs),
                    FIG_META in output.get("metadata", {})))
            elif "image/png" in data:
                parts.append(self._figure(data["image/png"], nb_path, label, options, images))
                images += 1
            elif "text/plain" in data and not re.fullmatch(r"\s*<.*>\s*", data["text/plain"]):
                parts.append(f"```\n{data['text/plain'].rstrip()}\n```")  # not an object repr
        if not parts:
            raise RenderError(f"{self.qmd}: cell {label!r} of {nb_path} has no output to embed; "
                              "was the notebook executed?")
        if kind == "fig" and not images and options.get("fig-cap"):
            # A sentence where the figure would be (thin data): Quarto keeps the numbered
            # float with its caption around it, and so does this renderer.
            prefix, anchor = self._prefix(label)
            caption = _nth(options["fig-cap"], 0)
            return f"::: {{{anchor.strip()} .figure-note}}\n" + "\n\n".join(parts) + \
                f"\n\n{prefix}{caption}\n:::"
        return "\n\n".join(parts)

    def _prefix(self, label: str) -> tuple[str, str]:
        """Quarto numbers captions of cells labelled fig-*/tbl-* ("Figuur 1: ...")."""
        if label not in self.numbers:
            return "", ""
        return f"{_PRETTY[label.split('-')[0]]} {self.numbers[label]}: ", f"#{label} "

    def _figure(self, png: str, nb_path: Path, label: str, options: dict, index: int) -> str:
        name = re.sub(r"[^\w-]", "_", f"{nb_path.stem}-{label}-{index + 1}") + ".png"
        (self.work / name).write_bytes(base64.b64decode(png))
        caption, alt = (_nth(options.get(key), index) for key in ("fig-cap", "fig-alt"))
        alt = alt or caption
        if not alt:
            warnings.warn(f"{self.qmd}: figure from cell {label!r} has no fig-alt or fig-cap; "
                          "its image gets empty alt text (and the PDF, being PDF/UA-1, fails)",
                          stacklevel=2)
        prefix, anchor = self._prefix(label) if index == 0 else ("", "")
        caption = f"{prefix}{caption}" if caption else ""
        quoted = alt.replace("\\", "\\\\").replace('"', '\\"')
        return f'![{caption}]({name}){{{anchor}alt="{quoted}"}}'

    def _table_caption(self, markdown: str, label: str, options: dict, has_table: bool,
                       shown_table: bool) -> str:
        """Attach tbl-cap (and the tbl- anchor) to the last pipe table of a Markdown output; a
        cell that shows a sentence instead of its table keeps the numbered caption above it."""
        lines = markdown.rstrip().split("\n")
        rows = [i for i, line in enumerate(lines) if line.lstrip().startswith("|")]
        if not options.get("tbl-cap"):
            return markdown
        prefix, anchor = self._prefix(label)
        if not rows and (has_table or not shown_table):  # a sentence beside the table
            return markdown
        if not rows:  # a sentence instead of a table (thin data): the numbered caption stays
            return (f"::: {{{anchor.strip()} .table-note}}\n{prefix}{options['tbl-cap']}\n\n"
                    f"{markdown.rstrip()}\n:::" if anchor
                    else f"{options['tbl-cap']}\n\n{markdown.rstrip()}")
        caption = f": {prefix}{options['tbl-cap']}" + (f" {{{anchor.strip()}}}" if anchor else "")
        return "\n".join([*lines[: rows[-1] + 1], "", caption, "", *lines[rows[-1] + 1:]])

    def _xref(self, match: re.Match[str]) -> str:
        label = match.group(1) or match.group(2)
        if label not in self.numbers:
            raise RenderError(f"{self.qmd}: cross-reference @{label} points to no embedded cell "
                              "with that label")
        return f"[{_PRETTY[label.split('-')[0]]} {self.numbers[label]}](#{label})"


# -------------------------------------------------------------------------------------- helpers

def _has_table(outputs: list) -> bool:
    return any(line.lstrip().startswith("|")
               for o in outputs for line in o.get("data", {}).get("text/markdown", "").split("\n"))


def _project_dir(qmd: Path) -> Path:
    """The nearest directory upwards holding _quarto.yml (Quarto's rule), else the qmd's dir."""
    return next((d for d in qmd.parents if (d / "_quarto.yml").is_file()), qmd.parent)


def _load_yaml(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid YAML in {path}: {exc}") from exc
    return data if isinstance(data, dict) else {}


def _split_front_matter(qmd: Path) -> tuple[dict, str]:
    text = qmd.read_text(encoding="utf-8")
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        front = yaml.safe_load(match.group(1) or "") or {}
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid YAML front matter in {qmd}: {exc}") from exc
    return front, text[match.end():]


def _merge(base: dict, over: dict) -> dict:
    """Deep merge: nested mappings combine, other values of ``over`` win."""
    merged = dict(base)
    for key, value in over.items():
        both = isinstance(value, dict) and isinstance(merged.get(key), dict)
        merged[key] = _merge(merged[key], value) if both else value
    return merged


# Options whose values are files, read relative to the file that declares them (as Quarto does).
_PATH_OPTIONS = ("css", "filters", "include-before-body", "template-partials")


def _resolve_paths(layer: dict, base: Path) -> dict:
    """Make the file options of a metadata layer (top level and per format) absolute."""
    def fix(opts: dict) -> dict:
        fixed = dict(opts)
        for key in _PATH_OPTIONS:
            if opts.get(key) is not None:
                fixed[key] = [_absolute(entry, base) for entry in _as_list(opts[key])]
        return fixed

    layer = fix(layer)
    formats = layer.get("format")
    if isinstance(formats, dict):
        layer = {**layer, "format": {k: fix(v) if isinstance(v, dict) else v
                                     for k, v in formats.items()}}
    return layer


def _absolute(entry: Any, base: Path) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        return {**entry, "path": _absolute(entry["path"], base)}
    if not isinstance(entry, str) or entry == "quarto":
        return entry
    return str((base / entry).resolve())


def _as_list(value: Any) -> list:
    return [] if value is None else list(value) if isinstance(value, list) else [value]


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


def _cell_options(cell: Any, nb_path: Path) -> dict:
    """Quarto cell options: the leading ``#| key: value`` lines of a code cell, as YAML."""
    lines = []
    for line in cell.source.splitlines():
        if not line.startswith("#|"):
            break
        lines.append(line[3:] if line.startswith("#| ") else line[2:])
    try:
        options = yaml.load("\n".join(lines), Loader=_YAML_LOADER) if lines else {}
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid '#|' cell options in {nb_path}: {exc}") from exc
    return options if isinstance(options, dict) else {}


def _strip_options(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.startswith("#|")).strip()


def _nth(value: Any, index: int) -> str:
    if isinstance(value, list):
        return str(value[index]) if index < len(value) else ""
    return str(value) if value is not None and index == 0 else ""


def _html_template(work: Path) -> Path:
    """Pandoc's own HTML template with a <main> landmark (WCAG 2.1: 1.3.1).

    The body goes into ``<main>`` beside the title ``<header>`` and the table of contents
    ``<nav>``, so all content is in a landmark (Quarto's page has its own <main>). The skip link
    (``include-before-body``) and its target (from the Lua filter) are the same in both renderers.
    """
    default = _run([pypandoc.get_pandoc_path(), "--print-default-template=html5"], cwd=work,
                   what="pandoc --print-default-template=html5")
    if len(re.findall(r"^\$body\$$", default, re.M)) != 1:
        raise RenderError("pandoc's default HTML template has no single $body$ line; cannot add "
                          f"the <main> landmark (pandoc {pypandoc.get_pandoc_version()})")
    template = work / "whitepaper-template.html5"
    template.write_text(default.replace("\n$body$\n", "\n<main>\n$body$\n</main>\n"),
                        encoding="utf-8")
    return template


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(args: list[str], cwd: Path, what: str) -> str:
    try:
        proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise RenderError(f"{what}: cannot run {args[0]}: {exc}") from exc
    if proc.returncode != 0:
        raise RenderError(f"{what} failed (exit {proc.returncode}; command: {' '.join(args)}):\n"
                          f"{_tail(proc.stderr or proc.stdout)}")
    return proc.stdout
