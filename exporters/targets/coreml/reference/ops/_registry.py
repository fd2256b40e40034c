"""The op table and the small converters every op uses for its const parameters."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

OPS: dict[str, Callable[..., Any]] = {}


def register(*names: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        for name in names:
            if name in OPS:
                raise ValueError(f"MIL op {name!r} registered twice")
            OPS[name] = fn
        return fn

    return wrap


def ints(value: Any) -> list[int]:
    """A const int parameter (tensor, list or scalar) as a list of Python ints."""
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    return [int(value)]


def number(value: Any) -> float:
    if isinstance(value, torch.Tensor):
        return float(value.reshape(-1)[0])
    return float(value)


def flag(value: Any, default: bool = False) -> bool:
    if value is None:
        return default
    if isinstance(value, torch.Tensor):
        return bool(value.reshape(-1)[0])
    return bool(value)


def axis_of(value: Any, rank: int) -> int:
    a = ints(value)[0]
    return a + rank if a < 0 else a


def axes_of(value: Any, rank: int) -> list[int]:
    return [a + rank if a < 0 else a for a in ints(value)]
