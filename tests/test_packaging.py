"""A wheel carries every source package and every data file: setup.py finds the packages, so a new
one (a target's package) ships without an edit, and pyproject.toml's package-data covers the rest."""

import fnmatch
import runpy
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import setuptools

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Distribution:
    package_dir: dict[str, str]
    packages: list[str]
    package_data: dict[str, list[str]]


@pytest.fixture(scope="module")
def distribution() -> Distribution:
    # What the build backend is given: setup.py's setup() arguments (captured, not run, so no
    # setuptools version's internals are involved) and pyproject.toml's package-data.
    given: dict = {}
    patch = pytest.MonkeyPatch()
    patch.setattr(setuptools, "setup", lambda **kwargs: given.update(kwargs))
    try:
        runpy.run_path(str(ROOT / "setup.py"))
    finally:
        patch.undo()
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    return Distribution(given["package_dir"], given["packages"], data)


def _source_files(package_dir: dict[str, str]) -> dict[Path, str]:
    """Every source and data file below the mapped folders -> the package whose folder it lies in."""
    found = {}
    for package, folder in package_dir.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found[path] = package
    return found


def _source_packages(package_dir: dict[str, str]) -> set[str]:
    found = set()
    for path, package in _source_files(package_dir).items():
        if path.name == "__init__.py":
            found.add(".".join((package, *path.parent.relative_to(ROOT / package_dir[package]).parts)))
    return found


def test_every_source_package_is_in_the_wheel(distribution):
    found = _source_packages(distribution.package_dir)
    assert "mvit.models.checkpoints" in found and "mvit.exporters.targets.coreai" in found  # the scan sees subpackages
    assert set(distribution.packages) == found


def test_every_data_file_is_in_the_wheel(distribution):
    missing = []
    for path, package in _source_files(distribution.package_dir).items():
        if path.suffix == ".py":
            continue
        rel = path.relative_to(ROOT / distribution.package_dir[package]).as_posix()
        if not any(fnmatch.fnmatch(rel, pattern) for pattern in distribution.package_data.get(package, [])):
            missing.append(rel)
    assert not missing, f"add to [tool.setuptools.package-data] in pyproject.toml: {missing}"
    assert ROOT / "benchmarks" / "results.schema.json" in _source_files(distribution.package_dir)  # the scan sees data files
