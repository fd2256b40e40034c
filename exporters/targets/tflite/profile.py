"""LiteRT's per-op views of a .tflite artefact. The Python interpreter offers no per-op times, so the
profile is the op counts by type, which of them the XNNPACK delegate took and in how many partitions,
plus the whole-call median; every undelegated op is a hop out of XNNPACK and back."""

from __future__ import annotations

import statistics
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ...base import ExportError
from ...profiling import Example, Placement, Profile, first_line, timed_call

if TYPE_CHECKING:
    from ai_edge_litert.interpreter import Interpreter

XNNPACK, INTERPRETER = "XNNPACK", "interpreter"  # the places a LiteRT op runs


class LiteRTOpProfiler:
    def profile(self, path: Path, example: Example, threads: int, warmups: int, runs: int) -> Profile:
        x = example()
        interpreter, ops = litert_ops(path, threads)
        inputs = interpreter.get_input_details()
        if len(inputs) != 1:
            raise ExportError(f"{path}: takes {len(inputs)} inputs; mvit-bench profile runs artefacts with one image input, as mvit-export writes them")
        if tuple(inputs[0]["shape"]) != x.shape:  # an NHWC export
            x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
        interpreter.set_tensor(inputs[0]["index"], x)
        for _ in range(warmups):
            interpreter.invoke()
        times = [timed_call(interpreter.invoke) for _ in range(runs)]
        profile = summarise_litert_ops(ops, str(path), threads)
        profile.runs, profile.median_run_ms = runs, statistics.median(times)
        return profile

    def placement(self, path: Path, example: Example) -> Placement:
        _, ops = litert_ops(path)
        profile = summarise_litert_ops(ops, str(path))
        return Placement(profile.runtime, {XNNPACK: profile.delegated, INTERPRETER: profile.not_delegated}, profile.partitions)


def litert_ops(path: Path, threads: int = 1) -> tuple[Interpreter, list[dict]]:
    """A LiteRT interpreter with XNNPACK applied (LiteRT's default), and its op list."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except Exception as exc:  # LiteRT raises ValueError / RuntimeError with multi-line text
        raise ExportError(f"{path}: LiteRT cannot load it ({first_line(exc)})") from None
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
