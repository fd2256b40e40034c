"""Helpers for tests that need networks whose outputs depend on every weight."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from mvit.benchmarks.peer_routes import randomise_


def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter and BN statistic non-trivial random values (in place).

    Default inits leave BN as identity and some heads at zero, which would let a wrong key map
    or a broken fusion pass unnoticed. The peer-route benchmark needs the same weights, so the
    one implementation lives there.
    """
    return randomise_(model, seed)


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
