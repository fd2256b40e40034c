"""The iOS harness, checked without a Swift toolchain (issue 6).

1. every .swift file under ios_harness/ parses with tree-sitter's Swift grammar;
2. the Codable structs' JSON keys equal benchmarks/results.schema.json's fields, both ways;
3. the harness-shaped golden files (tests/data/harness_golden*.json: packages described from real
   exports, timings synthetic; tests/harness_goldens.py) validate and go through
   `mvit-bench report` and `mvit-bench compare`.
Each check also gets a test showing it fails on broken input. Building and running the Swift
code needs macOS with Xcode; `test_swift_package_tests` runs `swift test` where a toolchain is.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from harness_contract import STRUCT_TO_SCHEMA, contract_mismatches
from swift_source import (
    availability_conditions,
    codable_structs,
    imports,
    newer_api_uses,
    syntax_problems,
    timed_spans,
    top_level_outline,
)

from mvit.benchmarks.schema import load_results, results_schema, validate_document
from mvit.benchmarks.stats import LatencyStats

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "ios_harness"
GOLDEN = REPO / "tests" / "data" / "harness_golden.json"
# A two-function classifier package: per-function rows and compute-plan splits.
GOLDEN_MULTIFUNCTION = REPO / "tests" / "data" / "harness_golden_multifunction.json"
# An EnumeratedShapes package on an iOS 16 phone: a row per size, no compute plan there.
GOLDEN_ENUMERATED = REPO / "tests" / "data" / "harness_golden_enumerated.json"
# The Vision-pipeline detector: Vision runs beside the CoreML ones.
GOLDEN_DETECTOR = REPO / "tests" / "data" / "harness_golden_detector.json"
GOLDENS = [GOLDEN, GOLDEN_MULTIFUNCTION, GOLDEN_ENUMERATED, GOLDEN_DETECTOR]
CORE = HARNESS / "Sources" / "MVitBenchCore"
COREML_BACKEND = HARNESS / "Sources" / "MVitBenchCoreML"
COREAI_BACKEND = HARNESS / "Sources" / "MVitBenchCoreAI"
SCHEMA_STRUCTS = CORE / "BenchmarkReport.swift"
ROW_DETAILS = CORE / "RowDetails.swift"
STATS_STRUCT = CORE / "LatencyStats.swift"


def swift_files() -> list[Path]:
    # Hidden folders (.build/, .swiftpm/) hold SwiftPM's generated code, not ours.
    return sorted(p for p in HARNESS.rglob("*.swift") if not any(part.startswith(".") for part in p.parts))


def swift_sources() -> dict[str, str]:
    return {str(p.relative_to(REPO)): p.read_text() for p in swift_files()}


# --- 1. syntax -------------------------------------------------------------------------------


def test_every_swift_file_parses():
    files = swift_files()
    names = {p.name for p in files}
    # The pieces issue 6 asks for; a missing one would make "everything parses" vacuous.
    assert {
        "Package.swift",
        "LatencyStats.swift",
        "BenchmarkReport.swift",
        "CoreMLBenchmark.swift",
        "main.swift",
        "MVitHarnessApp.swift",
        "ContentView.swift",
        "RowDetails.swift",
        "VisionTiming.swift",
        "ComputePlanTally.swift",
        "FunctionDiscovery.swift",
        "UsageExamples.swift",
        "CoreAIBenchmark.swift",
        "HarnessRun.swift",
    } <= names
    problems = [str(p) for f in files for p in syntax_problems(f.read_bytes(), str(f.relative_to(REPO)))]
    assert not problems, "Swift syntax errors:\n" + "\n".join(problems)


@pytest.mark.parametrize(
    ("snippet", "line", "kind"),
    [
        ("struct A: Codable {\n    let x: Int\n", 3, "MISSING"),  # unclosed brace
        ('func f() {\n    print("hi"\n}\n', 2, "MISSING"),  # unclosed call
        ("enum K: String, CodingKey {\n    case a = \n}\n", 2, "ERROR"),  # raw value left out
        ("let a = 1\n}}\n", 2, "ERROR"),  # stray braces
    ],
)
def test_broken_swift_is_reported_with_its_line(snippet, line, kind):
    problems = syntax_problems(snippet, "broken.swift")
    assert problems, f"no syntax error found in {snippet!r}"
    assert (problems[0].line, problems[0].kind) == (line, kind)
    assert str(problems[0]).startswith(f"broken.swift:{line}:")


def test_core_is_foundation_only_and_the_coreml_backend_is_guarded():
    sources = HARNESS / "Sources"
    for path in sorted((sources / "MVitBenchCore").glob("*.swift")):
        assert set(imports(path.read_text())) <= {"Foundation"}, f"{path.name} imports more than Foundation"
    for path in sorted((sources / "MVitBenchCoreML").glob("*.swift")):
        outline = top_level_outline(path.read_text())
        # Everything inside one #if canImport(CoreML) ... #endif, so the package builds anywhere.
        assert outline[0] == "#if canImport(CoreML)" and outline[-1] == "#endif", path.name
        assert not any(item.startswith("#") for item in outline[1:-1]), path.name
    for path in sorted((sources / "MVitBenchCoreAI").glob("*.swift")):
        outline = top_level_outline(path.read_text())
        # Core AI code needs an SDK that has it; the router (CoreML plus Core AI) needs CoreML.
        assert outline[0] in ("#if canImport(CoreAI)", "#if canImport(CoreML)") and outline[-1] == "#endif", path.name
    manifest = (HARNESS / "Package.swift").read_text()
    for target in ("MVitBenchCore", "MVitBenchCoreML", "MVitBenchCoreAI", "mvit-harness"):
        assert f'(name: "{target}"' in manifest and (sources / target).is_dir(), target


# --- the timed span ends before anything made in it is released ---------------------------------


def test_nothing_made_in_a_timed_span_is_released_before_the_stopwatch_is_read():
    spans = [span for path, text in swift_sources().items() for span in timed_spans(text, path)]
    # The CoreML prediction, the Vision request, Stopwatch.time (compile, load), and Core AI's
    # load and run: a check of fewer spans would pass because a span went missing.
    assert sorted(Path(span.path).name for span in spans) == [
        "CoreAIBenchmark.swift",
        "CoreAIBenchmark.swift",
        "CoreMLBenchmark.swift",
        "Stopwatch.swift",
        "VisionTiming.swift",
    ]
    problems = [p for span in spans for p in span.problems]
    assert not problems, "\n".join(problems)
    prediction = (COREML_BACKEND / "CoreMLBenchmark.swift").read_text()
    assert "let output = try model.prediction(from: input)" in prediction
    run = (COREAI_BACKEND / "CoreAIBenchmark.swift").read_text()
    assert "let outputs = try await function.run(inputs: inputs)" in run


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # the form the desk check found: the output discarded, released inside the span
        (
            COREML_BACKEND / "CoreMLBenchmark.swift",
            "let output = try model.prediction(from: input)\n            return withExtendedLifetime(output) { stopwatch.elapsedMs }",
            "_ = try model.prediction(from: input)\n            return stopwatch.elapsedMs",
            "discards a value inside the timed span",
        ),
        # bound to a name but read after its last use: Swift may release it before the read
        (
            COREML_BACKEND / "CoreMLBenchmark.swift",
            "return withExtendedLifetime(output) { stopwatch.elapsedMs }",
            "return stopwatch.elapsedMs",
            "output may be released before stopwatch.elapsedMs is read",
        ),
        (
            COREML_BACKEND / "VisionTiming.swift",
            "let ms = withExtendedLifetime(handler) { stopwatch.elapsedMs }",
            "let ms = stopwatch.elapsedMs",
            "handler may be released",
        ),
        (
            COREAI_BACKEND / "CoreAIBenchmark.swift",
            "return withExtendedLifetime(outputs) { stopwatch.elapsedMs }",
            "return stopwatch.elapsedMs",
            "outputs may be released before stopwatch.elapsedMs is read",
        ),
        (
            COREAI_BACKEND / "CoreAIBenchmark.swift",
            "let loadMs = withExtendedLifetime(model) { stopwatch.elapsedMs }",
            "let loadMs = stopwatch.elapsedMs",
            "model may be released",
        ),
        # a value in a nested scope dies when the scope closes, inside the span
        (
            COREML_BACKEND / "CoreMLBenchmark.swift",
            "let output = try model.prediction(from: input)\n",
            "let output = try model.prediction(from: input)\n            do { let copy = output; print(copy) }\n",
            "copy lives in a scope that closes inside the timed span",
        ),
    ],
    ids=["discarded-output", "output-not-held", "vision-handler-not-held", "coreai-outputs-not-held", "coreai-model-not-held", "nested-scope"],
)
def test_timed_span_check_reports_a_release_inside_the_span(path, old, new, expected):
    text = path.read_text()
    assert old in text, f"mutation {old!r} no longer applies to {path.name}"
    problems = [p for span in timed_spans(text.replace(old, new, 1), path.name) for p in span.problems]
    assert any(expected in p for p in problems), problems


# --- 2. the Swift structs against the Python schema -------------------------------------------


def test_swift_structs_match_results_schema():
    problems = contract_mismatches(swift_sources(), results_schema())
    assert not problems, "Swift harness and results.schema.json disagree:\n" + "\n".join(problems)


def schema_structs() -> dict:
    return codable_structs(SCHEMA_STRUCTS.read_text(), "BenchmarkReport.swift") | codable_structs(ROW_DETAILS.read_text(), "RowDetails.swift")


def test_contract_reads_keys_from_coding_keys():
    structs = schema_structs()
    assert set(STRUCT_TO_SCHEMA) - {"LatencyStats"} <= set(structs)
    result_keys = structs["BenchmarkResult"].json_keys()
    assert result_keys["first_inference_ms"] == "firstInferenceMs"
    assert result_keys["compute_units"] == "computeUnits"
    assert structs["BenchmarkResult"].properties["compileMs"].optional
    assert result_keys["compute_plan"] == "computePlan" and result_keys["function"] == "function"
    assert structs["VisionRun"].json_keys()["recognized_objects"] == "recognizedObjects"
    assert not structs["ComputePlanSplit"].properties["available"].optional


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # a renamed key is reported from both sides
        (
            SCHEMA_STRUCTS,
            '= "first_inference_ms"',
            '= "first_inference"',
            ["'first_inference' is not in the schema's result object", "'first_inference_ms' has no Swift property"],
        ),
        (STATS_STRUCT, '= "p99_ms"', '= "p99"', ["'p99' is not in the schema's stats object"]),
        # a new property without a key, and a required field made optional
        (
            SCHEMA_STRUCTS,
            "    public var cores: Int\n",
            "    public var cores: Int\n    public var gpu: String\n",
            ["stored property 'gpu' has no CodingKeys case"],
        ),
        (SCHEMA_STRUCTS, "public var loadMs: Double\n", "public var loadMs: Double?\n", ["loadMs is optional but the schema requires 'load_ms'"]),
        (SCHEMA_STRUCTS, "public var macs: Int?", "public var macs: String?", ["macs: String? encodes as string"]),
        (HARNESS / "Sources" / "MVitBenchCore" / "ComputeUnitSetting.swift", "case cpuAndGPU", "case cpuAndGpu", ["ComputeUnitSetting raw values"]),
        # the issue-11 objects drift the same ways
        (
            ROW_DETAILS,
            '= "recognized_objects"',
            '= "objects"',
            ["'objects' is not in the schema's vision object", "'recognized_objects' has no Swift property"],
        ),
        (ROW_DETAILS, "public var available: Bool\n", "public var available: Bool?\n", ["available is optional but the schema requires 'available'"]),
        (ROW_DETAILS, "public var cpuCost: Double?", "public var cpuCost: String?", ["cpuCost: String? encodes as string"]),
        (SCHEMA_STRUCTS, 'case computePlan = "compute_plan"', 'case computePlan = "plan"', ["'plan' is not in the schema's result object"]),
    ],
    ids=[
        "renamed-result-key",
        "renamed-stats-key",
        "unkeyed-property",
        "optional-required",
        "wrong-type",
        "compute-unit-name",
        "renamed-vision-key",
        "optional-plan-flag",
        "wrong-cost-type",
        "renamed-plan-key",
    ],
)
def test_contract_reports_drift(path, old, new, expected):
    sources = swift_sources()
    key = str(path.relative_to(REPO))
    assert old in sources[key], f"mutation {old!r} no longer applies to {key}"
    sources[key] = sources[key].replace(old, new, 1)
    problems = "\n".join(contract_mismatches(sources, results_schema()))
    for text in expected:
        assert text in problems, f"expected {text!r} in:\n{problems}"


def test_contract_reports_a_schema_field_the_swift_side_lacks():
    schema = copy.deepcopy(results_schema())
    schema["$defs"]["result"]["properties"]["energy_mj"] = {"type": ["number", "null"]}
    schema["properties"]["machine"]["required"].append("thermal_state")
    problems = "\n".join(contract_mismatches(swift_sources(), schema))
    assert "the schema's result key 'energy_mj' has no Swift property" in problems
    assert "thermalState is optional but the schema requires 'thermal_state'" in problems


# --- 3. the golden harness file through the Python tools ----------------------------------------


def golden(path: Path = GOLDEN) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_golden_is_what_the_swift_structs_write(path):
    """Every key in the golden is one the Swift side writes; only nil optionals are left out."""
    structs = schema_structs() | codable_structs(STATS_STRUCT.read_text())
    doc = golden(path)
    visions = [r["vision"] for r in doc["results"] if "vision" in r]
    objects = {
        "BenchmarkReport": [doc],
        "ToolInfo": [doc["tool"]],
        "MachineInfo": [doc["machine"]],
        "BenchmarkResult": doc["results"],
        "LatencyStats": [r["stats"] for r in doc["results"]] + [v["stats"] for v in visions],
        "VisionRun": visions,
        "ComputePlanSplit": [r["compute_plan"] for r in doc["results"]],
    }
    for name, instances in objects.items():
        struct = structs[name]
        keys = struct.json_keys()
        required = {k for k, prop in keys.items() if not struct.properties[prop].optional}
        for obj in instances:
            assert set(obj) <= set(keys), f"{name}: keys the Swift side never writes: {set(obj) - set(keys)}"
            assert required <= set(obj), f"{name}: non-optional keys missing: {required - set(obj)}"
    assert doc["tool"]["name"] == "mvit-ios-harness"
    assert {r["runtime"] for r in doc["results"]} == {"coreml"}
    if path == GOLDEN:
        assert [r["compute_units"] for r in doc["results"]] == ["cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine", "all"]
    elif path == GOLDEN_MULTIFUNCTION:  # one row per function x compute units, in the package's function order
        assert [(r["function"], r["compute_units"]) for r in doc["results"]] == [
            ("A_64", "cpuOnly"),
            ("A_64", "cpuAndNeuralEngine"),
            ("A_128", "cpuOnly"),
            ("A_128", "cpuAndNeuralEngine"),
        ]
    elif path == GOLDEN_ENUMERATED:  # one row per compute units x size, the default size first
        assert [(r["compute_units"], r["input_size"]) for r in doc["results"]] == [
            ("cpuOnly", [64, 64]),
            ("cpuOnly", [128, 128]),
            ("cpuAndNeuralEngine", [64, 64]),
            ("cpuAndNeuralEngine", [128, 128]),
        ]
    else:
        assert all("vision" in r for r in doc["results"]) and len(doc["results"]) == 2


@pytest.mark.parametrize("path", GOLDENS, ids=lambda p: p.stem)
def test_golden_validates_and_its_stats_follow_from_its_times(path):
    doc = load_results(path)
    for r in doc["results"]:
        assert r["threads"] is None and r["macs"] is None  # omitted by Swift, filled in as null
        # Exact equality: the Swift side computes these with the same operations (LatencyStats.swift).
        assert LatencyStats.from_times(r["times_ms"]).as_dict() == r["stats"]
        if r["vision"] is not None:
            assert LatencyStats.from_times(r["vision"]["times_ms"]).as_dict() == r["vision"]["stats"]


def test_schema_rejects_a_harness_file_with_a_renamed_key():
    from mvit.benchmarks.schema import ResultsFileError

    doc = golden()
    doc["results"][0]["first_inference"] = doc["results"][0].pop("first_inference_ms")
    with pytest.raises(ResultsFileError, match="first_inference"):
        validate_document(doc, source="renamed.json")


class _Done:
    def __init__(self, code: int, output: str) -> None:
        self.exit_code, self.output = code, output


def _bench(*args: str):
    """`mvit-bench ARGS` in this process, through the console script's own entry point (one error path)."""
    import contextlib
    import io

    from mvit.benchmarks.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return _Done(code, out.getvalue() + err.getvalue())


