"""Numerics verification: the fused PyTorch model with reference preprocessing vs an artefact's
runner, on fixed real photographs and seeded noise. One path for every target.

The reference is the same wrapped module the target traced, minus the pixel preprocessing,
which is done here in numpy from the PreprocessSpec (preprocessing.normalise). So a wrong
channel flip or scale inside an artefact shows up as a mismatch, as do wrong weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mvit.models import PreprocessSpec
from mvit.models.detection_postprocess import NmsSettings, box_iou, select_detections

from .preprocessing import normalise
from .samples import Sample, verification_samples
from .tolerances import Tolerance, tolerance_for
from .wrappers import INPUT_NAME, BuiltModule

MATCH_IOU = 0.5  # a detection counts as found when a same-class box overlaps at least this much


def _check(name: str, value: float, limit: float, at_least: bool) -> dict[str, Any]:
    ok = bool(value >= limit) if at_least else bool(value <= limit)
    return {"check": name, "value": float(value), "limit": float(limit), "kind": "min" if at_least else "max", "passed": ok}


def describe_failure(check: dict[str, Any]) -> str:
    op = "<" if check["kind"] == "min" else ">"
    return f"{check['check']} = {check['value']:.3g} {op} limit {check['limit']:.3g}"


def _tensor_metrics(ref: np.ndarray, art: np.ndarray) -> dict[str, float]:
    ref64, art64 = ref.astype(np.float64).ravel(), art.astype(np.float64).ravel()
    diff = np.abs(ref64 - art64)
    max_abs = float(diff.max(initial=0.0))
    scale = float(np.abs(ref64).max(initial=0.0))
    denom = np.linalg.norm(ref64) * np.linalg.norm(art64)
    cosine = float(ref64 @ art64 / denom) if denom > 0 else float(np.array_equal(ref64, art64))
    return {"max_abs_error": max_abs, "relative_error": max_abs / scale if scale > 0 else max_abs, "cosine": cosine}


def _accumulate(per_output: dict[str, dict[str, float]], name: str, m: dict[str, float]) -> None:
    """Worst case over samples: largest errors, smallest cosine."""
    agg = per_output.setdefault(name, {"max_abs_error": 0.0, "relative_error": 0.0, "cosine": 1.0})
    agg["max_abs_error"] = max(agg["max_abs_error"], m["max_abs_error"])
    agg["relative_error"] = max(agg["relative_error"], m["relative_error"])
    agg["cosine"] = min(agg["cosine"], m["cosine"])


def _margin(scores: np.ndarray, axis: int) -> np.ndarray:
    """Gap between the best two classes, relative to the output's scale (like relative_error)."""
    top2 = -np.partition(-scores, 1, axis=axis)
    scale = max(float(np.abs(scores).max(initial=0.0)), 1e-30)
    return (np.take(top2, 0, axis=axis) - np.take(top2, 1, axis=axis)) / scale


def _miou(a: np.ndarray, b: np.ndarray) -> float:
    ious = []
    for c in np.union1d(np.unique(a), np.unique(b)):
        inter = np.logical_and(a == c, b == c).sum()
        union = np.logical_or(a == c, b == c).sum()
        ious.append(inter / union)
    return float(np.mean(ious)) if ious else 1.0


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


def _match_detections(ref, art, min_score: float) -> dict[str, Any]:
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


