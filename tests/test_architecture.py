"""The folders are the architecture and data flows one way: models -> exporters -> benchmarks -> evaluation."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> packages it must never import
FORBIDDEN = {
    "models": ("mvit.exporters", "mvit.benchmarks", "mvit.evaluation", "transformers", "timm"),
    "exporters": ("mvit.benchmarks", "mvit.evaluation", "transformers", "timm"),
    "benchmarks": ("mvit.evaluation",),
}


def _package_of(path: Path) -> list[str]:
    """Installed package of a source file: models/checkpoints/load.py -> mvit.models.checkpoints."""
    parts = list(path.resolve().relative_to(ROOT).parent.parts)
    return ["mvit", *parts] if parts else ["mvit"]


def imported_modules(path: Path, package: list[str] | None = None) -> set[str]:
    package = package if package is not None else _package_of(path)
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[: len(package) - node.level + 1])
            if node.module:
                names.add(f"{base}.{node.module}")
            else:  # `from .. import exporters` imports the names themselves as modules
                names.update(f"{base}.{a.name}" for a in node.names)
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
    probe.write_text(
        "from mvit.exporters.api import export_model\nimport transformers\n"
        "from .. import exporters\nfrom ..benchmarks import runner\nfrom .registry import get_spec\n"
    )
    found = imported_modules(probe, package=["mvit", "models", "checkpoints"])
    assert {"mvit.exporters.api", "transformers", "mvit.models.exporters", "mvit.models.benchmarks"} <= found
    assert "mvit.models.checkpoints.registry" in found
    found = imported_modules(probe, package=["mvit", "models"])
    assert {"mvit.exporters", "mvit.benchmarks"} <= found


def _task_names_compared(path: Path, names: set[str]) -> list[str]:
    """`x == "segmentation"`, `task in ("classification", ...)` and the like: each a line number and source."""
    def named(node: ast.AST) -> bool:
        if isinstance(node, ast.Constant):
            return node.value in names
        return isinstance(node, (ast.Tuple, ast.List, ast.Set)) and any(named(e) for e in node.elts)

    source = path.read_text()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            if any(named(operand) for operand in (node.left, *node.comparators)):
                where = path.relative_to(ROOT) if ROOT in path.parents else path.name
                found.append(f"{where}:{node.lineno}: {ast.get_source_segment(source, node)}")
    return found


def test_no_task_name_is_compared_as_a_string_outside_its_task_unit():
    """What differs by task is asked of the task (mvit.exporters.tasks), never decided by its name."""
    from mvit.exporters.tasks import TASKS

    names = set(TASKS)
    files = [p for folder in ("exporters", "evaluation", "benchmarks", "mvit") for p in sorted((ROOT / folder).rglob("*.py"))
             if (ROOT / "exporters" / "tasks") not in p.parents]
    assert len(files) > 50
    found = [hit for p in files for hit in _task_names_compared(p, names)]
    assert found == [], "\n".join(found)


def test_the_scan_finds_a_task_name_compared(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(task):\n    return task == "detection" or task in ("segmentation",) or task != "other"\n')
    hits = _task_names_compared(sample, {"detection", "segmentation"})
    assert [h.split(": ", 1)[1] for h in hits] == ['task == "detection"', 'task in ("segmentation",)']
