"""The package's layout guards the data flow: imports point one way and never in a circle.

Stages from bottom to top: the indicator registry and params (definitions every stage reads),
data, analysis, report, run, national, and the command line. A module may import its own stage
and the stages below it; every import counts, also one inside a function (a lazy import hides a
dependency, it does not remove it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "evaluation"
STAGES = {"__init__": 0, "registry": 0, "labels": 0, "params": 1, "data": 2, "analysis": 3, "report": 4,
          "run": 5, "national": 6, "cli": 7, "__main__": 7}
MAX_LINES = 650  # "about 600": a module longer than this should be split by what it holds
#: Longer modules, each with the reason it stays whole.
LONG_MODULES = {
    "evaluation.data.synthetic": "one generator: every table draws from one seed sequence and "
                                 "the same school and pupil frames, and `truth` states what they "
                                 "planted; split, the planted effects would be scattered",
    "evaluation.report.audit": "one publication audit: the same rules (identifiers, pseudonyms, "
                               "key, BSN, small counts) applied to each file type",
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def stage(module: str) -> int:
    parts = module.split(".")
    return STAGES["__init__"] if len(parts) == 1 else STAGES[parts[1]]


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The package modules `path` imports, resolved to module names (not names inside them)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        else:
            continue
        for name in names:
            if not name.startswith("evaluation"):
                continue
            while name not in known and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in known:
                out.add(name)
    return out


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = modules()
    known = set(mods)
    return {m: imports_of(p, known) - {m} for m, p in mods.items()}


def test_every_module_belongs_to_a_stage():
    unknown = [m for m in modules() if len(m.split(".")) > 1 and m.split(".")[1] not in STAGES]
    assert not unknown, f"modules outside the stages {sorted(STAGES)}: {unknown}"


def test_imports_point_down_the_data_flow(graph):
    upward = sorted(f"{m} imports {t}" for m, targets in graph.items() for t in targets
                    if stage(t) > stage(m) and t != "evaluation")
    assert not upward, "a lower stage imports a higher one:\n" + "\n".join(upward)


def test_no_import_cycles(graph):
    # Tarjan's strongly connected components: any component of more than one module is a cycle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w == "evaluation":  # the package's own __init__ (its version) imports nothing
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_each_subpackage_says_what_it_holds_and_may_import():
    for sub in (p for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()):
        doc = ast.get_docstring(ast.parse((sub / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 200, f"{sub.name}/__init__.py needs a docstring"
        assert "import" in doc, f"{sub.name}/__init__.py must say what it may import"


def test_no_module_outgrows_what_one_name_can_say():
    long = {m: n for m, p in modules().items() if m not in LONG_MODULES
            and (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by what they hold): {long}"


def test_the_guard_sees_a_lazy_upward_import(tmp_path):
    """The checks above would pass vacuously if `imports_of` missed imports inside functions."""
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from evaluation.run.pipeline import publish\n")
    assert imports_of(src, {"evaluation.run.pipeline", "evaluation.run"}) == {
        "evaluation.run.pipeline"}
