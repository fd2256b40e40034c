"""Core ML's NonMaximumSuppression model, written from its proto's documentation
(coremltools mlmodel/format/NonMaximumSuppression.proto), not from any converter's code.

What the documentation says, and how each point is read here:
- inputs: confidence [N, C] (non-negative) and coordinates [N, 4] (centre x, centre y, width,
  height), row i of one describing the same box as row i of the other;
- "before the algorithm, boxes that fall below the confidence threshold are discarded": a box's
  confidence is its best class's (the label is "argmax of the confidence"), kept when >= threshold;
- PickTop: sort by descending confidence, keep the top box, suppress the boxes "within a fixed
  IOU radius" of it, repeat on what is left. "Setting [iouThreshold] to 1.0 means there will be
  no suppression based on IOU", so a box is suppressed when its IoU with a kept box is strictly
  greater than the threshold (the proto's "less than" sentence contradicts that one and every
  NMS ever written; it is read as a typo). Equal confidences keep the input order (stable sort);
- perClass: "suppression is only done among predictions with the same label";
- outputs: the kept rows of both inputs, unchanged, best first; a shape range on the output
  bounds their number (max_boxes), and padding rows, when a fixed or minimum row count asks for
  them, are zeros in both outputs;
- optional iouThreshold / confidenceThreshold inputs override the stored defaults per call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import MilReferenceError


@dataclass(frozen=True)
class NmsModel:
    """The fields of a NonMaximumSuppression model spec that decide its outputs."""

    confidence_input: str
    coordinates_input: str
    confidence_output: str
    coordinates_output: str
    iou_threshold_input: str  # "" when the model takes no override
    confidence_threshold_input: str
    iou_threshold: float
    confidence_threshold: float
    per_class: bool
    labels: tuple[str, ...]
    max_boxes: int | None  # upper bound of the output rows; None: unbounded
    min_boxes: int  # rows padded with zeros up to this many


def read_nms_model(spec) -> NmsModel:
    """The NmsModel of a coremltools `Model_pb2.Model` whose type is nonMaximumSuppression."""
    n = spec.nonMaximumSuppression
    if n.WhichOneof("SuppressionMethod") != "pickTop":
        raise MilReferenceError("the NonMaximumSuppression model names no suppression method (pickTop); re-export it")
    labels = n.stringClassLabels.vector if n.WhichOneof("ClassLabels") == "stringClassLabels" else n.int64ClassLabels.vector
    rows = _row_bounds([o for o in spec.description.output if o.name in (n.confidenceOutputFeatureName, n.coordinatesOutputFeatureName)])
    return NmsModel(
        n.confidenceInputFeatureName,
        n.coordinatesInputFeatureName,
        n.confidenceOutputFeatureName,
        n.coordinatesOutputFeatureName,
        n.iouThresholdInputFeatureName,
        n.confidenceThresholdInputFeatureName,
        float(n.iouThreshold),
        float(n.confidenceThreshold),
        bool(n.pickTop.perClass),
        tuple(str(v) for v in labels),
        rows[1],
        rows[0],
    )


def _row_bounds(outputs) -> tuple[int, int | None]:
    """(min rows, max rows) from the outputs' fixed shape or shape range; both must agree."""
    lows, highs = [0], []
    for feature in outputs:
        array = feature.type.multiArrayType
        if array.shapeRange.sizeRanges:
            first = array.shapeRange.sizeRanges[0]
            lows.append(int(first.lowerBound))
            if first.upperBound >= 0:
                highs.append(int(first.upperBound))
        elif array.shape:
            lows.append(int(array.shape[0]))
            highs.append(int(array.shape[0]))
    return max(lows), (min(highs) if highs else None)


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of centre/size boxes a [P, 4] against b [Q, 4]; 0 where the union is empty."""
    a_lo, a_hi = a[:, None, :2] - a[:, None, 2:] / 2, a[:, None, :2] + a[:, None, 2:] / 2
    b_lo, b_hi = b[None, :, :2] - b[None, :, 2:] / 2, b[None, :, :2] + b[None, :, 2:] / 2
    overlap = np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0, None).prod(-1)
    union = np.abs(a[:, None, 2:].prod(-1)) + np.abs(b[None, :, 2:].prod(-1)) - overlap
    return np.where(union > 0, overlap / np.where(union > 0, union, 1), 0.0)


def kept_rows(
    confidence: np.ndarray, coordinates: np.ndarray, iou_threshold: float, confidence_threshold: float, per_class: bool, max_boxes: int | None = None
) -> np.ndarray:
    """Indices of the rows PickTop keeps, best first."""
    conf = np.asarray(confidence, dtype=np.float64)
    boxes = np.asarray(coordinates, dtype=np.float64)
    if conf.ndim != 2 or boxes.shape != (conf.shape[0], 4):
        raise MilReferenceError(f"NonMaximumSuppression wants confidence [N, C] and coordinates [N, 4]; got {list(conf.shape)} and {list(boxes.shape)}")
    if conf.shape[1] == 0:
        return np.zeros(0, dtype=np.int64)
    best, label = conf.max(axis=1), conf.argmax(axis=1)
    candidates = np.flatnonzero(best >= confidence_threshold)
    order = candidates[np.argsort(-best[candidates], kind="stable")]
    suppressed = np.zeros(len(order), dtype=bool)
    keep: list[int] = []
    for pos, row in enumerate(order):
        if suppressed[pos]:
            continue
        keep.append(int(row))
        if max_boxes is not None and len(keep) >= max_boxes:
            break
        rest = order[pos + 1 :]
        hit = iou_matrix(boxes[row][None], boxes[rest])[0] > iou_threshold
        if per_class:
            hit &= label[rest] == label[row]
        suppressed[pos + 1 :] |= hit
    return np.asarray(keep, dtype=np.int64)


def run_nms_model(model: NmsModel, features: dict[str, np.ndarray], overrides: dict[str, Any] | None = None) -> dict[str, np.ndarray]:
    """The NMS model's outputs for one image: {confidence output: [k, C], coordinates output: [k, 4]}."""
    overrides = overrides or {}
    iou = _threshold(overrides, model.iou_threshold_input, model.iou_threshold, upper=1.0)
    confidence_threshold = _threshold(overrides, model.confidence_threshold_input, model.confidence_threshold)
    conf = np.asarray(features[model.confidence_input], dtype=np.float32)
    coords = np.asarray(features[model.coordinates_input], dtype=np.float32)
    if len(model.labels) and conf.shape[-1] != len(model.labels):
        raise MilReferenceError(f"the NMS model has {len(model.labels)} class labels but its confidence input has {conf.shape[-1]} columns; re-export it")
    keep = kept_rows(conf, coords, iou, confidence_threshold, model.per_class, model.max_boxes)
    out_conf, out_coords = conf[keep], coords[keep]
    if len(keep) < model.min_boxes:
        pad = model.min_boxes - len(keep)
        out_conf = np.concatenate([out_conf, np.zeros((pad, conf.shape[1]), np.float32)])
        out_coords = np.concatenate([out_coords, np.zeros((pad, 4), np.float32)])
    return {model.confidence_output: out_conf, model.coordinates_output: out_coords}


