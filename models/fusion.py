"""BatchNorm fusion: conv -> BN becomes one conv with bias, so exports carry no BN op."""

from __future__ import annotations

import copy

import torch
from torch import nn


@torch.no_grad()
def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a new conv computing bn(conv(x)) in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        conv.dilation,  # type: ignore[arg-type]
        conv.groups,
        bias=True,
        padding_mode=conv.padding_mode,  # type: ignore[arg-type]
    ).to(conv.weight.dtype)
    assert bn.running_var is not None and bn.running_mean is not None and fused.bias is not None  # eval-mode BN has stats
    # Fold in float64 so the fused weights round only once.
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    fused.weight.copy_((conv.weight.double() * scale.reshape(-1, 1, 1, 1)).to(conv.weight.dtype))
    bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(bn.running_mean, dtype=torch.float64)
    fused.bias.copy_(((bias - bn.running_mean.double()) * scale + bn.bias.double()).to(conv.weight.dtype))
    return fused


def fuse_batchnorm(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Fuse every Conv2d directly followed by a BatchNorm2d inside the same parent container.

    Handles modules that hold `conv` + `bn` attributes (ConvBnAct) and nn.Sequential pairs.
    Raises if any BatchNorm is left, because an export with BN in it is not what was asked.
    """
    if not inplace:
        model = copy.deepcopy(model)
    model.eval()
    for parent in list(model.modules()):
        names = list(parent._modules.keys())
        for first, second in zip(names, names[1:]):
            conv, bn = parent._modules[first], parent._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                parent._modules[first] = fuse_conv_bn(conv, bn)
                parent._modules[second] = nn.Identity()
    left = [name for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise ValueError(f"BatchNorm not preceded by a conv, cannot fuse: {', '.join(left[:5])}")
    return model
