"""Numerics verification: the fused PyTorch model with reference preprocessing vs an artefact's
runner, on fixed real photographs and seeded noise. One path for every target and task.

The reference is the same wrapped module the target traced, minus the pixel preprocessing,
which is done here in numpy from the PreprocessSpec (preprocessing.normalise). So a wrong
channel flip or scale inside an artefact shows up as a mismatch, as do wrong weights.
Every float output is compared numerically here; what else a task judges (top-1, masks, boxes)
is the task's own judge (tasks/).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import torch

from mvit.models import PreprocessSpec
from mvit.models.detection_postprocess import NmsSettings

from .base import ExportOptions, Runner
from .checks import check, failures
from .preprocessing import normalise
from .samples import Sample, verification_samples
from .tasks import get_task
from .tasks.base import SampleOutputs
from .tasks.detection import artefact_detections  # noqa: F401 (re-exported for callers)
from .tolerances import Tolerance, tolerance_for
from .verification import RunnerVerification
from .wrappers import INPUT_NAME, BuiltModule


def tensor_metrics(ref: np.ndarray, art: np.ndarray) -> dict[str, float]:
    ref64, art64 = ref.astype(np.float64).ravel(), art.astype(np.float64).ravel()
    diff = np.abs(ref64 - art64)
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(ref64).max(initial=0.0))
    denom = np.linalg.norm(ref64) * np.linalg.norm(art64)
    cosine = float(ref64 @ art64 / denom) if denom > 0 else float(np.array_equal(ref64, art64))
    return {"max_abs_error": max_abs, "relative_error": max_abs / scale if scale > 0 else max_abs, "cosine": cosine}


def _accumulate(per_output: dict[str, dict[str, float]], name: str, m: dict[str, float]) -> None:
    """Worst case over samples: largest errors, smallest cosine."""
    agg = per_output.setdefault(name, {"max_abs_error": 0.0, "relative_error": 0.0, "cosine": 1.0})
    agg["max_abs_error"] = max(agg["max_abs_error"], m["max_abs_error"])
    agg["relative_error"] = max(agg["relative_error"], m["relative_error"])
    agg["cosine"] = min(agg["cosine"], m["cosine"])


def _compare_outputs(ref: dict[str, np.ndarray], art: dict[str, np.ndarray]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    pairs = {}
    for name, r in ref.items():
        if name not in art:
            raise KeyError(f"the artefact has no output {name!r} (it has {sorted(art)})")
        a = np.asarray(art[name])
        if a.shape != r.shape:
            a = a.reshape(r.shape)  # e.g. a runner that drops a unit dimension
        art[name] = a
        if np.issubdtype(r.dtype, np.floating):
            pairs[name] = (r, a)
    return pairs


def verify_runner(
    runner: Runner,
    reference: BuiltModule,
    *,
    task: str,
    preprocess: PreprocessSpec,
    precision: str,
    raw_input: bool = False,
    nms: NmsSettings | dict[str, Any] | None = None,
    samples: list[Sample] | None = None,
    nms_best_class_only: bool = False,
) -> RunnerVerification:
    """Run every sample through both and judge: the report's "verification" section.

    `nms_best_class_only`: the artefact's NMS keeps each box under its best class only (CoreML's
    op), so the reference detections are selected the same way and only numerics are judged.
    """
    tol: Tolerance = tolerance_for(precision)
    if samples is None:
        samples = verification_samples(preprocess.resize_shortest, preprocess.crop)
    settings = NmsSettings.from_dict(nms) if isinstance(nms, dict) else nms
    judge = get_task(task).judge(tol, ExportOptions(nms=settings), nms_best_class_only)
    per_output: dict[str, dict[str, float]] = {}
    feeds = [{INPUT_NAME: normalise(s.pixels, preprocess) if raw_input else s.pixels} for s in samples]
    outputs = runner.run_many(feeds)

    for i, sample in enumerate(samples):
        x_norm = normalise(sample.pixels, preprocess)
        with torch.no_grad():
            ref_out = reference.module(torch.from_numpy(x_norm))
        ref_out = ref_out if isinstance(ref_out, (tuple, list)) else (ref_out,)
        ref = {n: t.numpy() for n, t in zip(reference.output_names, ref_out)}
        feed = feeds[i]
        art = outputs[i]
        # With NMS inside, the artefact's outputs are the kept boxes, not the reference's tensors.
        pairs = {} if nms else _compare_outputs(ref, art)
        pairs.update(judge.add(SampleOutputs(ref, art, functools.partial(runner.pre_nms, feed))))
        for name, (r, a) in pairs.items():
            _accumulate(per_output, name, tensor_metrics(r, np.asarray(a).reshape(r.shape)))

    judgement = judge.finish()
    checks = []
    for name, m in per_output.items() if math.isfinite(tol.relative_error) else ():  # quantised: reported, not judged
        checks.append(check(f"relative_error[{name}]", m["relative_error"], tol.relative_error, at_least=False))
        checks.append(check(f"cosine[{name}]", m["cosine"], tol.cosine, at_least=True))
    checks += judgement.checks
    return RunnerVerification(
        warnings=judgement.warnings,
        verified_by=runner.verified_by,
        precision=precision,
        tolerances=tol,
        samples=[s.name for s in samples],
        outputs=per_output,
        task_metrics=judgement.metrics,
        checks=checks,
        verdict="fail" if failures(checks) else "pass",
    )
