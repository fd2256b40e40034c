"""non_maximum_suppression (coremltools ops/defs/iOS15/tensor_operation.py).

Semantics from the op docs and coremltools' own reference in its op tests (built on
tf.image.non_max_suppression): boxes are (center x, center y, width, height); a box's score is its
best class score; boxes scoring <= score_threshold are dropped; a box is suppressed by a kept box
with IoU > iou_threshold; per_class_suppression only lets boxes of the same argmax class suppress
each other. Outputs are padded to max_boxes with zeros (boxes, scores) and -1 (indices), best first.
"""

from __future__ import annotations

import torch

from ._registry import flag, ints, number, register


def _iou_matrix(xyxy: torch.Tensor) -> torch.Tensor:
    area = (xyxy[:, 2] - xyxy[:, 0]).clamp(min=0) * (xyxy[:, 3] - xyxy[:, 1]).clamp(min=0)
    lt = torch.maximum(xyxy[:, None, :2], xyxy[None, :, :2])
    rb = torch.minimum(xyxy[:, None, 2:], xyxy[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    union = area[:, None] + area[None, :] - inter
    return torch.where(union > 0, inter / union, torch.zeros_like(inter))


def _select(boxes: torch.Tensor, scores: torch.Tensor, iou_t: float, score_t: float, max_boxes: int, per_class: bool) -> list[int]:
    best, cls = scores.max(dim=-1)
    xyxy = torch.cat([boxes[:, :2] - 0.5 * boxes[:, 2:], boxes[:, :2] + 0.5 * boxes[:, 2:]], dim=-1)
    iou = _iou_matrix(xyxy.double())
    order = torch.argsort(best, descending=True, stable=True).tolist()
    keep: list[int] = []
    for i in order:
        if best[i] <= score_t or len(keep) == max_boxes:
            break
        if any(iou[i, j] > iou_t and (not per_class or cls[i] == cls[j]) for j in keep):
            continue
        keep.append(i)
    return keep


@register("non_maximum_suppression")
def non_maximum_suppression(boxes, scores, iou_threshold, score_threshold, max_boxes, per_class_suppression=False):
    n, _, k = scores.shape
    m = ints(max_boxes)[0]
    out_boxes = torch.zeros(n, m, 4)
    out_scores = torch.zeros(n, m, k)
    out_idx = torch.full((n, m), -1, dtype=torch.int32)
    valid = torch.zeros(n, dtype=torch.int32)
    for b in range(n):
        keep = _select(boxes[b], scores[b], number(iou_threshold), number(score_threshold), m, flag(per_class_suppression))
        if keep:
            kt = torch.tensor(keep)
            out_boxes[b, : len(keep)] = boxes[b, kt]
            out_scores[b, : len(keep)] = scores[b, kt]
            out_idx[b, : len(keep)] = kt.to(torch.int32)
        valid[b] = len(keep)
    return out_boxes, out_scores, out_idx, valid