def verify_runner(
    runner: Any,
    reference: BuiltModule,
    *,
    task: str,
    preprocess: PreprocessSpec,
    precision: str,
    raw_input: bool = False,
    nms: dict[str, Any] | None = None,
    samples: list[Sample] | None = None,
    nms_best_class_only: bool = False,
) -> dict[str, Any]:
    """Run every sample through both and judge. Returns the report's "verification" section.

    `nms_best_class_only`: the artefact's NMS keeps each box under its best class only (CoreML's
    op), so the reference detections are selected the same way and only numerics are judged.
    """
    tol: Tolerance = tolerance_for(precision)
    if samples is None:
        samples = verification_samples(preprocess.resize_shortest, preprocess.crop)
    per_output: dict[str, dict[str, float]] = {}
    top1_hits = top1_judged = 0
    top5_overlaps: list[float] = []
    mask_agree: list[float] = []
    mious: list[float] = []
    det_stats: list[dict[str, Any]] = []
    settings = NmsSettings(**nms) if nms else None
    pre_nms_taps = 0

    for sample in samples:
        x_norm = normalise(sample.pixels, preprocess)
        with torch.no_grad():
            ref_out = reference.module(torch.from_numpy(x_norm))
        ref_out = ref_out if isinstance(ref_out, (tuple, list)) else (ref_out,)
        ref = {n: t.numpy() for n, t in zip(reference.output_names, ref_out)}
        art = runner.run({INPUT_NAME: x_norm if raw_input else sample.pixels})

        if settings is not None:
            ref_dets = tuple(t.numpy() for t in select_detections(
                torch.from_numpy(ref["boxes"][0]), torch.from_numpy(ref["scores"][0]), settings, best_class_only=nms_best_class_only))
            det_stats.append(_match_detections(ref_dets, artefact_detections(art), settings.score_threshold + tol.score_difference))
            # What NMS was given, judged numerically: whatever NMS keeps (nothing, with random
            # weights at the default threshold), every anchor's box and score is compared.
            tapped = runner.pre_nms({INPUT_NAME: x_norm if raw_input else sample.pixels}) if hasattr(runner, "pre_nms") else None
            if tapped is not None:
                pre_nms_taps += 1
                for name, r, a in (("pre_nms_boxes", ref["boxes"][0], tapped[0]), ("pre_nms_scores", ref["scores"][0][:, 1:], tapped[1])):
                    _accumulate(per_output, name, _tensor_metrics(r, np.asarray(a).reshape(r.shape)))
            continue

        for name, r in ref.items():
            if name not in art:
                raise KeyError(f"the artefact has no output {name!r} (it has {sorted(art)})")
            a = np.asarray(art[name])
            if a.shape != r.shape:
                a = a.reshape(r.shape)  # e.g. a runner that drops a unit dimension
            if np.issubdtype(r.dtype, np.floating):
                _accumulate(per_output, name, _tensor_metrics(r, a))
            art[name] = a

        if task == "classification":
            rp, ap = ref["probabilities"][0], np.asarray(art["probabilities"]).reshape(-1)
            art_top1 = int(np.asarray(art["class_id"]).reshape(-1)[0]) if "class_id" in art else int(ap.argmax())
            if _margin(rp, 0) >= tol.decision_margin:
                top1_judged += 1
                top1_hits += int(art_top1 == int(rp.argmax()))
            k = min(5, rp.size)
            ranked = np.sort(rp)[::-1]
            # The top-5 set is only well defined when the 5th and 6th classes are not tied.
            if k == rp.size or (ranked[k - 1] - ranked[k]) / max(ranked[0], 1e-30) >= tol.decision_margin:
                top5_overlaps.append(len(set(np.argsort(-rp)[:k]) & set(np.argsort(-ap)[:k])) / k)
        elif task == "segmentation":
            if "mask" in ref:
                rm, am = ref["mask"], art["mask"]
                judged = np.ones(rm.shape, dtype=bool)
            else:
                rl, al = ref["logits"], art["logits"]
                rm, am = rl.argmax(1), al.argmax(1)
                judged = _margin(rl, 1) >= tol.decision_margin
            mask_agree.append(float((rm == am)[judged].mean()) if judged.any() else 1.0)
            mious.append(_miou(rm, am))

    checks = []
    for name, m in per_output.items():
        checks.append(_check(f"relative_error[{name}]", m["relative_error"], tol.relative_error, at_least=False))
        checks.append(_check(f"cosine[{name}]", m["cosine"], tol.cosine, at_least=True))
    task_metrics: dict[str, Any] = {}
    if task == "classification":
        top1 = top1_hits / top1_judged if top1_judged else 1.0
        top5 = float(np.mean(top5_overlaps)) if top5_overlaps else 1.0
        task_metrics = {
            "top1_agreement": top1, "top1_judged_samples": top1_judged,
            "top5_agreement": top5, "top5_judged_samples": len(top5_overlaps),
        }
        checks += [_check("top1_agreement", top1, tol.top1_agreement, True), _check("top5_agreement", top5, tol.top5_agreement, True)]
    elif task == "segmentation":
        task_metrics = {"mask_pixel_agreement": min(mask_agree), "mask_miou": min(mious)}
        checks += [_check("mask_pixel_agreement", min(mask_agree), tol.mask_agreement, True), _check("mask_miou", min(mious), tol.mask_miou, True)]
    if det_stats:
        recall = min(min(d["recall"], d["precision"]) for d in det_stats)
        min_iou = min(d["min_iou"] for d in det_stats)
        score_diff = max(d["max_score_difference"] for d in det_stats)
        task_metrics = {
            "reference_detections": sum(d["reference_detections"] for d in det_stats),
            "artefact_detections": sum(d["artefact_detections"] for d in det_stats),
            "matched_detections": sum(d["matched"] for d in det_stats),
            "detection_recall": recall, "matched_box_min_iou": min_iou,
            "matched_box_mean_iou": float(np.mean([d["mean_iou"] for d in det_stats])),
            "max_score_difference": score_diff,
        }
        checks += [
            _check("detection_recall", recall, tol.box_recall, True),
            _check("matched_box_min_iou", min_iou, tol.box_iou, True),
            _check("max_score_difference", score_diff, tol.score_difference, False),
        ]
    warnings = []
    if task_metrics.get("top1_judged_samples") == 0:
        warnings.append("no sample had a decisive top-1 (random weights?): top-1 agreement was not judged; "
                        "relative error and cosine still were")
    if task_metrics.get("top5_judged_samples") == 0:
        warnings.append("no sample had a decisive top-5 set (5th and 6th classes near-tied): top-5 agreement was not judged")
    if det_stats and task_metrics["reference_detections"] == 0:
        warnings.append("the reference found no detections above the score threshold on any sample (random weights?): "
                        "only the boxes and scores NMS was given were compared")
    if det_stats:
        task_metrics["pre_nms_compared_samples"] = pre_nms_taps
        if pre_nms_taps == 0 and task_metrics["reference_detections"] == 0:
            # Neither the final boxes nor what NMS was given could be compared: that judged nothing.
            checks.append(_check("compared_detections_or_pre_nms_values", 0.0, 1.0, at_least=True))
    failed = [describe_failure(c) for c in checks if not c["passed"]]
    return {
        "warnings": warnings,
        "verified_by": getattr(runner, "verified_by", "unknown"),
        "precision": precision,
        "tolerances": tol.as_dict(),
        "samples": [s.name for s in samples],
        "outputs": per_output,
        "task_metrics": task_metrics,
        "checks": checks,
        "verdict": "fail" if failed else "pass",
        "failed": failed,
    }
