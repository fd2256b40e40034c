"""Multiply-accumulates counted from the network itself, not copied from a paper."""

from __future__ import annotations

import torch
from torch import nn


def count_macs(module: nn.Module, example: torch.Tensor) -> int:
    """Conv + matmul MACs of one forward pass (torch's FLOP counter counts 2 FLOPs per MAC).

    Counts what the paper's figures count (arXiv 2110.02178: conv and matmul,
    MobileViT-XXS 0.407 G at 256x256); elementwise ops, softmax and norms are not MACs.
    """
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        module(example)
    return int(counter.get_total_flops() // 2)
