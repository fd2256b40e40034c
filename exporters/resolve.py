"""From what the user named (a registered model, a checkpoint, or their own factory) to one network
with its task, size, preprocessing and labels, every value checked before anything is built.

Preprocessing precedence: command line > what the checkpoint records > the model's default.
Where mvit has to assume (a bare state dict records nothing), ResolvedModel.notes says so, and
the CLI prints it with the flags that override it.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from mvit.errors import one_line
from mvit.models import PATCH_CONFIGS, PreprocessSpec, create_model, get_spec
from mvit.models.checkpoints import CheckpointError, load_checkpoint
from mvit.models.facts import attention_bytes, input_multiple, patch_block_inputs

from .base import ExportError
from .labels import read_labels_file, resolve_labels
from .report import SizeFit

RANDOM_WEIGHTS_SEED = 0  # random-weight exports are reproducible, so re-exports are byte-identical
MIN_IMAGE_SIZE = 32
# MobileViT attention memory grows with the 4th power of the input size (tokens^2); 1024 is already
# 4x the segmentation default and needs a few GB. Bigger inputs are not what phones run.
MAX_IMAGE_SIZE = 1024


@dataclass
class ResolvedModel:
    name: str
    task: str  # classification | segmentation | detection | generic
    net: nn.Module  # eval mode, not yet fused
    config: str
    image_size: int
    preprocess: PreprocessSpec
    labels: list[str]
    weights: str  # "random (seed 0)" or the checkpoint path
    notes: list[str] = field(default_factory=list)  # what mvit assumed, for the user to check


def describe_preprocess(spec: PreprocessSpec) -> str:
    """One short phrase for result lines: 'BGR, x/255' or 'RGB, (x/255 - mean) / std'."""
    scale = "x/255" if math.isclose(spec.scale, 1 / 255) else f"x*{spec.scale:g}"
    if not spec.has_mean_std:
        return f"{spec.channel_order}, {scale}"
    fmt = lambda v: ",".join(f"{x:g}" for x in v)  # noqa: E731
    return f"{spec.channel_order}, ({scale} - [{fmt(spec.mean)}]) / [{fmt(spec.std)}]"


@contextlib.contextmanager
def _current_folder_importable() -> Iterator[None]:
    """`mynet.py` in the folder the command runs in imports as `mynet`, as `python -m` would find it;
    last on the path, so it never shadows an installed package."""
    cwd = os.getcwd()
    added = cwd not in sys.path and "" not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        yield
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)


def load_factory(ref: str) -> nn.Module:
    """Import and call a user's `pkg.module:factory`. Only ever called with a name the user typed
    on the command line or passed in code, never with one read from a file."""
    module_name, _, attr = ref.partition(":")
    if not module_name or not attr:
        raise ExportError(f"--model {ref!r} is not 'pkg.module:function'")
    with _current_folder_importable():
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError) as exc:
            raise ExportError(
                f"cannot load model factory {ref!r} ({exc}); give an importable 'pkg.module:function' (from the current folder, or installed, or on PYTHONPATH)"
            ) from None
        try:
            net = factory()
        except Exception as exc:
            raise ExportError(f"model factory {ref!r} failed: {exc.__class__.__name__}: {exc}") from None
    if not isinstance(net, nn.Module):
        raise ExportError(f"model factory {ref!r} returned {type(net).__name__}, not a torch nn.Module")
    return net.eval()


def check_size_number(image_size: int, where: str = "--image-size") -> None:
    """The checks that need no network: a whole number of pixels, not below the smallest size."""
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise ExportError(f"{where} {image_size!r} is not a whole number of pixels")
    if image_size < MIN_IMAGE_SIZE:
        raise ExportError(f"{where} {image_size} is too small; use at least {MIN_IMAGE_SIZE}")


def check_size_bounds(image_size: int, where: str = "--image-size", net: nn.Module | None = None) -> None:
    """Refuse sizes no phone runs; with `net`, the refusal of a large size says what its attention would need."""
    check_size_number(image_size, where)
    if image_size > MAX_IMAGE_SIZE:
        gb = _attention_gb(net, image_size)
        amount = f"{gb:.0f}" if gb >= 1 else f"{gb:.2g}"  # v2's separable attention needs well under 1 GB
        need = f"MobileViT's attention alone would need about {amount} GB at that size" if gb else "bigger inputs are not what phones run"
        raise ExportError(f"{where} {image_size} is too large: {need}; use at most {MAX_IMAGE_SIZE}")


def _attention_gb(net: nn.Module | None, image_size: int) -> float:
    if net is None:
        return 0.0
    try:
        return attention_bytes(net, image_size) / 1e9
    except Exception:  # a network that cannot run at the probe size: refused below anyway, without a figure
        return 0.0


def check_image_size(net: nn.Module, image_size: int, config: str, model_name: str) -> SizeFit:
    """Probe the network once and record each patch block's feature-map size vs its patch.

    Config B (patches 8/4/2) must tile its feature maps exactly: resizing an 8x8-patch stage
    changes the function a lot, so such sizes are rejected with the nearest size that works.
    Config A, MobileViT v2 and custom networks keep the reference behaviour (ml-cvnets/HF/timm):
    maps that are not a multiple of the patch are resized inside the block.
    Its callers have checked the size's bounds (resolve_model, multisize.prepare) before this probe.
    """
    try:
        blocks = patch_block_inputs(net, image_size)
    except Exception as exc:
        raise ExportError(f"{model_name} cannot run at --image-size {image_size} ({exc.__class__.__name__}); try a larger size such as 256") from None
    need = input_multiple(blocks)
    misfit = [b for b in blocks if b.resized]
    if misfit and config == "B":
        lower = max(need, image_size // need * need)
        upper = lower + need if lower < image_size else lower
        if upper > MAX_IMAGE_SIZE:
            upper = lower
        f, p = misfit[0].feature_size, misfit[0].patch_size
        raise ExportError(
            f"config B cannot take --image-size {image_size}: a {f}x{f} feature map does not split into {p}x{p} patches; "
            f"use a multiple of {need}, e.g. {lower}" + (f" or {upper}" if upper != lower else "")
        )
    return SizeFit(bool(misfit), need)


def _preprocess(
    base: PreprocessSpec, recorded: dict | None, size: int, *, channel_order: str | None, mean: tuple[float, ...] | None, std: tuple[float, ...] | None
) -> PreprocessSpec:
    """Merge default < checkpoint < command line.

    Users, HF processors and mvit's metadata give mean/std in R,G,B order (HF normalises before
    its BGR flip); PreprocessSpec holds them in the network's channel order, so for BGR
    networks they are reversed here, once.
    """
    as_rgb = lambda v, order: tuple(v)[::-1] if order == "BGR" else tuple(v)  # noqa: E731
    rgb_mean, rgb_std = as_rgb(base.mean, base.channel_order), as_rgb(base.std, base.channel_order)
    spec = base
    recorded = recorded or {}
    keep = {k: recorded[k] for k in ("scale", "channel_order", "resize_shortest", "crop") if k in recorded}
    if "crop" in keep and "resize_shortest" not in keep:
        keep["resize_shortest"] = keep["crop"]
    spec = replace(spec, **keep).with_size(size)
    rgb_mean = tuple(recorded.get("mean", rgb_mean))
    rgb_std = tuple(recorded.get("std", rgb_std))
    if channel_order:
        spec = replace(spec, channel_order=channel_order)
    rgb_mean = tuple(mean) if mean is not None else rgb_mean
    rgb_std = tuple(std) if std is not None else rgb_std
    return replace(spec, mean=as_rgb(rgb_mean, spec.channel_order), std=as_rgb(rgb_std, spec.channel_order))


def _check_config(asked: str | None, recorded: str, checkpoint: Path) -> None:
    if asked is not None and asked != recorded:
        raise ExportError(
            f"{checkpoint} was trained with patch config {recorded} {PATCH_CONFIGS[recorded]}; --config {asked} would change "
            f"what its weights compute. Drop --config, or use weights trained with config {asked}"
        )


def resolve_model(
    model_name: str | None,
    *,
    config: str | None = None,
    image_size: int | None = None,
    checkpoint: Path | None = None,
    labels: Path | None = None,
    channel_order: str | None = None,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    size_checked: bool = False,
) -> ResolvedModel:
    """`config=None` means: what the checkpoint records, else A. `size_checked`: the caller has
    checked `image_size` against check_size_bounds already (before building any network)."""
    asked_config = str(config).upper() if config is not None else None
    if channel_order is not None:
        channel_order = channel_order.upper()
        if channel_order not in ("RGB", "BGR"):
            raise ExportError(f"unknown --channel-order {channel_order!r}: use RGB or BGR")
    if asked_config is not None and asked_config not in ("A", "B") and not (asked_config == "CUSTOM" and model_name and ":" in model_name):
        raise ExportError(f"unknown --config {config!r}: use A (patches 2,2,2) or B (patches 8,4,2)")
    if image_size is not None:  # the upper bound once the network is built: the memory it names is the network's
        check_size_number(image_size)
    if model_name and ":" in model_name:
        return _resolve_factory(model_name, image_size, checkpoint, labels, channel_order, mean, std)

    notes: list[str] = []
    info = None
    if checkpoint is not None:
        net, info = _load(Path(checkpoint), model_name, asked_config or "A")
        model_name = info.model_name
        spec = get_spec(model_name)
        recorded = {v: k for k, v in PATCH_CONFIGS.items()}.get(tuple(info.patch_sizes), "custom")
        if info.config_recorded:
            _check_config(asked_config, recorded, Path(checkpoint))
        config_name = recorded
        weights = str(checkpoint)
        num_classes = info.num_classes
        if info.preprocess is None and channel_order is None and mean is None and std is None:
            notes.append(
                f"{info.format} checkpoints do not record their preprocessing: assumed Apple's (BGR, x/255, no mean/std). "
                "If yours was trained otherwise, pass --channel-order RGB and/or --mean R,G,B --std R,G,B"
            )
    else:
        model_name = model_name or "mobilevit_xs"
        try:
            spec = get_spec(model_name)
        except KeyError as exc:
            raise ExportError(f"{exc.args[0]}; or give 'pkg.module:factory' for your own network") from None
        config_name = asked_config or "A"
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        try:
            net = create_model(model_name, config=config_name)
        except ValueError as exc:
            raise ExportError(str(exc)) from None
        weights = f"random (seed {RANDOM_WEIGHTS_SEED})"
        num_classes = spec.num_classes
    size = image_size or (info.image_size if info and info.image_size else None) or spec.input_size
    if not (size_checked and image_size):
        check_size_bounds(size, "--image-size" if image_size else f"the image size {checkpoint} records", net)
    recorded_pre = dict(info.preprocess or {}) if info else {}
    if info and info.channel_order and "channel_order" not in recorded_pre:
        recorded_pre["channel_order"] = info.channel_order
    preprocess = _preprocess(spec.preprocess, recorded_pre, size, channel_order=channel_order, mean=mean, std=std)
    lbls = resolve_labels(num_classes, labels_file=labels, checkpoint_info=info, defaults=spec.default_labels(num_classes))
    return ResolvedModel(model_name, spec.task, net.eval(), config_name, size, preprocess, lbls, weights, notes)


def _load(checkpoint: Path, model_name: str | None, config: str):

    if not checkpoint.exists():
        raise ExportError(f"checkpoint {checkpoint} does not exist; give a Hugging Face folder, a .pt/.pth/.bin or a .safetensors file")
    try:
        return load_checkpoint(checkpoint, model_name=model_name, config=config)
    except CheckpointError as exc:
        raise ExportError(str(exc)) from None
    except MemoryError:
        raise ExportError(f"{checkpoint} is too large to load in this machine's memory") from None
    except Exception as exc:  # a corrupt file can fail deep inside safetensors/torch
        raise ExportError(f"cannot read checkpoint {checkpoint}: {exc.__class__.__name__}: {one_line(exc)}") from None


def _resolve_factory(
    model_name: str,
    image_size: int | None,
    checkpoint: Path | None,
    labels: Path | None,
    channel_order: str | None,
    mean: tuple[float, ...] | None,
    std: tuple[float, ...] | None,
) -> ResolvedModel:
    if image_size is None:
        raise ExportError(f"--image-size is required for a custom model ({model_name})")
    if checkpoint is not None:
        raise ExportError("--checkpoint applies to registered models only; load weights inside your factory")
    torch.manual_seed(RANDOM_WEIGHTS_SEED)
    net = load_factory(model_name)
    base = PreprocessSpec(resize_shortest=image_size, crop=image_size, channel_order="RGB")
    spec = _preprocess(base, None, image_size, channel_order=channel_order, mean=mean, std=std)
    notes = []
    if channel_order is None and mean is None and std is None:
        notes.append("custom network: assumed RGB, x/255, no mean/std; pass --channel-order/--mean/--std if it expects otherwise")
    lbls = read_labels_file(labels) if labels else []
    return ResolvedModel(model_name, "generic", net, "custom", image_size, spec, lbls, f"from factory {model_name}", notes)
