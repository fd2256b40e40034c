"""Trace a MobileViT whose graph reads the input size at run time (ONNX dynamic H/W, CoreML
EnumeratedShapes).

`MobileVitBlock.forward` turns the feature-map size into Python ints (`int(math.ceil(h / p) * p)`)
and branches on whether a resize is needed, so a trace at one size bakes that size into every
reshape of the unfold/fold (measured: a graph traced at 64 fails at 96 in onnxruntime with
"cannot reshape {4,36,64} to {1,4,16,64}"). The forward below keeps the sizes as traced values.
Whether the block resizes is still decided once, from every size the artefact must serve:
if any of them needs a resize, the graph always resizes (a bilinear resize to the same size is
the identity), otherwise it never does, as the eager model does at those sizes.
"""

from __future__ import annotations

import contextlib
import copy
import types
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from mvit.models.mobilevit_block import MobileVitBlock, fold_patches, unfold_patches

from .base import ExportTarget, without_rewrites
from .rewrites import SIZE_BAKING_REWRITES


def for_every_size(target: ExportTarget) -> ExportTarget:
    """The target as build_for_target sees it, minus the rewrites whose modules are traced at one
    size (a graph serving several sizes cannot take them)."""
    return without_rewrites(target, SIZE_BAKING_REWRITES)


@contextlib.contextmanager
def size_generic(module: nn.Module, always_resize: bool) -> Iterator[nn.Module]:
    """A copy of `module` whose MobileViT blocks compute their reshapes from the traced size."""
    generic = copy.deepcopy(module).eval()
    for block in generic.modules():
        if isinstance(block, MobileVitBlock):
            block.forward = types.MethodType(_forward_resizing if always_resize else _forward_exact, block)  # type: ignore[method-assign]
    yield generic


def _forward_exact(self: MobileVitBlock, x: torch.Tensor) -> torch.Tensor:
    shortcut = x
    y = self.conv_1x1(self.conv_kxk(x))
    b, _, h, w = y.shape
    p = self.patch_size
    y = unfold_patches(y, p, p)
    y = self.norm(self.transformer(y))
    y = fold_patches(y, b, h, w, p, p)
    y = self.conv_proj(y)
    return self.conv_fusion(torch.cat([shortcut, y], dim=1))


def _forward_resizing(self: MobileVitBlock, x: torch.Tensor) -> torch.Tensor:
    shortcut = x
    y = self.conv_1x1(self.conv_kxk(x))
    b, _, h, w = y.shape
    p = self.patch_size
    new_h, new_w = (h + p - 1) // p * p, (w + p - 1) // p * p
    y = F.interpolate(y, size=(new_h, new_w), mode="bilinear", align_corners=False)
    y = unfold_patches(y, p, p)
    y = self.norm(self.transformer(y))
    y = fold_patches(y, b, new_h, new_w, p, p)
    y = F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
    y = self.conv_proj(y)
    return self.conv_fusion(torch.cat([shortcut, y], dim=1))
