"""Normalisations (coremltools ops/defs/iOS15/normalization.py)."""

from __future__ import annotations

import torch

from ._registry import axes_of, number, register


def _channel(v: torch.Tensor, rank: int) -> torch.Tensor:
    # batch_norm / instance_norm parameters are per channel, axis 1 of a rank 3..5 input.
    return v.reshape([1, -1] + [1] * (rank - 2))


@register("batch_norm")
def batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5):
    r = x.dim()
    y = (x - _channel(mean, r)) / torch.sqrt(_channel(variance, r) + number(epsilon))
    if gamma is not None:
        y = y * _channel(gamma, r)
    if beta is not None:
        y = y + _channel(beta, r)
    return y


@register("instance_norm")
def instance_norm(x, gamma=None, beta=None, epsilon=1e-5):
    dims = list(range(2, x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + number(epsilon))
    if gamma is not None:
        y = y * _channel(gamma, x.dim())
    if beta is not None:
        y = y + _channel(beta, x.dim())
    return y


@register("layer_norm")
def layer_norm(x, axes=None, gamma=None, beta=None, epsilon=1e-5):
    # As in the op's own numpy value_inference: biased variance over `axes`; gamma/beta have the
    # shape of x over those axes (coremltools only emits trailing axes for them).
    dims = axes_of(axes, x.dim()) if axes is not None else list(range(x.dim()))
    mean = x.mean(dim=dims, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=dims, keepdim=True)
    y = (x - mean) / torch.sqrt(var + number(epsilon))
    shape = [x.shape[d] if d in dims else 1 for d in range(x.dim())]
    if gamma is not None:
        y = y * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y


@register("l2_norm")
def l2_norm(x, axes=None, epsilon=1e-6):
    # iOS15 l2_norm has no `axes`: it normalises over the last three dimensions.
    dims = axes_of(axes, x.dim()) if axes is not None else list(range(max(x.dim() - 3, 0), x.dim()))
    return x / torch.sqrt((x * x).sum(dim=dims, keepdim=True) + number(epsilon))
