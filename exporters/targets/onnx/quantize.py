"""ONNX int8 exports with onnxruntime.quantization, applied to the float graph the target wrote.

int8-weights: `quantize_dynamic` (int8 weights of MatMul/Gemm; their activations are
quantised per call from their own range, "dynamic range"). int8: `quantize_static` in QDQ form
with activation scales from the calibration images. The settings were chosen on the trained
classifier fixture by top-1 agreement with fp32 PyTorch on its 360 held-out scenes
(docs/verification.md, "Quantised exports", has the table and the command).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mvit.work import Workers

from ...base import ExportError, ExportRequest
from ...sensitivity import record_mixed_precision
from ...tasks import get_task
from ...wrappers import INPUT_NAME
from .sensitivity import mixed_precision

# Chosen on the trained classifier: per-tensor scales without reduce_range agreed best
# (0.994 vs 0.986 per-channel, 0.992 / 0.972 with reduce_range).
# uint8 activations (U8S8): ORT's x86 int8 kernels take unsigned activations; with int8 ones
# (S8S8) the same graph ran 0.12x the fp32 speed on this project's CPU, with uint8 0.91x
# (XXS classifier at 64 px, 1 thread, 40 interleaved pairs; docs/quantization.md).
# The attention's Softmax and its activation x activation MatMuls (queries x keys, weights x
# values) stay float: ORT runs them as QLinearSoftmax and QLinearMatMul, slower than the float
# kernels they replace. With them float, MobileViT-XS at 256 px ran 0.76x the time of the
# all-int8 graph; the MatMuls with constant weights stay int8 for size (docs/quantization.md,
# "Speed at 256 x 256").
STATIC_SETTINGS: dict[str, Any] = {
    "per_channel": False,
    "reduce_range": False,
    "excluded_op_types": ["Softmax"],
    "float_activation_matmuls": True,
    "calibrate_method": "MinMax",
    "activation_type": "uint8",
    "mixed_precision": True,  # the layers int8 breaks stay float (sensitivity.py)
}
# Dynamic range on MatMul/Gemm only: ORT runs a dynamically quantised Conv as ConvInteger, which
# ran the whole classifier at 0.18x fp32 speed here; MatMul/Gemm alone gave 1.29x (same runs).
DYNAMIC_SETTINGS: dict[str, Any] = {"per_channel": True, "reduce_range": False, "op_types": ["MatMul", "Gemm"]}


class _Images:
    """onnxruntime's CalibrationDataReader: one calibration image per call, then None."""

    def __init__(self, pixels: np.ndarray):
        self._items = iter([{INPUT_NAME: p[None].astype(np.float32)} for p in pixels])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._items, None)


def static_args(settings: dict[str, Any]) -> dict[str, Any]:
    """quantize_static's keyword arguments (calibration data and node selection aside) for STATIC_SETTINGS-shaped `settings`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    return dict(
        quant_format=QuantFormat.QDQ,
        per_channel=settings["per_channel"],
        reduce_range=settings["reduce_range"],
        activation_type=QuantType.QUInt8 if settings["activation_type"] == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, settings["calibrate_method"]),
        extra_options={"ActivationSymmetric": False, "WeightSymmetric": True},
    )


def quantize_onnx(model: onnx.ModelProto, request: ExportRequest, settings: dict[str, Any] | None = None) -> onnx.ModelProto:
    """The float `model` quantised per `request.precision`; returns the new model (metadata not yet set)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic, quantize_static

    with tempfile.TemporaryDirectory(prefix="mvit-quant-") as tmp, _quiet_root_logger():
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        if request.precision == "int8-weights":
            s = {**DYNAMIC_SETTINGS, **(settings or {})}
            quantize_dynamic(
                src,
                dst,
                op_types_to_quantize=s["op_types"],
                per_channel=s["per_channel"],
                reduce_range=s["reduce_range"],
                weight_type=QuantType.QInt8,
                nodes_to_exclude=_batched_weight_matmuls(model),
            )
        elif request.precision == "int8":
            s = {**STATIC_SETTINGS, **(settings or {})}
            if request.calibration is None or not len(request.calibration):
                raise ExportError("int8 needs calibration images; pass --calibration DIR")
            excluded = [n.name for n in model.graph.node if n.op_type in s["excluded_op_types"]]
            if s["float_activation_matmuls"]:
                excluded += _activation_matmuls(model)
            args = static_args(s)
            if s["mixed_precision"] and get_task(request.task).classifier:
                # The search reproduces the classifier judge (top-1 agreement, probability cosine); other tasks quantise whole.
                # mvit-export has no --workers: the search runs in this process, its tasks on the shared runner.
                found, float_nodes = mixed_precision(src, _Images(request.calibration), request.calibration, args, excluded, Workers())
                record_mixed_precision(request, found)
                excluded += float_nodes
            quantize_static(src, dst, _Images(request.calibration), nodes_to_exclude=excluded, **args)
        else:
            raise ExportError(f"--precision {request.precision} is not available for ONNX exports")
        out = onnx.load(str(dst))
    del out.metadata_props[:]
    return out


def _batched_weight_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls whose constant operand is not a 2-D matrix (the head-major attention's per-head
    [heads, dim, hd] weights, exporters/rewrites/attention_layout.py): ORT's DynamicQuantizeMatMul
    takes only a 2-D B and refuses the whole model at load, so these stay float."""
    ranks = {t.name: len(t.dims) for t in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and any(ranks.get(i, 2) != 2 for i in n.input[1:])]


def _activation_matmuls(model: onnx.ModelProto) -> list[str]:
    """MatMuls of two computed tensors (no initializer or Constant operand): attention's scores and mix."""
    constants = {t.name for t in model.graph.initializer} | {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in constants for i in n.input)]


@contextlib.contextmanager
def _quiet_root_logger():
    # onnxruntime.quantization advises "pre-processing" through the root logger on every call.
    before = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(before)


def settings_for(precision: str) -> dict[str, Any]:
    """What an artefact records about how it was quantised (its `quantization` metadata)."""
    if precision == "int8-weights":
        return {"method": "onnxruntime.quantization.quantize_dynamic", **DYNAMIC_SETTINGS}
    return {"method": "onnxruntime.quantization.quantize_static (QDQ)", **STATIC_SETTINGS}
