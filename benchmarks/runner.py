"""`mvit-bench run`: time model x config x runtime rows and write a schema-valid results file.

Each row: build the artefact (not timed), load it (load_ms: session creation / interpreter
allocation / eager module construction), one first inference (first_inference_ms), warm-ups,
then `runs` timed inferences at batch 1 with a fixed thread count, all in this process. Rows run
one after another, each at its solo speed: artefacts are loaded with thread spinning off, eager
after one large allocation has warmed the heap (runtimes.py, timing.py).
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from mvit.exporters.targets import RUNTIME_NOTES

from .machine import PeakRss, gemm_gflops, machine_info
from .macs import count_macs
from .runtimes import RUNTIMES as DEFAULT_RUNTIMES  # pytorch + every target's runtime
from .runtimes import (
    BenchModel,
    LoadedModel,
    RuntimeUnavailable,
    bench_model,
    build_artefact,
    example_input,
    load_artefact,
    load_pytorch,
    runtime_available,
)
from .schema import SCHEMA_VERSION
from .stats import LatencyStats

DEFAULT_MODELS = ("mobilevit_xxs", "mobilevit_xs", "mobilevit_s", "mobilenet_v2")


def tool_info() -> dict[str, str]:
    try:
        version = metadata.version("mvit")
    except metadata.PackageNotFoundError:
        version = "0+unknown"
    return {"name": "mvit-bench", "version": version}


def new_document(results: list[dict], gemm: float | None) -> dict:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": tool_info(),
        "created_utc": datetime.now(UTC).isoformat(),
        "machine": machine_info(),
        "gemm_gflops": gemm,
        "results": results,
    }


def result_row(
    model: BenchModel,
    runtime: str,
    *,
    precision: str,
    threads: int,
    artefact: str | None,
    load_ms: float,
    first_ms: float,
    warmups: int,
    times: list[float],
    peak_rss_mb: float | None,
    macs: int | None,
) -> dict:
    stats = LatencyStats.from_times(times)
    return {
        "model": model.name,
        "config": model.config,
        "task": model.task,
        "runtime": runtime,
        "compute_units": None,
        "precision": precision if runtime != "pytorch" else "fp32",
        "input_size": [model.input_size, model.input_size],
        "batch": 1,
        "threads": threads,
        "artefact": artefact,
        "compile_ms": None,
        "load_ms": load_ms,
        "first_inference_ms": first_ms,
        "warmup_runs": warmups,
        "runs": len(times),
        "times_ms": times,
        "stats": stats.as_dict(),
        "peak_rss_mb": peak_rss_mb,
        "macs": macs,
        "gflops_per_s": (2.0 * macs / (stats.median_ms / 1e3) / 1e9) if macs else None,
    }


@dataclass
class RunPlan:
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    configs: list[str] = field(default_factory=lambda: ["A", "B"])
    runtimes: list[str] = field(default_factory=lambda: list(DEFAULT_RUNTIMES))
    image_size: int | None = None
    threads: int = 2
    warmups: int = 10
    runs: int = 100
    precision: str = "fp32"
    artefact_dir: Path | None = None  # None: a temporary folder, removed when the run ends
    measure_gemm: bool = True
    reuse_artefacts: bool = False

    def rows(self) -> list[tuple[BenchModel, str]]:
        seen: set[BenchModel] = set()
        rows: list[tuple[BenchModel, str]] = []
        for name in self.models:
            for config in self.configs:
                model = bench_model(name, config, self.image_size)
                if model in seen:  # models without patch configs appear once, config "-"
                    continue
                seen.add(model)
                rows.extend((model, runtime) for runtime in self.runtimes)
        return rows


@dataclass
class RunOutcome:
    document: dict
    skipped: list[str]  # rows that cannot run here (runtime missing, CoreML off macOS)
    failed: list[str]  # rows that should have run and crashed


def run_benchmarks(plan: RunPlan, log: Callable[[str], None] = print, progress=None) -> RunOutcome:
    """Run every row of `plan`. `progress` is a rich Progress (or None); `log` gets one line per
    skipped or failed row."""
    if plan.artefact_dir is None:  # artefacts are a means here, not a result: nothing left in the current folder
        with tempfile.TemporaryDirectory(prefix=".mvit-bench-") as scratch:
            return run_benchmarks(dataclasses.replace(plan, artefact_dir=Path(scratch)), log, progress)
    artefact_dir = plan.artefact_dir
    rows = plan.rows()
    available: dict[str, bool] = {}
    skipped: list[str] = []
    failed: list[str] = []
    for runtime in dict.fromkeys(r for _, r in rows):
        try:
            runtime_available(runtime)
            available[runtime] = True
        except RuntimeUnavailable as exc:
            available[runtime] = False
            skipped.append(str(exc))
            log(str(exc))
    rows = [(m, r) for m, r in rows if available[r]]
    for runtime in dict.fromkeys(r for _, r in rows):
        if runtime in RUNTIME_NOTES:
            log(f"{runtime}: timed by its {RUNTIME_NOTES[runtime]}; time the artefact on a device with the iOS harness")

    # Probed before and after the rows, best kept: on a shared machine one probe can land in a
    # busy moment and understate what the CPU can do.
    gemm = gemm_gflops(plan.threads) if plan.measure_gemm else None
    task = progress.add_task("benchmark", total=len(rows) * (plan.warmups + plan.runs)) if progress else None
    results: list[dict] = []
    macs_cache: dict[BenchModel, int | None] = {}
    loaded: LoadedModel | None = None
    for model, runtime in rows:
        label = f"{model.name} {model.config} {runtime}"
        if progress:
            progress.update(task, description=f"{label}: building")
        try:
            if model not in macs_cache:
                macs_cache[model] = _count(model)
            x = example_input(model)
            artefact = None
            if runtime != "pytorch":
                artefact = build_artefact(model, runtime, artefact_dir / runtime, plan.precision, reuse=plan.reuse_artefacts)
            with PeakRss() as rss:  # after the export: the row reports the runtime's memory
                if artefact is None:
                    loaded = load_pytorch(model, plan.threads, x)
                else:
                    loaded = load_artefact(runtime, artefact, plan.threads, x)
                if progress:
                    progress.update(task, description=f"{label}: timing")
                step = (lambda: progress.advance(task)) if progress else None
                first_ms, times = loaded.timed(plan.warmups, plan.runs, step)
            results.append(
                result_row(
                    model,
                    runtime,
                    precision=plan.precision,
                    threads=plan.threads,
                    artefact=loaded.artefact,
                    load_ms=loaded.load_ms,
                    first_ms=first_ms,
                    warmups=plan.warmups,
                    times=times,
                    peak_rss_mb=rss.mb,
                    macs=macs_cache[model],
                )
            )
        except Exception as exc:  # one broken row must not lose the others' results
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            message = f"{label} failed: {type(exc).__name__}: {first_line}"
            (failed if model.in_registry else skipped).append(message)
            log(message if model.in_registry else f"{message} (comparison model; skipped)")
            if progress:
                progress.advance(task, plan.warmups + plan.runs)
        finally:
            loaded = None
            release_memory()
    if gemm is not None:
        gemm = max(gemm, gemm_gflops(plan.threads))
    return RunOutcome(new_document(results, gemm), skipped, failed)


def release_memory() -> None:
    """Free the last row's objects and hand freed heap back to the OS (glibc keeps it otherwise),
    so the next row's peak RSS is not inflated by this one's leftovers."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl): nothing to trim


def _count(model: BenchModel) -> int | None:
    import torch

    module = model.build()
    return count_macs(module, torch.zeros(1, 3, model.input_size, model.input_size))