def test_report_ingests_harness_json(tmp_path):
    done = _bench("report", GOLDEN, "--out", tmp_path / "phone")
    assert done.exit_code == 0, done.output
    table = (tmp_path / "phone.md").read_text()
    assert (tmp_path / "phone.png").stat().st_size > 0
    for units in ("cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine", "all"):
        assert f"coreml ({units})" in table
    assert "iPhone13,2" in table and "thermal nominal" in table
    ane = load_results(GOLDEN)["results"][2]["stats"]["mean_ms"]
    assert f"{ane:.2f}" in table


def test_compare_ingests_harness_json(tmp_path):
    same = _bench("compare", GOLDEN, GOLDEN)
    assert same.exit_code == 0, same.output
    assert same.output.count("**SAME**") == 4  # one verdict row per compute-unit setting

    slower = _bench("compare", GOLDEN, _slowed_copy(tmp_path, factor=1.5), "--out", tmp_path / "cmp.md")
    assert slower.exit_code == 1, slower.output  # a significant regression is the only non-zero exit
    assert (tmp_path / "cmp.md").read_text().count("**REGRESSION**") == 4


def test_report_rejects_a_broken_harness_file_in_one_line(tmp_path):
    doc = golden()
    doc["results"][0]["compute_units"] = "neuralEngine"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    done = _bench("report", bad)
    assert done.exit_code == 2
    assert "compute_units" in done.output and "Traceback" not in done.output


