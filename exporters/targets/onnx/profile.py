"""ONNX Runtime's per-op views of an .onnx artefact: time by op type from its own profiler
(`SessionOptions.enable_profiling`, one event per node per run; the warm-up runs dropped and the rest
summed per op type) and the execution provider each node was assigned to."""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ...base import ExportError
from ...profiling import Example, OpTime, Placement, Profile, first_line, timed_call


class OnnxOpProfiler:
    def profile(self, path: Path, example: Example, threads: int, warmups: int, runs: int) -> Profile:
        import onnxruntime as ort

        events, options, feed = onnx_profile_events(path, example(), threads, warmups + runs)
        profile = summarise_onnx_events(events, warmups, str(path), threads)
        # The profiler's own cost per node inflates op types with many small nodes (Reshape,
        # Transpose); the same file timed without it says how much.
        plain = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(warmups):
            plain.run(None, feed)
        unprofiled = statistics.median(timed_call(lambda: plain.run(None, feed)) for _ in range(runs))
        profile.notes.append(
            f"without the profiler the median run is {unprofiled:.2f} ms; the profiler's cost per node weighs most on op types with many small nodes"
        )
        return profile

    def placement(self, path: Path, example: Example) -> Placement:
        events, _, _ = onnx_profile_events(path, example(), threads=1, calls=1)
        return onnx_placement(events)


def onnx_profile_events(path: Path, x: np.ndarray, threads: int, calls: int) -> tuple[list[dict], object, dict]:
    """(ORT profiler events of `calls` runs, the session options without profiling, the feed).
    The session has the providers the timed sessions use (this target's runner: CPU)."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mvit-profile-") as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ExportError(f"{path}: onnxruntime cannot load it ({first_line(exc)})") from None
        feed = _onnx_feed(session, x, path)
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    options.enable_profiling = False
    return events, options, feed


def _onnx_feed(session, x: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ExportError(f"{path}: takes {len(inputs)} inputs; mvit-bench profile runs artefacts with one image input, as mvit-export writes them")
    return {inputs[0].name: x}


def summarise_onnx_events(events: list[dict], warmups: int, artefact: str = "", threads: int = 1) -> Profile:
    """Aggregate ORT profiler events (Chrome trace format) per op type, after `warmups` runs."""
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])[warmups:]
    if not model_runs:
        raise ExportError(f"{artefact}: the profile has no timed runs ({warmups} warm-ups dropped)")
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in model_runs]
    totals: dict[str, float] = defaultdict(float)
    counts: Counter[str] = Counter()
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        if any(lo <= e["ts"] <= hi for lo, hi in windows):
            op = e.get("args", {}).get("op_name", "?")
            totals[op] += e["dur"]
            counts[op] += 1
    n = len(windows)
    node_us = sum(totals.values()) or 1.0
    op_times = [OpTime(op, us / n / 1e3, 100.0 * us / node_us, counts[op] // n) for op, us in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))]
    median = statistics.median(e["dur"] for e in model_runs) / 1e3
    kernel_ms = node_us / n / 1e3
    notes = [f"node time {kernel_ms:.2f} ms of a {median:.2f} ms median run (the rest: the executor between nodes, feeding inputs, copying outputs)"]
    return Profile(artefact, "onnxruntime", threads, n, median, op_times, op_counts={t.op_type: t.count for t in op_times}, notes=notes)


def onnx_placement(events: list[dict]) -> Placement:
    """Node -> provider from ORT profiler events (one run)."""
    places: dict[str, Counter[str]] = {}
    seen = set()
    for e in events:
        if e.get("cat") != "Node" or not str(e.get("name", "")).endswith("_kernel_time"):
            continue
        args = e.get("args", {})
        node = e["name"].removesuffix("_kernel_time")
        if node in seen:
            continue
        seen.add(node)
        places.setdefault(str(args.get("provider", "?")), Counter())[str(args.get("op_name", "?"))] += 1
    return Placement("onnxruntime", {p: dict(sorted(c.items())) for p, c in sorted(places.items())})
