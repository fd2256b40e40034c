"""TFLite target: a `.tflite` flatbuffer from `torch.export` via LiteRT Torch (no TensorFlow).

fp16 stores conv and fully-connected weights as fp16 (ai-edge-quantizer's float casting; they are
dequantised to fp32 at load, so CPU speed equals fp32 and the file is about half the size).
Labels and preprocessing travel as JSON in a TFLite metadata entry named "mvit".
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mvit.reading import loads, open_regular

from ...base import ExportError, ExportRequest, Runner, RunnerDefaults, TargetDefaults, TargetOption, importable
from ...profiling import OpProfiler
from .nms import OP_NAME, SsdEncodings, _decode, append_detection_postprocess
from .options import OPTIONS
from .profile import LiteRTOpProfiler
from .quantize import quantize_tflite, settings_for

METADATA_NAME = "mvit"
SIGNATURE = "serving_default"
# Weight-carrying ops whose constant weights become fp16 in an fp16 export.
FP16_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "CONV_2D_TRANSPOSE")


class TFLiteTarget(TargetDefaults):
    name = "tflite"
    suffix = ".tflite"
    install_hint = "pip install 'mvit[tflite]' (litert-torch==0.10.0, ai-edge-litert==2.3.0, ai-edge-quantizer==0.10.0)"
    runtime = "litert"
    options: tuple[TargetOption, ...] = OPTIONS
    # Measured (docs/benchmark-results.md; LiteRT, interleaved, 2 threads): the fold 0.988x (XS B); channels-last
    # patches 0.948x (XS A: 12 of 47 TRANSPOSEs go). The space-to-depth patch layout and the
    # head-major attention gain nothing on LiteRT (0.987x; 1.018x / 1.035x for XS / S B), nor does
    # folding LayerNorm's affine and the query scale into the next linear layer (1.009x, XS A: 9 MULs fewer).
    # short_concats: XNNPACK takes concatenations of 2-5 inputs, SSDLite joins 6 heads.
    # separate_qkv: 0.988x (XS A), 0.996x / 0.991x (S A / B); no SLICE copies of one qkv output.
    export_rewrites = frozenset({"fold_preprocessing", "channels_last_patches", "short_concats", "separate_qkv"})
    nms_output_names = ["boxes", "scores", "class_ids", "num_detections"]  # TFLite_Detection_PostProcess's four
    multisize_forms: tuple[str, ...] = ("signatures",)  # one signature per size
    op_profiler: OpProfiler | None = LiteRTOpProfiler()

    def quantisation_settings(self, precision: str) -> dict[str, Any]:

        return settings_for(precision)

    def available(self) -> bool:
        return importable("ai_edge_litert.interpreter", "litert_torch")

    def export(self, request: ExportRequest, path: Path) -> None:
        import litert_torch

        nms = request.options.nms
        module: nn.Module = _NamedOutputs(request.module, request.output_names)
        if nms is not None:
            module = SsdEncodings(module)
        if request.channels_last_input:
            module = _FromNHWC(module)
        n, c, h, w = request.input_shape
        shape = (n, h, w, c) if request.channels_last_input else (n, c, h, w)
        # A fixed example keeps the trace (and so the file) identical from one export to the next.
        example = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 255
        with _quiet_progress():
            edge_model = litert_torch.convert(module.eval(), sample_kwargs={"image": example})
            content = bytes(edge_model.model_content())
        if nms is not None:
            content = append_detection_postprocess(content, nms, num_classes=len(request.labels))
        if request.precision == "fp16":
            content = _fp16_weights(content)
        elif request.precision != "fp32":
            content = quantize_tflite(content, request)
        content = _with_metadata(content, _metadata(request))
        Path(path).write_bytes(content)

    def read_metadata(self, path: Path) -> dict[str, str]:
        entries = _metadata_entries(*_read_model(path))
        if METADATA_NAME not in entries:
            raise ExportError(f"{path} has no '{METADATA_NAME}' metadata entry; was it exported by mvit?")
        meta = loads(entries[METADATA_NAME].decode("utf-8"))
        meta["tflite_metadata_entries"] = json.dumps(sorted(entries))
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}

    def op_histogram(self, path: Path) -> dict[str, int]:
        model, _ = _read_model(path)
        names = _op_names(model)
        counts: Counter[str] = Counter()
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            for i in range(subgraph.OperatorsLength()):
                counts[names[subgraph.Operators(i).OpcodeIndex()]] += 1
        return dict(counts)

    def max_tensor_rank(self, path: Path) -> int:
        model, _ = _read_model(path)
        ranks = [0]
        for s in range(model.SubgraphsLength()):
            subgraph = model.Subgraphs(s)
            ranks += [subgraph.Tensors(i).ShapeLength() for i in range(subgraph.TensorsLength())]
        return max(ranks)

    def load(self, path: Path, num_threads: int | None = None) -> Runner:
        return LiteRTRunner(Path(path), num_threads)


class _NamedOutputs(nn.Module):
    """Returns a dict so the TFLite signature's outputs carry the request's output names."""

    def __init__(self, module: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.module, self.names = module, list(names)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.module(image)
        out = out if isinstance(out, (tuple, list)) else (out,)
        if len(out) != len(self.names):
            raise ExportError(f"the module returns {len(out)} outputs but {len(self.names)} output names were given")
        return dict(zip(self.names, out))


class _FromNHWC(nn.Module):
    """NHWC input (what Android's Bitmap-to-tensor paths produce) permuted to the NCHW network."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, image: torch.Tensor) -> Any:
        return self.module(image.permute(0, 3, 1, 2))


# LiteRT writes the wrapper's class path into tensor names; keep the path these files had when the
# wrappers lived in exporters/tflite_target.py so the move leaves every .tflite byte-identical.
_NamedOutputs.__module__ = _FromNHWC.__module__ = "mvit.exporters.tflite_target"


def _metadata(request: ExportRequest) -> dict[str, Any]:
    meta: dict[str, Any] = {str(k): str(v) for k, v in request.metadata.items()}
    meta.setdefault("labels", json.dumps(list(request.labels)))
    meta.setdefault("preprocess", json.dumps(request.preprocess, sort_keys=True, default=str))
    meta.setdefault("model", request.model_name)
    meta.setdefault("task", request.task)
    meta["input_layout"] = "NHWC" if request.channels_last_input else "NCHW"
    meta["channel_order"] = str(request.preprocess.get("channel_order", "RGB"))
    meta["image_scale"] = repr(float(request.preprocess["scale"]))
    meta["weights_precision"] = request.precision
    nms = request.options.nms
    if nms is not None:
        meta["nms"] = json.dumps({"op": "TFLite_Detection_PostProcess", **nms.as_dict()}, sort_keys=True, default=str)
    return meta


def _fp16_weights(content: bytes) -> bytes:
    from ai_edge_quantizer import algorithm_manager, qtyping, quantizer

    q = quantizer.Quantizer(bytearray(content))
    for op in FP16_WEIGHT_OPS:
        q.add_weight_only_config(
            regex=".*",
            operation_name=getattr(qtyping.TFLOperationName, op),
            num_bits=16,
            algorithm_key=algorithm_manager.AlgorithmName.FLOAT_CASTING,
        )
    # The quantizer prints sizes and progress bars; the CLI shows its own progress instead.
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), contextlib.redirect_stderr(devnull):
        return bytes(q.quantize().quantized_model)


