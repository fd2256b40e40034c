"""The package list, found rather than written: every folder with an `__init__.py` below the
architecture's folders ships, so a new package (a target under exporters/targets/) needs no edit
here or in pyproject.toml, which holds everything else."""

from pathlib import Path

from setuptools import find_packages, setup

# The visible folders are the architecture; they install under one namespace (mvit.*) so nothing
# generic like `models` lands in site-packages.
PACKAGE_DIR = {"mvit": "mvit", "mvit.models": "models", "mvit.exporters": "exporters", "mvit.benchmarks": "benchmarks", "mvit.evaluation": "evaluation"}
ROOT = Path(__file__).resolve().parent


def packages() -> list[str]:
    found = []
    for package, folder in PACKAGE_DIR.items():
        found += [package, *(f"{package}.{sub}" for sub in find_packages(str(ROOT / folder)))]
    return found


setup(package_dir=PACKAGE_DIR, packages=packages())
