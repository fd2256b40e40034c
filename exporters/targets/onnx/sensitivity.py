"""ONNX's side of the per-layer sensitivity search (sensitivity.py): quantise a float graph with
onnxruntime's QDQ quantiser with one node quantised, or with some nodes kept float, and run it.

Activation ranges are calibrated once (onnxruntime's calibration cache) and reused by every
variant, so a variant costs one quantisation pass and one run over the calibration images.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import quantize_static

from mvit.work import Workers

from ...sensitivity import MixedPrecision, MixScore, calibration_notes, choose, mean_cosine, measure
from ...wrappers import INPUT_NAME

# The layers searched: those with weights, where a fused BatchNorm's outlier channels land.
SEARCHED_OPS = ("Conv", "MatMul", "Gemm")
# A layer is its weighted node and the activation reading its output (SiLU is Sigmoid and Mul):
# the outlier channels are in that output, whose QDQ pair the activation, not the Conv, asks for.
ACTIVATION_OPS = ("Sigmoid", "Mul", "Relu", "Clip", "HardSigmoid", "HardSwish", "Tanh")


@dataclass(frozen=True)
class Variant:
    """What every variant shares: the float graph, its calibrated ranges, the images and fp32's answers."""

    float_model: bytes
    calibration_cache: bytes
    pixels: np.ndarray
    reference: np.ndarray
    quantise_args: dict[str, Any]  # quantize_static's keyword arguments, calibration aside
    layers: dict[str, list[str]]  # layer (its weighted node's name) -> the node names it covers


def run(model_path: Path, pixels: np.ndarray) -> np.ndarray:
    """The graph's first output for every image, one image per call (the graph's batch may be fixed at 1)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = session.get_outputs()[0].name
    return np.concatenate([session.run([name], {INPUT_NAME: p[None].astype(np.float32)})[0] for p in pixels])


def quantise(variant: Variant, folder: Path, **selection: list[str]) -> Path:
    """The float graph quantised with the shared ranges; `selection` is nodes_to_quantize or nodes_to_exclude."""
    src, cache, dst = folder / "float.onnx", folder / "ranges.json", folder / "variant.onnx"
    if not src.exists():
        src.write_bytes(variant.float_model)
        cache.write_bytes(variant.calibration_cache)
    args = {**variant.quantise_args, **selection}
    quantize_static(src, dst, None, calibration_cache_path=cache, **args)  # type: ignore[arg-type]  # ranges come from the cache
    return dst


def _layer_cosine(variant: Variant, layer: str) -> float:
    with tempfile.TemporaryDirectory(prefix="mvit-sens-") as tmp:
        quantised = quantise(variant, Path(tmp), nodes_to_quantize=variant.layers[layer])
        return mean_cosine(variant.reference, run(quantised, variant.pixels))


def layers_of(model: onnx.ModelProto, excluded: list[str]) -> dict[str, tuple[str, list[str]]]:
    """Searched layer -> (its op, the nodes it covers: the weighted node and the activations of its output)."""
    readers: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n)
    out = {}
    for n in model.graph.node:
        if n.op_type in SEARCHED_OPS and n.name and n.name not in excluded:
            after = [r.name for r in readers.get(n.output[0], []) if r.op_type in ACTIVATION_OPS and r.name]
            out[n.name] = (n.op_type, [n.name, *after])
    return out


def mixed_precision(
    src: Path, reader: Any, pixels: np.ndarray, quantise_args: dict[str, Any], excluded: list[str], workers: Workers
) -> tuple[MixedPrecision, list[str]]:
    """Sensitivity of every searched layer of the float graph at `src`, the layers chosen to stay float, and their nodes."""
    folder = src.parent
    cache = folder / "ranges.json"
    # One calibration pass: this call writes the ranges every variant below reads.
    quantize_static(src, folder / "full.onnx", reader, calibration_cache_path=cache, **{**quantise_args, "nodes_to_exclude": excluded})
    layers = layers_of(onnx.load(str(src)), excluded)
    variant = Variant(src.read_bytes(), cache.read_bytes(), pixels, run(src, pixels), quantise_args, {name: nodes for name, (_, nodes) in layers.items()})
    table = measure(_layer_cosine, variant, list(layers), [op for op, _ in layers.values()], workers)

    def score_with(float_layers: list[str]) -> MixScore:
        with tempfile.TemporaryDirectory(prefix="mvit-mix-") as tmp:
            nodes = [n for layer in float_layers for n in variant.layers[layer]]
            out = run(quantise(variant, Path(tmp), nodes_to_exclude=[*excluded, *nodes]), pixels)
        return MixScore.between(variant.reference, out)

    found = choose(table, score_with)
    found.notes[:0] = calibration_notes(variant.reference)
    return found, [n for layer in found.float_layers for n in variant.layers[layer]]
