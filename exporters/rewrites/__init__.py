"""Rewrites of the traced module that make an export faster and leave its outputs as they were.

Each rewrite is one small file, applied to a deep copy of the BN-fused network for the module a
target traces, never to the network as written: verification compares every artefact with that
network, so it also proves each rewrite exact (within fp32 rounding). A target names the rewrites
it takes (`ExportTarget.export_rewrites`); they run in their registered order.

Adding a rewrite: one module here whose entry point is decorated with
`@register_rewrite(name, order=..., applies_to=...)` (registry.py says what each field means),
one import line below, its name in the `export_rewrites` of each target it applies to, and its
own test in tests/test_export_rewrites.py, which also checks that every declaration is true.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from mvit.models import PreprocessSpec

# Each module registers its rewrite on import.
from . import attention_layout, channels_last_patches, fold_preprocessing, patch_layout, separate_qkv, short_concats  # noqa: F401
from .registry import REWRITES, Rewrite, RewriteContext, in_order

KNOWN_REWRITES = frozenset(REWRITES)
SIZE_BAKING_REWRITES = frozenset(name for name, rewrite in REWRITES.items() if rewrite.bakes_size)

__all__ = ["KNOWN_REWRITES", "REWRITES", "SIZE_BAKING_REWRITES", "Rewrite", "rewrite_for_export"]


def rewrite_for_export(
    fused: nn.Module, preprocess: PreprocessSpec | None, image_size: int, rewrites: frozenset[str]
) -> tuple[nn.Module, bool, dict[str, Any]]:
    """(network to trace, whether `preprocess` now lives in its first conv, what was rewritten).

    `fused` itself is never changed; with nothing to rewrite it is returned as it came."""
    chosen = in_order(frozenset(rewrites))
    if not chosen:
        return fused, False, {}
    net = copy.deepcopy(fused).eval()
    context = RewriteContext(preprocess, image_size)
    info: dict[str, Any] = {}
    folded = changed = False
    for rewrite in chosen:
        done = rewrite.apply(net, context)
        net = done.net
        folded |= done.folded_preprocessing
        changed |= done.changed
        if done.report is not None:
            info[rewrite.name] = done.report
    if not changed:
        return fused, False, info  # nothing changed: trace the network as it is
    return net, folded, info
