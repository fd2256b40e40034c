"""Apple's structural rules on every saved CoreML package (exporters/targets/coreml/validate.py).

A valid package of each kind (classifier, multifunction, the 10-class trained detector's Vision
pipeline) is exported through the CLI once; each negative test copies one, breaks one rule in its
saved spec (protobuf), and shows the validator names that rule. Through the CLI, `mvit-verify` on a
broken package and `mvit-export` of an unpadded Vision pipeline exit 1 naming the rule.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import trained_fixtures as tf
from cli_utils import exit_code
from export_utils import assert_coreml_structure_ok

from mvit.exporters import cli
from mvit.exporters.targets.coreml import pipeline as coreml_pipeline
from mvit.exporters.targets.coreml.validate import RULES, read_package_spec, validate_package

pytestmark = pytest.mark.slow  # three conversions, one verified by the MIL reference evaluator

FLOAT16, DOUBLE = 65552, 65600


def _package(out: Path) -> Path:
    (path,) = out.glob("*.mlpackage")
    return path


def _report(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".report.json").read_text())


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    made = {}
    root = tmp_path_factory.mktemp("valid")
    for kind, args in {
        "classifier": ["--model", "mobilevit_xxs", "--image-size", "64", "--no-verify"],
        "multifunction": ["--model", "mobilevit_xxs", "--image-size", "64,96", "--no-verify"],
        "detector": ["--checkpoint", str(tf.DETECTOR.checkpoint), "--image-size", str(tf.DETECTOR.image_size)],
    }.items():
        assert exit_code(cli.main, ["--target", "coreml", "--out", str(root / kind), *args]) == 0, kind
        made[kind] = _package(root / kind)
    return made


def _mutated(package: Path, tmp_path: Path, mutate: Callable) -> Path:
    """A copy of `package` whose saved spec `mutate` changed."""
    copy = tmp_path / package.name
    shutil.copytree(package, copy)
    spec = read_package_spec(copy)
    mutate(spec)
    manifest = json.loads((copy / "Manifest.json").read_text())
    model_file = copy / "Data" / manifest["itemInfoEntries"][manifest["rootModelIdentifier"]]["path"]
    model_file.write_bytes(spec.SerializeToString(deterministic=True))
    return copy


def _block(spec):
    program = spec.pipeline.models[0] if spec.WhichOneof("Type") == "pipeline" else spec
    function = next(iter(program.mlProgram.functions.values()))
    return next(iter(function.block_specializations.values()))


def _duplicate_output_name(spec):
    """The classifier as coremltools' rename_feature left it: softmax and classify both bind
    `probabilities` (the program still runs; MIL.proto forbids it)."""
    block = _block(spec)
    softmax = next(op for op in block.operations if op.type == "softmax")
    old, softmax.outputs[0].name = softmax.outputs[0].name, "probabilities"
    for op in block.operations:
        for argument in op.inputs.values():
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name" and binding.name == old:
                    binding.name = "probabilities"


def _undefined_input(spec):
    op = next(op for op in _block(spec).operations if op.type == "conv")
    op.inputs["x"].arguments[0].name = "never_defined"


def _renamed_input(spec):
    spec.description.input[0].name = "pixels"


def _fp16_image_at_spec6(spec):
    spec.specificationVersion = 6
    spec.description.input[0].type.imageType.colorSpace = 40  # GRAYSCALE_FLOAT16


def _fp16_output(spec):
    spec.description.output[0].type.multiArrayType.dataType = FLOAT16


def _ios17_op(spec):
    next(op for op in _block(spec).operations if op.type == "silu").type = "quantize"


def _declares_ios15(spec):
    spec.description.metadata.userDefined["minimum_deployment_target"] = "iOS15 / macOS12 / watchOS8 / tvOS15"


def _spec8(spec):
    spec.specificationVersion = 8


def _no_default(spec):
    spec.description.defaultFunctionName = "missing"


def _top_level_input(spec):
    spec.description.input.add().CopyFrom(spec.description.functions[0].input[0])


def _stage_input_type(spec):
    nms = spec.pipeline.models[1]
    next(f for f in nms.description.input if f.name == "iouThreshold").type.int64Type.SetInParent()
    spec.description.input[1].type.doubleType.SetInParent()  # the pipeline still says Double


def _nms(spec):
    return spec.pipeline.models[1]


def _unnamed_nms_input(spec):
    _nms(spec).nonMaximumSuppression.confidenceInputFeatureName = "scores"


def _int_threshold(spec):
    nms = _nms(spec)
    next(f for f in nms.description.input if f.name == "confidenceThreshold").type.int64Type.SetInParent()


def _mixed_nms_types(spec):
    next(f for f in _nms(spec).description.output if f.name == "coordinates").type.multiArrayType.dataType = DOUBLE


def _three_d_output(spec):
    output = next(f for f in _nms(spec).description.output if f.name == "confidence")
    output.type.multiArrayType.shapeRange.sizeRanges.add(lowerBound=1, upperBound=1)


def _extra_label(spec):
    _nms(spec).nonMaximumSuppression.stringClassLabels.vector.append("one too many")


def _ten_columns(spec):
    nms = _nms(spec)
    confidence = next(f for f in nms.description.input if f.name == "raw_confidence")
    confidence.type.multiArrayType.shape[-1] = 10


# rule -> (valid package it starts from, what breaks it)
BREAKS = {
    "mil.unique-output-names": ("classifier", _duplicate_output_name),
    "mil.defined-before-use": ("classifier", _undefined_input),
    "model.function-io-matches-description": ("classifier", _renamed_input),
    "model.fp16-features-need-spec7": ("classifier", _fp16_image_at_spec6),
    "mvit.fp32-interface": ("detector", _fp16_output),
    "mil.op-availability": ("classifier", _ios17_op),
    "mvit.declared-deployment-target": ("classifier", _declares_ios15),
    "multifunction.spec-version": ("multifunction", _spec8),
    "multifunction.default-function": ("multifunction", _no_default),
    "multifunction.no-top-level-io": ("multifunction", _top_level_input),
    "pipeline.feature-types": ("detector", _stage_input_type),
    "nms.feature-names": ("detector", _unnamed_nms_input),
    "nms.threshold-types": ("detector", _int_threshold),
    "nms.array-types": ("detector", _mixed_nms_types),
    "nms.output-shapes": ("detector", _three_d_output),
    "nms.labels-in-class-range": ("detector", _extra_label),
    "nms.class-count-multiple-of-80": ("detector", _ten_columns),
}


def test_every_rule_has_a_negative_test():
    assert sorted(BREAKS) == sorted(RULES)


@pytest.mark.parametrize("kind", ["classifier", "multifunction", "detector"])
def test_valid_packages_break_no_rule(packages, kind):
    result = validate_package(packages[kind])
    assert result.rules and not result.violations, [str(v) for v in result.violations]


@pytest.mark.parametrize("rule", sorted(BREAKS))
def test_a_package_breaking_a_rule_fails_it(packages, tmp_path, rule):
    kind, mutate = BREAKS[rule]
    result = validate_package(_mutated(packages[kind], tmp_path, mutate))
    assert rule in {v.rule for v in result.violations}, [str(v) for v in result.violations]
    (check,) = [c for c in result.checks() if c.name == f"coreml-structure:{rule}"]
    assert not check.passed and check.detail


def _tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*")):
        h.update(str(f.relative_to(path)).encode())
        if f.is_file():
            h.update(f.read_bytes())
            h.update(str(f.stat().st_mtime_ns).encode())
    return h.hexdigest()


def test_mvit_verify_fails_a_broken_package_naming_the_rule_and_writes_nothing_into_it(packages, tmp_path, cli_run):
    broken = _mutated(packages["classifier"], tmp_path, _duplicate_output_name)
    before = _tree_digest(broken)
    code, out, err = cli_run(cli.verify_main, str(broken))
    assert code == 1, out + err
    assert " fail " in out and "coreml-structure:mil.unique-output-names" in out, out
    assert "Traceback" not in err
    report = json.loads(broken.with_name(broken.name + ".verify.json").read_text())
    assert any("mil.unique-output-names" in v for v in report["structure"]["violations"])
    assert _tree_digest(broken) == before  # validation and verification only read the package


def test_the_10_class_detector_pads_its_class_axis_to_80_and_verifies(packages, cli_run):
    package = packages["detector"]
    report = _report(package)
    assert report["verdict"] == "pass", report["failed"]
    assert_coreml_structure_ok(report)
    spec = read_package_spec(package)
    stage, nms = spec.pipeline.models
    labels = list(nms.nonMaximumSuppression.stringClassLabels.vector)
    assert labels[:10] == tf.LABELS and len(labels) == 80
    assert labels[10:] == [f"padding_class_{i}" for i in range(10, 80)]
    raw_confidence = next(o for o in stage.description.output if o.name == "raw_confidence")
    assert list(raw_confidence.type.multiArrayType.shape)[-1] == 80
    preview = json.loads(spec.description.metadata.userDefined["com.apple.coreml.model.preview.params"])
    assert preview["labels"] == labels  # Xcode's preview names the NMS model's columns
    metrics = report["verification"]["task_metrics"]
    # Real digits were found and matched, and the padding columns never scored.
    assert metrics["matched_detections"] >= 5 and metrics["padding_columns_max_score"] == 0.0
    code, out, err = cli_run(cli.verify_main, str(package), "--checkpoint", str(tf.DETECTOR.checkpoint))
    assert code == 0 and " pass " in out, out + err


def test_export_of_an_unpadded_vision_pipeline_fails_naming_the_rule(tmp_path, cli_run, monkeypatch):
    """The pipeline as written without padding (10 columns): the export itself fails, exit 1."""
    monkeypatch.setattr(coreml_pipeline, "padded_class_count", lambda classes: classes)
    code, out, err = cli_run(
        cli.main,
        "--target",
        "coreml",
        "--checkpoint",
        str(tf.DETECTOR.checkpoint),
        "--image-size",
        str(tf.DETECTOR.image_size),
        "--no-verify",
        "--out",
        str(tmp_path),
    )
    assert code == 1, out + err
    assert "coreml-structure:nms.class-count-multiple-of-80" in out
    assert "nms.class-count-multiple-of-80" in " ".join(_report(_package(tmp_path))["failed"])
