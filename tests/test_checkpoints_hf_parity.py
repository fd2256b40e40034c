"""Parity with Hugging Face transformers' MobileViT, the implementation users trust.

transformers is a test-only dependency: the package never imports it.
"""

import pytest
import torch
import transformers  # the test extra; a missing reference must fail, not skip
from model_utils import randomize_

from mvit.models.checkpoints import load_checkpoint
from mvit.models.mobilevit import SIZES


def hf_config(size: str, **kw):
    s = SIZES[size]
    return transformers.MobileViTConfig(neck_hidden_sizes=s.hf_neck_hidden_sizes, hidden_sizes=list(s.dims), expand_ratio=s.expand_ratio, **kw)


def save_hf(model, folder):
    randomize_(model, seed=1)
    model.save_pretrained(folder)
    return model


@pytest.mark.parametrize("size", ["xxs", "xs", "s"])
def test_classification_logits_match_hf(size, tmp_path):
    labels = {i: f"label {i}" for i in range(1000)}
    hf = save_hf(transformers.MobileViTForImageClassification(hf_config(size, id2label=labels)).eval(), tmp_path)
    model, info = load_checkpoint(tmp_path)
    assert info.model_name == f"mobilevit_{size}" and info.format == "hf/classification"
    assert info.labels[7] == "label 7" and info.image_size == 256 and info.channel_order == "BGR"
    for res in (256, 250):
        x = torch.rand(1, 3, res, res)
        with torch.no_grad():
            ref, out = hf(pixel_values=x).logits, model(x)
        assert ref.abs().max() > 0.1, "reference logits must not be degenerate"
        assert (ref - out).abs().max().item() < 1e-5, (size, res)


@pytest.mark.parametrize("size", ["xxs", "xs", "s"])
def test_segmentation_logits_match_hf(size, tmp_path):
    cfg = hf_config(size, num_labels=21, output_stride=16, image_size=512)
    hf = save_hf(transformers.MobileViTForSemanticSegmentation(cfg).eval(), tmp_path)
    model, info = load_checkpoint(tmp_path)
    assert info.model_name == f"deeplabv3_mobilevit_{size}" and info.num_classes == 21
    for res in (512, 500) if size == "xxs" else (512,):
        x = torch.rand(1, 3, res, res)
        with torch.no_grad():
            ref, out = hf(pixel_values=x).logits, model(x)
        assert ref.shape == out.shape
        assert ref.abs().max() > 0.1
        assert (ref - out).abs().max().item() < 1e-5, (size, res)


def test_pytorch_model_bin_folder_and_preprocessor_channel_order(tmp_path):
    hf = save_hf(transformers.MobileViTForImageClassification(hf_config("xxs", num_labels=10)).eval(), tmp_path)
    sd = hf.state_dict()
    (tmp_path / "model.safetensors").unlink()
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "preprocessor_config.json").write_text('{"do_flip_channel_order": false}')
    model, info = load_checkpoint(tmp_path)
    assert info.num_classes == 10 and info.channel_order == "RGB"
    x = torch.rand(1, 3, 256, 256)
    with torch.no_grad():
        assert (hf(pixel_values=x).logits - model(x)).abs().max() < 1e-5
