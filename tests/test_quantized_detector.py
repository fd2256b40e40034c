"""Quantised detectors (issue 12): the trained SSDLite fixture exported int8 through the CLI for every
target (CoreML as the default Vision pipeline), judged on the boxes an app would show, and
re-judged on held-out scenes with `mvit-verify --images`; a badly calibrated int8 export fails there.
The box judge itself (pooled recall and precision, score hysteresis) is tested on synthetic boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import trained_fixtures as tf
from export_utils import assert_coreml_structure_ok

from mvit.exporters import cli
from mvit.exporters.tasks.base import SampleOutputs
from mvit.exporters.tasks.detection import JUDGED_SCORE, _NmsJudge
from mvit.exporters.tolerances import QUANTISED_TOLERANCES, TOLERANCES
from mvit.models.detection_postprocess import NmsSettings

FIXTURE = tf.DETECTOR
SIZE = str(FIXTURE.image_size)
SUFFIX = {"coreml": ".mlpackage", "onnx": ".onnx", "tflite": ".tflite"}


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("scenes")
    digits, labels = tf.train_digits()
    calibration, _, _ = tf.detection_scenes(np.random.default_rng(5), digits[:16], labels[:16], FIXTURE.image_size)
    held_out, _, _ = tf.heldout("detection", 24)
    return {
        "calibration": tf.save_scenes(root / "calibration", calibration),
        "held_out": tf.save_scenes(root / "held_out", held_out),
        "black": tf.save_scenes(root / "black", np.zeros((8, 3, FIXTURE.image_size, FIXTURE.image_size), np.float32)),
    }


def _export(cli_run, out: Path, target: str, calibration: Path, precision: str = "int8") -> tuple[int, str, str]:
    return cli_run(
        cli.main,
        "--checkpoint",
        str(FIXTURE.checkpoint),
        "--image-size",
        SIZE,
        "--target",
        target,
        "--precision",
        precision,
        "--calibration",
        str(calibration),
        "--out",
        str(out),
    )


def _artefact(out: Path, target: str, precision: str = "int8") -> Path:
    return out / f"{FIXTURE.name}_A_{SIZE}_{precision}{SUFFIX[target]}"


@pytest.mark.slow  # three int8 conversions, CoreML's verified by the numpy MIL evaluator: runs in CI
def test_int8_detector_passes_in_every_target_and_on_held_out_scenes(cli_run, tmp_path, scenes):
    code, out, err = _export(cli_run, tmp_path, "all", scenes["calibration"])
    assert code == 0, out + err
    for target in SUFFIX:
        path = _artefact(tmp_path, target)
        report = json.loads(path.with_name(path.name + ".report.json").read_text())
        metrics = report["verification"]["task_metrics"]
        assert report["verdict"] == "pass", (target, report["failed"])
        assert metrics["reference_detections"] >= 20, target  # real boxes were compared, not an empty set
        assert metrics["judged_score"] == JUDGED_SCORE
        assert min(metrics["detection_recall"], metrics["detection_precision"]) >= QUANTISED_TOLERANCES["int8"].box_recall
    # The default CoreML detector is the Vision pipeline, quantised in its program stage.
    coreml = json.loads((tmp_path / f"{_artefact(tmp_path, 'coreml').name}.report.json").read_text())
    assert coreml["xcode_preview"] == "objectDetector"
    # W8A8 pipeline: program, NMS model and pipeline all at spec 8 (iOS 17), class axis padded 10 -> 80.
    assert_coreml_structure_ok(coreml)
    assert coreml["structure"]["specification_version"] == 8
    assert coreml["structure"]["required_deployment_target"].startswith("iOS17")
    for target in ("onnx", "tflite", "coreml"):
        code, out, err = cli_run(
            cli.verify_main, str(_artefact(tmp_path, target)), "--checkpoint", str(FIXTURE.checkpoint), "--images", str(scenes["held_out"])
        )
        assert code == 0 and " pass " in out, (target, out, err)


@pytest.mark.slow
def test_int8_calibrated_on_black_images_fails_on_held_out_scenes(cli_run, tmp_path, scenes):
    """Ranges from black images clip every real activation. The export's own judge sees only the
    photos and the black images; held-out scenes show the boxes are gone."""
    code, out, err = _export(cli_run, tmp_path, "onnx", scenes["black"])
    assert code in (0, 1), out + err
    code, out, err = cli_run(cli.verify_main, str(_artefact(tmp_path, "onnx")), "--checkpoint", str(FIXTURE.checkpoint), "--images", str(scenes["held_out"]))
    assert code == 1 and " fail " in out and "detection_recall" in out, out + err


# --- the box judge on synthetic detections -----------------------------------------------------

ANCHORS = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.5, 0.5, 0.9, 0.9], [0.6, 0.1, 0.9, 0.4], [0.1, 0.6, 0.4, 0.9]])


def _sample(ref_scores: list[float], art_scores: list[float], shift: float = 0.0) -> SampleOutputs:
    """Four boxes, each a different class; the artefact's are moved by `shift` and rescored."""
    probs = torch.zeros(1, 4, 5)
    for i, s in enumerate(ref_scores):
        probs[0, i, i + 1] = s
    boxes = ANCHORS.clone()[None]
    art_boxes = (ANCHORS + shift).numpy()[None]
    keep = [i for i, s in enumerate(art_scores) if s > 0]
    artefact = {
        "boxes": art_boxes[:, keep],
        "scores": np.asarray([[art_scores[i] for i in keep]], np.float32),
        "class_ids": np.asarray([[i + 1 for i in keep]], np.int64),
    }
    return SampleOutputs({"boxes": boxes.numpy(), "scores": probs.numpy()}, artefact, lambda: None)


