"""Classification: probabilities (+ class_id where the format has no classifier type), judged by
top-1 and top-5 agreement on samples whose decision is not a near-tie."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..base import ExportOptions
from ..checks import check
from ..tolerances import Tolerance
from .base import Head, Judgement, SampleOutputs, margin


class _Classification(nn.Module):
    def __init__(self, net: nn.Module, with_class_id: bool) -> None:
        super().__init__()
        self.net, self.with_class_id = net, with_class_id

    def forward(self, x: torch.Tensor):
        probs = self.net(x).softmax(dim=-1)
        if self.with_class_id:
            return probs, probs.argmax(dim=-1).to(torch.int32)
        return probs


class _Judge:
    def __init__(self, tol: Tolerance) -> None:
        self.tol = tol
        self.top1_hits = self.top1_judged = 0
        self.top5: list[float] = []

    def add(self, sample: SampleOutputs) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        ref, art = sample.reference, sample.artefact
        rp, ap = ref["probabilities"][0], np.asarray(art["probabilities"]).reshape(-1)
        art_top1 = int(np.asarray(art["class_id"]).reshape(-1)[0]) if "class_id" in art else int(ap.argmax())
        if margin(rp, 0) >= self.tol.decision_margin:
            self.top1_judged += 1
            self.top1_hits += int(art_top1 == int(rp.argmax()))
        k = min(5, rp.size)
        ranked = np.sort(rp)[::-1]
        # The top-5 set is only well defined when the 5th and 6th classes are not tied.
        if k == rp.size or (ranked[k - 1] - ranked[k]) / max(ranked[0], 1e-30) >= self.tol.decision_margin:
            self.top5.append(len(set(np.argsort(-rp)[:k]) & set(np.argsort(-ap)[:k])) / k)
        return {}

    def finish(self) -> Judgement:
        top1 = self.top1_hits / self.top1_judged if self.top1_judged else 1.0
        top5 = float(np.mean(self.top5)) if self.top5 else 1.0
        j = Judgement(
            metrics={"top1_agreement": top1, "top1_judged_samples": self.top1_judged, "top5_agreement": top5, "top5_judged_samples": len(self.top5)},
            checks=[check("top1_agreement", top1, self.tol.top1_agreement, True), check("top5_agreement", top5, self.tol.top5_agreement, True)],
        )
        if self.top1_judged == 0:
            j.warnings.append("no sample had a decisive top-1 (random weights?): top-1 agreement was not judged; relative error and cosine still were")
        if not self.top5:
            j.warnings.append("no sample had a decisive top-5 set (5th and 6th classes near-tied): top-5 agreement was not judged")
        return j


class ClassificationTask:
    name = "classification"
    options: frozenset[str] = frozenset()
    coreml_preview: str | None = "imageClassifier"
    metrics: tuple[tuple[str, str], ...] = (("top1", "top-1"), ("top5", "top-5"))
    classifier = True
    preview_labels = False
    class_map_beside_logits = False
    multi_size = True

    def head(self, net: nn.Module, original: nn.Module, image_size: int, options: ExportOptions, class_id_output: bool) -> Head:
        names = ["probabilities", "class_id"] if class_id_output else ["probabilities"]
        return Head(_Classification(net, with_class_id=class_id_output), names)

    def judge(self, tol: Tolerance, options: ExportOptions, nms_best_class_only: bool) -> _Judge:
        return _Judge(tol)


TASK = ClassificationTask()
