"""A wheel carries only the packages pyproject.toml names: every source folder must be named there."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _declared() -> tuple[set[str], dict[str, str]]:
    setup = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(setup["packages"]), setup["package-dir"]


def _source_packages(package_dir: dict[str, str]) -> set[str]:
    found = set()
    for package, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            if ".venv" in init.parts or "build" in init.relative_to(ROOT).parts[:1]:
                continue
            rel = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((package, *rel)))
    return found


def test_every_source_package_is_in_the_wheel():
    declared, package_dir = _declared()
    missing = _source_packages(package_dir) - declared
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"


def test_the_check_sees_subpackages():
    _, package_dir = _declared()
    assert "mvit.models.checkpoints" in _source_packages(package_dir)
