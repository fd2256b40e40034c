"""The harness goldens describe packages `mvit-export` really makes, and time every size.

tests/harness_goldens.py exports MobileViT-XXS (one size, two functions, EnumeratedShapes) and an
SSDLite-XXS Vision detector at 64..128 pixels, reads each package the way the Swift harness does,
and writes tests/data/harness_golden*.json. Regenerating them here must give the same bytes, so
a golden cannot describe a package the exporter would not make. The CoreMLBenchmark source is
checked to time every size ModelInputFactory.inputSizes lists, and that to list enumerated ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness_goldens import DATA, EXPORTS, describe
from swift_source import parse

REPO = Path(__file__).resolve().parents[1]
COREML_BACKEND = REPO / "ios_harness" / "Sources" / "MVitBenchCoreML"


# Four CoreML exports (about two to five minutes on a shared 2-core machine), made once for the module.
slow = pytest.mark.slow


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory) -> dict[str, tuple[str, Path]]:
    """golden name -> (the text made now from fresh exports, the package it describes)."""
    from harness_goldens import make

    out = tmp_path_factory.mktemp("exports")
    into = tmp_path_factory.mktemp("goldens")
    packages = make(out, into)
    return {name: ((into / name).read_text(), package) for name, package in packages.items()}


@slow
@pytest.mark.parametrize("name", [e.golden for e in EXPORTS])
def test_regenerating_a_golden_from_a_fresh_export_gives_the_same_file(regenerated, name):
    made, _ = regenerated[name]
    assert made == (DATA / name).read_text(), (
        f"{name} is not what the current exporter's package gives; re-run .venv/bin/python tests/data/make_harness_golden.py"
    )


def _metadata(package: Path) -> dict[str, str]:
    import coremltools as ct

    return dict(ct.utils.load_spec(str(package)).description.metadata.userDefined)


@slow
def test_every_enumerated_size_is_a_row(regenerated):
    """Each size the EnumeratedShapes package records (its own metadata, not the spec the golden
    was read from) is timed under every compute-unit setting, the default first."""
    made, package = regenerated["harness_golden_enumerated.json"]
    sizes = json.loads(_metadata(package)["enumerated_sizes"])
    assert sizes == [64, 128]
    rows = json.loads(made)["results"]
    for units in {r["compute_units"] for r in rows}:
        assert [r["input_size"] for r in rows if r["compute_units"] == units] == [[s, s] for s in sizes]
    # An iOS 16 phone has no MLComputePlan: every row says so instead of a split.
    assert all(r["compute_plan"]["available"] is False and "iOS 17.4" in r["compute_plan"]["reason"] for r in rows)


@slow
def test_functions_and_vision_follow_the_packages(regenerated):
    made, package = regenerated["harness_golden_multifunction.json"]
    listed = [f["name"] for f in json.loads(_metadata(package)["functions"])]
    assert listed == ["A_64", "A_128"]
    assert list(dict.fromkeys(r["function"] for r in json.loads(made)["results"])) == listed

    made, package = regenerated["harness_golden_detector.json"]
    meta = _metadata(package)
    # The Vision pipeline, with the thresholds it was exported with (the harness feeds none).
    assert meta["nms_form"] == "vision" and {"confidence_threshold", "iou_threshold"} <= set(meta)
    assert describe(package).functions[0].vision
    assert all(r["vision"]["runs"] == 100 for r in json.loads(made)["results"])


def test_a_multi_size_detector_is_refused_by_the_exporter(tmp_path):
    """Why the goldens come from exports: the two-function detector an earlier golden described
    is one the exporter refuses to make."""
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "mvit-export"),
            "--target",
            "coreml",
            "--model",
            "ssdlite_mobilevit_xxs",
            "--image-size",
            "128,192",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "detection" in errors[0]
    assert not list(tmp_path.iterdir())


# --- the Swift side times every size it lists -----------------------------------------------------


def _calls(node, name: str):
    stack = [node]
    while stack:
        current = stack.pop()
        if current.type == "call_expression" and current.children[0].text.decode() == name:
            yield current
        stack.extend(current.children)


def _enclosing(node, kind: str):
    while node is not None and node.type != kind:
        node = node.parent
    return node


def every_size_problems(benchmark: str, factory: str) -> list[str]:
    problems = []
    calls = list(_calls(parse(benchmark).root_node, "timeSize"))
    if len(calls) != 1:
        return [f"expected one timeSize(...) call in CoreMLBenchmark.swift, found {len(calls)}"]
    loop = _enclosing(calls[0], "for_statement")
    if loop is None or loop.child_by_field_name("collection") is None:
        return ["timeSize(...) is not inside a for loop"]
    collection = loop.child_by_field_name("collection").text.decode()
    if f"let {collection} = ModelInputFactory.inputSizes(for: description)" not in benchmark:
        problems.append(f"the loop around timeSize(...) runs over {collection!r}, not ModelInputFactory.inputSizes")
    item = loop.child_by_field_name("item")
    if item is None or f"timeSize({item.text.decode()}," not in calls[0].text.decode():
        problems.append("timeSize(...) is not given the loop's size")
    for api in ("sizeConstraint.enumeratedImageSizes", "shapeConstraint.enumeratedShapes"):
        if api not in factory:
            problems.append(f"ModelInputFactory.inputSizes does not read {api}")
    return problems


def test_the_harness_times_every_size_the_model_takes():
    benchmark = (COREML_BACKEND / "CoreMLBenchmark.swift").read_text()
    factory = (COREML_BACKEND / "ModelInputFactory.swift").read_text()
    assert every_size_problems(benchmark, factory) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "CoreMLBenchmark.swift",
            "let sizes = ModelInputFactory.inputSizes(for: description)",
            "let sizes = [ModelInputFactory.inputSize(for: description)]",
            "not ModelInputFactory.inputSizes",
        ),
        ("CoreMLBenchmark.swift", "timed.append(try timeSize(size, of: model", "timed.append(try timeSize(sizes[0], of: model", "not given the loop's size"),
        ("ModelInputFactory.swift", "image.sizeConstraint.enumeratedImageSizes", "[MLImageSize]()", "does not read sizeConstraint.enumeratedImageSizes"),
    ],
    ids=["default-size-only", "one-size-repeated", "enumerated-sizes-unread"],
)
def test_every_size_check_fails_when_a_size_is_skipped(file, old, new, expected):
    texts = {name: (COREML_BACKEND / name).read_text() for name in ("CoreMLBenchmark.swift", "ModelInputFactory.swift")}
    assert old in texts[file], f"mutation {old!r} no longer applies to {file}"
    texts[file] = texts[file].replace(old, new, 1)
    problems = every_size_problems(texts["CoreMLBenchmark.swift"], texts["ModelInputFactory.swift"])
    assert any(expected in p for p in problems), problems
