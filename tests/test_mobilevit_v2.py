"""MobileViT v2: parity with transformers' v2 classes, parameter counts, rank <= 4, BN fusion,
checkpoint formats (HF folder, timm, ml-cvnets) and export through the CLI.

transformers is a test-only dependency: the package never imports it.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers  # the test extra; a missing reference must fail, not skip
from model_utils import MaxRank, randomize_
from torch import nn

from mvit.models import create_model, fuse_batchnorm, get_spec
from mvit.models.checkpoints import CheckpointError, load_checkpoint, to_format
from mvit.models.mobilevit_v2 import WIDTHS
from mvit.models.mobilevit_v2_block import GroupNorm1, fold_patches, unfold_patches

MVIT_EXPORT = Path(sys.executable).with_name("mvit-export")


def hf_config(width: str, **kw) -> transformers.MobileViTV2Config:
    return transformers.MobileViTV2Config(width_multiplier=WIDTHS[width], **kw)


def save_hf(model, folder):
    randomize_(model, seed=1)
    model.save_pretrained(folder)
    return model


def close(ref: torch.Tensor, out: torch.Tensor, tol: float = 1e-5) -> float:
    assert ref.shape == out.shape
    assert ref.abs().max() > 0.1, "reference outputs must not be degenerate"
    err = (ref - out).abs().max().item()
    assert err < tol, err
    return err


# Sizes are multiples of 64, where every v2 block's map splits into 2x2 patches: there HF, timm
# and ml-cvnets compute the same function (elsewhere HF drops the map's edge, the others resize).
@pytest.mark.parametrize("width,res", [("050", 64), ("075", 128), ("100", 256)])
def test_classification_logits_match_hf(width, res, tmp_path):
    labels = {i: f"label {i}" for i in range(1000)}
    hf = save_hf(transformers.MobileViTV2ForImageClassification(hf_config(width, id2label=labels)).eval(), tmp_path)
    model, info = load_checkpoint(tmp_path)
    assert info.model_name == f"mobilevitv2_{width}" and info.format == "hf-v2/classification"
    assert info.labels[7] == "label 7" and info.patch_sizes == (2, 2, 2) and info.channel_order == "BGR"
    x = torch.rand(1, 3, res, res)
    with torch.no_grad():
        close(hf(pixel_values=x).logits, model(x))


def test_segmentation_logits_match_hf(tmp_path):
    cfg = hf_config("050", num_labels=21, output_stride=16, image_size=512)
    hf = save_hf(transformers.MobileViTV2ForSemanticSegmentation(cfg).eval(), tmp_path)
    model, info = load_checkpoint(tmp_path)
    assert info.model_name == "deeplabv3_mobilevitv2_050" and info.num_classes == 21 and info.image_size == 512
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        close(hf(pixel_values=x).logits, model(x))


@pytest.mark.parametrize("width", sorted(WIDTHS))
def test_parameter_counts_equal_transformers(width):
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    with torch.device("meta"):
        hf_cls = transformers.MobileViTV2ForImageClassification(hf_config(width, num_labels=1000))
        hf_seg = transformers.MobileViTV2ForSemanticSegmentation(hf_config(width, num_labels=21, output_stride=16))
        ours_cls, ours_seg = create_model(f"mobilevitv2_{width}"), create_model(f"deeplabv3_mobilevitv2_{width}")
    assert count(ours_cls) == count(hf_cls)
    assert count(ours_seg) == count(hf_seg)


@pytest.mark.parametrize("name,res", [("mobilevitv2_050", 96), ("deeplabv3_mobilevitv2_050", 128)])
def test_no_tensor_above_rank_4(name, res):
    model = create_model(name)
    with torch.no_grad(), MaxRank() as ranks:
        model(torch.rand(1, 3, res, res))
    assert ranks.max_rank <= 4, (ranks.max_rank, ranks.op)


def test_unfold_is_f_unfold_and_fold_inverts_it():
    x = torch.randn(2, 5, 8, 12)
    patches = unfold_patches(x, 2)
    assert torch.equal(patches, F.unfold(x, 2, stride=2).reshape(2, 5, 4, -1))
    assert torch.equal(fold_patches(patches, 8, 12, 2), x)


def test_group_norm1_is_group_norm():
    norm = randomize_(GroupNorm1(24))
    ref = nn.GroupNorm(1, 24)
    ref.load_state_dict(norm.state_dict())
    x = torch.randn(2, 24, 4, 16) * 3 + 1
    with torch.no_grad():
        assert (norm(x) - ref(x)).abs().max() < 1e-5


def test_batchnorm_fusion_keeps_group_norms_and_function():
    model = randomize_(create_model("mobilevitv2_050"))
    fused = fuse_batchnorm(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fused.modules())
    norms = lambda m: sum(isinstance(n, nn.GroupNorm) for n in m.modules())  # noqa: E731
    assert norms(fused) == norms(model) == 21  # 2*(2+4+3) in the layers + 3 after them
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        close(model(x), fused(x))


def test_patch_config_b_is_refused(tmp_path):
    assert not get_spec("mobilevitv2_100").supports_patch_config
    with pytest.raises(ValueError, match="patch size 2 in every"):
        create_model("mobilevitv2_100", "B")
    assert create_model("mobilevitv2_050", "A").patch_sizes == (2, 2, 2)
    path = tmp_path / "timm.pth"
    torch.save(create_model("mobilevitv2_050").state_dict(), path)
    with pytest.raises(CheckpointError, match="patch size 2 in every block"):
        load_checkpoint(path, config="B")


@pytest.mark.parametrize(
    "fmt,name",
    [
        ("timm-v2/classification", "mobilevitv2_075"),
        ("cvnets-v2/classification", "mobilevitv2_050"),
        ("cvnets-v2/segmentation", "deeplabv3_mobilevitv2_050"),
    ],
)
def test_foreign_state_dict_loads_back_identically(fmt, name, tmp_path):
    model = randomize_(create_model(name), seed=3)
    path = tmp_path / "weights.pt"
    torch.save(to_format(model.state_dict(), fmt), path)
    loaded, info = load_checkpoint(path)
    assert (info.format, info.model_name) == (fmt, name)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))


def cvnets_to_hf(key: str) -> str:
    """ml-cvnets v2 -> HF names by the rules of transformers' convert_mlcvnets_to_pytorch.py for v2,
    an independent statement of both formats' names."""
    k = key.removeprefix("encoder.").replace(".block.", ".").replace(".conv.", ".convolution.").replace(".norm.", ".normalization.")
    k = k.replace("conv_1.", "mobilevitv2.conv_stem.").replace(".exp_1x1.", ".expand_1x1.").replace(".red_1x1.", ".reduce_1x1.")
    for i in (1, 2):
        k = k.replace(f"layer_{i}.", f"mobilevitv2.encoder.layer.{i - 1}.layer.")
    for i, depth in ((3, 2), (4, 4), (5, 3)):
        base = f"mobilevitv2.encoder.layer.{i - 1}"
        k = k.replace(f"layer_{i}.0.", f"{base}.downsampling_layer.")
        k = k.replace(f"layer_{i}.1.local_rep.0.", f"{base}.conv_kxk.").replace(f"layer_{i}.1.local_rep.1.", f"{base}.conv_1x1.")
        k = k.replace(f"layer_{i}.1.global_rep.{depth}.", f"{base}.layernorm.")
        for j in range(depth):
            k = k.replace(f"layer_{i}.1.global_rep.{j}.", f"{base}.transformer.layer.{j}.")
        k = k.replace(f"layer_{i}.1.conv_proj.", f"{base}.conv_projection.")
    for old, new in (
        ("pre_norm_attn.0.", "layernorm_before."),
        ("pre_norm_attn.1.", "attention."),
        ("pre_norm_ffn.0.", "layernorm_after."),
        ("pre_norm_ffn.1.", "ffn.conv1."),
        ("pre_norm_ffn.3.", "ffn.conv2."),
        ("classifier.1.", "classifier."),
        ("seg_head.", "segmentation_head."),
        (".aspp_layer.", "."),
        (".aspp_pool.", "."),
    ):
        k = k.replace(old, new)
    return k


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_cvnets_names_are_what_hf_converts_from(task):
    if task == "classification":
        ours, hf = create_model("mobilevitv2_050"), transformers.MobileViTV2ForImageClassification(hf_config("050"))
    else:
        ours = create_model("deeplabv3_mobilevitv2_050")
        hf = transformers.MobileViTV2ForSemanticSegmentation(hf_config("050", num_labels=21, output_stride=16))
    cvnets = to_format(ours.state_dict(), f"cvnets-v2/{task}")
    assert "layer_3.1.global_rep.0.pre_norm_attn.1.qkv_proj.block.conv.weight" in {k.removeprefix("encoder.") for k in cvnets}
    assert {cvnets_to_hf(k) for k in cvnets} == set(hf.state_dict())


