"""The ONNX target's own options, declared without importing onnx (the registry reads them for the
command line whether or not the onnx extra is installed)."""

from __future__ import annotations

from ...base import TargetOption

OPTIONS: tuple[TargetOption, ...] = (TargetOption("dynamic_batch", "--dynamic-batch", "ONNX: dynamic batch dimension", tag="dynbatch", means="dynamic_batch"),)
