"""What export checks ask of a network, answered by its own blocks (MobileViT v1 and v2 alike):
the multiple of the input size it needs, whether it resizes feature maps at a size, and how much
memory its attention takes.

A block that cuts its feature map into patches resizes a map that is not a multiple of its patch
(up, and for v1 back again), so the input multiple is each block's stride times its patch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import nn

from .mobilevit_block import MobileVitBlock
from .mobilevit_v2_block import MobileVitV2Block
from .probe import inputs_of

PATCH_BLOCKS: tuple[type[MobileVitBlock] | type[MobileVitV2Block], ...] = (MobileVitBlock, MobileVitV2Block)
# Size the memory estimate probes at: the registry's classifier default, small enough to run
# anywhere, and the strides it reveals hold at any size.
PROBE_SIZE = 256


@dataclass(frozen=True)
class PatchBlockInput:
    """One call of a patch block when the network runs at one input size."""

    block: MobileVitBlock | MobileVitV2Block
    feature_size: int  # last side of the feature map the block is given
    stride: int  # input pixels per feature-map pixel, a power of two

    @property
    def patch_size(self) -> int:
        return self.block.patch_size

    @property
    def resized(self) -> bool:
        return self.feature_size % self.patch_size != 0


def patch_block_inputs(net: nn.Module, image_size: int) -> list[PatchBlockInput]:
    """Every patch block call, in call order, when `net` runs once at `image_size`; the network's
    own exceptions pass through."""
    return [PatchBlockInput(block, shape[-1], 2 ** round(math.log2(image_size / shape[-1]))) for block, shape in inputs_of(net, PATCH_BLOCKS, image_size)]


def input_multiple(blocks: list[PatchBlockInput]) -> int:
    """Smallest input-size step at which none of `blocks` resizes (1: no patch block)."""
    return math.lcm(1, *(b.stride * b.patch_size for b in blocks))


def resizes_at(net: nn.Module, sizes: list[int]) -> bool:
    """True when at some of `sizes` some patch block's feature map is not a multiple of its patch."""
    return any(b.resized for size in sizes for b in patch_block_inputs(net, size))


def attention_bytes(net: nn.Module, image_size: int) -> int:
    """Largest attention tensor of one image at `image_size` (0: no patch block), from strides
    seen at PROBE_SIZE, so that the estimate never needs the memory it warns about."""
    blocks = patch_block_inputs(net, PROBE_SIZE)
    return max((b.block.attention_bytes(math.ceil(image_size / b.stride)) for b in blocks), default=0)
