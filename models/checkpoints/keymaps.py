"""Key maps between this package's state dicts and the formats users have.

Each format is one function from one of our keys to its key(s). Three keys mean our fused qkv
projection is split by rows into query, key, value (HF stores them apart). The rules are the
ones HF applied when it converted Apple's ml-cvnets checkpoints to its hub layout; the exact key
lists in tests/data/keys/ are what tests/test_checkpoints_formats.py holds them to.
"""

from __future__ import annotations

import re
from collections.abc import Callable

KeyMap = Callable[[str], list[str]]

_TRANSFORMER_CVNETS = {
    "norm1": "pre_norm_mha.0",
    "attn.qkv": "pre_norm_mha.1.qkv_proj",
    "attn.proj": "pre_norm_mha.1.out_proj",
    "norm2": "pre_norm_ffn.0",
    "mlp.fc1": "pre_norm_ffn.1",
    "mlp.fc2": "pre_norm_ffn.4",
}
_TRANSFORMER_HF = {
    "norm1": "layernorm_before",
    "attn.proj": "attention.output.dense",
    "norm2": "layernorm_after",
    "mlp.fc1": "intermediate.dense",
    "mlp.fc2": "output.dense",
}
_MV2_CVNETS = {"conv1_1x1": "exp_1x1", "conv2_kxk": "conv_3x3", "conv3_1x1": "red_1x1"}
_MV2_HF = {"conv1_1x1": "expand_1x1", "conv2_kxk": "conv_3x3", "conv3_1x1": "reduce_1x1"}
_BLOCK_CVNETS = {"conv_kxk": "local_rep.conv_3x3", "conv_proj": "conv_proj", "conv_fusion": "fusion"}
_BLOCK_HF = {"conv_kxk": "conv_kxk", "conv_proj": "conv_projection", "conv_fusion": "fusion"}

# Depth of each MobileViT block, needed where a format numbers the final LayerNorm after the
# transformer layers (ml-cvnets' global_rep.<depth>).
_DEPTHS = {2: 2, 3: 4, 4: 3}


class UnmappedKey(KeyError):
    pass


def _conv_bn(rest: str, conv: str, norm: str) -> str:
    """`conv.weight` / `bn.running_mean` -> the format's conv/norm names."""
    part, _, leaf = rest.partition(".")
    if part == "conv":
        return f"{conv}.{leaf}"
    if part == "bn":
        return f"{norm}.{leaf}"
    raise UnmappedKey(rest)


def _backbone_cvnets(key: str) -> str:
    if key.startswith("stem."):
        return _conv_bn(key[5:], "conv_1.block.conv", "conv_1.block.norm")
    if key.startswith("final_conv."):
        return _conv_bn(key[11:], "conv_1x1_exp.block.conv", "conv_1x1_exp.block.norm")
    m = re.fullmatch(r"stages\.(\d)\.(\d+)\.(conv[123]_\w+)\.(.+)", key)
    if m:
        i, j, name, rest = m.groups()
        base = f"layer_{int(i) + 1}.{j}.block.{_MV2_CVNETS[name]}.block"
        return _conv_bn(rest, f"{base}.conv", f"{base}.norm")
    m = re.fullmatch(r"stages\.(\d)\.1\.(.+)", key)
    if not m:
        raise UnmappedKey(key)
    i, rest = int(m.group(1)), m.group(2)
    base = f"layer_{i + 1}.1"
    if rest == "conv_1x1.weight":
        return f"{base}.local_rep.conv_1x1.block.conv.weight"
    if rest.startswith("norm."):
        return f"{base}.global_rep.{_DEPTHS[i]}.{rest[5:]}"
    t = re.fullmatch(r"transformer\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(\w+)", rest)
    if t:
        return f"{base}.global_rep.{t.group(1)}.{_TRANSFORMER_CVNETS[t.group(2)]}.{t.group(3)}"
    name, _, rest = rest.partition(".")
    return _conv_bn(rest, f"{base}.{_BLOCK_CVNETS[name]}.block.conv", f"{base}.{_BLOCK_CVNETS[name]}.block.norm")


