"""Activations (coremltools ops/defs/iOS15/activation.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ._registry import axis_of, number, register


@register("relu")
def relu(x):
    return torch.relu(x)


@register("relu6")
def relu6(x):
    return torch.clamp(x, 0.0, 6.0)


@register("sigmoid")
def sigmoid(x):
    return torch.sigmoid(x)


@register("silu")
def silu(x):
    return F.silu(x)


@register("softplus")
def softplus(x):
    return F.softplus(x)


@register("softsign")
def softsign(x):
    return x / (1.0 + x.abs())


@register("softmax")
def softmax(x, axis=-1):
    return torch.softmax(x, dim=axis_of(axis, x.dim()))


@register("gelu")
def gelu(x, mode="EXACT"):
    if mode == "EXACT":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if mode == "TANH_APPROXIMATION":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    if mode == "SIGMOID_APPROXIMATION":
        return x * torch.sigmoid(1.702 * x)
    raise ValueError(f"gelu: unknown mode {mode!r}")


@register("leaky_relu")
def leaky_relu(x, alpha=0.01):
    return torch.where(x >= 0, x, number(alpha) * x)


@register("elu")
def elu(x, alpha=1.0):
    return torch.where(x > 0, x, number(alpha) * (torch.exp(x) - 1.0))


@register("clamped_relu")
def clamped_relu(x, alpha, beta):
    return torch.clamp(torch.where(x >= 0, x, number(alpha) * x), max=number(beta))


@register("linear_activation")
def linear_activation(x, alpha, beta=0.0):
    return number(alpha) * x + number(beta)


@register("scaled_tanh")
def scaled_tanh(x, alpha=1.0, beta=1.0):
    return number(alpha) * torch.tanh(number(beta) * x)


@register("sigmoid_hard")
def sigmoid_hard(x, alpha=0.2, beta=0.5):
    return torch.clamp(number(alpha) * x + number(beta), 0.0, 1.0)


@register("thresholded_relu")
def thresholded_relu(x, alpha=1.0):
    return torch.where(x >= number(alpha), x, torch.zeros_like(x))


def _per_channel(param: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    # prelu / softplus_parametric: one value per channel, the channel axis is -3 ([*, C, H, W]).
    return param.reshape([-1, 1, 1])


@register("prelu")
def prelu(x, alpha):
    a = _per_channel(alpha, x)
    return torch.where(x >= 0, x, a * x)


@register("softplus_parametric")
def softplus_parametric(x, alpha, beta):
    return _per_channel(alpha, x) * F.softplus(_per_channel(beta, x) * x)