def test_timm_names():
    keys = set(create_model("mobilevitv2_050").state_dict())
    # timm's ByobNet + MobileVitV2Block / LinearTransformerBlock / ConvMlp / GroupNorm1 names
    for key in (
        "stem.conv.weight",
        "stages.1.1.conv2_kxk.bn.running_var",
        "stages.2.1.conv_kxk.conv.weight",
        "stages.2.1.conv_1x1.weight",
        "stages.3.1.transformer.3.attn.qkv_proj.bias",
        "stages.4.1.transformer.2.mlp.fc2.weight",
        "stages.4.1.norm.weight",
        "stages.4.1.conv_proj.bn.bias",
        "head.fc.weight",
    ):
        assert key in keys, key


@pytest.mark.parametrize(
    "change,message",
    [
        ({"width_multiplier": 1.5}, "width_multiplier 1.5"),
        ({"architectures": ["MobileViTV2ForSemanticSegmentation"], "num_labels": 21}, "output_stride is 32"),
        ({"n_attn_blocks": [2, 2, 2]}, "n_attn_blocks"),
    ],
)
def test_hf_configs_mvit_does_not_build_are_refused(change, message, tmp_path):
    config = {"model_type": "mobilevitv2", "architectures": ["MobileViTV2ForImageClassification"], "num_labels": 10, **change}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def export_hf_folder(tmp_path: Path, target: str, precision: str) -> dict:
    folder = tmp_path / "hf"
    save_hf(transformers.MobileViTV2ForImageClassification(hf_config("050", num_labels=10, image_size=64)).eval(), folder)
    proc = subprocess.run(
        [str(MVIT_EXPORT), "--target", target, "--precision", precision, "--checkpoint", str(folder), "--image-size", "64", "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (report,) = (tmp_path / "out").glob("*.report.json")
    data = json.loads(report.read_text())
    assert data["model"] == "mobilevitv2_050" and data["verdict"] == "pass"
    assert data["max_tensor_rank"] <= 4 and not any("norm" in op.lower() and "batch" in op.lower() for op in data["op_histogram"])
    return data


def test_cli_exports_hf_v2_folder_to_onnx(tmp_path):
    data = export_hf_folder(tmp_path, "onnx", "fp32")
    assert data["verification"]["outputs"]["probabilities"]["relative_error"] < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("target", ["coreml", "tflite"])
def test_cli_exports_hf_v2_folder_fp16(target, tmp_path):
    data = export_hf_folder(tmp_path, target, "fp16")
    assert data["precision"] == "fp16"