def _backbone_hf(key: str) -> list[str]:
    pre = "mobilevit."
    if key.startswith("stem."):
        return [pre + _conv_bn(key[5:], "conv_stem.convolution", "conv_stem.normalization")]
    if key.startswith("final_conv."):
        return [pre + _conv_bn(key[11:], "conv_1x1_exp.convolution", "conv_1x1_exp.normalization")]
    m = re.fullmatch(r"stages\.(\d)\.(\d+)\.(conv[123]_\w+)\.(.+)", key)
    if m:
        i, j, name, rest = int(m.group(1)), m.group(2), m.group(3), m.group(4)
        where = f"layer.{j}" if i < 2 else "downsampling_layer"
        base = f"{pre}encoder.layer.{i}.{where}.{_MV2_HF[name]}"
        return [_conv_bn(rest, f"{base}.convolution", f"{base}.normalization")]
    m = re.fullmatch(r"stages\.(\d)\.1\.(.+)", key)
    if not m:
        raise UnmappedKey(key)
    base, rest = f"{pre}encoder.layer.{m.group(1)}", m.group(2)
    if rest == "conv_1x1.weight":
        return [f"{base}.conv_1x1.convolution.weight"]
    if rest.startswith("norm."):
        return [f"{base}.layernorm.{rest[5:]}"]
    t = re.fullmatch(r"transformer\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(\w+)", rest)
    if t:
        layer, name, leaf = t.groups()
        lb = f"{base}.transformer.layer.{layer}"
        if name == "attn.qkv":
            return [f"{lb}.attention.attention.{q}.{leaf}" for q in ("query", "key", "value")]
        return [f"{lb}.{_TRANSFORMER_HF[name]}.{leaf}"]
    name, _, rest = rest.partition(".")
    return [_conv_bn(rest, f"{base}.{_BLOCK_HF[name]}.convolution", f"{base}.{_BLOCK_HF[name]}.normalization")]


def _aspp_branch(key: str) -> tuple[str, str]:
    """Split an ASPP key into the branch's name in a neutral form and its `conv.`/`bn.` rest:
    ("convs.0", "conv.weight"), ("pool", "bn.bias"), ("project", "conv.weight")."""
    m = re.fullmatch(r"aspp\.convs\.(\d)\.(.+)", key)
    if m and m.group(1) == "4":
        return "pool", m.group(2).removeprefix("conv.")
    if m:
        return f"convs.{m.group(1)}", m.group(2)
    if key.startswith("aspp.project."):
        return "project", key[13:]
    raise UnmappedKey(key)


def timm_classification(key: str) -> list[str]:
    """timm's MobileViT uses this package's names (we chose them so)."""
    return [key]


def cvnets_classification(key: str) -> list[str]:
    if key.startswith("head.fc."):
        return ["classifier.fc." + key[8:]]
    return [_backbone_cvnets(key)]


def cvnets_segmentation(key: str) -> list[str]:
    if key.startswith("encoder."):
        return ["encoder." + _backbone_cvnets(key[8:])]
    if key.startswith("classifier."):
        return ["seg_head.classifier.classifier.block.conv." + key[11:]]
    branch, rest = _aspp_branch(key)
    base = "seg_head.aspp.aspp_layer." + ("convs.4.aspp_pool.conv_1x1" if branch == "pool" else branch)
    return [_conv_bn(rest, f"{base}.block.conv", f"{base}.block.norm")]


def hf_classification(key: str) -> list[str]:
    if key.startswith("head.fc."):
        return ["classifier." + key[8:]]
    return _backbone_hf(key)


def hf_segmentation(key: str) -> list[str]:
    if key.startswith("encoder."):
        return _backbone_hf(key[8:])
    if key.startswith("classifier."):
        return ["segmentation_head.classifier.convolution." + key[11:]]
    branch, rest = _aspp_branch(key)
    base = "segmentation_head.aspp." + ("convs.4.conv_1x1" if branch == "pool" else branch)
    return [_conv_bn(rest, f"{base}.convolution", f"{base}.normalization")]


# MobileViT v2 (models/mobilevit_v2.py). Its names are timm's; HF's and ml-cvnets' v2 names are
# what HF's convert_mlcvnets_to_pytorch.py for v2 renames between.
_V2_TRANSFORMER_CVNETS = {
    "norm1": "pre_norm_attn.0",
    "attn.qkv_proj": "pre_norm_attn.1.qkv_proj.block.conv",
    "attn.out_proj": "pre_norm_attn.1.out_proj.block.conv",
    "norm2": "pre_norm_ffn.0",
    "mlp.fc1": "pre_norm_ffn.1.block.conv",
    "mlp.fc2": "pre_norm_ffn.3.block.conv",
}
_V2_TRANSFORMER_HF = {
    "norm1": "layernorm_before",
    "attn.qkv_proj": "attention.qkv_proj.convolution",
    "attn.out_proj": "attention.out_proj.convolution",
    "norm2": "layernorm_after",
    "mlp.fc1": "ffn.conv1.convolution",
    "mlp.fc2": "ffn.conv2.convolution",
}
_V2_LAYER = r"transformer\.(\d+)\.(norm1|norm2|attn\.qkv_proj|attn\.out_proj|mlp\.fc1|mlp\.fc2)\.(\w+)"