# --- issue 11: functions, Vision, compute plan ---------------------------------------------------


@pytest.mark.parametrize("path", [GOLDEN_MULTIFUNCTION, GOLDEN_ENUMERATED], ids=lambda p: p.stem)
def test_rows_per_function_or_size_report_and_compare_apart(tmp_path, path):
    """Each function, and each enumerated size, is its own row: report lists both input sizes,
    compare matches row for row."""
    done = _bench("report", path, "--out", tmp_path / "multi")
    assert done.exit_code == 0, done.output
    table = (tmp_path / "multi.md").read_text()
    assert "64x64" in table and "128x128" in table
    same = _bench("compare", path, path)
    assert same.exit_code == 0 and same.output.count("**SAME**") == 4, same.output


def _broken(tmp_path: Path, change) -> Path:
    doc = golden(GOLDEN_DETECTOR)
    change(doc["results"][0])
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r["vision"]["times_ms"].pop(), "vision has runs=100 but 99 times_ms"),
        (lambda r: r["compute_plan"].update(cpu_ops=r["compute_plan"]["cpu_ops"] + 1), "devices add up to"),
        (lambda r: r["compute_plan"].update(available=False), "reason"),  # unavailable needs its reason
        (lambda r: r["compute_plan"].update(neural_engine_cost=1.5), "neural_engine_cost"),
        (lambda r: r["vision"].pop("recognized_objects"), "recognized_objects"),
        (lambda r: r.update(function=""), "function"),
    ],
    ids=["vision-runs", "plan-sum", "unavailable-without-reason", "cost-above-one", "no-object-count", "empty-function"],
)
def test_schema_rejects_broken_harness_details_in_one_line(tmp_path, change, message):
    done = _bench("report", _broken(tmp_path, change))
    assert done.exit_code == 2, done.output
    assert message in done.output and "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1


