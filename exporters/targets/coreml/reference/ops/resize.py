"""Bilinear and nearest-neighbour resizing (coremltools ops/defs/iOS15+iOS16 image_resizing.py).

Bilinear is written out as sample positions per axis (the "grid points" of the op docs) followed by
separable linear interpolation, so every sampling mode is one formula away from the docs.
"""

from __future__ import annotations

import math

import torch

from ._registry import flag, ints, number, register


def grid_points(n_in: int, n_out: int, mode: str) -> torch.Tensor:
    """Source coordinates for each output index, as defined in resize_bilinear's Notes."""
    i = torch.arange(n_out, dtype=torch.float64)
    if mode in ("STRICT_ALIGN_CORNERS", "ALIGN_CORNERS"):
        if n_out == 1:
            g = torch.full_like(i, (n_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0)
        else:
            g = i * ((n_in - 1) / (n_out - 1))
    elif mode == "DEFAULT":
        g = i * (n_in / n_out)
    elif mode == "OFFSET_CORNERS":
        delta = max(1, n_in - 1) / n_out
        g = 0.5 * delta + i * delta
    elif mode == "UNALIGN_CORNERS":
        spacing = n_in / n_out
        g = i * spacing + 0.5 * spacing - 0.5
    else:
        raise ValueError(f"unknown bilinear sampling mode {mode!r}")
    return g.clamp(0, n_in - 1)


def _interp_axis(x: torch.Tensor, axis: int, points: torch.Tensor) -> torch.Tensor:
    n_in = x.shape[axis]
    lo = points.floor().long().clamp(0, n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    w = (points - lo).to(x.dtype)
    shape = [1] * x.dim()
    shape[axis] = -1
    a, b = x.index_select(axis, lo), x.index_select(axis, hi)
    return a + (b - a) * w.reshape(shape)


def bilinear(x: torch.Tensor, out_h: int, out_w: int, mode: str) -> torch.Tensor:
    y = _interp_axis(x, x.dim() - 2, grid_points(x.shape[-2], out_h, mode))
    return _interp_axis(y, x.dim() - 1, grid_points(x.shape[-1], out_w, mode))


@register("upsample_bilinear")
def upsample_bilinear(x, scale_factor_height=1, scale_factor_width=1, align_corners=True, half_pixel_centers=None):
    # iOS15: align_corners True -> corners aligned; False -> half-pixel (UNALIGN_CORNERS).
    # iOS16 adds half_pixel_centers (default: not align_corners); both False is TF's legacy
    # sampling i * in/out, which is resize_bilinear's DEFAULT.
    aligned = flag(align_corners, True)
    half = flag(half_pixel_centers, not aligned)
    if aligned and half:
        raise ValueError("upsample_bilinear: align_corners and half_pixel_centers cannot both be true")
    mode = "STRICT_ALIGN_CORNERS" if aligned else ("UNALIGN_CORNERS" if half else "DEFAULT")
    out_h = math.floor(number(scale_factor_height) * x.shape[-2])
    out_w = math.floor(number(scale_factor_width) * x.shape[-1])
    return bilinear(x, out_h, out_w, mode)


@register("resize_bilinear")
def resize_bilinear(x, target_size_height=1, target_size_width=1, sampling_mode="DEFAULT"):
    return bilinear(x, ints(target_size_height)[0], ints(target_size_width)[0], sampling_mode)


def _nearest_axis(x: torch.Tensor, axis: int, n_out: int, scale: float) -> torch.Tensor:
    # Nearest source index floor(i / scale), as TF/torch 'nearest' with the given scale factor.
    idx = torch.floor(torch.arange(n_out, dtype=torch.float64) / scale).long().clamp(0, x.shape[axis] - 1)
    return x.index_select(axis, idx)


@register("upsample_nearest_neighbor")
def upsample_nearest_neighbor(x, scale_factor_height=1, scale_factor_width=1):
    sh, sw = number(scale_factor_height), number(scale_factor_width)
    y = _nearest_axis(x, x.dim() - 2, math.floor(sh * x.shape[-2]), sh)
    return _nearest_axis(y, x.dim() - 1, math.floor(sw * x.shape[-1]), sw)


@register("resize_nearest_neighbor")
def resize_nearest_neighbor(x, target_size_height=1, target_size_width=1):
    h, w = ints(target_size_height)[0], ints(target_size_width)[0]
    y = _nearest_axis(x, x.dim() - 2, h, h / x.shape[-2])
    return _nearest_axis(y, x.dim() - 1, w, w / x.shape[-1])
