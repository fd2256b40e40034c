"""Load a checkpoint from disk in any format users have, into a registered model.

Formats: a Hugging Face folder (config.json + model.safetensors or pytorch_model.bin) for
MobileViTForImageClassification / MobileViTForSemanticSegmentation; an ml-cvnets state dict
(classification, segmentation); a timm MobileViT state dict; this package's own .safetensors
(any registered model, with its name, patch config and labels in the metadata).
Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from ..mobilevit import SIZES, resolve_patch_sizes
from ..registry import create_model, get_spec
from .convert import from_format
from .errors import CheckpointError
from .keymaps import KEY_MAPS
from .read import read_json, read_tensors

FORMAT_VERSION = "1"
_SIZE_BY_LAST_CHANNELS = {spec.channels[-1]: name for name, spec in SIZES.items()}
_SIZE_BY_HF_NECK = {tuple(spec.hf_neck_hidden_sizes): name for name, spec in SIZES.items()}
_HF_TASKS = {"MobileViTForImageClassification": "classification", "MobileViTForSemanticSegmentation": "segmentation"}
_MODEL_PREFIX = {"classification": "mobilevit", "segmentation": "deeplabv3_mobilevit"}
# Probe keys (ours) whose presence in a mapped foreign dict tells the task and the size.
_PROBES = {"classification": "stages.4.0.conv3_1x1.conv.weight", "segmentation": "encoder.stages.4.0.conv3_1x1.conv.weight"}
_HEADS = {"classification": "head.fc.weight", "segmentation": "classifier.weight"}


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
    extra: dict = field(default_factory=dict)


def load_checkpoint(
    path: str | os.PathLike, model_name: str | None = None, config: str | tuple[int, int, int] = "A"
) -> tuple[nn.Module, CheckpointInfo]:
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
        raise CheckpointError(
            f"{path} holds {info.model_name} ({info.format}), not {model_name}; pass --model {info.model_name}"
        )
    model = create_model(info.model_name, info.patch_sizes, num_classes=info.num_classes)
    ours, missing, unexpected = from_format(tensors, info.format, list(model.state_dict()))
    _load_strict(model, ours, missing, unexpected, f"{info.format} checkpoint of {info.model_name}", path)
    return model.eval(), info


def save_checkpoint(
    model: nn.Module,
    path: str | os.PathLike,
    model_name: str,
    config: str | tuple[int, int, int] = "A",
    labels: list[str] | None = None,
    channel_order: str | None = None,
) -> Path:
    """Write this package's own format: safetensors plus the model name, patch config and labels."""
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
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _read_hf_folder(folder: Path) -> tuple[dict[str, torch.Tensor], CheckpointInfo]:
    config_path = folder / "config.json"
    if not config_path.exists():
        raise CheckpointError(f"{folder} is a folder without config.json; a Hugging Face checkpoint folder needs one")
    config = read_json(config_path)
    arch = next((a for a in config.get("architectures") or [] if a in _HF_TASKS), None)
    if config.get("model_type") != "mobilevit" or arch is None:
        raise CheckpointError(
            f"{config_path} describes {config.get('model_type')!r} {config.get('architectures')}; "
            f"supported: model_type 'mobilevit' with {' or '.join(_HF_TASKS)}"
        )
    task = _HF_TASKS[arch]
    size = _SIZE_BY_HF_NECK.get(tuple(config.get("neck_hidden_sizes", ())))
    if size is None:
        raise CheckpointError(f"{config_path}: neck_hidden_sizes {config.get('neck_hidden_sizes')} match no MobileViT size (XXS/XS/S)")
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).exists()), None)
    if weights is None:
        raise CheckpointError(f"{folder} has no model.safetensors or pytorch_model.bin")
    tensors, _ = read_tensors(weights)
    id2label = config.get("id2label") or {}
    labels = [id2label[k] for k in sorted(id2label, key=int)] if id2label else None
    patch = int(config.get("patch_size", 2))
    preprocessor = folder / "preprocessor_config.json"
    # MobileViTImageProcessor flips RGB to BGR by default, matching Apple's training data.
    flip = read_json(preprocessor).get("do_flip_channel_order", True) if preprocessor.exists() else True
    info = CheckpointInfo(
        path=str(folder), format=f"hf/{task}", model_name=f"{_MODEL_PREFIX[task]}_{size}",
        patch_sizes=(patch, patch, patch), num_classes=int(config.get("num_labels", len(labels or []) or 0)),
        labels=labels, image_size=config.get("image_size"), channel_order="BGR" if flip else "RGB",
    )
    if not info.num_classes:
        raise CheckpointError(f"{config_path} has neither num_labels nor id2label")
    return tensors, info


