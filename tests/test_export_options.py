"""Options that belong to one target, NMS settings, custom networks, and what reports record."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from mvit.exporters import api
from mvit.exporters.base import ExportError
from mvit.exporters.targets import get_target


def test_layout_options_of_other_targets_are_dropped_not_recorded(tmp_path):
    result = api.export_model("mobilevit_xxs", "onnx", tmp_path, precision="fp32", image_size=64, nhwc=True, verify=False)
    assert result.report["input"]["layout"] == "NCHW"
    assert "nhwc" not in result.report["export_options"]
    assert "nhwc" not in result.path.name


def test_dynamic_batch_with_nms_inside_is_refused(tmp_path):
    with pytest.raises(ExportError, match="--dynamic-batch with NMS"):
        api.export_model("ssdlite_mobilevit_xxs", "onnx", tmp_path, image_size=128, dynamic_batch=True)


def test_unknown_nms_setting_is_one_clear_error(tmp_path):
    with pytest.raises(ExportError, match="unknown NMS setting"):
        api.export_model("ssdlite_mobilevit_xxs", "onnx", tmp_path, image_size=128, nms={"iou": 0.3})


def test_recorded_output_names_are_the_artefacts_own(tmp_path):
    result = api.export_model("ssdlite_mobilevit_xxs", "onnx", tmp_path, precision="fp32", image_size=128, verify=False)
    meta = get_target("onnx").read_metadata(result.path)
    assert json.loads(meta["output_names"]) == ["boxes", "scores", "class_ids", "batch_index"]
    assert result.report["output_names"] == json.loads(meta["output_names"])


def test_custom_factory_export_can_be_verified_again(tmp_path, monkeypatch):
    (tmp_path / "tiny_net.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.BatchNorm2d(4), torch.nn.ReLU())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = api.export_model("tiny_net:build", "onnx", tmp_path / "out", precision="fp32", image_size=32)
    assert result.verdict == "pass"
    # The artefact names its factory, but opening a file must never import code: the user names it.
    with pytest.raises(ExportError, match="never imports code named by a file"):
        api.verify_artefact(result.path, write=False)
    report = api.verify_artefact(result.path, "tiny_net:build", write=False)
    assert report["verdict"] == "pass" and report["model"] == "tiny_net:build"


def test_a_crashing_verifier_is_one_error_and_leaves_no_stale_report(tmp_path, monkeypatch, shared_export):
    shared = shared_export("mobilevit_xxs", "onnx", precision="fp32", image_size=64)
    first = dataclasses.replace(shared, path=Path(shutil.copy(shared.path, tmp_path)), report_path=Path(shutil.copy(shared.report_path, tmp_path)))
    assert first.report_path.exists()

    def crash(*args, **kwargs):
        raise RuntimeError("runtime fell over\nsecond line")

    monkeypatch.setattr(api, "run_verification", crash)
    with pytest.raises(ExportError, match=r"verifying mobilevit_xxs_A_64_fp32.onnx failed: RuntimeError: runtime fell over$"):
        api.export_model("mobilevit_xxs", "onnx", tmp_path, precision="fp32", image_size=64)
    # The failed export never reached its final name: the first artefact and its report stand, and agree.
    assert first.report_path.exists() and json.loads(first.report_path.read_text())["sha256"] == api.artefact_sha256(first.path)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_cli_refuses_a_layout_flag_for_a_target_without_it(tmp_path):
    from mvit.exporters.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--target", "onnx", "--nhwc", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    assert not (tmp_path / "out").exists()


def test_fp16_detector_boxes_are_compared_not_vacuous(tmp_path):
    """fp16 judges only reference boxes above threshold + fp16 score tolerance; with sharpened
    class scores there are such boxes, so the CoreML fp16 NMS path is really checked."""
    from export_utils import decisive_checkpoint

    ckpt = decisive_checkpoint(tmp_path / "det.safetensors", "ssdlite_mobilevit_xxs")
    result = api.export_model(
        None, "coreml", tmp_path / "out", checkpoint=ckpt, precision="fp16", image_size=128, nms={"score_threshold": 0.05, "max_detections": 50}
    )
    metrics = result.report["verification"]["task_metrics"]
    assert result.verdict == "pass", result.report["failed"]
    assert metrics["reference_detections"] > 0, "no confident reference box: the check would be vacuous"
    assert metrics["matched_detections"] == metrics["reference_detections"]
