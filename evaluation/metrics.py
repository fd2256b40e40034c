"""Accuracy from per-image records, for the whole set or any re-weighting of its images.

Every metric is computed from what each image contributes, with a weight per image (how often a
bootstrap resample drew it; 1 for the plain figure), so the intervals and paired differences in
bootstrap.py re-use the records instead of re-running models.

- classification: top-1 and top-5 accuracy (top-k over min(5, classes)).
- segmentation: one confusion matrix summed over the images (Pascal VOC's definition, pixels
  labelled 255 ignored); mIoU is the mean IoU over classes present in the labels or the
  predictions, pixel accuracy is the diagonal over all scored pixels.
- detection: COCO's definition (pycocotools' evaluateImg/accumulate), implemented here: the 100
  best detections per image, greedy matching by score at IoU 0.50:0.05:0.95, crowd boxes
  ignored, precision made non-increasing and read at 101 recall points, AP averaged over the
  classes that have ground truth. mAP is the mean over the ten IoUs, mAP50 the one at 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .datasets import IGNORE, Box

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)
MAX_DETECTIONS = 100  # per image, as COCO's headline figures
_CHUNK_VALUES = 4_000_000  # resampled values held at once in the detection bootstrap


def _weights(weights: np.ndarray | None, n: int) -> np.ndarray:
    """[B, N] image weights; None is the plain figure (one row of ones)."""
    return np.ones((1, n)) if weights is None else np.atleast_2d(weights).astype(np.float64)


@dataclass
class ClassificationRecords:
    top1: list[bool] = field(default_factory=list)
    top5: list[bool] = field(default_factory=list)

    def add(self, probabilities: np.ndarray, label: int) -> None:
        p = np.asarray(probabilities, dtype=np.float64).reshape(-1)
        k = min(5, p.size)
        # A stable sort ranks ties by class index, the same for every model compared.
        ranked = np.argsort(-p, kind="stable")
        self.top1.append(bool(ranked[0] == label))
        self.top5.append(bool(label in ranked[:k]))

    def __len__(self) -> int:
        return len(self.top1)

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        w = _weights(weights, len(self))
        total = w.sum(axis=1)
        return {"top1": w @ np.asarray(self.top1, float) / total, "top5": w @ np.asarray(self.top5, float) / total}


@dataclass
class SegmentationRecords:
    num_classes: int
    confusions: list[np.ndarray] = field(default_factory=list)  # per image, flattened [C * C], row = truth

    def add(self, predicted: np.ndarray, truth: np.ndarray) -> None:
        c = self.num_classes
        scored = truth != IGNORE
        pred = np.asarray(predicted).reshape(truth.shape)[scored].astype(np.int64)
        # A prediction outside the labels cannot happen with a model of these labels; clip keeps the matrix square.
        pred = np.clip(pred, 0, c - 1)
        self.confusions.append(np.bincount(truth[scored] * c + pred, minlength=c * c))

    def __len__(self) -> int:
        return len(self.confusions)

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        c = self.num_classes
        w = _weights(weights, len(self))
        conf = (w @ np.stack(self.confusions).astype(np.float64)).reshape(-1, c, c)
        hits = np.diagonal(conf, axis1=1, axis2=2)
        union = conf.sum(axis=2) + conf.sum(axis=1) - hits
        present = union > 0
        iou = np.divide(hits, union, out=np.zeros_like(hits), where=present)
        miou = np.where(present.any(axis=1), iou.sum(axis=1) / np.maximum(present.sum(axis=1), 1), np.nan)
        total = conf.sum(axis=(1, 2))
        return {"miou": miou, "pixel_accuracy": np.divide(hits.sum(axis=1), total, out=np.full_like(total, np.nan), where=total > 0)}


def box_iou(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """[D, G] IoU of xyxy boxes; against a crowd box, intersection over the detection's area (COCO)."""
    if len(dets) == 0 or len(gts) == 0:
        return np.zeros((len(dets), len(gts)))
    lt = np.maximum(dets[:, None, :2], gts[None, :, :2])
    rb = np.minimum(dets[:, None, 2:], gts[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_d = np.prod(dets[:, 2:] - dets[:, :2], axis=1)[:, None]
    area_g = np.prod(gts[:, 2:] - gts[:, :2], axis=1)[None, :]
    union = np.where(crowd[None, :], area_d, area_d + area_g - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_image(dets: np.ndarray, gts: np.ndarray, crowd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One image, one class, detections best first: (matched [D, T], matched_to_crowd [D, T]), COCO's greedy rule."""
    t = len(IOU_THRESHOLDS)
    matched = np.zeros((len(dets), t), dtype=bool)
    ignored = np.zeros((len(dets), t), dtype=bool)
    if len(gts) == 0 or len(dets) == 0:
        return matched, ignored
    order = np.argsort(crowd, kind="stable")  # ordinary boxes first, crowd last
    gts, crowd = gts[order], crowd[order]
    ious = box_iou(dets, gts, crowd)
    for ti, threshold in enumerate(IOU_THRESHOLDS):
        taken = np.zeros(len(gts), dtype=bool)
        for d in range(len(dets)):
            best, best_iou = -1, min(threshold, 1 - 1e-10)
            for g in range(len(gts)):
                if taken[g] and not crowd[g]:
                    continue
                if best > -1 and not crowd[best] and crowd[g]:
                    break  # an ordinary match beats any crowd box
                if ious[d, g] < best_iou:
                    continue
                best, best_iou = g, ious[d, g]
            if best > -1:
                taken[best] = True
                matched[d, ti] = True
                ignored[d, ti] = bool(crowd[best])
    return matched, ignored


@dataclass
class DetectionRecords:
    num_classes: int
    scores: list[float] = field(default_factory=list)
    classes: list[int] = field(default_factory=list)
    images: list[int] = field(default_factory=list)
    matched: list[np.ndarray] = field(default_factory=list)  # [T] per detection
    ignored: list[np.ndarray] = field(default_factory=list)
    truths: list[np.ndarray] = field(default_factory=list)  # per image: non-crowd boxes per class [C]

    def add(self, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, truth: list[Box]) -> None:
        image = len(self.truths)
        keep = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")[:MAX_DETECTIONS]
        boxes, scores, classes = np.asarray(boxes, float).reshape(-1, 4)[keep], np.asarray(scores, float)[keep], np.asarray(classes)[keep]
        gt_boxes = np.asarray([b.xyxy for b in truth], dtype=np.float64).reshape(-1, 4)
        gt_classes = np.asarray([b.label for b in truth], dtype=np.int64)
        gt_crowd = np.asarray([b.crowd for b in truth], dtype=bool)
        self.truths.append(np.bincount(gt_classes[~gt_crowd], minlength=self.num_classes)[: self.num_classes])
        for c in np.unique(classes):
            mine = np.flatnonzero(classes == c)  # already best first
            theirs = gt_classes == c
            matched, ignored = match_image(boxes[mine], gt_boxes[theirs], gt_crowd[theirs])
            for k, d in enumerate(mine):
                self.scores.append(float(scores[d]))
                self.classes.append(int(c))
                self.images.append(image)
                self.matched.append(matched[k])
                self.ignored.append(ignored[k])

    def __len__(self) -> int:
        return len(self.truths)

    def metrics(self, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        w = _weights(weights, len(self))
        truths = w @ np.stack(self.truths).astype(np.float64) if self.truths else np.zeros((len(w), self.num_classes))  # [B, C]
        scores, classes, images = np.asarray(self.scores), np.asarray(self.classes, dtype=np.int64), np.asarray(self.images, dtype=np.int64)
        matched = np.asarray(self.matched, dtype=bool).reshape(-1, len(IOU_THRESHOLDS))
        ignored = np.asarray(self.ignored, dtype=bool).reshape(-1, len(IOU_THRESHOLDS))
        ap = np.full((len(w), self.num_classes, len(IOU_THRESHOLDS)), np.nan)
        for c in range(self.num_classes):
            has_truth = truths[:, c] > 0
            if not has_truth.any():
                continue
            mine = np.flatnonzero(classes == c)
            mine = mine[np.argsort(-scores[mine], kind="mergesort")]
            ap[has_truth, c] = 0.0
            if len(mine) == 0:
                continue
            rows = max(1, _CHUNK_VALUES // (len(mine) * len(IOU_THRESHOLDS)))
            for start in range(0, len(w), rows):
                sl = slice(start, start + rows)
                ap[sl, c] = _average_precision(w[sl][:, images[mine]], matched[mine], ignored[mine], truths[sl, c])
            ap[~has_truth, c] = np.nan
        scored = np.isfinite(ap[:, :, 0])  # classes with ground truth in this resample
        filled = np.nan_to_num(ap)
        count = scored.sum(axis=1)
        map_all = np.where(count > 0, filled.mean(axis=2).sum(axis=1) / np.maximum(count, 1), np.nan)
        map50 = np.where(count > 0, filled[:, :, 0].sum(axis=1) / np.maximum(count, 1), np.nan)
        return {"map": map_all, "map50": map50}


def _average_precision(dw: np.ndarray, matched: np.ndarray, ignored: np.ndarray, positives: np.ndarray) -> np.ndarray:
    """[B, T] AP of one class: detections best first with weights dw [B, D], flags [D, T], positives [B]."""
    counted = ~ignored
    tp = np.cumsum(dw[:, :, None] * (matched & counted)[None], axis=1)  # [B, D, T]
    fp = np.cumsum(dw[:, :, None] * (~matched & counted)[None], axis=1)
    seen = tp + fp
    precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
    recall = tp / np.maximum(positives, 1e-12)[:, None, None]
    envelope = np.flip(np.maximum.accumulate(np.flip(precision, axis=1), axis=1), axis=1)
    # Recall point r reads the envelope at the first detection whose recall reaches r, so each
    # detection owns the points between the previous recall (exclusive) and its own (inclusive).
    reached = np.searchsorted(RECALL_POINTS, recall, side="right")
    owned = np.diff(reached, axis=1, prepend=0)
    return (owned * envelope).sum(axis=1) / len(RECALL_POINTS)
