"""Where each op of an artefact runs, and what moved between two artefacts.

The most common silent cause of a slower model on a phone is an op that left the accelerator.
Every view has one shape (place -> op type -> count). An artefact's target reads it (its
`op_profiler`: LiteRT, the ops the XNNPACK delegate took and those the interpreter runs, plus the
XNNPACK partitions; ONNX Runtime, the execution provider of each node). A device's view comes from
the iOS harness: the ops per preferred compute device it records from MLComputePlan (`compute_plan`
in its results JSON), per compute-unit setting.
"""

from __future__ import annotations

from pathlib import Path

from mvit.exporters.profiling import Placement

from .op_profile import artefact_example, op_profiler, unavailable_on_error
from .runtimes import artefact_runtime

COREML_DEVICES = (("neural_engine_ops", "Neural Engine"), ("gpu_ops", "GPU"), ("cpu_ops", "CPU"))


def artefact_placement(path: Path, image_size: int | None = None) -> Placement:
    """Placement of an artefact on this machine's runtime, as its target's op profiler reads it."""
    runtime = artefact_runtime(path)
    profiler = op_profiler(path, runtime)
    with unavailable_on_error():
        return profiler.placement(path, lambda: artefact_example(path, runtime, image_size))


def harness_placements(doc: dict) -> dict[str, Placement]:
    """Per harness row (model config size precision, compute units): ops per preferred device."""
    out = {}
    for r in doc["results"]:
        plan = r.get("compute_plan")
        if not plan:
            continue
        name = f"{r['model']} {r['config']} {r['input_size'][0]} {r['precision']} {r['runtime']} ({r.get('compute_units') or 'default'})"
        if not plan.get("available", True):
            out[name] = Placement(r["runtime"], {}, notes=[f"no compute plan: {plan.get('reason', 'not available')}"])
            continue
        out[name] = Placement(r["runtime"], {label: {"*": int(plan[key])} for key, label in COREML_DEVICES if plan.get(key) is not None})
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
