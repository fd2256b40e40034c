"""conv and conv_transpose (coremltools ops/defs/iOS15/conv.py), 1-D to 3-D, via torch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._registry import ints, register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def same_padding(size: list[int], kernel: list[int], strides: list[int], dilations: list[int], lower: bool) -> list[int]:
    """[before0, after0, before1, after1, ...] for pad_type same / same_lower.

    Output size is ceil(in / stride); the odd pixel goes after for `same`, before for `same_lower`
    (the spec's definition, as in TensorFlow's SAME).
    """
    pads: list[int] = []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        out = math.ceil(n / s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        pads += [big, small] if lower else [small, big]
    return pads


def spatial_padding(x_shape, kernel, strides, dilations, pad_type: str, pad) -> list[int]:
    spatial = len(kernel)
    if pad_type == "valid":
        return [0] * (2 * spatial)
    if pad_type in ("same", "same_lower"):
        return same_padding(list(x_shape[-spatial:]), kernel, strides, dilations, pad_type == "same_lower")
    if pad_type == "custom":
        return ints(pad) if pad is not None else [0] * (2 * spatial)
    raise ValueError(f"unknown pad_type {pad_type!r}")


def to_torch_pad(pads: list[int]) -> list[int]:
    """MIL [b0, a0, b1, a1, ...] (first spatial axis first) -> F.pad's last-axis-first order."""
    out: list[int] = []
    for i in reversed(range(len(pads) // 2)):
        out += [pads[2 * i], pads[2 * i + 1]]
    return out


@register("conv")
def conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1):
    spatial = weight.dim() - 2
    kernel = list(weight.shape[2:])
    strides = ints(strides) if strides is not None else [1] * spatial
    dilations = ints(dilations) if dilations is not None else [1] * spatial
    pads = spatial_padding(x.shape, kernel, strides, dilations, pad_type, pad)
    if any(pads):
        x = F.pad(x, to_torch_pad(pads))
    return _CONV[spatial](x, weight, bias, stride=strides, dilation=dilations, groups=ints(groups)[0])


@register("conv_transpose")
def conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None,
                   dilations=None, groups=1):
    # MIL weight is [C_out, C_in / groups, *K]; torch wants [C_in, C_out / groups, *K].
    spatial = weight.dim() - 2
    g = ints(groups)[0]
    c_out, c_in_g = weight.shape[0], weight.shape[1]
    w = weight.reshape(g, c_out // g, c_in_g, *weight.shape[2:]).transpose(1, 2)
    w = w.reshape(g * c_in_g, c_out // g, *weight.shape[2:])
    strides = ints(strides) if strides is not None else [1] * spatial
    dilations = ints(dilations) if dilations is not None else [1] * spatial
    y = _CONV_T[spatial](x, w, bias, stride=strides, dilation=dilations, groups=g)
    if pad_type == "custom" and pad is not None:
        p = ints(pad)
        index = [slice(None), slice(None)]
        for i in range(spatial):
            index.append(slice(p[2 * i], y.shape[2 + i] - p[2 * i + 1]))
        y = y[tuple(index)]
    elif pad_type == "same":
        want = [n * s for n, s in zip(x.shape[2:], strides)]
        index = [slice(None), slice(None)]
        for i, n in enumerate(want):
            extra = y.shape[2 + i] - n
            index.append(slice(extra // 2, extra // 2 + n))
        y = y[tuple(index)]
    if output_shape is not None:
        shape = ints(output_shape)[-spatial:]
        y = y[(slice(None), slice(None), *[slice(0, n) for n in shape])]
    return y
