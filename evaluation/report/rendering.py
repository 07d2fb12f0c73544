"""Render a Quarto whitepaper to HTML and PDF, with Quarto or with a small built-in fallback.

Quarto is the production renderer, but it cannot be installed from the registries our machines
and CI reach. The fallback drives the same engines Quarto uses (pandoc from the pypandoc-binary
wheel, Typst from the typst wheel) and supports the subset of Quarto the reports use:
YAML metadata from ``_quarto.yml``, ``_metadata.yml`` and front matter; the ``embed``, ``meta``
and ``pagebreak`` shortcodes; ``fig-cap``/``fig-alt``/``tbl-cap`` cell options; and ``@fig-``/``@tbl-``
cross-references. Anything else is an error rather than a silently different report.

Its output is accessible (WCAG 2.1 AA, tests/test_accessibility.py): the HTML has landmarks, a skip
link, one <h1>, scoped table headers and tables that scroll on their own; the PDF is tagged and
checked by Typst against PDF/UA-1.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import nbformat
import pypandoc
import typst
import yaml

__all__ = ["RenderError", "RenderResult", "quarto_available", "render"]

FORMATS = {"html": ("html", ".html"), "pdf": ("typst", ".pdf")}  # ours -> (Quarto format, suffix)
# Tagged PDF that Typst checks against PDF/UA-1 (ISO 14289-1) while it writes it: document title,
# language, alt text on every image, headings without skipped levels, table header cells.
PDF_STANDARDS = ["ua-1"]
_NOT_METADATA = {"project", "format", "execute", "css", "toc", "toc-depth", "number-sections"}
_SHORTCODE = re.compile(r"\{\{\{<(.*?)>\}\}\}|\{\{<\s*(.*?)\s*>\}\}")
_XREF = re.compile(r"\[@((?:fig|tbl)-[\w-]*\w)\]|(?<![\w.@])@((?:fig|tbl)-[\w-]*\w)")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?(?:---|\.\.\.)[ \t]*(?:\n|\Z)", re.DOTALL)
_PRETTY = {"fig": "Figuur", "tbl": "Tabel"}  # Quarto's Dutch crossref titles (lang: nl)


@dataclass
class RenderResult:
    renderer: str  # "quarto" or "builtin (pandoc X + typst Y)"
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


# --------------------------------------------------------------------------------------- Quarto

def _render_quarto(qmd: Path, formats: Sequence[str], out_dir: Path) -> RenderResult:
    quarto = shutil.which("quarto")
    if quarto is None:
        raise RenderError("prefer='quarto' but the `quarto` command is not on PATH; install Quarto "
                          "(conda-forge, see environment.yml) or use prefer='builtin'/'auto'")
    project = _project_dir(qmd)
    config = _load_yaml(project / "_quarto.yml")
    output_dir = project / config.get("project", {}).get("output-dir", ".")
    outputs: dict[str, Path] = {}
    for fmt in formats:
        to, suffix = FORMATS[fmt]
        _run([quarto, "render", str(qmd), "--to", to], cwd=project, what=f"quarto render {qmd}")
        produced = (output_dir / qmd.relative_to(project)).with_suffix(suffix)
        if not produced.is_file():
            raise RenderError(f"quarto render {qmd} --to {to} succeeded but {produced} is missing")
        target = out_dir / f"{qmd.stem}{suffix}"
        if produced.resolve() != target.resolve():
            shutil.copy2(produced, target)
        outputs[fmt] = target
    ver = _run([quarto, "--version"], cwd=project, what="quarto --version").strip()
    return RenderResult(f"quarto {ver}", outputs)


# ------------------------------------------------------------------------------------- built-in

def _render_builtin(qmd: Path, formats: Sequence[str], out_dir: Path) -> RenderResult:
    project = _project_dir(qmd)
    front, body = _split_front_matter(qmd)
    # Quarto's precedence: front matter > directory _metadata.yml > project _quarto.yml.
    meta: dict[str, Any] = {}
    for source, base in ((project / "_quarto.yml", project),
                         (qmd.parent / "_metadata.yml", qmd.parent), (None, qmd.parent)):
        layer = front if source is None else _load_yaml(source)
        meta = _merge(meta, _resolve_css(layer, base))
    work = out_dir / f"{qmd.stem}_files"  # figures + intermediates; removed after success
    shutil.rmtree(work, ignore_errors=True)  # no stale figures from an earlier run
    work.mkdir()
    expander = _Expander(qmd, project, meta, work)
    (work / f"{qmd.stem}.md").write_text(expander.expand(body), encoding="utf-8")
    outputs = {fmt: _builtin_format(qmd, fmt, meta, work, out_dir, expander.alts)
               for fmt in formats}
    shutil.rmtree(work, ignore_errors=True)
    return RenderResult(f"builtin (pandoc {pypandoc.get_pandoc_version()} + "
                        f"typst {version('typst')})", outputs)


def _builtin_format(
    qmd: Path, fmt: str, meta: dict, work: Path, out_dir: Path, alts: dict[str, str]
) -> Path:
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
    # In HTML the title is the page's one <h1>, so sections start at <h2> (no skipped levels);
    # toc-depth counts Markdown levels, as in Quarto.
    shift = 1 if fmt == "html" and opts.get("title") else 0
    if opts.get("toc"):
        args += ["--toc", f"--toc-depth={int(opts.get('toc-depth', 3)) + shift}"]
    target = out_dir / f"{qmd.stem}{suffix}"
    what = f"pandoc {qmd} -> {fmt} (intermediates kept in {work})"
    if fmt == "html":
        css = opts.get("css") or []
        args += ["--to=html5", "--embed-resources", f"--output={target}",
                 f"--template={_html_template(work).name}"]
        args += [f"--css={c}" for c in ([css] if isinstance(css, str) else css)]
        args += ["--number-sections"] if opts.get("number-sections") else []
        args += [f"--shift-heading-level-by={shift}"] if shift else []
        _run(args, cwd=work, what=what)
        target.write_text(_accessible_tables(target.read_text(encoding="utf-8")),
                          encoding="utf-8")
        return target
    template = qmd.parent / "typst-template.typ"
    typ = work / f"{qmd.stem}.typ"
    args += ["--to=typst", f"--output={typ.name}"]
    args += [f"--template={template}"] if template.is_file() else []
    _run(args, cwd=work, what=what)
    # pandoc's Typst writer drops image alt text; put it back for tagged (accessible) PDF.
    source = typ.read_text(encoding="utf-8")
    for image, alt in alts.items():
        source = source.replace(f'image("{image}"', f'image("{image}", alt: {_typst_str(alt)}')
    typ.write_text(_auto_column_widths(source), encoding="utf-8")
    try:
        typst.compile(str(typ), output=str(target), root=str(work), pdf_standards=PDF_STANDARDS)
    except RuntimeError as exc:  # typst.TypstError and other compiler failures
        message = str(getattr(exc, "message", exc))
        detail = "\n".join([message, str(getattr(exc, "diagnostic", "")),
                            *getattr(exc, "hints", [])])
        why = (" The PDF must conform to PDF/UA-1 (accessible PDF): give every figure fig-alt "
               "text and let heading levels go up one at a time (# then ##, never # then ###)."
               if "PDF/UA" in detail else "")
        raise RenderError(f"typst failed compiling {typ} (from {qmd}); intermediates kept in "
                          f"{work}.{why}\n{_tail(detail)}") from exc
    return target


class _Expander:
    """Expands Quarto shortcodes and cross-references into plain pandoc Markdown."""

    def __init__(self, qmd: Path, project: Path, meta: dict, work: Path) -> None:
        self.qmd, self.project, self.meta, self.work = qmd, project, meta, work
        self.numbers: dict[str, int] = {}  # "fig-x" -> 1, numbered in order of appearance
        self.alts: dict[str, str] = {}  # image file -> alt text (pandoc's Typst writer drops it)

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
        try:
            notebook = nbformat.read(nb_path, as_version=4)
        except Exception as exc:
            raise RenderError(f"{self.qmd}: cannot read notebook {nb_path}: {exc}") from exc
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
                parts.append(self._table_caption(data["text/markdown"], label, options))
            elif "image/png" in data:
                parts.append(self._figure(data["image/png"], nb_path, label, options, images))
                images += 1
            elif "text/plain" in data and not re.fullmatch(r"\s*<.*>\s*", data["text/plain"]):
                parts.append(f"```\n{data['text/plain'].rstrip()}\n```")  # not an object repr
        if not parts:
            raise RenderError(f"{self.qmd}: cell {label!r} of {nb_path} has no output to embed; "
                              "was the notebook executed?")
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
        self.alts[name] = alt
        prefix, anchor = self._prefix(label) if index == 0 else ("", "")
        caption = f"{prefix}{caption}" if caption else ""
        quoted = alt.replace("\\", "\\\\").replace('"', '\\"')
        return f'![{caption}]({name}){{{anchor}alt="{quoted}"}}'

    def _table_caption(self, markdown: str, label: str, options: dict) -> str:
        """Attach tbl-cap (and the tbl- anchor) to the last pipe table of a Markdown output."""
        lines = markdown.rstrip().split("\n")
        rows = [i for i, line in enumerate(lines) if line.lstrip().startswith("|")]
        if not options.get("tbl-cap") or not rows:
            return markdown
        prefix, anchor = self._prefix(label)
        caption = f": {prefix}{options['tbl-cap']}" + (f" {{{anchor.strip()}}}" if anchor else "")
        return "\n".join([*lines[: rows[-1] + 1], "", caption, "", *lines[rows[-1] + 1:]])

    def _xref(self, match: re.Match[str]) -> str:
        label = match.group(1) or match.group(2)
        if label not in self.numbers:
            raise RenderError(f"{self.qmd}: cross-reference @{label} points to no embedded cell "
                              "with that label")
        return f"[{_PRETTY[label.split('-')[0]]} {self.numbers[label]}](#{label})"


# -------------------------------------------------------------------------------------- helpers

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


def _resolve_css(layer: dict, base: Path) -> dict:
    """Make css paths absolute: Quarto reads them relative to the file that declares them."""
    def fix(opts: dict) -> dict:
        css = opts.get("css")
        if css is None:
            return opts
        files = [css] if isinstance(css, str) else list(css)
        return {**opts, "css": [str((base / c).resolve()) for c in files]}

    layer = fix(layer)
    formats = layer.get("format")
    if isinstance(formats, dict):
        layer = {**layer, "format": {k: fix(v) if isinstance(v, dict) else v
                                     for k, v in formats.items()}}
    return layer


def _cell_options(cell: Any, nb_path: Path) -> dict:
    """Quarto cell options: the leading ``#| key: value`` lines of a code cell, as YAML."""
    lines = []
    for line in cell.source.splitlines():
        if not line.startswith("#|"):
            break
        lines.append(line[3:] if line.startswith("#| ") else line[2:])
    try:
        options = yaml.safe_load("\n".join(lines)) if lines else {}
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
    """Pandoc's own HTML template with accessible landmarks (WCAG 2.1: 1.3.1, 2.4.1).

    The body goes into ``<main id="inhoud">`` beside the title ``<header>`` and the table of
    contents ``<nav>``, so all content is in a landmark, and a skip link (visible on keyboard
    focus, see whitepaper.css) jumps past the title block and the contents to it.
    """
    default = _run([pypandoc.get_pandoc_path(), "--print-default-template=html5"], cwd=work,
                   what="pandoc --print-default-template=html5")
    if default.count("<body>") != 1 or len(re.findall(r"^\$body\$$", default, re.M)) != 1:
        raise RenderError("pandoc's default HTML template has no single <body> and $body$ line; "
                          f"cannot add the <main> landmark (pandoc {pypandoc.get_pandoc_version()})")
    template = work / "whitepaper-template.html5"
    template.write_text(
        default.replace("<body>", '<body>\n<a class="skip-link" href="#inhoud">Naar de inhoud</a>')
        .replace("\n$body$\n", '\n<main id="inhoud">\n$body$\n</main>\n'),
        encoding="utf-8")
    return template


