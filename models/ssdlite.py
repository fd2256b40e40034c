"""SSDLite detector on a MobileViT backbone (ml-cvnets' recipe; HF has none).

The network returns raw box offsets and class logits; anchors, decoding and NMS live in
`detection_postprocess.py` so an export can put them inside the model or leave them out.
Head layout as in Apple's ml-cvnets (cvnets-v0.1, the paper release) and the paper (arXiv 2110.02178).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import ConvBnAct
from .mobilevit import MobileViT

PROJ_CHANNELS = (512, 256, 256, 128, 128, 64)
# Anchors per location: aspect ratios [2, 3] on the first five maps, [2] on the global one.
ASPECT_RATIOS: tuple[tuple[int, ...], ...] = ((2, 3),) * 5 + ((2,),)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 + BN, then pointwise 1x1 (BN + ReLU in the extras, bias only in heads)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, head: bool = False) -> None:
        super().__init__()
        self.dw = ConvBnAct(in_channels, in_channels, 3, stride, groups=in_channels, act=None)
        self.pw: nn.Module
        if head:
            self.pw = nn.Conv2d(in_channels, out_channels, 1, bias=True)
        else:
            self.pw = ConvBnAct(in_channels, out_channels, 1, act=nn.ReLU)


class GlobalPoolConv(nn.Module):
    """The last, 1x1 feature map: global average pool, 1x1 conv (no bias, no BN), ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x.mean(dim=(2, 3), keepdim=True)))


class SsdHead(nn.Module):
    def __init__(self, in_channels: int, proj_channels: int, num_anchors: int, num_classes: int, kernel_size: int) -> None:
        super().__init__()
        self.proj = ConvBnAct(in_channels, proj_channels, 1, act=nn.ReLU) if in_channels != proj_channels else nn.Identity()
        out = num_anchors * (4 + num_classes)
        self.loc_cls: nn.Module
        if kernel_size == 3:
            self.loc_cls = SeparableConv(proj_channels, out, head=True)
        else:
            self.loc_cls = nn.Conv2d(proj_channels, out, 1, bias=True)
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.loc_cls(self.proj(x))
        b = y.shape[0]
        # [B, A*(4+C), H, W] -> [B, H*W*A, 4+C]: anchor order is (y, x, anchor), as generated.
        return y.permute(0, 2, 3, 1).reshape(b, -1, 4 + self.num_classes)


class SSDLite(nn.Module):
    """Outputs (box_offsets [B, anchors, 4], class_logits [B, anchors, classes])."""

    def __init__(self, size: str = "xs", patch_sizes: str | tuple[int, int, int] = "A", num_classes: int = 81) -> None:
        super().__init__()
        self.encoder = MobileViT(size, patch_sizes, num_classes=0, final_conv=False)
        self.patch_sizes = self.encoder.patch_sizes
        self.num_classes = num_classes
        c4, c5 = self.encoder.stage_channels[3:]
        p = PROJ_CHANNELS
        # Extra maps at output strides 64, 128, 256 and a global one.
        self.extra_layers = nn.ModuleList(
            [
                SeparableConv(c5, p[2], stride=2),
                SeparableConv(p[2], p[3], stride=2),
                SeparableConv(p[3], p[4], stride=2),
                GlobalPoolConv(p[4], p[5]),
            ]
        )
        in_channels = (c4, c5, *p[2:])
        self.anchors_per_location = tuple(2 + 2 * len(r) for r in ASPECT_RATIOS)
        self.heads = nn.ModuleList(
            [
                SsdHead(c_in, c_proj, a, num_classes, kernel_size=1 if i == len(p) - 1 else 3)
                for i, (c_in, c_proj, a) in enumerate(zip(in_channels, p, self.anchors_per_location))
            ]
        )

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        stages = self.encoder.forward_stages(x)
        maps = [stages[3], stages[4]]
        for extra in self.extra_layers:
            maps.append(extra(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = torch.cat([head(m) for head, m in zip(self.heads, self.feature_maps(x))], dim=1)
        return out[..., :4], out[..., 4:]

    def feature_map_sizes(self, image_size: int | tuple[int, int]) -> list[tuple[int, int]]:
        """Spatial sizes of the six maps for an input size (runs the network once on zeros)."""
        h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
        with torch.no_grad():
            maps = self.feature_maps(torch.zeros(1, 3, h, w))
        return [tuple(m.shape[-2:]) for m in maps]  # type: ignore[misc]
