"""DeepLabV3 with a MobileViT (v1 or v2) backbone at output stride 16 (paper recipe; HF's
MobileViTForSemanticSegmentation and MobileViTV2ForSemanticSegmentation compute the same function)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBnAct
from .mobilevit import MobileViT
from .mobilevit_v2 import MobileViTV2

ASPP_CHANNELS = 256
ATROUS_RATES = (6, 12, 18)


class AsppPooling(nn.Module):
    """Image-level branch: global average pool, 1x1 conv, upsample back to the map size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = ConvBnAct(in_channels, out_channels, 1, act=nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        y = self.conv(x.mean(dim=(2, 3), keepdim=True))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class Aspp(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = ASPP_CHANNELS, rates=ATROUS_RATES) -> None:
        super().__init__()
        branches: list[nn.Module] = [ConvBnAct(in_channels, out_channels, 1, act=nn.ReLU)]
        branches += [ConvBnAct(in_channels, out_channels, 3, dilation=r, act=nn.ReLU) for r in rates]
        branches.append(AsppPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(branches)
        self.project = ConvBnAct(out_channels * len(branches), out_channels, 1, act=nn.ReLU)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.project(torch.cat([conv(x) for conv in self.convs], dim=1)))


class DeepLabV3(nn.Module):
    """Returns logits at 1/16 of the input (1, 21, 32, 32 at 512), as HF does."""

    def __init__(
        self,
        size: str = "xs",
        patch_sizes: str | tuple[int, int, int] = "A",
        num_classes: int = 21,
        output_stride: int = 16,
        *,
        encoder: MobileViT | MobileViTV2 | None = None,
        aspp_channels: int = ASPP_CHANNELS,
    ) -> None:
        """`encoder` replaces the v1 backbone named by `size`/`patch_sizes` (a v2 backbone,
        built at its output stride with no classifier)."""
        super().__init__()
        if encoder is None:
            encoder = MobileViT(size, patch_sizes, num_classes=0, output_stride=output_stride, final_conv=False)
        self.encoder: MobileViT | MobileViTV2 = encoder
        self.aspp = Aspp(self.encoder.stage_channels[-1], aspp_channels)
        self.drop = nn.Dropout2d(0.1)
        self.classifier = nn.Conv2d(aspp_channels, num_classes, 1, bias=True)
        self.num_classes = num_classes
        self.patch_sizes = self.encoder.patch_sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder.forward_stages(x)[-1]
        return self.classifier(self.drop(self.aspp(features)))


class SegmentationMask(nn.Module):
    """Wraps a segmenter to upsample logits to the input size and return a class-index mask.

    The argmax happens inside the graph so phones get a ready mask instead of 21 maps.
    """

    def __init__(self, segmenter: nn.Module) -> None:
        super().__init__()
        self.segmenter = segmenter

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.segmenter(x)
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return logits.argmax(dim=1).to(torch.int32)


# ml-cvnets' MobileViT v2 DeepLabV3 configs and HF's MobileViTV2Config use 512 ASPP channels (v1: 256).
V2_ASPP_CHANNELS = 512


def deeplabv3_mobilevit_v2(width: str = "100", num_classes: int = 21, output_stride: int = 16) -> DeepLabV3:
    encoder = MobileViTV2(width, num_classes=0, output_stride=output_stride)
    return DeepLabV3(num_classes=num_classes, encoder=encoder, aspp_channels=V2_ASPP_CHANNELS)