def test_compute_plan_unavailable_is_a_valid_row():
    doc = golden()
    doc["results"][0]["compute_plan"] = {"available": False, "reason": "MLComputePlan needs iOS 17.4 / macOS 14.4 (this is Version 17.2 (Build 21C62))"}
    row = validate_document(doc, source="old-phone.json")["results"][0]
    assert row["compute_plan"]["cpu_ops"] is None and row["vision"] is None and row["function"] is None


def test_a_core_ai_row_is_a_valid_row_that_report_and_compare_read(tmp_path):
    """The Core AI backend's rows: runtime "coreai" (the string the Swift writes), no compile step,
    and a compute plan that says Core AI has none to give."""
    benchmark = (COREAI_BACKEND / "CoreAIBenchmark.swift").read_text()
    assert 'runtime: "coreai"' in benchmark and "compileMs: nil" in benchmark
    doc = golden()
    row = doc["results"][0]
    row.update(
        runtime="coreai",
        compile_ms=None,
        artefact="mobilevit_xxs_A_256_fp16.aimodel",
        compute_plan={"available": False, "reason": "Core AI has no API for where ops run"},
    )
    checked = validate_document(copy.deepcopy(doc), source="phone-coreai.json")["results"][0]
    assert checked["runtime"] == "coreai" and checked["compile_ms"] is None
    path = tmp_path / "phone-coreai.json"
    path.write_text(json.dumps(doc))
    done = _bench("report", str(path))
    assert done.exit_code == 0, done.output
    from mvit.benchmarks.schema import ResultsFileError

    row["runtime"] = "coreai-linux"  # a runtime the schema does not know is refused
    with pytest.raises(ResultsFileError, match="runtime"):
        validate_document(doc, source="unknown.json")


