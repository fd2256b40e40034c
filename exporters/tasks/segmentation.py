"""Segmentation: logits, or an in-graph class mask (--mask), judged by mask pixel agreement
(near-tied pixels not judged) and mIoU between the reference and artefact masks."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mvit.models.deeplabv3 import SegmentationMask

from ..base import ExportOptions
from ..checks import check
from ..tolerances import Tolerance
from .base import Head, Judgement, SampleOutputs, margin


def _miou(a: np.ndarray, b: np.ndarray) -> float:
    ious = []
    for c in np.union1d(np.unique(a), np.unique(b)):
        inter = np.logical_and(a == c, b == c).sum()
        union = np.logical_or(a == c, b == c).sum()
        ious.append(inter / union)
    return float(np.mean(ious)) if ious else 1.0


def _pooled_miou(pairs: list[tuple[np.ndarray, np.ndarray]]) -> float:
    if not pairs:
        return 1.0
    return _miou(np.concatenate([r.ravel() for r, _ in pairs]), np.concatenate([a.ravel() for _, a in pairs]))


class _Judge:
    def __init__(self, tol: Tolerance) -> None:
        self.tol = tol
        self.agree: list[float] = []
        self.mious: list[tuple[np.ndarray, np.ndarray]] = []  # (reference, artefact) classes of decided pixels
        self.class_map_agree: list[float] = []
        self.class_map_mious: list[tuple[np.ndarray, np.ndarray]] = []

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
        # mIoU over the decided pixels of all samples pooled, as VOC pools images: per sample, a
        # near-tie sliver of a rare class counted as a whole class missed (a trained int8 segmenter
        # scored 0.2-0.6 that way while its mIoU on 120 held-out scenes moved by less than 0.3 points).
        self.mious.append((rm[judged], am[judged]))
        if "mask" not in ref and "mask" in art:  # a CoreML segmenter's class map beside its logits
            self._add_class_map(ref["logits"], np.asarray(art["mask"]))
        return {}

    def _add_class_map(self, logits: np.ndarray, class_map: np.ndarray) -> None:
        """The class map against the reference logits upsampled as SegmentationMask does."""
        size = class_map.shape[-2:]
        up = F.interpolate(torch.from_numpy(logits), size=size, mode="bilinear", align_corners=False).numpy()
        rm, am = up.argmax(1), class_map.reshape(up.shape[0], *size)
        judged = margin(up, 1) >= self.tol.decision_margin
        self.class_map_agree.append(float((rm == am)[judged].mean()) if judged.any() else 1.0)
        self.class_map_mious.append((rm[judged], am[judged]))

    def finish(self) -> Judgement:
        agree, miou = min(self.agree, default=1.0), _pooled_miou(self.mious)
        judgement = Judgement(
            metrics={"mask_pixel_agreement": agree, "mask_miou": miou},
            checks=[check("mask_pixel_agreement", agree, self.tol.mask_agreement, True), check("mask_miou", miou, self.tol.mask_miou, True)],
        )
        if self.class_map_agree:
            agree, miou = min(self.class_map_agree), _pooled_miou(self.class_map_mious)
            judgement.metrics.update(class_map_pixel_agreement=agree, class_map_miou=miou)
            judgement.checks += [
                check("class_map_pixel_agreement", agree, self.tol.mask_agreement, True),
                check("class_map_miou", miou, self.tol.mask_miou, True),
            ]
        return judgement


class SegmentationTask:
    name = "segmentation"
    options: frozenset[str] = frozenset({"mask"})
    coreml_preview: str | None = "imageSegmenter"
    metrics: tuple[tuple[str, str], ...] = (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy"))
    classifier = False
    preview_labels = True
    class_map_beside_logits = True
    multi_size = True

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions, class_id_output: bool) -> Head:
        if options.mask:
            return Head(SegmentationMask(net), ["mask"])
        return Head(net, ["logits"])

    def judge(self, tol: Tolerance, options: ExportOptions, nms_best_class_only: bool) -> _Judge:
        return _Judge(tol)


TASK = SegmentationTask()
