"""Load a checkpoint from disk in any format users have, into a registered model.

Formats: a Hugging Face folder (config.json + model.safetensors or pytorch_model.bin) for
MobileViT(V2)ForImageClassification / MobileViT(V2)ForSemanticSegmentation; an ml-cvnets state
dict (v1 or v2; classification, segmentation); a timm MobileViT or MobileViT v2 state dict; this
package's own .safetensors
(any registered model, with its name, patch config and labels in the metadata).
Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from mvit.files import write_with_path_atomic
from mvit.reading import loads

from ..mobilevit import SIZES, resolve_patch_sizes
from ..mobilevit_v2 import WIDTHS, stage_channels
from ..mobilevit_v2_block import PATCH_SIZE as V2_PATCH_SIZE
from ..registry import create_model, get_spec
from .convert import from_format
from .errors import CheckpointError
from .keymaps import KEY_MAPS
from .preprocessing import hf_preprocessing, native_preprocessing
from .read import read_json, read_tensors
from .validate import MAX_CLASSES, hf_labels, positive_int

FORMAT_VERSION = "1"
_SIZE_BY_LAST_CHANNELS = {spec.channels[-1]: name for name, spec in SIZES.items()}
_SIZE_BY_HF_NECK = {tuple(spec.hf_neck_hidden_sizes): name for name, spec in SIZES.items()}
_HF_TASKS = {"MobileViTForImageClassification": "classification", "MobileViTForSemanticSegmentation": "segmentation"}
_MODEL_PREFIX = {"classification": "mobilevit", "segmentation": "deeplabv3_mobilevit"}
# Probe keys (ours) whose presence in a mapped foreign dict tells the task and the size.
_PROBES = {"classification": "stages.4.0.conv3_1x1.conv.weight", "segmentation": "encoder.stages.4.0.conv3_1x1.conv.weight"}
_HEADS = {"classification": "head.fc.weight", "segmentation": "classifier.weight"}
# MobileViT v2: the qkv projection exists only in v2; its input width (the last block's
# attention width) tells the width multiplier.
_V2_HF_TASKS = {"MobileViTV2ForImageClassification": "classification", "MobileViTV2ForSemanticSegmentation": "segmentation"}
_V2_MODEL_PREFIX = {"classification": "mobilevitv2", "segmentation": "deeplabv3_mobilevitv2"}
_V2_PROBES = {
    "classification": "stages.4.1.transformer.0.attn.qkv_proj.weight",
    "segmentation": "encoder.stages.4.1.transformer.0.attn.qkv_proj.weight",
}
_V2_WIDTH_BY_LAST_DIM = {stage_channels(mult)[2][-1]: name for name, mult in WIDTHS.items()}
# What mvit's v2 models are, in MobileViTV2Config's terms; anything else computes another function.
_V2_HF_FIXED = {
    "n_attn_blocks": [2, 4, 3],
    "base_attn_unit_dims": [128, 192, 256],
    "ffn_multiplier": 2,
    "expand_ratio": 2.0,
    "conv_kernel_size": 3,
    "patch_size": V2_PATCH_SIZE,
    "num_channels": 3,
}
_V2_HF_SEGMENTATION = {"output_stride": 16, "atrous_rates": [6, 12, 18], "aspp_out_channels": 512}


@dataclass
class CheckpointInfo:
    path: str
    format: str  # "hf/classification", "cvnets/segmentation", "timm/classification", "mvit"
    model_name: str
    patch_sizes: tuple[int, int, int]
    num_classes: int
    labels: list[str] | None = None
    image_size: int | None = None
    channel_order: str | None = None  # what the weights expect, when the checkpoint says
    # scale/mean/std/channel_order/resize_shortest/crop as the checkpoint records them (None: it records nothing)
    preprocess: dict | None = None
    config_recorded: bool = False  # the file itself says which patch config it was trained with
    extra: dict = field(default_factory=dict)


def load_checkpoint(path: str | os.PathLike, model_name: str | None = None, config: str | tuple[int, int, int] = "A") -> tuple[nn.Module, CheckpointInfo]:
    """Build the model a checkpoint holds and load it strictly; returns (model in eval, info).

    `model_name` checks the checkpoint is what the caller expects; `config` sets the patch
    sizes for formats that do not record them (ml-cvnets, timm: their released weights are A).
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.is_dir():
        tensors, info = _read_hf_folder(path)
    else:
        tensors, metadata = read_tensors(path)
        if metadata.get("mvit.format"):
            return _load_native(path, tensors, metadata, model_name)
        info = _identify(path, tensors, resolve_patch_sizes(config))
    if model_name and model_name != info.model_name:
        raise CheckpointError(f"{path} holds {info.model_name} ({info.format}), not {model_name}; pass --model {info.model_name}")
    skeleton = _skeleton(info.model_name, info.patch_sizes, info.num_classes, path)
    ours, missing, unexpected = from_format(tensors, info.format, list(skeleton))
    _check_fit(skeleton, ours, missing, unexpected, f"{info.format} checkpoint of {info.model_name}", path)
    model = create_model(info.model_name, info.patch_sizes, num_classes=info.num_classes)
    model.load_state_dict(ours, strict=False)  # keys were checked above; BN counters may be absent
    return model.eval(), info


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    model_name: str,
    config: str | tuple[int, int, int] = "A",
    labels: list[str] | None = None,
    channel_order: str | None = None,
    preprocess: dict | None = None,
) -> Path:
    """Write this package's own format: safetensors plus the model name, patch config and labels.

    `preprocess` records how the weights were trained to see pixels ({"scale", "mean", "std"},
    0..1-scale mean/std as in torchvision's Normalize), so exports need no flags.
    """
    get_spec(model_name)  # unknown names fail here, before anything is written
    path = Path(path)
    metadata = {
        "mvit.format": FORMAT_VERSION,
        "mvit.model": model_name,
        "mvit.patch_sizes": ",".join(map(str, resolve_patch_sizes(config))),
        "mvit.num_classes": str(getattr(model, "num_classes", get_spec(model_name).num_classes)),
    }
    if labels is not None:
        metadata["mvit.labels"] = json.dumps(labels)
    if channel_order:
        metadata["mvit.channel_order"] = channel_order
    if preprocess:
        metadata["mvit.preprocess"] = json.dumps(preprocess, sort_keys=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    write_with_path_atomic(path, lambda staged: save_file(state, str(staged), metadata=metadata))
    return path


def _read_hf_folder(folder: Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    config_path = folder / "config.json"
    if not config_path.exists():
        raise CheckpointError(f"{folder} is a folder without config.json; a Hugging Face checkpoint folder needs one")
    config = read_json(config_path)
    if not isinstance(config, dict):
        raise CheckpointError(f"{config_path} is not a JSON object; a Hugging Face config.json is one")
    if config.get("model_type") == "mobilevitv2":
        fmt, model_name = _hf_v2_model(config, config_path)
    else:
        arch = next((a for a in config.get("architectures") or [] if a in _HF_TASKS), None)
        if config.get("model_type") != "mobilevit" or arch is None:
            raise CheckpointError(
                f"{config_path} describes {config.get('model_type')!r} {config.get('architectures')}; "
                f"supported: model_type 'mobilevit' with {' or '.join(_HF_TASKS)}, "
                f"or 'mobilevitv2' with {' or '.join(_V2_HF_TASKS)}"
            )
        task = _HF_TASKS[arch]
        size = _SIZE_BY_HF_NECK.get(tuple(config.get("neck_hidden_sizes", ())))
        if size is None:
            raise CheckpointError(f"{config_path}: neck_hidden_sizes {config.get('neck_hidden_sizes')} match no MobileViT size (XXS/XS/S)")
        fmt, model_name = f"hf/{task}", f"{_MODEL_PREFIX[task]}_{size}"
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).exists()), None)
    if weights is None:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    labels = hf_labels(config, config_path)
    num_classes = positive_int(config, "num_labels", config_path, default=len(labels) if labels else None, upper=MAX_CLASSES)
    if num_classes is None:
        raise CheckpointError(f"{config_path} has neither num_labels nor id2label; add one of them")
    if labels is not None and len(labels) != num_classes:
        raise CheckpointError(f"{config_path}: id2label has {len(labels)} entries but num_labels is {num_classes}; make them agree")
    patch = positive_int(config, "patch_size", config_path, default=2, upper=64) or 2
    image_size = positive_int(config, "image_size", config_path, default=None, upper=4096)
    preprocess = hf_preprocessing(folder)
    if preprocess and preprocess.get("crop"):
        image_size = preprocess["crop"]  # what the processor feeds the network, when it says
    tensors, _ = read_tensors(weights)
    info = CheckpointInfo(
        path=str(folder),
        format=fmt,
        model_name=model_name,
        patch_sizes=(patch, patch, patch),
        num_classes=num_classes,
        labels=labels,
        image_size=image_size,
        # MobileViTImageProcessor flips RGB to BGR by default, matching Apple's training data.
        channel_order=(preprocess or {}).get("channel_order", "BGR"),
        preprocess=preprocess,
        config_recorded=True,
    )
    return tensors, info