def _judge(precision: str, samples: list[SampleOutputs]) -> dict[str, dict]:
    tol = QUANTISED_TOLERANCES.get(precision) or TOLERANCES[precision]
    judge = _NmsJudge(tol, NmsSettings(), best_class_only=False)
    for sample in samples:
        judge.add(sample)
    judgement = judge.finish()
    return {c.name: c.as_dict() for c in judgement.checks} | {"metrics": judgement.metrics}


def test_a_score_jittering_across_the_threshold_is_not_a_miss():
    # Reference 0.32 (judged), artefact 0.28 (not judged itself, but within int8's score tolerance).
    checks = _judge("int8", [_sample([0.32, 0.9, 0.8, 0.7], [0.28, 0.88, 0.83, 0.66])] * 3)
    assert checks["detection_recall"]["passed"] and checks["detection_precision"]["passed"]
    assert checks["metrics"]["detection_recall"] == 1.0


def test_missing_boxes_and_extra_boxes_fail_pooled_over_samples():
    healthy = [_sample([0.9, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9])] * 8
    missing = [_sample([0.9, 0.9, 0.9, 0.9], [0.9, 0.0, 0.0, 0.0])] * 2  # 6 of 40 reference boxes not found
    extra = [_sample([0.9, 0.0, 0.0, 0.0], [0.9, 0.9, 0.9, 0.9])] * 2  # 6 of 40 artefact boxes not in the reference
    assert _judge("int8", healthy)["detection_recall"]["passed"]
    checks = _judge("int8", healthy + missing)
    assert not checks["detection_recall"]["passed"] and checks["metrics"]["detection_recall"] == pytest.approx(34 / 40)
    checks = _judge("int8", healthy + extra)
    assert checks["detection_recall"]["passed"] and not checks["detection_precision"]["passed"]


def test_quantised_boxes_are_judged_on_mean_iou_float_boxes_on_the_worst():
    moved = _sample([0.9, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9], shift=0.03)  # IoU about 0.7-0.8 for these boxes
    exact = _sample([0.9, 0.9, 0.9, 0.9], [0.9, 0.9, 0.9, 0.9])
    quantised = _judge("int8", [exact] * 9 + [moved])
    assert quantised["matched_box_mean_iou"]["passed"] and quantised["metrics"]["matched_box_min_iou"] < 0.85
    assert not _judge("int8", [moved] * 10)["matched_box_mean_iou"]["passed"]
    assert not _judge("fp16", [exact] * 9 + [moved])["matched_box_min_iou"]["passed"]


def test_low_score_boxes_are_not_judged():
    # Only boxes an app would show count: a 0.2-score box missing from the artefact is no failure.
    checks = _judge("fp16", [_sample([0.2, 0.9, 0.9, 0.9], [0.0, 0.9, 0.9, 0.9])] * 3)
    assert checks["detection_recall"]["passed"] and checks["metrics"]["reference_detections"] == 9
