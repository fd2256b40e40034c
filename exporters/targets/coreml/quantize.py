"""CoreML quantised exports with coremltools.optimize, applied to the converted fp16 ML Program.

- int8-weights: `linear_quantize_weights`, symmetric int8 per output channel (iOS16:
  `constexpr_affine_dequantize`); compute stays fp16, the weights are decompressed at load.
- palette4 / palette6: `palettize_weights`, k-means look-up tables of 16 / 64 values per weight
  tensor (`constexpr_lut_to_dense`).
- int8: W8A8. Activations get `quantize`/`dequantize` pairs (iOS17) at the points coremltools'
  `linear_quantize_activations` chooses, then the weights as int8-weights. That function calibrates
  with Core ML's `predict`, which exists only on macOS; here the activation ranges are read by
  running the program with mvit's MIL reference evaluator over the calibration images and given to
  the same coremltools graph passes (coremltools 9.0 private API: pinned in pyproject.toml).

Weights smaller than coremltools' default threshold (2048 values: biases, norms) stay fp16.
"""

from __future__ import annotations

import tempfile
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ...base import ExportError, ExportRequest
from .reference import MilReferenceRunner
from .reference.evaluator import is_constant_op
from .reference.image import to_program_input

SETTINGS: dict[str, dict[str, Any]] = {
    "int8-weights": {
        "method": "coremltools.optimize.coreml.linear_quantize_weights",
        "mode": "linear_symmetric",
        "granularity": "per_channel",
        "dtype": "int8",
    },
    "int8": {
        "method": "activations: coremltools' linear_quantize_activations passes, ranges from the MIL reference evaluator; weights: linear_quantize_weights",
        "mode": "linear_symmetric",
        "granularity": "per_channel",
    },
    "palette4": {"method": "coremltools.optimize.coreml.palettize_weights", "mode": "kmeans", "nbits": 4},
    "palette6": {"method": "coremltools.optimize.coreml.palettize_weights", "mode": "kmeans", "nbits": 6},
}


def settings_for(precision: str) -> dict[str, Any]:
    """What an artefact records about how it was quantised."""
    return dict(SETTINGS[precision])


def quantize_coreml(mlmodel: Any, request: ExportRequest) -> Any:
    """The converted ML Program `mlmodel` compressed per `request.precision`."""
    import coremltools.optimize.coreml as cto

    precision = request.precision
    if precision not in SETTINGS:
        raise ExportError(f"--precision {precision} is not available for CoreML exports")
    if mlmodel.get_spec().WhichOneof("Type") != "mlProgram":  # a Vision pipeline's program stage is passed in instead
        raise ExportError(f"--precision {precision} compresses an ML Program, not a {mlmodel.get_spec().WhichOneof('Type')}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if precision.startswith("palette"):
            nbits = SETTINGS[precision]["nbits"]
            config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(mode="kmeans", nbits=nbits))
            return cto.palettize_weights(mlmodel, config)
        if precision == "int8":
            mlmodel = _quantize_activations(mlmodel, request)
        config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel"))
        return cto.linear_quantize_weights(mlmodel, config)


def _quantize_activations(mlmodel: Any, request: ExportRequest) -> Any:
    from coremltools import _SPECIFICATION_VERSION_IOS_17
    from coremltools.converters.mil.frontend.milproto import load as milproto_load
    from coremltools.converters.mil.mil.passes.graph_pass import PassOption
    from coremltools.converters.mil.mil.passes.pass_registry import PASS_REGISTRY
    from coremltools.models import utils as model_utils
    from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
    )

    if request.calibration is None or not len(request.calibration):
        raise ExportError("int8 needs calibration images; pass --calibration DIR")
    stats = activation_ranges(mlmodel, request.calibration)
    # Concat inputs and output share one range, as coremltools' own calibration does.
    _adjust_concat_surrounding_activation_stats(ModelDebugger(mlmodel)._get_concat_op_info(), stats)
    config = OptimizationConfig(global_config=OpLinearQuantizerConfig(mode="linear_symmetric"))
    passes = []
    for name in ("compression::insert_prefix_quantize_dequantize_pair", "compression::insert_suffix_quantize_dequantize_pair"):
        graph_pass = PASS_REGISTRY[name]
        graph_pass.set_options([PassOption("config", config), PassOption("activation_stats", stats)])
        passes.append(graph_pass)
    passes.append(PASS_REGISTRY["common::dequantize_quantize_pair_elimination"])
    return model_utils._apply_graph_pass(mlmodel, passes, spec_version=_SPECIFICATION_VERSION_IOS_17, pymil_load_func=milproto_load.load, skip_model_load=True)


def activation_ranges(mlmodel: Any, pixels: np.ndarray) -> dict[str, dict[str, float]]:
    """{tensor name: {"rmin", "rmax"}} over the calibration images, for every op output that is
    not a constant or a model output (what coremltools' calibration records)."""
    import torch

    stats: dict[str, dict[str, float]] = defaultdict(dict)
    outputs = {o.name for o in mlmodel.get_spec().description.output}

    def observe(op: Any, env: dict[str, Any]) -> None:
        if is_constant_op(op.op_type):
            return
        for var in op.outputs:
            value = env.get(var.name)
            if var.name in outputs or not isinstance(value, torch.Tensor) or not value.is_floating_point():
                continue
            lo, hi = float(value.min()), float(value.max())
            seen = stats[var.name]
            seen["rmin"] = min(lo, seen.get("rmin", lo))
            seen["rmax"] = max(hi, seen.get("rmax", hi))

    with tempfile.TemporaryDirectory(prefix="mvit-calib-") as tmp:
        package = Path(tmp) / "float.mlpackage"
        mlmodel.save(str(package))
        runner = MilReferenceRunner(package)
        name = runner.input_names[0]
        image = runner.package.images.get(name)
        with torch.no_grad():
            for p in pixels:
                x = p[None].astype(np.float32)
                feeds = {name: to_program_input(x, image) if image else x}
                for input_name, value in feeds.items():
                    observe_input(stats, input_name, value)
                runner._evaluator.run(feeds, observe=observe)
    return dict(stats)


def observe_input(stats: dict[str, dict[str, float]], name: str, value: np.ndarray) -> None:
    lo, hi = float(np.min(value)), float(np.max(value))
    seen = stats[name]
    seen["rmin"] = min(lo, seen.get("rmin", lo))
    seen["rmax"] = max(hi, seen.get("rmax", hi))
