"""ONNX exports of XXS models for all three tasks: verified, BN-free, rank <= 5, labelled, reproducible."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from export_utils import decisive_checkpoint

from mvit.exporters.api import export_model
from mvit.exporters.targets import get_target

ONNX = get_target("onnx")


def _graph_ok(result) -> None:
    hist = ONNX.op_histogram(result.path)
    assert "BatchNormalization" not in hist and "Conv" in hist
    assert ONNX.max_tensor_rank(result.path) <= 5
    assert result.report["max_tensor_rank"] <= 5 and result.report["batchnorm_ops"] == []
    assert result.report_path.is_file()
    assert json.loads(result.report_path.read_text())["verdict"] == result.report["verdict"]


@pytest.mark.parametrize("config", ["A", "B"])
def test_classification_passes_and_carries_metadata(tmp_path, config):
    ckpt = decisive_checkpoint(tmp_path / "cls.safetensors", "mobilevit_xxs", config)
    result = export_model(None, "onnx", tmp_path / "out", checkpoint=ckpt, precision="fp32", image_size=128)
    assert result.verdict == "pass", result.report["failed"]
    assert result.report["verified_by"] == "onnxruntime"
    assert result.report["config"] == config
    _graph_ok(result)
    meta = ONNX.read_metadata(result.path)
    labels = json.loads(meta["labels"])
    assert len(labels) == 1000
    pre = json.loads(meta["preprocess"])
    assert pre["scale"] == pytest.approx(1 / 255) and pre["channel_order"] == "BGR" and pre["in_graph"] is True
    assert json.loads(meta["output_names"]) == ["probabilities", "class_id"]
    assert onnx.load(str(result.path)).opset_import[0].version >= 17
    metrics = result.report["verification"]["task_metrics"]
    assert metrics["top1_judged_samples"] >= 3 and metrics["top1_agreement"] == 1.0


def test_fp16_reexport_is_byte_identical_and_passes_fp16_tolerance(tmp_path):
    ckpt = decisive_checkpoint(tmp_path / "cls.safetensors", "mobilevit_xxs")
    a = export_model(None, "onnx", tmp_path / "a", checkpoint=ckpt, precision="fp16", image_size=128)
    b = export_model(None, "onnx", tmp_path / "b", checkpoint=ckpt, precision="fp16", image_size=128, verify=False)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert a.report["sha256"] == b.report["sha256"]
    assert a.verdict == "pass", a.report["failed"]
    assert a.report["verification"]["tolerances"]["relative_error"] > 1e-3
    # XXS has 1.27M parameters: 5.1 MB as fp32, about half as fp16.
    assert a.size_bytes < 0.6 * 1_272_024 * 4


def test_random_weight_reexport_is_byte_identical(tmp_path):
    a = export_model("mobilevit_xxs", "onnx", tmp_path / "a", precision="fp32", image_size=128, verify=False)
    b = export_model("mobilevit_xxs", "onnx", tmp_path / "b", precision="fp32", image_size=128, verify=False)
    assert a.path.read_bytes() == b.path.read_bytes()


@pytest.mark.parametrize("config,mask", [("A", False), ("B", True)])
def test_segmentation(tmp_path, config, mask):
    ckpt = decisive_checkpoint(tmp_path / "seg.safetensors", "deeplabv3_mobilevit_xxs", config)
    result = export_model(None, "onnx", tmp_path / "out", checkpoint=ckpt, precision="fp32", image_size=128, mask=mask)
    assert result.verdict == "pass", result.report["failed"]
    _graph_ok(result)
    assert result.report["output_names"] == (["mask"] if mask else ["logits"])
    assert json.loads(ONNX.read_metadata(result.path)["labels"])[0] == "background"
    out = ONNX.load(result.path).run({"image": np.full((1, 3, 128, 128), 128.0, np.float32)})
    assert out["mask" if mask else "logits"].shape == ((1, 128, 128) if mask else (1, 21, 8, 8))
    assert result.report["verification"]["task_metrics"]["mask_miou"] >= 0.99


def test_detection_with_nms_matches_reference_boxes(tmp_path):
    ckpt = decisive_checkpoint(tmp_path / "det.safetensors", "ssdlite_mobilevit_xxs")
    result = export_model(None, "onnx", tmp_path / "out", checkpoint=ckpt, precision="fp32", image_size=192)
    assert result.verdict == "pass", result.report["failed"]
    _graph_ok(result)
    assert "NonMaxSuppression" in ONNX.op_histogram(result.path)
    metrics = result.report["verification"]["task_metrics"]
    assert metrics["reference_detections"] > 0 and metrics["matched_detections"] == metrics["reference_detections"]
    out = ONNX.load(result.path).run({"image": np.zeros((1, 3, 192, 192), np.float32)})
    assert set(out) == {"boxes", "scores", "class_ids", "batch_index"}
    assert out["boxes"].shape[1] == 4 and (out["class_ids"] >= 1).all()


def test_raw_detection_writes_anchors(tmp_path):
    result = export_model("ssdlite_mobilevit_xxs", "onnx", tmp_path, precision="fp32", image_size=128, config="B", raw_detection=True)
    assert result.verdict == "pass", result.report["failed"]
    anchors = np.load(result.path.with_name(result.path.name + ".anchors.npy"))
    out = ONNX.load(result.path).run({"image": np.zeros((1, 3, 128, 128), np.float32)})
    assert anchors.shape == (out["box_offsets"].shape[1], 4) and out["class_logits"].shape[2] == 81


def test_dynamic_batch_and_raw_input(tmp_path):
    result = export_model("mobilevit_xxs", "onnx", tmp_path, precision="fp32", image_size=128, dynamic_batch=True, raw_input=True)
    assert result.verdict == "pass", result.report["failed"]
    assert json.loads(ONNX.read_metadata(result.path)["preprocess"])["raw_input"] is True
    runner = ONNX.load(result.path)
    x = np.random.default_rng(0).random((2, 3, 128, 128), dtype=np.float32)
    both = runner.run({"image": x})["probabilities"]
    one = runner.run({"image": x[1:]})["probabilities"]
    assert both.shape == (2, 1000)
    np.testing.assert_allclose(both[1:], one, rtol=1e-5, atol=1e-7)
