"""A copy of an artefact that is a known fraction slower and gives bit-identical outputs.

    python -m mvit.benchmarks.slowed exports/mobilevit_xxs_A_256_fp32.onnx slowed.onnx --slowdown 0.15

It measures the power of the CI latency step on real timings (benchmarks/calibrate_ci.py).
The copy gets an extra branch: the input image reshaped to [rows, 16] goes through `layers`
MatMuls with orthogonal 16x16 weights (norm-preserving, so the values stay finite), is reduced
to one number z by a dot product, and -|z| * 0 is added to the classifier's logits (the input
of its last Softmax). -|z| * 0 is -0.0 for every finite z, and x + -0.0 == x bit for bit for
every float x (+0.0 would turn a -0.0 logit into +0.0), so the outputs are unchanged; neither
ONNX Runtime's graph optimiser nor LiteRT simplifies a multiplication by a constant zero, and
the branch sits on the path of every output, so it always runs. `layers` is chosen by timing:
per layer cost measured on a probe build, at the CI's thread count, the way `ab` times.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvit.errors import MvitError, one_line

WIDTH = 16  # a narrow MatMul: one layer costs 0.5-0.9% of MobileViT-XXS here, fine enough to size
SEED = 20261130
PROBE_LAYERS = 30  # 15-25% of MobileViT-XXS at 1 thread: the probe is near its target
TOLERANCE = 0.02
SIZING_PAIRS = 200  # about 15 s here under load
SIZING_ROUNDS = 3
MAX_LAYERS = 400
BRANCH_PREFIX = "mvit_slowed_"  # every name the branch adds starts with it


class SlowedError(MvitError):
    """The artefact cannot carry the branch (no Softmax, odd input size) or its outputs changed."""


def branch_weights(layers: int, rows: int) -> tuple[list[np.ndarray], np.ndarray]:
    """`layers` orthogonal WIDTH x WIDTH matrices and the reduction vector, from a fixed seed
    (the same artefact and layer count give the same bytes)."""
    rng = np.random.default_rng(SEED)
    mats = [np.linalg.qr(rng.standard_normal((WIDTH, WIDTH)))[0].astype(np.float32) for _ in range(layers)]
    reduce = (rng.standard_normal(rows * WIDTH) / np.sqrt(rows * WIDTH)).astype(np.float32)
    return mats, reduce


def _rows(shape: list[int]) -> int:
    numel = int(np.prod(shape))
    if numel % WIDTH:
        raise SlowedError(f"the input has {numel} elements, not a multiple of {WIDTH}; use another image size")
    return numel // WIDTH


def slowed_onnx(src: Path, dst: Path, layers: int) -> None:
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(src))
    graph = model.graph
    softmax = [i for i, n in enumerate(graph.node) if n.op_type == "Softmax"]
    if not softmax:
        raise SlowedError(f"{src}: no Softmax to add the branch before; only classifiers are supported")
    at = softmax[-1]
    image = graph.input[0]
    rows = _rows([d.dim_value for d in image.type.tensor_type.shape.dim])
    mats, reduce = branch_weights(layers, rows)
    p = BRANCH_PREFIX
    inits = [
        numpy_helper.from_array(np.array([rows, WIDTH], np.int64), p + "rows_shape"),
        numpy_helper.from_array(np.array([1, rows * WIDTH], np.int64), p + "flat_shape"),
        numpy_helper.from_array(reduce.reshape(-1, 1), p + "reduce"),
        numpy_helper.from_array(np.array(0.0, np.float32), p + "zero"),
    ]
    inits += [numpy_helper.from_array(m, f"{p}w{k}") for k, m in enumerate(mats)]
    nodes = [helper.make_node("Reshape", [image.name, p + "rows_shape"], [p + "h0"], name=p + "reshape")]
    for k in range(layers):
        nodes.append(helper.make_node("MatMul", [f"{p}h{k}", f"{p}w{k}"], [f"{p}h{k + 1}"], name=f"{p}matmul{k}"))
    logits = graph.node[at].input[0]
    nodes += [
        helper.make_node("Reshape", [f"{p}h{layers}", p + "flat_shape"], [p + "flat"], name=p + "flatten"),
        helper.make_node("MatMul", [p + "flat", p + "reduce"], [p + "z"], name=p + "dot"),
        helper.make_node("Abs", [p + "z"], [p + "abs"], name=p + "abs"),
        helper.make_node("Neg", [p + "abs"], [p + "neg"], name=p + "neg"),
        helper.make_node("Mul", [p + "neg", p + "zero"], [p + "minus_zero"], name=p + "times_zero"),
        helper.make_node("Add", [logits, p + "minus_zero"], [p + "logits"], name=p + "add"),
    ]
    graph.node[at].input[0] = p + "logits"
    for k, node in enumerate(nodes):
        graph.node.insert(at + k, node)
    graph.initializer.extend(inits)
    model.metadata_props.add(key="slowed_branch_layers", value=str(layers))
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))


def slowed_tflite(src: Path, dst: Path, layers: int) -> None:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(src.read_bytes()))
    graph = model.subgraphs[0]
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    op = schema.BuiltinOperator
    softmax = [i for i, o in enumerate(graph.operators) if codes[o.opcodeIndex] == op.SOFTMAX]
    if not softmax:
        raise SlowedError(f"{src}: no SOFTMAX to add the branch before; only classifiers are supported")
    at = softmax[-1]
    image = graph.inputs[0]
    rows = _rows([int(d) for d in graph.tensors[image].shape])
    mats, reduce = branch_weights(layers, rows)

    def code(builtin: int) -> int:
        for i, c in enumerate(model.operatorCodes):
            if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
                return i
        entry = schema.OperatorCodeT()
        entry.builtinCode, entry.deprecatedBuiltinCode, entry.version = builtin, min(builtin, 127), 1
        model.operatorCodes.append(entry)
        return len(model.operatorCodes) - 1

    def tensor(name: str, shape: list[int], data: np.ndarray | None = None, int32: bool = False) -> int:
        t = schema.TensorT()
        t.name, t.shape = (BRANCH_PREFIX + name).encode(), np.array(shape, np.int32)
        t.type = schema.TensorType.INT32 if int32 else schema.TensorType.FLOAT32
        t.buffer = 0  # buffer 0 is the empty one: an activation
        if data is not None:
            buf = schema.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        graph.tensors.append(t)
        return len(graph.tensors) - 1

    def operator(builtin: int, inputs: list[int], outputs: list[int], options=None, kind: int = 0):
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = code(builtin), inputs, outputs
        o.builtinOptionsType, o.builtinOptions = kind, options
        return o

    def reshape(x: int, shape: list[int], name: str):
        opts = schema.ReshapeOptionsT()
        opts.newShape = shape
        out = tensor(name, shape)
        return out, operator(
            op.RESHAPE, [x, tensor(name + "_shape", [len(shape)], np.array(shape, np.int32), True)], [out], opts, schema.BuiltinOptions.ReshapeOptions
        )

    def fully_connected(x: int, weights: np.ndarray, out_shape: list[int], name: str):
        opts = schema.FullyConnectedOptionsT()  # no activation, plain float weights
        out = tensor(name, out_shape)
        w = tensor(name + "_w", list(weights.shape), weights)
        return out, operator(op.FULLY_CONNECTED, [x, w, -1], [out], opts, schema.BuiltinOptions.FullyConnectedOptions)

    new_ops = []
    h, o = reshape(image, [rows, WIDTH], "h0")
    new_ops.append(o)
    for k, m in enumerate(mats):
        h, o = fully_connected(h, np.ascontiguousarray(m.T), [rows, WIDTH], f"h{k + 1}")  # FC weights are [out, in]
        new_ops.append(o)
    flat, o = reshape(h, [1, rows * WIDTH], "flat")
    new_ops.append(o)
    z, o = fully_connected(flat, reduce.reshape(1, -1), [1, 1], "z")
    new_ops.append(o)
    magnitude = tensor("abs", [1, 1])
    negative = tensor("neg", [1, 1])
    minus_zero = tensor("minus_zero", [1, 1])
    logits = graph.operators[at].inputs[0]
    added = tensor("logits", [int(d) for d in graph.tensors[logits].shape])
    new_ops += [
        operator(op.ABS, [z], [magnitude]),
        operator(op.NEG, [magnitude], [negative]),
        operator(op.MUL, [negative, tensor("zero", [1], np.zeros(1, np.float32))], [minus_zero], schema.MulOptionsT(), schema.BuiltinOptions.MulOptions),
        operator(op.ADD, [logits, minus_zero], [added], schema.AddOptionsT(), schema.BuiltinOptions.AddOptions),
    ]
    graph.operators[at].inputs[0] = added
    graph.operators[at:at] = new_ops
    dst.write_bytes(bytes(flatbuffer_utils.convert_object_to_bytearray(model)))


def write_slowed(src: Path, dst: Path, layers: int) -> None:
    if src.suffix == ".onnx":
        slowed_onnx(src, dst, layers)
    elif src.suffix == ".tflite":
        slowed_tflite(src, dst, layers)
    else:
        raise SlowedError(f"{src}: only .onnx and .tflite artefacts can be slowed")


def outputs_identical(a: Path, b: Path, seeds: tuple[int, ...] = (0, 1)) -> bool:
    """Both artefacts give the same bytes for every output on the benchmark input and noise."""
    from .ab import artefact_model
    from .runtimes import artefact_runtime, example_input, load_artefact

    runtime = artefact_runtime(a)
    model = artefact_model(a, runtime, None)
    for seed in seeds:
        x = example_input(model, seed)
        first, second = (load_artefact(runtime, p, 1, x).infer() for p in (a, b))
        assert isinstance(first, dict) and isinstance(second, dict)
        if first.keys() != second.keys():
            return False
        for key in first:
            u, v = np.asarray(first[key]), np.asarray(second[key])
            if u.dtype != v.dtype or u.shape != v.shape or u.tobytes() != v.tobytes():
                return False
    return True


def measured_ratio(base: Path, candidate: Path, threads: int, pairs: int = SIZING_PAIRS) -> float:
    """candidate / base latency: the median of `pairs` paired ratios, timed the way `ab` times
    (ABBA blocks, first calls of a block untimed, no spinning between calls), which runs each side
    at its solo speed (docs/benchmarks.md, "Timing at solo speed") and cancels the machine's load
    pair by pair. Timed alone in turns instead, 30-layer probes of the CI artefacts measured
    anywhere from x1.11 to x1.61 at a load average of 10 on 2 cores."""
    from .ab import BLOCKS, artefact_model
    from .runtimes import artefact_runtime, example_input, load_artefact
    from .timing import time_interleaved

    runtime = artefact_runtime(base)
    x = example_input(artefact_model(base, runtime, None))
    sides = [load_artefact(runtime, p, threads, x) for p in (base, candidate)]
    b, c = time_interleaved([s.infer for s in sides], pairs, 5, BLOCKS)
    return float(np.exp(np.median(np.log(np.asarray(c) / np.asarray(b)))))


@dataclass(frozen=True)
class SlowedBuild:
    path: Path
    layers: int
    ratio: float  # measured on the final build (measured_ratio)
    probe_ratio: float  # measured on the PROBE_LAYERS build that sized it


def build_slowed(src: Path, dst: Path, slowdown: float, threads: int = 1, log: Callable[[str], None] = print) -> SlowedBuild:
    """Size the branch for `slowdown` (0.15 = 15% slower), write it, check its outputs.

    Sized from a probe build's measured cost per layer, then measured again and resized (at most
    SIZING_ROUNDS builds) while it misses by more than TOLERANCE."""
    with tempfile.TemporaryDirectory(prefix="mvit-slowed-") as tmp:
        probe = Path(tmp) / f"probe{src.suffix}"
        write_slowed(src, probe, PROBE_LAYERS)
        probe_ratio = measured_ratio(src, probe, threads)
    # Every measurement so far pools into one cost per layer: a single timing on a loaded machine
    # is off by a few percent, and resizing from the last one alone chases that noise.
    seen = [(PROBE_LAYERS, probe_ratio)]
    layers, ratio = _layers_for(slowdown, seen), 0.0
    for round_ in range(SIZING_ROUNDS):
        write_slowed(src, dst, layers)
        ratio = measured_ratio(src, dst, threads)
        seen.append((layers, ratio))
        log(f"{dst.name}: {layers} branch layers, measured x{ratio:.3f} (probe: {PROBE_LAYERS} layers x{probe_ratio:.3f})")
        resized = _layers_for(slowdown, seen)
        if abs(ratio - 1 - slowdown) <= TOLERANCE or resized == layers or round_ == SIZING_ROUNDS - 1:
            break  # dst holds the `layers` build that `ratio` measured
        layers = resized
    if not outputs_identical(src, dst):
        raise SlowedError(f"{dst}: the slowed build's outputs differ from {src}'s; it cannot stand in for it")
    return SlowedBuild(dst, layers, ratio, probe_ratio)


def _layers_for(slowdown: float, seen: list[tuple[int, float]]) -> int:
    per_layer = max(sum(r - 1.0 for _, r in seen), 1e-3) / sum(n for n, _ in seen)
    return max(1, min(MAX_LAYERS, round(slowdown / per_layer)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("artefact", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--slowdown", type=float, default=0.15)
    parser.add_argument("--layers", type=int, help="fixed branch size instead of timing-sized")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if not args.artefact.is_file():
            raise SlowedError(f"{args.artefact}: no such artefact; pass an exported .onnx or .tflite classifier")
        if args.layers:
            write_slowed(args.artefact, args.out, args.layers)
            print(f"{args.out}: {args.layers} layers; outputs identical: {outputs_identical(args.artefact, args.out)}")
        else:
            build_slowed(args.artefact, args.out, args.slowdown, args.threads)
    except MvitError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
