"""`mvit-bench ab BASE CANDIDATE`: interleaved runs of two artefacts in one process.

The two artefacts take turns in short blocks (benchmarks/timing.py: 4 calls, the first 2 untimed)
in ABBA order (base, cand, cand, base, ...), so both see the same machine state and whichever goes
second alternates (no systematic cache or turbo advantage); each runtime stops its threads
spinning when a call returns, so neither slows the other (benchmarks/timing.py). Pair i = the i-th timed base
run and the i-th timed candidate run, from the same round; the verdict uses their paired ratios
(benchmarks/verdict.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mvit.errors import one_line
from mvit.reading import NotARegularFile, loads

from .machine import gemm_gflops
from .runner import new_document, result_row
from .runtimes import (
    RUNTIME_TARGETS,
    BenchModel,
    RuntimeUnavailable,
    artefact_runtime,
    example_input,
    load_artefact,
    runtime_available,
)
from .timing import Blocks, time_interleaved
from .verdict import DEFAULT_THRESHOLD, Comparison, compare_samples

# Measured (docs/benchmark-results.md, `solo_check`): within 1-5% of each runtime's solo median, at twice the calls of
# call-by-call alternation.
BLOCKS = Blocks(calls=4, discard=2)


@dataclass
class AbOutcome:
    document: dict  # two rows: base then candidate, times in run order
    comparison: Comparison


def artefact_model(path: Path, runtime: str, image_size: int | None) -> BenchModel:
    """Name, task, input size and input kind from the artefact's own metadata (mvit exports)."""
    from mvit.exporters.targets import get_target

    target = get_target(RUNTIME_TARGETS[runtime])
    try:
        meta = target.read_metadata(path)
    except NotARegularFile:  # a FIFO: the runtime's own open would block on it
        raise
    except Exception as exc:  # corrupt, or a foreign artefact without mvit metadata: the runtime decides
        _check_loadable(path, runtime, exc)
        meta = {}
    try:
        preprocess = loads(meta["preprocess"]) if meta.get("preprocess") else {}
        if not isinstance(preprocess, dict):
            raise ValueError("preprocess is not an object")
        size = int(image_size or meta.get("image_size") or preprocess.get("crop") or 0)
    except (ValueError, TypeError, AttributeError):
        raise RuntimeUnavailable(
            f"{path}: its mvit metadata is damaged (image_size / preprocess); re-export it with mvit-export or pass --image-size"
        ) from None
    if size <= 0:
        _check_loadable(path, runtime, None)
        raise RuntimeUnavailable(f"{path}: no input size in the artefact's metadata; pass --image-size")
    config = meta.get("config") if meta.get("config") in ("A", "B") else "-"
    return BenchModel(meta.get("model") or path.stem, config, meta.get("task") or "unknown", int(size), in_registry=not preprocess.get("raw_input", False))


def _check_loadable(path: Path, runtime: str, why: Exception | None) -> None:
    """Raise 'not a readable artefact' unless `runtime` can open the file (only asked on the
    error path: loading costs as much as a session)."""
    from mvit.exporters.targets import get_target

    try:
        get_target(RUNTIME_TARGETS[runtime]).load(path, 1)
    except Exception as exc:
        detail = one_line(why or exc, 160)
        raise RuntimeUnavailable(f"{path}: not a readable {path.suffix} artefact ({detail}); pass a file written by mvit-export") from None


def run_ab(
    base: Path,
    candidate: Path,
    *,
    threads: int = 1,
    warmups: int = 10,
    runs: int = 100,
    image_size: int | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    on_step: Callable[[], None] | None = None,
    measure_gemm: bool = True,
) -> AbOutcome:
    runtimes = [artefact_runtime(Path(p)) for p in (base, candidate)]
    for runtime in set(runtimes):
        runtime_available(runtime)
    models = [artefact_model(Path(p), r, image_size) for p, r in zip((base, candidate), runtimes)]
    if models[0].input_size != models[1].input_size or models[0].raw_input != models[1].raw_input:
        raise RuntimeUnavailable(
            f"{base} and {candidate} take different inputs ({models[0].input_size} vs {models[1].input_size}); pass two artefacts of the same input size"
        )
    tasks = {m.task for m in models} - {"unknown"}
    if len(tasks) > 1:  # a classifier against a segmenter times two different jobs: no verdict means anything
        raise RuntimeUnavailable(
            f"{base} is a {models[0].task} model and {candidate} a {models[1].task} one; "
            "ab compares two variants of the same model: pass two artefacts of one task"
        )
    x = example_input(models[0])
    gemm = gemm_gflops(threads) if measure_gemm else None
    loaded = []
    for path, runtime in zip((base, candidate), runtimes):
        try:
            loaded.append(load_artefact(runtime, Path(path), threads, x))
        except Exception as exc:  # the runtime refused the file: name it, one line
            raise RuntimeUnavailable(f"{path}: not a readable {path.suffix} artefact; {runtime} cannot load it ({one_line(exc, 160)})") from None
    first_ms = []
    for item, path in zip(loaded, (base, candidate)):
        start = time.perf_counter_ns()
        try:
            item.infer()
        except Exception as exc:  # e.g. a foreign file whose input is not "image"
            raise RuntimeUnavailable(
                f"{path}: could not run it ({type(exc).__name__}: {one_line(exc, 160)}); mvit-bench ab runs artefacts written by mvit-export"
            ) from None
        first_ms.append((time.perf_counter_ns() - start) / 1e6)
    times = time_interleaved([item.infer for item in loaded], runs, warmups, BLOCKS, on_step=on_step)
    rows = [
        result_row(
            models[k],
            runtimes[k],
            precision=_precision(Path(p), runtimes[k]),
            threads=threads,
            artefact=str(p),
            load_ms=loaded[k].load_ms,
            first_ms=first_ms[k],
            warmups=warmups,
            times=times[k],
            peak_rss_mb=None,
            macs=None,
        )
        for k, p in enumerate((base, candidate))
    ]
    comparison = compare_samples(times[0], times[1], paired=True, threshold=threshold)
    return AbOutcome(new_document(rows, gemm), comparison)


def _precision(path: Path, runtime: str) -> str:
    from mvit.exporters.targets import get_target

    try:
        return get_target(RUNTIME_TARGETS[runtime]).read_metadata(path).get("precision") or "unknown"
    except Exception:
        return "unknown"