def test_harness_source_follows_the_conventions_it_reads():
    """What the Swift reads from an artefact is what the exporters write, and the gates around
    the newer APIs name the versions that have them."""
    from mvit.exporters.targets.coreml.pipeline import VISION_OUTPUTS

    vision = (COREML_BACKEND / "VisionTiming.swift").read_text()
    assert f'isSuperset(of: ["{VISION_OUTPUTS[0]}", "{VISION_OUTPUTS[1]}"])' in vision
    assert "VNRecognizedObjectObservation" in vision
    discovery = (COREML_BACKEND / "FunctionDiscovery.swift").read_text()
    assert 'metadata["functions"]' in discovery and "functionNames" in discovery
    entry = codable_structs(ROW_DETAILS.read_text())["Entry"]  # one item of the "functions" metadata list
    assert set(entry.json_keys()) == {"name", "image_size", "config"}
    assert availability_conditions(discovery) == ["#available(iOS 18.0, macOS 15.0, *)"] * 2
    plan = (COREML_BACKEND / "ComputePlanTally.swift").read_text()
    assert availability_conditions(plan) == ["#available(iOS 17.4, macOS 14.4, *)"]
    assert "@available(iOS 17.4, macOS 14.4, *)" in plan  # the walker that touches MLComputePlan types
    benchmark = (COREML_BACKEND / "CoreMLBenchmark.swift").read_text()
    for call in ("FunctionDiscovery.select(", "VisionTiming.run(", "ComputePlanTally.split(", "function: function.name"):
        assert call in benchmark, call


