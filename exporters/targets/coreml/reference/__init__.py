"""A reference evaluator for the ML Program inside a saved .mlpackage.

Core ML's `predict` exists only on macOS. This package reads the program and its weights back with
coremltools' own MIL loader and runs it op by op in torch, so CoreML exports are numerically checked
on Linux too (verified-by: mil-reference). See docs/coreml-reference.md.

    evaluate(path, {"image": pixels})            -> {output name: np.ndarray}
    MilReferenceRunner(path).run({"image": ...}) -> the same, as an exporters.base.Runner
    program_op_types(path)                       -> {op type: count}
    unsupported_ops(path)                        -> op types without an implementation
"""

from __future__ import annotations

from .errors import MilReferenceError, UnsupportedOpError
from .runner import MilReferenceRunner, evaluate, program_op_types, unsupported_ops

__all__ = [
    "MilReferenceError",
    "MilReferenceRunner",
    "UnsupportedOpError",
    "evaluate",
    "program_op_types",
    "unsupported_ops",
]
