"""The folders are the architecture and data flows one way: models -> exporters -> benchmarks."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> packages it must never import
FORBIDDEN = {
    "models": ("mvit.exporters", "mvit.benchmarks", "transformers", "timm"),
    "exporters": ("mvit.benchmarks", "transformers", "timm"),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level >= 2:
            names.add("mvit." + (node.module or "").split(".")[0])  # `from ..exporters import x`
    return names


@pytest.mark.parametrize("folder", sorted(FORBIDDEN))
def test_no_import_flows_backwards(folder):
    bad = []
    for path in sorted((ROOT / folder).rglob("*.py")):
        for name in imported_modules(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[folder]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, bad


def test_the_checker_sees_a_forbidden_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("from mvit.exporters.api import export_model\nimport transformers\n")
    assert {"mvit.exporters.api", "transformers"} <= imported_modules(probe)
