"""TFLite's native SSD NMS (`TFLite_Detection_PostProcess`) appended to a converted detector.

LiteRT has no builtin op for multi-class NMS and litert-torch cannot lower a torch NMS, but every
LiteRT runtime (Android, iOS, the Python interpreter) registers the custom op
`TFLite_Detection_PostProcess` in its default op resolver: the SSD post-processing of the TF Object
Detection API. It is added here by editing the flatbuffer after conversion.

The op decodes anchor-relative encodings itself. The exported network already ends in decoded
boxes, so it is given identity anchors (centre 0, size 1, scales 1) and encodings
(cx, cy, log w, log h): the op then computes exactly the decoded boxes again. Feeding x where it
expects y (and w where it expects h) makes its (ymin, xmin, ymax, xmax) output come out as
(x1, y1, x2, y2), the layout every mvit export uses; IoU is the same either way.

With `use_regular_nms` the op runs per-class NMS (score >= threshold, IoU > threshold suppressed,
up to `detections_per_class` per class) and keeps the best `max_detections` overall: the same
procedure as `mvit.models.detection_postprocess.select_detections`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mvit.models.detection_postprocess import NmsSettings

OP_NAME = "TFLite_Detection_PostProcess"
# Names of the intermediate outputs the op reads, then of the artefact's final outputs.
ENCODINGS, CLASS_SCORES = "box_encodings", "class_scores"
OUTPUTS = ("boxes", "scores", "class_ids", "num_detections")


class SsdEncodings(nn.Module):
    """(boxes xyxy, probabilities) from the wrapped module -> the op's encodings and scores."""

    def __init__(self, named_module: nn.Module) -> None:
        super().__init__()
        self.module = named_module

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.module(image)
        boxes, probs = out["boxes"], out["scores"]
        centre = (boxes[..., :2] + boxes[..., 2:]) * 0.5
        size = boxes[..., 2:] - boxes[..., :2]
        return {ENCODINGS: torch.cat([centre, torch.log(size)], dim=-1), CLASS_SCORES: probs}


# LiteRT writes the class path into tensor names: keep the path of exporters/tflite_nms.py, where this
# lived, so detection .tflite files stay byte-identical across the move into targets/tflite/.
SsdEncodings.__module__ = "mvit.exporters.tflite_nms"


def append_detection_postprocess(content: bytes, settings: NmsSettings, num_classes: int) -> bytes:
    """`num_classes` counts the background column (index 0), which the op skips."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils
    from flatbuffers import flexbuffers

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    subgraph, signature = model.subgraphs[0], model.signatureDefs[0]
    by_name = {_decode(t.name): t.tensorIndex for t in signature.outputs}
    encodings, scores = by_name[ENCODINGS], by_name[CLASS_SCORES]
    num_anchors = int(subgraph.tensors[encodings].shape[1])
    k = int(settings.max_detections)
    f32, i32 = schema.TensorType.FLOAT32, schema.TensorType.INT32

    identity_anchors = np.tile(np.array([0.0, 0.0, 1.0, 1.0], dtype=np.float32), (num_anchors, 1))
    anchors = _add_tensor(model, subgraph, "nms/identity_anchors", [num_anchors, 4], f32, identity_anchors)
    one = _add_tensor(model, subgraph, "nms/one", [1], i32, np.ones(1, dtype=np.int32))
    boxes = _add_tensor(model, subgraph, OUTPUTS[0], [1, k, 4], f32)
    class_index = _add_tensor(model, subgraph, "nms/class_index", [1, k], f32)
    out_scores = _add_tensor(model, subgraph, OUTPUTS[1], [1, k], f32)
    count = _add_tensor(model, subgraph, OUTPUTS[3], [1], f32)
    class_index_int = _add_tensor(model, subgraph, "nms/class_index_int", [1, k], i32)
    class_ids = _add_tensor(model, subgraph, OUTPUTS[2], [1, k], i32)

    options = {
        "max_detections": k,
        "max_classes_per_detection": 1,
        "detections_per_class": k,
        "use_regular_nms": True,
        "nms_score_threshold": float(settings.score_threshold),
        "nms_iou_threshold": float(settings.iou_threshold),
        "num_classes": num_classes - 1,
        "y_scale": 1.0,
        "x_scale": 1.0,
        "h_scale": 1.0,
        "w_scale": 1.0,
    }
    nms = schema.OperatorT()
    nms.opcodeIndex = _opcode(model, schema.BuiltinOperator.CUSTOM, OP_NAME)
    nms.inputs, nms.outputs = [encodings, scores, anchors], [boxes, class_index, out_scores, count]
    nms.customOptions = np.frombuffer(bytes(flexbuffers.Dumps(options)), dtype=np.uint8)
    nms.customOptionsFormat = schema.CustomOptionsFormat.FLEXBUFFERS

    # The op's classes are 0-based over foreground classes, as float; mvit's class ids are the
    # model's class index (background 0 excluded), as int32. Cast first, then add in int32: XNNPACK
    # takes a float ADD, and that 200-element add after the NMS op was a second partition.
    cast = schema.OperatorT()
    cast.opcodeIndex = _opcode(model, schema.BuiltinOperator.CAST)
    cast.inputs, cast.outputs = [class_index], [class_index_int]
    cast_options = schema.CastOptionsT()
    cast_options.inDataType, cast_options.outDataType = f32, i32
    cast.builtinOptionsType, cast.builtinOptions = schema.BuiltinOptions.CastOptions, cast_options
    add = schema.OperatorT()
    add.opcodeIndex = _opcode(model, schema.BuiltinOperator.ADD)
    add.inputs, add.outputs = [class_index_int, one], [class_ids]
    add.builtinOptionsType, add.builtinOptions = schema.BuiltinOptions.AddOptions, schema.AddOptionsT()

    subgraph.operators += [nms, cast, add]
    final = [boxes, out_scores, class_ids, count]
    subgraph.outputs = final
    signature.outputs = []
    for name, index in zip(OUTPUTS, final):
        entry = schema.TensorMapT()
        entry.name, entry.tensorIndex = name, index
        signature.outputs.append(entry)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _add_tensor(model: Any, subgraph: Any, name: str, shape: list[int], dtype: int, data: np.ndarray | None = None) -> int:
    from ai_edge_litert import schema_py_generated as schema

    tensor = schema.TensorT()
    tensor.name, tensor.shape, tensor.type = name, list(shape), dtype
    tensor.buffer = 0  # buffer 0 is the shared empty buffer of non-constant tensors
    if data is not None:
        buffer = schema.BufferT()
        buffer.data = np.ascontiguousarray(data).view(np.uint8).ravel()
        model.buffers.append(buffer)
        tensor.buffer = len(model.buffers) - 1
    subgraph.tensors.append(tensor)
    return len(subgraph.tensors) - 1


def _opcode(model: Any, builtin: int, custom: str | None = None) -> int:
    from ai_edge_litert import schema_py_generated as schema

    for i, code in enumerate(model.operatorCodes):
        same_custom = custom is None or _decode(code.customCode) == custom
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin and same_custom:
            return i
    code = schema.OperatorCodeT()
    code.builtinCode = builtin
    # deprecatedBuiltinCode is an int8 kept for old readers; codes above 127 store PLACEHOLDER (127).
    code.deprecatedBuiltinCode = min(builtin, 127)
    code.customCode = custom
    code.version = 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _decode(name: Any) -> str:
    return name.decode("utf-8") if isinstance(name, (bytes, bytearray)) else str(name or "")
