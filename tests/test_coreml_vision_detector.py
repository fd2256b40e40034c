"""The Vision-ready CoreML detector: a pipeline of an ML Program and Core ML's NonMaximumSuppression
model, what `VNCoreMLRequest` turns into `VNRecognizedObjectObservation`s.

On Linux the pipeline runs through the MIL reference evaluator (the program) and
exporters/targets/coreml/reference/nms_model.py (the NMS model, written from the proto's documentation); that
module is tested here against a brute-force reading of the same documentation and against the
torchvision NMS verification uses. Apple's runtime is macOS-only and not exercised here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_utils import exit_code as _cli
from export_utils import assert_coreml_structure_ok

from mvit.exporters import api
from mvit.exporters.cli import main, verify_main
from mvit.exporters.samples import verification_samples
from mvit.exporters.targets import get_target
from mvit.exporters.targets.coreml.reference import MilReferenceError, MilReferenceRunner
from mvit.exporters.targets.coreml.reference.nms_model import kept_rows
from mvit.models.detection_postprocess import NmsSettings, select_detections

COREML = get_target("coreml")
SIZE = 128
# Softmax over 81 classes of a random-weight detector sits near 1/81 = 0.0123: at 128 px these
# thresholds keep about 260 and 110 of the 520 anchors (enough for the 200-box cap, and for IoU to matter).
LOW, MID = 0.013, 0.0131


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("vision")
    code = _cli(main, ["--target", "coreml", "--model", "ssdlite_mobilevit_xxs", "--image-size", str(SIZE), "--out", str(out)])
    assert code == 0
    return out / f"ssdlite_mobilevit_xxs_A_{SIZE}_fp16.mlpackage"


def _spec(path: Path):
    from coremltools.models.utils import load_spec

    return load_spec(str(path))


# -- the NMS model's semantics --------------------------------------------------------------------


def _brute_force(conf, boxes, iou_threshold, confidence_threshold, per_class, max_boxes):
    """The proto's PickTop, one box at a time in plain Python: drop boxes below the threshold, visit
    the rest best first, keep a box unless a kept box (of its label, per class) overlaps it by more
    than iou_threshold."""

    def corners(b):
        return b[0] - b[2] / 2, b[1] - b[3] / 2, b[0] + b[2] / 2, b[1] + b[3] / 2

    def iou(a, b):
        ax0, ay0, ax1, ay1 = corners(a)
        bx0, by0, bx1, by1 = corners(b)
        inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
        union = a[2] * a[3] + b[2] * b[3] - inter
        return inter / union if union > 0 else 0.0

    rows = [(max(c), int(np.argmax(c)), i) for i, c in enumerate(conf.tolist()) if max(c) >= confidence_threshold]
    kept: list[int] = []
    for _, label, i in sorted(rows, key=lambda r: (-r[0], r[2])):
        if len(kept) == max_boxes:
            break
        rivals = [k for k in kept if not per_class or int(np.argmax(conf[k])) == label]
        if all(iou(boxes[i].tolist(), boxes[k].tolist()) <= iou_threshold for k in rivals):
            kept.append(i)
    return kept


def _random_boxes(seed: int, n: int = 120, classes: int = 5):
    rng = np.random.default_rng(seed)
    conf = rng.dirichlet(np.ones(classes + 1), size=n)[:, 1:].astype(np.float32)  # background dropped
    centre = rng.uniform(0.2, 0.8, size=(n, 2))
    size = rng.uniform(0.05, 0.4, size=(n, 2))
    return conf, np.concatenate([centre, size], axis=1).astype(np.float32)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("per_class", [True, False])
@pytest.mark.parametrize("iou_threshold,confidence_threshold,max_boxes", [(0.5, 0.2, None), (0.3, 0.1, 7), (0.7, 0.4, None)])
def test_nms_semantics_match_brute_force(seed, per_class, iou_threshold, confidence_threshold, max_boxes):
    conf, boxes = _random_boxes(seed)
    got = kept_rows(conf, boxes, iou_threshold, confidence_threshold, per_class, max_boxes).tolist()
    assert got == _brute_force(conf, boxes, iou_threshold, confidence_threshold, per_class, max_boxes)
    assert 0 < len(got) < len(conf)  # something kept, something dropped: the case judged something


@pytest.mark.parametrize("seed", range(3))
def test_per_class_nms_matches_torchvision_best_class_selection(seed):
    """The independent implementation verification compares against: same kept set."""
    conf, boxes = _random_boxes(seed)
    mine = kept_rows(conf, boxes, 0.45, 0.15, per_class=True, max_boxes=20)
    xyxy = np.concatenate([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], axis=1)
    probs = np.concatenate([np.zeros((len(conf), 1), np.float32), conf], axis=1)
    ref_boxes, ref_scores, ref_classes = select_detections(torch.from_numpy(xyxy), torch.from_numpy(probs), NmsSettings(0.45, 0.15, 20), best_class_only=True)
    np.testing.assert_allclose(conf[mine].max(axis=1), ref_scores.numpy(), rtol=1e-6)
    np.testing.assert_allclose(xyxy[mine], ref_boxes.numpy(), atol=1e-6)
    assert (conf[mine].argmax(axis=1) + 1 == ref_classes.numpy()).all()


def test_documented_edge_cases():
    same = np.array([[0.5, 0.5, 0.2, 0.2]] * 2, np.float32)
    conf = np.array([[0.9, 0.0], [0.8, 0.0]], np.float32)
    # "Setting it to 1.0 means there will be no suppression based on IOU": identical boxes both kept.
    assert kept_rows(conf, same, 1.0, 0.0, per_class=True).tolist() == [0, 1]
    assert kept_rows(conf, same, 0.99, 0.0, per_class=True).tolist() == [0]
    # Per class: a box of another label is never suppressed; without it, it is.
    other = np.array([[0.9, 0.0], [0.0, 0.8]], np.float32)
    assert kept_rows(other, same, 0.5, 0.0, per_class=True).tolist() == [0, 1]
    assert kept_rows(other, same, 0.5, 0.0, per_class=False).tolist() == [0]
    # Boxes below the confidence threshold are dropped before the algorithm; equal to it stays.
    assert kept_rows(conf, same, 1.0, 0.8, per_class=True).tolist() == [0, 1]
    assert kept_rows(conf, same, 1.0, 0.85, per_class=True).tolist() == [0]


# -- the exported pipeline ------------------------------------------------------------------------


@pytest.mark.slow
def test_default_detector_is_a_vision_pipeline_and_verifies(package):
    from coremltools.proto import FeatureTypes_pb2

    spec = _spec(package)
    assert spec.WhichOneof("Type") == "pipeline"
    program, nms = spec.pipeline.models
    assert [program.WhichOneof("Type"), nms.WhichOneof("Type")] == ["mlProgram", "nonMaximumSuppression"]
    assert spec.specificationVersion == program.specificationVersion == nms.specificationVersion >= 7
    inputs = {f.name: f for f in spec.description.input}
    assert list(inputs) == ["image", "iouThreshold", "confidenceThreshold"]
    assert inputs["image"].type.WhichOneof("Type") == "imageType"
    for name in ("iouThreshold", "confidenceThreshold"):
        assert inputs[name].type.WhichOneof("Type") == "doubleType" and inputs[name].type.isOptional
    assert [o.name for o in spec.description.output] == ["confidence", "coordinates"]
    # The program hands NMS fp32 arrays: confidence [A, 80] (background dropped), coordinates [A, 4].
    stage_out = {o.name: o.type.multiArrayType for o in program.description.output}
    fp32 = FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert {n: (a.dataType, list(a.shape)[1:]) for n, a in stage_out.items()} == {"raw_confidence": (fp32, [80]), "raw_coordinates": (fp32, [4])}
    n = nms.nonMaximumSuppression
    assert n.pickTop.perClass and (n.iouThreshold, n.confidenceThreshold) == (0.5, pytest.approx(0.05))
    assert (n.confidenceInputFeatureName, n.coordinatesInputFeatureName) == ("raw_confidence", "raw_coordinates")
    assert (n.iouThresholdInputFeatureName, n.confidenceThresholdInputFeatureName) == ("iouThreshold", "confidenceThreshold")
    coco = (Path(__file__).parents[1] / "models" / "labels" / "coco.txt").read_text().split("\n")
    assert list(n.stringClassLabels.vector) == coco[1:81]
    meta = COREML.read_metadata(package)
    assert meta["com.apple.coreml.model.preview.type"] == "objectDetector"
    assert float(meta["iou_threshold"]) == 0.5 and float(meta["confidence_threshold"]) == pytest.approx(0.05)
    assert json.loads(meta["output_names"]) == ["confidence", "coordinates"]
    report = json.loads(package.with_name(package.name + ".report.json").read_text())
    assert report["verdict"] == "pass" and report["verified_by"] == "mil-reference"
    assert_coreml_structure_ok(report)  # COCO's 80 classes: no padding needed (test_coreml_validate.py pads 10)
    assert report["export_options"]["coreml_nms"] == "vision"
    # Random weights keep no box at 0.05: what NMS was given was compared, on every sample.
    v = report["verification"]
    assert v["task_metrics"]["pre_nms_compared_samples"] == 5
    assert v["outputs"]["pre_nms_scores"]["relative_error"] < 6e-2
    assert _cli(verify_main, [str(package)]) == 0


@pytest.mark.slow
def test_threshold_inputs_change_the_kept_boxes_as_the_semantics_say(package):
    runner = MilReferenceRunner(package)
    pixels = verification_samples(SIZE, SIZE, noise=False)[0].pixels
    boxes, scores = runner.pre_nms({"image": pixels})  # what the NMS model is given
    centre_size = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, boxes[:, 2:] - boxes[:, :2]], axis=1)
    assert len(runner.run({"image": pixels})["confidence"]) == 0  # 0.05: random weights keep nothing
    counts = {}
    for iou, conf in ((0.3, MID), (0.05, MID), (1.0, LOW)):
        out = runner.run({"image": pixels, "iouThreshold": np.float64(iou), "confidenceThreshold": np.float64(conf)})
        expected = _brute_force(scores, centre_size, iou, conf, True, 200)
        counts[iou, conf] = len(expected)
        np.testing.assert_allclose(out["confidence"], scores[expected], atol=1e-7)
        np.testing.assert_allclose(out["coordinates"], centre_size[expected], atol=1e-6)
        np.testing.assert_array_equal(out["class_ids"][0], scores[expected].argmax(axis=1) + 1)
    # A tighter IoU suppresses more; IoU 1.0 suppresses nothing, so only the 200-box cap applies.
    assert 0 < counts[0.05, MID] < counts[0.3, MID] < 200
    assert (scores.max(axis=1) >= LOW).sum() > counts[1.0, LOW] == 200
    with pytest.raises(MilReferenceError, match="iouThreshold"):
        runner.run({"image": pixels, "iouThreshold": np.float64(1.5)})


@pytest.mark.slow
def test_vision_export_is_byte_identical(package, tmp_path):
    again = api.export_model("ssdlite_mobilevit_xxs", "coreml", tmp_path, image_size=SIZE, verify=False).path
    files = sorted(p.relative_to(package) for p in package.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (package / rel).read_bytes() == (again / rel).read_bytes(), rel


@pytest.mark.slow
def test_program_form_still_exports_and_verifies(tmp_path):
    code = _cli(
        main,
        [
            "--target",
            "coreml",
            "--model",
            "ssdlite_mobilevit_xxs",
            "--image-size",
            str(SIZE),
            "--precision",
            "fp32",
            "--coreml-nms",
            "program",
            "--out",
            str(tmp_path),
        ],
    )
    assert code == 0
    path = tmp_path / f"ssdlite_mobilevit_xxs_A_{SIZE}_fp32_nmsprogram.mlpackage"
    assert _spec(path).WhichOneof("Type") == "mlProgram"
    assert COREML.op_histogram(path).get("non_maximum_suppression") == 1
    meta = COREML.read_metadata(path)
    assert json.loads(meta["model_outputs"]) == ["boxes", "scores", "class_ids"] and meta["nms_form"] == "program"
    report = json.loads(path.with_name(path.name + ".report.json").read_text())
    assert report["verdict"] == "pass" and report["verification"]["outputs"]["pre_nms_boxes"]["relative_error"] < 1e-4
    assert_coreml_structure_ok(report)


def test_coreml_nms_is_refused_where_it_does_not_apply(tmp_path, capsys):
    for argv in (
        ["--target", "onnx", "--coreml-nms", "program"],
        ["--coreml-nms", "program", "--no-nms"],
        ["--coreml-nms", "mil"],
        ["--model", "mobilevit_xxs", "--coreml-nms", "vision"],
    ):
        model = [] if "--model" in argv else ["--model", "ssdlite_mobilevit_xxs"]
        assert _cli(main, [*model, *argv, "--image-size", "64", "--out", str(tmp_path)]) == 2, argv
        assert "--coreml-nms" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_damaged_pipeline_fails(package, tmp_path):
    from coremltools.proto import Model_pb2

    def damaged(name: str, change) -> Path:
        copy = tmp_path / name / package.name
        shutil.copytree(package, copy)
        model_file = copy / "Data" / "com.apple.CoreML" / "model.mlmodel"
        spec = Model_pb2.Model()
        spec.ParseFromString(model_file.read_bytes())
        change(spec)
        model_file.write_bytes(spec.SerializeToString())
        return copy

    def rewire(spec):
        spec.pipeline.models[1].nonMaximumSuppression.confidenceInputFeatureName = "scores"

    def mismatch(spec):
        spec.pipeline.models[1].specificationVersion = 5

    for name, change, message in (("rewired", rewire, "does not output"), ("versions", mismatch, "specification versions")):
        with pytest.raises(MilReferenceError, match=message):
            MilReferenceRunner(damaged(name, change))
    # Random weights barely look at the image (a flipped channel order passes), so the damage the
    # numerics must catch is to the weights: every stored value's sign flipped.
    negated = damaged("negated", lambda spec: None)
    _negate_weights(negated / "Data" / "com.apple.CoreML" / "weights" / "weight.bin")
    assert _cli(verify_main, [str(negated)]) == 1


def _negate_weights(path: Path) -> None:
    """Flip the sign bit of every fp16/fp32 value in a MIL weight file, keeping its blob headers
    (64-byte aligned: sentinel 0xDEADBEEF, data type, size, offset)."""
    data = bytearray(path.read_bytes())
    flipped = 0
    for start in range(64, len(data), 64):
        sentinel, dtype, size, offset = np.frombuffer(bytes(data[start : start + 24]), dtype="<u4,<u4,<u8,<u8")[0]
        if sentinel != 0xDEADBEEF or dtype not in (1, 2):  # 1: fp16, 2: fp32
            continue
        width = 2 if dtype == 1 else 4
        values = np.frombuffer(bytes(data[offset : offset + size]), dtype=f"<u{width}").copy()
        values ^= np.array(1 << (8 * width - 1), dtype=f"<u{width}")
        data[offset : offset + size] = values.tobytes()
        flipped += 1
    assert flipped > 10
    path.write_bytes(bytes(data))
