"""linear, matmul, einsum (coremltools ops/defs/iOS15/linear.py)."""

from __future__ import annotations

import torch

from ._registry import flag, register


@register("linear")
def linear(x, weight, bias=None):
    # weight is [D_out, D_in]; bias [D_out].
    y = torch.matmul(x, weight.transpose(-1, -2))
    return y + bias if bias is not None else y


@register("matmul")
def matmul(x, y, transpose_x=False, transpose_y=False):
    if flag(transpose_x) and x.dim() > 1:
        x = x.transpose(-1, -2)
    if flag(transpose_y) and y.dim() > 1:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y)


@register("einsum")
def einsum(values, equation):
    return torch.einsum(equation, *values)
