"""TFLite's side of the per-layer sensitivity search (sensitivity.py): an ai-edge-quantizer recipe
with one layer quantised, or with some layers kept float, and LiteRT to run the result.

Activation ranges are calibrated once, under the whole int8 recipe, and reused by every variant:
a variant costs one quantisation pass and one run over the calibration images. The quantizer
picks an op's rule by a regex over its scope (its output tensors' names), the last matching rule
winning, so a layer is kept float by one `no_quantize` rule per op of it, anchored to that scope.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from mvit.work import Workers

from ...sensitivity import COSINE_TARGET, LayerSensitivity, MixedPrecision, MixScore, calibration_notes, choose, mean_cosine, measure

SIGNATURE = "serving_default"
INPUT_NAME = "image"
# The layers searched: those with weights, where a fused BatchNorm's outlier channels land.
SEARCHED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
# A layer is its weighted op and the activation reading its output (SiLU is LOGISTIC and MUL):
# the outlier channels are in that output, which the activation, not the convolution, quantises.
ACTIVATION_OPS = ("LOGISTIC", "MUL", "RELU", "RELU6", "HARD_SWISH", "TANH")


@dataclass(frozen=True)
class Variant:
    """What every variant shares: the float model, its calibrated ranges, the images and fp32's answers."""

    float_model: bytes
    rules: list[dict[str, Any]]  # the whole int8 recipe, input/output/Softmax kept float
    calibration: dict[str, Any]  # the quantizer's calibration result under `rules`
    feeds: list[dict[str, np.ndarray]]  # one calibration image per feed, in the file's layout
    output: str  # the signature output compared with fp32
    reference: np.ndarray
    layers: dict[str, list[str]]  # layer -> the op scopes it covers


def scope_rule(scope: str, algorithm: str = "no_quantize", like: dict[str, Any] | None = None) -> dict[str, Any]:
    """A recipe rule for exactly the op whose scope is `scope` (scopes end in ';', the regex is anchored)."""
    rule = {**(like or {}), "regex": f"^{re.escape(scope)}$", "operation": "*"}
    return rule if like else {**rule, "algorithm_key": algorithm}


def quantise(variant: Variant, rules: list[dict[str, Any]]) -> bytes:
    q = _quantizer(variant.float_model)
    q.load_quantization_recipe(rules)
    return bytes(q.quantize(variant.calibration, enable_progress_bar=False, enable_progress_report=False).quantized_model)


@functools.lru_cache(maxsize=1)
def _quantizer(float_model: bytes) -> Any:
    """One quantizer per float model and process: parsing the flatbuffer is a quarter of a variant's
    cost, and `quantize` copies the parsed model before changing it (same bytes as a fresh one, measured)."""
    from ai_edge_quantizer import quantizer

    return quantizer.Quantizer(bytearray(float_model))


def run(content: bytes, feeds: list[dict[str, np.ndarray]], output: str) -> np.ndarray:
    """The signature's `output` for every feed, one image per call, one thread."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_content=content, num_threads=1).get_signature_runner(SIGNATURE)
    return np.concatenate([np.asarray(runner(**feed)[output]) for feed in feeds])


def with_float_layers(variant: Variant, float_layers: list[str]) -> list[dict[str, Any]]:
    """The int8 recipe with every op of `float_layers` kept float."""
    return [*variant.rules, *(scope_rule(s) for layer in float_layers for s in variant.layers[layer])]


def _layer_cosine(variant: Variant, layer: str) -> float:
    kept_float = [r for r in variant.rules if r.get("algorithm_key") == "no_quantize"]
    int8 = next(r for r in variant.rules if r.get("algorithm_key") != "no_quantize")
    only = [*(scope_rule(s, like=int8) for s in variant.layers[layer]), *kept_float]
    return mean_cosine(variant.reference, run(quantise(variant, only), variant.feeds, variant.output))


def layers_of(content: bytes) -> dict[str, tuple[str, list[str]]]:
    """Searched layer ('CONV_2D#2': op and index) -> (its op, the scopes of its op and of the activations of its output)."""
    from ai_edge_litert.tools import flatbuffer_utils
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as tfl

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    subgraph = model.subgraphs[0]
    names = [tfl.TFL_OP_CODE_TO_NAME.get(model.operatorCodes[op.opcodeIndex].builtinCode) for op in subgraph.operators]
    readers: dict[int, list[int]] = {}
    for i, op in enumerate(subgraph.operators):
        for t in op.inputs:
            readers.setdefault(int(t), []).append(i)
    out = {}
    for i, op in enumerate(subgraph.operators):
        kind = getattr(names[i], "value", None)
        if kind in SEARCHED_OPS:
            after = [r for r in readers.get(int(op.outputs[0]), []) if getattr(names[r], "value", None) in ACTIVATION_OPS]
            out[f"{kind}#{i}"] = (kind, [tfl.get_op_scope(subgraph.operators[j], subgraph.tensors) for j in (i, *after)])
    return out


def prepare(content: bytes, rules: list[dict[str, Any]], feeds: list[dict[str, np.ndarray]], output: str) -> Variant:
    """The float model `content` calibrated under the whole recipe `rules`, with fp32's answers on `feeds`."""
    from ai_edge_quantizer import quantizer

    q = quantizer.Quantizer(bytearray(content), rules)
    # One calibration pass under the whole recipe: its ranges cover every op any variant quantises.
    calibration = q.calibrate({SIGNATURE: feeds}, num_threads=1)
    layers = {name: scopes for name, (_, scopes) in layers_of(content).items()}
    return Variant(content, rules, calibration, feeds, output, run(content, feeds, output), layers)


def sensitivity(variant: Variant, workers: Workers) -> list[LayerSensitivity]:
    """Every searched layer quantised alone, most sensitive first."""
    ops = [op for op, _ in layers_of(variant.float_model).values()]
    return measure(_layer_cosine, variant, list(variant.layers), ops, workers)


def mixed_precision(
    content: bytes, rules: list[dict[str, Any]], feeds: list[dict[str, np.ndarray]], output: str, workers: Workers
) -> tuple[MixedPrecision, bytes]:
    """Sensitivity of every searched layer of the float model `content`, the layers chosen to stay
    float, and the model quantised with them float (with the ranges the search measured it with)."""
    variant = prepare(content, rules, feeds, output)
    table = sensitivity(variant, workers)

    def score_with(float_layers: list[str]) -> MixScore:
        out = run(quantise(variant, with_float_layers(variant, float_layers)), feeds, output)
        return MixScore.between(variant.reference, out)

    # LiteRT's int8 agreement saturates on the calibration images first (sensitivity.COSINE_TARGET).
    found = choose(table, score_with, cosine_target=COSINE_TARGET)
    found.notes[:0] = calibration_notes(variant.reference)
    return found, quantise(variant, with_float_layers(variant, found.float_layers))
