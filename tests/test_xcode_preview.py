"""Which Xcode preview each artefact gets (issue 11, part 3), and the segmenter's class map.

A CoreML segmenter carries the class map Xcode's `imageSegmenter` preview reads (`mask`, int32,
one class per input pixel) beside the logits apps already read; verification judges it against the
PyTorch logits. The export report names the preview each artefact gets, or why there is none.
Xcode itself does not run here: what is checked is the package, not Xcode's rendering of it.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from export_utils import assert_coreml_structure_ok
from trained_fixtures import CLASSIFIER, SEGMENTER, heldout, segmentation_scores

from mvit.exporters.base import ExportOptions
from mvit.exporters.cli import main, verify_main
from mvit.exporters.targets.coreml.preview import (
    NO_PREVIEW,
    preview_for,
    preview_metadata,
    record_outputs,
    report_fields,
    with_class_map,
)
from mvit.exporters.targets.coreml.target import NMS_FORM_OPTION
from mvit.exporters.tasks import get_task
from mvit.exporters.tasks.base import SampleOutputs
from mvit.exporters.tolerances import tolerance_for
from mvit.models.detection_postprocess import NmsSettings

# One CoreML conversion of the trained segmenter, shared by the module.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def segmenter(tmp_path_factory):
    out = tmp_path_factory.mktemp("seg")
    code, stdout, stderr = _run(
        main, "--target", "coreml", "--checkpoint", str(SEGMENTER.checkpoint), "--image-size", str(SEGMENTER.image_size), "--out", str(out)
    )
    assert code == 0, stdout + stderr
    package = next(out.glob("*.mlpackage"))
    report = json.loads(package.with_name(package.name + ".report.json").read_text())
    return package, report


def _run(entry, *args: str) -> tuple[int, str, str]:
    """A CLI entry point in this process, as a shell would run it: (exit code, stdout, stderr).
    tests/cli_utils.run_main needs capsys, which a module-scoped fixture cannot take."""
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            entry(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_segmenter_report_names_its_preview_and_judges_the_class_map(segmenter):
    package, report = segmenter
    assert report["verdict"] == "pass", report["failed"]
    assert report["output_names"] == ["logits", "mask"]
    assert report["xcode_preview"] == "imageSegmenter" and "'mask'" in report["xcode_preview_note"]
    checks = {c["check"]: c for c in report["verification"]["checks"]}
    # The trained fixture has clear margins: the class map agrees with PyTorch on every judged pixel.
    assert checks["class_map_pixel_agreement"]["passed"] and checks["class_map_pixel_agreement"]["value"] == 1.0
    assert checks["class_map_miou"]["value"] >= checks["class_map_miou"]["limit"]
    assert report["op_histogram"]["reduce_argmax"] == 1


def test_segmenter_package_declares_the_preview_with_labels_and_an_int32_class_map(segmenter):
    from coremltools.models.utils import load_spec
    from coremltools.proto import FeatureTypes_pb2

    package, report = segmenter
    spec = load_spec(str(package))
    meta = dict(spec.description.metadata.userDefined)
    assert meta["com.apple.coreml.model.preview.type"] == "imageSegmenter"
    assert json.loads(meta["com.apple.coreml.model.preview.params"])["labels"] == json.loads(meta["labels"])
    assert json.loads(meta["output_names"]) == ["logits", "mask"]
    outputs = {o.name: o.type.multiArrayType for o in spec.description.output}
    assert list(outputs) == ["logits", "mask"]  # logits first: apps reading the first output see no change
    assert outputs["mask"].dataType == FeatureTypes_pb2.ArrayFeatureType.INT32
    assert list(outputs["mask"].shape) == [1, SEGMENTER.image_size, SEGMENTER.image_size]
    # An fp16 program still hands an app FLOAT32 logits (docs/exporting-coreml.md).
    assert outputs["logits"].dataType == FeatureTypes_pb2.ArrayFeatureType.FLOAT32
    assert_coreml_structure_ok(report)


def test_class_map_is_the_upsampled_argmax_of_the_logits_and_segments_held_out_scenes(segmenter):
    from mvit.exporters.targets.coreml.reference import MilReferenceRunner

    package, _ = segmenter
    pixels, masks = heldout("segmentation", count=4)
    out = MilReferenceRunner(package).run({"image": pixels.astype(np.float32)})
    from_mask = segmentation_scores(out["mask"], masks)
    from_logits = segmentation_scores(out["logits"], masks)
    assert from_mask["pixel_accuracy"] > 0.9, from_mask  # a trained segmenter, not noise
    assert abs(from_mask["pixel_accuracy"] - from_logits["pixel_accuracy"]) < 0.01


def test_mvit_verify_rechecks_the_class_map(segmenter, tmp_path):
    package, _ = segmenter
    code, stdout, stderr = _run(verify_main, str(package), "--checkpoint", str(SEGMENTER.checkpoint))
    assert code == 0, stdout + stderr
    again = json.loads(package.with_name(package.name + ".verify.json").read_text())
    assert any(c["check"] == "class_map_pixel_agreement" and c["passed"] for c in again["verification"]["checks"])


def test_onnx_report_says_xcode_previews_coreml_only(tmp_path):
    code, stdout, stderr = _run(
        main, "--target", "onnx", "--checkpoint", str(CLASSIFIER.checkpoint), "--image-size", str(CLASSIFIER.image_size), "--out", str(tmp_path)
    )
    assert code == 0, stdout + stderr
    report = json.loads(next(tmp_path.glob("*.report.json")).read_text())
    assert report["xcode_preview"] is None and "CoreML" in report["xcode_preview_note"]
    assert report["output_names"] == ["probabilities", "class_id"]


# --- which preview each kind of package gets (no conversion) -------------------------------------

NMS = NmsSettings()


@pytest.mark.parametrize(
    ("task", "options", "expected"),
    [
        ("classification", ExportOptions(), "imageClassifier"),
        ("classification", ExportOptions(raw_input=True), None),
        ("segmentation", ExportOptions(), "imageSegmenter"),
        ("segmentation", ExportOptions(mask=True), "imageSegmenter"),
        ("segmentation", ExportOptions(raw_input=True), None),
        ("detection", ExportOptions(nms=NMS), "objectDetector"),
        ("detection", ExportOptions(nms=NMS, target_options=((NMS_FORM_OPTION, "vision"),)), "objectDetector"),
        ("detection", ExportOptions(nms=NMS, target_options=((NMS_FORM_OPTION, "program"),)), None),
        ("detection", ExportOptions(), None),  # --no-nms / --raw-detection
        ("generic", ExportOptions(), None),
    ],
    ids=[
        "classifier",
        "classifier-raw-input",
        "segmenter",
        "segmenter-mask",
        "segmenter-raw-input",
        "detector-vision-default",
        "detector-vision",
        "detector-program",
        "detector-no-nms",
        "custom-network",
    ],
)
def test_preview_per_package_kind(task, options, expected):
    preview = preview_for(task, options)
    assert preview.type == expected
    assert preview.note  # what it reads, or why there is none
    request = SimpleNamespace(
        task=task, options=options, labels=["a", "b"], metadata={}, output_names=["logits"] if task == "segmentation" and not options.mask else ["out"]
    )
    meta = preview_metadata(request)
    assert meta.get("com.apple.coreml.model.preview.type") == expected
    assert ("xcode_preview" in meta) == (expected is None)
    assert report_fields(meta)["xcode_preview"] == expected
    if task == "generic":
        assert meta["xcode_preview"] == NO_PREVIEW


def test_only_a_logits_segmenter_gains_the_class_map_output():
    def names(task, outputs):
        request = SimpleNamespace(task=task, options=ExportOptions(), labels=["a"], output_names=outputs, metadata={"output_names": json.dumps(outputs)})
        _, converted = with_class_map(task, torch.nn.Identity(), outputs)
        record_outputs(request, converted)
        return converted, json.loads(request.metadata["output_names"])

    assert names("segmentation", ["logits"]) == (["logits", "mask"], ["logits", "mask"])
    assert names("segmentation", ["mask"]) == (["mask"], ["mask"])  # --mask already is the class map
    assert names("classification", ["probabilities"]) == (["probabilities"], ["probabilities"])


def test_a_segmenter_without_the_class_map_says_so():
    """A package converted another way (no class map) still declares the preview, and its note says what is missing."""
    request = SimpleNamespace(
        task="segmentation", options=ExportOptions(), labels=["a"], output_names=["logits"], metadata={"output_names": json.dumps(["logits"])}
    )
    meta = preview_metadata(request)
    assert meta["com.apple.coreml.model.preview.type"] == "imageSegmenter"
    assert "no class map" in meta["xcode_preview_note"]


def test_a_wrong_class_map_fails_verification():
    """The judge reads the class map, so a package whose map disagrees with its logits fails."""
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(1, 3, 8, 8)).astype(np.float32) * 10  # clear margins at this scale

    right = F.interpolate(torch.from_numpy(logits), size=(32, 32), mode="bilinear", align_corners=False).argmax(1).numpy()

    def verdict(class_map):
        judge = get_task("segmentation").judge(tolerance_for("fp16"), ExportOptions(), False)
        judge.add(SampleOutputs({"logits": logits}, {"logits": logits, "mask": class_map.astype(np.int32)}, lambda: None))
        return {c.name: c.passed for c in judge.finish().checks}

    assert verdict(right)["class_map_pixel_agreement"]
    assert not verdict((right + 1) % 3)["class_map_pixel_agreement"]
