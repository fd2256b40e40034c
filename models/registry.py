"""The one registry of models: name -> builder, task, default input size, preprocessing, labels.

Adding a model is one builder plus one `register(...)` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Literal

from torch import nn

from .deeplabv3 import DeepLabV3, deeplabv3_mobilevit_v2
from .mobilenet_v2 import MobileNetV2
from .mobilevit import MobileViT, resolve_patch_sizes
from .mobilevit_v2 import WIDTHS, MobileViTV2
from .ssdlite import SSDLite

Task = Literal["classification", "segmentation", "detection"]
ChannelOrder = Literal["RGB", "BGR"]


@dataclass(frozen=True)
class PreprocessSpec:
    """How RGB pixels in 0..255 become the network's input tensor.

    input = (pixels[channel_order] * scale - mean) / std, after resize/crop.
    Apple's released MobileViT v1 weights were trained on cv2.imread images: BGR, scale 1/255,
    no mean/std (Apple's ml-cvnets cvnets-v0.1 trains from cv2.imread).
    """

    resize_shortest: int
    crop: int
    scale: float = 1 / 255
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: ChannelOrder = "BGR"

    @property
    def has_mean_std(self) -> bool:
        return any(m != 0.0 for m in self.mean) or any(s != 1.0 for s in self.std)

    def with_size(self, crop: int) -> PreprocessSpec:
        """Same recipe at another crop size, keeping the resize/crop ratio."""
        return replace(self, crop=crop, resize_shortest=round(crop * self.resize_shortest / self.crop))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    builder: Callable[..., nn.Module]
    task: Task
    input_size: int
    preprocess: PreprocessSpec
    num_classes: int
    labels_file: str | None = None  # a file in models/labels/, else generic names
    supports_patch_config: bool = True
    fixed_patch_reason: str = "has no MobileViT blocks"  # why config B is refused, when it is
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def default_labels(self, num_classes: int | None = None) -> list[str]:
        n = num_classes or self.num_classes
        if self.labels_file and n == self.num_classes:
            text = resources.files(__package__).joinpath("labels", self.labels_file).read_text()
            return [line for line in text.splitlines() if line]
        return [f"class_{i}" for i in range(n)]


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models(task: Task | None = None) -> list[str]:
    return sorted(n for n, s in _REGISTRY.items() if task is None or s.task == task)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {known_models_short()}") from None


def known_models_short() -> str:
    """Every registered name, sizes of one family together ('mobilevit_s/xs/xxs'), short enough for
    the one error line (a flat list of 16 names would be cut)."""
    families: dict[str, list[str]] = {}
    for model in list_models():
        family, _, size = model.rpartition("_")
        families.setdefault(family, []).append(size)
    return ", ".join(f"{family}_{'/'.join(sizes)}" for family, sizes in families.items())


def create_model(name: str, config: str | tuple[int, int, int] = "A", num_classes: int | None = None) -> nn.Module:
    """Build a registered model with random weights, in eval mode.

    `config` is the paper's patch-size config: "A" (2,2,2), "B" (8,4,2) or explicit sizes.
    """
    spec = get_spec(name)
    kwargs: dict[str, object] = {"num_classes": num_classes or spec.num_classes}
    if spec.supports_patch_config:
        kwargs["patch_sizes"] = resolve_patch_sizes(config)
    elif resolve_patch_sizes(config) != resolve_patch_sizes("A"):
        raise ValueError(f"{name} {spec.fixed_patch_reason}, so patch config {config!r} does not apply")
    model = spec.builder(**kwargs)
    return model.eval()


_CLS = PreprocessSpec(resize_shortest=288, crop=256)
_SEG = PreprocessSpec(resize_shortest=544, crop=512)
_DET = PreprocessSpec(resize_shortest=320, crop=320)
_SIZE_NAMES = {"xxs": "XX-Small", "xs": "X-Small", "s": "Small"}

for _size, _long in _SIZE_NAMES.items():
    register(
        ModelSpec(
            f"mobilevit_{_size}",
            lambda s=_size, **kw: MobileViT(s, **kw),
            "classification",
            256,
            _CLS,
            1000,
            description=f"MobileViT-{_long} ImageNet-1k classifier",
        )
    )
    register(
        ModelSpec(
            f"deeplabv3_mobilevit_{_size}",
            lambda s=_size, **kw: DeepLabV3(s, **kw),
            "segmentation",
            512,
            _SEG,
            21,
            labels_file="voc.txt",
            description=f"DeepLabV3 MobileViT-{_long}, PASCAL VOC",
        )
    )
    register(
        ModelSpec(
            f"ssdlite_mobilevit_{_size}",
            lambda s=_size, **kw: SSDLite(s, **kw),
            "detection",
            320,
            _DET,
            81,
            labels_file="coco.txt",
            description=f"SSDLite MobileViT-{_long}, COCO",
        )
    )

_V2_FIXED = "uses patch size 2 in every MobileViT v2 block (the paper's only setting)"
for _width, _mult in WIDTHS.items():
    register(
        ModelSpec(
            f"mobilevitv2_{_width}",
            lambda w=_width, **kw: MobileViTV2(w, **kw),
            "classification",
            256,
            _CLS,
            1000,
            supports_patch_config=False,
            fixed_patch_reason=_V2_FIXED,
            description=f"MobileViT v2 {_mult} ImageNet-1k classifier",
        )
    )
    register(
        ModelSpec(
            f"deeplabv3_mobilevitv2_{_width}",
            lambda w=_width, **kw: deeplabv3_mobilevit_v2(w, **kw),
            "segmentation",
            512,
            _SEG,
            21,
            labels_file="voc.txt",
            supports_patch_config=False,
            fixed_patch_reason=_V2_FIXED,
            description=f"DeepLabV3 MobileViT v2 {_mult}, PASCAL VOC",
        )
    )

register(
    ModelSpec(
        "mobilenet_v2",
        MobileNetV2,
        "classification",
        224,
        # torchvision's recipe: RGB, ImageNet mean/std.
        PreprocessSpec(256, 224, 1 / 255, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "RGB"),
        1000,
        supports_patch_config=False,
        description="MobileNetV2 1.0 (paper baseline)",
    )
)
