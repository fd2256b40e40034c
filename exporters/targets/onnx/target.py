"""ONNX target: torch.onnx (TorchScript exporter) -> onnxslim -> optional NMS -> metadata.

Why the TorchScript exporter (dynamo=False) and not the dynamo one: on this model and torch 2.13
it writes the same bytes on every run, in about 1 s, as one file; the dynamo exporter took 4-11 s,
wrote external weight data and gave different bytes on each run (measured 2026-11-23,
docs/exporting.md), which breaks the byte-identical re-export promise.
"""

from __future__ import annotations

import io
import warnings
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, external_data_helper, helper, numpy_helper

from mvit.models.detection_postprocess import NmsSettings
from mvit.reading import check_regular

from ...base import ExportError, ExportRequest, RunnerDefaults, TargetDefaults, TargetOption, importable
from ...profiling import OpProfiler
from ...wrappers import INPUT_NAME, NMS_OUTPUT_NAMES
from .options import OPTIONS
from .profile import OnnxOpProfiler
from .quantize import quantize_onnx, settings_for

OPSET = 18
# Weight tensors smaller than this stay fp32 in fp16 exports: no size to gain.
_FP16_MIN_ELEMENTS = 16


def load_checked(path: Path, what: str = "an ONNX artefact") -> onnx.ModelProto:
    """The graph of `path` without its external data, refused unless every tensor it keeps outside
    the file lies in a regular file inside the artefact's own folder, within that file's length.

    ONNX lets an initializer name any path (`/etc/passwd`, `../`, `/dev/zero` with a 16 GB length);
    onnx and onnxruntime would read it. Nothing outside the .onnx is opened before this check passes.
    """

    check_regular(path, what)
    model = onnx.load(str(path), load_external_data=False)
    folder = Path(path).resolve().parent
    for tensor in external_data_helper._get_all_tensors(model):
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in tensor.external_data}
        location = info.get("location", "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(folder) or target == folder:
            raise ExportError(
                f"{path}: tensor {tensor.name[:80]!r} keeps its data at {location[:120]!r}, outside the "
                "artefact's folder; mvit reads external data only from files beside the .onnx"
            )
        check_regular(target, f"the external data of {Path(path).name}")
        try:
            offset, length = int(info.get("offset", 0)), int(info.get("length", -1))
        except ValueError:
            raise ExportError(f"{path}: tensor {tensor.name[:80]!r} has a malformed external data offset or length") from None
        size = target.stat().st_size
        if offset < 0 or offset > size or (length >= 0 and offset + length > size):
            raise ExportError(
                f"{path}: tensor {tensor.name[:80]!r} claims bytes {offset}..{offset + max(length, 0)} of "
                f"{location!r}, which holds {size}; the artefact is damaged, re-export it"
            )
    return model


class OnnxRunner(RunnerDefaults):
    verified_by = "onnxruntime"

    def __init__(self, path: Path, num_threads: int | None = None, spinning: bool = True) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        if not spinning:  # benchmarks: idle workers that keep spinning slow the next runtime called
            options.add_session_config_entry("session.force_spinning_stop", "1")
        load_checked(path)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ExportError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from None
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._path, self._num_threads = Path(path), num_threads
        self._tap: tuple[Any, list[str]] | None = None

    def pre_nms(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """What the file's NonMaxSuppression reads, for image 0: boxes [A,4] xyxy and foreground
        scores [A,C-1]; None for a graph without NMS. The same file, with those two tensors
        exposed as extra outputs in memory, so the network's numerics are judged whatever NMS keeps."""
        if self._tap is None:
            import onnxruntime as ort

            model = onnx.load(str(self._path))
            nms = next((n for n in model.graph.node if n.op_type == "NonMaxSuppression"), None)
            if nms is None:
                return None
            names = [nms.input[0], nms.input[1]]
            model.graph.output.extend(helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names)
            options = ort.SessionOptions()
            options.intra_op_num_threads = self._num_threads or 1
            self._tap = (ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]), names)
        session, names = self._tap
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.float32) for name in self.input_names}
        boxes, scores = session.run(names, feed)
        return boxes[0], scores[0].T  # NonMaxSuppression takes scores as [N, classes, anchors]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=np.float32) for name in self.input_names}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))


