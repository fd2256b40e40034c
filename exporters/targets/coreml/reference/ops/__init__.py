"""One small function per MIL op, registered by its MIL name (the shape of onnx/reference/ops/).

Each op function takes the op's inputs as keyword arguments (tensors as float32/int torch
tensors, const parameters as tensors, strings or lists) and returns one value or a tuple, one per
MIL output. Semantics follow coremltools' op definitions in
coremltools/converters/mil/mil/ops/defs/ (iOS15..iOS18), cited per op where they are subtle.
"""

from __future__ import annotations

# Importing a family module registers its ops.
from . import activation, classify, conv, elementwise, linear, nms, normalization, pool, quantization, reduction, resize, tensor  # noqa: F401
from ._registry import OPS, register

__all__ = ["OPS", "register"]
