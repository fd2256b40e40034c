"""avg_pool, max_pool, l2_pool (coremltools ops/defs/iOS15/pool.py), 1-D to 3-D."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._registry import flag, ints, register
from .conv import spatial_padding, to_torch_pad

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _geometry(x, kernel_sizes, strides, pad_type, pad):
    kernel = ints(kernel_sizes)
    strides = ints(strides) if strides is not None else [1] * len(kernel)
    pads = spatial_padding(x.shape, kernel, strides, [1] * len(kernel), pad_type, pad)
    return kernel, strides, to_torch_pad(pads)


@register("max_pool")
def max_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False):
    kernel, strides, tpad = _geometry(x, kernel_sizes, strides, pad_type, pad)
    if any(tpad):
        x = F.pad(x, tpad, value=float("-inf"))
    return _MAX[len(kernel)](x, kernel, strides, ceil_mode=flag(ceil_mode))


@register("avg_pool")
def avg_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, exclude_padding_from_average=False, ceil_mode=False):
    kernel, strides, tpad = _geometry(x, kernel_sizes, strides, pad_type, pad)
    pool = _AVG[len(kernel)]
    ceil = flag(ceil_mode)
    if not any(tpad):
        return pool(x, kernel, strides, ceil_mode=ceil)
    padded = F.pad(x, tpad)
    if not flag(exclude_padding_from_average):
        return pool(padded, kernel, strides, ceil_mode=ceil)
    # Average over real pixels only: the same window mean of a 0/1 mask is the share that is real.
    mask = F.pad(torch.ones_like(x[:1, :1]), tpad)
    return pool(padded, kernel, strides, ceil_mode=ceil) / pool(mask, kernel, strides, ceil_mode=ceil)


@register("l2_pool")
def l2_pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None):
    kernel, strides, tpad = _geometry(x, kernel_sizes, strides, pad_type, pad)
    if any(tpad):
        x = F.pad(x, tpad)
    area = 1
    for k in kernel:
        area *= k
    return torch.sqrt(_AVG[len(kernel)](x * x, kernel, strides) * area)
