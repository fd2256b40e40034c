"""Segmentation: logits, or an in-graph class mask (--mask), judged by mask pixel agreement
(near-tied pixels not judged) and mIoU between the reference and artefact masks."""

from __future__ import annotations

import numpy as np
from torch import nn

from mvit.models.deeplabv3 import SegmentationMask

from ..base import ExportOptions
from ..tolerances import Tolerance
from .base import Head, Judgement, SampleOutputs, check, margin


def _miou(a: np.ndarray, b: np.ndarray) -> float:
    ious = []
    for c in np.union1d(np.unique(a), np.unique(b)):
        inter = np.logical_and(a == c, b == c).sum()
        union = np.logical_or(a == c, b == c).sum()
        ious.append(inter / union)
    return float(np.mean(ious)) if ious else 1.0


class _Judge:
    def __init__(self, tol: Tolerance) -> None:
        self.tol = tol
        self.agree: list[float] = []
        self.mious: list[float] = []

    def add(self, sample: SampleOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        ref, art = sample.reference, sample.artefact
        if "mask" in ref:
            rm, am = ref["mask"], np.asarray(art["mask"]).reshape(ref["mask"].shape)
            judged = np.ones(rm.shape, dtype=bool)
        else:
            rl, al = ref["logits"], np.asarray(art["logits"]).reshape(ref["logits"].shape)
            rm, am = rl.argmax(1), al.argmax(1)
            judged = margin(rl, 1) >= self.tol.decision_margin
        self.agree.append(float((rm == am)[judged].mean()) if judged.any() else 1.0)
        self.mious.append(_miou(rm, am))
        return {}

    def finish(self) -> Judgement:
        agree, miou = min(self.agree, default=1.0), min(self.mious, default=1.0)
        return Judgement(metrics={"mask_pixel_agreement": agree, "mask_miou": miou},
                         checks=[check("mask_pixel_agreement", agree, self.tol.mask_agreement, True),
                                 check("mask_miou", miou, self.tol.mask_miou, True)])


class SegmentationTask:
    name = "segmentation"
    options: frozenset[str] = frozenset({"mask"})
    coreml_preview: str | None = "imageSegmenter"

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions,
             class_id_output: bool) -> Head:
        if options.mask:
            return Head(SegmentationMask(net), ["mask"])
        return Head(net, ["logits"])

    def judge(self, tol: Tolerance, options: ExportOptions, nms_best_class_only: bool) -> _Judge:
        return _Judge(tol)


TASK = SegmentationTask()
