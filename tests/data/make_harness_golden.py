"""Writes tests/data/harness_golden.json: a SYNTHETIC iOS-harness results file (no phone made it).

The file has the shape the Swift harness writes (ios_harness/Sources/MVitBenchCore/
BenchmarkReport.swift: sorted keys, nil optionals left out) with plausible iPhone 12 figures, so
the Python side can be tested on harness output here. Timings are drawn from a seeded
log-normal; stats come from mvit.benchmarks.stats, the definition the Swift code mirrors.
Re-run: /work/venv/bin/python tests/data/make_harness_golden.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mvit.benchmarks.stats import LatencyStats

OUT = Path(__file__).with_name("harness_golden.json")

# compute units -> (median ms, spread, load ms, first prediction ms); compile time is shared.
SETTINGS = {
    "cpuOnly": (6.9, 0.05, 61.4, 11.8),
    "cpuAndGPU": (4.8, 0.08, 148.2, 19.6),
    "cpuAndNeuralEngine": (1.31, 0.04, 912.7, 3.9),
    "all": (1.29, 0.04, 887.3, 3.7),
}


def result(units: str, rng: random.Random) -> dict:
    median, spread, load_ms, first_ms = SETTINGS[units]
    times = [round(median * rng.lognormvariate(0.0, spread), 4) for _ in range(100)]
    return {
        "artefact": "mobilevit_xxs_A_256_fp16.mlpackage",
        "batch": 1,
        "compile_ms": 412.6,
        "compute_units": units,
        "config": "A",
        "first_inference_ms": first_ms,
        "input_size": [256, 256],
        "load_ms": load_ms,
        "model": "mobilevit_xxs",
        "peak_rss_mb": 84.3,
        "precision": "fp16",
        "runs": len(times),
        "runtime": "coreml",
        "stats": LatencyStats.from_times(times).as_dict(),
        "task": "classification",
        "times_ms": times,
        "warmup_runs": 10,
    }


def main() -> None:
    rng = random.Random(20261123)
    doc = {
        "created_utc": "2026-11-23T05:12:44.318Z",
        "machine": {
            "cores": 6,
            "cpu": "iPhone13,2",
            "device_model": "iPhone13,2",
            "libraries": {"coreml": "3402.3.1", "mvit-ios-harness": "0.1.0"},
            "low_power_mode": False,
            "os": "iOS",
            "os_version": "17.5.1 (21F90)",
            "thermal_state": "nominal",
        },
        "results": [result(units, rng) for units in SETTINGS],
        "schema_version": 1,
        "tool": {"name": "mvit-ios-harness", "version": "0.1.0"},
    }
    OUT.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