def _threshold(overrides: dict[str, Any], name: str, default: float, upper: float | None = None) -> float:
    if not name or name not in overrides:
        return default
    value = float(np.asarray(overrides[name], dtype=np.float64).reshape(-1)[0])
    if not np.isfinite(value) or value < 0 or (upper is not None and value > upper):
        limit = f"between 0 and {upper}" if upper is not None else "non-negative"
        raise MilReferenceError(f"input {name!r} = {value} must be a {limit} number")
    return value


def as_detections(confidence: np.ndarray, coordinates: np.ndarray) -> dict[str, np.ndarray]:
    """The kept rows as Vision reads them (one VNRecognizedObjectObservation per row, its top label
    and bounding box), in the cross-target detection form: boxes [1, k, 4] corners, scores [1, k],
    class_ids [1, k] counting the background as class 0; zero padding rows get score 0, class -1."""
    conf = np.asarray(confidence, dtype=np.float32).reshape(-1, np.shape(confidence)[-1])
    coords = np.asarray(coordinates, dtype=np.float32).reshape(-1, 4)
    scores = conf.max(axis=1) if conf.shape[1] else np.zeros(len(conf), np.float32)
    padding = scores <= 0
    class_ids = np.where(padding, -1, conf.argmax(axis=1) + 1 if conf.shape[1] else -1).astype(np.int32)
    half = coords[:, 2:] / 2
    boxes = np.concatenate([coords[:, :2] - half, coords[:, :2] + half], axis=1)
    return {"boxes": boxes[None], "scores": np.where(padding, 0, scores)[None].astype(np.float32), "class_ids": class_ids[None]}