def _hf_v2_model(config: dict, config_path: Path) -> tuple[str, str]:
    """(format, model name) of a MobileViTV2 config.json, refusing what mvit's v2 is not."""
    arch = next((a for a in config.get("architectures") or [] if a in _V2_HF_TASKS), None)
    if arch is None:
        raise CheckpointError(f"{config_path} describes mobilevitv2 {config.get('architectures')}; supported: {' or '.join(_V2_HF_TASKS)}")
    task = _V2_HF_TASKS[arch]
    multiplier = config.get("width_multiplier", 1.0)
    width = next((name for name, m in WIDTHS.items() if multiplier == m), None)
    if width is None:
        raise CheckpointError(f"{config_path}: width_multiplier {multiplier!r} is not one mvit builds; use " + ", ".join(str(m) for m in WIDTHS.values()))
    # HF's own defaults where the file is silent: the network transformers would build from it.
    expected = {**_V2_HF_FIXED, **(_V2_HF_SEGMENTATION if task == "segmentation" else {"output_stride": 32})}
    hf_defaults = {"output_stride": 32, "atrous_rates": [6, 12, 18], "aspp_out_channels": 512}
    for key, want in expected.items():
        got = config.get(key, hf_defaults.get(key, want))
        if (list(got) if isinstance(got, (list, tuple)) else got) != want:
            raise CheckpointError(
                f"{config_path}: {key} is {got!r}, but mvit's MobileViT v2 {task} model has {want!r}; such a checkpoint computes another network"
            )
    if config.get("hidden_act", "swish") not in ("swish", "silu"):
        raise CheckpointError(f"{config_path}: hidden_act is {config.get('hidden_act')!r}; mvit's MobileViT v2 uses swish (SiLU)")
    return f"hf-v2/{task}", f"{_V2_MODEL_PREFIX[task]}_{width}"