@contextlib.contextmanager
def _quiet_progress() -> Iterator[None]:
    """litert-torch prints a task tree unless LITERT_TORCH_SHOW_PROGRESS says no; restore after."""
    key = "LITERT_TORCH_SHOW_PROGRESS"
    before = os.environ.get(key)
    os.environ[key] = "n"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def _with_metadata(content: bytes, meta: dict[str, Any]) -> bytes:
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(json.dumps(meta, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = [m for m in (model.metadata or []) if _decode(m.name) != METADATA_NAME] + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _read_model(path: Path) -> tuple[Any, bytes]:
    """The flatbuffer's root and the file's bytes (large buffers can sit past the flatbuffer,
    addressed by file offset)."""
    from ai_edge_litert import schema_py_generated as schema

    with open_regular(path, "a TFLite artefact") as fh:
        data = fh.read()
    if not schema.Model.ModelBufferHasIdentifier(data, 0):
        raise ExportError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")
    return schema.Model.GetRootAs(data, 0), data


def _metadata_entries(model: Any, data: bytes) -> dict[str, bytes]:
    entries = {}
    for i in range(model.MetadataLength()):
        m = model.Metadata(i)
        buf = model.Buffers(m.Buffer())
        if buf.DataLength():
            value = buf.DataAsNumpy().tobytes()
        else:
            value = data[buf.Offset() : buf.Offset() + buf.Size()]
        entries[_decode(m.Name())] = bytes(value)
    return entries


def _op_names(model: Any) -> list[str]:
    from ai_edge_litert import schema_py_generated as schema

    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    names = []
    for i in range(model.OperatorCodesLength()):
        code = model.OperatorCodes(i)
        op = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if op == schema.BuiltinOperator.CUSTOM:
            names.append(_decode(code.CustomCode()))
        else:
            names.append(builtin.get(op, f"BUILTIN_{op}"))
    return names


class LiteRTRunner(RunnerDefaults):
    """LiteRT interpreter with XNNPACK; takes NCHW RGB pixels and feeds the file's own layout."""

    verified_by = "litert"

    def __init__(self, path: Path, num_threads: int | None = None, signature: str = SIGNATURE) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=num_threads)
        self.runner = self.interpreter.get_signature_runner(signature)  # a multi-size file: one per size
        inputs = self.runner.get_input_details()
        if "image" not in inputs:
            raise ExportError(f"{path} has no input named 'image' (inputs: {sorted(inputs)}); was it exported by mvit?")
        shape = list(inputs["image"]["shape"])
        self._nhwc = shape[-1] == 3 and shape[1] != 3
        self.input_names = ["image"]
        self.output_names = list(self.runner.get_output_details())
        self._path, self._num_threads = Path(path), num_threads
        self._tap: tuple[Any, int, int] | None = None

    def pre_nms(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray] | None:
        """What the file's TFLite_Detection_PostProcess reads, for image 0: boxes [A,4] xyxy and
        foreground scores [A,C-1]; None for a graph without it. Read from the same file with every
        intermediate tensor kept, so the network's numerics are judged whatever NMS keeps."""
        from ai_edge_litert.interpreter import Interpreter

        if self._tap is None:
            tap = Interpreter(model_path=str(self._path), num_threads=self._num_threads, experimental_preserve_all_tensors=True)
            op = next((o for o in tap._get_ops_details() if o["op_name"] == OP_NAME), None)
            if op is None:
                return None
            tap.allocate_tensors()
            self._tap = (tap, int(op["inputs"][0]), int(op["inputs"][1]))
        tap, encodings_index, scores_index = self._tap
        x = np.asarray(inputs["image"], dtype=np.float32)[:1]
        x = x.transpose(0, 2, 3, 1) if self._nhwc else x
        tap.set_tensor(tap.get_input_details()[0]["index"], np.ascontiguousarray(x))
        tap.invoke()
        enc, scores = tap.get_tensor(encodings_index)[0], tap.get_tensor(scores_index)[0]
        # The encodings are (cx, cy, log w, log h) of the decoded boxes (nms.SsdEncodings).
        half = np.exp(enc[:, 2:]) / 2
        return np.concatenate([enc[:, :2] - half, enc[:, :2] + half], axis=1), scores[:, 1:]

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = np.asarray(inputs["image"], dtype=np.float32)
        if self._nhwc:
            x = x.transpose(0, 2, 3, 1)
        # Exports have a fixed batch of 1: run image by image.
        per_image = [self.runner(image=np.ascontiguousarray(x[i : i + 1])) for i in range(x.shape[0])]
        return {k: np.concatenate([np.asarray(p[k]) for p in per_image]) for k in per_image[0]}


TARGET = TFLiteTarget()
