"""The rewrite registry: name -> one rewrite, with the order it runs in and the targets it was
measured faster on. A rewrite module registers its entry point with `@register_rewrite(...)`;
the package imports every module once, so the registry is complete before any export."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from mvit.models import PreprocessSpec


@dataclass(frozen=True)
class RewriteContext:
    """What a rewrite may read besides the network."""

    preprocess: PreprocessSpec | None
    image_size: int


@dataclass(frozen=True)
class Rewritten:
    net: nn.Module  # the network to go on with: the one given, changed in place, or a new one
    report: dict[str, Any] | None = None  # its entry in the report's export_rewrites; None: none
    changed: bool = False
    folded_preprocessing: bool = False  # the preprocessing now lives in the network's first conv


# The network given is a copy the caller owns.
RewriteFn = Callable[[nn.Module, RewriteContext], Rewritten]


@dataclass(frozen=True)
class Rewrite:
    name: str
    order: int  # lower runs first; a rewrite that takes what an earlier one left runs after it
    applies_to: frozenset[str]  # targets that ask for it (ExportTarget.export_rewrites)
    apply: RewriteFn
    excludes: frozenset[str] = field(default_factory=frozenset)  # rewrites it cannot run beside
    bakes_size: bool = False  # its modules are traced at one size: no graph serving several sizes takes it


REWRITES: dict[str, Rewrite] = {}


def register_rewrite(
    name: str, *, order: int, applies_to: frozenset[str], excludes: frozenset[str] = frozenset(), bakes_size: bool = False
) -> Callable[[RewriteFn], RewriteFn]:
    def register(apply: RewriteFn) -> RewriteFn:
        if name in REWRITES:
            raise ValueError(f"export rewrite {name!r} is registered twice")
        REWRITES[name] = Rewrite(name, order, applies_to, apply, excludes, bakes_size)
        return apply

    return register


def in_order(names: frozenset[str]) -> list[Rewrite]:
    """The registered rewrites `names`, in the order they run; unknown names and rewrites that
    exclude each other are a ValueError."""
    unknown = set(names) - set(REWRITES)
    if unknown:
        raise ValueError(f"unknown export rewrites {sorted(unknown)}")
    for name in sorted(names):
        clash = REWRITES[name].excludes & names
        if clash:
            raise ValueError(f"export rewrites {sorted(clash | {name})} exclude each other")
    return sorted((REWRITES[n] for n in names), key=lambda r: r.order)
