"""Rewrites of the traced module that make an export faster and leave its outputs as they were.

Each rewrite is one small file, applied to a deep copy of the BN-fused network for the module a
target traces, never to the network as written: verification compares every artefact with that
network, so it also proves each rewrite exact (within fp32 rounding). A target names the rewrites
it takes (`ExportTarget.export_rewrites`).
"""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from mvit.models import PreprocessSpec

from .attention_layout import SHORT_SEQUENCE, rewrite_attention_layout
from .channels_last_patches import rewrite_channels_last_patches
from .fold_preprocessing import fold_preprocessing
from .patch_layout import rewrite_patch_layout
from .separate_qkv import rewrite_separate_qkv
from .short_concats import rewrite_short_concats

FOLD_PREPROCESSING = "fold_preprocessing"
PATCH_LAYOUT = "patch_layout"
ATTENTION_LAYOUT = "attention_layout"
SHORT_CONCATS = "short_concats"
CHANNELS_LAST_PATCHES = "channels_last_patches"
SEPARATE_QKV = "separate_qkv"
KNOWN_REWRITES = frozenset({FOLD_PREPROCESSING, PATCH_LAYOUT, ATTENTION_LAYOUT, SHORT_CONCATS, CHANNELS_LAST_PATCHES, SEPARATE_QKV})
# Rewrites that swap a MobileViT block, and so exclude each other.
_BLOCK_LAYOUTS = frozenset({PATCH_LAYOUT, CHANNELS_LAST_PATCHES})


def rewrite_for_export(fused: nn.Module, preprocess: PreprocessSpec | None, image_size: int,
                       rewrites: frozenset[str]) -> tuple[nn.Module, bool, dict[str, Any]]:
    """(network to trace, whether `preprocess` now lives in its first conv, what was rewritten).

    `fused` itself is never changed; with nothing to rewrite it is returned as it came."""
    unknown = set(rewrites) - KNOWN_REWRITES
    if unknown:
        raise ValueError(f"unknown export rewrites {sorted(unknown)}")
    if len(set(rewrites) & _BLOCK_LAYOUTS) > 1:
        raise ValueError(f"export rewrites {sorted(set(rewrites) & _BLOCK_LAYOUTS)} exclude each other")
    if not rewrites:
        return fused, False, {}
    net = copy.deepcopy(fused).eval()
    info: dict[str, Any] = {}
    folded = False
    if FOLD_PREPROCESSING in rewrites and preprocess is not None:
        decision = fold_preprocessing(net, preprocess, image_size)
        folded = decision.folded
        info[FOLD_PREPROCESSING] = {"folded": decision.folded, "why": decision.reason}
    if CHANNELS_LAST_PATCHES in rewrites:
        blocks = rewrite_channels_last_patches(net)
        if blocks:
            info[CHANNELS_LAST_PATCHES] = {"blocks": blocks, "layout": "one channels-last permute per unfold and fold"}
    if PATCH_LAYOUT in rewrites:
        blocks = rewrite_patch_layout(net, pointwise_on_tokens=True)
        if blocks:
            info[PATCH_LAYOUT] = {"blocks": blocks, "layout": "space-to-depth, 1x1 convs on the tokens"}
    if ATTENTION_LAYOUT in rewrites:
        attentions = rewrite_attention_layout(net, image_size, SHORT_SEQUENCE)
        if attentions:
            info[ATTENTION_LAYOUT] = {"attentions": attentions, "layout": "head-major, key transpose in the matmul",
                                      "where": f"attention over at most {SHORT_SEQUENCE} patches"}
    if SEPARATE_QKV in rewrites:  # after attention_layout: takes the attentions it left
        attentions = rewrite_separate_qkv(net)
        if attentions:
            info[SEPARATE_QKV] = {"attentions": attentions, "layout": "q, k and v as three linear layers, k made transposed"}
    if SHORT_CONCATS in rewrites:
        net, swapped = rewrite_short_concats(net)
        if swapped:
            info[SHORT_CONCATS] = {"ssd_heads": "concatenated in groups of at most 3"}
    if not folded and not set(info) - {FOLD_PREPROCESSING}:
        return fused, False, info  # nothing changed: trace the network as it is
    return net, folded, info
