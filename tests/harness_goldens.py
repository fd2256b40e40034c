"""The iOS-harness results files in tests/data, made from real `mvit-export` packages.

No phone made them: the timings are drawn from a seeded log-normal. Everything the harness reads
from a package comes from a real export of MobileViT-XXS at small sizes, read the way the Swift
reads it (`describe`): the functions (FunctionDiscovery.swift: the "functions" metadata), each
function's input sizes (ModelInputFactory.inputSizes: the default size, then every enumerated
size), whether Vision times it (VisionTiming.applies: an image input and `confidence` +
`coordinates` outputs), the row labels (ModelLabels.swift: model, config, task, precision
metadata) and the number of ops CoreML would plan (non-const ops of the timed function). `rows`
then lays out one row per function x compute units x input size, in the harness's order.

- harness_golden.json: a classifier (one size) on an iPhone 12 on iOS 17.5.1, four settings;
- harness_golden_multifunction.json: a two-function classifier package (A_64, A_128; iOS 18) on
  an iPhone 15 Pro, CPU and Neural Engine;
- harness_golden_enumerated.json: an EnumeratedShapes classifier (64, 128; the iOS 16-17 form)
  on an iPhone 12 on iOS 16.7.10, where MLComputePlan does not exist: every size timed;
- harness_golden_detector.json: an SSDLite detector (the Vision pipeline) with Vision runs.

Re-run: .venv/bin/python tests/data/make_harness_golden.py (four exports, about two minutes);
tests/test_harness_goldens.py regenerates them and requires the same bytes.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvit.benchmarks.stats import LatencyStats

DATA = Path(__file__).resolve().parent / "data"
VISION_OUTPUTS = {"confidence", "coordinates"}


@dataclass(frozen=True)
class Export:
    """One `mvit-export` run and the golden file made from its package."""

    golden: str
    args: tuple[str, ...]


EXPORTS = (
    Export("harness_golden.json", ("--model", "mobilevit_xxs", "--image-size", "64")),
    Export("harness_golden_multifunction.json", ("--model", "mobilevit_xxs", "--image-size", "64,128")),
    Export("harness_golden_enumerated.json", ("--model", "mobilevit_xxs", "--image-size", "64,128", "--coreml-shapes", "enumerated")),
    Export("harness_golden_detector.json", ("--model", "ssdlite_mobilevit_xxs", "--image-size", "128")),
)


def export(spec: Export, out: Path) -> Path:
    """The package `mvit-export --target coreml ARGS --out OUT` writes (numerics are not what a
    golden describes, so verification is left to the export tests)."""
    folder = out / Path(spec.golden).stem
    command = [str(Path(sys.executable).parent / "mvit-export"), "--target", "coreml", *spec.args, "--no-verify", "--out", str(folder)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    (package,) = folder.glob("*.mlpackage")
    return package


@dataclass(frozen=True)
class FunctionDescription:
    name: str | None  # None: the model's only function
    config: str
    input_sizes: tuple[tuple[int, int], ...]  # [height, width], the default first
    vision: bool
    operations: int


@dataclass(frozen=True)
class PackageDescription:
    artefact: str
    model: str
    task: str
    precision: str
    functions: tuple[FunctionDescription, ...]


def _input_sizes(inputs: Any) -> tuple[tuple[int, int], ...]:
    """ModelInputFactory.inputSizes: the first image input's size, then its enumerated sizes."""
    image = sorted((i for i in inputs if i.type.WhichOneof("Type") == "imageType"), key=lambda i: i.name)[0].type.imageType
    sizes = [(image.height, image.width)]
    if image.WhichOneof("SizeFlexibility") == "enumeratedSizes":
        sizes += [(s.height, s.width) for s in image.enumeratedSizes.sizes]
    return tuple(dict.fromkeys(sizes))


