"""Helpers for tests that need networks whose outputs depend on every weight."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-trivial random values (in place).

    Default inits leave BN as identity and some heads at zero, which would let a wrong key map
    or a broken fusion pass unnoticed.
    """
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        fan_in = p[0].numel() if p.dim() > 1 else 1
        if name.endswith("weight") and p.dim() == 1:  # norms
            p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.75)
        else:
            p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5 * (1.0 if p.dim() > 1 else 0.1))
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
    return model.eval()


class MaxRank(TorchDispatchMode):
    """Records the largest rank of any tensor an aten op produces while active."""

    def __init__(self) -> None:
        super().__init__()
        self.max_rank = 0
        self.op = ""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.dim() > self.max_rank:
                self.max_rank, self.op = t.dim(), str(func)
        return out
