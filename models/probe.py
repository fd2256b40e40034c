"""Run a network once on a blank image and see what its modules of one kind were given."""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)


def inputs_of(net: nn.Module, kind: type[M] | tuple[type[M], ...], image_size: int) -> list[tuple[M, torch.Size]]:
    """(module, shape of its first input) for each call of a `kind` submodule (or of any of several
    kinds), in call order, when `net` runs on one zero image of `image_size`; the network's own exceptions pass through."""
    seen: list[tuple[M, torch.Size]] = []

    def record(module: M, args: tuple[torch.Tensor, ...]) -> None:  # None: the input stays as it is
        seen.append((module, args[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in net.modules() if isinstance(m, kind)]
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
    return seen
