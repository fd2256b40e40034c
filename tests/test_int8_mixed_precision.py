"""int8 on weights with real-checkpoint outliers: per-layer sensitivity on the calibration images,
and the fewest layers kept float that let the int8 network pass the classification judge."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import outlier_fixture
import pytest
import trained_fixtures as tf

from mvit.exporters import cli
from mvit.exporters.sensitivity import JUDGE, LayerSensitivity, MixScore, calibration_notes, choose, top1_agreement

CALIBRATION_IMAGES = 16


def _table(n: int) -> list[LayerSensitivity]:
    return [LayerSensitivity(f"layer{i}", "Conv", 0.9 + i / 100) for i in range(n)]


def test_choose_keeps_the_fewest_most_sensitive_layers_float():
    culprits = {"layer0", "layer1", "layer2"}
    calls = []

    def agreement(float_layers: list[str]) -> MixScore:
        calls.append(len(float_layers))
        return MixScore(1.0 if culprits <= set(float_layers) else 0.5, 0.9)

    found = choose(_table(20), agreement)
    assert found.passed and found.float_layers == ["layer0", "layer1", "layer2"]
    assert found.all_int8_agreement == 0.5 and found.agreement == 1.0
    kept = [s for s in found.sensitivity if s.kept_float]
    assert [s.layer for s in kept] == found.float_layers and all("rank" in s.why for s in kept)
    assert len(calls) <= 6  # doubling and bisection, not one try per layer


def test_choose_with_a_cosine_target_keeps_layers_float_past_saturated_agreement():
    # Agreement saturates after 3 layers; the output cosine reaches its target only after 6.
    def score(float_layers: list[str]) -> MixScore:
        return MixScore(1.0 if len(float_layers) >= 3 else 0.5, 0.9 + len(float_layers) / 100)

    assert choose(_table(20), score).float_layers == [f"layer{i}" for i in range(3)]
    found = choose(_table(20), score, cosine_target=0.96)
    assert found.passed and found.float_layers == [f"layer{i}" for i in range(6)]
    assert found.as_dict()["output_cosine"] == 0.96 and found.as_dict()["output_cosine_target"] == 0.96
    assert "output_cosine" not in choose(_table(20), score).as_dict()


def test_choose_says_when_no_mix_passes_and_names_the_worst_layers():
    found = choose(_table(10), lambda float_layers: MixScore(0.4 + len(float_layers) / 100, 0.9))
    assert not found.passed
    assert len(found.float_layers) <= 5  # never more than half the layers float
    assert "cannot meet the judge at any mix" in found.notes[-1] and "layer0 (0.900)" in found.notes[-1]


def test_top1_agreement_judges_each_sample_on_its_own_scale_as_the_judge_does():
    # The second sample's scores are small beside the first's, but its own top two are far apart:
    # the classification judge counts it, so the search must too.
    reference = np.array([[1.0, 0.0, 0.0], [0.06, 0.03, 0.0]], dtype=np.float32)
    candidate = np.array([[1.0, 0.0, 0.0], [0.03, 0.06, 0.0]], dtype=np.float32)
    assert top1_agreement(reference, candidate, JUDGE.decision_margin) == 0.5


def test_calibration_notes_flag_few_images_and_undecided_ones():
    decided = np.eye(10, dtype=np.float32)[:4]
    assert any("only 4 calibration image" in n for n in calibration_notes(decided))
    undecided = np.full((20, 10), 0.1, dtype=np.float32)
    notes = calibration_notes(undecided)
    assert len(notes) == 1 and "cannot decide" in notes[0]
    assert calibration_notes(np.eye(10, dtype=np.float32)[np.arange(20) % 10]) == []


def _export_outliers(root: Path, target: str) -> tuple[int | str | None, dict]:
    """The outlier classifier exported to `target` int8 through the CLI with a folder of calibration PNGs."""
    checkpoint = outlier_fixture.write_checkpoint(root)
    digits, _ = tf.train_digits()
    scenes = tf.classification_scenes(np.random.default_rng(11), digits[:CALIBRATION_IMAGES], tf.CLASSIFIER.image_size)
    calibration = tf.save_scenes(root / "calibration", scenes)
    args = ["--checkpoint", str(checkpoint), "--image-size", str(tf.CLASSIFIER.image_size), "--target", target]
    with pytest.raises(SystemExit) as exc:
        cli.main([*args, "--precision", "int8", "--calibration", str(calibration), "--out", str(root / "out")])
    suffix = {"onnx": ".onnx", "tflite": ".tflite"}[target]
    report = Path(root / "out" / f"{tf.CLASSIFIER.name}_A_{tf.CLASSIFIER.image_size}_int8{suffix}.report.json")
    return exc.value.code, json.loads(report.read_text())


@pytest.fixture(scope="module")
def outlier_export(tmp_path_factory) -> dict:
    code, report = _export_outliers(tmp_path_factory.mktemp("outliers"), "onnx")
    assert code in (0, None)
    return report


def test_outlier_weights_break_plain_int8_and_the_chosen_mix_passes_the_judge(outlier_export):
    q = outlier_export["quantisation"]
    # Every layer int8: the outlier channels' ranges break agreement with fp32 below the judge's limit.
    assert q["all_int8_agreement"] < JUDGE.top1_agreement
    assert outlier_export["verdict"] == "pass"
    assert outlier_export["verification"]["task_metrics"]["top1_agreement"] >= JUDGE.top1_agreement
    # A few layers float, among them the expansions that hold the outlier channels.
    float_layers = q["float_layers"]
    assert q["passed"] and 1 <= len(float_layers) <= len(q["sensitivity"]) // 4
    assert any(f"stages.{s}.0/conv1_1x1" in layer for s in (0, 1, 2) for layer in float_layers)
    rows = q["sensitivity"]
    assert {r["layer"] for r in rows if r["kept_float"]} == set(float_layers)
    assert all(set(r) == {"layer", "op", "metric", "kept_float", "why"} for r in rows)
    assert [r["metric"] for r in rows] == sorted(r["metric"] for r in rows)


@pytest.fixture(scope="module")
def outlier_tflite_export(tmp_path_factory) -> dict:
    return _export_outliers(tmp_path_factory.mktemp("outliers_tflite"), "tflite")[1]


def test_tflite_int8_keeps_the_most_sensitive_layers_float_until_verification_passes(outlier_tflite_export):
    q = outlier_tflite_export["quantisation"]
    assert q["mixed_precision"] is True and q["method"] == "ai_edge_quantizer.recipe.static_wi8_ai8"
    rows = q["sensitivity"]
    assert all(set(r) == {"layer", "op", "metric", "kept_float", "why"} for r in rows)
    assert {r["op"] for r in rows} <= {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    assert [r["metric"] for r in rows] == sorted(r["metric"] for r in rows)
    # The float layers are the head of the ranking, and the outlier convolutions lead it.
    float_layers = q["float_layers"]
    assert float_layers == [r["layer"] for r in rows[: len(float_layers)]]
    assert q["passed"] and 1 <= len(float_layers) <= len(rows) // 4
    assert rows[0]["metric"] < 0.97 and q["agreement"] >= q["agreement_target"] > q["all_int8_agreement"]
    # Agreement alone saturates on the calibration images; the search goes on to the output cosine.
    assert q["output_cosine"] >= q["output_cosine_target"]
    # Held out (verification photos and noise, PyTorch as the reference), the int8 model passes the judge.
    assert outlier_tflite_export["verdict"] == "pass"
    assert outlier_tflite_export["verification"]["task_metrics"]["top1_agreement"] >= JUDGE.top1_agreement


def test_with_no_decisive_calibration_image_agreement_keeps_no_layer_float():
    # Random weights decide none of the images: agreement is 0.0 at every mix and says nothing, so
    # only the cosine target (when given) may keep layers float.
    found = choose(_table(10), lambda float_layers: MixScore(0.0, 0.99, judged=False), cosine_target=0.98)
    assert found.passed and found.float_layers == []
    assert choose(_table(10), lambda float_layers: MixScore(0.0, 0.9, judged=False)).float_layers == []
    needs_cosine = choose(_table(10), lambda float_layers: MixScore(0.0, 0.975 + len(float_layers) / 100, judged=False), cosine_target=0.98)
    assert needs_cosine.float_layers == ["layer0"]
