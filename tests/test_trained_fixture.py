"""The trained fixtures through the CLI, as a user runs it: every target passes at fp16 (the
default) and at fp32, and real defects (flipped channels, perturbed weights) still fail at fp16.

Random weights hide exactly these bugs (issue 9): fp16-rounded fused biases failed a real
fine-tune while every random-weight test passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trained_fixtures as tf
from safetensors.torch import load_file, save_file

from mvit.exporters import api, cli
from mvit.exporters.targets import get_target
from mvit.exporters.verify import verify_runner
from mvit.models import fuse_batchnorm

# Conversion-heavy: runs in CI; `pytest -m "not slow"` skips it for a quick check.
pytestmark = pytest.mark.slow

MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")
TARGETS = ("coreml", "onnx", "tflite")
# Every weight times (1 + PERTURBATION * N(0, 1)): a subtly damaged copy of the weights. On the
# fixture's fp16 exports it keeps every judged top-1 yet costs 0.086 relative error, beyond the
# fp16 limit (exporters/tolerances.py); fp16 rounding itself costs 0.005.
PERTURBATION = 0.01


def export(capsys, fixture: tf.Fixture, out: Path, *args: str) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exc:
        cli.main(["--checkpoint", str(fixture.checkpoint), "--image-size", str(fixture.image_size), "--out", str(out), *args])
    stdout, stderr = capsys.readouterr()
    return exc.value.code, stdout.splitlines(), stderr


def reports(out: Path) -> dict[str, dict]:
    found = {}
    for path in out.glob("*.report.json"):
        report = json.loads(path.read_text())
        found[report["target"]] = report
    return found


def assert_all_pass(code: int, lines: list[str], err: str, precision: str) -> None:
    assert code == 0, "\n".join(lines) + err
    assert len(lines) == len(TARGETS), lines
    for line in lines:
        assert f"_{precision}." in line and "  pass by " in line, line
    assert "RANDOM weights" not in err


@pytest.fixture(scope="module")
def classifier_fp16(tmp_path_factory) -> Path:
    """The default export (fp16), all targets, through the installed `mvit-export` script."""
    out = tmp_path_factory.mktemp("classifier_fp16")
    proc = subprocess.run(
        [str(MVIT_EXPORT), "--checkpoint", str(tf.CLASSIFIER.checkpoint), "--target", "all", "--image-size", str(tf.CLASSIFIER.image_size), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert_all_pass(proc.returncode, proc.stdout.splitlines(), proc.stderr, "fp16")
    return out


TRAINED = list(tf.FIXTURES.values())  # all three are committed


def test_fixture_checkpoints_are_small_and_match_their_recorded_accuracy():
    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from make_trained_fixtures import evaluate

    from mvit.models.checkpoints import load_checkpoint

    metrics = tf.recorded_metrics()
    assert tf.CLASSIFIER in TRAINED
    for fixture in TRAINED:
        assert fixture.checkpoint.stat().st_size < 10 * 2**20
        assert metrics[fixture.task]["model"] == fixture.name
    model, info = load_checkpoint(tf.CLASSIFIER.checkpoint)
    assert info.channel_order == "BGR" and info.labels == tf.LABELS
    measured = evaluate("classification", model)["top1_accuracy"]
    assert measured == pytest.approx(metrics["classification"]["heldout"]["top1_accuracy"], abs=1e-9)
    assert measured > 0.9  # a network that really classifies (ten classes: chance is 0.1)
    # The segmenter and detector really segment and detect: well above what a constant output scores.
    assert metrics["segmentation"]["heldout"]["miou"] > 0.3
    assert metrics["detection"]["heldout"]["recall"] > 0.4


def test_heldout_scenes_are_deterministic_and_real_photos():
    a, labels = tf.heldout("classification", 8)
    b, _ = tf.heldout("classification", 8)
    assert np.array_equal(a, b) and a.shape == (8, 3, 64, 64)
    assert np.array_equal(a, np.round(a)) and a.min() >= 0 and a.max() <= 255
    assert a.std() > 20 and len(set(labels.tolist())) > 1


def test_classifier_default_fp16_passes_in_every_target(classifier_fp16):
    found = reports(classifier_fp16)
    assert sorted(found) == sorted(TARGETS)
    for report in found.values():
        metrics = report["verification"]["task_metrics"]
        # A pass that judged no decision would prove nothing: trained weights give decisive outputs.
        assert metrics["top1_judged_samples"] >= 1, report["target"]
        assert metrics["top1_agreement"] == 1.0


@pytest.mark.slow
def test_classifier_fp32_passes_in_every_target(tmp_path, capsys):
    code, lines, err = export(capsys, tf.CLASSIFIER, tmp_path, "--target", "all", "--precision", "fp32")
    assert_all_pass(code, lines, err, "fp32")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("fixture", [tf.SEGMENTER, tf.DETECTOR], ids=lambda f: f.task)
def test_segmenter_and_detector_pass_in_every_target(tmp_path, capsys, fixture, precision):
    code, lines, err = export(capsys, fixture, tmp_path, "--target", "all", "--precision", precision)
    assert_all_pass(code, lines, err, precision)
    if fixture.task == "detection":
        for report in reports(tmp_path).values():
            # Real boxes, so the box checks compared something.
            assert report["verification"]["task_metrics"]["matched_detections"] >= 1, report["target"]


def perturbed_checkpoint(path: Path) -> Path:
    state = load_file(tf.CLASSIFIER.checkpoint)
    from safetensors import safe_open

    with safe_open(tf.CLASSIFIER.checkpoint, "pt") as f:
        metadata = f.metadata()
    gen = torch.Generator().manual_seed(0)
    for name, tensor in state.items():
        if tensor.is_floating_point() and not name.endswith(("running_mean", "running_var")):
            tensor.mul_(1 + PERTURBATION * torch.randn(tensor.shape, generator=gen))
    save_file(state, path, metadata=metadata)
    return path


@pytest.mark.parametrize("target", TARGETS)
def test_perturbed_weights_fail_mvit_verify_at_fp16(classifier_fp16, tmp_path, capsys, target):
    other = perturbed_checkpoint(tmp_path / "perturbed.safetensors")
    (artefact,) = [p for p in classifier_fp16.iterdir() if p.name.endswith(get_target(target).suffix)]
    with pytest.raises(SystemExit) as exc:
        cli.verify_main([str(artefact), "--checkpoint", str(other)])
    out, _ = capsys.readouterr()
    assert exc.value.code == 1, out
    assert " fail by " in out and "relative_error[" in out


@pytest.mark.parametrize("target", TARGETS)
def test_flipped_channels_fail_at_fp16(tmp_path, target):
    """An artefact that feeds the network RGB while its weights expect BGR."""
    flipped = api.export_model(
        None, target, tmp_path, checkpoint=tf.CLASSIFIER.checkpoint, precision="fp16", image_size=tf.CLASSIFIER.image_size, channel_order="RGB", verify=False
    )
    resolved = api.resolve_model(None, checkpoint=tf.CLASSIFIER.checkpoint, image_size=tf.CLASSIFIER.image_size)
    assert resolved.preprocess.channel_order == "BGR"
    _, reference = api.build_for_target(resolved, fuse_batchnorm(resolved.net), target, {})
    report = verify_runner(get_target(target).load(flipped.path), reference, task="classification", preprocess=resolved.preprocess, precision="fp16")
    assert report.verdict == "fail"
    assert any(f.startswith("relative_error[probabilities]") for f in report.failed), report.failed


def test_onnx_fp16_keeps_biases_and_norms_fp32(classifier_fp16):
    """fp16-rounded BN-fused biases failed a real fine-tune (issue 9); only layer weights go to fp16."""
    import onnx

    (path,) = classifier_fp16.glob("*.onnx")
    model = onnx.load(str(path))
    stored = {i.name: i.data_type for i in model.graph.initializer}
    kinds: dict[tuple[str, int], set[int]] = {}
    for node in model.graph.node:
        for slot, name in enumerate(node.input):
            dtype = stored.get(f"{name}__fp16", stored.get(name))
            if dtype is not None and node.op_type in ("Conv", "Gemm", "LayerNormalization"):
                kinds.setdefault((node.op_type, slot), set()).add(dtype)
    half, single = onnx.TensorProto.FLOAT16, onnx.TensorProto.FLOAT
    assert kinds[("Conv", 1)] == {half} and kinds[("Gemm", 1)] == {half}
    assert kinds[("Conv", 2)] == {single} and kinds[("Gemm", 2)] == {single}
    assert kinds[("LayerNormalization", 1)] == kinds[("LayerNormalization", 2)] == {single}
