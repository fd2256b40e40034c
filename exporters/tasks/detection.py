"""Detection (SSDLite): decoded boxes and scores, with each format's native NMS appended (or raw
box/score tensors). Judged on the final boxes (same-class matching, IoU and score differences)
and, whatever NMS keeps, on every anchor's box and scores as the NMS op was given them."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mvit.models.detection_postprocess import DetectionDecoder, NmsSettings, box_iou, generate_anchors, select_detections

from ..base import ExportOptions
from ..tolerances import Tolerance
from .base import Head, Judgement, SampleOutputs, check

MATCH_IOU = 0.5  # a detection counts as found when a same-class box overlaps at least this much


class _Detection(nn.Module):
    def __init__(self, net: nn.Module, decoder: DetectionDecoder | None) -> None:
        super().__init__()
        self.net, self.decoder = net, decoder

    def forward(self, x: torch.Tensor):
        offsets, logits = self.net(x)
        if self.decoder is None:
            return offsets, logits
        return self.decoder(offsets, logits)


def detection_anchors(net: nn.Module, image_size: int) -> torch.Tensor:
    from mvit.models.ssdlite import ASPECT_RATIOS

    sizes: Any = net.feature_map_sizes  # SSDLite's; a detector without it is no SSDLite
    return generate_anchors(sizes(image_size), ASPECT_RATIOS)


def artefact_detections(out: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections of image 0 from a runner's NMS outputs, flat (with batch_index) or padded."""
    boxes, scores, classes = (np.asarray(out[k]) for k in ("boxes", "scores", "class_ids"))
    if "batch_index" in out:
        keep = np.asarray(out["batch_index"]).reshape(-1) == 0
        boxes, scores, classes = boxes.reshape(-1, 4)[keep], scores.reshape(-1)[keep], classes.reshape(-1)[keep]
    elif boxes.ndim == 3:
        boxes, scores, classes = boxes[0], scores[0], classes[0]
    keep = (scores > 0) & (classes >= 0)
    return boxes[keep].astype(np.float32), scores[keep].astype(np.float32), classes[keep].astype(np.int64)


def match_detections(ref, art, min_score: float) -> dict[str, Any]:
    """Greedy same-class matching of confident detections (score >= min_score) both ways."""
    (rb, rs, rc), (ab, as_, ac) = ref, art
    rsel, asel = rs >= min_score, as_ >= min_score
    rb, rs, rc, ab_c, as_c, ac_c = rb[rsel], rs[rsel], rc[rsel], ab[asel], as_[asel], ac[asel]
    used = np.zeros(len(ab_c), dtype=bool)
    ious, score_diffs = [], []
    for box, score, cls in zip(rb, rs, rc):
        cand = np.flatnonzero((ac_c == cls) & ~used)
        if len(cand) == 0:
            continue
        iou = box_iou(torch.from_numpy(box[None]), torch.from_numpy(ab_c[cand])).numpy()[0]
        best = int(iou.argmax())
        if iou[best] >= MATCH_IOU:
            used[cand[best]] = True
            ious.append(float(iou[best]))
            score_diffs.append(abs(float(score) - float(as_c[cand[best]])))
    n_ref, n_art = len(rb), len(ab_c)
    return {
        "reference_detections": n_ref, "artefact_detections": n_art, "matched": len(ious),
        "recall": len(ious) / n_ref if n_ref else 1.0,
        "precision": len(ious) / n_art if n_art else 1.0,
        "min_iou": min(ious, default=1.0), "mean_iou": float(np.mean(ious)) if ious else 1.0,
        "max_score_difference": max(score_diffs, default=0.0),
    }


class _NmsJudge:
    """Final boxes of an artefact with NMS inside, plus what its NMS op was given."""

    def __init__(self, tol: Tolerance, settings: NmsSettings, best_class_only: bool) -> None:
        self.tol, self.settings, self.best_class_only = tol, settings, best_class_only
        self.stats: list[dict[str, Any]] = []
        self.taps = 0

    def add(self, sample: SampleOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        ref = sample.reference
        ref_dets = tuple(t.numpy() for t in select_detections(
            torch.from_numpy(ref["boxes"][0]), torch.from_numpy(ref["scores"][0]), self.settings, best_class_only=self.best_class_only))
        self.stats.append(match_detections(ref_dets, artefact_detections(sample.artefact),
                                           self.settings.score_threshold + self.tol.score_difference))
        # What NMS was given, judged numerically: whatever NMS keeps (nothing, with random weights
        # at the default threshold), every anchor's box and score is compared.
        tapped = sample.pre_nms()
        if tapped is None:
            return {}
        self.taps += 1
        return {"pre_nms_boxes": (ref["boxes"][0], tapped[0]), "pre_nms_scores": (ref["scores"][0][:, 1:], tapped[1])}

    def finish(self) -> Judgement:
        d = self.stats
        recall = min((min(s["recall"], s["precision"]) for s in d), default=1.0)
        min_iou = min((s["min_iou"] for s in d), default=1.0)
        score_diff = max((s["max_score_difference"] for s in d), default=0.0)
        n_ref = sum(s["reference_detections"] for s in d)
        j = Judgement(
            metrics={
                "reference_detections": n_ref, "artefact_detections": sum(s["artefact_detections"] for s in d),
                "matched_detections": sum(s["matched"] for s in d), "detection_recall": recall,
                "matched_box_min_iou": min_iou, "matched_box_mean_iou": float(np.mean([s["mean_iou"] for s in d])) if d else 1.0,
                "max_score_difference": score_diff, "pre_nms_compared_samples": self.taps,
            },
            checks=[check("detection_recall", recall, self.tol.box_recall, True),
                    check("matched_box_min_iou", min_iou, self.tol.box_iou, True),
                    check("max_score_difference", score_diff, self.tol.score_difference, False)])
        if n_ref == 0:
            j.warnings.append("the reference found no detections above the score threshold on any sample (random weights?): "
                              "only the boxes and scores NMS was given were compared")
            if self.taps == 0:
                # Neither the final boxes nor what NMS was given could be compared: that judged nothing.
                j.checks.append(check("compared_detections_or_pre_nms_values", 0.0, 1.0, at_least=True))
        return j


class _NumericOnly:
    """Decoded boxes/scores or raw tensors: the numeric comparison of every output is the judge."""

    def add(self, sample: SampleOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {}

    def finish(self) -> Judgement:
        return Judgement()


class DetectionTask:
    name = "detection"
    options: frozenset[str] = frozenset({"raw_detection", "nms"})
    coreml_preview: str | None = "objectDetector"

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions,
             class_id_output: bool) -> Head:
        anchors = detection_anchors(original, image_size)
        if options.raw_detection:
            return Head(_Detection(net, None), ["box_offsets", "class_logits"], anchors)
        # Decoded xyxy boxes in [0, 1] and softmax scores; each target appends its own NMS.
        return Head(_Detection(net, DetectionDecoder(anchors)), ["boxes", "scores"], anchors)

    def judge(self, tol: Tolerance, options: ExportOptions, nms_best_class_only: bool):
        if options.nms is not None:
            return _NmsJudge(tol, options.nms, nms_best_class_only)
        return _NumericOnly()


TASK = DetectionTask()
