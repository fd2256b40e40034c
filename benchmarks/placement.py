"""Where each op of an artefact runs, and what moved between two artefacts.

The most common silent cause of a slower model on a phone is an op that left the accelerator.
Three views, one shape (place -> op type -> count):
- LiteRT: ops the XNNPACK delegate took ("XNNPACK") and ops the interpreter runs itself
  ("interpreter"), plus the number of XNNPACK partitions (each extra one is a hop out and back);
- ONNX Runtime: the execution provider each node was assigned to, read from one profiled run of
  a session with the providers the timed sessions use;
- CoreML: the ops per preferred compute device that the iOS harness records from MLComputePlan
  (`compute_plan` in its results JSON), per compute-unit setting; Linux has no CoreML planner.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .runtimes import RuntimeUnavailable, artefact_runtime

XNNPACK, INTERPRETER = "XNNPACK", "interpreter"
COREML_DEVICES = (("neural_engine_ops", "Neural Engine"), ("gpu_ops", "GPU"), ("cpu_ops", "CPU"))


@dataclass
class Placement:
    runtime: str
    places: dict[str, dict[str, int]]  # place -> op type -> count ("*" when only totals are known)
    partitions: int | None = None  # LiteRT: XNNPACK partitions
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def artefact_placement(path: Path, image_size: int | None = None) -> Placement:
    """Placement of an .onnx or .tflite artefact on this machine's runtime."""
    runtime = artefact_runtime(path)
    if runtime == "litert":
        from .op_profile import litert_ops, summarise_litert_ops

        _, ops = litert_ops(path)
        profile = summarise_litert_ops(ops, str(path))
        return Placement(runtime, {XNNPACK: profile.delegated, INTERPRETER: profile.not_delegated}, profile.partitions)
    if runtime == "onnxruntime":
        from .ab import artefact_model
        from .op_profile import onnx_profile_events
        from .runtimes import example_input

        x = example_input(artefact_model(path, runtime, image_size))
        events, _, _ = onnx_profile_events(path, x, threads=1, calls=1)
        return onnx_placement(events)
    raise RuntimeUnavailable(
        f"{path}: {runtime} placement is read from the iOS harness's results JSON (--base-harness / --candidate-harness), not from the artefact"
    )


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


def harness_placements(doc: dict) -> dict[str, Placement]:
    """Per harness row (model config size precision, compute units): ops per preferred device."""
    out = {}
    for r in doc["results"]:
        plan = r.get("compute_plan")
        if not plan:
            continue
        name = f"{r['model']} {r['config']} {r['input_size'][0]} {r['precision']} coreml ({r.get('compute_units') or 'default'})"
        if not plan.get("available", True):
            out[name] = Placement("coreml", {}, notes=[f"no compute plan: {plan.get('reason', 'not available')}"])
            continue
        out[name] = Placement("coreml", {label: {"*": int(plan[key])} for key, label in COREML_DEVICES if plan.get(key) is not None})
    return out


def placement_changes(base: Placement, candidate: Placement) -> list[str]:
    """One line per op type whose count changed at a place, and a change in partitions."""
    lines = []
    for place in dict.fromkeys([*base.places, *candidate.places]):
        b, c = base.places.get(place, {}), candidate.places.get(place, {})
        for op in sorted(set(b) | set(c)):
            if b.get(op, 0) != c.get(op, 0):
                what = "ops" if op == "*" else f"{op} ops"
                lines.append(f"{what} on {place}: {b.get(op, 0)} -> {c.get(op, 0)}")
    if base.partitions != candidate.partitions:
        lines.append(f"XNNPACK partitions: {base.partitions} -> {candidate.partitions}")
    return lines


def placement_summary(p: Placement) -> str:
    parts = [f"{place} {sum(ops.values())}" for place, ops in p.places.items()]
    if p.partitions is not None:
        parts.append(f"{p.partitions} partition(s)")
    return ", ".join(parts) or "; ".join(p.notes) or "-"
