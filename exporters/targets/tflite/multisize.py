"""TFLite multi-size: one file, one signature per (config, size), named as the CoreML functions.

litert-torch converts each signature's module to its own subgraph; the weights of one network
traced at several sizes are stored once (measured: XXS at 64/96/128, 6.2 MB fp32 for three
signatures against 5.0 MB for one). A file holds no `serving_default` then: runners name the
signature (target.LiteRTRunner(signature=...))."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...base import ExportError, Runner
from ...multisize import FUNCTIONS_KEY, SizedExport
from ...stages import build_for_target, export_request
from .target import TARGET, LiteRTRunner, _fp16_weights, _FromNHWC, _metadata, _NamedOutputs, _quiet_progress, _with_metadata


def write_signatures(entries: list[SizedExport], path: Path, precision: str) -> dict[str, Any]:
    import litert_torch

    converter: Any = litert_torch
    request = None
    for e in entries:
        prepared = e.prepared
        opts = prepared.options["tflite"]
        built, _ = build_for_target(prepared.resolved, prepared.fused, TARGET, opts)
        module: nn.Module = _NamedOutputs(built.module, built.output_names)
        shape = (1, 3, e.image_size, e.image_size)
        if opts.option("nhwc"):
            module, shape = _FromNHWC(module), (1, e.image_size, e.image_size, 3)
        # A fixed example keeps the trace (and so the file) identical from one export to the next.
        example = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 255
        converter = converter.signature(e.name, module.eval(), sample_kwargs={"image": example})
        if request is None:
            request = export_request(prepared.resolved, built, precision, opts, TARGET)
    assert request is not None
    with _quiet_progress():
        content = bytes(converter.convert().model_content())
    if precision == "fp16":
        # Signatures share weight buffers, so the quantizer logs one "overriding previously quantized
        # data" line per shared buffer per extra signature (the same fp16 data each time).
        logging.disable(logging.WARNING)
        try:
            content = _fp16_weights(content)
        finally:
            logging.disable(logging.NOTSET)
    request.metadata[FUNCTIONS_KEY] = json.dumps([e.as_entry() for e in entries])
    meta = _metadata(request)

    Path(path).write_bytes(_with_metadata(content, meta))
    return {}


class TFLiteMultiSize:
    """One file, one signature per (config, size); each size runs its own signature."""

    def write(self, entries: list[SizedExport], path: Path, staging: Path, precision: str, form: str) -> dict[str, Any]:
        if form != "signatures":
            raise ExportError(f"TFLite writes several sizes as signatures of one file, not as {form!r}")
        return write_signatures(entries, path, precision)

    def runner(self, path: Path, form: str, verifier: str) -> Callable[[dict[str, Any]], Runner]:
        return lambda entry: LiteRTRunner(path, 1, signature=entry["name"])
