"""environment.yml (conda users) and pyproject.toml (pip users) must name the same packages."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Conda-only entries: the interpreter, pip itself, Quarto, and the project installed by pip.
CONDA_ONLY = {"python", "pip", "quarto", "-e ."}


def _name(spec: str) -> str:
    return re.split(r"[<>=!~\s\[]", spec.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject_packages() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        specs += extra
    return {_name(s) for s in specs}


def _conda_packages() -> set[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = set()
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            names |= {_name(s) for s in dep.get("pip", []) if s.strip() != "-e ."}
        elif dep.strip() not in CONDA_ONLY:
            names.add(_name(dep))
    return names - CONDA_ONLY


def test_environment_yml_names_the_same_packages_as_pyproject():
    pyproject, conda = _pyproject_packages(), _conda_packages()
    assert pyproject - conda == set(), f"missing from environment.yml: {pyproject - conda}"
    assert conda - pyproject == set(), f"missing from pyproject.toml: {conda - pyproject}"


def test_environment_yml_brings_quarto_from_conda_forge():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert any(isinstance(d, str) and _name(d) == "quarto" for d in env["dependencies"])
