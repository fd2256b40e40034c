"""Detection (SSDLite): decoded boxes and scores, with each format's native NMS appended (or raw
box/score tensors). Judged on the final boxes (same-class matching, IoU and score differences)
and, whatever NMS keeps, on every anchor's box and scores as the NMS op was given them."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from mvit.models.detection_postprocess import DetectionDecoder, NmsSettings, box_iou, generate_anchors, select_detections
from mvit.models.ssdlite import ASPECT_RATIOS

from ..base import ExportOptions
from ..checks import check
from ..tolerances import Tolerance
from .base import Head, Judgement, SampleOutputs

MATCH_IOU = 0.5  # a detection counts as found when a same-class box overlaps at least this much
# Detections scoring below this are not judged: they are what an app would not show, and below
# it NMS keeps near-duplicate low-score boxes whose survivors flip under any rounding (an fp16
# export of the trained detector matched a 0.05-score box at IoU 0.55 on held-out scenes, while
# every box scoring >= 0.3 matched at IoU >= 0.999).
JUDGED_SCORE = 0.3


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


def match_detections(found, others, confident: float, candidate: float) -> tuple[int, list[float], list[float]]:
    """Greedy same-class matching of `found`'s detections scoring >= `confident` to `others`'
    scoring >= `candidate` (a little lower, so a score that jitters across the threshold is not
    counted as a miss). Returns (detections judged, IoUs of the matched, their score differences)."""
    (fb, fs, fc), (ob, os_, oc) = found, others
    fsel, osel = fs >= confident, os_ >= candidate
    fb, fs, fc, ob, os_, oc = fb[fsel], fs[fsel], fc[fsel], ob[osel], os_[osel], oc[osel]
    used = np.zeros(len(ob), dtype=bool)
    ious, score_diffs = [], []
    for box, score, cls in zip(fb, fs, fc):
        cand = np.flatnonzero((oc == cls) & ~used)
        if len(cand) == 0:
            continue
        iou = box_iou(torch.from_numpy(box[None]), torch.from_numpy(ob[cand])).numpy()[0]
        best = int(iou.argmax())
        if iou[best] >= MATCH_IOU:
            used[cand[best]] = True
            ious.append(float(iou[best]))
            score_diffs.append(abs(float(score) - float(os_[cand[best]])))
    return len(fb), ious, score_diffs


class _NmsJudge:
    """Final boxes of an artefact with NMS inside, plus what its NMS op was given.

    The detections judged are those an app would show: score >= JUDGED_SCORE (or the NMS
    threshold plus the score tolerance, if higher). Recall (reference boxes found in the artefact)
    and precision (artefact boxes found in the reference) are pooled over all samples, as COCO
    pools images. Float exports must match every box (min IoU, max score difference); quantised
    ones are judged on the mean IoU and the 95th percentile score difference, since int8 moves a
    box edge by a pixel or two (docs/verification.md)."""

    def __init__(self, tol: Tolerance, settings: NmsSettings, best_class_only: bool) -> None:
        self.tol, self.settings, self.best_class_only = tol, settings, best_class_only
        self.quantised = not math.isfinite(tol.relative_error)
        self.confident = max(JUDGED_SCORE, settings.score_threshold + tol.score_difference)
        self.candidate = self.confident - tol.score_difference
        self.counts = [0, 0, 0, 0]  # reference judged, matched; artefact judged, matched
        self.ious: list[float] = []
        self.score_diffs: list[float] = []
        self.taps = 0
        self.padding_max: float | None = None  # largest |score| in padded class columns, None: none seen

    def add(self, sample: SampleOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        ref = sample.reference
        ref_dets = tuple(
            t.numpy()
            for t in select_detections(
                torch.from_numpy(ref["boxes"][0]), torch.from_numpy(ref["scores"][0]), self.settings, best_class_only=self.best_class_only
            )
        )
        art_dets = artefact_detections(sample.artefact)
        n_ref, ious, diffs = match_detections(ref_dets, art_dets, self.confident, self.candidate)
        n_art, back, _ = match_detections(art_dets, ref_dets, self.confident, self.candidate)
        for i, v in enumerate((n_ref, len(ious), n_art, len(back))):
            self.counts[i] += v
        self.ious += ious
        self.score_diffs += diffs
        # What NMS was given, judged numerically: whatever NMS keeps (nothing, with random weights
        # at the default threshold), every anchor's box and score is compared.
        tapped = sample.pre_nms()
        if tapped is None:
            return {}
        self.taps += 1
        foreground = ref["scores"][0][:, 1:]
        # An NMS op may read zero columns beyond the real classes (CoreML's class axis is padded to a
        # multiple of 80); they are judged apart: they must never score.
        scores, padding = tapped[1][:, : foreground.shape[1]], tapped[1][:, foreground.shape[1] :]
        if padding.size:
            self.padding_max = max(self.padding_max or 0.0, float(np.abs(padding).max()))
        return {"pre_nms_boxes": (ref["boxes"][0], tapped[0]), "pre_nms_scores": (foreground, scores)}

    def finish(self) -> Judgement:
        n_ref, matched, n_art, matched_back = self.counts
        recall = matched / n_ref if n_ref else 1.0
        precision = matched_back / n_art if n_art else 1.0
        ious, diffs = np.asarray(self.ious or [1.0]), np.asarray(self.score_diffs or [0.0])
        metrics = {
            "judged_score": self.confident,
            "reference_detections": n_ref,
            "artefact_detections": n_art,
            "matched_detections": matched,
            "detection_recall": recall,
            "detection_precision": precision,
            "matched_box_min_iou": float(ious.min()),
            "matched_box_mean_iou": float(ious.mean()),
            "max_score_difference": float(diffs.max()),
            "p95_score_difference": float(np.percentile(diffs, 95)),
            "pre_nms_compared_samples": self.taps,
        }
        iou, diff = ("matched_box_mean_iou", "p95_score_difference") if self.quantised else ("matched_box_min_iou", "max_score_difference")
        j = Judgement(
            metrics=metrics,
            checks=[
                check("detection_recall", recall, self.tol.box_recall, True),
                check("detection_precision", precision, self.tol.box_recall, True),
                check(iou, metrics[iou], self.tol.box_iou, True),
                check(diff, metrics[diff], self.tol.score_difference, False),
            ],
        )
        if self.padding_max is not None:
            metrics["padding_columns_max_score"] = self.padding_max
            j.checks.append(check("padding_columns_max_score", self.padding_max, 0.0, False))
        if n_ref == 0:
            j.warnings.append(
                f"the reference found no detections scoring >= {self.confident:.2f} on any sample (random weights?): "
                "only the boxes and scores NMS was given were compared"
            )
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
    metrics: tuple[tuple[str, str], ...] = (("map", "mAP@[.5:.95]"), ("map50", "mAP@.5"))
    classifier = False
    preview_labels = True
    class_map_beside_logits = False
    multi_size = False

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions, class_id_output: bool) -> Head:
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
