"""`mvit-bench profile ARTEFACT`: where the milliseconds go, by op type.

ONNX Runtime: its own profiler (`SessionOptions.enable_profiling`), one event per node per run;
the warm-up runs are dropped and the rest summed per op type (total ms per run, % of node time,
nodes of that type). LiteRT: the Python interpreter offers no per-op times, so the profile is
the op counts by type, which of them the XNNPACK delegate took and in how many partitions, plus
the whole-call median; every undelegated op is a hop out of XNNPACK and back.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .runtimes import RuntimeUnavailable, artefact_runtime, runtime_available
from .timing import timed_call

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter


@dataclass
class OpTime:
    op_type: str
    total_ms: float  # per run
    percent: float  # of all node time
    count: int  # nodes of this type in one run


@dataclass
class Profile:
    artefact: str
    runtime: str
    threads: int
    runs: int
    median_run_ms: float  # whole call, as the runtime reports it (ORT) or timed here (LiteRT)
    op_times: list[OpTime] = field(default_factory=list)  # slowest first; empty where not offered
    op_counts: dict[str, int] = field(default_factory=dict)  # every op in the graph, by type
    delegated: dict[str, int] = field(default_factory=dict)  # LiteRT: ops the XNNPACK delegate runs
    not_delegated: dict[str, int] = field(default_factory=dict)  # LiteRT: ops the interpreter runs
    partitions: int | None = None  # LiteRT: XNNPACK partitions (1 = the whole graph in one)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def profile_artefact(path: Path, threads: int = 1, warmups: int = 5, runs: int = 20, image_size: int | None = None) -> Profile:
    if not path.exists():
        raise RuntimeUnavailable(f"{path}: no such artefact; pass an exported .onnx or .tflite file")
    runtime = artefact_runtime(path)
    if runtime not in _PROFILERS:  # CoreML: its runtime and profiler exist only on Apple's systems
        raise RuntimeUnavailable(
            f"{path}: profiling {runtime} artefacts needs macOS (Xcode's Core ML performance report); mvit-bench profile covers .onnx and .tflite"
        )
    runtime_available(runtime)
    from .ab import artefact_model
    from .runtimes import example_input

    x = example_input(artefact_model(path, runtime, image_size))
    return _PROFILERS[runtime](path, x, threads, warmups, runs)


def _profile_onnx(path: Path, x: np.ndarray, threads: int, warmups: int, runs: int) -> Profile:
    import onnxruntime as ort

    events, options, feed = onnx_profile_events(path, x, threads, warmups + runs)
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


def onnx_profile_events(path: Path, x: np.ndarray, threads: int, calls: int) -> tuple[list[dict], object, dict]:
    """(ORT profiler events of `calls` runs, the session options without profiling, the feed).
    The session has the providers the timed sessions use (exporters' ONNX target: CPU)."""
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
            raise RuntimeUnavailable(f"{path}: onnxruntime cannot load it ({_first_line(exc)})") from None
        feed = _onnx_feed(session, x, path)
        for _ in range(calls):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    options.enable_profiling = False
    return events, options, feed


def _onnx_feed(session, x: np.ndarray, path: Path) -> dict[str, np.ndarray]:
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise RuntimeUnavailable(f"{path}: takes {len(inputs)} inputs; mvit-bench profile runs artefacts with one image input, as mvit-export writes them")
    return {inputs[0].name: x}


def summarise_onnx_events(events: list[dict], warmups: int, artefact: str = "", threads: int = 1) -> Profile:
    """Aggregate ORT profiler events (Chrome trace format) per op type, after `warmups` runs."""
    model_runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"), key=lambda e: e["ts"])[warmups:]
    if not model_runs:
        raise RuntimeUnavailable(f"{artefact}: the profile has no timed runs ({warmups} warm-ups dropped)")
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


def _profile_litert(path: Path, x: np.ndarray, threads: int, warmups: int, runs: int) -> Profile:
    interpreter, ops = litert_ops(path, threads)
    inputs = interpreter.get_input_details()
    if len(inputs) != 1:
        raise RuntimeUnavailable(f"{path}: takes {len(inputs)} inputs; mvit-bench profile runs artefacts with one image input, as mvit-export writes them")
    if tuple(inputs[0]["shape"]) != x.shape:  # an NHWC export
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    interpreter.set_tensor(inputs[0]["index"], x)
    for _ in range(warmups):
        interpreter.invoke()
    times = [timed_call(interpreter.invoke) for _ in range(runs)]
    profile = summarise_litert_ops(ops, str(path), threads)
    profile.runs, profile.median_run_ms = runs, statistics.median(times)
    return profile


def litert_ops(path: Path, threads: int = 1) -> tuple[Interpreter, list[dict]]:
    """A LiteRT interpreter with XNNPACK applied (LiteRT's default), and its op list."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError / RuntimeError with multi-line text
        raise RuntimeUnavailable(f"{path}: LiteRT cannot load it ({_first_line(exc)})") from None
    return interpreter, interpreter._get_ops_details()  # the only view of the delegated graph LiteRT offers


def summarise_litert_ops(ops: list[dict], artefact: str = "", threads: int = 1) -> Profile:
    """Op counts by type, and which ops each DELEGATE node took over.

    LiteRT lists the graph's own ops followed by one DELEGATE node per partition. A partition's
    ops are the producers of its outputs, traced back until its inputs."""
    delegates = [op for op in ops if op["op_name"] == "DELEGATE"]
    graph_ops = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): i for i, op in enumerate(graph_ops) for t in op["outputs"]}
    inside: set[int] = set()
    for delegate in delegates:
        boundary = {int(t) for t in delegate["inputs"]}
        stack = [int(t) for t in delegate["outputs"]]
        while stack:
            tensor = stack.pop()
            if tensor in boundary or tensor not in producer or producer[tensor] in inside:
                continue
            inside.add(producer[tensor])
            stack.extend(int(t) for t in graph_ops[producer[tensor]]["inputs"] if t >= 0)
    counts = Counter(op["op_name"] for op in graph_ops)
    delegated = Counter(graph_ops[i]["op_name"] for i in inside)
    not_delegated = counts - delegated
    notes = ["the LiteRT Python interpreter reports no per-op times; the median is the whole call"]
    if not_delegated:
        notes.append(f"{sum(not_delegated.values())} op(s) run outside XNNPACK: " + ", ".join(f"{op} x{n}" for op, n in sorted(not_delegated.items())))
    return Profile(
        artefact,
        "litert",
        threads,
        0,
        0.0,
        [],
        dict(sorted(counts.items())),
        dict(sorted(delegated.items())),
        dict(sorted(not_delegated.items())),
        len(delegates),
        notes,
    )


_PROFILERS = {"onnxruntime": _profile_onnx, "litert": _profile_litert}


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


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
