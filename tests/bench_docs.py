"""Small valid results documents for the benchmark tests (runner-style and harness-style)."""

from __future__ import annotations

import copy

import numpy as np

from mvit.benchmarks.stats import LatencyStats


def result(times, *, model="mobilevit_xxs", config="A", runtime="onnxruntime", threads=2, **extra) -> dict:
    times = [float(t) for t in times]
    row = {
        "model": model,
        "config": config,
        "task": "classification",
        "runtime": runtime,
        "compute_units": None,
        "precision": "fp32",
        "input_size": [256, 256],
        "batch": 1,
        "threads": threads,
        "artefact": None,
        "compile_ms": None,
        "load_ms": 12.5,
        "first_inference_ms": 30.0,
        "warmup_runs": 10,
        "runs": len(times),
        "times_ms": times,
        "stats": LatencyStats.from_times(times).as_dict(),
        "peak_rss_mb": 300.0,
        "macs": 407_364_096,
        "gflops_per_s": 70.0,
    }
    row.update(extra)
    return row


def document(results, *, cpu="AMD EPYC", gemm=150.0) -> dict:
    return {
        "schema_version": 1,
        "tool": {"name": "mvit-bench", "version": "0.1.0"},
        "created_utc": "2026-11-23T04:40:28.123456+00:00",
        "machine": {
            "os": "Linux",
            "os_version": "6.1",
            "device_model": "x86_64",
            "cpu": cpu,
            "cores": 2,
            "thermal_state": None,
            "low_power_mode": None,
            "libraries": {"onnxruntime": "1.32.0"},
        },
        "gemm_gflops": gemm,
        "results": results,
    }


def harness_document(times_by_units: dict[str, list[float]]) -> dict:
    """What the Swift harness writes: nil optionals omitted, CoreML compute units, thermal state."""
    rows = []
    for units, times in times_by_units.items():
        row = result(times, runtime="coreml", config="-", compute_units=units, precision="fp16")
        for key in ("threads", "artefact", "peak_rss_mb", "macs", "gflops_per_s"):
            del row[key]
        row["compile_ms"] = 850.0
        rows.append(row)
    doc = document(rows)
    doc["machine"].update(
        os="iOS", os_version="18.1", device_model="iPhone13,2", cpu="Apple A14 Bionic", cores=6, thermal_state="nominal", low_power_mode=False
    )
    doc["machine"]["libraries"] = {"CoreML": "iOS 18.1"}
    del doc["gemm_gflops"]
    doc["created_utc"] = "2026-11-23T04:40:28Z"
    return copy.deepcopy(doc)


def lognormal_times(median_ms: float, n: int, seed: int, sigma: float = 0.05) -> list[float]:
    return list(median_ms * np.random.default_rng(seed).lognormal(0.0, sigma, n))
