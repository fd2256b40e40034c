"""MobileNetV2 (Sandler et al. 2018), the paper's main comparison model.

torchvision's layout (3.5M parameters, ReLU6), built from this package's InvertedResidual.
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBnAct, InvertedResidual, make_divisible
from .mobilevit import ClassifierHead

# (expand ratio, channels, repeats, first stride) from the MobileNetV2 paper, table 2.
SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, drop_rate: float = 0.2) -> None:
        super().__init__()
        stem_ch = make_divisible(32 * width_mult)
        self.stem = ConvBnAct(3, stem_ch, 3, stride=2, act=nn.ReLU6)
        blocks: list[nn.Module] = []
        in_ch = stem_ch
        for t, c, n, s in SETTINGS:
            out_ch = make_divisible(c * width_mult)
            for i in range(n):
                blocks.append(InvertedResidual(in_ch, out_ch, s if i == 0 else 1, t, act=nn.ReLU6, skip_expand_when_ratio_one=True))
                in_ch = out_ch
        self.stages = nn.Sequential(*blocks)
        self.num_features = make_divisible(1280 * max(1.0, width_mult))
        self.final_conv = ConvBnAct(in_ch, self.num_features, 1, act=nn.ReLU6)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.final_conv(self.stages(self.stem(x))))