def _append_nms(model: onnx.ModelProto, boxes: str, scores: str, settings: NmsSettings) -> None:
    """Per-class NonMaxSuppression on decoded boxes [N,A,4] and softmax scores [N,A,C], class 0
    (background) excluded, then the best `max_detections` overall by score.

    Outputs boxes [K,4], scores [K], class_ids [K] (int64, model class index) and batch_index [K].
    """
    g = model.graph
    max_det = int(settings.max_detections)

    def const(name: str, value, dtype) -> str:
        g.initializer.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    nodes = [
        helper.make_node("Transpose", [scores], ["nms_scores_t"], perm=[0, 2, 1]),
        helper.make_node(
            "Slice",
            ["nms_scores_t", const("nms_start", [1], np.int64), const("nms_end", [2**62], np.int64), const("nms_axis", [1], np.int64)],
            ["nms_fg_scores"],
        ),
        helper.make_node(
            "NonMaxSuppression",
            [
                boxes,
                "nms_fg_scores",
                const("nms_max_per_class", [max_det], np.int64),
                const("nms_iou", [settings.iou_threshold], np.float32),
                const("nms_score", [settings.score_threshold], np.float32),
            ],
            ["nms_selected"],
        ),
        # selected rows are (batch, class - 1, anchor).
        helper.make_node("GatherND", ["nms_fg_scores", "nms_selected"], ["nms_all_scores"]),
        helper.make_node("Shape", ["nms_all_scores"], ["nms_count"]),
        helper.make_node("Min", ["nms_count", const("nms_max_det", [max_det], np.int64)], ["nms_k"]),
        helper.make_node("TopK", ["nms_all_scores", "nms_k"], ["scores", "nms_order"], axis=0, largest=1, sorted=1),
        helper.make_node("Gather", ["nms_selected", "nms_order"], ["nms_kept"], axis=0),
        helper.make_node("Split", ["nms_kept"], ["nms_b", "nms_c", "nms_a"], axis=1, num_outputs=3),
        helper.make_node("Squeeze", ["nms_b", const("nms_sq", [1], np.int64)], ["batch_index"]),
        helper.make_node("Squeeze", ["nms_c", "nms_sq"], ["nms_c0"]),
        helper.make_node("Add", ["nms_c0", const("nms_one", 1, np.int64)], ["class_ids"]),
        helper.make_node("Concat", ["nms_b", "nms_a"], ["nms_box_index"], axis=1),
        helper.make_node("GatherND", [boxes, "nms_box_index"], ["boxes"]),
    ]
    g.node.extend(nodes)
    del g.output[:]
    g.output.extend(
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["detections", 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["detections"]),
            helper.make_tensor_value_info("class_ids", TensorProto.INT64, ["detections"]),
            helper.make_tensor_value_info("batch_index", TensorProto.INT64, ["detections"]),
        ]
    )


# Initializer inputs that hold a layer's weights (op type -> input positions); only these go to fp16.
_WEIGHT_INPUTS = {"Conv": (1,), "ConvTranspose": (1,), "Gemm": (0, 1), "MatMul": (0, 1)}


def _weight_initializers(graph: onnx.GraphProto) -> set[str]:
    """Initializers used only as Conv/Gemm/MatMul weights, never as a bias, scale or other operand."""
    weight_uses: set[str] = set()
    other_uses: set[str] = set()
    for node in graph.node:
        slots = _WEIGHT_INPUTS.get(node.op_type, ())
        for i, name in enumerate(node.input):
            (weight_uses if i in slots else other_uses).add(name)
    return weight_uses - other_uses


def _store_weights_fp16(model: onnx.ModelProto) -> None:
    """fp16 ONNX = layer weights stored as fp16 and cast to fp32 on load; compute and I/O stay fp32.

    ONNX Runtime's CPU provider lacks fp16 kernels for much of this graph, so a true fp16 graph
    would be slower on CPU; this halves the file and carries exactly the fp16 weight rounding.
    Biases and normalisation parameters stay fp32 (under 1% of the bytes): after BN fusion a
    conv bias carries the BN shift, and rounding those alone to fp16 cost a trained MobileViT-XXS
    0.024 relative error where rounding only the weights cost 0.005. Measured on
    tests/data/trained/mobilevit_xxs_digits.safetensors: see docs/trained-fixture.md.
    """
    g = model.graph
    weights = _weight_initializers(g)
    casts = []
    for init in g.initializer:
        if init.name not in weights or init.data_type != TensorProto.FLOAT or int(np.prod(init.dims)) < _FP16_MIN_ELEMENTS:
            continue
        array = numpy_helper.to_array(init)
        name = init.name
        init.CopyFrom(numpy_helper.from_array(array.astype(np.float16), f"{name}__fp16"))
        casts.append(helper.make_node("Cast", [f"{name}__fp16"], [name], to=TensorProto.FLOAT, name=f"{name}__cast"))
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)


