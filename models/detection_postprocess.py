"""SSD anchors, box decoding and NMS, kept apart from the network so exports can include them
(final boxes) or leave them out (raw tensors plus anchors)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

CENTER_VARIANCE = 0.1
SIZE_VARIANCE = 0.2


@dataclass(frozen=True)
class NmsSettings:
    """The settings of the NMS inside a detection artefact; `as_dict()` is their one JSON form
    (export options, artefact metadata, reports)."""

    iou_threshold: float = 0.5
    score_threshold: float = 0.05
    max_detections: int = 200

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, float | int]) -> NmsSettings:
        """From `as_dict()` output; an unknown key raises ValueError naming the known ones."""
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown NMS setting(s) {sorted(unknown)}; known: {[f.name for f in fields(cls)]}")
        return cls(**data)  # type: ignore[arg-type]


def generate_anchors(
    map_sizes: list[tuple[int, int]],
    aspect_ratios: tuple[tuple[int, ...], ...],
    min_scale: float = 0.1,
    max_scale: float = 1.05,
) -> torch.Tensor:
    """Anchors as [A, 4] (cx, cy, w, h), normalised to [0, 1], in ml-cvnets' order."""
    n = len(map_sizes)
    scales = torch.linspace(min_scale, max_scale, n + 1).tolist()
    anchors: list[list[float]] = []
    for i, ((h, w), ratios) in enumerate(zip(map_sizes, aspect_ratios)):
        small, big = scales[i], math.sqrt(scales[i] * scales[i + 1])
        for y in range(h):
            for x in range(w):
                cx, cy = (x + 0.5) / w, (y + 0.5) / h
                anchors.append([cx, cy, small, small])
                anchors.append([cx, cy, big, big])
                for r in ratios:
                    s = math.sqrt(r)
                    anchors.append([cx, cy, small * s, small / s])
                    anchors.append([cx, cy, small / s, small * s])
    return torch.tensor(anchors, dtype=torch.float32).clamp(0.0, 1.0)


def decode_boxes(offsets: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """[B, A, 4] offsets + [A, 4] anchors (cx, cy, w, h) -> [B, A, 4] boxes (x1, y1, x2, y2)."""
    centers = offsets[..., :2] * CENTER_VARIANCE * anchors[:, 2:] + anchors[:, :2]
    sizes = torch.exp(offsets[..., 2:] * SIZE_VARIANCE) * anchors[:, 2:]
    return torch.cat([centers - 0.5 * sizes, centers + 0.5 * sizes], dim=-1)


class DetectionDecoder(nn.Module):
    """Raw SSD outputs -> normalised xyxy boxes and per-class probabilities (no NMS).

    Every op here exists in all three targets, so this part always goes inside the export.
    """

    def __init__(self, anchors: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("anchors", anchors, persistent=False)

    anchors: torch.Tensor  # a buffer

    def forward(self, offsets: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return decode_boxes(offsets, self.anchors), logits.softmax(dim=-1)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of [N, 4] and [M, 4] xyxy boxes."""
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    return inter / (area_a[:, None] + area_b[None, :] - inter).clamp(min=1e-12)


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS on one class; returns kept indices by descending score (torchvision semantics)."""
    order = scores.argsort(descending=True)
    keep: list[int] = []
    iou = box_iou(boxes, boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    for idx in order.tolist():
        if suppressed[idx]:
            continue
        keep.append(idx)
        suppressed |= iou[idx] > iou_threshold
    return torch.tensor(keep, dtype=torch.long)


def select_detections(
    boxes: torch.Tensor, probs: torch.Tensor, settings: NmsSettings = NmsSettings(), best_class_only: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-class NMS for one image. boxes [A, 4], probs [A, C] with class 0 = background.

    Returns boxes [K, 4], scores [K], class ids [K] (K <= max_detections), best score first.
    By default (ml-cvnets, torchvision) an anchor may be kept under several classes;
    `best_class_only` keeps each anchor under its best foreground class only, which is what
    CoreML's non_maximum_suppression op does.
    """
    if best_class_only:
        best = probs[:, 1:].argmax(dim=1) + 1
        probs = torch.zeros_like(probs).scatter(1, best[:, None], probs.gather(1, best[:, None]))
    out_boxes, out_scores, out_labels = [], [], []
    for cls in range(1, probs.shape[1]):
        scores = probs[:, cls]
        mask = scores > settings.score_threshold
        if not mask.any():
            continue
        cls_boxes, cls_scores = boxes[mask], scores[mask]
        keep = nms(cls_boxes, cls_scores, settings.iou_threshold)
        out_boxes.append(cls_boxes[keep])
        out_scores.append(cls_scores[keep])
        out_labels.append(torch.full((len(keep),), cls, dtype=torch.long))
    if not out_boxes:
        return torch.zeros(0, 4), torch.zeros(0), torch.zeros(0, dtype=torch.long)
    b, s, l = torch.cat(out_boxes), torch.cat(out_scores), torch.cat(out_labels)
    top = s.argsort(descending=True)[: settings.max_detections]
    return b[top], s[top], l[top]