def _identify_v2(path: Path, tensors: dict[str, torch.Tensor], patch_sizes: tuple[int, int, int]) -> CheckpointInfo | None:
    for fmt in ("cvnets-v2/classification", "cvnets-v2/segmentation", "timm-v2/classification", "hf-v2/classification", "hf-v2/segmentation"):
        task = fmt.split("/")[1]
        probe = KEY_MAPS[fmt](_V2_PROBES[task])[0]
        head = KEY_MAPS[fmt](_HEADS[task])[0]
        if probe in tensors and head in tensors:
            dim = tensors[probe].shape[1] if tensors[probe].dim() > 1 else -1
            width = _V2_WIDTH_BY_LAST_DIM.get(dim)
            if width is None:
                raise CheckpointError(f"{path}: {probe} has input width {dim}, which matches no MobileViT v2 width (0.5/0.75/1.0)")
            if patch_sizes != (V2_PATCH_SIZE,) * 3:
                raise CheckpointError(
                    f"{path} holds a MobileViT v2 model, which uses patch size {V2_PATCH_SIZE} in every block; "
                    f"patch sizes {patch_sizes} do not apply (drop --config)"
                )
            return CheckpointInfo(
                path=str(path),
                format=fmt,
                model_name=f"{_V2_MODEL_PREFIX[task]}_{width}",
                patch_sizes=(V2_PATCH_SIZE,) * 3,
                num_classes=tensors[head].shape[0],
                # Apple's v2 weights, like v1, expect BGR (HF's processor for them flips to BGR).
                channel_order="BGR",
            )
    return None