def _identify(path: Path, tensors: dict[str, torch.Tensor], patch_sizes: tuple[int, int, int]) -> CheckpointInfo:
    """Tell format, task and size of a bare state dict from its key names and shapes."""
    for fmt in ("cvnets/classification", "cvnets/segmentation", "timm/classification", "hf/classification", "hf/segmentation"):
        task = fmt.split("/")[1]
        probe = KEY_MAPS[fmt](_PROBES[task])[0]
        head = KEY_MAPS[fmt](_HEADS[task])[0]
        if probe in tensors and head in tensors:
            size = _SIZE_BY_LAST_CHANNELS.get(tensors[probe].shape[0])
            if size is None:
                raise CheckpointError(f"{path}: {probe} has {tensors[probe].shape[0]} channels, which matches no MobileViT size")
            return CheckpointInfo(
                path=str(path), format=fmt, model_name=f"{_MODEL_PREFIX[task]}_{size}", patch_sizes=patch_sizes,
                num_classes=tensors[head].shape[0],
                # ml-cvnets and timm carry Apple's weights, trained on BGR (cv2.imread).
                channel_order="BGR",
            )
    sample = ", ".join(list(tensors)[:3])
    raise CheckpointError(
        f"{path} matches no known MobileViT checkpoint layout (first keys: {sample}); "
        "supported: Hugging Face folder, ml-cvnets, timm, mvit .safetensors"
    )


def _load_native(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str], model_name: str | None):
    name = metadata.get("mvit.model", "")
    if model_name and model_name != name:
        raise CheckpointError(f"{path} holds {name}, not {model_name}; pass --model {name}")
    try:
        spec = get_spec(name)
    except KeyError as exc:
        raise CheckpointError(f"{path}: {exc.args[0]}") from None
    patch_sizes = resolve_patch_sizes(tuple(int(p) for p in metadata["mvit.patch_sizes"].split(",")))
    labels = json.loads(metadata["mvit.labels"]) if "mvit.labels" in metadata else None
    num_classes = int(metadata.get("mvit.num_classes", len(labels) if labels else spec.num_classes))
    model = create_model(name, patch_sizes, num_classes=num_classes)
    expected = set(model.state_dict())
    missing = [k for k in expected if k not in tensors and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in tensors if k not in expected]
    _load_strict(model, {k: v for k, v in tensors.items() if k in expected}, missing, unexpected, f"mvit checkpoint of {name}", path)
    info = CheckpointInfo(
        path=str(path), format="mvit", model_name=name, patch_sizes=patch_sizes, num_classes=num_classes,
        labels=labels, channel_order=metadata.get("mvit.channel_order"),
    )
    return model.eval(), info


def _load_strict(model: nn.Module, state: dict, missing: list[str], unexpected: list[str], looked_like: str, path: Path) -> None:
    """All or nothing: any missing, unexpected or mis-shaped tensor is one error, nothing loaded."""
    own = model.state_dict()
    mis_shaped = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items() if k in own and v.shape != own[k].shape]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", mis_shaped)):
        if items:
            problems.append(f"{len(items)} {label} ({', '.join(items[:3])}{', ...' if len(items) > 3 else ''})")
    if problems:
        raise CheckpointError(f"{path} does not fit: it looked like a {looked_like} but has " + "; ".join(problems))
    model.load_state_dict(state, strict=False)  # keys were checked above; BN counters may be absent
