"""Unfold and fold MobileViT patches with one channels-last permute each (LiteRT).

LiteRT runs convolutions channels-last (NHWC); the converter wraps the network as written in
NCHW <-> NHWC transposes around every conv, so the network's rank-4 unfold (two transposes, see
models/mobilevit_block.py) became three TRANSPOSE ops per unfold and three per fold. Written from
the channels-last view instead, [B, C, H, W] -> permute to [B, H, W, C] (which cancels the
converter's own transpose after the conv before it) -> [B, nh, p, nw, p, C] -> one permute to
[B, p, p, nh, nw, C] -> [B*P, N, C], each unfold and fold is one rank-6 TRANSPOSE that XNNPACK
runs in place of three.

Tokens keep the network's order exactly ([B*P, N, C], pixel offset major, patch index minor in
row-major order), so the transformer sees the same tensor and the outputs are the same values.
Rank 6 is fine for LiteRT/XNNPACK; CoreML rejects rank > 5, so only LiteRT takes this rewrite.
"""

from __future__ import annotations

import torch
from torch import nn

from mvit.models.mobilevit_block import MobileVitBlock

from .registry import RewriteContext, Rewritten, register_rewrite
from .swap import adopt_block, swap_modules


def unfold_channels_last(x: torch.Tensor, p: int) -> torch.Tensor:
    """[B, C, H, W] -> [B*P, N, C], identical to models.mobilevit_block.unfold_patches(x, p, p)."""
    b, c, h, w = x.shape
    nh, nw = h // p, w // p
    y = x.permute(0, 2, 3, 1).reshape(b, nh, p, nw, p, c).permute(0, 2, 4, 1, 3, 5)
    return y.reshape(b * p * p, nh * nw, c)


def fold_channels_last(x: torch.Tensor, batch: int, height: int, width: int, p: int) -> torch.Tensor:
    """Exact inverse of `unfold_channels_last`."""
    c = x.shape[-1]
    nh, nw = height // p, width // p
    y = x.reshape(batch, p, p, nh, nw, c).permute(0, 3, 1, 4, 2, 5)
    return y.reshape(batch, height, width, c).permute(0, 3, 1, 2)


class ChannelsLastPatchBlock(MobileVitBlock):
    """A MobileVitBlock's own modules (same names, so parameter names do not change) with the
    unfold/fold above."""

    def __init__(self, block: MobileVitBlock) -> None:
        adopt_block(self, block)

    def unfold(self, y: torch.Tensor, p: int) -> torch.Tensor:
        return unfold_channels_last(y, p)

    def fold(self, y: torch.Tensor, batch: int, height: int, width: int, p: int) -> torch.Tensor:
        return fold_channels_last(y, batch, height, width, p)


def rewrite_channels_last_patches(net: nn.Module) -> list[str]:
    """Swap every MobileViT v1 block of `net` (a copy the caller owns); returns their names."""
    return swap_modules(net, MobileVitBlock, ChannelsLastPatchBlock)


@register_rewrite("channels_last_patches", order=20, applies_to=frozenset({"tflite"}), excludes=frozenset({"patch_layout"}), bakes_size=True)
def channels_last_patches_rewrite(net: nn.Module, context: RewriteContext) -> Rewritten:
    blocks = rewrite_channels_last_patches(net)
    report = {"blocks": blocks, "layout": "one channels-last permute per unfold and fold"}
    return Rewritten(net, report, changed=True) if blocks else Rewritten(net)