def _v2_backbone_cvnets(key: str) -> str:
    m = re.fullmatch(r"stages\.([234])\.1\.(.+)", key)
    if not m:  # stem and MV2 blocks are named as in v1
        return _backbone_cvnets(key)
    i, rest = int(m.group(1)), m.group(2)
    base = f"layer_{i + 1}.1"
    if rest == "conv_1x1.weight":
        return f"{base}.local_rep.1.block.conv.weight"
    if rest.startswith("norm."):
        return f"{base}.global_rep.{_DEPTHS[i]}.{rest[5:]}"
    t = re.fullmatch(_V2_LAYER, rest)
    if t:
        return f"{base}.global_rep.{t.group(1)}.{_V2_TRANSFORMER_CVNETS[t.group(2)]}.{t.group(3)}"
    name, _, rest = rest.partition(".")
    where = {"conv_kxk": "local_rep.0", "conv_proj": "conv_proj"}.get(name)
    if where is None:
        raise UnmappedKey(key)
    return _conv_bn(rest, f"{base}.{where}.block.conv", f"{base}.{where}.block.norm")


def _v2_backbone_hf(key: str) -> str:
    pre = "mobilevitv2."
    m = re.fullmatch(r"stages\.([234])\.1\.(.+)", key)
    if not m:  # stem and MV2 blocks are named as in v1, under another prefix
        (name,) = _backbone_hf(key)
        return pre + name.removeprefix("mobilevit.")
    base, rest = f"{pre}encoder.layer.{m.group(1)}", m.group(2)
    if rest == "conv_1x1.weight":
        return f"{base}.conv_1x1.convolution.weight"
    if rest.startswith("norm."):
        return f"{base}.layernorm.{rest[5:]}"
    t = re.fullmatch(_V2_LAYER, rest)
    if t:
        return f"{base}.transformer.layer.{t.group(1)}.{_V2_TRANSFORMER_HF[t.group(2)]}.{t.group(3)}"
    name, _, rest = rest.partition(".")
    where = {"conv_kxk": "conv_kxk", "conv_proj": "conv_projection"}.get(name)
    if where is None:
        raise UnmappedKey(key)
    return _conv_bn(rest, f"{base}.{where}.convolution", f"{base}.{where}.normalization")


def timm_v2_classification(key: str) -> list[str]:
    """timm's `mobilevitv2_*` uses this package's names (we chose them so)."""
    return [key]


def cvnets_v2_classification(key: str) -> list[str]:
    if key.startswith("head.fc."):
        return ["classifier.1." + key[8:]]
    return [_v2_backbone_cvnets(key)]


def cvnets_v2_segmentation(key: str) -> list[str]:
    if key.startswith("encoder."):
        return ["encoder." + _v2_backbone_cvnets(key[8:])]
    if key.startswith("classifier."):
        # ml-cvnets 0.2+, which brought v2, holds the classifier conv directly (v0.1 nested it).
        return ["seg_head.classifier.block.conv." + key[11:]]
    return cvnets_segmentation(key)  # the ASPP is named as in v1


def hf_v2_classification(key: str) -> list[str]:
    if key.startswith("head.fc."):
        return ["classifier." + key[8:]]
    return [_v2_backbone_hf(key)]


def hf_v2_segmentation(key: str) -> list[str]:
    if key.startswith("encoder."):
        return [_v2_backbone_hf(key[8:])]
    return hf_segmentation(key)  # the DeepLabV3 head is named as in v1


KEY_MAPS: dict[str, KeyMap] = {
    "timm/classification": timm_classification,
    "cvnets/classification": cvnets_classification,
    "cvnets/segmentation": cvnets_segmentation,
    "hf/classification": hf_classification,
    "hf/segmentation": hf_segmentation,
    "timm-v2/classification": timm_v2_classification,
    "cvnets-v2/classification": cvnets_v2_classification,
    "cvnets-v2/segmentation": cvnets_v2_segmentation,
    "hf-v2/classification": hf_v2_classification,
    "hf-v2/segmentation": hf_v2_segmentation,
}