class OnnxTarget(TargetDefaults):
    name = "onnx"
    suffix = ".onnx"
    install_hint = "pip install 'mvit[onnx]'"
    runtime = "onnxruntime"
    options: tuple[TargetOption, ...] = OPTIONS
    # exporters/rewrites/; each one's speed-up is measured in docs/benchmark-results.md. The head-major attention is
    # taken only over short patch sequences (attention_layout.SHORT_SEQUENCE).
    export_rewrites = frozenset({"fold_preprocessing", "patch_layout", "attention_layout"})
    # quantize_dynamic quantises only MatMuls with a 2-D weight (exporters/targets/onnx/quantize.py): with the
    # head-major attention's per-head weights, int8-weights would leave q/k/v float.
    rewrites_skipped_for: Mapping[str, frozenset[str]] = {"int8-weights": frozenset({"attention_layout"})}

    nms_output_names = [*NMS_OUTPUT_NAMES, "batch_index"]
    quiet_load_options: Mapping[str, Any] = {"spinning": False}  # see OnnxRunner
    multisize_forms: tuple[str, ...] = ("dynamic",)  # one graph, dynamic height and width
    op_profiler: OpProfiler | None = OnnxOpProfiler()

    def quantisation_settings(self, precision: str) -> dict[str, Any]:

        return settings_for(precision)

    def available(self) -> bool:
        return importable("onnx", "onnxruntime", "onnxslim")

    def export(self, request: ExportRequest, path: Path) -> None:
        nms = request.options.nms
        traced_names = [f"decoded_{n}" for n in request.output_names] if nms else list(request.output_names)
        dynamic = None
        if request.dynamic_batch:
            dynamic = {INPUT_NAME: {0: "batch"}, **{n: {0: "batch"} for n in traced_names}}
        dummy = torch.zeros(request.input_shape, dtype=torch.float32)
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                request.module,
                (dummy,),
                buffer,  # type: ignore[arg-type]  # torch accepts a file object
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=traced_names,
                dynamic_axes=dynamic,
                do_constant_folding=True,
            )
        model = onnx.load_from_string(buffer.getvalue())
        model = _simplify(model)
        if nms:
            _append_nms(model, traced_names[0], traced_names[1], nms)
        if request.precision == "fp16":
            _store_weights_fp16(model)
        elif request.precision != "fp32":
            model = quantize_onnx(model, request)
        del model.metadata_props[:]
        for key in sorted(request.metadata):
            model.metadata_props.append(onnx.StringStringEntryProto(key=key, value=str(request.metadata[key])))
        model.doc_string = f"mvit export of {request.model_name}"
        onnx.checker.check_model(model)
        onnx.save(model, str(path))

    def read_metadata(self, path: Path) -> dict[str, str]:
        model = load_checked(path)
        return {p.key: p.value for p in model.metadata_props}

    def op_histogram(self, path: Path) -> dict[str, int]:
        model = onnx.load(str(path), load_external_data=False)
        return dict(sorted(Counter(node.op_type for node in model.graph.node).items()))

    def max_tensor_rank(self, path: Path) -> int:
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
        g = model.graph
        ranks = [len(init.dims) for init in g.initializer]
        for info in [*g.input, *g.output, *g.value_info]:
            if info.type.HasField("tensor_type") and info.type.tensor_type.HasField("shape"):
                ranks.append(len(info.type.tensor_type.shape.dim))
        return max(ranks, default=0)

    def load(self, path: Path, num_threads: int | None = None, spinning: bool = True) -> OnnxRunner:
        return OnnxRunner(path, num_threads, spinning)


def _simplify(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return onnxslim.slim(model)


TARGET = OnnxTarget()