# --- deployment minimums: iOS 16 / macOS 13, newer APIs behind #available ----------------------

MINIMUM = {"iOS": "16.0", "macOS": "13.0"}
# APIs newer than the minimums, with the versions Apple's documentation gives them
# (developer.apple.com/documentation/coreml/...): ".name" is a member access (x.name). The
# harness uses the CoreML ones; the SwiftUI/Observation ones are what an edit of the app would
# reach for first. MLModelAsset itself is iOS 16, its init(url:) iOS 18: every use goes with
# .functionNames, which is listed.
NEWER_APIS = {
    "MLComputePlan": "iOS 17.4, macOS 14.4",
    "MLModelStructure": "iOS 17.4, macOS 14.4",
    "MLComputeDevice": "iOS 17.0, macOS 14.0",
    ".functionName": "iOS 18.0, macOS 15.0",
    ".functionNames": "iOS 18.0, macOS 15.0",
    "MLState": "iOS 18.0, macOS 15.0",
    ".makeState": "iOS 18.0, macOS 15.0",
    "MLTensor": "iOS 18.0, macOS 15.0",
    "ContentUnavailableView": "iOS 17.0, macOS 14.0",
    "Observable": "iOS 17.0, macOS 14.0",
    ".sensoryFeedback": "iOS 17.0, macOS 14.0",
    ".symbolEffect": "iOS 17.0, macOS 14.0",
    ".containerRelativeFrame": "iOS 17.0, macOS 14.0",
    ".scrollTargetBehavior": "iOS 17.0, macOS 14.0",
    ".inspector": "iOS 17.0, macOS 14.0",
    # Core AI (developer.apple.com/documentation/coreai): every symbol the harness uses is 27.0.
    "AIModel": "iOS 27.0, macOS 27.0",
    "AIModelAsset": "iOS 27.0, macOS 27.0",
    "SpecializationOptions": "iOS 27.0, macOS 27.0",
    "ComputeUnitKind": "iOS 27.0, macOS 27.0",
    "InferenceFunction": "iOS 27.0, macOS 27.0",
    "InferenceFunctionDescriptor": "iOS 27.0, macOS 27.0",
    "NDArray": "iOS 27.0, macOS 27.0",
    "CoreAIBenchmark": "iOS 27.0, macOS 27.0",
}
COREAI_APIS = {
    "AIModel",
    "AIModelAsset",
    "SpecializationOptions",
    "ComputeUnitKind",
    "InferenceFunction",
    "InferenceFunctionDescriptor",
    "NDArray",
    "CoreAIBenchmark",
}


