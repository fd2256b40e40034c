"""MobileViT v1 (Mehta & Rastegari, ICLR 2022) in sizes XXS, XS and S.

Patch sizes are per stage, so the paper's config A (2, 2, 2) and config B (8, 4, 2) are a
parameter. Figures are from the paper (arXiv 2110.02178) and Apple's ml-cvnets (cvnets-v0.1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layers import ConvBnAct, InvertedResidual
from .mobilevit_block import MobileVitBlock

PATCH_CONFIGS: dict[str, tuple[int, int, int]] = {"A": (2, 2, 2), "B": (8, 4, 2)}


@dataclass(frozen=True)
class MobileVitSize:
    stem: int
    channels: tuple[int, int, int, int, int]  # outputs of layer_1 .. layer_5
    dims: tuple[int, int, int]  # transformer width of the three MobileViT blocks
    depths: tuple[int, int, int] = (2, 4, 3)
    expand_ratio: float = 4.0
    final_channels: int = 640  # min(4 * channels[-1], 960)

    @property
    def hf_neck_hidden_sizes(self) -> list[int]:
        return [self.stem, *self.channels, self.final_channels]


SIZES: dict[str, MobileVitSize] = {
    "xxs": MobileVitSize(16, (16, 24, 48, 64, 80), (64, 80, 96), expand_ratio=2.0, final_channels=320),
    "xs": MobileVitSize(16, (32, 48, 64, 80, 96), (96, 120, 144), final_channels=384),
    "s": MobileVitSize(16, (32, 64, 96, 128, 160), (144, 192, 240), final_channels=640),
}


def resolve_patch_sizes(config: str | tuple[int, int, int]) -> tuple[int, int, int]:
    if isinstance(config, str):
        try:
            return PATCH_CONFIGS[config.upper()]
        except KeyError:
            raise ValueError(f"unknown patch config {config!r}: use 'A' (2,2,2) or 'B' (8,4,2)") from None
    sizes = tuple(int(p) for p in config)
    if len(sizes) != 3 or min(sizes) < 1:
        raise ValueError(f"patch sizes must be three positive ints, got {config!r}")
    return sizes  # type: ignore[return-value]


class MobileViT(nn.Module):
    """Backbone with optional 1x1 expansion and classifier.

    `output_stride=16` turns the last downsampling into stride 1 (dilated, as DeepLabV3 needs);
    `num_classes=0` drops the classifier, `final_conv=False` the 1x1 expansion conv.
    """

    def __init__(
        self,
        size: str = "xs",
        patch_sizes: str | tuple[int, int, int] = "A",
        num_classes: int = 1000,
        output_stride: int = 32,
        final_conv: bool = True,
        drop_rate: float = 0.1,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"unknown MobileViT size {size!r}: use one of {sorted(SIZES)}")
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        spec = SIZES[size]
        self.size = size
        self.patch_sizes = resolve_patch_sizes(patch_sizes)
        self.output_stride = output_stride
        exp = spec.expand_ratio
        c1, c2, c3, c4, c5 = spec.channels

        self.stem = ConvBnAct(in_chans, spec.stem, 3, stride=2)
        stages: list[nn.Module] = [
            nn.Sequential(InvertedResidual(spec.stem, c1, 1, exp)),
            nn.Sequential(
                InvertedResidual(c1, c2, 2, exp),
                InvertedResidual(c2, c2, 1, exp),
                InvertedResidual(c2, c2, 1, exp),
            ),
        ]
        # Which of the last two stages keep stride 1 for output stride 16 / 8. Like HF and
        # ml-cvnets, the dilated stage's first MV2 keeps the dilation of the stage before it.
        dilate = {8: (True, True), 16: (False, True), 32: (False, False)}[output_stride]
        dilation = 1
        in_ch = c2
        for i, (out_ch, dim, depth, patch) in enumerate(zip((c3, c4, c5), spec.dims, spec.depths, self.patch_sizes)):
            stride = 2
            prev_dilation = dilation
            if i >= 1 and dilate[i - 1]:
                dilation *= 2
                stride = 1
            stages.append(
                nn.Sequential(
                    InvertedResidual(in_ch, out_ch, stride, exp, dilation=prev_dilation),
                    MobileVitBlock(out_ch, dim, depth, patch),
                )
            )
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.stage_channels = spec.channels
        self.num_features = spec.final_channels if final_conv else c5
        self.final_conv = ConvBnAct(c5, spec.final_channels, 1) if final_conv else nn.Identity()
        self.num_classes = num_classes
        self.head: nn.Module
        if num_classes > 0:
            self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        else:
            self.head = nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer_1 .. layer_5 (strides 2, 4, 8, 16, 32 at output stride 32)."""
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.final_conv(self.forward_stages(x)[-1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))


class ClassifierHead(nn.Module):
    """Global mean pool, dropout, linear. Named `head.fc` as in timm."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.1) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(x.mean(dim=(2, 3))))
