"""conv and conv_transpose (coremltools ops/defs/iOS15/conv.py), 1-D to 3-D, via torch."""

from __future__ import annotations

import math

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
def conv_transpose(x, weight, bias=None, pad=None, output_shape=None, pad_type="valid", strides=None, dilations=None, groups=1):
    # MIL weight is [C_in, C_out / groups, *K], as torch's. The full ("valid") transposed conv is
    # computed, then cropped: custom by `pad`, same to in * stride with the odd pixel cropped at
    # the end (TensorFlow's rule, which the op's shape inference follows), then to output_shape
    # (rows past the full output receive no kernel taps, so they are zeros).
    spatial = weight.dim() - 2
    strides = ints(strides) if strides is not None else [1] * spatial
    dilations = ints(dilations) if dilations is not None else [1] * spatial
    y = _CONV_T[spatial](x, weight, bias, stride=strides, dilation=dilations, groups=ints(groups)[0])
    full = list(y.shape[2:])
    if pad_type == "custom" and pad is not None:
        p = ints(pad)
        crops = [(p[2 * i], full[i] - p[2 * i + 1]) for i in range(spatial)]
    elif pad_type == "same":
        want = [n * s for n, s in zip(x.shape[2:], strides)]
        crops = [((f - w) // 2, (f - w) // 2 + w) for f, w in zip(full, want)]
    else:
        crops = [(0, f) for f in full]
    y = y[(slice(None), slice(None), *[slice(a, b) for a, b in crops])]
    if output_shape is not None:
        shape = ints(output_shape)[-spatial:]
        y = y[(slice(None), slice(None), *[slice(0, n) for n in shape])]
        extra = [n - have for n, have in zip(shape, y.shape[2:])]
        if any(e > 0 for e in extra):
            y = F.pad(y, to_torch_pad([v for e in extra for v in (0, max(e, 0))]))
    return y
