"""Quantised precisions (`--precision`): which target writes which, their calibration images, how
their artefacts are judged, and what the artefact records about them.

| precision | CoreML (exporters/targets/coreml/quantize.py) | ONNX (exporters/targets/onnx/quantize.py) | TFLite (exporters/targets/tflite/quantize.py) |
|---|---|---|---|
| int8-weights | int8 weights, fp16 compute | dynamic range (quantize_dynamic) | dynamic range (dynamic_wi8_afp32) |
| int8 | W8A8: int8 weights and activations | static QDQ (quantize_static) | static (static_wi8_ai8) |
| palette4 / palette6 | k-means LUT of 16 / 64 values | - | - |

A quantised artefact cannot match PyTorch elementwise, so it is judged by task agreement with the
fp32 PyTorch model (QUANTISED_TOLERANCES, docs/verification.md): on the verification photos and
noise plus the user's own images (`--calibration DIR` on export, `--images DIR` on mvit-verify),
since three photos are too few to measure an agreement rate. Random weights, or too few decisive
samples, give "not-verified", never a pass.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .base import ExportError, ExportTarget, TargetNotInstalled
from .calibration import as_samples, calibration_pixels, read_images
from .samples import Sample
from .targets import get_target, target_names
from .tolerances import QUANTISED_TOLERANCES  # noqa: F401 (callers read it here)
from .verification import RunnerVerification

FLOAT_PRECISIONS = ("fp32", "fp16")
QUANTISED = ("int8-weights", "int8", "palette4", "palette6")
PRECISIONS = FLOAT_PRECISIONS + QUANTISED
# User images judged per export: enough for an agreement rate, few enough that CoreML's reference
# evaluator (numpy, about 0.5-2 s per image) keeps an export within a minute or two.
MAX_JUDGED_IMAGES = 24
# Fewer decisive samples than this and an agreement rate means little: "not-verified".
MIN_JUDGED_SAMPLES = 10


def check_precision(precision: str, target: ExportTarget | None = None) -> None:
    """Refuse an unknown precision, or one the target cannot write, before anything is built."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown --precision {precision!r}: use {', '.join(PRECISIONS)}")
    if target is not None and precision not in target.precisions:
        writers = [t for t in target_names() if precision in _precisions_of(t)]
        raise ExportError(
            f"--precision {precision} applies to {' / '.join(writers)} exports only (got {target.name}, which writes {', '.join(target.precisions)})"
        )


def _precisions_of(target_name: str) -> tuple[str, ...]:
    try:
        return get_target(target_name).precisions
    except TargetNotInstalled:  # an extra not installed here: it writes nothing here
        return ()


@dataclass
class Quantisation:
    """What one quantised export needs beyond the float one."""

    calibration: np.ndarray | None = None  # pixels that set int8 activation ranges
    judged: list[Sample] = field(default_factory=list)  # user images judged besides the verification samples
    warnings: list[str] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)


def prepare(precision: str, target: ExportTarget, resize_shortest: int, crop: int, calibration_dir: Path | None) -> Quantisation:
    """Calibration pixels, judged images and metadata of a quantised export (empty for fp32/fp16)."""
    if precision in FLOAT_PRECISIONS:
        return Quantisation()
    q = Quantisation()
    if precision == "int8":
        pixels, warning = calibration_pixels(calibration_dir, resize_shortest, crop)
        q.calibration = pixels
        q.warnings += [warning] if warning else []
        if calibration_dir is not None:
            q.judged = as_samples(pixels[:MAX_JUDGED_IMAGES])
    elif calibration_dir is not None:  # weight-only precisions calibrate nothing; the images are judged
        q.judged = as_samples(read_images(calibration_dir, resize_shortest, crop, limit=MAX_JUDGED_IMAGES))
    q.metadata["quantization"] = json.dumps(target.quantisation_settings(precision), sort_keys=True)
    return q


def judged_images(directory: Path | None, resize_shortest: int, crop: int) -> list[Sample]:
    """mvit-verify --images DIR: the user's images to judge a quantised artefact on."""
    if directory is None:
        return []
    return as_samples(read_images(directory, resize_shortest, crop, limit=MAX_JUDGED_IMAGES, flag="--images"), prefix="image")


def judge_quantised(result: RunnerVerification, precision: str, weights: str) -> RunnerVerification:
    """A quantised artefact's verification, said honestly: agreement of random weights, or of
    fewer than MIN_JUDGED_SAMPLES decisive samples, is no evidence, so the verdict is not-verified."""
    if precision not in QUANTISED or result.verdict == "not-verified":
        return result
    judged = result.task_metrics.get("top1_judged_samples", len(result.samples))
    reason = None
    if weights.startswith("random"):
        reason = f"random weights: a {precision} export's agreement with fp32 says nothing about a trained network; export with --checkpoint to judge it"
    elif judged < MIN_JUDGED_SAMPLES:
        reason = (
            f"only {judged} sample(s) had a decisive reference answer ({MIN_JUDGED_SAMPLES} needed to judge a "
            f"{precision} export): pass --calibration DIR (mvit-export) or --images DIR (mvit-verify) "
            "with your own images"
        )
    if reason is None:
        return result
    said = replace(result, reason=reason, warnings=[*result.warnings, reason])
    if weights.startswith("random"):
        # Neither a pass nor a fail means anything here: the checks are kept, apart, for the record.
        return replace(said, checks=[], unjudged_checks=result.checks, verdict="not-verified")
    # a failure on few samples is still a failure
    return replace(said, verdict="fail" if any(not c.passed for c in result.checks) else "not-verified")