def _accessible_tables(html: str) -> str:
    """Pandoc's tables made easier to use (WCAG 2.1: 1.3.1, 1.4.10, 2.1.1).

    Header cells of a table head get ``scope="col"`` (pandoc writes plain ``<th>``). Each table
    goes into a scroll container, so a wide table scrolls on its own on a narrow screen instead
    of the whole page; the container is focusable (keyboard users can scroll it) and is a group
    named by the table's caption (not a landmark region: several tables share a caption).
    """
    count = 0

    def wrap(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        table = re.sub(r"<thead>.*?</thead>",
                       lambda head: re.sub(r"<th(?=[\s>])(?![^>]*\bscope=)", '<th scope="col"',
                                           head.group(0)),
                       match.group(0), flags=re.DOTALL)
        name = f"tabel-{count}-bijschrift"
        table, captioned = re.subn(r"<caption>", f'<caption id="{name}">', table, count=1)
        label = f'aria-labelledby="{name}"' if captioned else f'aria-label="Tabel {count}"'
        return f'<div class="table-scroll" role="group" tabindex="0" {label}>\n{table}\n</div>'

    return re.sub(r"<table\b.*?</table>", wrap, html, flags=re.DOTALL)


def _auto_column_widths(typst_source: str) -> str:
    """Typst's automatic column widths instead of the percentages pandoc gives wide tables.

    Pandoc derives them from the dashes of a pipe table's separator line, which can squeeze a
    short column below its longest word ("Conclusie" sticking out of the table); automatic
    widths fit the page (with hyphenation in tables, see typst-template.typ).
    """
    return re.sub(r"columns: \((\d[\d.]*%(?:, *\d[\d.]*%)*),?\)",
                  lambda m: f"columns: {m.group(1).count('%')}", typst_source)


def _typst_str(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


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
