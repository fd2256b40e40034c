"""ONNX multi-size: one graph with dynamic height and width, traced from a size-generic copy of
the network (dynamic_shapes.py) and written as target.py writes a single size (TorchScript
exporter, onnxslim, fp16 weights, metadata). A graph holds one patch config, so `--config A,B`
gives one file per config (multisize.export)."""

from __future__ import annotations

import io
import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import torch

from mvit.models.facts import resizes_at

from ...base import ExportError, Runner
from ...dynamic_shapes import for_every_size, size_generic
from ...multisize import FUNCTIONS_KEY, SizedExport
from ...stages import build_for_target, export_request
from ...wrappers import INPUT_NAME
from .target import OPSET, TARGET, _simplify, _store_weights_fp16


def write_dynamic(entries: list[SizedExport], path: Path, precision: str) -> dict[str, Any]:
    first = entries[0].prepared
    opts = first.options["onnx"]
    built, _ = build_for_target(first.resolved, first.fused, for_every_size(TARGET), opts)
    size = entries[0].image_size
    axes: dict[int, str] = {2: "height", 3: "width"}
    if opts.option("dynamic_batch"):
        axes[0] = "batch"
    dynamic = {INPUT_NAME: axes, **{n: {0: "batch"} for n in built.output_names if opts.option("dynamic_batch")}}
    always_resize = resizes_at(first.fused, [e.image_size for e in entries])
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad(), size_generic(built.module, always_resize) as module:
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, 3, size, size),),
            buffer,  # type: ignore[arg-type]
            dynamo=False,
            opset_version=OPSET,  # type: ignore[arg-type]
            input_names=[INPUT_NAME],
            output_names=built.output_names,
            dynamic_axes=dynamic,
            do_constant_folding=True,
        )
    model = _simplify(onnx.load_from_string(buffer.getvalue()))
    if precision == "fp16":
        _store_weights_fp16(model)
    # The metadata reads the resolved model and the output names, not the rewrites: no second build.
    meta = dict(export_request(first.resolved, built, precision, opts, TARGET).metadata)
    meta[FUNCTIONS_KEY] = json.dumps([e.as_entry() for e in entries])
    del model.metadata_props[:]
    for key in sorted(meta):
        model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(meta[key])))
    model.doc_string = f"mvit export of {first.resolved.name}, sizes {[e.image_size for e in entries]}"
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return {"blocks_always_resize": always_resize}


class OnnxMultiSize:
    """One graph per config with dynamic height and width; every size runs the same graph."""

    def write(self, entries: list[SizedExport], path: Path, staging: Path, precision: str, form: str) -> dict[str, Any]:
        if form != "dynamic":
            raise ExportError(f"ONNX writes several sizes as one dynamic graph, not as {form!r}")
        return write_dynamic(entries, path, precision)

    def runner(self, path: Path, form: str, verifier: str) -> Callable[[dict[str, Any]], Runner]:
        runner = TARGET.load(path, num_threads=1)
        return lambda entry: runner
