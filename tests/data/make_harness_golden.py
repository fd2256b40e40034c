"""Writes the SYNTHETIC iOS-harness results files in tests/data (no phone made them).

- harness_golden.json: a classifier on an iPhone 12 (iOS 17.5.1), the four compute-unit settings;
- harness_golden_multifunction.json: a multifunction detector package (functions A_256 and
  A_320) on an iPhone 15 Pro (iOS 18.1), each function timed on the CPU and the Neural Engine,
  with its Vision run and compute-plan split.

They have the shape the Swift harness writes (ios_harness/Sources/MVitBenchCore/
BenchmarkReport.swift and RowDetails.swift: sorted keys, nil optionals left out) with plausible
figures, so the Python side can be tested on harness output here. Timings are drawn from a seeded
log-normal; stats come from mvit.benchmarks.stats, the definition the Swift code mirrors.
Re-run: .venv/bin/python tests/data/make_harness_golden.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mvit.benchmarks.stats import LatencyStats

HERE = Path(__file__).parent
OUT = HERE / "harness_golden.json"
OUT_MULTIFUNCTION = HERE / "harness_golden_multifunction.json"

# compute units -> (median ms, spread, load ms, first prediction ms); compile time is shared.
SETTINGS = {
    "cpuOnly": (6.9, 0.05, 61.4, 11.8),
    "cpuAndGPU": (4.8, 0.08, 148.2, 19.6),
    "cpuAndNeuralEngine": (1.31, 0.04, 912.7, 3.9),
    "all": (1.29, 0.04, 887.3, 3.7),
}
# MLComputePlan's preferred devices per setting (ops counted, cost shares): GPU and Neural Engine
# leave a few ops (input cast, softmax) on the CPU.
PLANS = {
    "cpuOnly": (412, 0, 0, 1.0, 0.0, 0.0),
    "cpuAndGPU": (6, 406, 0, 0.02, 0.98, 0.0),
    "cpuAndNeuralEngine": (6, 0, 406, 0.03, 0.0, 0.97),
    "all": (6, 0, 406, 0.03, 0.0, 0.97),
}


def times(rng: random.Random, median: float, spread: float, n: int = 100) -> list[float]:
    return [round(median * rng.lognormvariate(0.0, spread), 4) for _ in range(n)]


def compute_plan(units: str) -> dict:
    cpu, gpu, ane, cpu_cost, gpu_cost, ane_cost = PLANS[units]
    return {"available": True, "cpu_cost": cpu_cost, "cpu_ops": cpu, "gpu_cost": gpu_cost, "gpu_ops": gpu,
            "neural_engine_cost": ane_cost, "neural_engine_ops": ane, "operations": cpu + gpu + ane}


def result(units: str, rng: random.Random) -> dict:
    median, spread, load_ms, first_ms = SETTINGS[units]
    timed = times(rng, median, spread)
    return {
        "artefact": "mobilevit_xxs_A_256_fp16.mlpackage",
        "batch": 1,
        "compile_ms": 412.6,
        "compute_plan": compute_plan(units),
        "compute_units": units,
        "config": "A",
        "first_inference_ms": first_ms,
        "input_size": [256, 256],
        "load_ms": load_ms,
        "model": "mobilevit_xxs",
        "peak_rss_mb": 84.3,
        "precision": "fp16",
        "runs": len(timed),
        "runtime": "coreml",
        "stats": LatencyStats.from_times(timed).as_dict(),
        "task": "classification",
        "times_ms": timed,
        "warmup_runs": 10,
    }


def detector_result(function: str, size: int, units: str, rng: random.Random) -> dict:
    scale = (size / 256) ** 2
    median, spread, load_ms, first_ms = SETTINGS[units]
    timed = times(rng, 1.8 * median * scale, spread)
    # Vision adds its own scaling and the NonMaximumSuppression stage's result conversion.
    vision = times(rng, 1.8 * median * scale + 0.35, spread)
    return {
        "artefact": "ssdlite_mobilevit_xxs_A_multifunction_fp16.mlpackage",
        "batch": 1,
        "compile_ms": 655.2,
        "compute_plan": compute_plan(units),
        "compute_units": units,
        "config": "A",
        "first_inference_ms": round(first_ms * 1.8 * scale, 3),
        "function": function,
        "input_size": [size, size],
        "load_ms": load_ms,
        "model": "ssdlite_mobilevit_xxs",
        "peak_rss_mb": 97.6,
        "precision": "fp16",
        "runs": len(timed),
        "runtime": "coreml",
        "stats": LatencyStats.from_times(timed).as_dict(),
        "task": "detection",
        "times_ms": timed,
        "vision": {
            # the harness's fixed byte pattern is no photograph: no box clears the 0.05 threshold
            "first_request_ms": round(first_ms * 2.1 * scale, 3),
            "other_observations": 0,
            "recognized_objects": 0,
            "runs": len(vision),
            "stats": LatencyStats.from_times(vision).as_dict(),
            "times_ms": vision,
            "warmup_runs": 10,
        },
        "warmup_runs": 10,
    }


def document(machine: dict, results: list[dict], created: str) -> dict:
    return {"created_utc": created, "machine": machine, "results": results, "schema_version": 1,
            "tool": {"name": "mvit-ios-harness", "version": "0.1.0"}}


def main() -> None:
    rng = random.Random(20261123)
    phone = {"cores": 6, "cpu": "iPhone13,2", "device_model": "iPhone13,2",
             "libraries": {"coreml": "3402.3.1", "mvit-ios-harness": "0.1.0"}, "low_power_mode": False,
             "os": "iOS", "os_version": "17.5.1 (21F90)", "thermal_state": "nominal"}
    doc = document(phone, [result(units, rng) for units in SETTINGS], "2026-11-23T05:12:44.318Z")
    OUT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")

    rng = random.Random(20261130)
    phone = {**phone, "cpu": "iPhone16,1", "device_model": "iPhone16,1", "os_version": "18.1 (22B83)",
             "libraries": {"coreml": "3404.1.1", "mvit-ios-harness": "0.1.0"}}
    rows = [detector_result(function, size, units, rng)
            for function, size in (("A_256", 256), ("A_320", 320)) for units in ("cpuOnly", "cpuAndNeuralEngine")]
    doc = document(phone, rows, "2026-11-30T08:02:17.904Z")
    OUT_MULTIFUNCTION.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
