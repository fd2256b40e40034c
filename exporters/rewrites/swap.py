"""Swap every submodule of one exact type for a rewritten one, in place."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn


def swap_modules(net: nn.Module, kind: type[nn.Module], make: Callable[[nn.Module], nn.Module], where: Callable[[nn.Module], bool] | None = None) -> list[str]:
    """Replace each submodule of `net` (a copy the caller owns) whose type is exactly `kind`
    (a subclass may compute something else), and for which `where` holds, by `make(it)`;
    returns the names replaced."""
    swapped = []
    for name, parent in list(net.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) is kind and (where is None or where(child)):
                setattr(parent, child_name, make(child))
                swapped.append(f"{name}.{child_name}" if name else child_name)
    return swapped


_BLOCK_PARTS = ("conv_kxk", "conv_1x1", "transformer", "norm", "conv_proj", "conv_fusion")


def adopt_block(new: nn.Module, block: nn.Module) -> None:
    """Initialise `new`, a MobileVitBlock subclass, with `block`'s own modules (not copies, so
    parameter names and values stay) instead of building fresh ones."""
    nn.Module.__init__(new)
    new.patch_size = block.patch_size
    for name in _BLOCK_PARTS:
        setattr(new, name, getattr(block, name))
