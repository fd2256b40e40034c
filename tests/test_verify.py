"""Verification must agree on real photographs and must be able to fail."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from export_utils import decisive_checkpoint

from mvit.exporters import api, cli
from mvit.exporters.preprocessing import normalise
from mvit.exporters.samples import PHOTOS, verification_samples
from mvit.exporters.targets import get_target
from mvit.exporters.verify import verify_runner
from mvit.models import fuse_batchnorm
from mvit.models.checkpoints import load_checkpoint

ONNX = get_target("onnx")


@pytest.fixture(scope="module")
def cls_export(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    ckpt = decisive_checkpoint(tmp / "cls.safetensors", "mobilevit_xxs")
    result = api.export_model(None, "onnx", tmp / "out", checkpoint=ckpt, precision="fp32", image_size=128)
    return tmp, ckpt, result


def test_samples_are_real_photos_plus_noise():
    samples = verification_samples(146, 128)
    assert [s.name for s in samples[: len(PHOTOS)]] == list(PHOTOS)
    for s in samples:
        assert s.pixels.shape == (1, 3, 128, 128) and s.pixels.dtype == np.float32
        assert np.array_equal(s.pixels, np.round(s.pixels)) and 0 <= s.pixels.min() and s.pixels.max() <= 255
    assert samples[0].pixels.std() > 20  # a photograph, not a flat image


def test_real_photo_same_top1_through_pytorch_and_onnx(cls_export):
    _, ckpt, result = cls_export
    model, _ = load_checkpoint(ckpt)
    fused = fuse_batchnorm(model)
    resolved = api.resolve_model(None, checkpoint=ckpt, image_size=128)
    runner = ONNX.load(result.path)
    for sample in verification_samples(resolved.preprocess.resize_shortest, 128, noise=False):
        with torch.no_grad():
            logits = fused(torch.from_numpy(normalise(sample.pixels, resolved.preprocess)))
        onnx_out = runner.run({"image": sample.pixels})
        assert int(onnx_out["class_id"][0]) == int(logits.argmax())
        np.testing.assert_allclose(onnx_out["probabilities"][0], logits.softmax(-1)[0].numpy(), atol=1e-6)


def _reference_for(ckpt, channel_order=None):
    resolved = api.resolve_model(None, checkpoint=ckpt, image_size=128, channel_order=channel_order)
    _, reference = api.build_for_target(resolved, fuse_batchnorm(resolved.net), "onnx", {})
    return resolved, reference


def test_flipped_channel_order_is_reported_as_mismatch(cls_export):
    tmp, ckpt, _ = cls_export
    flipped = api.export_model(None, "onnx", tmp / "flipped", checkpoint=ckpt, precision="fp32", image_size=128, channel_order="RGB", verify=False)
    resolved, reference = _reference_for(ckpt)  # the weights expect BGR
    assert resolved.preprocess.channel_order == "BGR"
    report = verify_runner(ONNX.load(flipped.path), reference, task="classification", preprocess=resolved.preprocess, precision="fp32")
    assert report.verdict == "fail"
    assert any(f.startswith("relative_error[probabilities]") for f in report.failed)


def test_perturbed_weights_fail_mvit_verify(cls_export, capsys):
    tmp, _, result = cls_export
    other = decisive_checkpoint(tmp / "other.safetensors", "mobilevit_xxs", seed=1)
    with pytest.raises(SystemExit) as exc:
        cli.verify_main([str(result.path), "--checkpoint", str(other)])
    out, _ = capsys.readouterr()
    assert exc.value.code == 1
    assert " fail by onnxruntime (" in out and "relative_error[probabilities]" in out
    assert result.path.with_name(result.path.name + ".verify.json").is_file()


def test_fp32_tolerance_rejects_an_fp16_artefact(cls_export):
    tmp, ckpt, _ = cls_export
    fp16 = api.export_model(None, "onnx", tmp / "fp16", checkpoint=ckpt, precision="fp16", image_size=128)
    assert fp16.verdict == "pass", fp16.report["failed"]
    resolved, reference = _reference_for(ckpt)
    strict = verify_runner(ONNX.load(fp16.path), reference, task="classification", preprocess=resolved.preprocess, precision="fp32")
    assert strict.verdict == "fail"