def test_deployment_minimums_are_ios_16_and_macos_13():
    """iPhones on iOS 16 can install the app: nothing the harness needs is newer."""
    manifest = (HARNESS / "Package.swift").read_text()
    assert "platforms: [.macOS(.v13), .iOS(.v16)]" in manifest
    spec = yaml.safe_load((HARNESS / "App" / "project.yml").read_text())
    assert spec["options"]["deploymentTarget"] == {"iOS": MINIMUM["iOS"]}
    assert spec["targets"]["MVitHarness"]["deploymentTarget"] == MINIMUM["iOS"]


def test_every_newer_api_is_behind_an_availability_gate():
    uses = [u for path, text in swift_sources().items() for u in newer_api_uses(text, NEWER_APIS, path)]
    # The compute plan and the multifunction loading are found; an empty list would pass vacuously.
    assert {u.name for u in uses} >= {"MLComputePlan", "MLModelStructure", "MLComputeDevice", "functionName", "functionNames"} | COREAI_APIS
    assert not [u for u in uses if not u.gated], "\n".join(str(u) for u in uses if not u.gated)


@pytest.mark.parametrize(
    ("path", "old", "new", "expected"),
    [
        # the gate taken away
        (COREML_BACKEND / "FunctionDiscovery.swift", "guard #available(iOS 18.0, macOS 15.0, *) else {", "guard true else {", "functionName needs iOS 18.0"),
        # a gate for an older version than the API needs
        (
            COREML_BACKEND / "ComputePlanTally.swift",
            "guard #available(iOS 17.4, macOS 14.4, *) else {",
            "guard #available(iOS 17.0, macOS 14.0, *) else {",
            "MLComputePlan needs iOS 17.4",
        ),
        (
            COREML_BACKEND / "ComputePlanTally.swift",
            "@available(iOS 17.4, macOS 14.4, *)\nprivate struct PlanWalker",
            "private struct PlanWalker",
            "MLModelStructure needs iOS 17.4",
        ),
        # used in the else branch of its own gate
        (
            COREML_BACKEND / "FunctionDiscovery.swift",
            "        }\n        return [.only]\n",
            "        } else {\n            _ = try await MLModelAsset(url: compiledURL).functionNames\n        }\n        return [.only]\n",
            "functionNames needs iOS 18.0",
        ),
        # a newer SwiftUI view in the app
        (
            HARNESS / "App" / "Sources" / "ContentView.swift",
            'Text("No models bundled.',
            'ContentUnavailableView("No models", systemImage: "cpu"); Text("No models bundled.',
            "ContentUnavailableView needs iOS 17.0",
        ),
        # the Core AI backend without its declaration gate, or the router calling it ungated
        (
            COREAI_BACKEND / "CoreAIBenchmark.swift",
            "@available(iOS 27.0, macOS 27.0, *)\npublic struct CoreAIBenchmark",
            "public struct CoreAIBenchmark",
            "AIModel needs iOS 27.0",
        ),
        (
            COREAI_BACKEND / "CoreAIAssetInfo.swift",
            "@available(iOS 27.0, macOS 27.0, *)\nenum CoreAIAssetInfo",
            "@available(iOS 26.0, macOS 26.0, *)\nenum CoreAIAssetInfo",
            "AIModelAsset needs iOS 27.0",
        ),
        (COREAI_BACKEND / "HarnessRun.swift", "if #available(iOS 27.0, macOS 27.0, *) {", "if true {", "CoreAIBenchmark needs iOS 27.0"),
    ],
    ids=[
        "gate-removed",
        "gate-too-old",
        "declaration-gate-removed",
        "else-branch",
        "new-swiftui-view",
        "coreai-declaration-gate-removed",
        "coreai-gate-too-old",
        "coreai-router-ungated",
    ],
)
def test_availability_check_reports_an_ungated_use(path, old, new, expected):
    text = path.read_text()
    assert old in text, f"mutation {old!r} no longer applies to {path.name}"
    uses = newer_api_uses(text.replace(old, new, 1), NEWER_APIS, path.name)
    assert any(expected in str(u) and not u.gated for u in uses), "\n".join(map(str, uses))


