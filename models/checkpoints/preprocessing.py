"""How a checkpoint says its weights see pixels: scale, mean/std, channel order, sizes.

Read from Hugging Face `preprocessor_config.json` or mvit's own metadata. The result is a plain
dict with any of: scale, mean, std (0..1 scale, as torchvision's Normalize), channel_order,
resize_shortest, crop. Absent keys mean the checkpoint does not say.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from mvit.reading import loads

from .errors import CheckpointError
from .read import read_json
from .validate import finite_triple, positive_int

_MAX_SIZE = 4096


def _size(value: object, key: str, path: Path) -> int | None:
    """HF sizes come as an int, {"height", "width"} or {"shortest_edge"}; square sizes only."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "shortest_edge" in value:
            return positive_int(value, "shortest_edge", path, default=None, upper=_MAX_SIZE)
        h = positive_int(value, "height", path, default=None, upper=_MAX_SIZE)
        w = positive_int(value, "width", path, default=None, upper=_MAX_SIZE)
        if h != w:
            raise CheckpointError(f"{path}: {key} is {h}x{w}; mvit exports square inputs, pass --image-size")
        return h
    return positive_int({key: value}, key, path, default=None, upper=_MAX_SIZE)


@dataclass(frozen=True)
class _ProcessorRules:
    """What one transformers image processor class does to pixels, whatever else its file holds."""

    flips_channels: bool  # has a do_flip_channel_order step (default on)
    normalizes: bool  # has a do_normalize step at all
    normalizes_by_default: bool
    center_crops: bool  # has a do_center_crop step (default on)


# MobileViT's processor (every backend and its older names) rescales, crops and flips RGB to BGR;
# it has no normalisation step, so image_mean/image_std in its file are never applied, though
# transformers 5 writes them there. ViT's processor normalises by default and keeps RGB.
_MOBILEVIT = _ProcessorRules(flips_channels=True, normalizes=False, normalizes_by_default=False, center_crops=True)
_VIT = _ProcessorRules(flips_channels=False, normalizes=True, normalizes_by_default=True, center_crops=False)
_PROCESSORS = {
    **dict.fromkeys(("MobileViTImageProcessor", "MobileViTImageProcessorPil", "MobileViTImageProcessorFast", "MobileViTFeatureExtractor"), _MOBILEVIT),
    **dict.fromkeys(("ViTImageProcessor", "ViTImageProcessorPil", "ViTImageProcessorFast", "ViTFeatureExtractor"), _VIT),
}
SUPPORTED_PROCESSORS = tuple(_PROCESSORS)


def _processor_rules(pp: dict, path: Path) -> _ProcessorRules:
    """The class transformers' AutoImageProcessor would build from this file; without a class name it
    falls back to the model type's own processor, MobileViT's for mobilevit and mobilevitv2."""
    name = pp.get("image_processor_type", pp.get("feature_extractor_type"))
    if name is None:
        return _MOBILEVIT
    rules = _PROCESSORS.get(name) if isinstance(name, str) else None
    if rules is None:
        raise CheckpointError(
            f"{path}: image_processor_type {name!r} is not one whose pixel rules mvit knows (MobileViTImageProcessor, "
            "ViTImageProcessor); export the weights file alone with --channel-order, --mean and --std"
        )
    return rules


def hf_preprocessing(folder: Path) -> dict | None:
    path = folder / "preprocessor_config.json"
    if not path.exists():
        return None
    pp = read_json(path)
    if not isinstance(pp, dict):
        raise CheckpointError(f"{path} is not a JSON object")
    rules = _processor_rules(pp, path)
    out: dict = {}
    out["channel_order"] = "BGR" if rules.flips_channels and pp.get("do_flip_channel_order", True) else "RGB"
    factor = pp.get("rescale_factor", 1 / 255)
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor <= 0:
        raise CheckpointError(f"{path}: rescale_factor is {factor!r}; it must be a positive number")
    out["scale"] = float(factor) if pp.get("do_rescale", True) else 1.0
    if rules.normalizes and pp.get("do_normalize", rules.normalizes_by_default):
        out["mean"] = finite_triple(pp.get("image_mean", 0.5), "image_mean", path)
        out["std"] = finite_triple(pp.get("image_std", 0.5), "image_std", path, positive=True)
    crop = _size(pp.get("crop_size"), "crop_size", path) if rules.center_crops and pp.get("do_center_crop", True) else None
    resize = _size(pp.get("size"), "size", path) if pp.get("do_resize", True) else None
    if crop:
        out["crop"] = crop
        out["resize_shortest"] = max(resize or crop, crop)
    elif resize:
        out["crop"] = out["resize_shortest"] = resize
    return out


def native_preprocessing(metadata: dict[str, str], path: Path) -> dict | None:
    """mvit's own .safetensors: `mvit.preprocess` JSON, plus the older `mvit.channel_order`."""
    out: dict = {}
    if "mvit.preprocess" in metadata:
        try:
            recorded = loads(metadata["mvit.preprocess"])
        except ValueError:
            recorded = None
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{path}: mvit.preprocess is not a JSON object; re-save it with save_checkpoint")
        if "scale" in recorded:
            out["scale"] = finite_triple(recorded["scale"], "mvit.preprocess scale", path, positive=True)[0]
        if "mean" in recorded:
            out["mean"] = finite_triple(recorded["mean"], "mvit.preprocess mean", path)
        if "std" in recorded:
            out["std"] = finite_triple(recorded["std"], "mvit.preprocess std", path, positive=True)
    if metadata.get("mvit.channel_order") in ("RGB", "BGR"):
        out["channel_order"] = metadata["mvit.channel_order"]
    return out or None
