"""TFLite exports of XXS models: verified under LiteRT, BN-free, rank <= 5, labelled, reproducible.

litert-torch takes 20-40 s per conversion here, so each export below is made once (module-scoped
fixtures) and checked from several sides. Combos not converted here (seg A, cls B, det B, fp16 for
seg/det) were run by hand: see docs/exporting-tflite.md.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from export_utils import decisive_checkpoint

from mvit.exporters.api import export_model
from mvit.exporters.base import ExportError
from mvit.exporters.targets import get_target

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

TFLITE = get_target("tflite")
# Softmax over 81 classes of a random detector sits near 1/81; this threshold keeps dozens of boxes.
LOW_SCORE = 0.0125


def _export(tmp_path_factory, name, model, **kwargs):
    out = tmp_path_factory.mktemp(name)
    ckpt = decisive_checkpoint(out / "ckpt.safetensors", model, kwargs.pop("config", "A"))
    return export_model(None, "tflite", out / "out", checkpoint=ckpt, **kwargs)


@pytest.fixture(scope="module")
def cls_fp32(tmp_path_factory):
    return _export(tmp_path_factory, "cls32", "mobilevit_xxs", precision="fp32", image_size=128)


@pytest.fixture(scope="module")
def cls_fp16(tmp_path_factory):
    return _export(tmp_path_factory, "cls16", "mobilevit_xxs", precision="fp16", image_size=128)


def _graph_ok(result) -> dict[str, int]:
    hist = TFLITE.op_histogram(result.path)
    assert not [op for op in hist if "BATCH_NORM" in op or "BATCHNORM" in op], hist
    assert "CONV_2D" in hist and "DEPTHWISE_CONV_2D" in hist
    assert TFLITE.max_tensor_rank(result.path) <= 5
    assert result.report["batchnorm_ops"] == [] and result.report["max_tensor_rank"] <= 5
    return hist


def test_classification_fp32_matches_pytorch_and_carries_metadata(cls_fp32):
    assert cls_fp32.verdict == "pass", cls_fp32.report["failed"]
    assert cls_fp32.report["verified_by"] == "litert"
    outputs = cls_fp32.report["verification"]["outputs"]
    assert outputs["probabilities"]["relative_error"] < 1e-4
    assert cls_fp32.report["verification"]["task_metrics"]["top1_judged_samples"] >= 3
    hist = _graph_ok(cls_fp32)
    # The RGB -> BGR flip and x/255 are folded into the stem conv (exporters/rewrites/fold_preprocessing.py):
    # no REVERSE_V2 left to split the XNNPACK partition, while the metadata still says what the input is.
    assert "REVERSE_V2" not in hist
    meta = TFLITE.read_metadata(cls_fp32.path)
    assert len(json.loads(meta["labels"])) == 1000
    pre = json.loads(meta["preprocess"])
    assert pre["scale"] == pytest.approx(1 / 255) and pre["channel_order"] == "BGR" and pre["in_graph"] is True
    assert meta["channel_order"] == "BGR" and meta["input_layout"] == "NCHW"
    assert json.loads(meta["output_names"]) == ["probabilities", "class_id"]
    runner = TFLITE.load(cls_fp32.path, num_threads=1)
    assert runner.verified_by == "litert" and set(runner.output_names) == {"probabilities", "class_id"}


def test_channel_order_matters(cls_fp32):
    """The same pixels with R and B swapped give another answer: the in-graph flip is not a no-op."""
    runner = TFLITE.load(cls_fp32.path, num_threads=1)
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, 128, 128)).astype(np.float32)
    x[:, 0] *= 0.2  # make the colour channels clearly different
    a, b = runner.run({"image": x})["probabilities"], runner.run({"image": x[:, ::-1].copy()})["probabilities"]
    # fp32 LiteRT matches PyTorch to ~1e-7 relative; a flip moves outputs far beyond that.
    assert not np.allclose(a, b, rtol=1e-3, atol=0)


def test_reexport_is_byte_identical(cls_fp32, tmp_path):
    ckpt = cls_fp32.path.parent.parent / "ckpt.safetensors"
    again = export_model(None, "tflite", tmp_path, checkpoint=ckpt, precision="fp32", image_size=128, verify=False)
    assert again.path.read_bytes() == cls_fp32.path.read_bytes()


def test_fp16_weights_halve_the_file_and_pass(cls_fp16, cls_fp32):
    assert cls_fp16.verdict == "pass", cls_fp16.report["failed"]
    assert cls_fp16.size_bytes < 0.6 * cls_fp32.size_bytes
    hist = _graph_ok(cls_fp16)
    assert hist.get("DEQUANTIZE", 0) >= hist["CONV_2D"]  # every conv weight is stored as fp16
    assert TFLITE.read_metadata(cls_fp16.path)["weights_precision"] == "fp16"


def test_segmentation_config_b_nhwc_input(tmp_path_factory):
    result = _export(tmp_path_factory, "segB", "deeplabv3_mobilevit_xxs", config="B", precision="fp32", image_size=128, nhwc=True)
    assert result.verdict == "pass", result.report["failed"]
    _graph_ok(result)
    meta = TFLITE.read_metadata(result.path)
    assert meta["input_layout"] == "NHWC" and json.loads(meta["labels"])[0] == "background"
    from ai_edge_litert.interpreter import Interpreter

    details = Interpreter(model_path=str(result.path)).get_signature_runner().get_input_details()
    assert list(details["image"]["shape"]) == [1, 128, 128, 3]
    assert result.report["verification"]["task_metrics"]["mask_miou"] >= 0.99


def test_detection_nms_inside_matches_reference_boxes(tmp_path_factory):
    nms = {"score_threshold": LOW_SCORE, "max_detections": 50}
    result = _export(tmp_path_factory, "det", "ssdlite_mobilevit_xxs", precision="fp32", image_size=192, nms=nms)
    assert result.verdict == "pass", result.report["failed"]
    hist = _graph_ok(result)
    assert hist.get("TFLite_Detection_PostProcess") == 1
    metrics = result.report["verification"]["task_metrics"]
    assert metrics["reference_detections"] > 0 and metrics["detection_recall"] == 1.0
    meta = TFLITE.read_metadata(result.path)
    assert json.loads(meta["nms"])["score_threshold"] == pytest.approx(LOW_SCORE)
    out = TFLITE.load(result.path, num_threads=1).run({"image": np.full((1, 3, 192, 192), 100.0, np.float32)})
    assert out["boxes"].shape == (1, 50, 4) and out["class_ids"].dtype == np.int32
    n = int(out["num_detections"][0])
    assert 0 < n <= 50 and (out["class_ids"][0, :n] >= 1).all() and (out["scores"][0, n:] == 0).all()
    assert (out["boxes"][0, :n, 2:] >= out["boxes"][0, :n, :2]).all()  # x1 <= x2, y1 <= y2


def test_not_a_tflite_file_is_a_clear_error(tmp_path):
    bogus = tmp_path / "x.tflite"
    bogus.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ExportError, match="not a TFLite flatbuffer"):
        TFLITE.op_histogram(bogus)


def test_runner_takes_a_batch(cls_fp32):
    runner = TFLITE.load(cls_fp32.path, num_threads=1)
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)).numpy() * 255
    both = runner.run({"image": x})["probabilities"]
    one = runner.run({"image": x[1:]})["probabilities"]
    assert both.shape == (2, 1000) and np.array_equal(both[1:], one)