def test_row_details_say_the_thresholds_are_the_exported_ones():
    """The Vision count is at the package's own thresholds (the harness feeds none), which the
    exporter records under these metadata keys; Vision has no thresholds of its own here."""
    from mvit.exporters.targets.coreml.pipeline import THRESHOLD_INPUTS

    struct = codable_structs(ROW_DETAILS.read_text())["VisionRun"]
    source = ROW_DETAILS.read_text().splitlines()
    doc = " ".join(
        line.strip().lstrip("/ ") for line in source[struct.properties["recognizedObjects"].line - 4 : struct.properties["recognizedObjects"].line - 1]
    )
    assert "Vision's default" not in doc and "exported with" in doc
    assert "confidence_threshold" in doc and "iou_threshold" in doc
    # ... because the harness leaves optional inputs (the pipeline's threshold inputs) unfed.
    factory = (COREML_BACKEND / "ModelInputFactory.swift").read_text()
    assert "for (name, feature) in description.inputDescriptionsByName where !feature.isOptional" in factory
    assert not any(f'"{name}"' in factory for name in THRESHOLD_INPUTS)


def _slowed_copy(tmp_path: Path, factor: float) -> Path:
    """The golden with every timed run `factor` times slower (a clear regression)."""
    doc = golden()
    for r in doc["results"]:
        r["times_ms"] = [t * factor for t in r["times_ms"]]
        r["stats"] = LatencyStats.from_times(r["times_ms"]).as_dict()
    path = tmp_path / "slower.json"
    path.write_text(json.dumps(doc))
    return path


# --- the app's project spec and the Swift package -------------------------------------------


def test_project_spec_bundles_the_models_folder_and_the_package(monkeypatch):
    app = HARNESS / "App"
    spec = yaml.safe_load((app / "project.yml").read_text())
    target = spec["targets"]["MVitHarness"]
    sources = [s if isinstance(s, dict) else {"path": s} for s in target["sources"]]
    models = [s for s in sources if s["path"] == "Models"]
    # A folder reference (not a group) so artefacts dropped in later are bundled as they are.
    assert models and models[0].get("type") == "folder", "Models must be a folder reference"
    assert (app / "Models" / ".gitkeep").is_file()
    for source in sources:
        assert (app / source["path"]).is_dir(), f"project.yml source {source['path']} does not exist"
    package_dir = (app / spec["packages"]["MVitBench"]["path"]).resolve()
    manifest = (package_dir / "Package.swift").read_text()
    for dependency in target["dependencies"]:
        assert f'.library(name: "{dependency["product"]}"' in manifest, dependency
    # ... and it is the folder `mvit-export --into-harness` copies artefacts into.
    from mvit.exporters.api import harness_models_dir

    monkeypatch.chdir(REPO)
    assert harness_models_dir().resolve() == (app / "Models").resolve()
    info = target["info"]["properties"]
    # Documents/ must be reachable from Files and Finder to get the JSON off the phone.
    assert info["UIFileSharingEnabled"] is True and info["LSSupportsOpeningDocumentsInPlace"] is True


def test_swift_package_tests():
    """`swift test` (statistics vs the golden file bit for bit, JSON round trip, arguments)."""
    swift = shutil.which("swift")
    if swift is None:
        pytest.skip("no Swift toolchain on this machine: `swift test --package-path ios_harness` needs macOS with Xcode 15+ (or a Swift 5.9 toolchain)")
    done = subprocess.run([swift, "test", "--package-path", str(HARNESS)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
