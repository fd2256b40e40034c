"""MobileViT v2 (Mehta & Rastegari 2022) at width multipliers 0.5, 0.75 and 1.0.

Channel widths follow ml-cvnets' `mobilevit_v2` config as HF computes them; module names follow
timm's `mobilevitv2_*`, so a timm state dict loads as is. v2 has one patch size, 2, in every
stage: patch config B does not exist for it.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBnAct, InvertedResidual, make_divisible
from .mobilevit import ClassifierHead
from .mobilevit_v2_block import PATCH_SIZE, MobileVitV2Block

WIDTHS: dict[str, float] = {"050": 0.5, "075": 0.75, "100": 1.0}
DEPTHS = (2, 4, 3)  # separable-attention layers in the three v2 blocks
EXPAND_RATIO = 2.0


def stage_channels(width: float) -> tuple[int, tuple[int, int, int, int, int], tuple[int, int, int]]:
    """(stem, outputs of layer_1 .. layer_5, attention widths) for a width multiplier."""
    stem = make_divisible(min(max(32 * width, 16), 64), 8, min_value=16)
    channels = (
        make_divisible(64 * width, 16),
        *(make_divisible(c * width, 8) for c in (128, 256, 384, 512)),
    )
    dims = tuple(make_divisible(d * width, 8) for d in (128, 192, 256))
    return stem, channels, dims  # type: ignore[return-value]


class MobileViTV2(nn.Module):
    """Backbone with optional classifier; `output_stride=16` dilates the last stage (DeepLabV3)."""

    def __init__(
        self,
        width: str | float = "100",
        num_classes: int = 1000,
        output_stride: int = 32,
        drop_rate: float = 0.0,
        in_chans: int = 3,
    ) -> None:
        super().__init__()
        if isinstance(width, str):
            if width not in WIDTHS:
                raise ValueError(f"unknown MobileViT v2 width {width!r}: use one of {sorted(WIDTHS)}")
            width = WIDTHS[width]
        if output_stride not in (8, 16, 32):
            raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride}")
        stem, channels, dims = stage_channels(width)
        c1, c2, c3, c4, c5 = channels
        self.width = width
        self.patch_sizes = (PATCH_SIZE, PATCH_SIZE, PATCH_SIZE)
        self.output_stride = output_stride

        self.stem = ConvBnAct(in_chans, stem, 3, stride=2)
        stages: list[nn.Module] = [
            nn.Sequential(InvertedResidual(stem, c1, 1, EXPAND_RATIO)),
            nn.Sequential(InvertedResidual(c1, c2, 2, EXPAND_RATIO), InvertedResidual(c2, c2, 1, EXPAND_RATIO)),
        ]
        # As in v1 (and HF, ml-cvnets): a dilated stage's stride-2 MV2 becomes stride 1 and keeps
        # the dilation of the stage before it. HF leaves the block's depthwise conv undilated;
        # ml-cvnets dilates it. We follow HF, whose logits the tests hold us to.
        dilate = {8: (True, True), 16: (False, True), 32: (False, False)}[output_stride]
        dilation = 1
        in_ch = c2
        for i, (out_ch, dim, depth) in enumerate(zip((c3, c4, c5), dims, DEPTHS)):
            stride = 2
            prev_dilation = dilation
            if i >= 1 and dilate[i - 1]:
                dilation *= 2
                stride = 1
            stages.append(
                nn.Sequential(
                    InvertedResidual(in_ch, out_ch, stride, EXPAND_RATIO, dilation=prev_dilation),
                    MobileVitV2Block(out_ch, dim, depth),
                )
            )
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.stage_channels = channels
        self.num_features = c5  # v2 has no 1x1 expansion before the classifier
        self.num_classes = num_classes
        self.head = ClassifierHead(c5, num_classes, drop_rate) if num_classes > 0 else nn.Identity()

    def forward_stages(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of layer_1 .. layer_5 (strides 2, 4, 8, 16, 32 at output stride 32)."""
        x = self.stem(x)
        outs = []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return outs

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_stages(x)[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward_features(x))
