"""Detection verification compares something on every export, whatever NMS keeps.

A random-weight detector keeps no box at the default score threshold, so final-box checks alone
would compare empty sets; what each format's NMS op is given (every anchor's box and scores) is
read from the same artefact and judged numerically too.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mvit.exporters import api, cli

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target", ["onnx", "tflite", "coreml"])
def test_random_detector_compares_what_nms_was_given(tmp_path, target):
    result = api.export_model("ssdlite_mobilevit_xxs", target, tmp_path, precision="fp16", image_size=128)
    verification = result.report["verification"]
    assert result.verdict == "pass", result.report["failed"]
    assert verification["task_metrics"]["reference_detections"] == 0  # the situation this guards
    assert verification["task_metrics"]["pre_nms_compared_samples"] == len(verification["samples"])
    checked = {c["check"] for c in verification["checks"]}
    assert {"relative_error[pre_nms_boxes]", "relative_error[pre_nms_scores]", "cosine[pre_nms_scores]"} <= checked


def test_a_damaged_detector_fails_even_when_no_box_survives_nms(tmp_path, cli_run):
    result = api.export_model("ssdlite_mobilevit_xxs", "onnx", tmp_path, precision="fp32", image_size=128)
    model = onnx.load(str(result.path))
    # Damage the first head's box/class conv (the most anchors): scores and boxes change, NMS still keeps nothing.
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and "heads.0/loc_cls/pw" in n.name)
    inits = {i.name: i for i in model.graph.initializer}
    weight = inits[conv.input[1]]
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * 1.5, weight.name))
    onnx.save(model, str(result.path))
    code, out, _ = cli_run(cli.verify_main, str(result.path))
    assert code == 1 and " fail " in out and "pre_nms" in out
    report = json.loads(result.path.with_name(result.path.name + ".verify.json").read_text())
    assert report["verification"]["task_metrics"]["artefact_detections"] == 0


def test_a_runner_without_taps_and_no_boxes_is_not_a_pass():
    """A runner that cannot show what NMS was given (Apple's runtime) with no box to match: nothing was judged."""
    from dataclasses import asdict

    import torch

    from mvit.exporters.base import RunnerDefaults
    from mvit.exporters.verify import verify_runner
    from mvit.exporters.wrappers import build_export_module
    from mvit.models import create_model, fuse_batchnorm, get_spec
    from mvit.models.detection_postprocess import NmsSettings

    net = fuse_batchnorm(create_model("ssdlite_mobilevit_xxs"))
    options = {"nms": asdict(NmsSettings())}
    ref = build_export_module(net, "detection", 128, target="onnx", preprocess=None, options=options)

    class NoBoxes(RunnerDefaults):
        verified_by = "no-taps"

        def run(self, inputs):
            return {"boxes": np.zeros((1, 0, 4), np.float32), "scores": np.zeros((1, 0), np.float32), "class_ids": np.zeros((1, 0), np.int64)}

    spec = get_spec("ssdlite_mobilevit_xxs").preprocess.with_size(128)
    with torch.no_grad():
        report = verify_runner(NoBoxes(), ref, task="detection", preprocess=spec, precision="fp32", nms=options["nms"])
    assert report.verdict == "fail" and "compared_detections_or_pre_nms_values" in report.failed[0]