def _operations(spec: Any, function: str) -> int:
    """Ops CoreML plans for the timed function: its non-const ops, every ML Program stage of a pipeline."""
    programs = (
        [spec.mlProgram] if spec.WhichOneof("Type") == "mlProgram" else [m.mlProgram for m in spec.pipeline.models if m.WhichOneof("Type") == "mlProgram"]
    )
    count = 0
    for program in programs:
        body = program.functions[function]
        count += sum(op.type != "const" for op in body.block_specializations[body.opset].operations)
    return count


def describe(package: Path) -> PackageDescription:
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    meta = dict(spec.description.metadata.userDefined)
    listed = json.loads(meta["functions"]) if meta.get("functions") else []
    outputs = {o.name for o in spec.description.output}
    functions = []
    if listed:
        by_name = {f.name: f for f in spec.description.functions}
        for entry in listed:
            inputs = by_name[entry["name"]].input
            functions.append(FunctionDescription(entry["name"], entry["config"], _input_sizes(inputs), False, _operations(spec, entry["name"])))
    else:
        inputs = spec.description.input
        functions.append(FunctionDescription(None, meta["config"], _input_sizes(inputs), VISION_OUTPUTS <= outputs, _operations(spec, "main")))
    return PackageDescription(package.name, meta["model"], meta["task"], meta["precision"], tuple(functions))


# --- the synthetic phone side --------------------------------------------------------------------

# compute units -> (median ms at 256x256 for XXS, spread, load ms, first prediction ms)
SETTINGS = {
    "cpuOnly": (6.9, 0.05, 61.4, 11.8),
    "cpuAndGPU": (4.8, 0.08, 148.2, 19.6),
    "cpuAndNeuralEngine": (1.31, 0.04, 912.7, 3.9),
    "all": (1.29, 0.04, 887.3, 3.7),
}
# ops CoreML leaves on the CPU with the GPU or the Neural Engine (input cast, softmax), and the
# cost share they take; the rest go to the accelerator.
ACCELERATED = {"cpuAndGPU": ("gpu", 6, 0.02), "cpuAndNeuralEngine": ("neural_engine", 6, 0.03), "all": ("neural_engine", 6, 0.03)}


@dataclass(frozen=True)
class Phone:
    device: str
    os_version: str
    coreml: str

    @property
    def has_compute_plan(self) -> bool:  # MLComputePlan: iOS 17.4
        return tuple(int(p) for p in self.os_version.split()[0].split(".")[:2]) >= (17, 4)

    def machine(self) -> dict:
        return {
            "cores": 6,
            "cpu": self.device,
            "device_model": self.device,
            "libraries": {"coreml": self.coreml, "mvit-ios-harness": "0.1.0"},
            "low_power_mode": False,
            "os": "iOS",
            "os_version": self.os_version,
            "thermal_state": "nominal",
        }


IPHONE_12_IOS_17 = Phone("iPhone13,2", "17.5.1 (21F90)", "3402.3.1")
IPHONE_12_IOS_16 = Phone("iPhone13,2", "16.7.10 (20H350)", "2100.2.1")
IPHONE_15_PRO = Phone("iPhone16,1", "18.1 (22B83)", "3404.1.1")


def times(rng: random.Random, median: float, spread: float, n: int = 100) -> list[float]:
    return [round(median * rng.lognormvariate(0.0, spread), 4) for _ in range(n)]


def compute_plan(units: str, operations: int, phone: Phone) -> dict:
    if not phone.has_compute_plan:
        return {"available": False, "reason": f"MLComputePlan needs iOS 17.4 / macOS 14.4 (this is Version {phone.os_version.replace('(', '(Build ')})"}
    split = {"cpu": operations, "gpu": 0, "neural_engine": 0}
    costs = {"cpu": 1.0, "gpu": 0.0, "neural_engine": 0.0}
    if units in ACCELERATED:
        device, on_cpu, cpu_cost = ACCELERATED[units]
        split.update(cpu=on_cpu, **{device: operations - on_cpu})
        costs.update(cpu=cpu_cost, **{device: round(1.0 - cpu_cost, 2)})
    return {"available": True, "operations": operations, **{f"{k}_ops": v for k, v in split.items()}, **{f"{k}_cost": v for k, v in costs.items()}}


