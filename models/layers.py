"""Convolution building blocks shared by MobileViT, its heads and MobileNetV2.

Module and attribute names follow timm (`conv`, `bn`, `conv1_1x1` ...) so a timm state dict
loads without renaming and the other formats need only one key map each.
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round a channel count to a multiple of `divisor`, never dropping below 90% of it.

    This is the rule of the MobileNetV2 paper's reference code, used by ml-cvnets, HF and timm.
    """
    min_value = min_value or divisor
    new_value = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class ConvBnAct(nn.Sequential):
    """Conv2d (bias-free) -> BatchNorm2d -> activation. After BN fusion only `conv` remains."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: type[nn.Module] | None = nn.SiLU,
    ) -> None:
        super().__init__()
        padding = (kernel_size - 1) // 2 * dilation
        self.conv = nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride,
            padding,
            dilation=dilation,
            groups=groups,
            bias=False,
        )
        self.bn = nn.BatchNorm2d(out_channels, eps=1e-5)
        self.act = act() if act is not None else nn.Identity()


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand, 3x3 depthwise, 1x1 linear reduce; residual when shapes allow."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        expand_ratio: float = 4.0,
        dilation: int = 1,
        act: type[nn.Module] = nn.SiLU,
        skip_expand_when_ratio_one: bool = False,
    ) -> None:
        super().__init__()
        hidden = make_divisible(int(round(in_channels * expand_ratio)), 8)
        self.conv1_1x1: nn.Module
        if skip_expand_when_ratio_one and expand_ratio == 1:
            # torchvision's MobileNetV2 omits the expansion conv in its first block.
            self.conv1_1x1 = nn.Identity()
            hidden = in_channels
        else:
            self.conv1_1x1 = ConvBnAct(in_channels, hidden, 1, act=act)
        self.conv2_kxk = ConvBnAct(hidden, hidden, 3, stride, dilation, groups=hidden, act=act)
        self.conv3_1x1 = ConvBnAct(hidden, out_channels, 1, act=None)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return x + y if self.use_residual else y