def _identify(path: Path, tensors: dict[str, torch.Tensor], patch_sizes: tuple[int, int, int]) -> CheckpointInfo:
    """Tell format, task and size of a bare state dict from its key names and shapes."""
    v2 = _identify_v2(path, tensors, patch_sizes)  # first: v2 dicts also hold the v1 probe keys
    if v2 is not None:
        return v2
    for fmt in ("cvnets/classification", "cvnets/segmentation", "timm/classification", "hf/classification", "hf/segmentation"):
        task = fmt.split("/")[1]
        probe = KEY_MAPS[fmt](_PROBES[task])[0]
        head = KEY_MAPS[fmt](_HEADS[task])[0]
        if probe in tensors and head in tensors:
            size = _SIZE_BY_LAST_CHANNELS.get(tensors[probe].shape[0])
            if size is None:
                raise CheckpointError(f"{path}: {probe} has {tensors[probe].shape[0]} channels, which matches no MobileViT size")
            return CheckpointInfo(
                path=str(path),
                format=fmt,
                model_name=f"{_MODEL_PREFIX[task]}_{size}",
                patch_sizes=patch_sizes,
                num_classes=tensors[head].shape[0],
                # ml-cvnets and timm carry Apple's weights, trained on BGR (cv2.imread).
                channel_order="BGR",
            )
    sample = ", ".join(list(tensors)[:3])
    raise CheckpointError(
        f"{path} matches no known MobileViT checkpoint layout (first keys: {sample}); "
        "supported: Hugging Face folder, ml-cvnets, timm (MobileViT v1 or v2), mvit .safetensors"
    )


def _load_native(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str], model_name: str | None):
    name = metadata.get("mvit.model", "")
    if model_name and model_name != name:
        raise CheckpointError(f"{path} holds {name}, not {model_name}; pass --model {name}")
    try:
        spec = get_spec(name)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    try:
        p1, p2, p3 = (int(p) for p in metadata.get("mvit.patch_sizes", "2,2,2").split(","))
        patch_sizes = resolve_patch_sizes((p1, p2, p3))
        labels = loads(metadata["mvit.labels"]) if "mvit.labels" in metadata else None
        if labels is not None and not (isinstance(labels, list) and all(isinstance(x, str) for x in labels)):
            raise ValueError("mvit.labels is not a list of strings")
        num_classes = int(metadata.get("mvit.num_classes", len(labels) if labels else spec.num_classes))
        if not 1 <= num_classes <= MAX_CLASSES:
            raise ValueError(f"mvit.num_classes {num_classes} is outside 1..{MAX_CLASSES}")
        order = metadata.get("mvit.channel_order")
        if order is not None and order not in ("RGB", "BGR"):
            raise ValueError(f"mvit.channel_order {order!r} is not RGB or BGR")
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} has malformed mvit metadata ({exc}); re-save it with mvit's save_checkpoint") from None
    skeleton = _skeleton(name, patch_sizes, num_classes, path)
    missing = [k for k in skeleton if k not in tensors and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in tensors if k not in skeleton]
    state = {k: v for k, v in tensors.items() if k in skeleton}
    _check_fit(skeleton, state, missing, unexpected, f"mvit checkpoint of {name}", path)
    model = create_model(name, patch_sizes, num_classes=num_classes)
    model.load_state_dict(state, strict=False)
    info = CheckpointInfo(
        path=str(path),
        format="mvit",
        model_name=name,
        patch_sizes=patch_sizes,
        num_classes=num_classes,
        labels=labels,
        channel_order=order,
        preprocess=native_preprocessing(metadata, path),
        config_recorded=True,
    )
    return model.eval(), info


def _skeleton(name: str, patch_sizes: tuple[int, int, int], num_classes: int, path: Path) -> dict[str, torch.Tensor]:
    """Parameters (shape and dtype, no data) of the model a checkpoint claims, built on the meta device:
    nothing is allocated, so a small file claiming millions of classes is refused before it costs memory."""
    if not 1 <= num_classes <= MAX_CLASSES:
        raise CheckpointError(f"{path} claims {num_classes} classes; mvit accepts 1..{MAX_CLASSES}")
    with torch.device("meta"):
        model = create_model(name, patch_sizes, num_classes=num_classes)
    return dict(model.state_dict())


def _check_fit(own: dict[str, torch.Tensor], state: dict, missing: list[str], unexpected: list[str], looked_like: str, path: Path) -> None:
    """All or nothing: any missing, unexpected, mis-shaped or mis-typed tensor is one error, nothing loaded."""
    mis_shaped = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    # Weights stored as integers are not weights (a header relabelling F32 bytes as I32 gives values
    # near 1e9); any float width is fine, load_state_dict converts it.
    mis_typed = [f"{k} {v.dtype} vs {own[k].dtype}" for k, v in state.items() if k in own and v.dtype.is_floating_point != own[k].dtype.is_floating_point]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped), ("wrong type", mis_typed)):
        if items:
            problems.append(f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
    if problems:
        raise CheckpointError(f"{path} does not fit: it looked like a {looked_like} but has " + "; ".join(problems))