def rows(package: PackageDescription, units: tuple[str, ...], phone: Phone, rng: random.Random) -> list[dict]:
    """The harness's rows: per function, per compute-unit setting, per input size (default first);
    the sizes of one load share its compile and load times and its compute plan."""
    found = []
    for function in package.functions:
        for setting in units:
            median, spread, load_ms, first_ms = SETTINGS[setting]
            compile_ms = round(412.6 * (1.2 if function.vision else 1.0), 1)
            for height, width in function.input_sizes:
                scale = height * width / (256 * 256)
                row = {
                    "artefact": package.artefact,
                    "batch": 1,
                    "compile_ms": compile_ms,
                    "compute_plan": compute_plan(setting, function.operations, phone),
                    "compute_units": setting,
                    "config": function.config,
                    "first_inference_ms": round(first_ms * max(scale, 0.25), 3),
                    "input_size": [height, width],
                    "load_ms": load_ms,
                    "model": package.model,
                    "peak_rss_mb": 84.3,
                    "precision": package.precision,
                    "runtime": "coreml",
                    "task": package.task,
                    "warmup_runs": 10,
                }
                timed = times(rng, median * max(scale, 0.1), spread)
                row.update(runs=len(timed), times_ms=timed, stats=LatencyStats.from_times(timed).as_dict())
                if function.name is not None:
                    row["function"] = function.name
                if function.vision:
                    # Vision adds its own scaling and the NonMaximumSuppression stage's conversion.
                    seen = times(rng, median * max(scale, 0.1) + 0.35, spread)
                    row["vision"] = {
                        "first_request_ms": round(first_ms * 2.1 * max(scale, 0.25), 3),
                        # the harness's byte pattern is no photograph: no box clears 0.05
                        "other_observations": 0,
                        "recognized_objects": 0,
                        "runs": len(seen),
                        "stats": LatencyStats.from_times(seen).as_dict(),
                        "times_ms": seen,
                        "warmup_runs": 10,
                    }
                found.append(row)
    return found


# golden file -> (phone, compute units, seed, created)
RUNS = {
    "harness_golden.json": (IPHONE_12_IOS_17, tuple(SETTINGS), 20261123, "2026-11-23T05:12:44.318Z"),
    "harness_golden_multifunction.json": (IPHONE_15_PRO, ("cpuOnly", "cpuAndNeuralEngine"), 20261130, "2026-11-30T08:02:17.904Z"),
    "harness_golden_enumerated.json": (IPHONE_12_IOS_16, ("cpuOnly", "cpuAndNeuralEngine"), 20261206, "2026-12-06T04:20:31.552Z"),
    "harness_golden_detector.json": (IPHONE_15_PRO, ("cpuOnly", "cpuAndNeuralEngine"), 20261207, "2026-12-06T04:31:09.117Z"),
}


def document(golden: str, package: PackageDescription) -> dict:
    phone, units, seed, created = RUNS[golden]
    return {
        "created_utc": created,
        "machine": phone.machine(),
        "results": rows(package, units, phone, random.Random(seed)),
        "schema_version": 1,
        "tool": {"name": "mvit-ios-harness", "version": "0.1.0"},
    }


def text(doc: dict) -> str:
    """As the Swift harness writes it: sorted keys, nil optionals left out."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def make(out: Path, into: Path = DATA) -> dict[str, Path]:
    """Exports into `out`, writes every golden into `into`; golden name -> the package it describes."""
    packages = {}
    for spec in EXPORTS:
        package = export(spec, out)
        (into / spec.golden).write_text(text(document(spec.golden, describe(package))))
        packages[spec.golden] = package
    return packages


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        make(Path(scratch))


if __name__ == "__main__":
    main()
