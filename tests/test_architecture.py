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


# ---- exporters/: no import cycle, no import inside a function --------------------------------

EXPORTERS = ROOT / "exporters"
# A target's converter and runtime are optional dependencies (pyproject extras): its package may
# import them where they are used, so `mvit` imports without them. Nothing else is deferred.
OPTIONAL_DEPENDENCY_HOME = EXPORTERS / "targets"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["mvit", *parts])


def _exporters_modules(root: Path = EXPORTERS) -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(root.rglob("*.py"))}


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the modules of `modules` it imports (`from .x import y` counts x.y when y is a module)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        tree = ast.parse(path.read_text())
        edges = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                edges.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
                edges.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
        graph[name] = {e for e in edges if e in modules and e != name}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each a cycle's members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def function_level_imports(path: Path, allow_third_party: bool) -> list[str]:
    """`import` statements inside a function body; a third-party one is allowed where asked."""
    found = []
    for fn in ast.walk(ast.parse(path.read_text())):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = ["." * node.level + (node.module or "")]
            else:
                continue
            if not allow_third_party or any(n.startswith((".", "mvit")) for n in names):
                found.append(f"{path.name}:{node.lineno} imports {', '.join(names)} inside {fn.name}()")
    return found


def test_exporters_have_no_import_cycle():
    cycles = import_cycles(import_graph(_exporters_modules()))
    assert not cycles, f"import cycles in exporters/: {cycles}"


def test_exporters_import_nothing_inside_a_function():
    found = []
    for path in sorted(EXPORTERS.rglob("*.py")):
        found += [
            f"{path.parent.relative_to(ROOT)}/{line}" for line in function_level_imports(path, allow_third_party=OPTIONAL_DEPENDENCY_HOME in path.parents)
        ]
    assert not found, found


def test_the_cycle_and_deferred_import_checks_see_what_they_look_for(tmp_path):
    files = {
        "__init__.py": "",
        "api.py": "from . import multisize\n",
        "multisize.py": "from .targets import writer\n",
        "targets/__init__.py": "",
        "targets/writer.py": "from ..api import export_model\n\n\ndef write():\n    import onnx\n",
        "report.py": "from .api import export_model\n\n\ndef later():\n    from . import api\n",
    }
    modules = {}
    for rel, text in files.items():
        path = tmp_path / "exporters" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        parts = ["mvit", "exporters", *Path(rel).with_suffix("").parts]
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    cycles = import_cycles(import_graph(modules))
    assert cycles == [["mvit.exporters.api", "mvit.exporters.multisize", "mvit.exporters.targets.writer"]]
    assert function_level_imports(modules["mvit.exporters.report"], allow_third_party=True) == ["report.py:5 imports . inside later()"]
    assert function_level_imports(modules["mvit.exporters.targets.writer"], allow_third_party=True) == []
    assert function_level_imports(modules["mvit.exporters.targets.writer"], allow_third_party=False) == ["writer.py:5 imports onnx inside write()"]


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
    files = [
        p
        for folder in ("exporters", "evaluation", "benchmarks", "mvit")
        for p in sorted((ROOT / folder).rglob("*.py"))
        if (ROOT / "exporters" / "tasks") not in p.parents
    ]
    assert len(files) > 50
    found = [hit for p in files for hit in _task_names_compared(p, names)]
    assert found == [], "\n".join(found)


def test_the_scan_finds_a_task_name_compared(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('def f(task):\n    return task == "detection" or task in ("segmentation",) or task != "other"\n')
    hits = _task_names_compared(sample, {"detection", "segmentation"})
    assert [h.split(": ", 1)[1] for h in hits] == ['task == "detection"', 'task in ("segmentation",)']


def test_no_target_or_runtime_name_is_compared_as_a_string_outside_its_package():
    """What differs by target is asked of the target (its package or its registry line), never decided
    by its name or its runtime's; "pytorch", the baseline every runtime is compared with, is shared."""
    from mvit.exporters.targets import _TARGETS

    files = [p for folder in ("exporters", "evaluation", "benchmarks", "mvit") for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 50
    found = []
    for path in files:
        others = {word for name, entry in _TARGETS.items() if ROOT / "exporters" / "targets" / name not in path.parents for word in (name, entry.runtime)}
        found += _task_names_compared(path, others)
    assert found == [], "\n".join(found)
