"""TFLite int8 exports with ai-edge-quantizer recipes, applied to the float .tflite the target wrote.

int8-weights: `dynamic_wi8_afp32` (int8 per-channel weights; LiteRT quantises activations on
the fly, "dynamic range"). int8: `static_wi8_ai8` with activation ranges from the calibration
images (int8 weights and activations). Ops the quantizer does not support stay float.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

import numpy as np

from mvit.work import Workers

from ...base import ExportError, ExportRequest
from ...sensitivity import record_mixed_precision
from ...tasks import get_task
from .sensitivity import INPUT_NAME, SIGNATURE, mixed_precision

RECIPES = {"int8-weights": "dynamic_wi8_afp32", "int8": "static_wi8_ai8"}
# int8 keeps float the layers that break it on the calibration images (sensitivity.py).
MIXED_PRECISION = True
# Ops each recipe leaves float because XNNPACK has no kernel for their quantised form: LiteRT
# runs them in its own reference kernels, and every such op splits the XNNPACK graph in two.
# int8: LayerNorm's decomposition (SUB, SQUARED_DIFFERENCE, RSQRT) and the attention's
# BATCH_MATMUL; with them int8 MobileViT-XS at 256 px fell into 82 XNNPACK partitions and ran
# 1.5x slower than fp32, with them float 1.85x faster. int8-weights: DEPTHWISE_CONV_2D, whose
# dynamic-range form XNNPACK does not take (7 ops outside, 1.1x slower; float, 1.3x faster).
# docs/quantization.md, "Speed at 256 x 256", has the commands and profiles.
FLOAT_OPS = {
    "int8-weights": ("DEPTHWISE_CONV_2D",),
    "int8": ("SUB", "SQUARED_DIFFERENCE", "RSQRT", "BATCH_MATMUL"),
}


@contextlib.contextmanager
def _quiet() -> Any:
    # The quantizer prints sizes and progress bars; the CLI shows its own progress instead.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        yield


def quantize_tflite(content: bytes, request: ExportRequest) -> bytes:
    """The float flatbuffer quantised per `request.precision` (metadata is added by the caller)."""
    from ai_edge_quantizer import quantizer

    if request.precision not in RECIPES:
        raise ExportError(f"--precision {request.precision} is not available for TFLite exports")
    rules = recipe_rules(request.precision)
    q = quantizer.Quantizer(bytearray(content), rules)
    with _quiet():
        calibration = None
        if q.need_calibration:
            feeds = _feeds(request)
            if MIXED_PRECISION and get_task(request.task).classifier:
                # The search reproduces the classifier judge (top-1 agreement); other tasks quantise whole.
                # mvit-export has no --workers: the search runs in this process, its tasks on the shared runner.
                found, mixed = mixed_precision(content, rules, feeds, request.output_names[0], Workers())
                record_mixed_precision(request, found)
                return mixed
            calibration = q.calibrate({SIGNATURE: feeds}, num_threads=1)
        return bytes(q.quantize(calibration, enable_progress_bar=False, enable_progress_report=False).quantized_model)


def recipe_rules(precision: str) -> list[dict[str, Any]]:
    """The ai-edge-quantizer recipe of `precision`, with the artefact's input, outputs, Softmax and
    the ops XNNPACK has no quantised kernel for (FLOAT_OPS) kept float."""
    from ai_edge_quantizer import recipe

    rules: list[dict[str, Any]] = getattr(recipe, RECIPES[precision])()
    # The artefact keeps float pixels in and float outputs: the recipe alone would make the graph's
    # input and output tensors int8, which no caller of an mvit artefact feeds or reads.
    # Softmax stays float too: its int8 output fed both the graph output and ARG_MAX, and LiteRT
    # then returned the int8 tensor as the output, its bytes overwritten by the class id (measured).
    float_ops = ("INPUT", "OUTPUT", "SOFTMAX", *FLOAT_OPS[precision])
    return rules + [{"regex": ".*", "operation": op, "algorithm_key": "no_quantize"} for op in float_ops]


def _feeds(request: ExportRequest) -> list[dict[str, np.ndarray]]:
    """The calibration pixels as signature feeds, in the file's layout."""
    if request.calibration is None or not len(request.calibration):
        raise ExportError("int8 needs calibration images; pass --calibration DIR")
    pixels = request.calibration
    if request.channels_last_input:
        pixels = pixels.transpose(0, 2, 3, 1)
    return [{INPUT_NAME: np.ascontiguousarray(p[None], dtype=np.float32)} for p in pixels]


def settings_for(precision: str) -> dict[str, Any]:
    """What an artefact records about how it was quantised."""
    settings: dict[str, Any] = {"method": f"ai_edge_quantizer.recipe.{RECIPES[precision]}", "float_ops": list(FLOAT_OPS[precision])}
    if precision == "int8":
        settings["mixed_precision"] = MIXED_PRECISION
    return settings
