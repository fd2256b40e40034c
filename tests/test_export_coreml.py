"""CoreML exports of XXS models: ML Program, BN-free, rank <= 5, ImageType preprocessing, labels,
classifier config, preview metadata, native NMS, reproducible.

Numerics on Linux come from the MIL reference evaluator (tests/test_mil_reference.py tests it in
depth); here one fp32 classifier and one detector are verified end to end through it. Apple's
runtime exists only on macOS: that test skips elsewhere, saying so.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

import numpy as np
import pytest
import torch
from export_utils import assert_coreml_structure_ok, decisive_checkpoint
from model_utils import randomize_

from mvit.exporters.api import export_model
from mvit.exporters.base import ExportError, ExportRequest
from mvit.exporters.preprocessing import normalise, preprocess_dict
from mvit.exporters.samples import verification_samples
from mvit.exporters.targets import get_target
from mvit.exporters.targets.coreml.target import _fold_channel_scale
from mvit.exporters.wrappers import build_export_module
from mvit.models import create_model, fuse_batchnorm, get_spec
from mvit.models.checkpoints import load_checkpoint
from mvit.models.detection_postprocess import NmsSettings, select_detections

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

COREML = get_target("coreml")
SIZES = {"mobilevit_xxs": 128, "deeplabv3_mobilevit_xxs": 128, "ssdlite_mobilevit_xxs": 192}
PREVIEW = {"mobilevit_xxs": "imageClassifier", "deeplabv3_mobilevit_xxs": "imageSegmenter", "ssdlite_mobilevit_xxs": "objectDetector"}


def _graph_ok(path) -> dict[str, int]:
    hist = COREML.op_histogram(path)
    assert not [op for op in hist if "batch_norm" in op], hist
    assert hist.get("conv", 0) > 10
    assert COREML.max_tensor_rank(path) <= 5
    return hist


# Softmax over 81 classes of a random detector sits near 1/81; this threshold keeps dozens of boxes.
NMS = {"score_threshold": 0.0125, "max_detections": 50}
# Three tasks x configs A and B; each case also covers one option, so the matrix stays at six
# conversions: fp32 + verification (classifier A, detector A), raw tensor input, RGB order, mask,
# decoded boxes without NMS.
CASES = [
    ("mobilevit_xxs", "A", {"precision": "fp32", "verify": True}),
    ("mobilevit_xxs", "B", {"raw_input": True}),
    ("deeplabv3_mobilevit_xxs", "A", {}),
    ("deeplabv3_mobilevit_xxs", "B", {"channel_order": "RGB", "mask": True}),
    ("ssdlite_mobilevit_xxs", "A", {"precision": "fp32", "nms": NMS}),
    ("ssdlite_mobilevit_xxs", "B", {"nms": False}),
]
_EXPORTS: dict[tuple[str, str], object] = {}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    def get(model: str, config: str):
        if (model, config) not in _EXPORTS:
            options = dict(next(o for m, c, o in CASES if (m, c) == (model, config)))
            out = tmp_path_factory.mktemp(f"{model}_{config}")
            ckpt = decisive_checkpoint(out / "ckpt.safetensors", model, config)
            options.setdefault("verify", False)
            _EXPORTS[model, config] = export_model(None, "coreml", out / "out", checkpoint=ckpt, image_size=SIZES[model], **options)
        return _EXPORTS[model, config]

    return get


@pytest.mark.parametrize("model,config,options", CASES, ids=[f"{m}-{c}" for m, c, _ in CASES])
def test_three_tasks_two_configs_export_with_metadata(exported, model, config, options):
    result = exported(model, config)
    assert result.path.name.endswith(".mlpackage") and (result.path / "Manifest.json").is_file()
    hist = _graph_ok(result.path)
    meta = COREML.read_metadata(result.path)
    labels = get_spec(model).default_labels()
    assert json.loads(meta["labels"]) == labels
    order = options.get("channel_order", "BGR")
    assert meta["channel_order"] == order
    if options.get("raw_input"):
        assert meta["input_type"] == "tensor"
    else:
        assert meta["input_type"] == "image" and meta["color_layout"] == order
        assert float(meta["image_input_scale"]) == pytest.approx(1 / 255)
        assert json.loads(meta["image_input_bias"]) == [0.0, 0.0, 0.0]
    # Xcode previews an image input only, and a detector only as the Vision pipeline (exporters/targets/coreml/preview.py).
    previewed = not options.get("raw_input") and options.get("nms") is not False
    assert meta.get("com.apple.coreml.model.preview.type") == (PREVIEW[model] if previewed else None)
    assert meta["minimum_deployment_target"].startswith("iOS16")
    # Apple's structural rules, fp32 at the interface included, whatever the task and option.
    assert_coreml_structure_ok(result.report)
    assert meta["author"] and meta["license"] and model in meta["short_description"]
    assert "com.github.apple.coremltools.conversion_date" not in meta
    # fp16 programs take fp32 inputs and cast them; fp32 programs have no cast at all.
    assert ("cast" in hist) == (options.get("precision", "fp16") == "fp16")
    if model == "mobilevit_xxs":
        assert json.loads(meta["classifier_labels"]) == labels
        assert json.loads(meta["model_outputs"]) == ["classLabel", "probabilities"]
        assert meta["classifier_probabilities_output"] == "probabilities"
    elif model == "deeplabv3_mobilevit_xxs":
        assert json.loads(meta["com.apple.coreml.model.preview.params"])["labels"] == labels
        # The class map `mask` goes beside the logits for Xcode's segmenter preview.
        assert json.loads(meta["model_outputs"]) == (["mask"] if options.get("mask") else ["logits", "mask"])
    elif options.get("nms") is False:
        assert "non_maximum_suppression" not in hist
        assert json.loads(meta["model_outputs"]) == ["boxes", "scores"]
    else:
        # The default detector is the Vision pipeline: MIL NMS gives way to a NonMaximumSuppression model.
        assert "non_maximum_suppression" not in hist and hist.get("model:nonMaximumSuppression") == 1
        assert json.loads(meta["model_outputs"]) == json.loads(meta["output_names"]) == ["confidence", "coordinates"]
        assert json.loads(meta["nms"])["iou_threshold"] == pytest.approx(0.5)
        assert meta["nms_form"] == "vision" and float(meta["iou_threshold"]) == pytest.approx(0.5)
    if options.get("verify"):
        assert result.verdict == "pass", result.report["failed"]
        assert result.report["verified_by"] == ("coreml-runtime" if sys.platform == "darwin" else "mil-reference")


def test_reexport_is_byte_identical(exported, tmp_path):
    a = exported("mobilevit_xxs", "A").path
    b = export_model(None, "coreml", tmp_path, checkpoint=a.parent.parent / "ckpt.safetensors", precision="fp32", image_size=128, verify=False).path
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for rel in files_a:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def test_fp32_classifier_matches_pytorch_and_fp16_weights_are_half(exported):
    fp32, fp16 = exported("mobilevit_xxs", "A"), exported("mobilevit_xxs", "B")  # same weight shapes
    assert fp32.report["verification"]["outputs"]["probabilities"]["relative_error"] < 1e-4
    assert fp32.report["verification"]["task_metrics"]["top1_judged_samples"] >= 3
    weights = lambda p: sum(f.stat().st_size for f in p.rglob("weight.bin"))  # noqa: E731
    assert weights(fp16.path) < 0.6 * weights(fp32.path)


@pytest.mark.parametrize("threshold", [None, 0.03])
def test_detection_pipeline_matches_reference(exported, threshold):
    """One photograph through the Vision pipeline (MIL reference + NMS model semantics on Linux)
    against the eager PyTorch decode + per-class NMS, at the stored confidence threshold and at one
    passed as the pipeline's `confidenceThreshold` input (the full 5-sample verification of a
    detector is slow in the evaluator)."""
    result = exported("ssdlite_mobilevit_xxs", "A")
    spec = get_spec("ssdlite_mobilevit_xxs")
    pixels = verification_samples(192, 192, noise=False)[0].pixels
    net, _ = load_checkpoint(result.path.parent.parent / "ckpt.safetensors")
    reference = build_export_module(fuse_batchnorm(net), "detection", 192, target="coreml", preprocess=None, options={"nms": NMS})
    with torch.no_grad():
        boxes, probs = reference.module(torch.from_numpy(normalise(pixels, spec.preprocess)))
    overrides = {} if threshold is None else {"score_threshold": threshold}
    settings = NmsSettings(**{**asdict(NmsSettings()), **NMS, **overrides})
    # Core ML's NMS model keeps each box under its top class (pickTop.perClass).
    ref_boxes, ref_scores, ref_classes = select_detections(boxes[0], probs[0], settings, best_class_only=True)
    feed = {"image": pixels} if threshold is None else {"image": pixels, "confidenceThreshold": np.float64(threshold)}
    out = COREML.load(result.path).run(feed)
    k = len(ref_scores)
    assert out["confidence"].shape == (k, 80) and out["coordinates"].shape == (k, 4)
    assert out["boxes"].shape == (1, k, 4) and out["class_ids"].shape == (1, k)
    valid = out["class_ids"][0] >= 1
    assert 5 < k <= NMS["max_detections"] and valid.all()
    order = np.argsort(-out["scores"][0][valid], kind="stable")
    np.testing.assert_allclose(out["scores"][0][valid][order], ref_scores.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["boxes"][0][valid][order], ref_boxes.numpy(), atol=1e-4)
    assert (out["class_ids"][0][valid][order] == ref_classes.numpy()).all()


def test_per_channel_std_is_folded_into_the_first_conv():
    """MobileNetV2 uses ImageNet mean/std: CoreML's single image scale cannot carry 1/std per channel,
    so it goes into the first conv's weights, exactly."""
    spec = get_spec("mobilenet_v2")
    fused = fuse_batchnorm(randomize_(create_model("mobilenet_v2")))
    request = ExportRequest(
        module=fused,
        model_name="mobilenet_v2",
        task="classification",
        input_shape=(1, 3, 128, 128),
        output_names=["logits"],
        labels=spec.default_labels(),
        preprocess=preprocess_dict(spec.preprocess, raw_input=False, in_graph=False),
    )
    folded = _fold_channel_scale(request)
    # Folded into the conv's weights: no extra module (a multiply wrapper) around the network.
    assert folded is not fused and sum(1 for _ in folded.modules()) == sum(1 for _ in fused.modules())
    pixels = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(0)) * 255
    mean = torch.tensor(spec.preprocess.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(spec.preprocess.std).reshape(1, 3, 1, 1)
    image_type_out = pixels * spec.preprocess.scale - mean  # what the ImageType computes
    with torch.no_grad():
        expected = fused((pixels * spec.preprocess.scale - mean) / std)
        got = folded(image_type_out)
        unfolded = fused(image_type_out)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(unfolded, expected, rtol=1e-2, atol=1e-4)


def test_not_a_package_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="not a .mlpackage"):
        COREML.read_metadata(tmp_path)


@pytest.mark.skipif(
    sys.platform != "darwin", reason="CoreML predict needs macOS (libcoremlpython is macOS-only); on Linux the MIL reference evaluator verifies CoreML exports"
)
def test_coreml_runtime_predict_matches_pytorch(tmp_path):
    ckpt = decisive_checkpoint(tmp_path / "cls.safetensors", "mobilevit_xxs")
    result = export_model(None, "coreml", tmp_path / "o", checkpoint=ckpt, precision="fp32", image_size=128)
    assert result.report["verified_by"] == "coreml-runtime" and result.verdict == "pass", result.report["failed"]
