"""`mvit-bench profile ARTEFACT`: where the milliseconds go, by op type.

The artefact's target profiles it (its `op_profiler`, in exporters/targets/<name>/profile.py: ONNX
Runtime's own profiler, time per op type; LiteRT's op counts, what the XNNPACK delegate took and in
how many partitions). This module finds that target, builds the input and writes the table.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mvit.exporters.errors import ExportError
from mvit.exporters.profiling import OpProfiler, OpTime, Profile  # noqa: F401 (callers read them here)
from mvit.exporters.targets import RUNTIME_TARGETS, get_target

from .runtimes import RuntimeUnavailable, artefact_runtime, runtime_available


def profile_artefact(path: Path, threads: int = 1, warmups: int = 5, runs: int = 20, image_size: int | None = None) -> Profile:
    if not path.exists():
        raise RuntimeUnavailable(f"{path}: no such artefact; pass an exported .onnx or .tflite file")
    runtime = artefact_runtime(path)
    profiler = op_profiler(path, runtime)

    def example() -> np.ndarray:
        runtime_available(runtime)
        return artefact_example(path, runtime, image_size)

    with unavailable_on_error():
        return profiler.profile(path, example, threads, warmups, runs)


def op_profiler(path: Path, runtime: str) -> OpProfiler:
    """The op profiler of the target whose runtime runs `path`."""
    with unavailable_on_error(f"{runtime} skipped: "):
        profiler = get_target(RUNTIME_TARGETS[runtime]).op_profiler
    if profiler is None:
        raise RuntimeUnavailable(f"{path}: {runtime} artefacts have no per-op view on this machine")
    return profiler


def artefact_example(path: Path, runtime: str, image_size: int | None) -> np.ndarray:
    """The fixed input of the model the artefact's metadata names, at its size."""
    from .ab import artefact_model
    from .runtimes import example_input

    return example_input(artefact_model(path, runtime, image_size))


@contextlib.contextmanager
def unavailable_on_error(prefix: str = "") -> Iterator[None]:
    """A target's one-line error, as this layer says it: the artefact cannot be profiled here."""
    try:
        yield
    except ExportError as exc:
        raise RuntimeUnavailable(f"{prefix}{exc}") from None


def profile_markdown(profile: Profile) -> str:
    lines = [
        f"# Profile of {profile.artefact}",
        "",
        f"{profile.runtime}, {profile.threads} thread(s), batch 1, {profile.runs} timed runs: median {profile.median_run_ms:.2f} ms per run",
        "",
    ]
    if profile.op_times:
        lines += ["| op type | ms per run | % of node time | nodes |", "|---|---|---|---|"]
        lines += [f"| {t.op_type} | {t.total_ms:.3f} | {t.percent:.1f} | {t.count} |" for t in profile.op_times]
    else:
        lines += ["| op type | ops | in XNNPACK | outside |", "|---|---|---|---|"]
        lines += [
            f"| {op} | {n} | {profile.delegated.get(op, 0)} | {profile.not_delegated.get(op, 0)} |"
            for op, n in sorted(profile.op_counts.items(), key=lambda kv: (-kv[1], kv[0]))
        ]
        lines += ["", f"XNNPACK partitions: {profile.partitions}; ops delegated {sum(profile.delegated.values())} of {sum(profile.op_counts.values())}"]
    lines += [""] + [f"- {note}" for note in profile.notes]
    return "\n".join(lines) + "\n"
